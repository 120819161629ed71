//! `check_tag_compliance`: scan the estate (or part of it) and report the score, the counts and
//! the violations.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::views::ScanContext;
use super::{
    CallContext, Content, ToolEnv, ToolError, TypedTool, limit, scope_scan, tool_scope,
    truncation_note,
};
use crate::domain::{ComplianceTotals, CostSums, SeverityFilter, TagCounts, TypeCounts, Violation};

/// The tool.
pub struct CheckTagCompliance;

/// Arguments of `check_tag_compliance`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckTagComplianceParams {
    /// Resource types to check, as `service:type` (e.g. `["ec2:instance", "s3:bucket"]`);
    /// empty or absent checks every type.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Narrows the scan to some regions or accounts; absent checks everything the server covers.
    #[serde(default)]
    pub filters: ScopeFilters,
    /// Which violations to list: `all` (default), `errors_only` or `warnings_only`. Counts and
    /// the score always cover every violation.
    #[serde(default)]
    pub severity: SeverityFilter,
    /// Most violations to list (default 50, at most 1000); totals always cover all of them.
    #[schemars(range(min = 1, max = super::MAX_LIMIT))]
    #[serde(default)]
    pub limit: Option<u32>,
    /// Scan again even if a recent scan of the same scope is cached (default false).
    #[serde(default)]
    pub force_refresh: bool,
    /// Answer within this many seconds with what was read by then: parts not read end as
    /// `timeout` issues and the answer is `partial` (default: the server's configured deadline,
    /// usually none).
    #[schemars(range(min = 1, max = 86_400))]
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
}

/// Region and account filters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeFilters {
    /// Regions to check (e.g. `["us-east-1"]`); empty or absent means all the server covers.
    #[serde(default)]
    pub regions: Vec<String>,
    /// 12-digit account ids to check; empty or absent means all the server covers.
    #[serde(default)]
    pub account_ids: Vec<String>,
}

/// Result of `check_tag_compliance`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ComplianceReport {
    /// Score and counts over every resource in scope.
    #[serde(flatten)]
    pub totals: ComplianceTotals,
    /// Violations the `severity` filter admits, in source order, at most `limit`.
    pub violations: Vec<Violation>,
    /// Violations the `severity` filter admits in all (listed or not).
    pub violations_matching: u64,
    /// Set when `violations` was cut at `limit`: how many are shown of how many.
    pub truncated: Option<String>,
    /// `tagguard://scans/{scan_id}/violations`: every violation of the scan, paged (read it with
    /// resources/read).
    pub violations_uri: String,
    /// Counts per resource type.
    pub by_resource_type: BTreeMap<String, TypeCounts>,
    /// Counts per tag of the policy.
    pub by_tag: BTreeMap<String, TagCounts>,
    /// Monthly cost of the non-compliant resources whose cost is known, how many of them have
    /// no known cost, and where the known costs come from.
    pub non_compliant_cost: Option<CostSums>,
    /// Completeness, provenance and freshness of the scan behind the answer.
    #[serde(flatten)]
    pub context: ScanContext,
}

#[async_trait]
impl TypedTool for CheckTagCompliance {
    type Params = CheckTagComplianceParams;
    type Output = ComplianceReport;
    const NAME: &'static str = "check_tag_compliance";
    const TITLE: &'static str = "Check tag compliance";
    const DESCRIPTION: &'static str = "Scans resources against the tagging policy and returns the \
        compliance score (compliant / total), counts per resource type and per tag, and the \
        violations with the current value and what the policy expects. Use it to answer \"how \
        compliant are we\" or \"what is wrong with our tags\"; narrow with resource_types, \
        filters.regions and filters.account_ids. Answers come from a scan of the same scope made \
        in the last minutes when there is one (see `cache`); force_refresh scans again. `partial: true` means part of the estate could \
        not be read: `issues` says which and why.";
    const HINT: &'static str = "check_tag_compliance for the score and violations";

    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let limit = limit(params.limit)?;
        let (scope, warnings) = tool_scope(
            env,
            &params.resource_types,
            &params.filters.regions,
            &params.filters.account_ids,
        )?;
        let answer = scope_scan(
            env,
            ctx,
            Self::NAME,
            scope,
            params.force_refresh,
            params.deadline_seconds,
        )
        .await?;
        let result = &answer.result;
        let severity = params.severity;
        let admitted = || {
            result
                .violations()
                .filter(move |v| severity.admits(v.finding.severity))
        };
        let matching = admitted().count();
        let violations = admitted().take(limit).cloned().collect::<Vec<_>>();
        Ok(ComplianceReport {
            totals: result.totals,
            truncated: truncation_note("violations", violations.len(), matching),
            violations,
            violations_matching: matching as u64,
            violations_uri: super::shelf::violations_uri(&result.meta.scan_id.to_string()),
            by_resource_type: result
                .tally
                .by_resource_type
                .iter()
                .map(|(t, c)| (t.to_string(), *c))
                .collect(),
            by_tag: result
                .tally
                .by_tag
                .iter()
                .map(|(t, c)| (t.to_string(), *c))
                .collect(),
            non_compliant_cost: result.tally.cost.as_ref().map(|c| c.non_compliant()),
            context: ScanContext::new(result, answer.cache.clone(), warnings),
        })
    }

    /// The JSON, and when the list was cut, a link to all of it.
    fn content(&self, output: &Self::Output, structured: &serde_json::Value) -> Vec<Content> {
        let mut blocks = vec![Content::text(structured.to_string())];
        if output.truncated.is_some() {
            blocks.push(Content::ResourceLink {
                uri: output.violations_uri.clone(),
                name: format!("{}-violations", output.context.scan.scan_id),
                mime_type: Some("application/json"),
                description: Some(format!(
                    "Every violation of the scan ({} in all), {} a page",
                    output.error_count_total(),
                    super::resources::VIOLATIONS_PER_PAGE
                )),
            });
        }
        blocks
    }
}

impl ComplianceReport {
    fn error_count_total(&self) -> u64 {
        self.totals.error_count + self.totals.warning_count
    }
}
