//! How the engine shares itself between scans and bounds its memory: fetcher slots are shared
//! fairly (a small scan started during a huge one is answered at once), each scan counts only
//! its own API calls, and the batches a scan has fetched but not yet merged stay within
//! `max_in_flight_batches` even when the aggregator is the bottleneck.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tagguard::config::Config;
use tagguard::domain::{
    CostSource, Resource, ResourceAttributes, ResourceType, ScanResult, ScanScope, Tag,
};
use tagguard::engine::{EngineHandle, ScanRequest};
use tagguard::policy::Policy;
use tagguard::source::{FetchContext, Page, ResourceSource, Shard, ShardPlan, SourceError};

use crate::support::policy;

/// An estate of `shards` shards of `pages` pages of `per_page` EC2 instances, each page taking
/// `delay` to fetch, and counting the API calls it makes (one per page) and the pages it
/// returned.
struct PagedSource {
    name: &'static str,
    shards: usize,
    pages: u64,
    per_page: u64,
    delay: Duration,
    returned: AtomicU64,
}

impl PagedSource {
    fn new(name: &'static str, shards: usize, pages: u64, per_page: u64, delay: Duration) -> Self {
        PagedSource {
            name,
            shards,
            pages,
            per_page,
            delay,
            returned: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl ResourceSource for PagedSource {
    fn name(&self) -> String {
        self.name.to_string()
    }

    async fn plan(
        &self,
        _scope: &ScanScope,
        cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        cx.calls().record("test:Plan");
        Ok(ShardPlan {
            shards: (0..self.shards)
                .map(|i| {
                    Shard::new(
                        "123456789012",
                        format!("r-{i:05}"),
                        "ec2",
                        vec![ResourceType::Ec2Instance],
                    )
                })
                .collect(),
            ..ShardPlan::default()
        })
    }

    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        cx: &FetchContext<'_>,
    ) -> Result<Page, SourceError> {
        cx.calls().record(&format!("test:{}", self.name));
        tokio::time::sleep(self.delay).await;
        let page: u64 = token.map_or(0, |t| t.parse().unwrap());
        let resources = (0..self.per_page)
            .map(|i| {
                let id = format!("i-{}-{page}-{i}", shard.region);
                let tags = vec![Tag::new("CostCenter", "Engineering")];
                Resource {
                    arn: format!("arn:aws:ec2:{}:123456789012:instance/{id}", shard.region),
                    account_id: shard.account_id.clone(),
                    region: shard.region.clone(),
                    resource_type: ResourceType::Ec2Instance,
                    id,
                    name: None,
                    tags,
                    created_at: None,
                    monthly_cost: None,
                    cost_source: CostSource::Unknown,
                    attributes: ResourceAttributes::default(),
                }
            })
            .collect();
        self.returned.fetch_add(1, Ordering::SeqCst);
        Ok(Page {
            resources,
            next: (page + 1 < self.pages).then(|| (page + 1).to_string()),
            issues: Vec::new(),
        })
    }
}

/// Regression: fetcher slots went to the oldest scan first, so a lookup started during an
/// organisation-wide scan waited for nearly all of it (here: 5,000 shards of a second each,
/// over 32 slots, about 2.5 minutes). The small scan needs a few milliseconds of work; it
/// must be answered within a second.
/// A scan of `shards` one-page shards of 5 resources, and how long it took to answer.
async fn small_scan(
    engine: &EngineHandle,
    policy: &Arc<Policy>,
    shards: usize,
) -> (ScanResult, Duration) {
    let started = std::time::Instant::now();
    let small = Arc::new(PagedSource::new(
        "small",
        shards,
        1,
        5,
        Duration::from_millis(10),
    ));
    let result = engine
        .scan(ScanRequest::new(small, policy.clone()))
        .await
        .unwrap();
    (result, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_scan_started_during_a_huge_one_is_answered_at_once() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let huge = Arc::new(PagedSource::new(
        "huge",
        5_000,
        1,
        1,
        Duration::from_secs(1),
    ));
    let big = engine
        .start_scan(ScanRequest::new(huge.clone(), policy.clone()))
        .await
        .unwrap();
    // Wait until the huge scan holds its slots.
    let mut progress = big.progress();
    while progress.borrow().shards_total.is_none() {
        progress.changed().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(engine.status().await.fetchers > 0);

    let (result, waited) = small_scan(&engine, &policy, 1).await;
    assert_eq!(result.totals.total_resources, 5);
    assert!(
        waited < Duration::from_secs(1),
        "the small scan waited {waited:?} behind the huge one"
    );
    // The huge scan goes on meanwhile.
    assert!(huge.returned.load(Ordering::SeqCst) < 5_000);
    engine.cancel(big.id);
    engine.shutdown().await;
}

/// Two organisation-wide scans at once hold every shared slot; a small scan still starts at
/// once, on a slot kept for scans that have none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_scan_starts_at_once_even_while_two_huge_ones_run() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let mut tickets = Vec::new();
    for name in ["huge-a", "huge-b"] {
        let huge = Arc::new(PagedSource::new(name, 2_000, 1, 1, Duration::from_secs(1)));
        let ticket = engine
            .start_scan(ScanRequest::new(huge, policy.clone()))
            .await
            .unwrap();
        let mut progress = ticket.progress();
        while progress.borrow().shards_total.is_none() {
            progress.changed().await.unwrap();
        }
        tickets.push(ticket);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let status = engine.status().await;
    // The first took the 24 shared slots; the second, with none, one of the reserved ones.
    assert_eq!(status.fetchers, 25, "{status:?}");
    let (result, waited) = small_scan(&engine, &policy, 3).await;
    assert_eq!(result.totals.total_resources, 15);
    assert!(
        waited < Duration::from_secs(1),
        "the small scan waited {waited:?}"
    );
    for ticket in &tickets {
        engine.cancel(ticket.id);
    }
    engine.shutdown().await;
}

/// Regression: cancelling a scan did not hand its fetcher slots on, so a scan waiting for a
/// slot waited forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_scan_hands_its_slots_to_the_scans_waiting() {
    let policy = policy();
    let mut config = Config::default();
    config.engine.max_concurrent_fetchers = 1;
    config.engine.reserved_fetchers = 0;
    let engine = EngineHandle::start(config).await.unwrap();
    let long = Arc::new(PagedSource::new(
        "long",
        1,
        1_000,
        1,
        Duration::from_millis(50),
    ));
    let first = engine
        .start_scan(ScanRequest::new(long, policy.clone()))
        .await
        .unwrap();
    let mut progress = first.progress();
    while progress.borrow().resources_scanned == 0 {
        progress.changed().await.unwrap();
    }
    let short = Arc::new(PagedSource::new("short", 2, 1, 3, Duration::ZERO));
    let second = engine
        .start_scan(ScanRequest::new(short, policy.clone()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        engine.status().await.shards_waiting > 0,
        "the second waits for the slot"
    );
    engine.cancel(first.id);
    let result = tokio::time::timeout(Duration::from_secs(5), second.result())
        .await
        .expect("the waiting scan gets the freed slot")
        .unwrap();
    assert_eq!(result.totals.total_resources, 6);
    engine.shutdown().await;
}

/// Regression: the API calls of one scan included those of scans running beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scan_counts_only_its_own_api_calls() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let a = Arc::new(PagedSource::new("a", 7, 3, 2, Duration::from_millis(5)));
    let b = Arc::new(PagedSource::new("b", 4, 5, 2, Duration::from_millis(3)));
    let (first, second) = tokio::join!(
        engine.scan(ScanRequest::new(a, policy.clone())),
        engine.scan(ScanRequest::new(b, policy.clone())),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(
        first.meta.api_calls,
        [("test:Plan".to_string(), 1), ("test:a".to_string(), 21)].into()
    );
    assert_eq!(
        second.meta.api_calls,
        [("test:Plan".to_string(), 1), ("test:b".to_string(), 20)].into()
    );
    engine.shutdown().await;
}

/// Regression: the permit of a batch was released when it was validated, so validated batches
/// queued without bound in front of a slow aggregator. Here the aggregator is stalled: the
/// sampler holds the scan's progress (which the aggregator must update after each merge) most
/// of the time, while fetchers and validators run on the other threads. The batches fetched
/// but not yet merged must stay within the bound: `max_in_flight_batches`, plus the page each
/// fetcher may hold while it waits for a permit, plus as many again for the sampling's lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_fetched_and_not_merged_stay_within_the_bound() {
    let policy = policy();
    let mut config = Config::default();
    config.engine.max_in_flight_batches = 4;
    config.engine.max_concurrent_fetchers = 4;
    config.engine.reserved_fetchers = 0;
    config.engine.validator_workers = 2;
    let engine = EngineHandle::start(config).await.unwrap();
    let per_page = 100;
    let source = Arc::new(PagedSource::new(
        "stalled",
        8,
        100,
        per_page,
        Duration::ZERO,
    ));
    let ticket = engine
        .start_scan(ScanRequest::new(source.clone(), policy))
        .await
        .unwrap();
    let progress = ticket.progress();
    let sampler = tokio::spawn({
        let source = source.clone();
        async move {
            let mut worst = 0u64;
            loop {
                {
                    let seen = progress.borrow();
                    if seen.finished {
                        return worst;
                    }
                    // Holding the progress stalls the aggregator at its next update, with
                    // one more batch merged than `seen` says; meanwhile fetching goes on.
                    std::thread::sleep(Duration::from_millis(20));
                    let merged = seen.resources_scanned / per_page + 1;
                    let fetched = source.returned.load(Ordering::SeqCst);
                    worst = worst.max(fetched.saturating_sub(merged));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let result = ticket.result().await.unwrap();
    assert_eq!(result.totals.total_resources, 8 * 100 * per_page);
    let worst = sampler.await.unwrap();
    let bound = 4 + 2 * 4;
    assert!(
        worst <= bound,
        "{worst} batches were fetched and not merged at once; the bound is {bound}"
    );
    engine.shutdown().await;
}

/// A source whose every page first asks the engine's pacing for its account, and records when
/// each page was served.
struct PacedSource {
    served: std::sync::Mutex<Vec<(String, std::time::Instant)>>,
}

#[async_trait]
impl ResourceSource for PacedSource {
    fn name(&self) -> String {
        "paced".to_string()
    }

    async fn plan(
        &self,
        _scope: &ScanScope,
        _cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        let shard = |account: &str| {
            Shard::new(account, "us-east-1", "ec2", vec![ResourceType::Ec2Instance])
        };
        Ok(ShardPlan {
            shards: vec![shard("111111111111"), shard("222222222222")],
            ..ShardPlan::default()
        })
    }

    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        cx: &FetchContext<'_>,
    ) -> Result<Page, SourceError> {
        cx.pace(&shard.account_id, &shard.region, "local").await;
        self.served
            .lock()
            .unwrap()
            .push((shard.account_id.to_string(), std::time::Instant::now()));
        let page: u64 = token.map_or(0, |t| t.parse().unwrap());
        Ok(Page {
            resources: Vec::new(),
            next: (page < 5).then(|| (page + 1).to_string()),
            issues: Vec::new(),
        })
    }
}

/// Every call waits for a token of its (account, region, API) limiter: at 20 a second with no
/// burst, the pages of one account are at least 50 ms apart, and each account has its own
/// limiter (the two shards are paced side by side, not one after the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_paced_to_the_quota_of_their_account() {
    let mut config = Config::default();
    config.rate_limits.insert(
        "local".to_string(),
        tagguard::config::RateLimit {
            requests_per_second: std::num::NonZeroU32::new(20).unwrap(),
            burst: std::num::NonZeroU32::new(1).unwrap(),
        },
    );
    let engine = EngineHandle::start(config).await.unwrap();
    let source = Arc::new(PacedSource {
        served: std::sync::Mutex::new(Vec::new()),
    });
    engine
        .scan(ScanRequest::new(source.clone(), policy()))
        .await
        .unwrap();
    let served = source.served.lock().unwrap().clone();
    assert_eq!(served.len(), 12, "six pages per shard");
    for account in ["111111111111", "222222222222"] {
        let times: Vec<std::time::Instant> = served
            .iter()
            .filter(|(a, _)| a == account)
            .map(|(_, t)| *t)
            .collect();
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_millis(45),
                "{account}: pages {gap:?} apart, under the quota's 50 ms"
            );
        }
    }
    assert_eq!(engine.limiters().len(), 2, "one limiter per account");
    engine.shutdown().await;
}
