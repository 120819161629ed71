//! Every redb table tagguard keeps, declared in one place, and the schema version.
//!
//! Values are JSON bytes of the types in [`super`]: readable with any redb tool, and a field
//! added with `#[serde(default)]` needs no migration. A change that old code cannot read bumps
//! [`SCHEMA_VERSION`] and adds a step to [`super::migrate`].

use redb::TableDefinition;

/// The layout of the file. Files of a newer version are refused rather than misread.
pub const SCHEMA_VERSION: u64 = 2;

/// `schema_version` and other single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Scan summaries by scan id (time-ordered: microseconds since the epoch at the start).
pub const SCANS: TableDefinition<u64, &[u8]> = TableDefinition::new("scans");

/// Per-resource findings of recent scans, by (scan id, chunk number): each value holds up to
/// [`super::FINDINGS_PER_CHUNK`] findings, grouped by resource and compressed
/// (`findings.rs`), so one huge scan is not one huge value.
pub const FINDINGS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("findings");

/// Audit records of tool calls, by time (microseconds since the epoch, made unique by the
/// writer).
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Cached scan results by normalised query key (a format byte, then LZ4 over the result's
/// JSON).
pub const CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("cache");

/// The recorded scans whose findings are kept, by (source and scope key, scan id): so that
/// findings are kept per scope, and pruning reads only those. Since schema version 2.
pub const SCOPE_SCANS: TableDefinition<(&str, u64), ()> = TableDefinition::new("scope_scans");

/// Spool files merged, by name, with the id their scan was stored under: a file found again
/// (a merge cut short before it was deleted) is not stored twice. A table added without a
/// version bump: older code ignores it.
pub const SPOOLED: TableDefinition<&str, u64> = TableDefinition::new("spooled");

/// Remediation records by key (`plan|ID`: a plan, as JSON), so that a plan made by one
/// command can be applied by another and undone later. A table added without a version bump:
/// older code ignores it.
pub const REMEDIATION: TableDefinition<&str, &[u8]> = TableDefinition::new("remediation");
