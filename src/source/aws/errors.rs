//! Turning AWS SDK errors into [`SourceError`]s: the error class, and for access denied the IAM
//! action that is missing. Messages carry AWS's error code and message, never credentials.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::domain::ScanIssueKind;
use crate::source::SourceError;

/// Every error code AWS services answer when a caller goes too fast. Each is retried.
pub const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "LimitExceededException",
    "EC2ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "BandwidthLimitExceeded",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
];

/// Error codes of failures on AWS's side (usually with a 5xx status). Each is retried.
const SERVER_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "InternalServiceException",
    "InternalServiceError",
    "ServerException",
    "ServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether `code` is one of AWS's throttling error codes.
pub fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// Classifies the failure of a call to `action` (an IAM action such as `ec2:DescribeInstances`).
pub fn classify<E>(action: &str, error: SdkError<E, HttpResponse>) -> SourceError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let mut classified = match &error {
        SdkError::DispatchFailure(failure) => {
            let detail = failure
                .as_connector_error()
                .map(|e| source_chain(e))
                .unwrap_or_else(|| "the request could not be sent".to_string());
            if failure.is_timeout() {
                SourceError::new(
                    ScanIssueKind::Timeout,
                    format!("{action}: the endpoint did not accept a connection in time: {detail}"),
                )
            } else {
                SourceError::new(
                    ScanIssueKind::EndpointUnavailable,
                    format!("{action}: endpoint unreachable: {detail}"),
                )
            }
        }
        SdkError::TimeoutError(_) => SourceError::new(
            ScanIssueKind::Timeout,
            format!("{action}: the endpoint did not answer in time (past the configured timeouts)"),
        ),
        SdkError::ServiceError(context) => {
            let err = context.err();
            let status = context.raw().status().as_u16();
            match err.code() {
                Some(code) => {
                    from_code_and_status(action, code, err.message().unwrap_or(""), status)
                }
                None => from_status(action, status),
            }
        }
        SdkError::ResponseError(context) => {
            let status = context.raw().status().as_u16();
            if worth_retrying(status) {
                from_status(action, status)
            } else {
                // An answer the SDK could not read (a proxy's page, a cut-off body).
                SourceError::new(
                    ScanIssueKind::EndpointUnavailable,
                    format!(
                        "{action}: unreadable answer (HTTP {status}): {}",
                        source_chain(&error)
                    ),
                )
            }
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
    };
    classified.operation = Some(action.to_string());
    classified
}

/// Whether an HTTP status says to try later: a throttle (429) or a failure on AWS's side (5xx).
fn worth_retrying(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
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
        retryable: worth_retrying(status),
        operation: Some(action.to_string()),
    }
}

/// Classifies an AWS error code that came with an HTTP status: a code tagguard does not know
/// is retried when the status says the failure was AWS's (5xx) or a throttle (429).
fn from_code_and_status(action: &str, code: &str, message: &str, status: u16) -> SourceError {
    let mut classified = from_code(action, code, message);
    if classified.kind == ScanIssueKind::Other && worth_retrying(status) {
        classified.kind = if status == 429 {
            ScanIssueKind::Throttled
        } else {
            ScanIssueKind::EndpointUnavailable
        };
        classified.retryable = true;
        classified.message = format!("{action} failed (HTTP {status}, {code}: {message})");
    }
    classified
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
        code if is_throttling_code(code) => ScanIssueKind::Throttled,
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => ScanIssueKind::AccessDenied,
        "RegionDisabledException" => ScanIssueKind::RegionDisabled,
        // Opt-in regions answer these when they are not enabled for the account.
        "OptInRequired"
        | "AuthFailure"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException" => ScanIssueKind::RegionDisabled,
        code if SERVER_CODES.contains(&code) => ScanIssueKind::EndpointUnavailable,
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
        ScanIssueKind::EndpointUnavailable => {
            format!("{action} failed on AWS's side, past the retry budget ({detail})")
        }
        _ => format!("{action} failed ({detail})"),
    };
    SourceError {
        kind,
        missing_permission: (kind == ScanIssueKind::AccessDenied && !code.contains("Expired"))
            .then(|| action.to_string()),
        message: text,
        retryable: matches!(
            kind,
            ScanIssueKind::Throttled | ScanIssueKind::EndpointUnavailable
        ),
        operation: Some(action.to_string()),
    }
}

/// The AWS error code of a raw answer, from the `x-amzn-ErrorType` header, a JSON body's
/// `__type` or `code`, or an XML body's first `<Code>`; for the SDK interceptor, which sees
/// answers before they are typed.
pub fn error_code_of(error_type_header: Option<&str>, body: &[u8]) -> Option<String> {
    let clean = |code: &str| {
        // `aws.protocols#ThrottlingException` and `Code:http://internal…` forms.
        let code = code.rsplit('#').next().unwrap_or(code);
        code.split(':').next().unwrap_or(code).trim().to_string()
    };
    if let Some(value) = error_type_header {
        return Some(clean(value));
    }
    let text = std::str::from_utf8(body).ok()?.trim_start();
    if text.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        let code = ["__type", "code", "Code"]
            .iter()
            .find_map(|k| json.get(*k).and_then(|v| v.as_str()))?;
        return Some(clean(code));
    }
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(clean(&text[start..end]))
}

/// Whether a raw answer is a throttle: HTTP 429, or any throttling code.
pub fn is_throttle(status: u16, error_type_header: Option<&str>, body: &[u8]) -> bool {
    status == 429
        || (status >= 400
            && error_code_of(error_type_header, body).is_some_and(|c| is_throttling_code(&c)))
}

/// The failure to assume the role `role` (an ARN), classified from the credential provider's
/// error, whose SDK error it does not expose: its text names the AWS error code.
pub(crate) fn assume_role_error(role: &str, error: &(dyn StdError + 'static)) -> SourceError {
    let text = source_chain(error);
    let code = [
        "AccessDenied",
        "ExpiredToken",
        "RegionDisabledException",
        "Throttling",
    ]
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

    /// AWS's throttling codes, as issue 11 lists them from the services' documentation: an
    /// oracle of its own, not the table under test.
    const DOCUMENTED_THROTTLING: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "LimitExceededException",
        "EC2ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceededException",
    ];

    #[test]
    fn every_throttling_code_is_retried_and_nothing_the_caller_must_fix_is() {
        for code in DOCUMENTED_THROTTLING {
            let e = from_code("tag:GetResources", code, "Rate exceeded");
            assert_eq!(e.kind, ScanIssueKind::Throttled, "{code}");
            assert!(e.retryable, "{code}");
        }
        for code in [
            "InternalError",
            "InternalFailure",
            "ServiceUnavailable",
            "InternalServiceException",
        ] {
            let e = from_code("ec2:DescribeInstances", code, "");
            assert_eq!(e.kind, ScanIssueKind::EndpointUnavailable, "{code}");
            assert!(e.retryable, "{code}");
        }
        for code in [
            "AccessDenied",
            "UnauthorizedOperation",
            "OptInRequired",
            "InvalidParameterValue",
            "InvalidParameterException",
            "ValidationException",
            "ExpiredToken",
        ] {
            assert!(
                !from_code("ec2:DescribeInstances", code, "").retryable,
                "{code}"
            );
        }
        // A code tagguard does not know is retried only when AWS said the fault was its own.
        assert!(from_code_and_status("x:Y", "Mystery", "", 503).retryable);
        assert!(!from_code_and_status("x:Y", "Mystery", "", 400).retryable);
        assert!(from_status("x:Y", 502).retryable);
        assert!(from_status("x:Y", 429).retryable);
        assert!(!from_status("x:Y", 403).retryable);
    }

    proptest::proptest! {
        /// Whatever the code and status, a throttling code is a retryable throttle, a code
        /// tagguard does not know is retried exactly when AWS said the fault was its own, and
        /// every wire format gives the code back.
        #[test]
        fn classification_follows_the_code_then_the_status(
            code in "[A-Za-z]{1,30}",
            status in 400u16..600,
            throttle in proptest::sample::select(DOCUMENTED_THROTTLING),
        ) {
            let known = from_code("x:Y", &code, "").kind != ScanIssueKind::Other;
            let e = from_code_and_status("x:Y", &code, "m", status);
            if !known {
                proptest::prop_assert_eq!(e.retryable, status == 429 || status >= 500);
            }
            let t = from_code_and_status("x:Y", throttle, "m", status);
            proptest::prop_assert_eq!(t.kind, ScanIssueKind::Throttled);
            proptest::prop_assert!(t.retryable);
            for body in [
                format!("<Response><Errors><Error><Code>{code}</Code></Error></Errors></Response>"),
                format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code></Error></ErrorResponse>"),
                format!(r#"{{"__type":"com.amazonaws.svc#{code}","message":"m"}}"#),
                format!(r#"{{"code":"{code}"}}"#),
            ] {
                proptest::prop_assert_eq!(error_code_of(None, body.as_bytes()), Some(code.clone()));
            }
            proptest::prop_assert_eq!(
                is_throttle(status, Some(&format!("{code}:http://x")), b""),
                status == 429 || DOCUMENTED_THROTTLING.contains(&code.as_str())
            );
        }
    }

    #[test]
    fn codes_are_read_from_every_wire_format() {
        let none = None;
        let xml_ec2 = br#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>1</RequestID></Response>"#;
        assert_eq!(
            error_code_of(none, xml_ec2).as_deref(),
            Some("RequestLimitExceeded")
        );
        assert!(is_throttle(503, none, xml_ec2));
        let query = br#"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"#;
        assert!(is_throttle(400, none, query));
        let json =
            br#"{"__type":"com.amazonaws.tagging#ThrottledException","Message":"Rate exceeded"}"#;
        assert_eq!(
            error_code_of(none, json).as_deref(),
            Some("ThrottledException")
        );
        assert!(is_throttle(400, none, json));
        let lambda = Some("TooManyRequestsException:http://internal");
        assert!(is_throttle(429, lambda, b"{}"));
        assert!(
            is_throttle(400, lambda, b""),
            "the header alone names the code"
        );
        let server = br#"<Error><Code>InternalError</Code></Error>"#;
        assert!(!is_throttle(500, none, server));
        assert!(
            !is_throttle(200, none, br#"<Code>Throttling</Code>"#),
            "a success is no throttle"
        );
        assert!(!is_throttle(400, none, b"not xml or json"));
    }
}
