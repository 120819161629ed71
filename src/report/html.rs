//! The compliance report as one self-contained HTML page: inline CSS and inline SVG charts
//! (score over time, violations by tag, gap by service), no script, no font or image fetched
//! from anywhere, and a print style so that it reads on paper. Every text from the estate is
//! escaped.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::compliance::{GroupRow, Report, spend};
use super::{percent, thousands};
use crate::domain::Usd;

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let shown = crate::domain::text::show(text);
    let mut out = String::with_capacity(shown.len());
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --ink: #1d2433; --muted: #5b6475; --line: #d8dde6; --bad: #c2410c; --good: #15803d; --bar: #2563eb; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--ink); margin: 2rem auto; max-width: 1100px; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; margin-top: 2rem; }
.meta { color: var(--muted); font-size: .9rem; }
.partial { border-left: 4px solid var(--bad); background: #fff7ed; padding: .5rem .8rem; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .6rem .9rem; min-width: 10rem; }
.card .v { font-size: 1.4rem; font-weight: 600; }
.card .k { color: var(--muted); font-size: .8rem; text-transform: uppercase; letter-spacing: .03em; }
table { border-collapse: collapse; width: 100%; font-size: .88rem; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f9; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
ol.recs li { margin-bottom: .6rem; }
ol.recs .d { color: var(--muted); font-size: .9rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5rem; }
figure { margin: 0; }
figcaption { font-size: .85rem; color: var(--muted); }
svg text { font-family: inherit; font-size: 11px; fill: var(--ink); }
code { font-size: .85em; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2 { break-after: avoid; }
  table, figure, .card, ol.recs li { break-inside: avoid; }
  th { background: none; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// Writes the page.
pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut html = String::with_capacity(64 * 1024);
    page(report, &mut html).expect("writing to a String does not fail");
    out.write_all(html.as_bytes())
}

fn page(report: &Report, h: &mut String) -> std::fmt::Result {
    let t = &report.totals;
    writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n<title>{} — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        escape(&report.title),
        escape(&report.scan.source)
    )?;
    writeln!(
        h,
        "<h1>{}</h1>\n<p class=\"meta\">Scan <code>{}</code> of <code>{}</code> at {}; policy version {}; made {}.</p>",
        escape(&report.title),
        escape(&report.scan.scan_id),
        escape(&report.scan.source),
        report.scan.scanned_at.format("%Y-%m-%d %H:%M UTC"),
        escape(&report.scan.policy_version),
        report.generated_at.format("%Y-%m-%d %H:%M UTC")
    )?;
    if report.scan.partial {
        writeln!(
            h,
            "<p class=\"partial\"><strong>Partial:</strong> {} part(s) of the estate could not be read; the counts cover only what was read (see Issues).</p>",
            report.scan.issues.len()
        )?;
    }
    h.push_str("<div class=\"cards\">\n");
    let mut card = |k: &str, v: String| {
        writeln!(
            h,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>",
            escape(k),
            escape(&v)
        )
    };
    card("Compliance score", percent(t.compliance_score))?;
    card("Resources", thousands(t.total_resources))?;
    card("Non-compliant", thousands(t.non_compliant_resources))?;
    if t.exempt_resources > 0 {
        card("Exempt", thousands(t.exempt_resources))?;
    }
    card(
        "Errors / warnings",
        format!(
            "{} / {}",
            thousands(t.error_count),
            thousands(t.warning_count)
        ),
    )?;
    if let Some(cost) = &report.cost {
        card("Non-compliant monthly cost", spend(&cost.non_compliant))?;
    }
    if let Some(gap) = &report.cost_gap.figures {
        card(
            "Attribution gap",
            gap.gap_percent
                .map_or("unknown".to_string(), |p| format!("{p:.1}%")),
        )?;
    }
    h.push_str("</div>\n");

    h.push_str("<h2>Charts</h2>\n<div class=\"charts\">\n");
    score_chart(report, h)?;
    tag_chart(report, h)?;
    gap_chart(report, h)?;
    h.push_str("</div>\n");

    if let Some(recommendations) = &report.recommendations {
        h.push_str("<h2>Recommendations</h2>\n");
        if recommendations.is_empty() {
            h.push_str("<p>Nothing to recommend: no violation calls for work.</p>\n");
        } else {
            h.push_str("<ol class=\"recs\">\n");
            for r in recommendations {
                writeln!(
                    h,
                    "<li><strong>{}</strong><br><span class=\"d\">{}</span></li>",
                    escape(&r.title),
                    escape(&r.detail)
                )?;
            }
            h.push_str("</ol>\n");
            if report.recommendations_not_listed > 0 {
                writeln!(
                    h,
                    "<p class=\"meta\">{} more recommendation(s) not listed (they cover less spend).</p>",
                    report.recommendations_not_listed
                )?;
            }
        }
    }

    for (title, groups) in [
        ("Violations by resources", &report.top_violations_by_count),
        ("Violations by monthly cost", &report.top_violations_by_cost),
    ] {
        writeln!(h, "<h2>{title}</h2>")?;
        if groups.is_empty() {
            h.push_str("<p>None.</p>\n");
            continue;
        }
        h.push_str("<table><thead><tr><th>Resource type</th><th>Tag</th><th>Violation</th><th>Severity</th><th class=\"n\">Resources</th><th class=\"n\">Monthly cost</th></tr></thead><tbody>\n");
        for g in groups {
            writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&g.resource_type),
                escape(&g.tag),
                g.violation_type,
                g.severity,
                thousands(g.resources),
                escape(&spend(&g.monthly_cost))
            )?;
        }
        h.push_str("</tbody></table>\n");
    }
    group_table(
        h,
        "By resource type",
        "Resource type",
        &report.by_resource_type,
    )?;
    h.push_str("<h2>By tag</h2>\n<table><thead><tr><th>Tag</th><th class=\"n\">Missing</th><th class=\"n\">Invalid</th><th class=\"n\">Warnings</th><th class=\"n\">Cost of resources missing it</th><th class=\"n\">Cost of invalid values</th></tr></thead><tbody>\n");
    for row in &report.by_tag {
        writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&row.tag),
            thousands(row.missing),
            thousands(row.invalid),
            thousands(row.warnings),
            escape(
                &row.missing_cost
                    .as_ref()
                    .map_or("not summed".to_string(), spend)
            ),
            escape(
                &row.invalid_cost
                    .as_ref()
                    .map_or("not summed".to_string(), spend)
            )
        )?;
    }
    h.push_str("</tbody></table>\n");
    group_table(h, "By account", "Account", &report.by_account)?;
    group_table(h, "By region", "Region", &report.by_region)?;

    h.push_str("<h2>Cost attribution gap</h2>\n");
    match (&report.cost_gap.figures, &report.cost_gap.unavailable) {
        (Some(gap), _) => {
            writeln!(
                h,
                "<p>{} to {} (end exclusive), {} from {}: usage spend {}, attributable {}, gap {}.</p>",
                gap.period_start,
                gap.period_end,
                gap.metric.ce_name(),
                escape(&gap.data_source),
                gap.total_spend.display(),
                money(gap.attributable_spend),
                money(gap.gap)
            )?;
            writeln!(
                h,
                "<table><thead><tr><th>{}</th><th class=\"n\">Spend</th><th class=\"n\">Gap</th><th class=\"n\">Gap %</th></tr></thead><tbody>",
                super::cost::group_name(gap)
            )?;
            for row in &gap.breakdown {
                writeln!(
                    h,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    escape(&row.key),
                    row.total.display(),
                    money(row.gap),
                    row.gap_percent
                        .map_or("unknown".to_string(), |p| format!("{p:.1}%"))
                )?;
            }
            h.push_str("</tbody></table>\n");
            for caveat in &gap.caveats {
                writeln!(h, "<p class=\"meta\">{}</p>", escape(caveat))?;
            }
        }
        (None, reason) => writeln!(
            h,
            "<p>Not available: {}.</p>",
            escape(reason.as_deref().unwrap_or("no billing data"))
        )?,
    }

    if !report.exemptions.is_empty() {
        h.push_str("<h2>Exemptions</h2>\n<table><thead><tr><th>Resource</th><th>Status</th><th>Until</th><th>Exempted by</th><th>Reason</th></tr></thead><tbody>\n");
        for e in report
            .exemptions
            .iter()
            .take(super::document::EXEMPTIONS_LISTED)
        {
            writeln!(
                h,
                "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.resource_arn),
                escape(e.resource_name.as_deref().unwrap_or(&e.resource_arn)),
                e.status,
                e.expires.map_or("unknown".to_string(), |d| d.to_string()),
                escape(&e.exempted_by),
                escape(&e.reason)
            )?;
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("<h2>Worst offenders</h2>\n<table><thead><tr><th>Resource</th><th>Type</th><th>Account</th><th>Region</th><th class=\"n\">Errors</th><th class=\"n\">Monthly cost</th></tr></thead><tbody>\n");
    for r in &report.worst_offenders {
        writeln!(
            h,
            "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&r.arn),
            escape(r.name.as_deref().unwrap_or(&r.arn)),
            escape(&r.resource_type),
            escape(&r.account_id),
            escape(&r.region),
            r.errors.unwrap_or(0),
            money(r.monthly_cost)
        )?;
    }
    h.push_str("</tbody></table>\n");
    if !report.scan.issues.is_empty() {
        h.push_str("<h2>Issues</h2>\n<ul>\n");
        for issue in &report.scan.issues {
            writeln!(
                h,
                "<li>{} {} {}: {} — {}</li>",
                escape(&issue.account_id),
                escape(&issue.region),
                escape(&issue.service),
                issue.kind,
                escape(&issue.message)
            )?;
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body>\n</html>\n");
    Ok(())
}

fn money(amount: Option<Usd>) -> String {
    amount.map_or("unknown".to_string(), Usd::display)
}

fn group_table(h: &mut String, title: &str, first: &str, rows: &[GroupRow]) -> std::fmt::Result {
    writeln!(
        h,
        "<h2>{title}</h2>\n<table><thead><tr><th>{first}</th><th class=\"n\">Resources</th><th class=\"n\">Compliant</th><th class=\"n\">Non-compliant</th><th class=\"n\">Not applicable</th><th class=\"n\">Score</th><th class=\"n\">Errors</th><th class=\"n\">Non-compliant cost</th></tr></thead><tbody>"
    )?;
    for row in rows {
        writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&row.name),
            thousands(row.total),
            thousands(row.compliant),
            thousands(row.non_compliant),
            thousands(row.not_applicable),
            row.score.map_or("n/a".to_string(), percent),
            thousands(row.errors),
            escape(
                &row.non_compliant_cost
                    .as_ref()
                    .map_or("not summed".to_string(), spend)
            )
        )?;
    }
    h.push_str("</tbody></table>\n");
    Ok(())
}

const CHART_W: f64 = 360.0;
const CHART_H: f64 = 200.0;

/// The score of each trend point as a line, 0–100 %.
fn score_chart(report: &Report, h: &mut String) -> std::fmt::Result {
    let points = report.trend.as_ref().map_or(&[][..], |t| &t.points[..]);
    writeln!(
        h,
        "<figure id=\"chart-score\"><svg role=\"img\" aria-label=\"Compliance score over time\" width=\"{CHART_W}\" height=\"{CHART_H}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" xmlns=\"http://www.w3.org/2000/svg\">"
    )?;
    let (left, right, top, bottom) = (36.0, CHART_W - 10.0, 10.0, CHART_H - 28.0);
    for pct in [0, 50, 100] {
        let y = bottom - (bottom - top) * f64::from(pct) / 100.0;
        writeln!(
            h,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#d8dde6\"/><text x=\"4\" y=\"{:.1}\">{pct}%</text>",
            y + 4.0
        )?;
    }
    let x_of = |i: usize| {
        if points.len() <= 1 {
            (left + right) / 2.0
        } else {
            left + (right - left) * i as f64 / (points.len() - 1) as f64
        }
    };
    let y_of = |score: f64| bottom - (bottom - top) * score.clamp(0.0, 1.0);
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x_of(i), y_of(p.score)))
        .collect();
    if points.len() > 1 {
        writeln!(
            h,
            "<polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        )?;
    }
    for (i, p) in points.iter().enumerate() {
        writeln!(
            h,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#2563eb\"><title>{} {}</title></circle>",
            x_of(i),
            y_of(p.score),
            escape(&p.period),
            percent(p.score)
        )?;
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        writeln!(
            h,
            "<text x=\"{left}\" y=\"{}\">{}</text><text x=\"{right}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            CHART_H - 8.0,
            escape(&first.period),
            CHART_H - 8.0,
            escape(&last.period)
        )?;
    }
    let caption = match points.len() {
        0 => "Compliance score over time: no history".to_string(),
        1 => format!(
            "Compliance score over time: one scan ({})",
            percent(points[0].score)
        ),
        n => format!("Compliance score over time: {n} periods"),
    };
    writeln!(
        h,
        "</svg><figcaption>{}</figcaption></figure>",
        escape(&caption)
    )
}

/// Horizontal bars: `(label, value, text)`, longest first, scaled to the largest.
fn bars(
    h: &mut String,
    id: &str,
    label: &str,
    rows: &[(String, f64, String)],
    empty: &str,
) -> std::fmt::Result {
    let height = (rows.len().max(1) as f64) * 22.0 + 12.0;
    writeln!(
        h,
        "<figure id=\"{id}\"><svg role=\"img\" aria-label=\"{}\" width=\"{CHART_W}\" height=\"{height}\" viewBox=\"0 0 {CHART_W} {height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(label)
    )?;
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max);
    let (label_w, text_w) = (132.0, 86.0);
    let span = CHART_W - label_w - text_w;
    if rows.is_empty() {
        writeln!(h, "<text x=\"4\" y=\"20\">{}</text>", escape(empty))?;
    }
    for (i, (name, value, text)) in rows.iter().enumerate() {
        let y = 6.0 + i as f64 * 22.0;
        let w = if max > 0.0 { span * value / max } else { 0.0 };
        writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect class=\"bar\" x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"16\" fill=\"#2563eb\"><title>{}: {}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 6.0,
            y + 12.0,
            escape(&crate::domain::text::truncate(name, 20)),
            escape(name),
            escape(text),
            label_w + w + 4.0,
            y + 12.0,
            escape(text)
        )?;
    }
    writeln!(
        h,
        "</svg><figcaption>{}</figcaption></figure>",
        escape(label)
    )
}

fn tag_chart(report: &Report, h: &mut String) -> std::fmt::Result {
    let rows: Vec<(String, f64, String)> = report
        .by_tag
        .iter()
        .take(12)
        .map(|t| {
            let n = t.missing + t.invalid + t.warnings;
            (t.tag.clone(), n as f64, thousands(n))
        })
        .filter(|r| r.1 > 0.0)
        .collect();
    bars(h, "chart-tags", "Violations by tag", &rows, "no violations")
}

fn gap_chart(report: &Report, h: &mut String) -> std::fmt::Result {
    let Some(gap) = &report.cost_gap.figures else {
        return bars(
            h,
            "chart-gap",
            "Attribution gap by service",
            &[],
            "no billing data",
        );
    };
    let mut rows: Vec<(String, f64, String)> = gap
        .breakdown
        .iter()
        .filter_map(|row| {
            let g = row.gap?;
            (g.cents() > 0).then(|| (row.key.clone(), g.as_dollars(), g.display()))
        })
        .collect();
    // The widest gaps first; the chart is read for where the money is.
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    rows.truncate(12);
    bars(
        h,
        "chart-gap",
        &format!("Attribution gap by {}", super::cost::group_name(gap)),
        &rows,
        "no gap",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
