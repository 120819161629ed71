//! `apply_tag_remediation`: applies a plan kept by `plan_tag_remediation` (or `tagguard fix
//! --plan`), by its id and nothing else, through the source's tag writes; served only by a
//! server started with `--allow-remediation`. Before and after are kept so that
//! `tagguard fix --undo PLAN_ID` can restore them.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CallContext, ToolEnv, ToolError, TypedTool};
use crate::remediate::{WriteRecord, apply, keep_record, kept_apply, kept_plan};

/// The tool.
pub struct ApplyTagRemediation;

/// Arguments of `apply_tag_remediation`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyParams {
    /// The id of a plan from `plan_tag_remediation` (`plan-…`).
    pub plan_id: String,
}

#[async_trait]
impl TypedTool for ApplyTagRemediation {
    type Params = ApplyParams;
    type Output = WriteRecord;
    const NAME: &'static str = "apply_tag_remediation";
    const TITLE: &'static str = "Apply a tag remediation plan";
    const DESCRIPTION: &'static str = "Writes the tag changes of a plan made by \
        plan_tag_remediation, given by its plan_id (never free-form changes), to AWS. Each \
        resource whose planned tags changed since the plan is refused, not overwritten; every \
        resource is read back to verify. Returns per resource what was applied, failed, refused \
        or skipped. Changes real resources: show the plan to the user and apply only when they \
        asked for it. A plan is applied once; `tagguard fix --undo PLAN_ID` restores the \
        previous values.";
    const HINT: &'static str = "apply_tag_remediation to apply a reviewed plan";
    const READ_ONLY: bool = false;
    const DESTRUCTIVE: bool = true;
    const IDEMPOTENT: bool = false;

    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let Some(store) = env.store() else {
            return Err(ToolError::Failed(
                "the server keeps no store: an apply could not be undone".to_string(),
            ));
        };
        let failed = |e: crate::store::StoreError| ToolError::Failed(e.to_string());
        let id = params.plan_id.trim();
        let Some(plan) = kept_plan(store, id).await.map_err(failed)? else {
            return Err(ToolError::InvalidInput(format!(
                "no plan '{id}' is kept by this server: make one with plan_tag_remediation"
            )));
        };
        if kept_apply(store, id).await.map_err(failed)?.is_some() {
            return Err(ToolError::InvalidInput(format!(
                "plan '{id}' was applied already: make a new plan for what is left"
            )));
        }
        let record = apply(&env.scans, &ctx.run_context(), &plan, &env.default_scope).await?;
        keep_record(store, &record).await.map_err(failed)?;
        Ok(record)
    }
}
