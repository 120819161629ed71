//! Turning AWS SDK errors into [`SourceError`]s: the error class, and for access denied the IAM
//! action that is missing. Messages carry AWS's error code and message, never credentials.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::domain::ScanIssueKind;
use crate::source::SourceError;

/// Classifies the failure of a call to `action` (an IAM action such as `ec2:DescribeInstances`).
pub fn classify<E>(action: &str, error: SdkError<E, HttpResponse>) -> SourceError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
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
            match err.code() {
                Some(code) => from_code(action, code, err.message().unwrap_or("")),
                None => from_status(action, context.raw().status().as_u16()),
            }
        }
        SdkError::ResponseError(context) => from_status(action, context.raw().status().as_u16()),
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

/// Classifies an answer without an error code by its HTTP status.
fn from_status(action: &str, status: u16) -> SourceError {
    let (kind, what) = match status {
        403 => (ScanIssueKind::AccessDenied, "access denied"),
        429 => (
            ScanIssueKind::Throttled,
            "too many requests, past the retry budget",
        ),
        500..=599 => (
            ScanIssueKind::EndpointUnavailable,
            "the service failed, past the retry budget",
        ),
        _ => (ScanIssueKind::Other, "unexpected answer"),
    };
    SourceError {
        kind,
        missing_permission: (kind == ScanIssueKind::AccessDenied).then(|| action.to_string()),
        message: format!("{action}: {what} (HTTP {status})"),
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
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => ScanIssueKind::AccessDenied,
        "RegionDisabledException" => ScanIssueKind::RegionDisabled,
        // Opt-in regions answer these when they are not enabled for the account.
        "OptInRequired"
        | "AuthFailure"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException" => ScanIssueKind::RegionDisabled,
        "InternalError"
        | "InternalFailure"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "Unavailable" => ScanIssueKind::EndpointUnavailable,
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
        missing_permission: (kind == ScanIssueKind::AccessDenied && !code.contains("Expired"))
            .then(|| action.to_string()),
        message: text,
    }
}

/// The failure to assume the role `role` (an ARN), classified from the credential provider's
/// error, whose SDK error it does not expose: its text names the AWS error code.
pub(crate) fn assume_role_error(role: &str, error: &(dyn StdError + 'static)) -> SourceError {
    let text = source_chain(error);
    let code = ["AccessDenied", "ExpiredToken", "RegionDisabledException"]
        .into_iter()
        .find(|code| text.contains(code));
    let mut classified = match code {
        Some(code) => from_code("sts:AssumeRole", code, ""),
        None if text.contains("not authorized") => from_code("sts:AssumeRole", "AccessDenied", ""),
        None if text.contains("dispatch failure") || text.contains("connect") => {
            SourceError::new(ScanIssueKind::EndpointUnavailable, String::new())
        }
        None => SourceError::new(ScanIssueKind::Other, String::new()),
    };
    classified.message = format!("cannot assume role '{role}': {text}");
    classified
}

/// An error and its sources, joined: the SDK's own message is often just "dispatch failure".
pub(crate) fn source_chain(error: &(dyn StdError + 'static)) -> String {
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
        let down = from_code("s3:ListAllMyBuckets", "InternalError", "boom");
        assert_eq!(down.kind, ScanIssueKind::EndpointUnavailable);
        assert!(down.missing_permission.is_none());
        let expired = from_code(
            "ec2:DescribeInstances",
            "ExpiredToken",
            "The security token included in the request is expired",
        );
        assert_eq!(expired.kind, ScanIssueKind::AccessDenied);
        assert!(
            expired.missing_permission.is_none(),
            "an expired token is no missing permission"
        );
        assert_eq!(
            from_code("ecs:ListClusters", "ValidationException", "").kind,
            ScanIssueKind::Other
        );
    }
}
