//! Suggestions and their evaluation for people: per resource and tag, the candidates with
//! their confidence and reasoning; the reliability table of an evaluation.

use std::io::{self, Write};

use crate::domain::text::show as visible;
use crate::suggest::evaluate::{Evaluation, Measured};
use crate::suggest::service::{ResourceStatus, SuggestReport};

/// Writes `report` as text.
pub fn write_suggestions(report: &SuggestReport, out: &mut dyn Write) -> io::Result<()> {
    for item in &report.results {
        writeln!(out, "{}", visible(&item.resource_arn))?;
        if item.status != ResourceStatus::Found || item.tags.is_empty() {
            if let Some(message) = &item.message {
                writeln!(out, "  {}", visible(message))?;
            }
            continue;
        }
        for tag in &item.tags {
            let current = tag
                .current_value
                .as_deref()
                .map_or_else(String::new, |v| format!(" (now '{}')", visible(v)));
            writeln!(
                out,
                "  {} {}{current}",
                tag.tag,
                serde_json::to_value(tag.problem)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )?;
            for c in &tag.candidates {
                writeln!(
                    out,
                    "    {:>5.3}  {:<24} {}",
                    c.confidence,
                    visible(&c.value),
                    visible(&c.reasoning)
                )?;
            }
            if let Some(why) = &tag.no_suggestion {
                writeln!(out, "    no suggestion: {}", visible(why))?;
            }
        }
    }
    writeln!(
        out,
        "\n{} tag(s) with candidates ({} confident, 0.8 or more), {} without; evidence: {} resources, {} groups, {} VPCs and subnets",
        report.tags_with_candidates,
        report.confident,
        report.without_candidate,
        report.evidence.resources_scanned,
        report.evidence.groups,
        report.evidence.network_objects
    )?;
    for issue in &report.issues {
        writeln!(
            out,
            "issue: {} {} {}: {} ({})",
            issue.account_id,
            issue.region,
            issue.service,
            visible(&issue.message),
            issue.kind
        )?;
    }
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{:.1}%", x * 100.0))
}

fn write_measured(title: &str, m: &Measured, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{title}")?;
    writeln!(
        out,
        "  {:<11} {:>11} {:>8} {:>10} {:>15}",
        "confidence", "suggestions", "right", "accuracy", "mean confidence"
    )?;
    for band in &m.bands {
        writeln!(
            out,
            "  {:<11} {:>11} {:>8} {:>10} {:>15}",
            format!("{:.2}-{:.2}", band.low, band.high),
            band.suggestions,
            band.right,
            percent(band.accuracy),
            band.mean_confidence
                .map_or_else(|| "-".to_string(), |c| format!("{c:.3}"))
        )?;
    }
    writeln!(
        out,
        "  tags {} · with a candidate {} · top right {} · confident (>= 0.8) {} of which right {} ({}) · coverage {}",
        m.tags,
        m.offered,
        m.top_right,
        m.confident,
        m.confident_right,
        percent(m.confident_accuracy),
        percent(m.coverage)
    )
}

/// Writes `evaluation` as text.
pub fn write_evaluation(evaluation: &Evaluation, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{} resources, {} compliant ones evaluated",
        evaluation.resources, evaluation.compliant
    )?;
    write_measured(
        "\nKnown tags of compliant resources, hidden one at a time and predicted:",
        &evaluation.hidden,
        out,
    )?;
    writeln!(out, "\nPer tag:")?;
    for (tag, m) in &evaluation.per_tag {
        writeln!(
            out,
            "  {:<16} tags {:>7} · confident {:>7} · right {} · coverage {}",
            tag,
            m.tags,
            m.confident,
            percent(m.confident_accuracy),
            percent(m.coverage)
        )?;
    }
    if let Some(intended) = &evaluation.intended {
        write_measured(
            "\nMissing tags of broken resources, against the values the generator meant:",
            intended,
            out,
        )?;
    }
    Ok(())
}
