//! The MCP front: protocol handling over a jsonrpsee [`RpcModule`], and its two transports,
//! stdio ([`stdio::serve`]) and Streamable HTTP ([`http::serve`]), plus `GET /health`.
//!
//! ```text
//! stdio lines / HTTP POST /mcp ──▶ McpServer::handle (framing, sessions, cancellation,
//!                                      progress) ──▶ RpcModule method ──▶ tools::Tool
//! ```
//!
//! The transports own framing and sessions; [`McpServer`] owns everything both share: message
//! classification (`-32700`, `-32600`, notifications), the two eras of the protocol, the
//! "initialize first" rule of the first, the requests in flight that `notifications/cancelled`
//! stops, and the progress sink a `progressToken` asks for. The MCP layer knows JSON-RPC and
//! the tool registry, nothing of AWS.
//!
//! # Semantics
//! - Notifications are never answered; responses from the client are ignored.
//! - **Dual era**, per request: a request whose `params._meta` carries
//!   `io.modelcontextprotocol/protocolVersion` is a 2026-07-28 request. It needs no
//!   `initialize`; its envelope is checked (`-32602`, `-32022` for a version not served); it may
//!   call the 2026 methods (`server/discover` among them; `ping` is not one); its result carries
//!   `resultType`, the server's identity in `_meta`, and for lists a cache hint (`ttlMs`,
//!   `cacheScope`). Any other request is of the 2025 handshake era: before `initialize` only
//!   `ping` is served, and `server/discover` is `-32601`, so a client probing with it falls back
//!   to `initialize` at once. Both eras are served on the same stdio and `/mcp` endpoints.
//! - A cancelled `tools/call` stops its scan and gets no response over stdio; over HTTP its
//!   stream ends (SSE) or it gets error `-32800` (JSON), since an HTTP request must end.
//! - Shutdown cancels every request in flight.

pub mod http;
mod module;
pub mod protocol;
mod session;
pub mod stdio;

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use jsonrpsee::types::{Id, Params};
use jsonrpsee::{ConnectionId, Extensions, MethodCallback, RpcModule};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::tools::{CallContext, ProgressSink, ToolEnv, ToolRegistry};
pub use module::CallState;
use protocol::{INTERNAL_ERROR, INVALID_REQUEST, Incoming, METHOD_NOT_FOUND, error_response};
pub use session::Session;

/// What method handlers share.
pub struct ServerState {
    /// The tools.
    pub registry: ToolRegistry,
    /// Engine, policy and source the tools use.
    pub env: ToolEnv,
    /// `initialize`'s `instructions`.
    pub instructions: String,
}

/// The protocol core shared by the transports. Cheap to clone.
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
}

struct Inner {
    module: RpcModule<ServerState>,
    state: Arc<ServerState>,
    shutdown: CancellationToken,
    started: Instant,
}

/// Where messages to the client go while a request runs (progress notifications).
pub type Outbound = mpsc::UnboundedSender<Value>;

impl McpServer {
    /// A server offering `registry`'s tools over `env`; its instructions come from the tools'
    /// own hints.
    pub fn new(env: ToolEnv, registry: ToolRegistry) -> McpServer {
        let state = Arc::new(ServerState {
            instructions: registry.instructions(),
            registry,
            env,
        });
        McpServer {
            inner: Arc::new(Inner {
                module: module::build(state.clone()),
                state,
                shutdown: CancellationToken::new(),
                started: Instant::now(),
            }),
        }
    }

    /// The shared state (tools, engine).
    pub fn state(&self) -> &ServerState {
        &self.inner.state
    }

    /// Seconds since the server started.
    pub fn uptime_seconds(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// A new session whose requests stop when the server shuts down.
    pub fn new_session(&self, id: String) -> Arc<Session> {
        Arc::new(Session::new(id, &self.inner.shutdown))
    }

    /// Forgets what a session used of its budgets (it ended).
    pub fn end_session(&self, id: &str) {
        self.inner.state.env.gate.end_session(id);
    }

    /// Cancels every request of every session.
    pub fn shut_down(&self) {
        self.inner.shutdown.cancel();
    }

    /// Handles one classified message. Returns the response to send, if any: `None` for
    /// notifications, client responses and cancelled requests.
    pub async fn handle(
        &self,
        session: &Arc<Session>,
        message: Incoming,
        outbound: Option<Outbound>,
    ) -> Option<Value> {
        match message {
            Incoming::Response => None,
            Incoming::Notification { method, params } => {
                if let Some(callback) = self.inner.module.method(&method) {
                    let state = CallState {
                        session: session.clone(),
                        call: CallContext::default(),
                    };
                    // Notifications are never answered, whatever the handler returns.
                    let _ = self.invoke(callback, params, state).await;
                }
                None
            }
            Incoming::Request { id, method, params } => {
                self.request(session, id, method, params, outbound).await
            }
        }
    }

    async fn request(
        &self,
        session: &Arc<Session>,
        id: Value,
        method: String,
        params: Option<Value>,
        outbound: Option<Outbound>,
    ) -> Option<Value> {
        let Some(callback) = self
            .inner
            .module
            .method(&method)
            .filter(|_| !method.starts_with("notifications/"))
        else {
            return Some(error_response(
                &id,
                METHOD_NOT_FOUND,
                &format!(
                    "method not found: '{}'",
                    crate::domain::text::show(&crate::domain::text::truncate(&method, 100))
                ),
            ));
        };
        // `initialize` is always the handshake era's, whatever its `_meta`.
        let modern = method != "initialize" && protocol::is_modern(params.as_ref());
        if modern {
            if let Err(error) = protocol::check_envelope(params.as_ref()) {
                return Some(error.response(&id));
            }
            if !protocol::MODERN_METHODS.contains(&method.as_str()) {
                return Some(error_response(
                    &id,
                    METHOD_NOT_FOUND,
                    &format!("method not found: '{method}' is not part of the 2026-07-28 revision"),
                ));
            }
        } else if method == "server/discover" {
            return Some(error_response(
                &id,
                METHOD_NOT_FOUND,
                "method not found: 'server/discover' belongs to the 2026-07-28 revision (send the request envelope in params._meta), or send 'initialize'",
            ));
        } else if !session.is_initialized() && method != "initialize" && method != "ping" {
            return Some(error_response(
                &id,
                INVALID_REQUEST,
                &format!(
                    "'{method}' before 'initialize': send 'initialize' first, or the 2026-07-28 envelope in params._meta"
                ),
            ));
        }
        let notifier = match (progress_token(&method, params.as_ref()), outbound) {
            (Some(token), Some(out)) => Some(Arc::new(ProgressNotifier::new(token, out))),
            _ => None,
        };
        let progress = notifier.clone().map(|n| n as Arc<dyn ProgressSink>);
        let cancel = session.begin(&id);
        let state = CallState {
            session: session.clone(),
            call: CallContext::new(progress, cancel.clone()),
        };
        let answer = self.invoke(callback, params, state).await;
        if let Some(notifier) = notifier {
            // No progress may follow the response.
            notifier.finish();
        }
        session.end(&id);
        if cancel.is_cancelled() && method == "tools/call" {
            return None;
        }
        Some(match answer {
            Ok(body) => match body.get("error") {
                Some(error) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error }),
                None if modern => protocol::result_response(
                    &id,
                    protocol::modern_result(
                        &method,
                        body.get("result").cloned()?,
                        &module::server_info(),
                    ),
                ),
                None => protocol::result_response(&id, body.get("result").cloned()?),
            },
            Err(message) => error_response(&id, INTERNAL_ERROR, &message),
        })
    }

    /// Runs a method's callback with the call's state in its extensions. The id handed to
    /// jsonrpsee is a placeholder: the caller re-attaches the client's id, whatever its type.
    async fn invoke(
        &self,
        callback: &MethodCallback,
        params: Option<Value>,
        state: CallState,
    ) -> Result<Value, String> {
        let text = params.map(|p| p.to_string());
        let params = Params::new(text.as_deref()).into_owned();
        let mut extensions = Extensions::new();
        extensions.insert(state);
        let response = match callback {
            MethodCallback::Async(cb) => {
                cb(
                    Id::Number(0),
                    params,
                    ConnectionId(0),
                    usize::MAX,
                    extensions,
                )
                .await
            }
            MethodCallback::Sync(cb) => cb(Id::Number(0), params, usize::MAX, extensions),
            _ => return Err("subscriptions are not part of MCP".to_string()),
        };
        serde_json::from_str(response.as_json().get()).map_err(|e| e.to_string())
    }
}

/// The `progressToken` of a `tools/call`, if the client gave one.
fn progress_token(method: &str, params: Option<&Value>) -> Option<Value> {
    if method != "tools/call" {
        return None;
    }
    let token = params?.get("_meta")?.get("progressToken")?;
    (token.is_string() || token.is_number()).then(|| token.clone())
}

/// Sends `notifications/progress` for one request, only when the value grows (the spec wants
/// it to increase with each notification).
struct ProgressNotifier {
    token: Value,
    out: Outbound,
    last: Mutex<Option<f64>>,
}

impl ProgressNotifier {
    fn new(token: Value, out: Outbound) -> ProgressNotifier {
        ProgressNotifier {
            token,
            out,
            last: Mutex::new(None),
        }
    }
}

impl ProgressNotifier {
    /// Refuses every later report. Taking the lock waits for a report being sent, so nothing
    /// can slip in after the response.
    fn finish(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(f64::INFINITY);
    }
}

impl ProgressSink for ProgressNotifier {
    fn report(&self, progress: f64, total: Option<f64>, message: String) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|l| progress <= l) {
            return;
        }
        *last = Some(progress);
        // A closed channel means the client went away; the call is being cancelled.
        let _ = self.out.send(protocol::progress_notification(
            &self.token,
            progress,
            total,
            &message,
        ));
    }
}
