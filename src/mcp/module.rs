//! The MCP methods, held in a jsonrpsee [`RpcModule`]: `initialize`, `ping`, `tools/list`,
//! `tools/call`, `resources/list`, `resources/read`, `resources/templates/list`, and the
//! notifications `notifications/initialized` and `notifications/cancelled`.
//!
//! Handlers get the per-call [`CallState`] (session, progress sink, cancellation) through the
//! jsonrpsee `Extensions` the transport fills in.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ServerState;
use super::protocol::{
    INTERNAL_ERROR, INVALID_PARAMS, REQUEST_CANCELLED, RESOURCE_NOT_FOUND, negotiate,
};
use super::session::Session;
use crate::store::AuditStatus;
use crate::tools::prompts::{self, PromptError};
use crate::tools::resources::{self, ResourceError};
use crate::tools::{CallContext, Content};

/// What the server offers, as `initialize` (and `server/discover`) say: only what is served.
pub fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": false },
        "resources": { "listChanged": false, "subscribe": false },
        "prompts": { "listChanged": false },
        "completions": {},
    })
}

/// Who the server is, as `initialize` and every 2026 result say.
pub fn server_info() -> Value {
    json!({
        "name": "tagguard",
        "title": "tagguard: AWS tag compliance",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// Parameters of `resources/list` and the other paginated lists.
#[derive(Deserialize, Default)]
struct ListParams {
    #[serde(default)]
    cursor: Option<String>,
}

/// Parameters of `prompts/get`.
#[derive(Deserialize)]
struct GetPromptParams {
    name: String,
    #[serde(default)]
    arguments: serde_json::Map<String, Value>,
}

/// The argument `completion/complete` completes.
#[derive(Deserialize)]
struct CompletionArgument {
    name: String,
    #[serde(default)]
    value: String,
}

/// Parameters of `completion/complete`.
#[derive(Deserialize)]
struct CompleteParams {
    #[serde(rename = "ref")]
    reference: Value,
    argument: CompletionArgument,
}

fn prompt_error(failure: PromptError) -> ErrorObjectOwned {
    error(INVALID_PARAMS, failure.0)
}

/// Parameters of `resources/read`.
#[derive(Deserialize)]
struct ReadParams {
    uri: String,
}

fn resource_error(failure: ResourceError) -> ErrorObjectOwned {
    match failure {
        ResourceError::NotFound(message) => error(RESOURCE_NOT_FOUND, message),
        ResourceError::Invalid(message) => error(INVALID_PARAMS, message),
    }
}

fn parse_or_default<T: for<'de> Deserialize<'de> + Default>(
    params: &Params<'_>,
    method: &str,
) -> Result<T, ErrorObjectOwned> {
    if params.as_str().is_none() {
        return Ok(T::default());
    }
    params
        .parse()
        .map_err(|e| error(INVALID_PARAMS, format!("{method}: {}", e.message())))
}

/// What a handler knows of the call it serves: the caller's session, and the call's context
/// (its progress sink, when the caller gave a `progressToken`, and its cancellation, by
/// `notifications/cancelled` for this request or the session's end).
#[derive(Clone)]
pub struct CallState {
    /// The caller's session.
    pub session: Arc<Session>,
    /// What the tools get.
    pub call: CallContext,
}

fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

fn call_state(ext: &Extensions) -> Result<CallState, ErrorObjectOwned> {
    ext.get::<CallState>()
        .cloned()
        .ok_or_else(|| error(INTERNAL_ERROR, "the transport did not attach a call state"))
}

/// Parameters of `tools/call`.
#[derive(Deserialize)]
struct CallToolParams {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Builds the module over `state`.
pub fn build(state: Arc<ServerState>) -> RpcModule<ServerState> {
    let mut module = RpcModule::from_arc(state);
    // Registration fails only on a duplicate name, which would be a programming error here.
    const UNIQUE: &str = "method names are unique";

    module
        .register_async_method("initialize", |params, state, ext| async move {
            let call = call_state(&ext)?;
            let requested = params
                .parse::<Value>()
                .ok()
                .and_then(|p| p.get("protocolVersion")?.as_str().map(str::to_string));
            let version = negotiate(requested.as_deref());
            call.session.initialize();
            Ok::<_, ErrorObjectOwned>(json!({
                "protocolVersion": version,
                "capabilities": capabilities(),
                "serverInfo": server_info(),
                "instructions": state.instructions,
            }))
        })
        .expect(UNIQUE);

    module
        .register_method("ping", |_, _, _| Ok::<_, ErrorObjectOwned>(json!({})))
        .expect(UNIQUE);

    // The 2026-07-28 revision's discovery: what `initialize` says, without a session.
    module
        .register_method("server/discover", |_, state, _| {
            Ok::<_, ErrorObjectOwned>(json!({
                "supportedVersions": super::protocol::MODERN_PROTOCOL_VERSIONS,
                "capabilities": capabilities(),
                "instructions": state.instructions,
            }))
        })
        .expect(UNIQUE);

    module
        .register_method("tools/list", |_, state, _| {
            Ok::<_, ErrorObjectOwned>(json!({ "tools": state.registry.descriptors() }))
        })
        .expect(UNIQUE);

    module
        .register_async_method("tools/call", |params, state, ext| async move {
            tools_call(params, state, ext).await
        })
        .expect(UNIQUE);

    module
        .register_method("resources/list", |params, state, _| {
            let request: ListParams = parse_or_default(&params, "resources/list")?;
            let (entries, next) =
                resources::list(&state.env, request.cursor.as_deref()).map_err(resource_error)?;
            let mut result = json!({ "resources": entries });
            if let Some(next) = next {
                result["nextCursor"] = json!(next);
            }
            Ok::<_, ErrorObjectOwned>(result)
        })
        .expect(UNIQUE);

    module
        .register_method("resources/templates/list", |params, _, _| {
            let _: ListParams = parse_or_default(&params, "resources/templates/list")?;
            Ok::<_, ErrorObjectOwned>(json!({ "resourceTemplates": resources::templates() }))
        })
        .expect(UNIQUE);

    module
        .register_async_method("resources/read", |params, state, _| async move {
            let request: ReadParams = params
                .parse()
                .map_err(|e| error(INVALID_PARAMS, format!("resources/read: {}", e.message())))?;
            let contents = resources::read(&state.env, &request.uri)
                .await
                .map_err(resource_error)?;
            Ok::<_, ErrorObjectOwned>(json!({ "contents": contents }))
        })
        .expect(UNIQUE);

    module
        .register_method("prompts/list", |params, _, _| {
            let _: ListParams = parse_or_default(&params, "prompts/list")?;
            Ok::<_, ErrorObjectOwned>(json!({ "prompts": prompts::list() }))
        })
        .expect(UNIQUE);

    module
        .register_method("prompts/get", |params, state, _| {
            let request: GetPromptParams = params
                .parse()
                .map_err(|e| error(INVALID_PARAMS, format!("prompts/get: {}", e.message())))?;
            prompts::get(&state.env, &request.name, &request.arguments).map_err(prompt_error)
        })
        .expect(UNIQUE);

    module
        .register_method("completion/complete", |params, state, _| {
            let request: CompleteParams = params.parse().map_err(|e| {
                error(
                    INVALID_PARAMS,
                    format!("completion/complete: {}", e.message()),
                )
            })?;
            prompts::complete(
                &state.env,
                &request.reference,
                &request.argument.name,
                &request.argument.value,
            )
            .map_err(prompt_error)
        })
        .expect(UNIQUE);

    module
        .register_method("notifications/initialized", |_, _, _| {
            Ok::<_, ErrorObjectOwned>(Value::Null)
        })
        .expect(UNIQUE);

    module
        .register_method("notifications/cancelled", |params, _, ext| {
            let call = call_state(ext)?;
            if let Some(id) = params
                .parse::<Value>()
                .ok()
                .and_then(|p| p.get("requestId").cloned())
                && call.session.cancel_request(&id)
            {
                tracing::info!(request_id = %id, "request cancelled by the client");
            }
            Ok::<_, ErrorObjectOwned>(Value::Null)
        })
        .expect(UNIQUE);

    module
}

async fn tools_call(
    params: Params<'static>,
    state: Arc<ServerState>,
    ext: Extensions,
) -> Result<Value, ErrorObjectOwned> {
    let call = call_state(&ext)?;
    let request: CallToolParams = params
        .parse()
        .map_err(|e| error(INVALID_PARAMS, format!("tools/call: {}", e.message())))?;
    let ctx = call.call.clone();
    let arguments = request.arguments.unwrap_or(Value::Null);
    // A tool that panics fails its call, not the server.
    let invocation =
        state
            .registry
            .invoke(&state.env, &call.session.id, &request.name, arguments, &ctx);
    let outcome = match AssertUnwindSafe(invocation).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => {
            return Err(error(
                INTERNAL_ERROR,
                format!("the tool '{}' failed unexpectedly", request.name),
            ));
        }
    };
    let Some(outcome) = outcome else {
        let names: Vec<&str> = state.registry.iter().map(|t| t.name()).collect();
        return Err(error(
            INVALID_PARAMS,
            format!(
                "unknown tool '{}'; the tools are: {}",
                request.name,
                names.join(", ")
            ),
        ));
    };
    let content: Vec<Value> = outcome.content.iter().map(Content::to_json).collect();
    match (outcome.status, outcome.structured) {
        (AuditStatus::Cancelled, _) => Err(error(REQUEST_CANCELLED, "the request was cancelled")),
        (AuditStatus::Success, Some(value)) => Ok(json!({
            "content": content,
            "structuredContent": value,
            "isError": false,
            "_meta": outcome.meta,
        })),
        _ => Ok(json!({
            "content": content,
            "isError": true,
            "_meta": outcome.meta,
        })),
    }
}
