//! Backoff with full jitter between retries of a call or a page, shared by the engine (a
//! page, a plan) and the AWS source (one call among the many of a page, one account's
//! planning).

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::config::RetryConfig;
use crate::source::{ApiCallCounter, SourceError};

/// Runs `attempt` until it succeeds, fails in a way not worth retrying, or has been retried
/// `page_retries` times (or `budget`, when given, is spent: retries shared by many calls),
/// waiting a backoff with full jitter between attempts; each retry is counted against the
/// operation that failed.
pub async fn retrying<T, F, Fut>(
    config: &RetryConfig,
    calls: &ApiCallCounter,
    budget: Option<&AtomicU32>,
    mut attempt: F,
) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SourceError>>,
{
    let mut retry = 0;
    loop {
        match attempt().await {
            Err(error)
                if error.retryable
                    && retry < config.page_retries
                    && budget.is_none_or(|b| {
                        b.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                            .is_ok()
                    }) =>
            {
                if let Some(operation) = &error.operation {
                    calls.record_retry(operation);
                }
                let delay = backoff(config, retry, entropy());
                tracing::debug!(retry, ?delay, error = %error.message, "retrying");
                retry += 1;
                tokio::time::sleep(delay).await;
            }
            outcome => return outcome,
        }
    }
}

/// The backoff before retry `retry` (0-based): full jitter over an exponentially growing
/// window, `[0, min(cap, base × 2^retry)]`, so that callers throttled together do not come back
/// together. `entropy` is any well-mixed number.
pub fn backoff(config: &RetryConfig, retry: u32, entropy: u64) -> Duration {
    let window = config
        .page_backoff_ms
        .saturating_mul(1u64 << retry.min(30))
        .min(config.page_max_backoff_ms)
        .max(1);
    Duration::from_millis(entropy % (window + 1))
}

/// A well-mixed number for jitter (splitmix64 of the clock and a call counter): callers at the
/// same instant still draw apart, with no generator state to lock.
pub fn entropy() -> u64 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let draw = DRAWS.fetch_add(1, Ordering::Relaxed);
    let mut z = nanos ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_double_up_to_the_cap_and_jitter_stays_inside() {
        let config = RetryConfig {
            page_backoff_ms: 100,
            page_max_backoff_ms: 1_000,
            ..RetryConfig::default()
        };
        for (retry, window) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1_000),
            (40, 1_000),
        ] {
            // The largest draw is the window itself.
            assert_eq!(backoff(&config, retry, window).as_millis() as u64, window);
            for _ in 0..200 {
                assert!(backoff(&config, retry, entropy()).as_millis() as u64 <= window);
            }
        }
        assert_eq!(backoff(&config, 3, 0), Duration::ZERO);
    }
}
