//! The compliance report written out: JSON (the whole [`Report`]), Markdown (for tickets and
//! wikis), CSV (one tidy row per table row, with a `section` column) and HTML (see
//! [`super::html`]).

use std::io::{self, Write};

use super::compliance::{GroupRow, Report, spend};
use super::markdown::cell;
use super::{percent, thousands};
use crate::domain::{CostSums, Usd};

/// Formats of the compliance report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// The whole report as one JSON document.
    Json,
    /// Tables and recommendations in Markdown.
    #[default]
    Markdown,
    /// One row per table row, with a `section` column.
    Csv,
    /// One self-contained page with charts, for a browser or a printer.
    Html,
}

crate::domain::string_enum!(ReportFormat "a report format" {
    Json => "json",
    Markdown => "markdown",
    Csv => "csv",
    Html => "html",
});

impl ReportFormat {
    /// The media type of the rendered report.
    pub fn mime_type(self) -> &'static str {
        match self {
            ReportFormat::Json => "application/json",
            ReportFormat::Markdown => "text/markdown",
            ReportFormat::Csv => "text/csv",
            ReportFormat::Html => "text/html",
        }
    }
}

/// Writes `report` in `format`.
pub fn write(report: &Report, format: ReportFormat, out: &mut dyn Write) -> io::Result<()> {
    match format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        ReportFormat::Markdown => markdown(report, out),
        ReportFormat::Csv => csv(report, out),
        ReportFormat::Html => super::html::write(report, out),
    }
}

/// `report` rendered in `format`, as text.
pub fn render(report: &Report, format: ReportFormat) -> String {
    let mut bytes = Vec::new();
    write(report, format, &mut bytes).expect("writing to memory does not fail");
    String::from_utf8(bytes).expect("the renderers write UTF-8")
}

fn score(value: Option<f64>) -> String {
    value.map_or("n/a".to_string(), percent)
}

fn cost_cell(cost: &Option<CostSums>) -> String {
    cost.as_ref().map_or("not summed".to_string(), spend)
}

fn group_table(title: &str, rows: &[GroupRow], out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "## {title}\n")?;
    writeln!(
        out,
        "| {} | Resources | Compliant | Non-compliant | Not applicable | Score | Errors | Warnings | Non-compliant cost |",
        title.trim_start_matches("By ")
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for row in rows {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&row.name),
            thousands(row.total),
            thousands(row.compliant),
            thousands(row.non_compliant),
            thousands(row.not_applicable),
            score(row.score),
            thousands(row.errors),
            thousands(row.warnings),
            cost_cell(&row.non_compliant_cost)
        )?;
    }
    writeln!(out)
}

fn markdown(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let t = &report.totals;
    writeln!(out, "# {}\n", cell(&report.title))?;
    writeln!(
        out,
        "Scan `{}` of `{}` at {}, policy version {}; report made {}.\n",
        report.scan.scan_id,
        cell(&report.scan.source),
        report.scan.scanned_at.format("%Y-%m-%d %H:%M:%S UTC"),
        cell(&report.scan.policy_version),
        report.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    )?;
    if report.scan.partial {
        writeln!(
            out,
            "> **Partial:** {} part(s) of the estate could not be read; the counts cover only what was read (see Issues).\n",
            report.scan.issues.len()
        )?;
    }
    writeln!(out, "## Summary\n")?;
    writeln!(out, "| | |\n|---|---:|")?;
    writeln!(
        out,
        "| Compliance score | {} |",
        percent(t.compliance_score)
    )?;
    writeln!(out, "| Resources | {} |", thousands(t.total_resources))?;
    writeln!(out, "| Compliant | {} |", thousands(t.compliant_resources))?;
    writeln!(
        out,
        "| Non-compliant | {} |",
        thousands(t.non_compliant_resources)
    )?;
    writeln!(
        out,
        "| Not applicable | {} |",
        thousands(t.not_applicable_resources)
    )?;
    writeln!(out, "| Exempt | {} |", thousands(t.exempt_resources))?;
    writeln!(out, "| Errors | {} |", thousands(t.error_count))?;
    writeln!(out, "| Warnings | {} |", thousands(t.warning_count))?;
    if let Some(cost) = &report.cost {
        writeln!(
            out,
            "| Monthly cost, all resources | {} |",
            spend(&cost.total)
        )?;
        writeln!(
            out,
            "| Monthly cost, non-compliant | {} |",
            spend(&cost.non_compliant)
        )?;
    }
    writeln!(out)?;
    if let Some(recommendations) = &report.recommendations {
        writeln!(out, "## Recommendations\n")?;
        if recommendations.is_empty() {
            writeln!(out, "Nothing to recommend: no violation calls for work.\n")?;
        }
        for (i, r) in recommendations.iter().enumerate() {
            writeln!(
                out,
                "{}. **{}**  \n   {}",
                i + 1,
                cell(&r.title),
                cell(&r.detail)
            )?;
        }
        if report.recommendations_not_listed > 0 {
            writeln!(
                out,
                "\n{} more recommendation(s) not listed (they cover less spend).",
                report.recommendations_not_listed
            )?;
        }
        writeln!(out)?;
    }
    for (title, groups) in [
        ("Violations by resources", &report.top_violations_by_count),
        ("Violations by monthly cost", &report.top_violations_by_cost),
    ] {
        writeln!(out, "## {title}\n")?;
        if groups.is_empty() {
            writeln!(out, "None.\n")?;
            continue;
        }
        writeln!(
            out,
            "| Resource type | Tag | Violation | Severity | Resources | Monthly cost |"
        )?;
        writeln!(out, "|---|---|---|---|---:|---:|")?;
        for g in groups {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&g.resource_type),
                cell(&g.tag),
                g.violation_type,
                g.severity,
                thousands(g.resources),
                spend(&g.monthly_cost)
            )?;
        }
        writeln!(out)?;
    }
    group_table("By resource type", &report.by_resource_type, out)?;
    writeln!(out, "## By tag\n")?;
    writeln!(
        out,
        "| Tag | Missing | Invalid | Warnings | Cost of resources missing it | Cost of invalid values |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for row in &report.by_tag {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&row.tag),
            thousands(row.missing),
            thousands(row.invalid),
            thousands(row.warnings),
            cost_cell(&row.missing_cost),
            cost_cell(&row.invalid_cost)
        )?;
    }
    writeln!(out)?;
    group_table("By account", &report.by_account, out)?;
    group_table("By region", &report.by_region, out)?;
    writeln!(out, "## Trend\n")?;
    match &report.trend {
        None => writeln!(out, "No history could be read.\n")?,
        Some(trend) => {
            writeln!(
                out,
                "{} over {} period(s) ({:+.1} points).\n",
                trend.trend,
                trend.points.len(),
                trend.score_change * 100.0
            )?;
            writeln!(out, "| Period | Score | Non-compliant | Resources |")?;
            writeln!(out, "|---|---:|---:|---:|")?;
            for p in &trend.points {
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    cell(&p.period),
                    percent(p.score),
                    thousands(p.non_compliant),
                    thousands(p.total)
                )?;
            }
            for note in &trend.notes {
                writeln!(out, "\n_{}_", cell(note))?;
            }
            writeln!(out)?;
        }
    }
    writeln!(out, "## Cost attribution gap\n")?;
    match (&report.cost_gap.figures, &report.cost_gap.unavailable) {
        (Some(gap), _) => {
            writeln!(
                out,
                "{} to {} (end exclusive), {} from {}: usage spend {}, attributable {}, gap {} ({}).\n",
                gap.period_start,
                gap.period_end,
                gap.metric.ce_name(),
                cell(&gap.data_source),
                gap.total_spend.display(),
                money(gap.attributable_spend),
                money(gap.gap),
                gap.gap_percent
                    .map_or("unknown".to_string(), |p| format!("{p:.1}%"))
            )?;
            writeln!(
                out,
                "| {} | Spend | Gap | Gap % |",
                super::cost::group_name(gap)
            )?;
            writeln!(out, "|---|---:|---:|---:|")?;
            for row in &gap.breakdown {
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    cell(&row.key),
                    row.total.display(),
                    money(row.gap),
                    row.gap_percent
                        .map_or("unknown".to_string(), |p| format!("{p:.1}%"))
                )?;
            }
            for caveat in &gap.caveats {
                writeln!(out, "\n_{}_", cell(caveat))?;
            }
            writeln!(out)?;
        }
        (None, reason) => writeln!(
            out,
            "Not available: {}.\n",
            cell(reason.as_deref().unwrap_or("no billing data"))
        )?,
    }
    if !report.exemptions.is_empty() {
        writeln!(out, "## Exemptions\n")?;
        writeln!(out, "| Resource | Status | Until | Exempted by | Reason |")?;
        writeln!(out, "|---|---|---|---|---|")?;
        for e in report.exemptions.iter().take(EXEMPTIONS_LISTED) {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(e.resource_name.as_deref().unwrap_or(&e.resource_arn)),
                e.status,
                e.expires.map_or("unknown".to_string(), |d| d.to_string()),
                cell(&e.exempted_by),
                cell(&e.reason)
            )?;
        }
        if report.exemptions.len() > EXEMPTIONS_LISTED {
            writeln!(
                out,
                "\n{} more (the JSON report lists all).",
                report.exemptions.len() - EXEMPTIONS_LISTED
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out, "## Worst offenders\n")?;
    writeln!(
        out,
        "| Resource | Type | Account | Region | Errors | Monthly cost |"
    )?;
    writeln!(out, "|---|---|---|---|---:|---:|")?;
    for r in &report.worst_offenders {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(r.name.as_deref().unwrap_or(&r.arn)),
            cell(&r.resource_type),
            cell(&r.account_id),
            cell(&r.region),
            r.errors.unwrap_or(0),
            money(r.monthly_cost)
        )?;
    }
    writeln!(out)?;
    if !report.scan.issues.is_empty() {
        writeln!(out, "## Issues\n")?;
        for issue in &report.scan.issues {
            writeln!(
                out,
                "- {} {} {}: {} — {}",
                cell(&issue.account_id),
                cell(&issue.region),
                cell(&issue.service),
                issue.kind,
                cell(&issue.message)
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn money(amount: Option<Usd>) -> String {
    amount.map_or("unknown".to_string(), Usd::display)
}

/// Exemptions a Markdown or HTML report lists (the JSON and CSV list all).
pub const EXEMPTIONS_LISTED: usize = 50;

/// CSV columns, in order.
pub const CSV_HEADER: [&str; 15] = [
    "section",
    "name",
    "total",
    "compliant",
    "non_compliant",
    "not_applicable",
    "score",
    "errors",
    "warnings",
    "resources",
    "monthly_cost",
    "cost_known",
    "cost_unknown",
    "cost_sources",
    "detail",
];

/// One CSV row: text cells are made safe for spreadsheets; absent numbers stay empty (never 0).
#[derive(Default)]
struct Row {
    section: &'static str,
    name: String,
    counts: Option<[u64; 4]>,
    score: Option<f64>,
    errors: Option<[u64; 2]>,
    resources: Option<u64>,
    cost: Option<CostSums>,
    detail: String,
}

impl Row {
    fn cells(&self) -> Vec<String> {
        let n = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        let counts = self.counts.map(|c| c.map(Some)).unwrap_or([None; 4]);
        let errors = self.errors.map(|c| c.map(Some)).unwrap_or([None; 2]);
        let (money, known, unknown, sources) = match &self.cost {
            // Nothing known is no figure, not $0.
            Some(c) if c.known == 0 => (
                String::new(),
                "0".into(),
                c.unknown.to_string(),
                String::new(),
            ),
            Some(c) => (
                c.monthly_cost.cents_text(),
                c.known.to_string(),
                c.unknown.to_string(),
                c.sources
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            None => Default::default(),
        };
        vec![
            self.section.to_string(),
            super::csv::text(&self.name).into_owned(),
            n(counts[0]),
            n(counts[1]),
            n(counts[2]),
            n(counts[3]),
            self.score.map_or(String::new(), |s| format!("{s:.4}")),
            n(errors[0]),
            n(errors[1]),
            n(self.resources),
            money,
            known,
            unknown,
            sources,
            super::csv::text(&self.detail).into_owned(),
        ]
    }
}

fn group_rows<'a>(section: &'static str, rows: &'a [GroupRow]) -> impl Iterator<Item = Row> + 'a {
    rows.iter().map(move |r| Row {
        section,
        name: r.name.clone(),
        counts: Some([r.total, r.compliant, r.non_compliant, r.not_applicable]),
        score: r.score,
        errors: Some([r.errors, r.warnings]),
        cost: r.non_compliant_cost,
        ..Row::default()
    })
}

fn csv(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let t = &report.totals;
    let mut rows = vec![Row {
        section: "summary",
        name: "all".to_string(),
        counts: Some([
            t.total_resources,
            t.compliant_resources,
            t.non_compliant_resources,
            t.not_applicable_resources,
        ]),
        score: Some(t.compliance_score),
        errors: Some([t.error_count, t.warning_count]),
        cost: report.cost.map(|c| c.non_compliant),
        detail: format!(
            "scan {} of {} at {}{}",
            report.scan.scan_id,
            report.scan.source,
            report.scan.scanned_at.to_rfc3339(),
            if report.scan.partial { "; partial" } else { "" }
        ),
        ..Row::default()
    }];
    for r in report.recommendations.iter().flatten() {
        rows.push(Row {
            section: "recommendation",
            name: r.title.clone(),
            resources: Some(r.resources),
            cost: Some(r.monthly_cost),
            detail: r.detail.clone(),
            ..Row::default()
        });
    }
    for (section, groups) in [
        ("violations_by_count", &report.top_violations_by_count),
        ("violations_by_cost", &report.top_violations_by_cost),
    ] {
        for g in groups {
            rows.push(Row {
                section,
                name: format!("{} {} {}", g.resource_type, g.tag, g.violation_type),
                resources: Some(g.resources),
                cost: Some(g.monthly_cost),
                detail: g.severity.to_string(),
                ..Row::default()
            });
        }
    }
    rows.extend(group_rows("resource_type", &report.by_resource_type));
    for tag in &report.by_tag {
        for (kind, count, cost) in [
            ("missing", tag.missing, tag.missing_cost),
            ("invalid", tag.invalid, tag.invalid_cost),
        ] {
            rows.push(Row {
                section: "tag",
                name: tag.tag.clone(),
                resources: Some(count),
                cost,
                detail: kind.to_string(),
                ..Row::default()
            });
        }
        rows.push(Row {
            section: "tag",
            name: tag.tag.clone(),
            resources: Some(tag.warnings),
            detail: "warnings".to_string(),
            ..Row::default()
        });
    }
    rows.extend(group_rows("account", &report.by_account));
    rows.extend(group_rows("region", &report.by_region));
    for p in report.trend.iter().flat_map(|t| &t.points) {
        rows.push(Row {
            section: "trend",
            name: p.period.clone(),
            counts: None,
            score: Some(p.score),
            resources: Some(p.total),
            detail: format!("{} non-compliant at {}", p.non_compliant, p.at.to_rfc3339()),
            ..Row::default()
        });
    }
    if let Some(gap) = &report.cost_gap.figures {
        for row in &gap.breakdown {
            rows.push(Row {
                section: "cost_gap",
                name: row.key.clone(),
                detail: format!(
                    "spend {}; gap {}; {} to {}",
                    row.total.cents_text(),
                    row.gap.map_or("unknown".to_string(), Usd::cents_text),
                    gap.period_start,
                    gap.period_end
                ),
                ..Row::default()
            });
        }
    }
    for e in &report.exemptions {
        let mut cost = CostSums::default();
        cost.add(e.monthly_cost, e.cost_source);
        rows.push(Row {
            section: "exemption",
            name: e.resource_arn.clone(),
            resources: Some(1),
            cost: Some(cost),
            detail: format!(
                "{} until {} by {}: {}",
                e.status,
                e.expires.map_or("unknown".to_string(), |d| d.to_string()),
                e.exempted_by,
                e.reason
            ),
            ..Row::default()
        });
    }
    for r in &report.worst_offenders {
        let mut cost = CostSums::default();
        cost.add(r.monthly_cost, r.cost_source);
        rows.push(Row {
            section: "worst_offender",
            name: r.arn.clone(),
            errors: Some([
                u64::from(r.errors.unwrap_or(0)),
                u64::from(r.warnings.unwrap_or(0)),
            ]),
            resources: Some(1),
            cost: Some(cost),
            detail: r.resource_type.clone(),
            ..Row::default()
        });
    }
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_HEADER).map_err(super::csv::io)?;
    for row in rows {
        writer.write_record(row.cells()).map_err(super::csv::io)?;
    }
    writer.flush()
}
