//! The terminal summary: what a person wants to see first, not every row.

use std::io::{self, Write};

use super::{percent, thousands};
use crate::domain::{ScanResult, ScanResult as R};

/// Writes the summary.
pub fn write(result: &ScanResult, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "tagguard scan {} of {} · policy {} · {} · {} ms",
        result.scan_id,
        result.source,
        result.policy_version,
        plural(result.shards_total, "shard"),
        thousands(result.duration_ms)
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Compliance score  {}  ({} of {} resources compliant)",
        percent(result.compliance_score),
        thousands(result.compliant_resources),
        thousands(result.total_resources)
    )?;
    writeln!(
        out,
        "Violations        {}, {}",
        plural(result.error_count, "error"),
        plural(result.warning_count, "warning")
    )?;
    if result.partial {
        writeln!(
            out,
            "Partial scan      {}; counts cover what could be read (see Issues)",
            plural(result.issues.len() as u64, "issue")
        )?;
    }

    if !result.by_resource_type.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>8} {:>9}",
            "Resource type", "resources", "compliant", "score", "warnings"
        )?;
        for (resource_type, counts) in &result.by_resource_type {
            writeln!(
                out,
                "{:<24} {:>10} {:>10} {:>8} {:>9}",
                resource_type.as_str(),
                thousands(counts.total),
                thousands(counts.compliant),
                percent(R::score(counts.compliant, counts.total)),
                thousands(counts.warnings)
            )?;
        }
    }

    if !result.by_tag.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>9}",
            "Tag", "missing", "invalid", "warnings"
        )?;
        let mut tags: Vec<_> = result.by_tag.iter().collect();
        tags.sort_by(|a, b| {
            (b.1.missing + b.1.invalid, b.1.warnings)
                .cmp(&(a.1.missing + a.1.invalid, a.1.warnings))
                .then(a.0.cmp(b.0))
        });
        for (tag, counts) in tags.iter().take(15) {
            writeln!(
                out,
                "{:<24} {:>10} {:>10} {:>9}",
                truncate(tag, 24),
                thousands(counts.missing),
                thousands(counts.invalid),
                thousands(counts.warnings)
            )?;
        }
        if tags.len() > 15 {
            writeln!(
                out,
                "… and {} more tags (see --format json)",
                tags.len() - 15
            )?;
        }
    }

    if !result.worst_offenders.is_empty() {
        writeln!(out)?;
        writeln!(out, "Worst offenders")?;
        for offender in &result.worst_offenders {
            let cost = offender
                .resource
                .monthly_cost
                .map(|c| format!(" · ${c:.2}/month"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {}  {} errors, {} warnings{}",
                offender.resource.arn, offender.errors, offender.warnings, cost
            )?;
        }
    }

    if !result.notes.is_empty() {
        writeln!(out)?;
        writeln!(out, "Notes")?;
        for note in &result.notes {
            writeln!(out, "  {note}")?;
        }
    }
    if !result.api_calls.is_empty() {
        writeln!(out)?;
        let total: u64 = result.api_calls.values().sum();
        writeln!(out, "AWS API calls     {}", thousands(total))?;
    }

    if !result.issues.is_empty() {
        writeln!(out)?;
        writeln!(out, "Issues")?;
        for issue in &result.issues {
            let place = issue.place();
            writeln!(out, "  {place}: {}: {}", issue.kind, issue.message)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "Every violation: --format json, csv or markdown.")
}

/// `1 issue`, `2 issues`.
pub(crate) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}
