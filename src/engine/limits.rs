//! Rate limiters: one adaptive governor limiter per (account, region, API key), shared by every
//! scan; throttling reported for a key slows its limiter down (see [`super::pacing`]).

use std::sync::Arc;

use dashmap::DashMap;
use governor::Quota;

use super::pacing::AdaptiveLimiter;

use crate::config::{Config, RateLimit};

/// Identifies one limiter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimiterKey {
    /// Account id.
    pub account_id: Arc<str>,
    /// Region.
    pub region: Arc<str>,
    /// Rate-limit key of the API (`ec2`, `local`).
    pub quota_key: String,
}

/// The governor quota for a configured rate limit.
pub fn quota(limit: RateLimit) -> Quota {
    Quota::per_second(limit.requests_per_second).allow_burst(limit.burst)
}

/// All limiters of the process. Concurrent scans of the same account and region draw on the
/// same bucket, as they draw on the same AWS quota.
pub struct LimiterRegistry {
    config: Arc<Config>,
    limiters: DashMap<LimiterKey, Arc<AdaptiveLimiter>>,
}

impl LimiterRegistry {
    /// An empty registry sized from `config`.
    pub fn new(config: Arc<Config>) -> LimiterRegistry {
        LimiterRegistry {
            config,
            limiters: DashMap::new(),
        }
    }

    /// The limiter for `key`, created on first use.
    pub fn get(&self, key: LimiterKey) -> Arc<AdaptiveLimiter> {
        if let Some(limiter) = self.limiters.get(&key) {
            return limiter.clone();
        }
        let limit = self.config.rate_limit(&key.quota_key);
        self.limiters
            .entry(key)
            .or_insert_with(|| Arc::new(AdaptiveLimiter::new(limit, &self.config.pacing)))
            .clone()
    }

    /// Number of limiters created so far.
    pub fn len(&self) -> usize {
        self.limiters.len()
    }

    /// Whether no limiter was created yet.
    pub fn is_empty(&self) -> bool {
        self.limiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use governor::RateLimiter;
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limit(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            requests_per_second: NonZeroU32::new(rate).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    #[test]
    fn quota_allows_the_burst_then_the_steady_rate() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota(limit(10, 3)), clock.clone());
        for _ in 0..3 {
            assert!(limiter.check().is_ok());
        }
        assert!(limiter.check().is_err(), "burst exhausted");
        clock.advance(Duration::from_millis(100));
        assert!(limiter.check().is_ok(), "one token per 100 ms at 10/s");
        assert!(limiter.check().is_err());
    }

    #[test]
    fn one_limiter_per_account_region_and_key() {
        let registry = LimiterRegistry::new(Arc::new(Config::default()));
        let key = |account: &str, region: &str, api: &str| LimiterKey {
            account_id: Arc::from(account),
            region: Arc::from(region),
            quota_key: api.to_string(),
        };
        let a = registry.get(key("1", "us-east-1", "ec2"));
        let b = registry.get(key("1", "us-east-1", "ec2"));
        assert!(Arc::ptr_eq(&a, &b));
        registry.get(key("1", "us-west-2", "ec2"));
        registry.get(key("2", "us-east-1", "ec2"));
        registry.get(key("1", "us-east-1", "rds"));
        assert_eq!(registry.len(), 4);
    }
}
