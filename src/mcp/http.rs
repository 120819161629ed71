//! The Streamable HTTP transport: `POST /mcp` (JSON, or SSE when a call sends progress),
//! `DELETE /mcp` to end a session, and `GET /health`.
//!
//! Rules enforced here (MCP 2025-11-25, "Streamable HTTP"): notifications get 202 with no
//! body; sessions by `Mcp-Session-Id` (missing 400, unknown 404); a bad
//! `MCP-Protocol-Version` is 400; a foreign `Origin`, or a foreign `Host` on a loopback bind,
//! is 403 (DNS rebinding); batches are refused; bodies are size-limited; a bearer token, when
//! configured, is required on `/mcp`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming as IncomingBody};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::protocol::{
    HEADER_MISMATCH, INVALID_REQUEST, Incoming, MODERN_PROTOCOL_VERSIONS, PARSE_ERROR,
    REQUEST_CANCELLED, SUPPORTED_PROTOCOL_VERSIONS, WireError, check_envelope, client_name,
    error_response, is_modern, modern_http_status, parse_message, unsupported_version,
};
use super::{McpServer, Session};

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";
/// The health endpoint's path.
pub const HEALTH_PATH: &str = "/health";

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// 2026-07-28: the request's method, for routing without reading the body.
const METHOD_HEADER: &str = "mcp-method";
/// 2026-07-28: the tool, prompt or resource a request names.
const NAME_HEADER: &str = "mcp-name";

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How the HTTP front behaves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Bearer token required on `/mcp`; `None` only on a loopback address.
    pub auth_token: Option<String>,
    /// Browser origins allowed besides loopback ones.
    pub allowed_origins: Vec<String>,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Sessions idle longer than this are forgotten.
    pub session_idle: Duration,
    /// Most sessions at once.
    pub max_sessions: usize,
}

impl From<&crate::config::ServerConfig> for HttpOptions {
    fn from(config: &crate::config::ServerConfig) -> Self {
        HttpOptions {
            auth_token: config.auth_token.clone(),
            allowed_origins: config.allowed_origins.clone(),
            max_request_bytes: config.max_request_bytes,
            session_idle: Duration::from_secs(config.session_idle_minutes.saturating_mul(60)),
            max_sessions: config.max_sessions.max(1),
        }
    }
}

/// What `GET /health` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The server answered 200 with `"status":"ok"`.
    pub healthy: bool,
    /// The answer's body.
    pub body: String,
}

/// Asks a server for `GET /health` over a bare HTTP/1.1 connection, within `deadline` (what
/// `tagguard healthcheck` does in a container image that has no curl).
pub async fn probe_health(addr: SocketAddr, deadline: Duration) -> std::io::Result<Health> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", deadline.as_secs()),
            )
        })??;
    Ok(Health {
        healthy: answer.starts_with("HTTP/1.1 200") && answer.contains("\"status\":\"ok\""),
        body: answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    })
}

/// Why the HTTP front cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A non-loopback address without a token would open the estate's data to the network.
    #[error(
        "refusing to listen on {0} without a token: set TAGGUARD_AUTH_TOKEN (or server.auth_token in the config), or bind to 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    /// The listener failed.
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
}

struct Front {
    server: McpServer,
    options: HttpOptions,
    sessions: DashMap<String, Arc<Session>>,
    loopback: bool,
}

/// Checks that `options` may serve on `addr`: a non-loopback address needs a token.
pub fn check_bind(addr: SocketAddr, options: &HttpOptions) -> Result<(), HttpError> {
    if !addr.ip().is_loopback() && options.auth_token.as_deref().is_none_or(str::is_empty) {
        return Err(HttpError::TokenRequired(addr));
    }
    Ok(())
}

/// Serves on `listener` until `shutdown` resolves; then cancels calls in flight and closes
/// connections (waiting a few seconds for responses under way).
pub async fn serve(
    server: McpServer,
    listener: TcpListener,
    options: HttpOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HttpError> {
    let local = listener.local_addr()?;
    check_bind(local, &options)?;
    let front = Arc::new(Front {
        server: server.clone(),
        options,
        sessions: DashMap::new(),
        loopback: local.ip().is_loopback(),
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Running out of file descriptors is transient; do not spin on it.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let front = front.clone();
        let service = service_fn(move |request| {
            let front = front.clone();
            async move { Ok::<_, Infallible>(front.route(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client hanging up mid-request is its business, not an error of ours.
            let _ = connection.await;
        });
    }
    server.shut_down();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::warn!("connections still open after 5 s; closing them");
        }
    }
    Ok(())
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    if !content_type.is_empty() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("content types are ASCII constants"),
        );
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    full(status, "application/json", body.to_string())
}

/// An HTTP error carrying a JSON-RPC error body, so that clients show the reason.
fn rpc_error(status: StatusCode, code: i32, message: &str) -> Response<Body> {
    json_response(status, &error_response(&Value::Null, code, message))
}

fn empty(status: StatusCode) -> Response<Body> {
    full(status, "", Bytes::new())
}

/// The host part of a `Host` header or an origin's authority, without port or brackets.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn is_loopback_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1") || host.ends_with(".localhost")
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut differ = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        differ |= usize::from(given.get(i).copied().unwrap_or(0) ^ e);
    }
    differ == 0
}

impl Front {
    async fn route(self: Arc<Self>, request: Request<IncomingBody>) -> Response<Body> {
        let path = request.uri().path();
        if path == HEALTH_PATH && request.method() == Method::GET {
            return self.health().await;
        }
        if path != MCP_PATH {
            return empty(StatusCode::NOT_FOUND);
        }
        if let Some(refusal) = self.check_origin_and_host(request.headers()) {
            return refusal;
        }
        if let Some(refusal) = self.check_auth(request.headers()) {
            return refusal;
        }
        match *request.method() {
            Method::POST => self.post(request).await,
            // The 2026 revision has no sessions to end.
            Method::DELETE if !is_legacy_request(request.headers()) => {
                let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                response
            }
            Method::DELETE => self.delete(request.headers()),
            _ => {
                let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
                response
            }
        }
    }

    async fn health(&self) -> Response<Body> {
        let state = self.server.state();
        let tools: Vec<&str> = state.registry.iter().map(|t| t.name()).collect();
        // A read transaction never waits for the writer (MVCC); the deadline guards against a
        // saturated blocking pool, so health answers fast whatever happens.
        let store = match state.env.store() {
            None => json!({ "state": "off" }),
            Some(store) => {
                match tokio::time::timeout(Duration::from_millis(50), store.status()).await {
                    Ok(Ok(status)) => json!({
                        "state": "ok",
                        "file": status.file,
                        "schema_version": status.schema_version,
                        "scans": status.scans,
                    }),
                    Ok(Err(error)) => json!({ "state": "error", "error": error.to_string() }),
                    Err(_) => json!({ "state": "busy" }),
                }
            }
        };
        // The engine answers from its supervisor's mailbox; one that does not answer in time
        // is reported as down, and so is the server.
        let engine = state.env.scans.engine().status().await;
        let source = state.env.source();
        // What billing last answered (asked at start and by every cost question: a health
        // check never makes a billed request itself).
        let cost = match &state.env.cost {
            None => json!({ "state": "off", "detail": "this source has no billing data" }),
            Some(cost) => serde_json::to_value(cost.health()).unwrap_or_default(),
        };
        json_response(
            if engine.running {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            &json!({
                "status": if engine.running { "ok" } else { "engine_down" },
                "version": env!("CARGO_PKG_VERSION"),
                "cloud_providers": source.cloud_provider().into_iter().collect::<Vec<_>>(),
                "source": source.name(),
                "policy_version": state.env.policy().version(),
                "tools": tools,
                "sessions": self.sessions.len(),
                "uptime_seconds": self.server.uptime_seconds(),
                "engine": {
                    "state": if engine.running { "running" } else { "stopped" },
                    "scans": engine.scans,
                    "fetchers": engine.fetchers,
                    "shards_waiting": engine.shards_waiting,
                },
                "store": store,
                "cost": cost,
            }),
        )
    }

    fn check_origin_and_host(&self, headers: &HeaderMap) -> Option<Response<Body>> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let allowed = self.options.allowed_origins.iter().any(|o| o == origin)
                || origin.split_once("://").is_some_and(|(scheme, authority)| {
                    matches!(scheme, "http" | "https") && is_loopback_host(host_name(authority))
                });
            if !allowed {
                return Some(rpc_error(
                    StatusCode::FORBIDDEN,
                    INVALID_REQUEST,
                    "origin not allowed (add it to server.allowed_origins or TAGGUARD_ALLOWED_ORIGINS)",
                ));
            }
        }
        // On a loopback bind, a foreign Host is a DNS-rebinding attempt from a browser.
        if self.loopback
            && let Some(host) = headers.get(header::HOST)
            && !is_loopback_host(host_name(host.to_str().unwrap_or("")))
        {
            return Some(rpc_error(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                "host not allowed on a loopback server",
            ));
        }
        None
    }

    fn check_auth(&self, headers: &HeaderMap) -> Option<Response<Body>> {
        let expected = self
            .options
            .auth_token
            .as_deref()
            .filter(|t| !t.is_empty())?;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if same_secret(given.as_bytes(), expected.as_bytes()) {
            return None;
        }
        let mut response = rpc_error(
            StatusCode::UNAUTHORIZED,
            INVALID_REQUEST,
            "missing or wrong bearer token",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tagguard\""),
        );
        Some(response)
    }

    /// The session a request names: 400 without one, 404 for an unknown or ended one.
    fn session_of(&self, headers: &HeaderMap) -> Result<Arc<Session>, Box<Response<Body>>> {
        let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            return Err(Box::new(rpc_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "missing Mcp-Session-Id header: send 'initialize' first",
            )));
        };
        match self.sessions.get(id) {
            Some(session) => {
                session.touch();
                Ok(session.clone())
            }
            None => Err(Box::new(rpc_error(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "unknown or expired session: send 'initialize' again",
            ))),
        }
    }

    fn delete(&self, headers: &HeaderMap) -> Response<Body> {
        match self.session_of(headers) {
            Err(refusal) => *refusal,
            Ok(session) => {
                self.sessions.remove(&session.id);
                self.server.end_session(&session.id);
                session.close();
                empty(StatusCode::OK)
            }
        }
    }

    async fn post(&self, request: Request<IncomingBody>) -> Response<Body> {
        let headers = request.headers().clone();
        let limit = self.options.max_request_bytes;
        let body = match Limited::new(request.into_body(), limit).collect().await {
            Ok(body) => body.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return rpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    PARSE_ERROR,
                    &format!("parse error: request body larger than {limit} bytes"),
                );
            }
            Err(_) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    PARSE_ERROR,
                    "parse error: the request body could not be read to its end",
                );
            }
        };
        let text = match std::str::from_utf8(&body) {
            Ok(text) => text,
            Err(_) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    PARSE_ERROR,
                    "parse error: the body is not UTF-8",
                );
            }
        };
        let message = match parse_message(text) {
            Ok(message) => message,
            Err(error) => return json_response(StatusCode::BAD_REQUEST, &error),
        };
        // The era: the version header says it; without one, a body in the 2026 envelope is
        // a 2026 request (whose missing header is then a mismatch).
        match headers
            .get(VERSION_HEADER)
            .map(|v| v.to_str().unwrap_or(""))
        {
            Some(version) if SUPPORTED_PROTOCOL_VERSIONS.contains(&version) => {}
            Some(version) if MODERN_PROTOCOL_VERSIONS.contains(&version) => {
                return self.post_modern(&headers, message).await;
            }
            Some(version) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &unsupported_version(version).response(&Value::Null),
                );
            }
            None if matches!(&message, Incoming::Request { method, params, .. }
                if method != "initialize" && is_modern(params.as_ref())) =>
            {
                return self.post_modern(&headers, message).await;
            }
            None => {}
        }

        let is_initialize =
            matches!(&message, Incoming::Request { method, .. } if method == "initialize");
        let session = if is_initialize {
            match self.open_session() {
                Ok(session) => session,
                Err(refusal) => return *refusal,
            }
        } else {
            match self.session_of(&headers) {
                Ok(session) => session,
                Err(refusal) => return *refusal,
            }
        };

        let wants_stream = accepts_event_stream(&headers) && asks_progress(&message);
        let mut response = match message {
            Incoming::Request { .. } if wants_stream => self.stream(session.clone(), message),
            Incoming::Request { ref id, .. } => {
                let id = id.clone();
                match self.server.handle(&session, message, None).await {
                    Some(answer) => json_response(StatusCode::OK, &answer),
                    None => json_response(
                        StatusCode::OK,
                        &error_response(&id, REQUEST_CANCELLED, "the request was cancelled"),
                    ),
                }
            }
            notification_or_response => {
                self.server
                    .handle(&session, notification_or_response, None)
                    .await;
                empty(StatusCode::ACCEPTED)
            }
        };
        if is_initialize {
            if let Ok(value) = HeaderValue::from_str(&session.id) {
                response.headers_mut().insert(SESSION_HEADER, value);
            }
            self.sessions.insert(session.id.clone(), session);
        }
        response
    }

    /// A 2026-07-28 request: no session; the envelope and the routing headers are checked
    /// against the body; errors have the revision's HTTP statuses.
    async fn post_modern(&self, headers: &HeaderMap, message: Incoming) -> Response<Body> {
        let Incoming::Request { id, method, params } = message else {
            // Cancellation is the client closing its request; notifications carry nothing else.
            return empty(StatusCode::ACCEPTED);
        };
        let refuse =
            |error: WireError| json_response(modern_status(error.code), &error.response(&id));
        let version = match check_envelope(params.as_ref()) {
            Ok(version) => version,
            Err(error) => return refuse(error),
        };
        let header = |name: &str| -> Result<Option<String>, WireError> {
            let mut values = headers.get_all(name).iter();
            let first = values.next();
            if values.next().is_some() {
                return Err(mismatch(format!("{name} header appears more than once")));
            }
            Ok(first.map(|v| decode_header_value(v.to_str().unwrap_or(""))))
        };
        let checks = (|| {
            if header(VERSION_HEADER)?.as_deref() != Some(version.as_str()) {
                return Err(mismatch(format!(
                    "{VERSION_HEADER} header does not match the request envelope's protocol version"
                )));
            }
            if header(METHOD_HEADER)?.as_deref() != Some(method.as_str()) {
                return Err(mismatch(format!(
                    "{METHOD_HEADER} header does not match the request body's method"
                )));
            }
            let named = match method.as_str() {
                "tools/call" | "prompts/get" => Some("name"),
                "resources/read" => Some("uri"),
                _ => None,
            };
            if let Some(field) = named
                && let Some(value) = params
                    .as_ref()
                    .and_then(|p| p.get(field))
                    .and_then(Value::as_str)
                && header(NAME_HEADER)?.as_deref() != Some(value)
            {
                return Err(mismatch(format!(
                    "{NAME_HEADER} header does not match the request body's '{field}' parameter"
                )));
            }
            Ok(())
        })();
        if let Err(error) = checks {
            return refuse(error);
        }
        // Stateless: each request is its own session; guardrails count per client name.
        let client = client_name(params.as_ref()).unwrap_or_else(|| "anonymous".to_string());
        let session = self.server.new_session(format!("http-2026:{client}"));
        let message = Incoming::Request {
            id: id.clone(),
            method,
            params,
        };
        if accepts_event_stream(headers) && asks_progress(&message) {
            return self.stream(session, message);
        }
        match self.server.handle(&session, message, None).await {
            Some(answer) => {
                let status = answer["error"]["code"]
                    .as_i64()
                    .map_or(StatusCode::OK, |code| modern_status(code as i32));
                json_response(status, &answer)
            }
            None => json_response(
                StatusCode::OK,
                &error_response(&id, REQUEST_CANCELLED, "the request was cancelled"),
            ),
        }
    }

    /// A new session, after forgetting idle ones; 503 when there are too many.
    fn open_session(&self) -> Result<Arc<Session>, Box<Response<Body>>> {
        let idle = self.options.session_idle;
        self.sessions.retain(|_, session| {
            let keep = session.idle_for() < idle;
            if !keep {
                session.close();
                self.server.end_session(&session.id);
            }
            keep
        });
        if self.sessions.len() >= self.options.max_sessions {
            return Err(Box::new(rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                INVALID_REQUEST,
                "too many sessions: end unused ones with DELETE /mcp",
            )));
        }
        // Visible ASCII only, as the spec requires: 32 hex digits.
        let id = uuid::Uuid::new_v4().simple().to_string();
        Ok(self.server.new_session(id))
    }

    /// Answers a request as an SSE stream: progress notifications, then the response. If the
    /// client goes away, the call is cancelled.
    fn stream(&self, session: Arc<Session>, message: Incoming) -> Response<Body> {
        let (out_tx, out_rx) = mpsc::unbounded_channel::<Value>();
        let server = self.server.clone();
        let id = match &message {
            Incoming::Request { id, .. } => id.clone(),
            _ => Value::Null,
        };
        let final_tx = out_tx.clone();
        tokio::spawn(async move {
            let watcher_session = session.clone();
            let watched_id = id.clone();
            let closed_tx = final_tx.clone();
            // The body's receiver drops when the client disconnects: cancel the call then.
            let watcher = tokio::spawn(async move {
                closed_tx.closed().await;
                watcher_session.cancel_request(&watched_id);
            });
            if let Some(answer) = server.handle(&session, message, Some(out_tx)).await {
                let _ = final_tx.send(answer);
            }
            watcher.abort();
        });
        let events = futures::stream::unfold(out_rx, |mut rx| async move {
            let message = rx.recv().await?;
            let event = format!("event: message\ndata: {message}\n\n");
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(event))), rx))
        });
        let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(events.boxed())));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

/// The HTTP status of a 2026 error response with JSON-RPC `code`.
fn modern_status(code: i32) -> StatusCode {
    StatusCode::from_u16(modern_http_status(code)).expect("the table holds valid statuses")
}

/// Whether a request is of the 2025 handshake era by its version header (absent: it is).
fn is_legacy_request(headers: &HeaderMap) -> bool {
    headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| SUPPORTED_PROTOCOL_VERSIONS.contains(&v))
}

fn mismatch(message: String) -> WireError {
    WireError {
        code: HEADER_MISMATCH,
        message,
        data: None,
    }
}

/// A header value as sent: plain, or `=?base64?…?=` for values HTTP headers cannot carry.
fn decode_header_value(value: &str) -> String {
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return value.to_string();
    };
    let digit = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut bytes = Vec::with_capacity(encoded.len() * 3 / 4);
    for c in encoded.bytes().filter(|c| *c != b'=') {
        let Some(d) = digit(c) else {
            // Not base64 after all: compared as written, it will not match.
            return value.to_string();
        };
        bits = (bits << 6) | u32::from(d);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(bytes).unwrap_or_else(|_| value.to_string())
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

fn asks_progress(message: &Incoming) -> bool {
    matches!(message, Incoming::Request { method, params: Some(params), .. }
        if method == "tools/call" && params.get("_meta").and_then(|m| m.get("progressToken")).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_without_ports() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert!(is_loopback_host("localhost") && !is_loopback_host("evil.example"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn a_public_bind_needs_a_token() {
        let options = HttpOptions {
            auth_token: None,
            allowed_origins: Vec::new(),
            max_request_bytes: 1024,
            session_idle: Duration::from_secs(60),
            max_sessions: 10,
        };
        assert!(check_bind("127.0.0.1:1".parse().unwrap(), &options).is_ok());
        assert!(check_bind("0.0.0.0:1".parse().unwrap(), &options).is_err());
        let with_token = HttpOptions {
            auth_token: Some("t".into()),
            ..options
        };
        assert!(check_bind("0.0.0.0:1".parse().unwrap(), &with_token).is_ok());
    }
}
