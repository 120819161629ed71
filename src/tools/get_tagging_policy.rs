//! `get_tagging_policy`: the policy in effect, whole, with which tags apply to which types.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CallContext, ToolEnv, ToolError, TypedTool};
use crate::domain::known_resource_types;
use crate::policy::PolicyDocument;

/// The tool.
pub struct GetTaggingPolicy;

/// `get_tagging_policy` takes no arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Result of `get_tagging_policy`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PolicyReport {
    /// The policy document as loaded: required and optional tags, their allowed values and
    /// patterns, the types they apply to, and the naming rules.
    pub policy: PolicyDocument,
    /// For each required tag, the resource types it applies to (`["all"]` for every type).
    pub required_by_type: BTreeMap<String, Vec<String>>,
    /// Resource types tagguard knows, for use in `resource_types` arguments.
    pub known_resource_types: Vec<String>,
    /// Remarks about the policy found when it was loaded (rules that can never pass, say).
    pub warnings: Vec<String>,
}

#[async_trait]
impl TypedTool for GetTaggingPolicy {
    type Params = NoParams;
    type Output = PolicyReport;
    const NAME: &'static str = "get_tagging_policy";
    const TITLE: &'static str = "Get the tagging policy";
    const DESCRIPTION: &'static str = "Returns the tagging policy in effect: required tags \
        (allowed values, validation regex, the resource types each applies to), optional tags \
        and naming rules. Use it to explain a violation or to propose correct tag values.";
    const HINT: &'static str = "get_tagging_policy to learn the rules";
    const OPEN_WORLD: bool = false;

    async fn run(
        &self,
        env: &ToolEnv,
        _ctx: &CallContext,
        _params: NoParams,
    ) -> Result<PolicyReport, ToolError> {
        let document = env.policy().document.clone();
        let required_by_type = document
            .required_tags
            .iter()
            .map(|rule| {
                let types = if rule.applies_to.is_empty() {
                    vec!["all".to_string()]
                } else {
                    rule.applies_to.clone()
                };
                (rule.name.clone(), types)
            })
            .collect();
        Ok(PolicyReport {
            policy: document,
            required_by_type,
            known_resource_types: known_resource_types().to_vec(),
            warnings: env.policy().warnings.clone(),
        })
    }
}
