//! `get_violation_history`: compliance over time from the recorded scans: per-period points,
//! the trend, and the drift between the two most recent scans.

use async_trait::async_trait;
use chrono::Utc;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CallContext, ToolEnv, ToolError, TypedTool, limit, tool_scope};
use crate::store::history::{GroupBy, HistoryQuery, HistoryReport, MAX_DAYS_BACK, history_report};

/// The tool.
pub struct GetViolationHistory;

/// Arguments of `get_violation_history`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// How many days back to look, 1 to 400 (default 30).
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_DAYS_BACK))]
    pub days_back: Option<u32>,
    /// Period of the history points: `day` (default), `week` or `month`.
    #[serde(default)]
    pub group_by: GroupBy,
    /// Only scans of these resource types (as check_tag_compliance took them); absent means
    /// scans of every type. Scans of other scopes are not mixed in, so a trend compares like
    /// with like.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Only scans of these regions; absent means the server's regions.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Most resources and tag changes to list in `drift` (default 50, at most 1000).
    #[schemars(range(min = 1, max = super::MAX_LIMIT))]
    #[serde(default)]
    pub limit: Option<u32>,
}

#[async_trait]
impl TypedTool for GetViolationHistory {
    type Params = HistoryParams;
    type Output = HistoryReport;
    const NAME: &'static str = "get_violation_history";
    const TITLE: &'static str = "Get violation history";
    const DESCRIPTION: &'static str = "Shows how tag compliance changed over time, from the scans \
        tagguard recorded (every fresh scan of a tool or of tagguard scan; answers from the cache add none): a score and \
        violation counts per day, week or month, the trend (improving, declining or stable) and \
        what changed between the two most recent scans (resources that became compliant or not, \
        tags added, removed or changed). It runs no scan itself.";
    const HINT: &'static str = "get_violation_history for the trend over time";
    const OPEN_WORLD: bool = false;

    async fn run(
        &self,
        env: &ToolEnv,
        _ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let limit = limit(params.limit)?;
        let days_back = params.days_back.unwrap_or(30);
        if !(1..=MAX_DAYS_BACK).contains(&days_back) {
            return Err(ToolError::InvalidInput(format!(
                "'days_back' is {days_back}; give 1 to {MAX_DAYS_BACK}"
            )));
        }
        let (scope, _) = tool_scope(env, &params.resource_types, &params.regions, &[])?;
        let Some(store) = env.store() else {
            return Err(ToolError::Failed(
                "no history: the server runs without a store (its data directory could not be opened; see its log)".to_string(),
            ));
        };
        let query = HistoryQuery {
            source: env.source().name(),
            scope,
            days_back,
            group_by: params.group_by,
            limit,
            now: Utc::now(),
        };
        history_report(store, &query)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))
    }
}
