//! `generate_compliance_report`: the whole compliance report of a scope (score, rankings,
//! tables, trend, cost gap, worst offenders, recommendations), rendered as JSON, Markdown, CSV
//! or HTML. Over MCP the rendered report is a resource (`tagguard://reports/{id}`) and the
//! result carries its summary; `tagguard report` writes the same report to a file.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::check_tag_compliance::ScopeFilters;
use super::views::ScanContext;
use super::{CallContext, Content, ToolEnv, ToolError, TypedTool, scope_scan, tool_scope};
use crate::cost::{Breakdown, GapQuestion, Granularity, Metric, PeriodSpec};
use crate::domain::{ComplianceTotals, CostSums, ScanResult};
use crate::report::compliance::{GapInput, Recommendation, Report, ReportOptions};
use crate::report::document::{ReportFormat, render};
use crate::store::history::{GroupBy, HistoryQuery, HistoryReport, MAX_DAYS_BACK, Trend};

/// The tool.
pub struct GenerateComplianceReport;

/// Arguments of `generate_compliance_report`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// `markdown` (default), `json`, `csv` or `html` (one self-contained page with charts).
    #[serde(default)]
    pub format: Option<ReportFormat>,
    /// Derive recommendations from the violations (default true).
    #[serde(default)]
    pub include_recommendations: Option<bool>,
    /// Resource types to report on, as `service:type`; empty or absent reports every type.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Narrows the report to some regions or accounts.
    #[serde(default)]
    pub filters: ScopeFilters,
    /// Days of history for the trend (default 30, at most 400).
    #[schemars(range(min = 1, max = 400))]
    #[serde(default)]
    pub history_days: Option<u32>,
    /// Scan again even if a recent scan of the same scope is cached (default false).
    #[serde(default)]
    pub force_refresh: bool,
    /// Answer within this many seconds with what was read by then (default: the server's).
    #[schemars(range(min = 1, max = 86_400))]
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
}

/// The attribution gap in the summary.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GapSummary {
    /// Usage spend (USD).
    pub total_spend: Option<crate::domain::Usd>,
    /// Spend the tags cannot attribute (USD); null when unknown.
    pub gap: Option<crate::domain::Usd>,
    /// Its share, in percent; null when unknown.
    pub gap_percent: Option<f64>,
    /// Why there are no figures, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Result of `generate_compliance_report`: a summary, and where the whole report is.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReportSummary {
    /// `tagguard://reports/{id}`: read it with resources/read.
    pub report_uri: String,
    /// The report's format.
    pub format: String,
    /// Its media type.
    pub mime_type: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// A few lines: score, cost, the first recommendations.
    pub summary: String,
    /// Score and counts.
    #[serde(flatten)]
    pub totals: ComplianceTotals,
    /// Monthly cost of the non-compliant resources.
    pub non_compliant_cost: Option<CostSums>,
    /// The attribution gap of last month.
    pub cost_gap: GapSummary,
    /// The trend over `history_days`; null when no history could be read.
    pub trend: Option<Trend>,
    /// The first recommendations (at most five; the report has the rest).
    pub top_recommendations: Vec<Recommendation>,
    /// Recommendations in the report.
    pub recommendations_total: usize,
    /// `tagguard://scans/{id}/violations`: every violation, paged.
    pub violations_uri: String,
    /// Completeness, provenance and freshness of the scan behind the report.
    #[serde(flatten)]
    pub context: ScanContext,
}

/// What a report covers.
pub struct ReportQuestion {
    /// Resource types (`service:type`).
    pub resource_types: Vec<String>,
    /// Regions.
    pub regions: Vec<String>,
    /// Accounts.
    pub accounts: Vec<String>,
    /// Scan again.
    pub force_refresh: bool,
    /// The scan's deadline.
    pub deadline_seconds: Option<u64>,
    /// Days of history.
    pub history_days: u32,
    /// What to include.
    pub options: ReportOptions,
}

/// A built report with the scan it came from.
pub struct BuiltReport {
    /// The report.
    pub report: Report,
    /// The scan.
    pub result: Arc<ScanResult>,
    /// Where the scan came from.
    pub cache: super::CacheInfo,
    /// Notes about the arguments.
    pub warnings: Vec<String>,
}

/// Scans the scope (or takes the cached scan), reads its history and last month's gap, and
/// builds the report: what the tool and `tagguard report` share.
pub async fn build_report(
    env: &ToolEnv,
    ctx: &CallContext,
    question: ReportQuestion,
) -> Result<BuiltReport, ToolError> {
    if question.history_days == 0 || question.history_days > MAX_DAYS_BACK {
        return Err(ToolError::InvalidInput(format!(
            "'history_days' is {}; give 1 to {MAX_DAYS_BACK}",
            question.history_days
        )));
    }
    let (scope, warnings) = tool_scope(
        env,
        &question.resource_types,
        &question.regions,
        &question.accounts,
    )?;
    let answer = scope_scan(
        env,
        ctx,
        GenerateComplianceReport::NAME,
        scope.clone(),
        question.force_refresh,
        question.deadline_seconds,
    )
    .await?;
    let (result, cache) = (answer.result, answer.cache);
    let now = Utc::now();
    let history = match env.store() {
        Some(store) => {
            let query = HistoryQuery {
                source: result.meta.source.clone(),
                scope: result.meta.scope.clone(),
                days_back: question.history_days,
                group_by: GroupBy::Day,
                limit: 10,
                now,
            };
            match crate::store::history::history_report(store, &query).await {
                Ok(report) => Some(report),
                Err(error) => {
                    tracing::warn!(%error, "history not read for the report");
                    None
                }
            }
        }
        None => Some(no_history(question.history_days)),
    };
    let gap = match &env.cost {
        None => GapInput::Unavailable(format!(
            "the source '{}' has no billing data",
            env.source().name()
        )),
        Some(cost) => {
            let gap_question = GapQuestion {
                period: PeriodSpec::LastMonth,
                granularity: Granularity::Monthly,
                metric: Metric::default(),
                group_by: Breakdown::Service,
                tags: None,
                scope,
                force_refresh: false,
            };
            match cost.attribution_gap(&gap_question, &ctx.cancel).await {
                Ok(gap) => GapInput::Figures(Box::new(gap)),
                Err(crate::cost::service::CostError::Cancelled) => {
                    return Err(ToolError::Cancelled);
                }
                Err(error) => GapInput::Unavailable(error.to_string()),
            }
        }
    };
    // The scan is on the shelf already: scope_scan keeps every scan it answers with.
    let report = Report::build(&result, history.as_ref(), gap, question.options, now);
    Ok(BuiltReport {
        report,
        result,
        cache,
        warnings,
    })
}

/// The history of a server with no store: none, and why.
fn no_history(days_back: u32) -> HistoryReport {
    HistoryReport {
        days_back,
        group_by: GroupBy::Day,
        history: Vec::new(),
        trend: Trend::Stable,
        score_change: 0.0,
        improvement_rate: 0.0,
        scans_considered: 0,
        drift: None,
        gap_trend: None,
        notes: vec!["no store: scans are not recorded, so there is no history".to_string()],
    }
}

#[async_trait]
impl TypedTool for GenerateComplianceReport {
    type Params = ReportParams;
    type Output = ReportSummary;
    const NAME: &'static str = "generate_compliance_report";
    const TITLE: &'static str = "Generate a compliance report";
    const DESCRIPTION: &'static str = "Builds the compliance report of the estate (or part of \
        it): score and totals, violations ranked by resources and by monthly cost, tables per \
        resource type, tag, account and region, the score's trend from history, last month's \
        cost-attribution gap, the worst offenders, and recommendations derived from the \
        violations (each with the resources and monthly spend it covers). The rendered report \
        (markdown, json, csv or a self-contained html page) is a resource: the result gives its \
        `report_uri` (read it with resources/read) with a summary and the first \
        recommendations, so a long report does not fill the context.";
    const HINT: &'static str =
        "generate_compliance_report for a report to share (markdown, json, csv or html)";

    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let format = params.format.unwrap_or_default();
        let built = build_report(
            env,
            ctx,
            ReportQuestion {
                resource_types: params.resource_types,
                regions: params.filters.regions,
                accounts: params.filters.account_ids,
                force_refresh: params.force_refresh,
                deadline_seconds: params.deadline_seconds,
                history_days: params.history_days.unwrap_or(30),
                options: ReportOptions {
                    recommendations: params.include_recommendations.unwrap_or(true),
                },
            },
        )
        .await?;
        let report = &built.report;
        let text = render(report, format);
        let shelved = env.shelf.put_report(
            format.as_str(),
            format.mime_type(),
            text,
            report.scan.scan_id.clone(),
        );
        let recommendations = report.recommendations.as_deref().unwrap_or_default();
        let figures = report.cost_gap.figures.as_ref();
        Ok(ReportSummary {
            report_uri: shelved.uri(),
            format: format.as_str().to_string(),
            mime_type: format.mime_type().to_string(),
            bytes: shelved.text.len(),
            summary: report.summary(),
            totals: report.totals,
            non_compliant_cost: report.cost.map(|c| c.non_compliant),
            cost_gap: GapSummary {
                total_spend: figures.map(|g| g.total_spend),
                gap: figures.and_then(|g| g.gap),
                gap_percent: figures.and_then(|g| g.gap_percent),
                unavailable: report.cost_gap.unavailable.clone(),
            },
            trend: report.trend.as_ref().map(|t| t.trend),
            top_recommendations: recommendations.iter().take(5).cloned().collect(),
            recommendations_total: recommendations.len()
                + report.recommendations_not_listed as usize,
            violations_uri: super::shelf::violations_uri(&report.scan.scan_id),
            context: ScanContext::new(&built.result, built.cache, built.warnings),
        })
    }

    fn content(&self, output: &Self::Output, structured: &Value) -> Vec<Content> {
        // The JSON (with its summary) for clients that read only text; the link to the report.
        vec![
            Content::text(structured.to_string()),
            Content::ResourceLink {
                uri: output.report_uri.clone(),
                name: output
                    .report_uri
                    .rsplit('/')
                    .next()
                    .unwrap_or("report")
                    .to_string(),
                mime_type: output
                    .format
                    .parse::<ReportFormat>()
                    .ok()
                    .map(ReportFormat::mime_type),
                description: Some(format!(
                    "The compliance report ({}, {} bytes)",
                    output.format, output.bytes
                )),
            },
        ]
    }
}
