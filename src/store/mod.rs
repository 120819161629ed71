//! Persistence on redb: scan summaries, recent findings, history, audit records and the result
//! cache, in one file in the data directory.
//!
//! # Guarantees
//! - **One writer.** Every write goes to one thread that owns redb's write transactions; it
//!   takes whatever is queued and commits it as one transaction, so a burst of scans or audit
//!   records costs one fsync. Async callers await their record's commit without blocking a
//!   runtime thread. Reads run on blocking threads, concurrently with
//!   the writer (redb's MVCC).
//! - **Crash safety.** A write is acknowledged only after redb's commit returned with
//!   `Durability::Immediate`; a process killed at any point leaves a file that opens with every
//!   acknowledged scan intact (redb's copy-on-write commits; tested with SIGKILL).
//! - **Retention.** Scan summaries are kept at least 400 days; per-resource findings only for
//!   the most recent scans of each (source, scope) (configurable): they are what drift
//!   needs, they are large, and a burst of narrow scans must not evict the main scope's.
//! - **Schema.** The file records its schema version; older files are migrated on open, newer
//!   ones refused with a message rather than misread.

pub mod audit;
mod findings;
pub mod history;
mod spool;
mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::domain::{
    ComplianceTotals, CostSums, Origin, ResourceType, ScanIssue, ScanResult, ScanScope, Severity,
    SeverityFilter, TagCounts, TypeCounts, ViolationType,
};
pub use audit::{AuditQuery, AuditRecord, AuditStatus};
pub use findings::FINDINGS_PER_CHUNK;
pub use spool::{SPOOL_DIR, Spool};
pub use tables::SCHEMA_VERSION;
use tables::{AUDIT, CACHE, FINDINGS, META, REMEDIATION, SCANS, SCOPE_SCANS, SPOOLED};

/// Summaries are never pruned younger than this (a year of monthly trends, and a month more).
pub const MIN_SUMMARY_DAYS: u32 = 400;

/// Why the store failed. Messages name the file by its name only, never a full local path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The data directory or file could not be created or opened.
    #[error("cannot open the store '{file}': {reason}")]
    Open {
        /// The file's name.
        file: String,
        /// Why.
        reason: String,
    },
    /// The file was written by a newer tagguard.
    #[error(
        "the store '{file}' has schema version {found}; this tagguard reads up to {supported}: upgrade tagguard or use another --data-dir"
    )]
    TooNew {
        /// The file's name.
        file: String,
        /// Its version.
        found: u64,
        /// Ours.
        supported: u64,
    },
    /// Another process has the file open (a `tagguard serve` using the same data directory).
    #[error("the store '{file}' is in use by another tagguard process")]
    InUse {
        /// The file's name.
        file: String,
    },
    /// A read or write failed.
    #[error("store {0}")]
    Io(String),
    /// The writer has stopped (the store was closed).
    #[error("the store is closed")]
    Closed,
}

fn io_error(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("{what} failed: {error}"))
}

fn read_error(error: impl std::fmt::Display) -> StoreError {
    io_error("read", error)
}

/// What is kept of every scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanSummary {
    /// The scan's id (microseconds since the epoch at its start; unique in the store).
    pub scan_id: u64,
    /// When it started.
    pub scanned_at: DateTime<Utc>,
    /// Who asked: `cli`, `mcp:<tool>`, `schedule:<name>`.
    pub origin: Origin,
    /// The source (`demo`, `file:…`, `aws`).
    pub source: String,
    /// What it covered.
    pub scope: ScanScope,
    /// The policy's version.
    pub policy_version: String,
    /// Which violations the scan listed (findings are kept for those only).
    pub severity_filter: SeverityFilter,
    /// Score and counts.
    #[serde(flatten)]
    pub totals: ComplianceTotals,
    /// Counts per resource type.
    pub by_resource_type: BTreeMap<ResourceType, TypeCounts>,
    /// Counts per tag.
    pub by_tag: BTreeMap<String, TagCounts>,
    /// Monthly cost of the non-compliant resources, when the scan summed costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_compliant_cost: Option<CostSums>,
    /// The cost-attribution gap recorded with the scan, when one was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_gap: Option<crate::domain::costing::GapRecord>,
    /// Parts that could not be read.
    pub issues: Vec<ScanIssue>,
    /// Whether the scan was partial.
    pub partial: bool,
    /// How long it took.
    pub duration_ms: u64,
}

/// One stored violation of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// The resource.
    pub arn: String,
    /// Its type.
    pub resource_type: ResourceType,
    /// What is wrong.
    pub violation_type: ViolationType,
    /// The tag.
    pub tag: String,
    /// Error or warning.
    pub severity: Severity,
    /// The value found, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_value: Option<String>,
}

impl ScanSummary {
    /// The summary of a result.
    pub fn of(result: &ScanResult, origin: &Origin) -> ScanSummary {
        ScanSummary {
            scan_id: result.meta.scan_id.0,
            scanned_at: result.meta.scan_timestamp,
            origin: origin.clone(),
            source: result.meta.source.clone(),
            scope: result.meta.scope.clone(),
            policy_version: result.meta.policy_version.clone(),
            severity_filter: result.meta.severity_filter,
            totals: result.totals,
            by_resource_type: result.tally.by_resource_type.clone(),
            by_tag: result
                .tally
                .by_tag
                .iter()
                .map(|(t, c)| (t.to_string(), *c))
                .collect(),
            non_compliant_cost: result.tally.cost.as_ref().map(|c| c.non_compliant()),
            cost_gap: result.meta.cost_gap.clone(),
            issues: result.tally.issues.clone(),
            partial: result.partial,
            duration_ms: result.meta.duration_ms,
        }
    }

    /// The key of its (source, scope): findings are kept per key.
    pub fn scope_key(&self) -> String {
        scope_key(&self.source, &self.scope)
    }
}

/// The key of a (source, scope), as kept in the index of scans by scope.
pub fn scope_key(source: &str, scope: &ScanScope) -> String {
    format!("{source}|{}", scope.key())
}

/// How much the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Scans of each (source, scope) whose per-resource findings are kept (the most recent).
    pub findings_scans: usize,
    /// Days scan summaries are kept (at least [`MIN_SUMMARY_DAYS`]).
    pub summary_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention::from(&crate::config::StoreConfig::default())
    }
}

impl From<&crate::config::StoreConfig> for Retention {
    fn from(config: &crate::config::StoreConfig) -> Self {
        Retention {
            findings_scans: config.findings_scans,
            summary_days: config.summary_days,
        }
    }
}

/// What `/health` and `tagguard history` say about the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreStatus {
    /// The file's name (not its full path).
    pub file: String,
    /// Its schema version.
    pub schema_version: u64,
    /// Scan summaries kept.
    pub scans: u64,
}

enum WriteJob {
    Scan {
        summary: Box<ScanSummary>,
        /// Encoded chunks (see `findings.rs`).
        findings: Vec<Vec<u8>>,
        /// The spool file it comes from, recorded with it.
        spooled_as: Option<String>,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
    Audit {
        record: Box<AuditRecord>,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
    CachePut {
        key: String,
        value: Vec<u8>,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
    CacheRemove {
        keys: Vec<String>,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
    RemediationPut {
        key: String,
        value: Vec<u8>,
        done: oneshot::Sender<Result<u64, StoreError>>,
    },
}

struct Inner {
    db: Arc<Database>,
    file: String,
    writer: Mutex<Option<std_mpsc::Sender<WriteJob>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The store: cheap to clone; every clone shares the file and its writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The per-user default data directory: `$TAGGUARD_DATA_DIR`, else `$XDG_DATA_HOME/tagguard`,
/// else `~/.local/share/tagguard`, else `.tagguard` in the working directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TAGGUARD_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("tagguard");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/tagguard"),
        None => PathBuf::from(".tagguard"),
    }
}

/// The store file's name in a data directory.
pub const STORE_FILE: &str = "tagguard.redb";

impl Store {
    /// Opens (or creates) the store in `data_dir`, migrating an older schema.
    pub fn open(data_dir: &Path, retention: Retention) -> Result<Store, StoreError> {
        let file = STORE_FILE.to_string();
        let open_error = |reason: String| StoreError::Open {
            file: file.clone(),
            reason,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open_error(e.kind().to_string()))?;
        let db = Database::create(data_dir.join(STORE_FILE)).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { file: file.clone() },
            e => open_error(e.to_string()),
        })?;
        migrate(&db, &file)?;
        let spool = Spool::of(data_dir);
        // What other processes handed in while no one owned the store. A merge that fails
        // costs nothing but time: the files stay, and the writer tries again.
        if let Err(error) = merge_spool(&db, &spool, retention) {
            tracing::warn!(%error, "the spool could not be merged; will try again");
        }
        let db = Arc::new(db);
        let (tx, rx) = std_mpsc::channel();
        let writer_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("tagguard-store".to_string())
            .spawn(move || write_loop(&writer_db, rx, retention, &spool))
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                file,
                writer: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    fn send(&self, job: WriteJob) -> Result<(), StoreError> {
        let writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }

    /// Records a scan (summary and findings) and waits for its commit. Returns the id it was
    /// stored under (the scan's own id, moved on by a microsecond if another process took it).
    pub async fn record_scan(
        &self,
        result: &ScanResult,
        origin: &Origin,
    ) -> Result<u64, StoreError> {
        let summary = Box::new(ScanSummary::of(result, origin));
        // Encoded here, where the result is borrowed: the writer gets compact bytes, not a copy
        // of every violation.
        let findings = findings::encode_findings(result);
        self.write(|done| WriteJob::Scan {
            summary,
            findings,
            spooled_as: None,
            done,
        })
        .await
    }

    /// Records a tool call and waits for its commit; returns the record's key.
    pub async fn record_audit(&self, record: AuditRecord) -> Result<u64, StoreError> {
        let record = Box::new(record);
        self.write(|done| WriteJob::Audit { record, done }).await
    }

    /// Audit records matching `query`, oldest first.
    pub async fn audit_records(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.read_table(AUDIT, move |table| {
            let from = query.since.timestamp_micros().max(0) as u64;
            let mut out = Vec::new();
            for entry in table.range(from..).map_err(read_error)? {
                let (_, value) = entry.map_err(read_error)?;
                let record: AuditRecord = decode(value.value())?;
                if query.admits(&record) {
                    out.push(record);
                }
            }
            if out.len() > query.limit {
                // The most recent `limit`, still oldest first.
                out.drain(..out.len() - query.limit);
            }
            Ok(out)
        })
        .await
    }

    /// The result cached under `key`, if one is there and readable (an unreadable entry, of an
    /// older format say, is a miss).
    pub async fn cached_result(&self, key: &str) -> Result<Option<ScanResult>, StoreError> {
        let bytes = self.cached_bytes(key).await?;
        Ok(bytes.and_then(|bytes| decode_cached(&bytes)))
    }

    /// Caches `result` under `key` and waits for the commit.
    pub async fn cache_result(&self, key: String, result: &ScanResult) -> Result<(), StoreError> {
        self.cache_bytes(key, encode_cached(result)).await
    }

    /// The bytes cached under `key` by [`Store::cache_bytes`] (other layers' caches: billing
    /// answers), if any.
    pub async fn cached_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.read_table(CACHE, move |table| {
            Ok(table
                .get(key.as_str())
                .map_err(read_error)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    /// Caches `value` under `key` and waits for the commit. Keys share the scan cache's
    /// table: callers prefix theirs (`cost|…`).
    pub async fn cache_bytes(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        self.write(|done| WriteJob::CachePut { key, value, done })
            .await
            .map(|_| ())
    }

    /// Keeps a remediation record (`plan|ID`, …) and waits for the commit.
    pub async fn put_remediation(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        self.write(|done| WriteJob::RemediationPut { key, value, done })
            .await
            .map(|_| ())
    }

    /// The remediation record kept under `key`, if any.
    pub async fn remediation(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.read_table(REMEDIATION, move |table| {
            Ok(table
                .get(key.as_str())
                .map_err(read_error)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    /// Drops cached results and waits for the commit.
    pub async fn drop_cached(&self, keys: Vec<String>) -> Result<(), StoreError> {
        self.write(|done| WriteJob::CacheRemove { keys, done })
            .await
            .map(|_| ())
    }

    /// Runs `read` over one table in a read transaction, on a blocking thread (redb is
    /// synchronous; readers never wait for the writer).
    async fn read_table<K, V, T>(
        &self,
        table: TableDefinition<'static, K, V>,
        read: impl FnOnce(redb::ReadOnlyTable<K, V>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError>
    where
        K: redb::Key + Send + 'static,
        V: redb::Value + Send + 'static,
        T: Send + 'static,
    {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(read_error)?;
            read(txn.open_table(table).map_err(read_error)?)
        })
        .await
        .map_err(read_error)?
    }

    /// Queues a write and waits for its commit; returns the id the writer reports.
    async fn write(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<u64, StoreError>>) -> WriteJob,
    ) -> Result<u64, StoreError> {
        let (done, acknowledged) = oneshot::channel();
        self.send(job(done))?;
        acknowledged.await.map_err(|_| StoreError::Closed)?
    }

    /// Summaries of scans that started at or after `since`, oldest first.
    pub async fn scans_since(&self, since: DateTime<Utc>) -> Result<Vec<ScanSummary>, StoreError> {
        let from = since.timestamp_micros().max(0) as u64;
        self.read_table(SCANS, move |table| {
            let mut out = Vec::new();
            for entry in table.range(from..).map_err(read_error)? {
                let (_, value) = entry.map_err(read_error)?;
                out.push(decode(value.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// The `limit` most recent scan summaries, newest first.
    pub async fn recent_scans(&self, limit: usize) -> Result<Vec<ScanSummary>, StoreError> {
        self.read_table(SCANS, move |table| {
            let mut out = Vec::new();
            for entry in table.iter().map_err(read_error)?.rev().take(limit) {
                let (_, value) = entry.map_err(read_error)?;
                out.push(decode(value.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// The stored findings of a scan; `None` when they were pruned (or never stored).
    pub async fn findings(&self, scan_id: u64) -> Result<Option<Vec<StoredFinding>>, StoreError> {
        self.read_table(FINDINGS, move |table| {
            let mut out: Option<Vec<StoredFinding>> = None;
            for entry in table
                .range((scan_id, 0)..=(scan_id, u32::MAX))
                .map_err(read_error)?
            {
                let (_, value) = entry.map_err(read_error)?;
                let chunk = findings::decode_findings(value.value())?;
                out.get_or_insert_with(Vec::new).extend(chunk);
            }
            Ok(out)
        })
        .await
    }

    /// What the store holds, in brief.
    pub async fn status(&self) -> Result<StoreStatus, StoreError> {
        let file = self.inner.file.clone();
        self.read_table(SCANS, move |table| {
            let scans = table.len().map_err(read_error)?;
            Ok(StoreStatus {
                file,
                schema_version: SCHEMA_VERSION,
                scans,
            })
        })
        .await
    }

    /// Stops the writer after what is queued is committed. Later writes fail with
    /// [`StoreError::Closed`].
    pub fn close(&self) {
        drop(
            self.inner
                .writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        if let Some(thread) = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            // A panicked writer has already failed its callers; nothing more to do here.
            let _ = thread.join();
        }
    }
}

/// The first byte of a cached result: its format (1: LZ4 over the result's JSON).
const CACHE_LZ4_JSON: u8 = 1;

/// A cached result's bytes: compressed, since a big scan's result is mostly ARNs and tag
/// names, which repeat.
fn encode_cached(result: &ScanResult) -> Vec<u8> {
    let mut bytes = vec![CACHE_LZ4_JSON];
    bytes.extend(lz4_flex::compress_prepend_size(&encode(result)));
    bytes
}

fn decode_cached(bytes: &[u8]) -> Option<ScanResult> {
    let (&format, body) = bytes.split_first()?;
    if format != CACHE_LZ4_JSON {
        return None;
    }
    let json = lz4_flex::decompress_size_prepended(body).ok()?;
    serde_json::from_slice(&json).ok()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| io_error("decoding a record", e))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records serialise: plain data, string keys")
}

/// Brings the file to [`SCHEMA_VERSION`]: a new file is stamped, a newer one refused.
fn migrate(db: &Database, file: &str) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(|e| io_error("migration", e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| io_error("migration", e))?;
        let found = meta
            .get("schema_version")
            .map_err(|e| io_error("migration", e))?
            .map(|v| v.value());
        match found {
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::TooNew {
                    file: file.to_string(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(SCHEMA_VERSION) => {}
            // A new file, or an older one: its steps run in order.
            found => {
                if found.is_some_and(|v| v < 2) {
                    migrate_to_2(&txn)?;
                }
                meta.insert("schema_version", SCHEMA_VERSION)
                    .map_err(|e| io_error("migration", e))?;
            }
        }
        // Create every table, so that readers never meet a missing one.
        txn.open_table(SCANS)
            .map_err(|e| io_error("migration", e))?;
        txn.open_table(FINDINGS)
            .map_err(|e| io_error("migration", e))?;
        txn.open_table(AUDIT)
            .map_err(|e| io_error("migration", e))?;
        txn.open_table(CACHE)
            .map_err(|e| io_error("migration", e))?;
        txn.open_table(SCOPE_SCANS)
            .map_err(|e| io_error("migration", e))?;
        txn.open_table(SPOOLED)
            .map_err(|e| io_error("migration", e))?;
        txn.open_table(REMEDIATION)
            .map_err(|e| io_error("migration", e))?;
    }
    txn.commit().map_err(|e| io_error("migration", e))
}

/// Version 1 → 2: the index of scans by (source, scope), built from the summaries whose
/// findings are still kept (the next write of each scope prunes it to its retention), and the
/// cache emptied (its entries' format changed; a cache is only a cache).
fn migrate_to_2(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let failed = |e: &dyn std::fmt::Display| io_error("migration to schema 2", e);
    let scans = txn.open_table(SCANS).map_err(|e| failed(&e))?;
    let findings = txn.open_table(FINDINGS).map_err(|e| failed(&e))?;
    let mut index = txn.open_table(SCOPE_SCANS).map_err(|e| failed(&e))?;
    for entry in scans.iter().map_err(|e| failed(&e))? {
        let (id, value) = entry.map_err(|e| failed(&e))?;
        let id = id.value();
        let kept = findings
            .range((id, 0)..=(id, u32::MAX))
            .map_err(|e| failed(&e))?
            .next()
            .is_some();
        if !kept {
            continue;
        }
        // Summaries written by version 1 name their origin and types as strings, as now.
        let summary: ScanSummary = decode(value.value())?;
        index
            .insert((summary.scope_key().as_str(), id), ())
            .map_err(|e| failed(&e))?;
    }
    let mut cache = txn.open_table(CACHE).map_err(|e| failed(&e))?;
    cache.retain(|_, _| false).map_err(|e| failed(&e))?;
    Ok(())
}

/// How often the writer looks for scans other processes spooled, when idle.
const SPOOL_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Records the scans waiting in the spool, a batch per transaction, and deletes each file
/// once its scan is committed. Returns how many were stored.
fn merge_spool(db: &Database, spool: &Spool, retention: Retention) -> Result<usize, StoreError> {
    let mut stored = 0;
    let waiting = spool.waiting();
    if waiting.is_empty() {
        return Ok(0);
    }
    // Files merged before whose deletion failed (or a crash cut off) are deleted again, not
    // stored again. Only the store's owner merges, on its one writer thread, so no other
    // write can record a name between this read and the commit below.
    let known = {
        let txn = db
            .begin_read()
            .map_err(|e| io_error("reading the spool", e))?;
        let table = txn
            .open_table(SPOOLED)
            .map_err(|e| io_error("reading the spool", e))?;
        let mut known = std::collections::HashSet::new();
        for (name, _) in &waiting {
            if table
                .get(name.as_str())
                .map_err(|e| io_error("reading the spool", e))?
                .is_some()
            {
                known.insert(name.clone());
            }
        }
        known
    };
    for files in waiting.chunks(32) {
        let mut batch: Vec<WriteJob> = Vec::new();
        let mut merged: Vec<&Path> = Vec::new();
        for (name, path) in files {
            if known.contains(name) {
                spool.remove(path);
                continue;
            }
            let Some(spooled) = spool.read(path) else {
                continue;
            };
            let (done, _) = oneshot::channel();
            batch.push(WriteJob::Scan {
                summary: Box::new(ScanSummary::of(&spooled.result, &spooled.origin)),
                findings: findings::encode_findings(&spooled.result),
                spooled_as: Some(name.clone()),
                done,
            });
            merged.push(path);
        }
        if batch.is_empty() {
            continue;
        }
        commit_batch(db, &mut batch, retention)?;
        stored += batch.len();
        for path in merged {
            spool.remove(path);
        }
    }
    if stored > 0 {
        tracing::info!(scans = stored, "merged scans other processes spooled");
    }
    Ok(stored)
}

/// The writer thread: each round takes every queued job and commits them as one transaction;
/// at most every [`SPOOL_POLL`], busy or idle, it merges the spool.
fn write_loop(
    db: &Database,
    jobs: std_mpsc::Receiver<WriteJob>,
    retention: Retention,
    spool: &Spool,
) {
    let merge = |merged_at: &mut std::time::Instant| {
        *merged_at = std::time::Instant::now();
        if let Err(error) = merge_spool(db, spool, retention) {
            tracing::warn!(%error, "the spool could not be merged; will try again");
        }
    };
    let mut merged_at = std::time::Instant::now();
    loop {
        // A writer kept busy still merges once per poll interval.
        if merged_at.elapsed() >= SPOOL_POLL {
            merge(&mut merged_at);
        }
        let first = match jobs.recv_timeout(SPOOL_POLL) {
            Ok(job) => job,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                merge(&mut merged_at);
                continue;
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                merge(&mut merged_at);
                return;
            }
        };
        let mut batch = vec![first];
        // Up to 256 jobs per commit; whatever arrived meanwhile rides along.
        while batch.len() < 256 {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit_batch(db, &mut batch, retention);
        for job in batch {
            let (done, id) = match job {
                WriteJob::Scan { done, summary, .. } => (done, summary.scan_id),
                WriteJob::Audit { done, record } => (done, record.key),
                WriteJob::CachePut { done, .. }
                | WriteJob::CacheRemove { done, .. }
                | WriteJob::RemediationPut { done, .. } => (done, 0),
            };
            let _ = done.send(outcome.clone().map(|()| id));
        }
    }
}

fn commit_batch(
    db: &Database,
    batch: &mut [WriteJob],
    retention: Retention,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(|e| io_error("write", e))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| io_error("write", e))?;
    {
        let mut scans = txn.open_table(SCANS).map_err(|e| io_error("write", e))?;
        let mut findings = txn.open_table(FINDINGS).map_err(|e| io_error("write", e))?;
        let mut audit = txn.open_table(AUDIT).map_err(|e| io_error("write", e))?;
        let mut cache = txn.open_table(CACHE).map_err(|e| io_error("write", e))?;
        let mut index = txn
            .open_table(SCOPE_SCANS)
            .map_err(|e| io_error("write", e))?;
        let mut spooled = txn.open_table(SPOOLED).map_err(|e| io_error("write", e))?;
        let mut remediation = txn
            .open_table(REMEDIATION)
            .map_err(|e| io_error("write", e))?;
        let mut scopes_written = std::collections::BTreeSet::new();
        for job in batch.iter_mut() {
            let (summary, rows, spooled_as) = match job {
                WriteJob::Scan {
                    summary,
                    findings: rows,
                    spooled_as,
                    ..
                } => (summary, rows, spooled_as),
                WriteJob::Audit { record, .. } => {
                    // Records made in the same microsecond keep their order, one apart.
                    record.key = record.at.timestamp_micros().max(0) as u64;
                    while audit
                        .get(record.key)
                        .map_err(|e| io_error("write", e))?
                        .is_some()
                    {
                        record.key += 1;
                    }
                    audit
                        .insert(record.key, encode(&**record).as_slice())
                        .map_err(|e| io_error("write", e))?;
                    continue;
                }
                WriteJob::CachePut { key, value, .. } => {
                    cache
                        .insert(key.as_str(), value.as_slice())
                        .map_err(|e| io_error("write", e))?;
                    continue;
                }
                WriteJob::RemediationPut { key, value, .. } => {
                    remediation
                        .insert(key.as_str(), value.as_slice())
                        .map_err(|e| io_error("write", e))?;
                    continue;
                }
                WriteJob::CacheRemove { keys, .. } => {
                    for key in keys.iter() {
                        cache
                            .remove(key.as_str())
                            .map_err(|e| io_error("write", e))?;
                    }
                    continue;
                }
            };
            // Another process may have stored a scan under the same microsecond.
            while scans
                .get(summary.scan_id)
                .map_err(|e| io_error("write", e))?
                .is_some()
            {
                summary.scan_id += 1;
            }
            scans
                .insert(summary.scan_id, encode(&**summary).as_slice())
                .map_err(|e| io_error("write", e))?;
            if let Some(name) = spooled_as {
                spooled
                    .insert(name.as_str(), summary.scan_id)
                    .map_err(|e| io_error("write", e))?;
            }
            for (number, chunk) in rows.iter().enumerate() {
                findings
                    .insert((summary.scan_id, number as u32), chunk.as_slice())
                    .map_err(|e| io_error("write", e))?;
            }
            let key = summary.scope_key();
            index
                .insert((key.as_str(), summary.scan_id), ())
                .map_err(|e| io_error("write", e))?;
            scopes_written.insert(key);
        }
        for key in &scopes_written {
            prune_findings(&mut index, &mut findings, key, retention)?;
        }
        prune(
            &mut scans,
            &mut findings,
            &mut index,
            &mut spooled,
            retention,
        )?;
        audit::prune(&mut audit, retention.summary_days.max(MIN_SUMMARY_DAYS))?;
    }
    txn.commit().map_err(|e| io_error("commit", e))
}

/// Drops the findings of the scans of one (source, scope) beyond its `findings_scans` most
/// recent: scans of other scopes never push them out. The index holds only the scans whose
/// findings are kept, so this reads at most the kept ones and the new ones.
fn prune_findings(
    index: &mut redb::Table<(&str, u64), ()>,
    findings: &mut redb::Table<(u64, u32), &[u8]>,
    key: &str,
    retention: Retention,
) -> Result<(), StoreError> {
    let failed = |e: &dyn std::fmt::Display| io_error("pruning", e);
    let scans: Vec<u64> = index
        .range((key, 0)..=(key, u64::MAX))
        .map_err(|e| failed(&e))?
        .map(|entry| entry.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()
        .map_err(|e| failed(&e))?;
    let keep = retention.findings_scans.max(1);
    if scans.len() <= keep {
        return Ok(());
    }
    for scan in &scans[..scans.len() - keep] {
        findings
            .retain_in((*scan, 0)..=(*scan, u32::MAX), |_, _| false)
            .map_err(|e| failed(&e))?;
        index.remove((key, *scan)).map_err(|e| failed(&e))?;
    }
    Ok(())
}

/// Drops summaries older than the retention (never younger than [`MIN_SUMMARY_DAYS`]), with
/// their findings and their entries in the index of scans by scope: a scope that is no
/// longer scanned leaves nothing behind once its summaries age out.
fn prune(
    scans: &mut redb::Table<u64, &[u8]>,
    findings: &mut redb::Table<(u64, u32), &[u8]>,
    index: &mut redb::Table<(&str, u64), ()>,
    spooled: &mut redb::Table<&str, u64>,
    retention: Retention,
) -> Result<(), StoreError> {
    let days = retention.summary_days.max(MIN_SUMMARY_DAYS);
    let cutoff = (Utc::now() - chrono::Duration::days(days.into()))
        .timestamp_micros()
        .max(0) as u64;
    let oldest = scans
        .first()
        .map_err(|e| io_error("pruning", e))?
        .map(|(key, _)| key.value());
    if oldest.is_some_and(|oldest| oldest < cutoff) {
        scans
            .retain_in(..cutoff, |_, _| false)
            .map_err(|e| io_error("pruning", e))?;
        findings
            .retain_in(..(cutoff, 0), |_, _| false)
            .map_err(|e| io_error("pruning", e))?;
        index
            .retain(|(_, scan), _| scan >= cutoff)
            .map_err(|e| io_error("pruning", e))?;
        spooled
            .retain(|_, scan| scan >= cutoff)
            .map_err(|e| io_error("pruning", e))?;
    }
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(
            self.writer
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        if let Some(thread) = self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }
}
