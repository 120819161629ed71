//! The attribution gap rendered: a terminal table, JSON, CSV (one row per figure, with its
//! section) and Markdown. Amounts are shown to the cent; unknown figures are shown as
//! `unknown`, never as zero.

use std::io::{self, Write};

use super::Format;
use crate::cost::AttributionGap;
use crate::cost::TagStatus;
use crate::domain::Usd;

/// Writes `gap` in `format` to `out`.
pub fn write(gap: &AttributionGap, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => table(gap, out),
        Format::Json => super::json::write(gap, out),
        Format::Csv => csv(gap, out),
        Format::Markdown => markdown(gap, out),
    }
}

fn money(amount: Option<Usd>) -> String {
    amount.map_or_else(|| "unknown".to_string(), Usd::display)
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "unknown".to_string(), |p| format!("{p:.2}%"))
}

fn headline(gap: &AttributionGap) -> String {
    format!(
        "{} {} to {} (end exclusive), {}{}",
        match gap.data_source.as_str() {
            "demo_billing" => "Demo billing,",
            _ => "Cost Explorer,",
        },
        gap.period_start,
        gap.period_end,
        gap.metric.ce_name(),
        if gap.estimated { ", estimated" } else { "" }
    )
}

fn table(gap: &AttributionGap, out: &mut dyn Write) -> io::Result<()> {
    let show = |t: &str| crate::domain::text::show(t).into_owned();
    writeln!(out, "Cost attribution gap: {}", headline(gap))?;
    writeln!(
        out,
        "Allocation tags ({}): {}",
        gap.tags_from,
        gap.allocation_tags
            .iter()
            .map(|t| show(t))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "  Usage spend        {:>16}",
        gap.total_spend.display()
    )?;
    writeln!(
        out,
        "  Attributable       {:>16}",
        money(gap.attributable_spend)
    )?;
    writeln!(
        out,
        "  Gap                {:>16}  ({})",
        money(gap.gap),
        pct(gap.gap_percent)
    )?;
    if let Some(bounds) = gap.attributable_bounds {
        writeln!(
            out,
            "  Attributable is between {} and {}",
            bounds.low.display(),
            bounds.high.display()
        )?;
    }
    writeln!(
        out,
        "  Other charges      {:>16}  (not part of the gap)",
        money(gap.other_charges_total)
    )?;
    writeln!(out, "  Invoice total      {:>16}", money(gap.invoice_total))?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:<24} {:>14} {:>14} {:>14} {:>8}",
        "Tag", "Missing", "Invalid", "Valid", "Gap"
    )?;
    for row in &gap.by_tag {
        match row.status {
            TagStatus::Measured => writeln!(
                out,
                "  {:<24} {:>14} {:>14} {:>14} {:>8}",
                crate::domain::text::truncate(&show(&row.tag), 24),
                money(row.missing),
                money(row.invalid),
                money(row.valid),
                pct(row.gap_percent)
            )?,
            _ => writeln!(
                out,
                "  {:<24} {}",
                crate::domain::text::truncate(&show(&row.tag), 24),
                if row.status == TagStatus::NotMeasurable {
                    "not measurable: not activated as a cost allocation tag"
                } else {
                    "unknown: billing could not be asked"
                }
            )?,
        }
        for value in row.top_invalid_values.iter().take(3) {
            writeln!(
                out,
                "      invalid {:<30} {:>14}",
                crate::domain::text::truncate(&show(&format!("'{}'", value.value)), 30),
                value.spend.display()
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "  {:<40} {:>14} {:>14} {:>8}",
        format!("By {}", group_name(gap)),
        "Spend",
        "Gap",
        "Gap %"
    )?;
    for row in gap.breakdown.iter().take(15) {
        writeln!(
            out,
            "  {:<40} {:>14} {:>14} {:>8}",
            crate::domain::text::truncate(&show(&row.key), 40),
            row.total.display(),
            money(row.gap),
            pct(row.gap_percent)
        )?;
    }
    if gap.breakdown.len() > 15 {
        writeln!(
            out,
            "  … and {} more (--format json lists all)",
            gap.breakdown.len() - 15
        )?;
    }
    if let Some(charges) = &gap.other_charges
        && !charges.is_empty()
    {
        writeln!(out)?;
        writeln!(
            out,
            "  Other charges (outside usage, never part of the gap)"
        )?;
        for charge in charges {
            writeln!(
                out,
                "  {:<40} {:>14}",
                crate::domain::text::truncate(&show(&charge.record_type), 40),
                charge.amount.display()
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "Requests to billing: {} made ({}), {} from the cache, {} failed",
        gap.ce_requests.made,
        gap.ce_requests.price.display(),
        gap.ce_requests.from_cache,
        gap.ce_requests.failed
    )?;
    for issue in &gap.issues {
        writeln!(out, "Issue: {}: {}", issue.question, show(&issue.message))?;
    }
    for caveat in &gap.caveats {
        writeln!(out, "Note: {}", show(caveat))?;
    }
    Ok(())
}

pub(crate) fn group_name(gap: &AttributionGap) -> &'static str {
    match gap.group_by {
        crate::cost::Breakdown::Service => "service",
        crate::cost::Breakdown::Region => "region",
        crate::cost::Breakdown::Account => "account",
        crate::cost::Breakdown::ResourceType => "resource type",
    }
}

/// Columns of the CSV, in order.
pub const CSV_HEADER: [&str; 10] = [
    "section",
    "key",
    "status",
    "total",
    "attributable",
    "gap",
    "gap_percent",
    "missing",
    "invalid",
    "valid",
];

fn csv(gap: &AttributionGap, out: &mut dyn Write) -> io::Result<()> {
    let cents = |amount: Option<Usd>| amount.map(Usd::cents_text).unwrap_or_default();
    let pct = |value: Option<f64>| value.map(|p| format!("{p:.2}")).unwrap_or_default();
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER).map_err(super::csv::io)?;
    // The status goes third: `complete` or `partial` for the total, `measured`,
    // `not_measurable` or `unknown` for a tag, `estimated` for a slice not final.
    let mut row = |status: &str, cells: [String; 9]| {
        let [section, key, rest @ ..] = cells;
        let record = [section, key, status.to_string()].into_iter().chain(rest);
        w.write_record(record).map_err(super::csv::io)
    };
    let overall = if gap.partial { "partial" } else { "complete" };
    row(
        overall,
        [
            "total".into(),
            String::new(),
            cents(Some(gap.total_spend)),
            cents(gap.attributable_spend),
            cents(gap.gap),
            pct(gap.gap_percent),
            String::new(),
            String::new(),
            String::new(),
        ],
    )?;
    for tag in &gap.by_tag {
        let status = match tag.status {
            TagStatus::Measured => "measured",
            TagStatus::NotMeasurable => "not_measurable",
            TagStatus::Unknown => "unknown",
        };
        row(
            status,
            [
                "tag".into(),
                super::csv::text(&tag.tag).into_owned(),
                cents(tag.total),
                String::new(),
                cents(tag.missing.zip(tag.invalid).map(|(m, i)| m + i)),
                pct(tag.gap_percent),
                cents(tag.missing),
                cents(tag.invalid),
                cents(tag.valid),
            ],
        )?;
    }
    for group in &gap.breakdown {
        row(
            "",
            [
                group_name(gap).replace(' ', "_"),
                super::csv::text(&group.key).into_owned(),
                cents(Some(group.total)),
                cents(group.attributable),
                cents(group.gap),
                pct(group.gap_percent),
                String::new(),
                String::new(),
                String::new(),
            ],
        )?;
    }
    for slice in &gap.by_time {
        row(
            if slice.estimated { "estimated" } else { "" },
            [
                "time".into(),
                format!("{}..{}", slice.start, slice.end),
                cents(Some(slice.total)),
                cents(slice.attributable),
                cents(slice.gap),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
        )?;
    }
    for charge in gap.other_charges.iter().flatten() {
        row(
            "",
            [
                "other_charge".into(),
                super::csv::text(&charge.record_type).into_owned(),
                cents(Some(charge.amount)),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
        )?;
    }
    w.flush()
}

fn markdown(gap: &AttributionGap, out: &mut dyn Write) -> io::Result<()> {
    use super::markdown::cell;
    writeln!(out, "# Cost attribution gap")?;
    writeln!(out)?;
    writeln!(out, "{}.", cell(&headline(gap)))?;
    writeln!(out)?;
    writeln!(out, "| Figure | Amount |")?;
    writeln!(out, "|---|---:|")?;
    writeln!(out, "| Usage spend | {} |", gap.total_spend.display())?;
    writeln!(out, "| Attributable | {} |", money(gap.attributable_spend))?;
    writeln!(
        out,
        "| Gap | {} ({}) |",
        money(gap.gap),
        pct(gap.gap_percent)
    )?;
    writeln!(
        out,
        "| Other charges (not in the gap) | {} |",
        money(gap.other_charges_total)
    )?;
    writeln!(out, "| Invoice total | {} |", money(gap.invoice_total))?;
    writeln!(out)?;
    writeln!(out, "## By tag")?;
    writeln!(out)?;
    writeln!(out, "| Tag | Missing | Invalid | Valid | Gap |")?;
    writeln!(out, "|---|---:|---:|---:|---:|")?;
    for tag in &gap.by_tag {
        if tag.status == TagStatus::Measured {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&tag.tag),
                money(tag.missing),
                money(tag.invalid),
                money(tag.valid),
                pct(tag.gap_percent)
            )?;
        } else {
            let status = if tag.status == TagStatus::NotMeasurable {
                "not measurable"
            } else {
                "unknown"
            };
            writeln!(out, "| {} | {status} | | | |", cell(&tag.tag))?;
        }
    }
    writeln!(out)?;
    writeln!(out, "## By {}", group_name(gap))?;
    writeln!(out)?;
    writeln!(out, "| {} | Spend | Gap | Gap % |", group_name(gap))?;
    writeln!(out, "|---|---:|---:|---:|")?;
    for group in &gap.breakdown {
        writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&group.key),
            group.total.display(),
            money(group.gap),
            pct(group.gap_percent)
        )?;
    }
    if !gap.caveats.is_empty() || !gap.issues.is_empty() {
        writeln!(out)?;
        writeln!(out, "## Notes")?;
        writeln!(out)?;
        for issue in &gap.issues {
            writeln!(
                out,
                "- Issue ({}): {}",
                cell(&issue.question),
                cell(&issue.message)
            )?;
        }
        for caveat in &gap.caveats {
            writeln!(out, "- {}", cell(caveat))?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "Requests to billing: {} made ({}), {} from the cache.",
        gap.ce_requests.made,
        gap.ce_requests.price.display(),
        gap.ce_requests.from_cache
    )?;
    Ok(())
}
