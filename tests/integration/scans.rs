//! The scan service: identical questions asked at once share one scan (and one record); a
//! caller that gives up leaves the others their answer, and the last one to leave stops the
//! scan; lookups are answered, never recorded; cached answers say so.

use std::sync::Arc;
use std::time::Duration;

use tagguard::config::Config;
use tagguard::domain::{Origin, ScanScope};
use tagguard::engine::EngineHandle;
use tagguard::scans::{CachePolicy, RunContext, ScanError, ScanQuestion, ScanService};
use tagguard::store::{Retention, Store};

use crate::support::{estate, policy, wait_until_idle};

async fn service(size: u64, store: Option<Store>) -> Arc<ScanService> {
    let policy = policy();
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    Arc::new(ScanService::new(
        engine,
        policy.clone(),
        estate(size, 3, &policy),
        store,
        Duration::from_secs(300),
    ))
}

fn question(cache: CachePolicy) -> ScanQuestion {
    ScanQuestion {
        cache,
        ..ScanQuestion::new(ScanScope::default(), Origin::Tool("test".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_questions_asked_at_once_share_one_scan_and_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let service = service(50_000, Some(store.clone())).await;
    let ctx = RunContext::default();
    let (a, b, c) = tokio::join!(
        service.scan(&ctx, question(CachePolicy::Refresh)),
        service.scan(&ctx, question(CachePolicy::Refresh)),
        service.scan(&ctx, question(CachePolicy::Refresh)),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a.result.meta.scan_id, b.result.meta.scan_id);
    assert_eq!(a.result.meta.scan_id, c.result.meta.scan_id);
    assert!(Arc::ptr_eq(&a.result, &b.result), "one result, shared");
    assert_eq!(store.status().await.unwrap().scans, 1, "recorded once");
    // Asked again, the cache answers, and says so.
    let again = service
        .scan(&ctx, question(CachePolicy::Use))
        .await
        .unwrap();
    assert!(again.cache.from_cache);
    assert_eq!(again.result.meta.scan_id, a.result.meta.scan_id);
    // Another question (another scope) is another scan.
    let narrow = ScanQuestion::new(
        ScanScope {
            regions: ["us-east-1".to_string()].into(),
            ..ScanScope::default()
        },
        Origin::Tool("test".into()),
    );
    let other = service.scan(&ctx, narrow).await.unwrap();
    assert_ne!(other.result.meta.scan_id, a.result.meta.scan_id);
    assert_eq!(store.status().await.unwrap().scans, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_leaves_leaves_the_others_their_answer_and_the_last_stops_the_scan() {
    let service = service(200_000, None).await;
    let patient = RunContext::default();
    let hasty = RunContext::default();
    let leaving = hasty.cancel.clone();
    let (answer, gave_up) = tokio::join!(
        service.scan(&patient, question(CachePolicy::Refresh)),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            leaving.cancel();
            service.scan(&hasty, question(CachePolicy::Refresh)).await
        },
    );
    assert_eq!(gave_up.unwrap_err(), ScanError::Cancelled);
    assert_eq!(answer.unwrap().result.totals.total_resources, 200_000);

    // Now both leave a long scan: it stops in the engine.
    let service = self::service(5_000_000, None).await;
    let first = RunContext::default();
    let second = RunContext::default();
    let (stop_first, stop_second) = (first.cancel.clone(), second.cancel.clone());
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop_first.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop_second.cancel();
    });
    let (a, b) = tokio::join!(
        service.scan(&first, question(CachePolicy::Refresh)),
        service.scan(&second, question(CachePolicy::Refresh)),
    );
    stopper.await.unwrap();
    assert_eq!(a.unwrap_err(), ScanError::Cancelled);
    assert_eq!(b.unwrap_err(), ScanError::Cancelled);
    wait_until_idle(service.engine(), 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_answered_and_never_recorded_or_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let service = service(300, Some(store.clone())).await;
    let arn = service
        .scan(&RunContext::default(), question(CachePolicy::Bypass))
        .await
        .unwrap()
        .result
        .violations()
        .next()
        .expect("a violation")
        .resource
        .arn
        .clone();
    assert_eq!(store.status().await.unwrap().scans, 1);
    for _ in 0..3 {
        let lookup = ScanQuestion::new(
            ScanScope {
                arns: [arn.clone()].into(),
                ..ScanScope::default()
            },
            Origin::Lookup("test".into()),
        );
        let answer = service.scan(&RunContext::default(), lookup).await.unwrap();
        assert!(!answer.cache.from_cache);
        assert_eq!(answer.result.totals.total_resources, 1);
        assert!(answer.result.tally.matched_arns.contains(&arn));
    }
    assert_eq!(
        store.status().await.unwrap().scans,
        1,
        "lookups add nothing to the history"
    );
}

/// Regression: a caller whose future was dropped (a transport that gave up on a request, a
/// `join` that failed on another branch) never left its flight, so the scan ran on after every
/// caller still there had cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropped_mid_wait_leaves_too() {
    let service = service(5_000_000, None).await;
    let dropped = tokio::spawn({
        let service = service.clone();
        async move {
            service
                .scan(&RunContext::default(), question(CachePolicy::Refresh))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let staying = RunContext::default();
    let stop = staying.cancel.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        dropped.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
    });
    let outcome = service.scan(&staying, question(CachePolicy::Refresh)).await;
    canceller.await.unwrap();
    assert_eq!(outcome.unwrap_err(), ScanError::Cancelled);
    wait_until_idle(service.engine(), 5).await;
}
