//! CSV: one row per violation, for spreadsheets and ticket imports.

use std::io::{self, Write};

use crate::domain::{Expected, ScanResult};

/// Columns, in order.
pub const HEADER: [&str; 14] = [
    "resource_arn",
    "resource_id",
    "resource_type",
    "region",
    "account_id",
    "violation_type",
    "tag_name",
    "severity",
    "current_value",
    "allowed_values",
    "expected",
    "monthly_cost",
    "cost_source",
    "message",
];

/// The csv crate wraps I/O errors in its own type; unwrap them so a closed pipe stays a closed
/// pipe for the caller.
pub(crate) fn io(error: csv::Error) -> io::Error {
    match error.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Writes every listed violation; allowed values are joined with `|`.
pub fn write(result: &ScanResult, out: &mut dyn Write) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(HEADER).map_err(io)?;
    for v in result.violations() {
        let r = &v.resource;
        let f = &v.finding;
        let (allowed, expected) = match &f.expected {
            Expected::Nothing => (String::new(), String::new()),
            Expected::AllowedValues(values) => (values.join("|"), String::new()),
            Expected::Pattern(pattern) => (String::new(), pattern.to_string()),
            Expected::Canonical(value) => (String::new(), value.to_string()),
            Expected::MaxLength(max) => (String::new(), format!("max {max} characters")),
        };
        writer
            .write_record([
                r.arn.as_str(),
                r.id.as_str(),
                r.resource_type.as_str(),
                &r.region,
                &r.account_id,
                f.violation_type.as_str(),
                &f.tag_name,
                &f.severity.to_string(),
                f.current_value.as_deref().unwrap_or(""),
                &allowed,
                &expected,
                &r.monthly_cost.map(|c| c.cents_text()).unwrap_or_default(),
                r.cost_source.as_str(),
                &v.message(),
            ])
            .map_err(io)?;
    }
    writer.flush()
}
