//! `import_aws_tag_policy`: the tagguard policy equivalent to AWS Organizations tag policies
//! (one, or a chain from the root down to an account, resolved with AWS's inheritance
//! operators), with what cannot be expressed reported. Changes nothing: the server keeps its
//! policy; the answer is a policy to review and load.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CallContext, ToolEnv, ToolError, TypedTool};
use crate::policy::PolicyDocument;
use crate::policy::import::{effective_json, import_text};

/// The tool.
pub struct ImportAwsTagPolicy;

/// Arguments of `import_aws_tag_policy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// The tag policy: one document (`{"tags": {...}}`), a list of them from the root down to
    /// the account, or what `aws organizations describe-policy` or `describe-effective-policy`
    /// returns.
    pub policy: Value,
}

/// Result of `import_aws_tag_policy`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ImportReport {
    /// The tagguard policy (save it as a file and pass it with --policy).
    pub policy: PolicyDocument,
    /// The effective tag policy as AWS computes it (plain values, no operators).
    pub effective_policy: Value,
    /// What could not be expressed, or was left out, and why.
    pub notes: Vec<String>,
    /// Warnings the tagguard policy loads with (unknown resource types, say).
    pub load_warnings: Vec<String>,
}

#[async_trait]
impl TypedTool for ImportAwsTagPolicy {
    type Params = ImportParams;
    type Output = ImportReport;
    const NAME: &'static str = "import_aws_tag_policy";
    const TITLE: &'static str = "Import an AWS tag policy";
    const DESCRIPTION: &'static str = "Translates AWS Organizations tag policies into a tagguard \
        policy with the same meaning: tag_key's capitalisation is exact, tag_value's values (with \
        * as a wildcard) are the only ones allowed, report_required_tag_for makes the tag \
        required for those types, and a tag the policy names is checked wherever it is present. \
        A list of policies (root first) is resolved with @@assign, @@append, @@remove and \
        @@operators_allowed_for_child_policies as AWS computes an effective policy. \
        enforced_for (which only blocks tagging operations in AWS) and anything else that \
        cannot be expressed is listed in notes. Nothing changes on the server.";
    const HINT: &'static str =
        "import_aws_tag_policy to turn an AWS Organizations tag policy into a tagguard policy";
    const OPEN_WORLD: bool = false;

    async fn run(
        &self,
        _env: &ToolEnv,
        _ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let text = match &params.policy {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let imported =
            import_text(&text, "the policy argument").map_err(ToolError::InvalidInput)?;
        let json = serde_json::to_string(&imported.policy)
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let loaded = crate::policy::parse_policy(&json, "the imported policy")
            .map_err(|e| ToolError::Failed(format!("the imported policy does not load: {e}")))?;
        Ok(ImportReport {
            effective_policy: effective_json(&imported.effective),
            policy: imported.policy,
            notes: imported.notes,
            load_warnings: loaded.warnings,
        })
    }
}
