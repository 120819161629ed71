//! Markdown: a report for tickets and wikis, with the first violations as a table.

use std::io::{self, Write};

use super::{percent, thousands};
use crate::domain::ScanResult;

/// Violations listed in the Markdown report; the rest are counted, not listed.
pub const MARKDOWN_VIOLATION_ROWS: usize = 200;

/// Text from input made safe for a Markdown table cell or line: it can neither end the cell,
/// nor start markup (emphasis, links, code), nor pass raw HTML to the renderer; invisible and
/// control characters are shown by code point.
pub(crate) fn cell(text: &str) -> String {
    let shown = crate::domain::text::show(text);
    let mut out = String::with_capacity(shown.len() + 8);
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text from input as a code span in a table: fenced by more backticks than it holds, so it
/// cannot close the span early; `|` escaped so that it does not end the cell (GitHub's tables
/// split cells before reading spans). HTML is not read inside a code span.
fn code(text: &str) -> String {
    let shown = crate::domain::text::show(text).replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in shown.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if longest > 0 { " " } else { "" };
    format!("{fence}{pad}{shown}{pad}{fence}")
}

/// Writes the report.
pub fn write(result: &ScanResult, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "# Tag compliance report")?;
    writeln!(out)?;
    writeln!(
        out,
        "Scan `{}` of {} at {} with policy {}.",
        result.meta.scan_id,
        code(&result.meta.source),
        result.meta.scan_timestamp.format("%Y-%m-%d %H:%M:%S UTC"),
        cell(&result.meta.policy_version)
    )?;
    writeln!(out)?;
    writeln!(out, "| Measure | Value |")?;
    writeln!(out, "|---|---|")?;
    writeln!(
        out,
        "| Compliance score | {} |",
        percent(result.totals.compliance_score)
    )?;
    writeln!(
        out,
        "| Resources | {} |",
        thousands(result.totals.total_resources)
    )?;
    writeln!(
        out,
        "| Compliant | {} |",
        thousands(result.totals.compliant_resources)
    )?;
    writeln!(
        out,
        "| Non-compliant | {} |",
        thousands(result.totals.non_compliant_resources)
    )?;
    if result.totals.not_applicable_resources > 0 {
        writeln!(
            out,
            "| Not applicable (no required tag applies; not in the score) | {} |",
            thousands(result.totals.not_applicable_resources)
        )?;
    }
    writeln!(out, "| Errors | {} |", thousands(result.totals.error_count))?;
    writeln!(
        out,
        "| Warnings | {} |",
        thousands(result.totals.warning_count)
    )?;
    if result.partial {
        writeln!(
            out,
            "| Partial | {} |",
            super::summary::plural(result.tally.issues.len() as u64, "issue")
        )?;
    }

    writeln!(out)?;
    writeln!(out, "## By resource type")?;
    writeln!(out)?;
    writeln!(
        out,
        "| Type | Resources | Compliant | Score | Errors | Warnings |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for (resource_type, c) in &result.tally.by_resource_type {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            code(resource_type.as_str()),
            thousands(c.total),
            thousands(c.compliant),
            percent(c.score()),
            thousands(c.errors),
            thousands(c.warnings)
        )?;
    }

    if !result.tally.by_tag.is_empty() {
        writeln!(out)?;
        writeln!(out, "## By tag")?;
        writeln!(out)?;
        writeln!(out, "| Tag | Missing | Invalid | Warnings |")?;
        writeln!(out, "|---|---:|---:|---:|")?;
        for (tag, c) in &result.tally.by_tag {
            writeln!(
                out,
                "| {} | {} | {} | {} |",
                code(tag),
                thousands(c.missing),
                thousands(c.invalid),
                thousands(c.warnings)
            )?;
        }
    }

    if !result.tally.issues.is_empty() {
        writeln!(out)?;
        writeln!(out, "## Issues (the scan is partial)")?;
        writeln!(out)?;
        for issue in &result.tally.issues {
            let place = issue.place();
            writeln!(
                out,
                "- {} {}: {}",
                code(&place),
                issue.kind,
                cell(&issue.message)
            )?;
        }
    }

    writeln!(out)?;
    writeln!(out, "## Violations")?;
    writeln!(out)?;
    if result.tally.violations.is_empty() {
        writeln!(out, "None.")?;
        return Ok(());
    }
    writeln!(
        out,
        "| Resource | Type | Region | Account | Violation | Tag | Severity | Detail |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|")?;
    for v in result.violations().take(MARKDOWN_VIOLATION_ROWS) {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            code(&v.resource.arn),
            code(v.resource.resource_type.as_str()),
            cell(&v.resource.region),
            cell(&v.resource.account_id),
            v.finding.violation_type,
            code(&v.finding.tag_name),
            v.finding.severity,
            cell(&v.message())
        )?;
    }
    if result.tally.violations.len() > MARKDOWN_VIOLATION_ROWS {
        writeln!(out)?;
        writeln!(
            out,
            "{} more violations are not listed here; `--format json` or `--format csv` lists them all.",
            thousands((result.tally.violations.len() - MARKDOWN_VIOLATION_ROWS) as u64)
        )?;
    }
    Ok(())
}
