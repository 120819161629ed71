//! The parts of tool answers that are views, not domain values: which scan answered, and the
//! context tail every scanning tool's answer ends with. Violations, issues and counts are the
//! domain's own types, whose schemas describe every field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use super::CacheInfo;
use crate::domain::{ScanIssue, ScanMeta, ScanResult};

/// Which scan produced a result, and how it went.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScanInfo {
    /// The scan's id.
    pub scan_id: String,
    /// Where resources came from (demo, file:..., aws).
    pub source: String,
    /// Version of the policy validated against.
    pub policy_version: String,
    /// When the scan started (UTC).
    pub scanned_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Shards (account × region × service) planned.
    pub shards_total: u64,
    /// Shards read to the end.
    pub shards_succeeded: u64,
    /// AWS API calls made for this scan, per `service:Operation` (empty for offline sources).
    pub api_calls: BTreeMap<String, u64>,
    /// Of those, the calls AWS throttled, per operation.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub throttled_calls: BTreeMap<String, u64>,
    /// Retries per operation (the SDK's and the fetchers').
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub retried_calls: BTreeMap<String, u64>,
}

impl From<&ScanMeta> for ScanInfo {
    fn from(meta: &ScanMeta) -> Self {
        ScanInfo {
            scan_id: meta.scan_id.to_string(),
            source: meta.source.clone(),
            policy_version: meta.policy_version.clone(),
            scanned_at: meta.scan_timestamp,
            duration_ms: meta.duration_ms,
            shards_total: meta.shards_total,
            shards_succeeded: meta.shards_succeeded,
            api_calls: meta.api_calls.clone(),
            throttled_calls: meta.throttled_calls.clone(),
            retried_calls: meta.retried_calls.clone(),
        }
    }
}

/// How complete, where from and how fresh a scan-based answer is: the tail every scanning
/// tool's answer ends with (flattened into it).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScanContext {
    /// True when part of the estate could not be read (see `issues`): the numbers cover only
    /// what was read.
    pub partial: bool,
    /// What could not be read, and why.
    pub issues: Vec<ScanIssue>,
    /// Limits of the source and hints about the arguments.
    pub notes: Vec<String>,
    /// Which scan answered.
    pub scan: ScanInfo,
    /// Whether the scan came from the cache, and how old it is.
    pub cache: CacheInfo,
}

impl ScanContext {
    /// The context of `result`; `notes` (about the arguments) come before the source's own.
    pub fn new(result: &ScanResult, cache: CacheInfo, mut notes: Vec<String>) -> Self {
        notes.extend(result.meta.notes.iter().cloned());
        ScanContext {
            partial: result.partial,
            issues: result.tally.issues.clone(),
            notes,
            scan: ScanInfo::from(&result.meta),
            cache,
        }
    }
}
