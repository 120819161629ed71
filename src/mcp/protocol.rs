//! MCP and JSON-RPC wire vocabulary: protocol revisions (the 2025 handshake era and the
//! stateless 2026-07-28 revision), error codes, the 2026 request envelope, and message framing.

use serde_json::{Value, json};

/// The revision tagguard speaks natively.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Revisions tagguard can speak, newest first. A client asking for one gets it; any other gets
/// the latest, and the client decides whether to go on.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

/// The stateless revisions: no `initialize`; every request carries its version and the
/// client's capabilities in `params._meta`.
pub const MODERN_PROTOCOL_VERSIONS: &[&str] = &["2026-07-28"];

/// `_meta` key of a 2026 request's protocol version (its presence marks the request modern).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of a 2026 request's client capabilities (required).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of a 2026 request's client identity (optional).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key of the server's identity on every 2026 result.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// 2026: an HTTP header disagrees with the body (`Mcp-Method`, `Mcp-Name`,
/// `MCP-Protocol-Version`).
pub const HEADER_MISMATCH: i32 = -32020;
/// 2026: the request's protocol version is not served (`data`: supported and requested).
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;

/// Methods of the 2026-07-28 revision that tagguard serves (`ping`, `initialize` and
/// `logging/setLevel` are not part of it).
pub const MODERN_METHODS: &[&str] = &[
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

/// Whether `params` carry the 2026 envelope: `_meta` holds the protocol-version key (legacy
/// requests never do; a bare `_meta` with a `progressToken` is legacy).
pub fn is_modern(params: Option<&Value>) -> bool {
    params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .is_some_and(|meta| meta.contains_key(META_PROTOCOL_VERSION))
}

/// A JSON-RPC error: code, message and optional data.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    /// The code.
    pub code: i32,
    /// The message.
    pub message: String,
    /// The data, if any.
    pub data: Option<Value>,
}

impl WireError {
    fn new(code: i32, message: impl Into<String>) -> WireError {
        WireError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The error response to request `id`.
    pub fn response(&self, id: &Value) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        json!({ "jsonrpc": "2.0", "id": id, "error": error })
    }
}

/// Checks a 2026 request's envelope and returns its protocol version.
pub fn check_envelope(params: Option<&Value>) -> Result<String, WireError> {
    let Some(meta) = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
    else {
        return Err(WireError::new(
            INVALID_PARAMS,
            format!(
                "params._meta must be an object carrying '{META_PROTOCOL_VERSION}' and '{META_CLIENT_CAPABILITIES}'"
            ),
        ));
    };
    let missing: Vec<&str> = [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(WireError::new(
            INVALID_PARAMS,
            format!(
                "params._meta is missing the required key(s): {}",
                missing.join(", ")
            ),
        ));
    }
    let Some(version) = meta[META_PROTOCOL_VERSION].as_str() else {
        return Err(WireError::new(
            INVALID_PARAMS,
            format!("'{META_PROTOCOL_VERSION}' must be a string"),
        ));
    };
    if !meta[META_CLIENT_CAPABILITIES].is_object() {
        return Err(WireError::new(
            INVALID_PARAMS,
            format!("'{META_CLIENT_CAPABILITIES}' must be an object"),
        ));
    }
    if let Some(info) = meta.get(META_CLIENT_INFO)
        && !info.is_object()
    {
        return Err(WireError::new(
            INVALID_PARAMS,
            format!("'{META_CLIENT_INFO}' must be an object"),
        ));
    }
    if !MODERN_PROTOCOL_VERSIONS.contains(&version) {
        return Err(unsupported_version(version));
    }
    Ok(version.to_string())
}

/// `-32022` for a version tagguard does not serve, naming those it does.
pub fn unsupported_version(requested: &str) -> WireError {
    let supported: Vec<&str> = MODERN_PROTOCOL_VERSIONS
        .iter()
        .chain(SUPPORTED_PROTOCOL_VERSIONS)
        .copied()
        .collect();
    WireError {
        code: UNSUPPORTED_PROTOCOL_VERSION,
        message: "Unsupported protocol version".to_string(),
        data: Some(json!({ "supported": supported, "requested": requested })),
    }
}

/// The client's name from a 2026 envelope, if it gave one (for per-client guardrails over a
/// stateless transport), at most 64 characters.
pub fn client_name(params: Option<&Value>) -> Option<String> {
    let name = params?
        .get("_meta")?
        .get(META_CLIENT_INFO)?
        .get("name")?
        .as_str()?;
    Some(name.chars().take(64).collect())
}

/// The HTTP status of a 2026 error response (the transport's table: request errors 400, an
/// unknown method 404, the rest 200).
pub fn modern_http_status(code: i32) -> u16 {
    match code {
        PARSE_ERROR
        | INVALID_REQUEST
        | INVALID_PARAMS
        | HEADER_MISMATCH
        | UNSUPPORTED_PROTOCOL_VERSION
        | -32021 => 400,
        METHOD_NOT_FOUND => 404,
        _ => 200,
    }
}

/// How long a 2026 client may cache the result of `method`, in milliseconds, and with whom it
/// may share it: what does not change while the server runs (the tools, prompts, templates,
/// the policy, kept scans and reports) for an hour; the list of resources, which grows with
/// every scan, not at all.
pub fn cache_hint(method: &str) -> Option<(u64, &'static str)> {
    const HOUR_MS: u64 = 3_600_000;
    match method {
        "server/discover" | "tools/list" | "prompts/list" | "resources/templates/list" => {
            Some((HOUR_MS, "public"))
        }
        "resources/read" => Some((HOUR_MS, "private")),
        "resources/list" => Some((0, "private")),
        _ => None,
    }
}

/// Makes a result a 2026 result: `resultType`, the server's identity in `_meta`, and the
/// cache hint of cacheable methods.
pub fn modern_result(method: &str, mut result: Value, server_info: &Value) -> Value {
    let Some(object) = result.as_object_mut() else {
        return result;
    };
    object.insert("resultType".to_string(), json!("complete"));
    let meta = object
        .entry("_meta".to_string())
        .or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_SERVER_INFO.to_string(), server_info.clone());
    }
    if let Some((ttl, scope)) = cache_hint(method) {
        object.insert("ttlMs".to_string(), json!(ttl));
        object.insert("cacheScope".to_string(), json!(scope));
    }
    result
}

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
