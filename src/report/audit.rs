//! The audit log for people and spreadsheets: one line, or one CSV row, per tool call.

use std::io::{self, Write};

use crate::store::AuditRecord;

/// CSV columns, in order.
pub const HEADER: [&str; 11] = [
    "at",
    "correlation_id",
    "session",
    "tool",
    "status",
    "error_kind",
    "duration_ms",
    "result_bytes",
    "cached",
    "parameters",
    "error",
];

/// Writes one line per record; `days` is the window asked for, named when it is empty.
pub fn write_table(records: &[AuditRecord], days: u32, out: &mut dyn Write) -> io::Result<()> {
    for r in records {
        writeln!(
            out,
            "{}  {:<26} {:<16} {:>7} ms  {}{}  {}",
            r.at.format("%Y-%m-%d %H:%M:%S"),
            r.tool,
            r.status.as_str(),
            r.duration_ms,
            if r.cached { "cached " } else { "" },
            r.parameters,
            r.error.as_deref().unwrap_or("")
        )?;
    }
    if records.is_empty() {
        writeln!(out, "no tool call recorded in the last {days} days")?;
    }
    Ok(())
}

/// Writes the records as CSV with a header row.
pub fn write_csv(records: &[AuditRecord], out: &mut dyn Write) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(HEADER).map_err(super::csv::io)?;
    for r in records {
        let text = |cell: &str| super::csv::text(cell).into_owned();
        csv.write_record([
            r.at.to_rfc3339(),
            text(&r.correlation_id),
            text(&r.session),
            text(&r.tool),
            r.status.as_str().to_string(),
            text(r.error_kind.as_deref().unwrap_or_default()),
            r.duration_ms.to_string(),
            r.result_bytes.to_string(),
            r.cached.to_string(),
            text(&r.parameters.to_string()),
            text(r.error.as_deref().unwrap_or_default()),
        ])
        .map_err(super::csv::io)?;
    }
    csv.flush()
}
