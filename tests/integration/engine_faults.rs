//! The engine under faults: failing and crashing shards give partial results, never a crash or a
//! silent drop; scans can be cancelled; progress is published; concurrent scans stay exact.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tagguard::config::Config;
use tagguard::domain::{
    ResourceType, ScanIssue, ScanIssueKind, ScanResult, ScanScope, SeverityFilter,
};
use tagguard::engine::{EngineError, EngineHandle, ScanRequest};
use tagguard::source::{
    FetchContext, Page, ResourceSource, Shard, ShardPlan, SourceError, SyntheticSource,
};

use crate::support::{estate, policy, truth_keys, violation_keys, wait_until_idle};

/// What the wrapped source does wrong.
#[derive(Clone, Copy)]
enum Fault {
    /// The us-west-2 lambda shard of the first account fails on page `n` (0-based).
    FailOnPage(u32),
    /// That shard's fetch panics.
    Panic,
    /// Every page takes this long.
    Slow(Duration),
    /// Planning fails.
    PlanFails,
    /// Planning panics.
    PlanPanics,
    /// The target shard's first page is throttled this many times, then read.
    Throttled(u32),
    /// The target shard's second page never comes.
    Hangs,
    /// Planning never ends.
    PlanHangs,
}

/// A synthetic estate with a fault injected: a source of the engine's public trait, as any
/// embedder could write one.
struct FaultySource {
    inner: Arc<SyntheticSource>,
    fault: Fault,
}

fn is_target(shard: &Shard) -> bool {
    &*shard.account_id == "123456789012"
        && &*shard.region == "us-west-2"
        && &*shard.service == "lambda"
}

#[async_trait]
impl ResourceSource for FaultySource {
    fn name(&self) -> String {
        "faulty".into()
    }

    async fn plan(
        &self,
        scope: &ScanScope,
        cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        match self.fault {
            Fault::PlanFails => {
                return Err(SourceError::new(
                    ScanIssueKind::AccessDenied,
                    "no credentials at all",
                ));
            }
            Fault::PlanPanics => panic!("the planner hit a bug"),
            Fault::PlanHangs => std::future::pending::<()>().await,
            _ => {}
        }
        self.inner.plan(scope, cx).await
    }

    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        cx: &FetchContext<'_>,
    ) -> Result<Page, SourceError> {
        let page_number = token
            .as_deref()
            .map_or(0, |t| t.parse::<u32>().unwrap() / 1_000);
        match self.fault {
            Fault::FailOnPage(n) if is_target(shard) && page_number == n => {
                let mut error = SourceError::new(
                    ScanIssueKind::AccessDenied,
                    "User is not authorized to perform lambda:ListFunctions",
                );
                error.missing_permission = Some("lambda:ListFunctions".into());
                return Err(error);
            }
            Fault::Panic if is_target(shard) => panic!("poison page"),
            Fault::Throttled(times)
                if is_target(shard)
                    && page_number == 0
                    && THROTTLES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < times =>
            {
                let mut error = SourceError::new(
                    ScanIssueKind::Throttled,
                    "Rate exceeded (ThrottlingException)",
                );
                error.retryable = true;
                error.operation = Some("lambda:ListFunctions".into());
                return Err(error);
            }
            Fault::Hangs if is_target(shard) && page_number == 1 => {
                std::future::pending::<()>().await;
            }
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            _ => {}
        }
        self.inner.fetch_page(shard, token, cx).await
    }
}

/// Throttles answered so far by [`Fault::Throttled`] (one test uses it at a time: the tests
/// that do are serialised by [`THROTTLE_TESTS`]).
static THROTTLES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static THROTTLE_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The default config with quick page retries.
fn quick_retries(page_retries: u32) -> Config {
    let mut config = Config::default();
    config.retries.page_retries = page_retries;
    config.retries.page_backoff_ms = 5;
    config.retries.page_max_backoff_ms = 20;
    config
}

/// The result's one issue, which must be of `kind` and name the target shard.
fn the_target_s_issue(result: &ScanResult, kind: ScanIssueKind) -> &ScanIssue {
    let [issue] = result.tally.issues.as_slice() else {
        panic!("one issue: {:?}", result.tally.issues);
    };
    assert_eq!(issue.kind, kind);
    assert_eq!((&*issue.region, &*issue.service), ("us-west-2", "lambda"));
    issue
}

fn target_scope() -> ScanScope {
    ScanScope {
        resource_types: [ResourceType::LambdaFunction].into(),
        regions: ["us-west-2".to_string()].into(),
        accounts: ["123456789012".to_string()].into(),
        ..ScanScope::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_shard_gives_a_partial_result_with_the_reason() {
    let policy = policy();
    // 60k resources put more than one page in the target shard, so page 1 fails mid-shard.
    let inner = estate(60_000, 3, &policy);
    let truth = inner.ground_truth(&ScanScope::default());
    let target_total = inner.ground_truth(&target_scope()).by_type[&ResourceType::LambdaFunction].0;
    assert!(target_total > 1_000, "the target shard spans pages");
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let source = Arc::new(FaultySource {
        inner,
        fault: Fault::FailOnPage(1),
    });
    let result = engine.scan(ScanRequest::new(source, policy)).await.unwrap();
    engine.shutdown().await;

    assert!(result.partial);
    assert_eq!(result.tally.issues.len(), 1);
    let issue = &result.tally.issues[0];
    assert_eq!(
        (
            issue.account_id.as_str(),
            issue.region.as_str(),
            issue.service.as_str()
        ),
        ("123456789012", "us-west-2", "lambda")
    );
    assert_eq!(issue.kind, ScanIssueKind::AccessDenied);
    assert_eq!(
        issue.missing_permission.as_deref(),
        Some("lambda:ListFunctions")
    );
    assert_eq!(
        issue.resources_before_failure, 1_000,
        "the first page was read and kept"
    );
    let expected_total: u64 =
        truth.by_type.values().map(|c| c.0).sum::<u64>() - (target_total - 1_000);
    assert_eq!(result.totals.total_resources, expected_total);
    assert_eq!(result.meta.shards_succeeded, result.meta.shards_total - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_fetcher_is_reported_and_the_rest_completes() {
    let policy = policy();
    let inner = estate(5_000, 4, &policy);
    let truth = inner.ground_truth(&ScanScope::default());
    let target_total = inner.ground_truth(&target_scope()).by_type[&ResourceType::LambdaFunction].0;
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let source = Arc::new(FaultySource {
        inner,
        fault: Fault::Panic,
    });
    let result = engine
        .scan(ScanRequest::new(source, policy.clone()))
        .await
        .unwrap();
    assert_eq!(result.tally.issues.len(), 1);
    assert_eq!(result.tally.issues[0].kind, ScanIssueKind::FetcherCrashed);
    assert!(
        result.tally.issues[0].message.contains("poison page"),
        "{}",
        result.tally.issues[0].message
    );
    assert_eq!(
        result.totals.total_resources,
        truth.by_type.values().map(|c| c.0).sum::<u64>() - target_total
    );
    // The engine survives the crash and scans again.
    let again = engine
        .scan(ScanRequest::new(estate(100, 1, &policy), policy.clone()))
        .await
        .unwrap();
    assert_eq!(again.totals.total_resources, 100);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_failure_fails_the_scan_with_the_reason() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let source = Arc::new(FaultySource {
        inner: estate(10, 1, &policy),
        fault: Fault::PlanFails,
    });
    let error = engine
        .scan(ScanRequest::new(source, policy))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, EngineError::Plan(e) if e.kind == ScanIssueKind::AccessDenied),
        "{error}"
    );
    engine.shutdown().await;
}

/// Regression: planning ran outside the supervision tree, so a panic while planning left the
/// scan waiting forever. It must end the scan with an error, and the engine go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_panics_fails_the_scan_instead_of_hanging_it() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let source = Arc::new(FaultySource {
        inner: estate(10, 1, &policy),
        fault: Fault::PlanPanics,
    });
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        engine.scan(ScanRequest::new(source, policy.clone())),
    )
    .await
    .expect("the scan ends");
    match outcome {
        Err(EngineError::Plan(error)) => {
            assert_eq!(error.kind, ScanIssueKind::FetcherCrashed);
            assert!(error.message.contains("the planner hit a bug"), "{error}");
        }
        other => panic!("expected a planning error, got {other:?}"),
    }
    wait_until_idle(&engine, 2).await;
    let again = engine
        .scan(ScanRequest::new(estate(30, 2, &policy), policy))
        .await
        .unwrap();
    assert_eq!(again.totals.total_resources, 30);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_can_be_cancelled() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let source = Arc::new(FaultySource {
        inner: estate(200_000, 1, &policy),
        fault: Fault::Slow(Duration::from_millis(200)),
    });
    let ticket = engine
        .start_scan(ScanRequest::new(source, policy.clone()))
        .await
        .unwrap();
    let id = ticket.id;
    let mut progress = ticket.progress();
    // Wait until some batch was validated, then cancel.
    while progress.borrow().resources_scanned == 0 {
        progress.changed().await.unwrap();
    }
    engine.cancel(id);
    let outcome = tokio::time::timeout(Duration::from_secs(5), ticket.result())
        .await
        .expect("cancel is prompt");
    assert_eq!(outcome.unwrap_err(), EngineError::Cancelled(id));
    // The engine goes on serving other scans.
    let result = engine
        .scan(ScanRequest::new(estate(50, 2, &policy), policy))
        .await
        .unwrap();
    assert_eq!(result.totals.total_resources, 50);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_totals() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let ticket = engine
        .start_scan(ScanRequest::new(estate(12_000, 8, &policy), policy))
        .await
        .unwrap();
    let progress = ticket.progress();
    let result = ticket.result().await.unwrap();
    let last = progress.borrow().clone();
    assert!(last.finished);
    assert_eq!(last.resources_scanned, result.totals.total_resources);
    assert_eq!(last.non_compliant, result.totals.non_compliant_resources);
    assert_eq!(last.shards_total, Some(result.meta.shards_total));
    assert_eq!(last.shards_done, result.meta.shards_total);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scans_on_one_engine_stay_exact() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let estates: Vec<_> = (0..4).map(|seed| estate(7_000, seed, &policy)).collect();
    let mut tickets = Vec::new();
    for source in &estates {
        let request =
            ScanRequest::new(source.clone(), policy.clone()).with_severity(SeverityFilter::All);
        tickets.push(engine.start_scan(request).await.unwrap());
    }
    for (ticket, source) in tickets.into_iter().zip(&estates) {
        let result = ticket.result().await.unwrap();
        assert_eq!(
            violation_keys(&result),
            truth_keys(&source.ground_truth(&ScanScope::default()))
        );
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_resolves_scans_in_flight() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let source = Arc::new(FaultySource {
        inner: estate(100_000, 1, &policy),
        fault: Fault::Slow(Duration::from_millis(500)),
    });
    let ticket = engine
        .start_scan(ScanRequest::new(source, policy))
        .await
        .unwrap();
    engine.shutdown().await;
    let outcome = tokio::time::timeout(Duration::from_secs(5), ticket.result())
        .await
        .expect("prompt");
    assert_eq!(outcome.unwrap_err(), EngineError::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_draws_on_the_limiter_of_its_account_region_and_api() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    assert!(engine.limiters().is_empty());
    engine
        .scan(ScanRequest::new(estate(3_000, 1, &policy), policy))
        .await
        .unwrap();
    // The demo estate: 3 accounts × 3 regions, one `local` API.
    assert_eq!(engine.limiters().len(), 9);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_page_is_retried_until_it_is_read() {
    let _one_at_a_time = THROTTLE_TESTS.lock().await;
    THROTTLES.store(0, std::sync::atomic::Ordering::SeqCst);
    let policy = policy();
    let inner = estate(20_000, 5, &policy);
    let truth = inner.ground_truth(&ScanScope::default());
    let engine = EngineHandle::start(quick_retries(6)).await.unwrap();
    let source = Arc::new(FaultySource {
        inner,
        fault: Fault::Throttled(4),
    });
    let result = engine.scan(ScanRequest::new(source, policy)).await.unwrap();
    engine.shutdown().await;
    assert!(!result.partial, "{:?}", result.tally.issues);
    assert_eq!(violation_keys(&result), truth_keys(&truth));
    assert_eq!(result.meta.retried_calls["lambda:ListFunctions"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_throttled_past_its_retries_ends_its_shard_as_an_issue() {
    let _one_at_a_time = THROTTLE_TESTS.lock().await;
    THROTTLES.store(0, std::sync::atomic::Ordering::SeqCst);
    let policy = policy();
    let inner = estate(20_000, 5, &policy);
    let engine = EngineHandle::start(quick_retries(2)).await.unwrap();
    let source = Arc::new(FaultySource {
        inner,
        fault: Fault::Throttled(u32::MAX),
    });
    let result = engine.scan(ScanRequest::new(source, policy)).await.unwrap();
    engine.shutdown().await;
    assert!(result.partial);
    let issue = the_target_s_issue(&result, ScanIssueKind::Throttled);
    assert!(
        issue.message.contains("retried 2 times"),
        "{}",
        issue.message
    );
    assert_eq!(result.meta.retried_calls["lambda:ListFunctions"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_ends_a_hanging_shard_and_keeps_what_was_read() {
    let policy = policy();
    // Big enough that the target shard has a second page, which hangs; the scan covers the
    // target's account and region only (five shards), so the others end long before the
    // deadline even on a loaded machine.
    let inner = estate(60_000, 3, &policy);
    let scope = ScanScope {
        regions: ["us-west-2".to_string()].into(),
        accounts: ["123456789012".to_string()].into(),
        ..ScanScope::default()
    };
    let truth = inner.ground_truth(&scope);
    let target_total = inner.ground_truth(&target_scope()).by_type[&ResourceType::LambdaFunction].0;
    assert!(target_total > 1_000);
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let source = Arc::new(FaultySource {
        inner,
        fault: Fault::Hangs,
    });
    let request = ScanRequest::new(source, policy)
        .with_scope(scope)
        .with_deadline(Some(Duration::from_secs(10)));
    let result = tokio::time::timeout(Duration::from_secs(60), engine.scan(request))
        .await
        .expect("the deadline ends the scan")
        .unwrap();
    engine.shutdown().await;
    assert!(result.partial);
    let issue = the_target_s_issue(&result, ScanIssueKind::Timeout);
    assert_eq!(
        issue.resources_before_failure, 1_000,
        "the first page was read"
    );
    assert!(
        issue.message.contains("deadline of 10 s"),
        "{}",
        issue.message
    );
    // Everything else is exact; of the hanging shard, its first page.
    let total: u64 = result
        .tally
        .by_resource_type
        .values()
        .map(|c| c.total)
        .sum();
    let truth_total: u64 = truth.by_type.values().map(|(n, _)| n).sum();
    assert_eq!(total, truth_total - (target_total - 1_000));
    assert_eq!(result.meta.shards_succeeded, result.meta.shards_total - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_during_planning_fails_the_scan_with_the_reason() {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let source = Arc::new(FaultySource {
        inner: estate(100, 1, &policy),
        fault: Fault::PlanHangs,
    });
    let request =
        ScanRequest::new(source, policy.clone()).with_deadline(Some(Duration::from_millis(300)));
    let outcome = tokio::time::timeout(Duration::from_secs(30), engine.scan(request))
        .await
        .expect("the deadline ends the scan");
    match outcome {
        Err(EngineError::Plan(error)) => {
            assert_eq!(error.kind, ScanIssueKind::Timeout);
            assert!(
                error.message.contains("while planning"),
                "{}",
                error.message
            );
        }
        other => panic!("expected a planning timeout, got {other:?}"),
    }
    // The engine serves the next scan.
    wait_until_idle(&engine, 10).await;
    let next = engine
        .scan(ScanRequest::new(estate(100, 1, &policy), policy))
        .await
        .unwrap();
    assert!(!next.partial);
    engine.shutdown().await;
}
