//! The scan-result cache: repeated questions about the same part of the estate are answered
//! from a recent scan instead of a new one.
//!
//! Entries are keyed by the normalised query (source, resource types, regions, accounts,
//! policy version), held in a `DashMap` and written through to the store, so a restarted
//! server still has them. An entry older than its TTL is never served, and is dropped from
//! the store when found stale. A new scan replaces its own entry and drops the entries it
//! supersedes (narrower scopes of the same source and policy, which it saw more recently).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use schemars::JsonSchema;
use serde::Serialize;

use crate::domain::{ScanResult, ScanScope};
use crate::store::Store;

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

impl CacheInfo {
    /// A scan run for this answer.
    pub fn fresh(result: &ScanResult) -> CacheInfo {
        CacheInfo {
            from_cache: false,
            scanned_at: result.meta.scan_timestamp,
            age_seconds: 0,
        }
    }
}

/// The cache. Cheap to share (`Arc`).
pub struct ScanCache {
    ttl: Duration,
    hot: DashMap<String, Arc<ScanResult>>,
    store: Option<Store>,
}

/// The shape of the results the cache holds: raised when a tally gains what older results
/// lack (per-account and per-region counts in 2), so that a result cached by an older
/// tagguard is never read as one with those parts empty.
const RESULT_SHAPE: u32 = 2;

/// The normalised key of a query: lists are sets, so their order never matters.
pub fn cache_key(source: &str, scope: &ScanScope, policy_version: &str) -> String {
    format!("{source}|{}|{policy_version}|r{RESULT_SHAPE}", scope.key())
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
        let result = match hot {
            Some(result) => result,
            None => self.load(key).await?,
        };
        // Age counts from the scan's start: what it says is that old, however long it ran.
        let scanned_at = result.meta.scan_timestamp;
        if !self.fresh(scanned_at, now) {
            self.hot.remove(key);
            self.forget_stored(vec![key.to_string()]).await;
            return None;
        }
        let age = now.signed_duration_since(scanned_at);
        let info = CacheInfo {
            from_cache: true,
            scanned_at,
            age_seconds: age.num_seconds().max(0) as u64,
        };
        Some((result, info))
    }

    /// Reads an entry the store kept (a restart empties the map, not the store).
    async fn load(&self, key: &str) -> Option<Arc<ScanResult>> {
        let store = self.store.as_ref()?;
        match store.cached_result(key).await {
            Ok(result) => {
                let result = Arc::new(result?);
                self.hot.insert(key.to_string(), result.clone());
                Some(result)
            }
            Err(error) => {
                tracing::warn!(%error, "cache read failed; scanning instead");
                None
            }
        }
    }

    async fn forget_stored(&self, keys: Vec<String>) {
        if let Some(store) = &self.store
            && let Err(error) = store.drop_cached(keys).await
        {
            tracing::warn!(%error, "dropping stale cache entries failed");
        }
    }

    /// Drops every entry this process cached (after tags were written, every cached answer
    /// may be wrong).
    pub async fn forget_all(&self) {
        let keys: Vec<String> = self.hot.iter().map(|e| e.key().clone()).collect();
        self.hot.clear();
        if !keys.is_empty() {
            self.forget_stored(keys).await;
        }
    }

    /// Caches a new scan under `key`, and drops the entries it supersedes.
    pub async fn put(&self, key: String, result: Arc<ScanResult>) {
        if self.ttl.is_zero() {
            return;
        }
        let superseded: Vec<String> = self
            .hot
            .iter()
            .filter(|e| {
                *e.key() != key
                    && e.meta.source == result.meta.source
                    && e.meta.policy_version == result.meta.policy_version
                    && within(&e.meta.scope, &result.meta.scope)
            })
            .map(|e| e.key().clone())
            .collect();
        for old in &superseded {
            self.hot.remove(old);
        }
        self.hot.insert(key.clone(), result.clone());
        if let Some(store) = &self.store {
            let written = async {
                if !superseded.is_empty() {
                    store.drop_cached(superseded).await?;
                }
                store.cache_result(key, &result).await
            };
            if let Err(error) = written.await {
                tracing::warn!(%error, "cache write failed; the answer is not affected");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ResourceType, ScanId, ScanMeta, Tally};

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

    fn result_at(at: DateTime<Utc>) -> Arc<ScanResult> {
        let meta = ScanMeta {
            scan_id: ScanId(at.timestamp_micros() as u64),
            scan_timestamp: at,
            duration_ms: 0,
            source: "demo".into(),
            policy_version: "1".into(),
            scope: ScanScope::default(),
            severity_filter: Default::default(),
            shards_total: 0,
            shards_succeeded: 0,
            api_calls: Default::default(),
            throttled_calls: Default::default(),
            retried_calls: Default::default(),
            notes: Vec::new(),
            cost_gap: None,
        };
        Arc::new(ScanResult::new(meta, Tally::default()))
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
                    cache.put("k".into(), result_at(start)).await;
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
