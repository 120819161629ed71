//! The MCP tools: one file per tool, and the registry the MCP layer serves them from.
//!
//! A tool is a [`TypedTool`]: a parameter type and an output type (both generate their JSON
//! Schema with schemars, so the schema a client sees is the type the code reads) and an async
//! `run`. The blanket [`Tool`] impl turns it into the untyped form the MCP layer calls. Tools
//! reach the engine only through [`ToolEnv`] (an [`EngineHandle`], the policy and the source).
//!
//! **Adding a tool** is one file here plus one line in [`ToolRegistry::standard`].

mod cache;
mod calls;
mod check_tag_compliance;
mod find_untagged_resources;
mod get_tagging_policy;
mod get_violation_history;
mod validate_resource_tags;
mod views;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use schemars::generate::Contract;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::domain::{ScanResult, ScanScope, ScopeFieldNames, SeverityFilter, parse_scope};
use crate::engine::{EngineError, EngineHandle, ScanRequest};
use crate::policy::Policy;
use crate::source::ResourceSource;
use crate::store::Store;

pub use cache::{CacheInfo, ScanCache, cache_key};
pub use calls::{CallGate, CallOutcome, Guardrails};
pub use check_tag_compliance::CheckTagCompliance;
pub use find_untagged_resources::FindUntaggedResources;
pub use get_tagging_policy::GetTaggingPolicy;
pub use get_violation_history::GetViolationHistory;
pub use validate_resource_tags::ValidateResourceTags;

/// What every tool works with: the engine, the policy and the source the server was started
/// on, the store, the result cache and the guardrails' counters.
#[derive(Clone)]
pub struct ToolEnv {
    /// The scan engine.
    pub engine: EngineHandle,
    /// The policy in effect.
    pub policy: Arc<Policy>,
    /// Where resources come from.
    pub source: Arc<dyn ResourceSource>,
    /// What a call covers when it does not narrow the scan itself (the regions and accounts
    /// `tagguard serve` was started with); a call's own lists replace these.
    pub default_scope: ScanScope,
    /// Where scans are recorded and history is read; `None` keeps nothing.
    pub store: Option<Store>,
    /// Recent scan results by query.
    pub cache: Arc<ScanCache>,
    /// Per-session budgets and loop detection.
    pub gate: Arc<CallGate>,
}

/// How long a cached scan answers repeated questions unless configured otherwise.
pub const DEFAULT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(300);

impl ToolEnv {
    /// An environment with no store, the default cache TTL and the default guardrails,
    /// covering everything the source has.
    pub fn new(
        engine: EngineHandle,
        policy: Arc<Policy>,
        source: Arc<dyn ResourceSource>,
    ) -> ToolEnv {
        ToolEnv {
            engine,
            policy,
            source,
            default_scope: ScanScope::default(),
            store: None,
            cache: Arc::new(ScanCache::new(DEFAULT_CACHE_TTL, None)),
            gate: Arc::new(CallGate::new(Guardrails::default())),
        }
    }

    /// Records scans and audit records in `store`, and keeps the cache there too.
    pub fn with_store(mut self, store: Store, cache_ttl: std::time::Duration) -> ToolEnv {
        self.cache = Arc::new(ScanCache::new(cache_ttl, Some(store.clone())));
        self.store = Some(store);
        self
    }

    /// Sets the cache TTL (zero: no cache), keeping the store if there is one.
    pub fn with_cache_ttl(mut self, ttl: std::time::Duration) -> ToolEnv {
        self.cache = Arc::new(ScanCache::new(ttl, self.store.clone()));
        self
    }

    /// Covers `scope` when a call does not narrow it itself.
    pub fn with_default_scope(mut self, scope: ScanScope) -> ToolEnv {
        self.default_scope = scope;
        self
    }

    /// Enforces `limits`.
    pub fn with_guardrails(mut self, limits: Guardrails) -> ToolEnv {
        self.gate = Arc::new(CallGate::new(limits));
        self
    }
}

/// Receives a tool's progress: `progress` grows, `total` when known, and a short message.
pub trait ProgressSink: Send + Sync {
    /// Reports progress; a sink may drop updates that do not grow.
    fn report(&self, progress: f64, total: Option<f64>, message: String);
}

/// Per-call context from the MCP layer: where progress goes and when to stop.
#[derive(Clone, Default)]
pub struct CallContext {
    /// Set when the client asked for progress (`_meta.progressToken`).
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Cancelled when the client cancels the request or the server shuts down.
    pub cancel: CancellationToken,
}

/// Why a tool call produced no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The arguments are wrong; the message says what to change.
    #[error("invalid arguments: {0}")]
    InvalidInput(String),
    /// The tool ran and failed (the source could not be read, say).
    #[error("{0}")]
    Failed(String),
    /// The client cancelled the call (or the server is stopping).
    #[error("the call was cancelled")]
    Cancelled,
}

/// Hints about a tool's behaviour, as MCP `annotations`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// A person-readable title.
    pub title: &'static str,
    /// The tool changes nothing.
    pub read_only_hint: bool,
    /// The tool may destroy something (never, for tagguard).
    pub destructive_hint: bool,
    /// Calling twice with the same arguments has no further effect.
    pub idempotent_hint: bool,
    /// The tool talks to the outside world (AWS).
    pub open_world_hint: bool,
}

/// A tool with typed parameters and output.
#[async_trait]
pub trait TypedTool: Send + Sync + 'static {
    /// Arguments, deserialised from `tools/call` (unknown fields rejected).
    type Params: DeserializeOwned + JsonSchema + Send;
    /// The structured result.
    type Output: Serialize + JsonSchema;
    /// The tool's name, as clients call it.
    const NAME: &'static str;
    /// A person-readable title.
    const TITLE: &'static str;
    /// What the tool does and when to use it, for the model.
    const DESCRIPTION: &'static str;
    /// Whether the tool reads the cloud (false for tools answered from the policy alone).
    const OPEN_WORLD: bool = true;

    /// Runs the tool.
    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError>;
}

/// A tool as the MCP layer sees it: untyped JSON in and out.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The tool's name.
    fn name(&self) -> &'static str;
    /// Its `tools/list` entry: name, title, description, schemas, annotations.
    fn descriptor(&self) -> Value;
    /// Calls the tool; arguments that do not fit the schema give [`ToolError::InvalidInput`].
    async fn call(&self, env: &ToolEnv, ctx: &CallContext, args: Value)
    -> Result<Value, ToolError>;
}

#[async_trait]
impl<T: TypedTool> Tool for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn descriptor(&self) -> Value {
        serde_json::json!({
            "name": T::NAME,
            "title": T::TITLE,
            "description": T::DESCRIPTION,
            "inputSchema": schema_of::<T::Params>(Contract::Deserialize),
            "outputSchema": schema_of::<T::Output>(Contract::Serialize),
            "annotations": ToolAnnotations {
                title: T::TITLE,
                read_only_hint: true,
                destructive_hint: false,
                idempotent_hint: true,
                open_world_hint: T::OPEN_WORLD,
            },
        })
    }

    async fn call(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        args: Value,
    ) -> Result<Value, ToolError> {
        // Absent arguments mean "all defaults".
        let args = if args.is_null() {
            Value::Object(Map::new())
        } else {
            args
        };
        let params: T::Params = serde_path_to_error::deserialize(args).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ToolError::InvalidInput(if path == "." {
                inner.to_string()
            } else {
                format!("'{path}': {inner}")
            })
        })?;
        let output = self.run(env, ctx, params).await?;
        serde_json::to_value(output).map_err(|e| ToolError::Failed(e.to_string()))
    }
}

/// The JSON Schema of `T` as read (`Deserialize`, for inputs) or as written (`Serialize`, for
/// outputs), in the form every MCP client accepts: subschemas inlined (no `$ref`), no
/// `$schema` key, and no numeric `format`s (`uint32`, `double`) that strict validators reject.
pub fn schema_of<T: JsonSchema>(contract: Contract) -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
            s.contract = contract;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    strip_formats(&mut schema);
    if let Value::Object(map) = &mut schema {
        map.remove("$defs");
    }
    schema
}

/// Removes unknown `format`s and joins wrapped descriptions, recursively.
fn strip_formats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !matches!(f, "date-time" | "date" | "email" | "uri"))
            {
                map.remove("format");
            }
            // Doc comments wrap at 100 columns; a description is one paragraph.
            if let Some(Value::String(text)) = map.get_mut("description") {
                *text = text.replace('\n', " ");
            }
            map.values_mut().for_each(strip_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_formats),
        _ => {}
    }
}

/// The tools a server offers, by name, in listing order.
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
    /// `tools/list` entries, made once: generating schemas on every listing is wasted work.
    descriptors: Vec<Value>,
    by_name: BTreeMap<&'static str, usize>,
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> ToolRegistry {
        ToolRegistry {
            tools: Vec::new(),
            descriptors: Vec::new(),
            by_name: BTreeMap::new(),
        }
    }

    /// Every tool tagguard has.
    pub fn standard() -> ToolRegistry {
        ToolRegistry::new()
            .with(CheckTagCompliance)
            .with(FindUntaggedResources)
            .with(ValidateResourceTags)
            .with(GetTaggingPolicy)
            .with(GetViolationHistory)
    }

    /// Adds a tool.
    ///
    /// # Panics
    /// When a tool of the same name is already registered: that is a programming error.
    pub fn with(mut self, tool: impl Tool + 'static) -> ToolRegistry {
        let name = tool.name();
        assert!(
            self.by_name.insert(name, self.tools.len()).is_none(),
            "tool '{name}' registered twice"
        );
        self.descriptors.push(tool.descriptor());
        self.tools.push(Arc::new(tool));
        self
    }

    /// Every tool's `tools/list` entry, in listing order.
    pub fn descriptors(&self) -> &[Value] {
        &self.descriptors
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    /// Every tool, in listing order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.iter()
    }
}

impl Default for ToolRegistry {
    fn default() -> Self {
        ToolRegistry::standard()
    }
}

/// Severity filter as tools take it.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeverityParam {
    /// Errors and warnings.
    #[default]
    All,
    /// Errors only (what makes a resource non-compliant).
    ErrorsOnly,
    /// Warnings only (case differences and the like).
    WarningsOnly,
}

impl From<SeverityParam> for SeverityFilter {
    fn from(value: SeverityParam) -> Self {
        match value {
            SeverityParam::All => SeverityFilter::All,
            SeverityParam::ErrorsOnly => SeverityFilter::ErrorsOnly,
            SeverityParam::WarningsOnly => SeverityFilter::WarningsOnly,
        }
    }
}

/// Default and largest `limit` of listed items: enough to act on, small enough for a model's
/// context (a violation is about 100 tokens).
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit` a caller may ask for.
pub const MAX_LIMIT: u32 = 1000;

/// The limit a caller asked for, checked.
pub(crate) fn limit(requested: Option<u32>) -> Result<usize, ToolError> {
    match requested {
        None => Ok(DEFAULT_LIMIT as usize),
        Some(0) => Err(ToolError::InvalidInput(
            "'limit' must be at least 1".to_string(),
        )),
        Some(n) if n > MAX_LIMIT => Err(ToolError::InvalidInput(format!(
            "'limit' is {n}; the most is {MAX_LIMIT}: narrow the filters instead"
        ))),
        Some(n) => Ok(n as usize),
    }
}

/// A scope from tool arguments, falling back to the server's regions and accounts; errors
/// name the tool's fields.
pub(crate) fn tool_scope(
    env: &ToolEnv,
    resource_types: &[String],
    regions: &[String],
    accounts: &[String],
) -> Result<(ScanScope, Vec<String>), ToolError> {
    let names = ScopeFieldNames {
        resource_types: "resource_types",
        regions: "regions",
        accounts: "account_ids",
    };
    let parsed =
        parse_scope(names, resource_types, regions, accounts).map_err(ToolError::InvalidInput)?;
    if parsed.all_regions || parsed.organization {
        return Err(ToolError::InvalidInput(
            "'all' and 'organization' are chosen when the server starts (tagguard serve --regions/--accounts); here, list regions or account ids to narrow the scan, or leave them out".to_string(),
        ));
    }
    let mut scope = parsed.scope;
    if scope.regions.is_empty() {
        scope.regions = env.default_scope.regions.clone();
    }
    if scope.accounts.is_empty() {
        scope.accounts = env.default_scope.accounts.clone();
    }
    Ok((scope, parsed.warnings))
}

/// Runs a scan for the tool `origin`: reports progress while it runs, stops it on
/// cancellation, and records it in the store.
pub(crate) async fn run_scan(
    env: &ToolEnv,
    ctx: &CallContext,
    origin: &str,
    scope: ScanScope,
    severity: SeverityFilter,
) -> Result<ScanResult, ToolError> {
    let request = ScanRequest::new(env.source.clone(), env.policy.clone())
        .with_scope(scope)
        .with_severity(severity);
    let ticket = env.engine.start_scan(request).await.map_err(engine_error)?;
    let scan_id = ticket.id;
    let mut progress = ticket.progress();
    let _reporter = ctx.progress.clone().map(|sink| {
        AbortOnDrop(tokio::spawn(async move {
            sink.report(0.0, None, "planning the scan".to_string());
            while progress.changed().await.is_ok() {
                let p = progress.borrow_and_update().clone();
                // Shards are the unit of work whose total is known up front.
                let message = format!(
                    "{} resources checked, {} non-compliant",
                    p.resources_scanned, p.non_compliant
                );
                match p.shards_total {
                    Some(total) => sink.report(p.shards_done as f64, Some(total as f64), message),
                    None => sink.report(0.0, None, message),
                }
            }
        }))
    });
    let outcome = tokio::select! {
        result = ticket.result() => result.map_err(engine_error),
        _ = ctx.cancel.cancelled() => {
            env.engine.cancel(scan_id);
            Err(ToolError::Cancelled)
        }
    };
    let mut result = outcome?;
    if let Some(store) = &env.store
        && let Err(error) = store.record_scan(&result, &format!("mcp:{origin}")).await
    {
        // History is a record, not the answer: the caller still gets the scan.
        tracing::warn!(%error, "scan not recorded");
        result.notes.push(format!(
            "this scan was not recorded in the history: {error}"
        ));
    }
    Ok(result)
}

/// Aborts a task when dropped: the progress reporter must end with its call, however the call
/// ends (answered, failed, or dropped by a transport that gave up on it), or it would keep
/// the client's channel open.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A scan of the whole `scope` (every violation listed), from the cache when a fresh one is
/// there and `force_refresh` is false; else a new scan, recorded and cached.
pub(crate) async fn cached_scan(
    env: &ToolEnv,
    ctx: &CallContext,
    origin: &str,
    scope: ScanScope,
    force_refresh: bool,
) -> Result<(Arc<ScanResult>, CacheInfo), ToolError> {
    let key = cache_key(&env.source.name(), &scope, env.policy.version());
    if !force_refresh && let Some(hit) = env.cache.get(&key, chrono::Utc::now()).await {
        // A client that asked for progress hears that the answer is ready, and why so soon.
        if let Some(sink) = &ctx.progress {
            let message = format!("answered from a scan of {} s ago", hit.1.age_seconds);
            sink.report(1.0, Some(1.0), message);
        }
        return Ok(hit);
    }
    let result = Arc::new(run_scan(env, ctx, origin, scope, SeverityFilter::All).await?);
    env.cache.put(key, result.clone(), chrono::Utc::now()).await;
    let info = CacheInfo {
        from_cache: false,
        scanned_at: result.scan_timestamp,
        age_seconds: 0,
    };
    Ok((result, info))
}

fn engine_error(error: EngineError) -> ToolError {
    match error {
        EngineError::Cancelled(_) => ToolError::Cancelled,
        other => ToolError::Failed(other.to_string()),
    }
}

/// "showing N of M" when a list was cut, for the model to know what it did not see.
pub(crate) fn truncation_note(what: &str, shown: usize, total: usize) -> Option<String> {
    (shown < total).then(|| {
        format!(
            "showing {shown} of {total} {what}; raise 'limit' (at most {MAX_LIMIT}) or narrow the filters to see others"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_object_schemas_and_described_fields() {
        let registry = ToolRegistry::standard();
        assert_eq!(registry.iter().count(), 5);
        for tool in registry.iter() {
            let d = tool.descriptor();
            for key in ["inputSchema", "outputSchema"] {
                let schema = &d[key];
                assert_eq!(schema["type"], "object", "{} {key}", tool.name());
                let text = schema.to_string();
                assert!(!text.contains("$ref"), "{} {key} has a $ref", tool.name());
                assert!(!text.contains("uint"), "{} {key} has a format", tool.name());
            }
            let properties = d["inputSchema"]["properties"].as_object().cloned();
            for (field, schema) in properties.unwrap_or_default() {
                assert!(
                    schema.get("description").is_some(),
                    "{}.{field} has no description",
                    tool.name()
                );
            }
            assert!(!d["description"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT as usize);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
        assert_eq!(limit(Some(7)).unwrap(), 7);
    }
}
