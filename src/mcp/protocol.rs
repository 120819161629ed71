//! MCP and JSON-RPC wire vocabulary: protocol revisions, error codes, and message framing.

use serde_json::{Value, json};

/// The revision tagguard speaks natively.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Revisions tagguard can speak, newest first. A client asking for one gets it; any other gets
/// the latest, and the client decides whether to go on.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

/// JSON-RPC: the text is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC: the JSON is not a valid request.
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC: no such method.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// JSON-RPC: bad parameters (MCP: also an unknown tool).
pub const INVALID_PARAMS: i32 = -32602;
/// JSON-RPC: the server failed.
pub const INTERNAL_ERROR: i32 = -32603;
/// MCP: no resource has the URI `resources/read` asked for.
pub const RESOURCE_NOT_FOUND: i32 = -32002;
/// The request was cancelled (the code LSP uses; MCP sends no response over stdio).
pub const REQUEST_CANCELLED: i32 = -32800;

/// One incoming JSON-RPC message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request: it gets exactly one response.
    Request {
        /// The id, echoed as given (string or number).
        id: Value,
        /// The method.
        method: String,
        /// The parameters, if any.
        params: Option<Value>,
    },
    /// A notification: never answered.
    Notification {
        /// The method.
        method: String,
        /// The parameters, if any.
        params: Option<Value>,
    },
    /// A response to a request of ours (tagguard sends none, so it is ignored).
    Response,
}

/// Parses one message. `Err` holds the error response to send (id null).
pub fn parse_message(text: &str) -> Result<Incoming, Value> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| error_response(&Value::Null, PARSE_ERROR, &format!("parse error: {e}")))?;
    let invalid = |message: &str| error_response(&Value::Null, INVALID_REQUEST, message);
    let Value::Object(mut map) = value else {
        return Err(if value.is_array() {
            invalid(
                "batches are not supported (MCP removed them in 2025-06-18): send one message at a time",
            )
        } else {
            invalid("a JSON-RPC message is a JSON object")
        });
    };
    if map.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("'jsonrpc' must be \"2.0\""));
    }
    let params = map.remove("params");
    if params
        .as_ref()
        .is_some_and(|p| !p.is_object() && !p.is_array())
    {
        let id = map.get("id").cloned().unwrap_or(Value::Null);
        return Err(error_response(
            &id,
            INVALID_REQUEST,
            "'params' must be an object",
        ));
    }
    match (map.remove("method"), map.remove("id")) {
        (Some(Value::String(method)), Some(id)) if id.is_string() || id.is_number() => {
            Ok(Incoming::Request { id, method, params })
        }
        (Some(Value::String(_)), Some(_)) => Err(invalid("'id' must be a string or a number")),
        (Some(Value::String(method)), None) => Ok(Incoming::Notification { method, params }),
        (Some(_), _) => Err(invalid("'method' must be a string")),
        (None, _) if map.contains_key("result") || map.contains_key("error") => {
            Ok(Incoming::Response)
        }
        (None, _) => Err(invalid("a request needs a 'method'")),
    }
}

/// A success response.
pub fn result_response(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// An error response.
pub fn error_response(id: &Value, code: i32, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

/// A `notifications/progress` message.
pub fn progress_notification(
    token: &Value,
    progress: f64,
    total: Option<f64>,
    message: &str,
) -> Value {
    let mut params = json!({ "progressToken": token, "progress": progress, "message": message });
    if let Some(total) = total {
        params["total"] = json!(total);
    }
    json!({ "jsonrpc": "2.0", "method": "notifications/progress", "params": params })
}

/// The revision to answer `initialize` with.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_PROTOCOL_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(LATEST_PROTOCOL_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_classified() {
        assert!(matches!(
            parse_message(r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#),
            Ok(Incoming::Request {
                id: Value::String(_),
                ..
            })
        ));
        assert!(matches!(
            parse_message(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert_eq!(
            parse_message(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Ok(Incoming::Response)
        );
        let code = |text: &str| parse_message(text).unwrap_err()["error"]["code"].clone();
        assert_eq!(code("{not json"), PARSE_ERROR);
        assert_eq!(
            code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#),
            INVALID_REQUEST
        );
    }

    #[test]
    fn versions_negotiate_down_or_to_the_latest() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("1999-01-01")), LATEST_PROTOCOL_VERSION);
        assert_eq!(negotiate(None), LATEST_PROTOCOL_VERSION);
    }
}
