//! `find_untagged_resources`: resources with no tags or missing required tags, with what they
//! miss, what they cost and how old they are, most expensive first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::views::ScanContext;
use super::{CallContext, ToolEnv, ToolError, TypedTool, limit, scope_scan, tool_scope};
use crate::domain::{CostSource, ResourceRef, ScanResult, Usd, ViolationType, eq_ignore_case};

/// The tool.
pub struct FindUntaggedResources;

/// Arguments of `find_untagged_resources`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindUntaggedParams {
    /// Resource types to search, as `service:type` (e.g. `["ec2:instance"]`); empty or absent
    /// searches every type.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Regions to search (e.g. `["us-east-1"]`); empty or absent means all the server covers.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Only resources missing at least one of these required tags (e.g. `["CostCenter"]`);
    /// empty or absent means any required tag. Names are matched ignoring case.
    #[serde(default)]
    pub missing_tags: Vec<String>,
    /// Only resources costing at least this many USD a month. Resources of unknown cost are
    /// left out when it is set, and counted in `excluded_unknown_cost`.
    #[serde(default)]
    pub min_cost_threshold: Option<Usd>,
    /// Most resources to list (default 50, at most 1000); totals always cover all of them.
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

/// One resource lacking required tags.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UntaggedResource {
    /// ARN of the resource.
    pub resource_arn: String,
    /// The resource's id within its type.
    pub resource_id: String,
    /// `service:type`.
    pub resource_type: String,
    /// Region (`global` for resources of no region).
    pub region: String,
    /// Account id.
    pub account_id: String,
    /// The resource's name (its `Name` tag or API name), when it has one.
    pub name: Option<String>,
    /// True when the resource has no tag at all.
    pub untagged: bool,
    /// Required tags it lacks, as the policy spells them.
    pub missing_tags: Vec<String>,
    /// Monthly cost in USD; null when unknown (never 0 for unknown).
    pub monthly_cost: Option<Usd>,
    /// Where `monthly_cost` comes from: actual, allocated, estimated or unknown.
    pub cost_source: CostSource,
    /// Days since the resource was created; null when the API does not say.
    pub age_days: Option<i64>,
    /// When the resource was created, when known.
    pub created_at: Option<DateTime<Utc>>,
}

/// The resources missing one tag, and their cost.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct MissingTagCost {
    /// Resources found that miss the tag.
    pub resources: u64,
    /// Their summed monthly cost (USD), over those whose cost is known.
    pub monthly_cost: Usd,
    /// Of them, resources whose cost is unknown.
    pub unknown_cost: u64,
}

/// Result of `find_untagged_resources`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UntaggedReport {
    /// Resources missing at least one required tag (after the cost threshold).
    pub total_found: u64,
    /// Of which carry no tag at all.
    pub untagged_count: u64,
    /// Of which carry some tags but miss required ones.
    pub partially_tagged_count: u64,
    /// Summed monthly cost (USD) of the resources found whose cost is known.
    pub total_monthly_cost: Usd,
    /// Resources found whose cost is unknown (not in `total_monthly_cost`).
    pub unknown_cost_count: u64,
    /// Resources left out by `min_cost_threshold` because their cost is unknown.
    pub excluded_unknown_cost: u64,
    /// Resources left out by `min_cost_threshold` because they cost less.
    pub excluded_below_threshold: u64,
    /// For each required tag: how many of the resources found miss it, and what they cost.
    pub missing_by_tag: BTreeMap<String, MissingTagCost>,
    /// The resources, most expensive first (unknown cost last), at most `limit`.
    pub resources: Vec<UntaggedResource>,
    /// Set when `resources` was cut at `limit`.
    pub truncated: Option<String>,
    /// Resources checked in all.
    pub resources_scanned: u64,
    /// Completeness, provenance and freshness of the scan behind the answer.
    #[serde(flatten)]
    pub context: ScanContext,
}

#[async_trait]
impl TypedTool for FindUntaggedResources {
    type Params = FindUntaggedParams;
    type Output = UntaggedReport;
    const NAME: &'static str = "find_untagged_resources";
    const TITLE: &'static str = "Find untagged resources";
    const DESCRIPTION: &'static str = "Lists resources that have no tags or miss tags the policy \
        requires, with the missing tags, monthly cost and age, most expensive first, and the \
        cost per missing tag. For \"which resources miss CostCenter and what do they cost?\" \
        pass missing_tags [\"CostCenter\"]; min_cost_threshold keeps only resources above a \
        monthly cost. Totals cover every match even when the list is cut at limit.";
    const HINT: &'static str = "find_untagged_resources for resources missing required tags with their cost (missing_tags narrows to one tag)";

    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let limit = limit(params.limit)?;
        if let Some(threshold) = params.min_cost_threshold
            && threshold.is_negative()
        {
            return Err(ToolError::InvalidInput(format!(
                "'min_cost_threshold' is {threshold}; give a cost in USD per month, 0 or more"
            )));
        }
        let (scope, warnings) = tool_scope(env, &params.resource_types, &params.regions, &[])?;
        let wanted: Vec<&str> = params.missing_tags.iter().map(|t| t.trim()).collect();
        let required = env.policy().required_tags();
        for tag in &wanted {
            if !required.iter().any(|r| eq_ignore_case(&r.name, tag)) {
                let names: Vec<&str> = required.iter().map(|r| &*r.name).collect();
                return Err(ToolError::InvalidInput(format!(
                    "'{tag}' in missing_tags is not a required tag of the policy; required tags: {}",
                    names.join(", ")
                )));
            }
        }
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
        let mut report = UntaggedReport {
            total_found: 0,
            untagged_count: 0,
            partially_tagged_count: 0,
            total_monthly_cost: Usd::ZERO,
            unknown_cost_count: 0,
            excluded_unknown_cost: 0,
            excluded_below_threshold: 0,
            missing_by_tag: BTreeMap::new(),
            resources: Vec::new(),
            truncated: None,
            resources_scanned: result.totals.total_resources,
            context: ScanContext::new(result, answer.cache.clone(), warnings),
        };
        let now = Utc::now();
        let mut found = Vec::new();
        for (resource, missing_tags) in group_missing(result) {
            if !wanted.is_empty()
                && !missing_tags
                    .iter()
                    .any(|t| wanted.iter().any(|w| eq_ignore_case(t, w)))
            {
                continue;
            }
            match (params.min_cost_threshold, resource.monthly_cost) {
                (Some(_), None) => {
                    report.excluded_unknown_cost += 1;
                    continue;
                }
                (Some(threshold), Some(cost)) if cost < threshold => {
                    report.excluded_below_threshold += 1;
                    continue;
                }
                _ => {}
            }
            report.count(&resource, &missing_tags);
            found.push(UntaggedResource {
                resource_arn: resource.arn.clone(),
                resource_id: resource.id.clone(),
                resource_type: resource.resource_type.to_string(),
                region: resource.region.to_string(),
                account_id: resource.account_id.to_string(),
                name: resource.name.clone(),
                untagged: resource.tag_count == 0,
                missing_tags,
                monthly_cost: resource.monthly_cost,
                cost_source: resource.cost_source,
                age_days: resource.age_days(now),
                created_at: resource.created_at,
            });
        }
        report.total_found = found.len() as u64;
        // Most expensive first: what a FinOps team fixes first. Unknown cost last; ties keep
        // source order (the sort is stable).
        found.sort_by_key(|r| std::cmp::Reverse(r.monthly_cost));
        report.truncated = super::truncation_note("resources", limit.min(found.len()), found.len());
        found.truncate(limit);
        report.resources = found;
        Ok(report)
    }
}

impl UntaggedReport {
    /// Counts one resource found, with the tags it misses.
    fn count(&mut self, resource: &ResourceRef, missing_tags: &[String]) {
        for tag in missing_tags {
            let entry = self.missing_by_tag.entry(tag.clone()).or_default();
            entry.resources += 1;
            match resource.monthly_cost {
                Some(cost) => entry.monthly_cost += cost,
                None => entry.unknown_cost += 1,
            }
        }
        match resource.monthly_cost {
            Some(cost) => self.total_monthly_cost += cost,
            None => self.unknown_cost_count += 1,
        }
        if resource.tag_count == 0 {
            self.untagged_count += 1;
        } else {
            self.partially_tagged_count += 1;
        }
    }
}

/// The resources with missing required tags, in source order, each with the tags it misses.
fn group_missing(result: &ScanResult) -> Vec<(Arc<ResourceRef>, Vec<String>)> {
    let mut order: Vec<(Arc<ResourceRef>, Vec<String>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for violation in result.violations() {
        if violation.finding.violation_type != ViolationType::MissingRequiredTag {
            continue;
        }
        let at = *index.entry(&violation.resource.arn).or_insert_with(|| {
            order.push((violation.resource.clone(), Vec::new()));
            order.len() - 1
        });
        order[at].1.push(violation.finding.tag_name.to_string());
    }
    order
}
