//! Adaptive pacing: the rule by which a limiter slows down when AWS throttles its calls and
//! recovers afterwards (the idea of the SDK's adaptive retry mode, applied to tagguard's own
//! limiters), and the limiter that follows it on top of its governor quota.
//!
//! The rule is pure (time is an argument), so its bounds are tested without a clock: the rate
//! never exceeds the configured quota, never drops below the floor, and climbs back to the
//! quota linearly once throttling stops.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, RateLimiter};

use crate::config::{PacingConfig, RateLimit};

/// The pacing state of one limiter: its rate now, in calls per second.
#[derive(Debug, Clone, PartialEq)]
pub struct PacingRule {
    quota: f64,
    floor: f64,
    factor: f64,
    /// Rate gained per second without throttling.
    climb: f64,
    /// The rate set at the last slow-down, and when.
    slowed: Option<(f64, Instant)>,
}

impl PacingRule {
    /// The rule for a limiter of `quota` calls per second.
    pub fn new(quota: f64, config: &PacingConfig) -> PacingRule {
        let quota = quota.max(f64::MIN_POSITIVE);
        let floor = (quota * config.floor_fraction).min(quota);
        PacingRule {
            quota,
            floor,
            factor: config.slow_down_factor,
            climb: (quota - floor) / config.recovery_seconds,
            slowed: None,
        }
    }

    /// The configured quota.
    pub fn quota(&self) -> f64 {
        self.quota
    }

    /// The lowest rate the rule ever gives.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// The rate at `now`: the quota, or the rate of the last slow-down plus what it has
    /// climbed back since, up to the quota.
    pub fn rate(&self, now: Instant) -> f64 {
        match self.slowed {
            None => self.quota,
            Some((rate, at)) => {
                let quiet = now.saturating_duration_since(at).as_secs_f64();
                (rate + self.climb * quiet).min(self.quota)
            }
        }
    }

    /// Whether the rate is below the quota at `now`.
    pub fn is_slowed(&self, now: Instant) -> bool {
        self.rate(now) < self.quota
    }

    /// A call was throttled at `now`: the rate drops by the factor, unless it already dropped
    /// within one interval of the current rate (calls sent before that drop report the same
    /// pressure, and must not collapse the rate to the floor at once). Returns whether it
    /// dropped.
    pub fn throttled(&mut self, now: Instant) -> bool {
        let current = self.rate(now);
        if let Some((_, at)) = self.slowed {
            let interval = Duration::from_secs_f64((1.0 / current).min(60.0));
            if now.saturating_duration_since(at) < interval {
                return false;
            }
        }
        self.slowed = Some(((current * self.factor).max(self.floor), now));
        true
    }
}

/// A limiter of one (account, region, API): the governor bucket of its configured quota,
/// and, while AWS throttles, a schedule at the slowed rate that every call waits for first:
/// each call takes the next slot, one interval of the current rate after the one before, so
/// the slowed rate holds however many callers wait (no burst while slowed).
pub struct AdaptiveLimiter {
    base: DefaultDirectRateLimiter,
    state: Mutex<Slowed>,
}

struct Slowed {
    rule: PacingRule,
    /// The next free slot while slowed.
    next: Option<Instant>,
    /// Slow-downs so far.
    slow_downs: u64,
}

impl AdaptiveLimiter {
    /// A limiter of the configured `limit`, slowing down by `pacing`.
    pub fn new(limit: RateLimit, pacing: &PacingConfig) -> AdaptiveLimiter {
        AdaptiveLimiter {
            base: RateLimiter::direct(super::limits::quota(limit)),
            state: Mutex::new(Slowed {
                rule: PacingRule::new(f64::from(limit.requests_per_second.get()), pacing),
                next: None,
                slow_downs: 0,
            }),
        }
    }

    /// Waits until a call may be made: for its slot while slowed, then for the quota's bucket.
    pub async fn until_ready(&self) {
        if let Some(slot) = self.take_slot(Instant::now()) {
            tokio::time::sleep_until(slot.into()).await;
        }
        self.base.until_ready().await;
    }

    /// A call was throttled: slows down (see [`PacingRule::throttled`]).
    pub fn throttled(&self) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.rule.throttled(now) {
            state.slow_downs += 1;
        }
    }

    /// The rate now, in calls per second.
    pub fn rate(&self) -> f64 {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.rule.rate(Instant::now())
    }

    /// Slow-downs so far.
    pub fn slow_downs(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slow_downs
    }

    /// The slot of a call asked for at `now` while slowed (`None`: not slowed).
    fn take_slot(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.rule.is_slowed(now) {
            state.next = None;
            return None;
        }
        let slot = state.next.map_or(now, |next| next.max(now));
        let interval = Duration::from_secs_f64(1.0 / state.rule.rate(slot));
        state.next = Some(slot + interval);
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use proptest::prelude::*;

    use super::*;

    fn config() -> PacingConfig {
        PacingConfig::default()
    }

    #[test]
    fn a_throttle_halves_the_rate_and_quiet_brings_it_back() {
        let start = Instant::now();
        let mut rule = PacingRule::new(20.0, &config());
        assert_eq!(rule.rate(start), 20.0);
        assert!(rule.throttled(start));
        assert_eq!(rule.rate(start), 10.0);
        // A second throttle within one interval (1 / 10 s) is the same pressure.
        assert!(!rule.throttled(start + Duration::from_millis(50)));
        assert_eq!(
            rule.rate(start + Duration::from_millis(50)),
            10.0 + 19.0 / 20.0 * 0.05
        );
        let later = start + Duration::from_secs(30);
        assert_eq!(rule.rate(later), 20.0, "recovered within recovery_seconds");
        assert!(!rule.is_slowed(later));
    }

    #[test]
    fn sustained_throttling_stops_at_the_floor() {
        let start = Instant::now();
        let mut rule = PacingRule::new(10.0, &config());
        for i in 0..100 {
            rule.throttled(start + Duration::from_secs(i * 30) / 10);
        }
        let now = start + Duration::from_secs(300);
        assert!(rule.rate(now) >= rule.floor());
        assert!((rule.floor() - 0.5).abs() < 1e-9);
    }

    proptest! {
        /// Whatever the throttles, the rate stays within [floor, quota], and a quiet period
        /// of recovery_seconds brings it back to the quota.
        #[test]
        fn the_rate_stays_within_floor_and_quota_and_recovers(
            quota in 1u32..500,
            factor in 0.05f64..0.95,
            floor in 0.01f64..1.0,
            recovery in 1.0f64..120.0,
            gaps in proptest::collection::vec(0u64..5_000, 0..200),
        ) {
            let config = PacingConfig { slow_down_factor: factor, floor_fraction: floor, recovery_seconds: recovery };
            let mut rule = PacingRule::new(f64::from(quota), &config);
            let mut now = Instant::now();
            for gap in gaps {
                now += Duration::from_millis(gap);
                rule.throttled(now);
                let rate = rule.rate(now);
                prop_assert!(rate >= rule.floor() - 1e-9, "rate {} below floor {}", rate, rule.floor());
                prop_assert!(rate <= rule.quota() + 1e-9);
                let soon = rule.rate(now + Duration::from_millis(gap));
                prop_assert!(soon >= rate - 1e-9, "quiet never lowers the rate");
            }
            let after = now + Duration::from_secs_f64(recovery + 0.001);
            prop_assert_eq!(rule.rate(after), rule.quota());
        }
    }

    #[test]
    fn slots_while_slowed_follow_the_rate_however_many_wait() {
        let limit = RateLimit {
            requests_per_second: NonZeroU32::new(1000).unwrap(),
            burst: NonZeroU32::new(1000).unwrap(),
        };
        let config = PacingConfig {
            slow_down_factor: 0.01,
            floor_fraction: 0.01,
            recovery_seconds: 1000.0,
        };
        let limiter = AdaptiveLimiter::new(limit, &config);
        let start = Instant::now();
        assert_eq!(
            limiter.take_slot(start),
            None,
            "not slowed: the quota's bucket alone"
        );
        limiter.throttled();
        // 50 callers at once get slots 100 ms apart (10/s, climbing by 1/s per second).
        let slots: Vec<Instant> = (0..50).map(|_| limiter.take_slot(start).unwrap()).collect();
        let span = slots[49].saturating_duration_since(slots[0]).as_secs_f64();
        assert!(
            span > 4.0 && span < 4.95,
            "49 intervals of about 0.1 s: {span}"
        );
        assert!(slots.windows(2).all(|w| w[1] > w[0]));
    }

    #[tokio::test]
    async fn a_throttled_limiter_paces_at_the_slowed_rate() {
        let limit = RateLimit {
            requests_per_second: NonZeroU32::new(1000).unwrap(),
            burst: NonZeroU32::new(1000).unwrap(),
        };
        let limiter = AdaptiveLimiter::new(
            limit,
            &PacingConfig {
                slow_down_factor: 0.01,
                floor_fraction: 0.01,
                recovery_seconds: 1000.0,
            },
        );
        limiter.throttled();
        assert!(limiter.rate() < 11.0, "1000/s slowed to 10/s");
        assert_eq!(limiter.slow_downs(), 1);
        let start = Instant::now();
        for _ in 0..4 {
            limiter.until_ready().await;
        }
        // One call at once, then one per 100 ms: the burst of 1000 is not available.
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
    }
}
