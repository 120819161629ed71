//! The MCP tools: one file per tool, and the registry the MCP layer serves them from.
//!
//! A tool is a [`TypedTool`]: a parameter type and an output type (both generate their JSON
//! Schema with schemars, so the schema a client sees is the type the code reads), its
//! metadata (annotations, a one-line hint for the server's instructions), an async `run`, and
//! how its output is shown ([`TypedTool::content`]: the JSON by default; Markdown, CSV or a
//! resource link when a tool says so). The blanket [`Tool`] impl turns it into the untyped
//! form the MCP layer calls. Tools reach scans only through the [`ScanService`] in
//! [`ToolEnv`]; they are thin translations of arguments into questions and of answers into
//! views.
//!
//! **Adding a tool** is one file here plus one line in [`ToolRegistry::standard`].

mod apply_tag_remediation;
mod calls;
mod check_tag_compliance;
mod find_untagged_resources;
mod generate_compliance_report;
mod generate_custodian_policy;
mod get_cost_attribution_gap;
mod get_tagging_policy;
mod get_violation_history;
mod import_aws_tag_policy;
mod plan_tag_remediation;
pub mod prompts;
pub mod resources;
pub mod shelf;
mod suggest_tags;
mod validate_resource_tags;
mod views;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use schemars::JsonSchema;
use schemars::generate::Contract;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::cost::CostService;
use crate::domain::{ScanScope, ScopeFieldNames, parse_scope};
use crate::policy::Policy;
use crate::scans::{RunContext, ScanAnswer, ScanError, ScanQuestion, ScanService};
use crate::source::aws::TagPolicyReader;
use crate::source::{ResourceSource, SourceError};
use crate::store::Store;

pub use crate::scans::{CacheInfo, ProgressSink};
pub use apply_tag_remediation::ApplyTagRemediation;
pub use calls::{CallGate, CallOutcome, Guardrails};
pub use check_tag_compliance::CheckTagCompliance;
pub use find_untagged_resources::FindUntaggedResources;
pub use generate_compliance_report::{
    BuiltReport, GenerateComplianceReport, ReportQuestion, ReportSummary, build_report,
};
pub use generate_custodian_policy::GenerateCustodianPolicy;
pub use get_cost_attribution_gap::GetCostAttributionGap;
pub use get_tagging_policy::GetTaggingPolicy;
pub use get_violation_history::GetViolationHistory;
pub use import_aws_tag_policy::{ImportAwsTagPolicy, import_from_organization};
pub use plan_tag_remediation::PlanTagRemediation;
pub use suggest_tags::SuggestTags;
pub use validate_resource_tags::ValidateResourceTags;

/// What every tool works with: the scan service (engine, policy, source, store, cache), what
/// a call covers by default, and the guardrails' counters.
#[derive(Clone)]
pub struct ToolEnv {
    /// Scans, through the one service that runs, caches and records them.
    pub scans: Arc<ScanService>,
    /// What a call covers when it does not narrow the scan itself (the regions and accounts
    /// `tagguard serve` was started with); a call's own lists replace these.
    pub default_scope: ScanScope,
    /// Per-session budgets and loop detection.
    pub gate: Arc<CallGate>,
    /// Billing data, when the source has some (the demo's billing, Cost Explorer).
    pub cost: Option<Arc<CostService>>,
    /// Scans and reports that results link to, for `resources/read`.
    pub shelf: Arc<shelf::Shelf>,
    /// The organisation's tag policies, when the server reads AWS.
    pub tag_policies: Option<Arc<TagPolicyReader>>,
}

impl ToolEnv {
    /// An environment over `scans`, covering everything its source has, with the default
    /// guardrails.
    pub fn new(scans: Arc<ScanService>) -> ToolEnv {
        ToolEnv {
            scans,
            default_scope: ScanScope::default(),
            gate: Arc::new(CallGate::new(Guardrails::default())),
            cost: None,
            shelf: Arc::new(shelf::Shelf::default()),
            tag_policies: None,
        }
    }

    /// Reads the organisation's tag policies through `reader` (`import_aws_tag_policy`'s
    /// `from_organization`).
    pub fn with_tag_policies(mut self, reader: Arc<TagPolicyReader>) -> ToolEnv {
        self.tag_policies = Some(reader);
        self
    }

    /// Answers cost questions from `cost`.
    pub fn with_cost(mut self, cost: Arc<CostService>) -> ToolEnv {
        self.cost = Some(cost);
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

    /// The policy in effect.
    pub fn policy(&self) -> &Arc<Policy> {
        self.scans.policy()
    }

    /// Where resources come from.
    pub fn source(&self) -> &Arc<dyn ResourceSource> {
        self.scans.source()
    }

    /// The store, when the server keeps one.
    pub fn store(&self) -> Option<&Store> {
        self.scans.store()
    }
}

/// Per-call context from the MCP layer: where progress goes, when to stop, and what the call
/// learnt about where its answer came from (for the result's `_meta` and the audit log).
#[derive(Clone, Default)]
pub struct CallContext {
    /// Set when the client asked for progress (`_meta.progressToken`).
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Cancelled when the client cancels the request, its time limit passes, or the server
    /// shuts down.
    pub cancel: CancellationToken,
    provenance: Arc<Mutex<Option<CacheInfo>>>,
}

impl CallContext {
    /// A context with `progress` and `cancel`.
    pub fn new(progress: Option<Arc<dyn ProgressSink>>, cancel: CancellationToken) -> Self {
        CallContext {
            progress,
            cancel,
            provenance: Arc::default(),
        }
    }

    /// A context for the same call with another cancellation token (a child of this one's,
    /// for a time limit), sharing its provenance.
    pub fn with_cancel(&self, cancel: CancellationToken) -> CallContext {
        CallContext {
            progress: self.progress.clone(),
            cancel,
            provenance: self.provenance.clone(),
        }
    }

    /// Says where the call's scan came from.
    pub fn note_cache(&self, info: CacheInfo) {
        *self.provenance.lock().unwrap_or_else(|p| p.into_inner()) = Some(info);
    }

    /// Where the call's scan came from, when it used one.
    pub fn cache_note(&self) -> Option<CacheInfo> {
        self.provenance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn run_context(&self) -> RunContext {
        RunContext {
            progress: self.progress.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

/// Why a tool call produced no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The arguments are wrong; the message says what to change.
    #[error("invalid arguments: {0}")]
    InvalidInput(String),
    /// The source failed: its kind (access denied, throttled, …) and the permission missing
    /// are kept, for the model and the audit log to act on.
    #[error("{0}")]
    Source(SourceError),
    /// The tool ran and failed for another reason (the store is closed, say).
    #[error("{0}")]
    Failed(String),
    /// The client cancelled the call (or the server is stopping, or its time ran out).
    #[error("the call was cancelled")]
    Cancelled,
}

impl ToolError {
    /// The error's kind, as the result's `_meta.error_kind` and the audit log name it.
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::InvalidInput(_) => "invalid_arguments",
            ToolError::Source(error) => error.kind.as_str(),
            ToolError::Failed(_) => "failed",
            ToolError::Cancelled => "cancelled",
        }
    }

    /// The IAM action a denied call lacked, when that is the cause.
    pub fn missing_permission(&self) -> Option<&str> {
        match self {
            ToolError::Source(error) => error.missing_permission.as_deref(),
            _ => None,
        }
    }
}

impl From<ScanError> for ToolError {
    fn from(error: ScanError) -> Self {
        match error {
            ScanError::Source(error) => ToolError::Source(error),
            ScanError::Engine(message) => ToolError::Failed(message),
            ScanError::Cancelled => ToolError::Cancelled,
        }
    }
}

/// Hints about a tool's behaviour, as MCP `annotations`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// A person-readable title.
    pub title: &'static str,
    /// The tool changes nothing.
    pub read_only_hint: bool,
    /// The tool may destroy or overwrite something.
    pub destructive_hint: bool,
    /// Calling twice with the same arguments has no further effect.
    pub idempotent_hint: bool,
    /// The tool talks to the outside world (AWS).
    pub open_world_hint: bool,
}

/// One block of a tool result's `content`, as MCP defines it.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Text for the model, with its media type when it is not plain (`text/markdown`,
    /// `text/csv`, `application/json`), given in the block's `_meta.mimeType`.
    Text {
        /// The text.
        text: String,
        /// Its media type.
        mime_type: Option<&'static str>,
    },
    /// A link to a resource the client can read (`resources/read`).
    ResourceLink {
        /// The resource's URI.
        uri: String,
        /// Its name.
        name: String,
        /// Its media type.
        mime_type: Option<&'static str>,
        /// What it holds.
        description: Option<String>,
    },
    /// A resource embedded whole (a report, say).
    EmbeddedText {
        /// The resource's URI.
        uri: String,
        /// Its media type.
        mime_type: &'static str,
        /// Its text.
        text: String,
    },
}

impl Content {
    /// Plain text.
    pub fn text(text: impl Into<String>) -> Content {
        Content::Text {
            text: text.into(),
            mime_type: None,
        }
    }

    /// The block as MCP JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Content::Text { text, mime_type } => {
                let mut block = json!({ "type": "text", "text": text });
                if let Some(mime) = mime_type {
                    block["_meta"] = json!({ "mimeType": mime });
                }
                block
            }
            Content::ResourceLink {
                uri,
                name,
                mime_type,
                description,
            } => {
                let mut block = json!({ "type": "resource_link", "uri": uri, "name": name });
                if let Some(mime) = mime_type {
                    block["mimeType"] = json!(mime);
                }
                if let Some(description) = description {
                    block["description"] = json!(description);
                }
                block
            }
            Content::EmbeddedText {
                uri,
                mime_type,
                text,
            } => json!({
                "type": "resource",
                "resource": { "uri": uri, "mimeType": mime_type, "text": text },
            }),
        }
    }
}

/// What a tool returns: the structured result, and how it is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// The result as JSON (`structuredContent`, matching the output schema).
    pub structured: Value,
    /// The `content` blocks.
    pub content: Vec<Content>,
}

/// A tool with typed parameters and output.
#[async_trait]
pub trait TypedTool: Send + Sync + 'static {
    /// Arguments, deserialised from `tools/call` (unknown fields rejected).
    type Params: DeserializeOwned + JsonSchema + Send;
    /// The structured result.
    type Output: Serialize + JsonSchema + Send;
    /// The tool's name, as clients call it.
    const NAME: &'static str;
    /// A person-readable title.
    const TITLE: &'static str;
    /// What the tool does and when to use it, for the model.
    const DESCRIPTION: &'static str;
    /// One clause for the server's instructions: what to use the tool for
    /// (`"check_tag_compliance for the score and violations"`).
    const HINT: &'static str;
    /// The tool changes nothing.
    const READ_ONLY: bool = true;
    /// The tool may destroy or overwrite something (with `READ_ONLY` false).
    const DESTRUCTIVE: bool = false;
    /// Calling twice with the same arguments has no further effect.
    const IDEMPOTENT: bool = true;
    /// Whether the tool reads the cloud (false for tools answered from the policy or the
    /// store alone).
    const OPEN_WORLD: bool = true;

    /// Runs the tool.
    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError>;

    /// The result's `content` blocks; `structured` is the output as JSON. The default is that
    /// JSON as one text block.
    fn content(&self, _output: &Self::Output, structured: &Value) -> Vec<Content> {
        vec![Content::text(structured.to_string())]
    }
}

/// A tool as the MCP layer sees it: untyped JSON in and out.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The tool's name.
    fn name(&self) -> &'static str;
    /// Its clause for the server's instructions.
    fn hint(&self) -> &'static str;
    /// Its `tools/list` entry: name, title, description, schemas, annotations.
    fn descriptor(&self) -> Value;
    /// Calls the tool; arguments that do not fit the schema give [`ToolError::InvalidInput`].
    async fn call(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        args: Value,
    ) -> Result<ToolOutput, ToolError>;
}

#[async_trait]
impl<T: TypedTool> Tool for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn hint(&self) -> &'static str {
        T::HINT
    }

    fn descriptor(&self) -> Value {
        json!({
            "name": T::NAME,
            "title": T::TITLE,
            "description": T::DESCRIPTION,
            "inputSchema": schema_of::<T::Params>(Contract::Deserialize),
            "outputSchema": schema_of::<T::Output>(Contract::Serialize),
            "annotations": ToolAnnotations {
                title: T::TITLE,
                read_only_hint: T::READ_ONLY,
                destructive_hint: T::DESTRUCTIVE,
                idempotent_hint: T::IDEMPOTENT,
                open_world_hint: T::OPEN_WORLD,
            },
        })
    }

    async fn call(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        args: Value,
    ) -> Result<ToolOutput, ToolError> {
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
        let structured =
            serde_json::to_value(&output).map_err(|e| ToolError::Failed(e.to_string()))?;
        let content = self.content(&output, &structured);
        Ok(ToolOutput {
            structured,
            content,
        })
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

    /// The server's instructions for clients: what tagguard is, each tool's hint in listing
    /// order, and what every answer shares.
    pub fn instructions(&self) -> String {
        let hints: Vec<&str> = self.tools.iter().map(|t| t.hint()).collect();
        format!(
            "tagguard checks AWS resources against the organisation's tagging policy. Use {}. \
             Results say `partial: true` when part of the estate could not be read; `issues` \
             says why. Long lists are capped by `limit`; totals always cover everything. Scans \
             are cached for a few minutes (`cache` says so; force_refresh scans again), and the \
             same call repeated many times is refused as a loop.",
            crate::domain::all_of(&hints)
        )
    }

    /// Every tool tagguard has.
    pub fn standard() -> ToolRegistry {
        ToolRegistry::new()
            .with(CheckTagCompliance)
            .with(FindUntaggedResources)
            .with(ValidateResourceTags)
            .with(GetTaggingPolicy)
            .with(GetViolationHistory)
            .with(GetCostAttributionGap)
            .with(SuggestTags)
            .with(GenerateComplianceReport)
            .with(ImportAwsTagPolicy)
            .with(GenerateCustodianPolicy)
            .with(PlanTagRemediation)
    }

    /// The standard tools and `apply_tag_remediation`, which writes tags: for a server
    /// started with `--allow-remediation`.
    pub fn with_remediation() -> ToolRegistry {
        ToolRegistry::standard().with(ApplyTagRemediation)
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

/// The default `limit` of listed items: enough to act on, small enough for a model's context
/// (a violation is about 100 tokens).
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
    let parsed = parse_scope(ScopeFieldNames::TOOL, resource_types, regions, accounts)
        .map_err(ToolError::InvalidInput)?;
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

/// Asks the scan service `question` for a tool call: the answer's provenance is noted in the
/// call's context.
pub(crate) async fn scan(
    env: &ToolEnv,
    ctx: &CallContext,
    question: ScanQuestion,
) -> Result<ScanAnswer, ToolError> {
    let answer = env.scans.scan(&ctx.run_context(), question).await?;
    ctx.note_cache(answer.cache.clone());
    Ok(answer)
}

/// A scan of the whole `scope` for the tool `tool` (every violation listed, costs summed),
/// from the cache when a fresh one is there and `force_refresh` is false; else a new scan,
/// recorded and cached. Every tool asks the same of a scope, so they share cached scans.
pub(crate) async fn scope_scan(
    env: &ToolEnv,
    ctx: &CallContext,
    tool: &str,
    scope: ScanScope,
    force_refresh: bool,
    deadline_seconds: Option<u64>,
) -> Result<ScanAnswer, ToolError> {
    let mut question = ScanQuestion::new(scope, crate::domain::Origin::Tool(tool.to_string()));
    question.analyses.cost = true;
    question.deadline = match deadline_seconds {
        Some(0) => {
            return Err(ToolError::InvalidInput(
                "deadline_seconds must be at least 1".to_string(),
            ));
        }
        seconds => seconds.map(std::time::Duration::from_secs),
    };
    if force_refresh {
        question.cache = crate::scans::CachePolicy::Refresh;
    }
    let answer = scan(env, ctx, question).await?;
    // Results link to the scan's full lists instead of carrying them.
    env.shelf.put_scan(&answer.result);
    Ok(answer)
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
    use serde::Deserialize;

    #[test]
    fn the_instructions_name_every_tool() {
        let registry = ToolRegistry::standard();
        let text = registry.instructions();
        for tool in registry.iter() {
            assert!(
                text.contains(tool.name()),
                "{} is not in the instructions",
                tool.name()
            );
        }
    }

    #[test]
    fn every_tool_has_object_schemas_and_described_fields() {
        let registry = ToolRegistry::standard();
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

    /// A tool that writes (say, one applying tag changes) and answers in Markdown: its
    /// annotations and content come from its own constants and `content`, not from defaults
    /// the MCP layer hard-codes.
    struct Writer;

    #[derive(Debug, Default, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct WriterParams {
        /// How many rows to write.
        #[serde(default)]
        rows: u32,
    }

    #[derive(Debug, Serialize, JsonSchema)]
    struct WriterOutput {
        /// Rows written.
        rows: u32,
    }

    #[async_trait]
    impl TypedTool for Writer {
        type Params = WriterParams;
        type Output = WriterOutput;
        const NAME: &'static str = "write_rows";
        const TITLE: &'static str = "Write rows";
        const DESCRIPTION: &'static str = "Writes rows.";
        const HINT: &'static str = "write_rows to write rows";
        const READ_ONLY: bool = false;
        const DESTRUCTIVE: bool = true;
        const IDEMPOTENT: bool = false;
        const OPEN_WORLD: bool = false;

        async fn run(
            &self,
            _env: &ToolEnv,
            _ctx: &CallContext,
            params: WriterParams,
        ) -> Result<WriterOutput, ToolError> {
            Ok(WriterOutput { rows: params.rows })
        }

        fn content(&self, output: &WriterOutput, _structured: &Value) -> Vec<Content> {
            vec![
                Content::Text {
                    text: format!("# Written\n\n{} rows", output.rows),
                    mime_type: Some("text/markdown"),
                },
                Content::ResourceLink {
                    uri: "tagguard://reports/1".to_string(),
                    name: "report 1".to_string(),
                    mime_type: Some("text/markdown"),
                    description: None,
                },
            ]
        }
    }

    #[test]
    fn annotations_and_content_are_the_tools_own() {
        let registry = ToolRegistry::new().with(Writer);
        let descriptor = &registry.descriptors()[0];
        assert_eq!(
            descriptor["annotations"],
            json!({
                "title": "Write rows",
                "readOnlyHint": false,
                "destructiveHint": true,
                "idempotentHint": false,
                "openWorldHint": false,
            })
        );
        assert!(registry.instructions().contains("write_rows to write rows"));
        let tool = Writer;
        let content = tool.content(&WriterOutput { rows: 3 }, &json!({ "rows": 3 }));
        let blocks: Vec<Value> = content.iter().map(Content::to_json).collect();
        assert_eq!(blocks[0]["type"], "text");
        assert_eq!(blocks[0]["_meta"]["mimeType"], "text/markdown");
        assert!(blocks[0]["text"].as_str().unwrap().starts_with("# Written"));
        assert_eq!(blocks[1]["type"], "resource_link");
        assert_eq!(blocks[1]["uri"], "tagguard://reports/1");
        // The standard tools are all read-only and say so.
        for d in ToolRegistry::standard().descriptors() {
            assert_eq!(d["annotations"]["readOnlyHint"], true, "{}", d["name"]);
            assert_eq!(d["annotations"]["destructiveHint"], false, "{}", d["name"]);
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
