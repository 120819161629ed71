//! The scan-result cache: repeated questions about the same part of the estate are answered
//! from a recent scan instead of a new one.
//!
//! Entries are keyed by the normalised query (source, resource types, regions, accounts,
//! policy version), held in a `DashMap` and written through to the store, so a restarted
//! server still has them. An entry older than its TTL is never served. A new scan replaces its
//! own entry and drops the entries it supersedes (narrower scopes of the same source and
//! policy, which it saw more recently).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use schemars::JsonSchema;
use serde::Serialize;

use crate::domain::{ScanResult, ScanScope};
use crate::store::{Store, decode_result, encode_result};

/// Where an answer's scan came from, for the caller to judge its freshness.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CacheInfo {
    /// True when the scan was not run for this call but taken from the cache.
    pub from_cache: bool,
    /// When the scan ran.
    pub scanned_at: DateTime<Utc>,
    /// Its age in seconds when this answer was made.
    pub age_seconds: u64,
}

/// A cached scan.
#[derive(Clone)]
struct Entry {
    result: Arc<ScanResult>,
    scope: ScanScope,
    source: String,
    policy_version: String,
}

/// The cache. Cheap to share (`Arc`).
pub struct ScanCache {
    ttl: Duration,
    hot: DashMap<String, Entry>,
    store: Option<Store>,
}

/// The normalised key of a query: lists are sets, so their order never matters.
pub fn cache_key(source: &str, scope: &ScanScope, policy_version: &str) -> String {
    let join = |items: Vec<String>| items.join(",");
    format!(
        "{source}|{}|{}|{}|{policy_version}",
        join(scope.resource_types.iter().map(|t| t.to_string()).collect()),
        join(scope.regions.iter().cloned().collect()),
        join(scope.accounts.iter().cloned().collect()),
    )
}

/// Whether `narrow` is within `wide`: every list of `wide` is empty (all) or holds `narrow`'s.
fn within(narrow: &ScanScope, wide: &ScanScope) -> bool {
    fn covers<T: Ord>(
        wide: &std::collections::BTreeSet<T>,
        narrow: &std::collections::BTreeSet<T>,
    ) -> bool {
        wide.is_empty() || (!narrow.is_empty() && narrow.is_subset(wide))
    }
    covers(&wide.resource_types, &narrow.resource_types)
        && covers(&wide.regions, &narrow.regions)
        && covers(&wide.accounts, &narrow.accounts)
}

impl ScanCache {
    /// A cache whose entries live `ttl`, written through to `store` when there is one.
    /// A zero TTL turns caching off.
    pub fn new(ttl: Duration, store: Option<Store>) -> ScanCache {
        ScanCache {
            ttl,
            hot: DashMap::new(),
            store,
        }
    }

    fn fresh(&self, scanned_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(scanned_at);
        age >= chrono::Duration::zero() && age.to_std().is_ok_and(|age| age < self.ttl)
    }

    /// The cached result for `key` if it is younger than the TTL at `now`.
    pub async fn get(&self, key: &str, now: DateTime<Utc>) -> Option<(Arc<ScanResult>, CacheInfo)> {
        if self.ttl.is_zero() {
            return None;
        }
        let hot = self.hot.get(key).map(|e| e.clone());
        let entry = match hot {
            Some(entry) => Some(entry),
            None => self.load(key).await,
        };
        let entry = entry?;
        // Age counts from the scan's start: what it says is that old, however long it ran.
        if !self.fresh(entry.result.scan_timestamp, now) {
            self.hot.remove(key);
            return None;
        }
        let age = now.signed_duration_since(entry.result.scan_timestamp);
        let info = CacheInfo {
            from_cache: true,
            scanned_at: entry.result.scan_timestamp,
            age_seconds: age.num_seconds().max(0) as u64,
        };
        Some((entry.result, info))
    }

    /// Reads an entry the store kept (a restart empties the map, not the store).
    async fn load(&self, key: &str) -> Option<Entry> {
        let store = self.store.as_ref()?;
        let bytes = match store.cache_get(key).await {
            Ok(bytes) => bytes?,
            Err(error) => {
                tracing::warn!(%error, "cache read failed; scanning instead");
                return None;
            }
        };
        // The stamp says when it was stored; freshness counts from the scan itself.
        let (_stored_at, body) = split_stamp(&bytes)?;
        let json = lz4_flex::decompress_size_prepended(body).ok()?;
        let result = decode_result(&json).ok()?;
        let entry = Entry {
            scope: result.scope.clone(),
            source: result.source.clone(),
            policy_version: result.policy_version.clone(),
            result: Arc::new(result),
        };
        self.hot.insert(key.to_string(), entry.clone());
        Some(entry)
    }

    /// Caches a new scan under `key` at `now`, and drops the entries it supersedes.
    pub async fn put(&self, key: String, result: Arc<ScanResult>, now: DateTime<Utc>) {
        if self.ttl.is_zero() {
            return;
        }
        let entry = Entry {
            scope: result.scope.clone(),
            source: result.source.clone(),
            policy_version: result.policy_version.clone(),
            result: result.clone(),
        };
        let superseded: Vec<String> = self
            .hot
            .iter()
            .filter(|e| {
                *e.key() != key
                    && e.source == entry.source
                    && e.policy_version == entry.policy_version
                    && within(&e.scope, &entry.scope)
            })
            .map(|e| e.key().clone())
            .collect();
        for old in &superseded {
            self.hot.remove(old);
        }
        self.hot.insert(key.clone(), entry);
        if let Some(store) = &self.store {
            // Compressed: a big scan's result is mostly ARNs and tag names, which repeat.
            let mut bytes = stamp(now);
            bytes.extend(lz4_flex::compress_prepend_size(&encode_result(&result)));
            let written = async {
                if !superseded.is_empty() {
                    store.cache_remove(superseded).await?;
                }
                store.cache_put(key, bytes).await
            };
            if let Err(error) = written.await {
                tracing::warn!(%error, "cache write failed; the answer is not affected");
            }
        }
    }
}

/// Stored entries start with their storage time (microseconds, 8 bytes little-endian),
/// followed by the LZ4-compressed result.
fn stamp(now: DateTime<Utc>) -> Vec<u8> {
    now.timestamp_micros().to_le_bytes().to_vec()
}

fn split_stamp(bytes: &[u8]) -> Option<(DateTime<Utc>, &[u8])> {
    let (head, body) = bytes.split_at_checked(8)?;
    let micros = i64::from_le_bytes(head.try_into().ok()?);
    Some((DateTime::from_timestamp_micros(micros)?, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ResourceType;

    fn scope(types: &[ResourceType], regions: &[&str]) -> ScanScope {
        ScanScope {
            resource_types: types.iter().cloned().collect(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
            ..ScanScope::default()
        }
    }

    #[test]
    fn keys_ignore_list_order() {
        let a = scope(
            &[ResourceType::S3Bucket, ResourceType::Ec2Instance],
            &["b", "a"],
        );
        let b = scope(
            &[ResourceType::Ec2Instance, ResourceType::S3Bucket],
            &["a", "b"],
        );
        assert_eq!(cache_key("demo", &a, "1"), cache_key("demo", &b, "1"));
        assert_ne!(cache_key("demo", &a, "1"), cache_key("demo", &a, "2"));
        assert_ne!(cache_key("demo", &a, "1"), cache_key("aws", &a, "1"));
    }

    #[test]
    fn a_wider_scope_supersedes_narrower_ones_only() {
        let all = ScanScope::default();
        let ec2 = scope(&[ResourceType::Ec2Instance], &[]);
        let ec2_east = scope(&[ResourceType::Ec2Instance], &["us-east-1"]);
        assert!(within(&ec2, &all) && within(&ec2_east, &ec2));
        assert!(!within(&all, &ec2) && !within(&ec2, &ec2_east));
    }

    #[test]
    fn stamps_round_trip() {
        let now = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let mut bytes = stamp(now);
        bytes.extend(b"body");
        assert_eq!(split_stamp(&bytes), Some((now, &b"body"[..])));
        assert_eq!(split_stamp(b"short"), None);
    }

    fn result_at(at: DateTime<Utc>) -> Arc<ScanResult> {
        Arc::new(ScanResult {
            scan_id: crate::domain::ScanId(at.timestamp_micros() as u64),
            compliance_score: 1.0,
            total_resources: 0,
            compliant_resources: 0,
            non_compliant_resources: 0,
            error_count: 0,
            warning_count: 0,
            violations: Vec::new(),
            issues: Vec::new(),
            partial: false,
            notes: Vec::new(),
            api_calls: Default::default(),
            scan_timestamp: at,
            duration_ms: 0,
            source: "demo".into(),
            policy_version: "1".into(),
            scope: ScanScope::default(),
            severity_filter: Default::default(),
            by_resource_type: Default::default(),
            by_tag: Default::default(),
            worst_offenders: Vec::new(),
            shards_total: 0,
            shards_succeeded: 0,
            matched_arns: Vec::new(),
        })
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the TTL and however much time passes, an entry is served only while
            /// it is younger than the TTL, and its age is reported truthfully.
            #[test]
            fn no_entry_older_than_its_ttl_is_served(ttl_s in 0u64..600, waits in proptest::collection::vec(0i64..400_000, 1..8)) {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                runtime.block_on(async {
                    let cache = ScanCache::new(Duration::from_secs(ttl_s), None);
                    let start = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
                    cache.put("k".into(), result_at(start), start).await;
                    let mut now = start;
                    for wait_ms in waits {
                        now += chrono::Duration::milliseconds(wait_ms);
                        let age = now - start;
                        match cache.get("k", now).await {
                            Some((_, info)) => {
                                prop_assert!(age.to_std().unwrap() < Duration::from_secs(ttl_s));
                                prop_assert!(info.from_cache);
                                prop_assert_eq!(info.age_seconds, age.num_seconds() as u64);
                            }
                            None => prop_assert!(age.to_std().unwrap() >= Duration::from_secs(ttl_s)),
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
}
