//! History for people: one line per period, the trend, and the drift since the last scan.

use std::io::{self, Write};

use crate::store::history::{ChangeKind, HistoryReport};

/// Writes `report` as a table.
pub fn write_table(report: &HistoryReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<12} {:>5} {:>7} {:>10} {:>14} {:>7} {:>9} {:>9}",
        "period", "scans", "score", "resources", "non-compliant", "errors", "warnings", "cost gap"
    )?;
    for p in &report.history {
        writeln!(
            out,
            "{:<12} {:>5} {:>6.1}% {:>10} {:>14} {:>7} {:>9} {:>9}",
            p.period,
            p.scans,
            p.totals.compliance_score * 100.0,
            p.totals.total_resources,
            p.totals.non_compliant_resources,
            p.totals.error_count,
            p.totals.warning_count,
            p.cost_gap
                .as_ref()
                .and_then(|g| g.gap_percent)
                .map_or_else(|| "-".to_string(), |g| format!("{g:.2}%"))
        )?;
    }
    if report.history.len() == 1 {
        writeln!(out, "\ntrend: one period so far, nothing to compare yet")?;
    } else if report.history.len() > 1 {
        writeln!(
            out,
            "\ntrend: {} ({:+.1} points over {} scans)",
            report.trend,
            report.score_change * 100.0,
            report.scans_considered
        )?;
    }
    if let Some(gap) = &report.gap_trend {
        writeln!(
            out,
            "cost gap: {} ({:.2}% to {:.2}%, {:+.2} points over {} periods with a gap recorded)",
            gap.direction, gap.first_percent, gap.last_percent, gap.change_points, gap.periods
        )?;
    }
    if let Some(drift) = &report.drift {
        writeln!(
            out,
            "since {}: {} became non-compliant, {} no longer non-compliant, {} tag changes",
            drift.from_scanned_at.format("%Y-%m-%d %H:%M UTC"),
            drift.became_non_compliant_count,
            drift.no_longer_non_compliant_count,
            drift.tag_changes_count
        )?;
        // Values are known only where they broke a rule; "ok or absent" is the rest.
        let shown = |value: &Option<String>| match value {
            Some(v) => format!("'{v}'"),
            None => "ok or absent".to_string(),
        };
        for change in &drift.tag_changes {
            match change.change {
                ChangeKind::Added => {
                    writeln!(out, "  {}: {} added", change.resource_arn, change.tag)?
                }
                ChangeKind::Removed => {
                    writeln!(out, "  {}: {} removed", change.resource_arn, change.tag)?
                }
                ChangeKind::Changed => writeln!(
                    out,
                    "  {}: {} changed from {} to {}",
                    change.resource_arn,
                    change.tag,
                    shown(&change.before),
                    shown(&change.after)
                )?,
            }
        }
    }
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}
