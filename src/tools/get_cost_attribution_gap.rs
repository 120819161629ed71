//! `get_cost_attribution_gap`: how much of the period's usage spend cannot be attributed
//! through the allocation tags, and why (tags missing, values the policy rejects), from
//! billing data (Cost Explorer, or the demo's billing), with a breakdown and the requests it
//! cost.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CallContext, ToolEnv, ToolError, TypedTool, tool_scope};
use crate::cost::query::range;
use crate::cost::service::CostError;
use crate::cost::{AttributionGap, Breakdown, GapQuestion, Granularity, Metric, PeriodSpec};

/// The tool.
pub struct GetCostAttributionGap;

/// A named period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedPeriod {
    /// The last full calendar month.
    LastMonth,
    /// The 30 full days before today (`last_30_days`, as documented; snake case alone would
    /// spell it `last30_days`, which is accepted too).
    #[serde(rename = "last_30_days", alias = "last30_days")]
    Last30Days,
    /// From the first of this month through today (not final yet).
    MonthToDate,
}

/// A period: a name, or dates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TimePeriod {
    /// `last_month`, `last_30_days` or `month_to_date`.
    Named(NamedPeriod),
    /// Explicit dates (`YYYY-MM-DD`), the end exclusive: November 2026 is
    /// `{"start": "2026-11-01", "end": "2026-12-01"}`.
    Range {
        /// The first day.
        start: String,
        /// The day after the last.
        end: String,
    },
}

/// Arguments of `get_cost_attribution_gap`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GapParams {
    /// The period: `last_month` (default), `last_30_days`, `month_to_date`, or
    /// `{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}` with the end exclusive.
    #[serde(default)]
    pub time_period: Option<TimePeriod>,
    /// The breakdown: `service` (default), `region`, `account` or `resource_type`.
    #[serde(default)]
    pub group_by: Option<Breakdown>,
    /// The cost metric: `AmortizedCost` (default: reservation and Savings Plans fees follow
    /// the usage they cover), `UnblendedCost`, `NetAmortizedCost`, `NetUnblendedCost` or
    /// `BlendedCost`.
    #[serde(default)]
    pub metric: Option<Metric>,
    /// The allocation tags (exact keys, as billing records them); absent: the server's
    /// configured ones, else the policy's required tags that apply to every resource type.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// The time series' slices: `monthly` (default) or `daily`.
    #[serde(default)]
    pub granularity: Option<Granularity>,
    /// Only these regions; absent means the server's regions (or all billing shows).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Only these accounts (12-digit ids); absent means the server's accounts (or all billing
    /// shows).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Ask billing again instead of using answers cached in the last hours (each Cost
    /// Explorer request costs $0.01).
    #[serde(default)]
    pub force_refresh: bool,
}

impl From<CostError> for ToolError {
    fn from(error: CostError) -> Self {
        match error {
            CostError::InvalidInput(message) => ToolError::InvalidInput(message),
            CostError::Source(mut error) => {
                error.message = format!("cost data unavailable: {}", error.message);
                ToolError::Source(error)
            }
            CostError::Cancelled => ToolError::Cancelled,
        }
    }
}

#[async_trait]
impl TypedTool for GetCostAttributionGap {
    type Params = GapParams;
    type Output = AttributionGap;
    const NAME: &'static str = "get_cost_attribution_gap";
    const TITLE: &'static str = "Get cost attribution gap";
    const DESCRIPTION: &'static str = "Measures how much of a period's usage spend cannot be \
        attributed through the allocation tags, from billing data (AWS Cost Explorer, or the \
        demo's billing): total usage spend, the spend carrying every allocation tag with a \
        value the policy accepts, the gap and its percentage; per tag the spend where it is \
        missing, where its value is invalid (with the costliest invalid values) and where it \
        is valid; a breakdown by service, region, account or resource type; charges outside \
        usage (tax, credits, support) apart, never in the gap. A tag not activated for cost \
        allocation is reported as not measurable, not as untagged. Billing records tags as \
        they were when the usage happened, so the gap can differ from today's scan. Answers \
        are cached for hours; ce_requests says what the call asked and cost ($0.01 per Cost \
        Explorer request).";
    const HINT: &'static str =
        "get_cost_attribution_gap for how much spend the tags cannot attribute, and why";

    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let Some(cost) = &env.cost else {
            return Err(ToolError::Failed(format!(
                "no billing data for the source '{}': the attribution gap needs the demo estate or AWS (tagguard serve --source aws)",
                env.source().name()
            )));
        };
        let period = match params.time_period {
            None | Some(TimePeriod::Named(NamedPeriod::LastMonth)) => PeriodSpec::LastMonth,
            Some(TimePeriod::Named(NamedPeriod::Last30Days)) => PeriodSpec::Last30Days,
            Some(TimePeriod::Named(NamedPeriod::MonthToDate)) => PeriodSpec::MonthToDate,
            Some(TimePeriod::Range { start, end }) => PeriodSpec::Range(
                range(&start, &end)
                    .map_err(|e| ToolError::InvalidInput(format!("'time_period': {e}")))?,
            ),
        };
        let (scope, _) = tool_scope(env, &[], &params.regions, &params.accounts)?;
        let question = GapQuestion {
            period,
            granularity: params.granularity.unwrap_or_default(),
            metric: params.metric.unwrap_or_default(),
            group_by: params.group_by.unwrap_or_default(),
            tags: params.tags,
            scope,
            force_refresh: params.force_refresh,
        };
        Ok(cost.attribution_gap(&question, &ctx.cancel).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_periods_are_spelled_as_documented() {
        for (text, period) in [
            ("last_month", NamedPeriod::LastMonth),
            ("last_30_days", NamedPeriod::Last30Days),
            ("month_to_date", NamedPeriod::MonthToDate),
        ] {
            let params: GapParams =
                serde_json::from_value(serde_json::json!({ "time_period": text })).unwrap();
            assert_eq!(
                params.time_period,
                Some(TimePeriod::Named(period)),
                "{text}"
            );
        }
        let schema =
            crate::tools::schema_of::<GapParams>(schemars::generate::Contract::Deserialize);
        assert!(schema.to_string().contains("last_30_days"));
    }
}
