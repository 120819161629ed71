//! CSV: one row per violation, for spreadsheets and ticket imports.

use std::borrow::Cow;
use std::io::{self, Write};

use crate::domain::{Expected, ScanResult};

/// A text cell made safe for spreadsheets and terminals: a cell starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return is a formula to Excel, LibreOffice and Google Sheets (CSV
/// injection), so it gets a leading `'`, which they show as text and do not print; control
/// and invisible characters (terminal escape sequences among them) are written as `<U+001B>`.
/// Numbers are not passed through this: they are written by tagguard, never taken from input.
pub(crate) fn text(cell: &str) -> Cow<'_, str> {
    let shown = crate::domain::text::show(cell);
    match shown.chars().next() {
        Some('=' | '+' | '-' | '@' | '\u{FF1D}' | '\u{FF0B}' | '\u{FF0D}' | '\u{FF20}') => {
            Cow::Owned(format!("'{shown}"))
        }
        _ => shown,
    }
}

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

/// Writes every listed violation; allowed values are joined with `|`; text cells are made
/// safe for spreadsheets (`text`).
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
            .write_record(
                [
                    text(&r.arn),
                    text(&r.id),
                    text(r.resource_type.as_str()),
                    text(&r.region),
                    text(&r.account_id),
                    Cow::Borrowed(f.violation_type.as_str()),
                    text(&f.tag_name),
                    Cow::Owned(f.severity.to_string()),
                    text(f.current_value.as_deref().unwrap_or("")),
                    text(&allowed),
                    text(&expected),
                    Cow::Owned(r.monthly_cost.map(|c| c.cents_text()).unwrap_or_default()),
                    Cow::Borrowed(r.cost_source.as_str()),
                    text(&v.message()).into_owned().into(),
                ]
                .iter()
                .map(|c| c.as_bytes()),
            )
            .map_err(io)?;
    }
    writer.flush()
}
