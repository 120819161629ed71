//! Shared helpers of the integration tests.

use std::sync::Arc;

use tagguard::config::Config;
use tagguard::domain::{ScanResult, ScanScope, SeverityFilter};
use tagguard::engine::{EngineHandle, ScanRequest};
use tagguard::policy::{Policy, default_policy, parse_policy};
use tagguard::scans::ScanService;
use tagguard::source::{GroundTruth, ResourceSource, SyntheticSource, SyntheticSpec};
use tagguard::store::Store;
use tagguard::tools::ToolEnv;

/// The default policy, shared.
pub fn policy() -> Arc<Policy> {
    Arc::new(default_policy())
}

/// The default policy with `case_sensitivity` set as given.
pub fn policy_with_case(case_sensitive: bool) -> Arc<Policy> {
    let text = tagguard::policy::DEFAULT_POLICY_JSON.replace(
        "\"case_sensitivity\": false",
        &format!("\"case_sensitivity\": {case_sensitive}"),
    );
    Arc::new(parse_policy(&text, "test").expect("variant of the default policy"))
}

/// A synthetic estate.
pub fn estate(size: u64, seed: u64, policy: &Arc<Policy>) -> Arc<SyntheticSource> {
    Arc::new(SyntheticSource::new(SyntheticSpec { size, seed }, policy.clone()).expect("estate"))
}

/// Scans `source` through a fresh engine and returns the result.
pub async fn scan(
    source: Arc<dyn ResourceSource>,
    policy: &Arc<Policy>,
    scope: ScanScope,
    severity: SeverityFilter,
) -> ScanResult {
    let engine = EngineHandle::start(Config::default())
        .await
        .expect("engine starts");
    let request = ScanRequest::new(source, policy.clone())
        .with_scope(scope)
        .with_severity(severity);
    let result = engine.scan(request).await.expect("scan succeeds");
    engine.shutdown().await;
    result
}

/// The violations of a result as comparable tuples, sorted like the ground truth's.
pub fn violation_keys(result: &ScanResult) -> Vec<(String, String, String, String)> {
    let mut keys: Vec<_> = result
        .violations()
        .map(|v| {
            (
                v.resource.arn.clone(),
                v.finding.violation_type.to_string(),
                v.finding.tag_name.to_string(),
                v.finding.severity.to_string(),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// The ground truth's violations as the same tuples.
pub fn truth_keys(truth: &GroundTruth) -> Vec<(String, String, String, String)> {
    let mut keys: Vec<_> = truth
        .violations
        .iter()
        .map(|v| {
            (
                v.resource_arn.clone(),
                v.violation_type.to_string(),
                v.tag_name.clone(),
                v.severity.to_string(),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// A data directory shared by the binaries the tests start, so that no test writes history
/// into the user's own (`~/.local/share/tagguard`). Tests that inspect a store use their own.
pub fn data_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

/// A tool environment over `source` on a new engine, recording in `store` when given, with
/// the default cache TTL.
pub async fn tool_env(
    source: Arc<dyn ResourceSource>,
    policy: &Arc<Policy>,
    store: Option<Store>,
) -> ToolEnv {
    let engine = EngineHandle::start(Config::default())
        .await
        .expect("engine starts");
    let ttl = std::time::Duration::from_secs(Config::default().cache.ttl_seconds);
    ToolEnv::new(Arc::new(ScanService::new(
        engine,
        policy.clone(),
        source,
        store,
        ttl,
    )))
}

/// A loopback port free a moment ago, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Waits until the engine runs no scan (an ended scan's actors stop just after it answers),
/// failing after `seconds`.
pub async fn wait_until_idle(engine: &EngineHandle, seconds: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let status = engine.status().await;
        assert!(status.running, "the engine stopped: {status:?}");
        if status.scans == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scans still run after {seconds} s: {status:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
