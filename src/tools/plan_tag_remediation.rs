//! `plan_tag_remediation`: a plan of tag changes that fixes the violations of a scope (or of
//! given ARNs) from confident suggestions and values the caller sets, with its id and the
//! AWS CLI commands that apply it. Read-only: the plan is kept for a later apply, nothing in
//! AWS changes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CallContext, ToolEnv, ToolError, TypedTool, tool_scope};
use crate::domain::Origin;
use crate::remediate::{Plan, PlanQuestion, keep_plan, make_plan};

/// The tool.
pub struct PlanTagRemediation;

/// Most resources a plan of this tool covers: the plan comes back whole, into the model's
/// context.
pub const MAX_RESOURCES: usize = 200;

/// Arguments of `plan_tag_remediation`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanParams {
    /// Resource types to fix (`ec2:instance`); default every type.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Regions; default the server's.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Account ids; default the server's.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Given ARNs instead of the scope's non-compliant resources.
    #[serde(default)]
    pub resource_arns: Vec<String>,
    /// Suggestions below this confidence are left out (default 0.9).
    #[serde(default)]
    pub min_confidence: Option<f64>,
    /// Values to set, by tag (`{"CostCenter": "Finance"}`): they win over suggestions, and
    /// apply only where the tag is missing or invalid.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Most resources covered (default and maximum 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[async_trait]
impl TypedTool for PlanTagRemediation {
    type Params = PlanParams;
    type Output = Plan;
    const NAME: &'static str = "plan_tag_remediation";
    const TITLE: &'static str = "Plan tag remediation";
    const DESCRIPTION: &'static str = "Plans the tag changes that fix violations: for each \
        non-compliant resource of the scope (or each ARN given), add missing tags and correct \
        invalid values from suggestions at or above min_confidence (default 0.9) or from values \
        given in `set`, and respell keys of the wrong case. Never overwrites a valid value. \
        Returns the plan with its plan_id, every change with where its value comes from, what \
        was skipped and why, and the equivalent `aws resourcegroupstaggingapi` commands. \
        Changes nothing in AWS; the plan is kept so that it can be reviewed and applied later.";
    const HINT: &'static str = "plan_tag_remediation to plan the fixes";

    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let (scope, _) = tool_scope(
            env,
            &params.resource_types,
            &params.regions,
            &params.accounts,
        )?;
        let limit = params.limit.unwrap_or(MAX_RESOURCES);
        if limit == 0 || limit > MAX_RESOURCES {
            return Err(ToolError::InvalidInput(format!(
                "limit must be between 1 and {MAX_RESOURCES}"
            )));
        }
        let question = PlanQuestion {
            scope,
            arns: params.resource_arns,
            sets: params.set.into_iter().collect(),
            min_confidence: params.min_confidence.unwrap_or(0.9),
            limit,
            asked_by: Self::NAME.to_string(),
            origin: Origin::Tool(Self::NAME.to_string()),
        };
        let mut plan = make_plan(&env.scans, &ctx.run_context(), question).await?;
        match env.store() {
            Some(store) => keep_plan(store, &plan)
                .await
                .map_err(|e| ToolError::Failed(e.to_string()))?,
            None => plan.notes.push(
                "the server keeps no store: this plan can be applied from its file only"
                    .to_string(),
            ),
        }
        Ok(plan)
    }
}
