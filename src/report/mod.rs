//! Rendering a scan result: a terminal summary, JSON, CSV and Markdown.

mod csv;
mod markdown;
mod summary;

use std::io::{self, Write};
use std::str::FromStr;

use crate::domain::ScanResult;

pub use markdown::MARKDOWN_VIOLATION_ROWS;

/// Output formats.
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

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "markdown" | "md" => Ok(Format::Markdown),
            other => Err(format!(
                "'{other}' is not a format: use table, json, csv or markdown"
            )),
        }
    }
}

/// Writes `result` in `format` to `out`.
pub fn write(result: &ScanResult, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => summary::write(result, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, result)?;
            writeln!(out)
        }
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
        assert!("xml".parse::<Format>().unwrap_err().contains("'xml'"));
    }
}
