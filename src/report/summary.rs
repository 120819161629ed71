//! The terminal summary: what a person wants to see first, not every row.

use std::io::{self, Write};

use super::{percent, thousands};
use crate::domain::ScanResult;
use crate::domain::text::{show, truncate};

/// Writes the summary.
pub fn write(result: &ScanResult, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "tagguard scan {} of {} · policy {} · {} · {} ms",
        result.meta.scan_id,
        result.meta.source,
        result.meta.policy_version,
        plural(result.meta.shards_total, "shard"),
        thousands(result.meta.duration_ms)
    )?;
    writeln!(out)?;
    let judged = result.totals.compliant_resources + result.totals.non_compliant_resources;
    writeln!(
        out,
        "Compliance score  {}  ({} of {} resources compliant)",
        percent(result.totals.compliance_score),
        thousands(result.totals.compliant_resources),
        thousands(judged)
    )?;
    if result.totals.not_applicable_resources > 0 {
        writeln!(
            out,
            "Not applicable    {} no required tag applies to (not in the score)",
            plural(result.totals.not_applicable_resources, "resource")
        )?;
    }
    writeln!(
        out,
        "Violations        {}, {}",
        plural(result.totals.error_count, "error"),
        plural(result.totals.warning_count, "warning")
    )?;
    if let Some(cost) = &result.tally.cost {
        let gap = cost.non_compliant();
        let sources: Vec<String> = gap.sources.iter().map(|s| s.to_string()).collect();
        writeln!(
            out,
            "Non-compliant     {}/month over {} resources{}{}",
            gap.monthly_cost.display(),
            thousands(gap.known),
            if sources.is_empty() {
                String::new()
            } else {
                format!(" ({})", sources.join(", "))
            },
            if gap.unknown > 0 {
                format!("; {} more of unknown cost", thousands(gap.unknown))
            } else {
                String::new()
            }
        )?;
    }
    if result.partial {
        writeln!(
            out,
            "Partial scan      {}; counts cover what could be read (see Issues)",
            plural(result.tally.issues.len() as u64, "issue")
        )?;
    }

    if !result.tally.by_resource_type.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>8} {:>9}",
            "Resource type", "resources", "compliant", "score", "warnings"
        )?;
        for (resource_type, counts) in &result.tally.by_resource_type {
            writeln!(
                out,
                "{:<24} {:>10} {:>10} {:>8} {:>9}",
                resource_type.as_str(),
                thousands(counts.total),
                thousands(counts.compliant),
                percent(counts.score()),
                thousands(counts.warnings)
            )?;
        }
    }

    if !result.tally.by_tag.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>9}",
            "Tag", "missing", "invalid", "warnings"
        )?;
        let mut tags: Vec<_> = result.tally.by_tag.iter().collect();
        tags.sort_by(|a, b| {
            (b.1.missing + b.1.invalid, b.1.warnings)
                .cmp(&(a.1.missing + a.1.invalid, a.1.warnings))
                .then(a.0.cmp(b.0))
        });
        for (tag, counts) in tags.iter().take(15) {
            writeln!(
                out,
                "{:<24} {:>10} {:>10} {:>9}",
                truncate(&show(tag), 24),
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

    if !result.tally.worst_offenders.is_empty() {
        writeln!(out)?;
        writeln!(out, "Worst offenders")?;
        for offender in result.tally.worst_offenders.as_slice() {
            let cost = offender
                .resource
                .monthly_cost
                .map(|c| {
                    format!(
                        " · {}/month ({})",
                        c.display(),
                        offender.resource.cost_source
                    )
                })
                .unwrap_or_default();
            writeln!(
                out,
                "  {}  {} errors, {} warnings{}",
                offender.resource.arn, offender.errors, offender.warnings, cost
            )?;
        }
    }

    if !result.meta.notes.is_empty() {
        writeln!(out)?;
        writeln!(out, "Notes")?;
        for note in &result.meta.notes {
            writeln!(out, "  {}", show(note))?;
        }
    }
    if !result.meta.api_calls.is_empty() {
        writeln!(out)?;
        let total: u64 = result.meta.api_calls.values().sum();
        let throttled: u64 = result.meta.throttled_calls.values().sum();
        let retried: u64 = result.meta.retried_calls.values().sum();
        if throttled + retried > 0 {
            writeln!(
                out,
                "AWS API calls     {} ({} throttled, {} retries)",
                thousands(total),
                thousands(throttled),
                thousands(retried)
            )?;
        } else {
            writeln!(out, "AWS API calls     {}", thousands(total))?;
        }
    }

    if !result.tally.issues.is_empty() {
        writeln!(out)?;
        writeln!(out, "Issues")?;
        for issue in &result.tally.issues {
            let place = issue.place();
            writeln!(
                out,
                "  {}: {}: {}",
                show(&place),
                issue.kind,
                show(&issue.message)
            )?;
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
