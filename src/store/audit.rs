//! Audit records of tool calls: what was called, by which session, with which (redacted)
//! arguments, how it ended and how long it took.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{StoreError, io_error};

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditStatus {
    /// The tool answered.
    Success,
    /// The tool ran and failed (a source that could not be read, say).
    ToolError,
    /// The arguments did not fit the tool's schema.
    InvalidInput,
    /// The call ran past its time limit and was stopped.
    Timeout,
    /// The session had used its tool-call budget.
    BudgetExceeded,
    /// The same call, with the same arguments, came too often.
    LoopDetected,
    /// The client cancelled the call.
    Cancelled,
    /// No tool of that name.
    UnknownTool,
}

crate::domain::string_enum!(AuditStatus "a status" {
    Success => "success",
    ToolError => "tool_error",
    InvalidInput => "invalid_input",
    Timeout => "timeout",
    BudgetExceeded => "budget_exceeded",
    LoopDetected => "loop_detected",
    Cancelled => "cancelled",
    UnknownTool => "unknown_tool",
});

/// One tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The record's key in the store (set when it is written).
    #[serde(default)]
    pub key: u64,
    /// When the call arrived.
    pub at: DateTime<Utc>,
    /// The call's correlation id: also in the logs and in the result's `_meta`.
    pub correlation_id: String,
    /// The client session (MCP session id; one id per stdio process).
    pub session: String,
    /// The tool called.
    pub tool: String,
    /// The arguments, with anything secret-looking replaced by `[redacted]`.
    pub parameters: Value,
    /// How it ended.
    pub status: AuditStatus,
    /// The error message, when it did not succeed.
    pub error: Option<String>,
    /// The error's kind, when the tool failed (`access_denied`, `throttled`, `invalid_input`,
    /// `failed`, ...): what a retry policy or a report filters on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// Size of the result's JSON, in bytes.
    pub result_bytes: u64,
    /// Whether the answer came from the cache.
    #[serde(default)]
    pub cached: bool,
}

/// Which records to list.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    /// Records at or after this time.
    pub since: DateTime<Utc>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this status.
    pub status: Option<AuditStatus>,
    /// Only this session.
    pub session: Option<String>,
    /// At most this many (the most recent).
    pub limit: usize,
}

impl AuditQuery {
    /// Whether a record passes the filters (time aside).
    pub fn admits(&self, record: &AuditRecord) -> bool {
        self.tool.as_ref().is_none_or(|t| *t == record.tool)
            && self.status.is_none_or(|s| s == record.status)
            && self.session.as_ref().is_none_or(|s| *s == record.session)
    }
}

/// Drops records older than `days`.
pub(super) fn prune(table: &mut redb::Table<u64, &[u8]>, days: u32) -> Result<(), StoreError> {
    let cutoff = (Utc::now() - chrono::Duration::days(days.into()))
        .timestamp_micros()
        .max(0) as u64;
    table
        .retain_in(..cutoff, |_, _| false)
        .map_err(|e| io_error("pruning the audit log", e))
}

/// Key names whose values are secrets, whatever their case.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "authorization",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "session_key",
    "external_id",
];

/// `value` with secret-looking parts replaced by `[redacted]`: values of keys named like a
/// secret, and strings shaped like AWS access key ids or bearer tokens.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| {
                    let lower = key.to_ascii_lowercase();
                    if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                        (key.clone(), Value::String("[redacted]".to_string()))
                    } else {
                        (key.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(text) if looks_secret(text) => Value::String("[redacted]".to_string()),
        other => other.clone(),
    }
}

/// `text` with every word that looks secret (see [`redact`]) replaced by `[redacted]`: for
/// messages that quote arguments.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if looks_secret(word) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// AWS access key ids (`AKIA…`, `ASIA…`: 20 upper-case letters and digits), `Bearer …`
/// values, and long unbroken base64-like strings (40+ characters: secret keys, tokens). ARNs
/// are long too, but carry `:` and are never redacted.
fn looks_secret(text: &str) -> bool {
    let access_key = text.len() == 20
        && (text.starts_with("AKIA") || text.starts_with("ASIA"))
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let opaque = text.len() >= 40
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-'));
    access_key || opaque || text.starts_with("Bearer ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let args = json!({
            "resource_arns": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"],
            "filters": { "regions": ["us-east-1"], "AuthToken": "x" },
            "note": "AKIAABCDEFGHIJKLMNOP",
            "blob": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY12",
            "external_id": "abc",
            "limit": 5
        });
        let red = redact(&args);
        assert_eq!(red["resource_arns"], args["resource_arns"]);
        assert_eq!(red["filters"]["regions"], args["filters"]["regions"]);
        assert_eq!(red["filters"]["AuthToken"], "[redacted]");
        assert_eq!(red["note"], "[redacted]");
        assert_eq!(red["blob"], "[redacted]");
        assert_eq!(red["external_id"], "[redacted]");
        assert_eq!(red["limit"], 5);
    }

    #[test]
    fn secrets_quoted_in_messages_are_redacted() {
        let text = "'AKIAIOSFODNN7EXAMPLE' in regions is not a region: lowercase, e.g. 'us-east-1'";
        assert_eq!(
            redact_text(text),
            "'[redacted]' in regions is not a region: lowercase, e.g. 'us-east-1'"
        );
        assert_eq!(redact_text("plain words stay"), "plain words stay");
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for status in [AuditStatus::Success, AuditStatus::LoopDetected] {
            assert_eq!(status.as_str().parse::<AuditStatus>(), Ok(status));
        }
        assert!("nope".parse::<AuditStatus>().is_err());
    }
}
