//! Rendering for people and files: a scan result (a terminal summary, JSON, CSV, Markdown),
//! the cost-attribution gap, the history, and the audit log.

pub mod audit;
pub mod compliance;
pub mod cost;
mod csv;
pub mod document;
pub mod history;
pub mod html;
pub mod json;
mod markdown;
pub mod suggest;
mod summary;

use std::io::{self, Write};

use crate::domain::ScanResult;

pub use markdown::MARKDOWN_VIOLATION_ROWS;

/// Output formats of a scan result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A human summary: score, per-type and per-tag counts, worst offenders, issues.
    #[default]
    Table,
    /// The full result, every violation included.
    Json,
    /// One row per violation.
    Csv,
    /// A report for tickets and wikis.
    Markdown,
}

crate::domain::string_enum!(Format "a format" {
    Table => "table",
    Json => "json",
    Csv => "csv",
    Markdown => "markdown",
});

/// Writes `result` in `format` to `out`.
pub fn write(result: &ScanResult, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => summary::write(result, out),
        Format::Json => json::write(result, out),
        Format::Csv => csv::write(result, out),
        Format::Markdown => markdown::write(result, out),
    }
}

/// A count with thousands separators: `12,345`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio as a percentage with one decimal: `61.3%`.
pub(crate) fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse(), Ok(Format::Json));
        let error = "xml".parse::<Format>().unwrap_err();
        assert!(error.contains("'xml'") && error.contains("table, json, csv or markdown"));
    }
}
