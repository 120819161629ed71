//! Turning AWS SDK errors into [`SourceError`]s: the error class, and for access denied the IAM
//! action that is missing. Messages carry AWS's error code and message, never credentials.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::domain::ScanIssueKind;
use crate::source::SourceError;

/// Classifies the failure of a call to `action` (an IAM action such as `ec2:DescribeInstances`).
pub fn classify<E, R>(action: &str, error: SdkError<E, R>) -> SourceError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &error {
        SdkError::DispatchFailure(failure) => {
            let detail = failure
                .as_connector_error()
                .map(|e| source_chain(e))
                .unwrap_or_else(|| "the request could not be sent".to_string());
            SourceError::new(
                ScanIssueKind::EndpointUnavailable,
                format!("{action}: endpoint unreachable: {detail}"),
            )
        }
        SdkError::TimeoutError(_) => SourceError::new(
            ScanIssueKind::EndpointUnavailable,
            format!("{action}: the request timed out"),
        ),
        SdkError::ServiceError(context) => {
            let err = context.err();
            let code = err.code().unwrap_or("Unknown");
            let message = err.message().unwrap_or("");
            from_code(action, code, message)
        }
        other => {
            let code = other.code().unwrap_or("");
            if !code.is_empty() {
                from_code(action, code, other.message().unwrap_or(""))
            } else {
                SourceError::new(
                    ScanIssueKind::Other,
                    format!("{action}: {}", source_chain(other)),
                )
            }
        }
    }
}

/// Classifies an AWS error code.
pub fn from_code(action: &str, code: &str, message: &str) -> SourceError {
    let kind = match code {
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnauthorizedAccess"
        | "AuthorizationError"
        | "AccessDeniedForDependencyException" => ScanIssueKind::AccessDenied,
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "ProvisionedThroughputExceededException" => ScanIssueKind::Throttled,
        "OptInRequired"
        | "AuthFailure"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException" => ScanIssueKind::RegionDisabled,
        _ => ScanIssueKind::Other,
    };
    let detail = if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    };
    let text = match kind {
        ScanIssueKind::AccessDenied => format!("{action} was denied ({detail})"),
        ScanIssueKind::Throttled => {
            format!("{action} was throttled past the retry budget ({detail})")
        }
        ScanIssueKind::RegionDisabled => {
            format!(
                "{action}: the region is not enabled for this account, or the credentials are not valid there ({detail})"
            )
        }
        _ => format!("{action} failed ({detail})"),
    };
    SourceError {
        kind,
        missing_permission: (kind == ScanIssueKind::AccessDenied).then(|| action.to_string()),
        message: text,
    }
}

/// An error and its sources, joined: the SDK's own message is often just "dispatch failure".
fn source_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_classes_and_name_the_action() {
        let denied = from_code(
            "ec2:DescribeInstances",
            "UnauthorizedOperation",
            "You are not authorized",
        );
        assert_eq!(denied.kind, ScanIssueKind::AccessDenied);
        assert_eq!(
            denied.missing_permission.as_deref(),
            Some("ec2:DescribeInstances")
        );
        assert!(
            denied
                .message
                .starts_with("ec2:DescribeInstances was denied")
        );
        assert_eq!(
            from_code("rds:DescribeDBInstances", "Throttling", "").kind,
            ScanIssueKind::Throttled
        );
        assert_eq!(
            from_code("ec2:DescribeInstances", "OptInRequired", "").kind,
            ScanIssueKind::RegionDisabled
        );
        let other = from_code("s3:ListAllMyBuckets", "InternalError", "boom");
        assert_eq!(other.kind, ScanIssueKind::Other);
        assert!(other.missing_permission.is_none());
    }
}
