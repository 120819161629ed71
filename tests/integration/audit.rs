//! Tool calls through `ToolRegistry::invoke` with a real store: one audit record per call with
//! its status, guardrails, and the result cache across a restart.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use proptest::prelude::*;
use serde_json::{Value, json};
use tagguard::config::Guardrails;
use tagguard::store::{AuditQuery, AuditStatus, Retention, Store};
use tagguard::tools::{CallContext, ToolEnv, ToolRegistry};

use crate::support::{estate, policy, tool_env, wait_until_idle};

async fn env_with_store(store: &Store, guardrails: Guardrails) -> ToolEnv {
    let policy = policy();
    tool_env(estate(200, 42, &policy), &policy, Some(store.clone()))
        .await
        .with_guardrails(guardrails)
}

/// The structured answer of a call that must succeed.
async fn answer(env: &ToolEnv, session: &str, tool: &str, args: Value) -> Value {
    let outcome = ToolRegistry::standard()
        .invoke(env, session, tool, args, &CallContext::default())
        .await
        .expect("the tool exists");
    let text = outcome.text();
    outcome
        .structured
        .unwrap_or_else(|| panic!("{tool} failed: {text}"))
}

fn all_records() -> AuditQuery {
    AuditQuery {
        since: Utc::now() - chrono::Duration::days(1),
        tool: None,
        status: None,
        session: None,
        limit: usize::MAX,
    }
}

/// The calls a test may make, and the status each must end with (loops aside).
fn call_kinds() -> Vec<(&'static str, Value, AuditStatus)> {
    vec![
        (
            "check_tag_compliance",
            json!({ "limit": 1 }),
            AuditStatus::Success,
        ),
        ("get_tagging_policy", json!({}), AuditStatus::Success),
        (
            "find_untagged_resources",
            json!({ "limit": "x" }),
            AuditStatus::InvalidInput,
        ),
        (
            "validate_resource_tags",
            json!({ "resource_arns": ["nope"] }),
            AuditStatus::Success,
        ),
        ("no_such_tool", json!({}), AuditStatus::UnknownTool),
        (
            "get_violation_history",
            json!({ "days_back": 0 }),
            AuditStatus::InvalidInput,
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any sequence of calls, from any sessions, leaves exactly one audit record per call,
    /// with the status the call ended with.
    #[test]
    fn every_call_leaves_exactly_one_audit_record_with_its_status(
        calls in proptest::collection::vec((0usize..6, 0usize..2), 1..14)
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), Retention::default()).unwrap();
            let env = env_with_store(&store, Guardrails::default()).await;
            let registry = ToolRegistry::standard();
            let kinds = call_kinds();
            let mut expected: HashMap<String, AuditStatus> = HashMap::new();
            let mut repeats: HashMap<(usize, usize), u32> = HashMap::new();
            for (kind, session) in calls {
                let (tool, args, status) = &kinds[kind];
                let session_id = format!("session-{session}");
                let outcome = registry
                    .invoke(&env, &session_id, tool, args.clone(), &CallContext::default())
                    .await;
                let seen = repeats.entry((kind, session)).or_default();
                match outcome {
                    None => prop_assert_eq!(*status, AuditStatus::UnknownTool),
                    Some(outcome) => {
                        // The fourth identical call of a session is a loop.
                        let want = if *seen >= 3 { AuditStatus::LoopDetected } else { *status };
                        prop_assert_eq!(outcome.status, want, "{} {}", tool, args);
                        prop_assert_eq!(&outcome.meta["correlation_id"], &json!(outcome.correlation_id));
                        expected.insert(outcome.correlation_id.clone(), outcome.status);
                    }
                }
                if *status != AuditStatus::UnknownTool && *seen < 3 {
                    *seen += 1;
                }
                if *status == AuditStatus::UnknownTool {
                    expected.insert(format!("unknown-{}", expected.len()), AuditStatus::UnknownTool);
                }
            }
            let records = store.audit_records(all_records()).await.unwrap();
            prop_assert_eq!(records.len(), expected.len(), "one record per call");
            for record in &records {
                match expected.get(&record.correlation_id) {
                    Some(status) => prop_assert_eq!(record.status, *status),
                    None => prop_assert_eq!(record.status, AuditStatus::UnknownTool),
                }
                prop_assert!(record.session.starts_with("session-"));
            }
            store.close();
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_session_over_budget_gets_an_explaining_tool_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let limits = Guardrails {
        max_calls_per_session: 2,
        ..Guardrails::default()
    };
    let env = env_with_store(&store, limits).await;
    let registry = ToolRegistry::standard();
    let ctx = CallContext::default();
    for _ in 0..2 {
        let outcome = registry
            .invoke(&env, "s", "get_tagging_policy", json!({}), &ctx)
            .await
            .unwrap();
        assert_eq!(outcome.status, AuditStatus::Success);
    }
    let refused = registry
        .invoke(&env, "s", "get_tagging_policy", json!({}), &ctx)
        .await
        .unwrap();
    assert_eq!(refused.status, AuditStatus::BudgetExceeded);
    assert!(refused.text().contains("budget"), "{}", refused.text());
    assert_eq!(refused.meta["guardrail"]["kind"], "budget_exceeded");
    let budget = AuditQuery {
        status: Some(AuditStatus::BudgetExceeded),
        ..all_records()
    };
    assert_eq!(store.audit_records(budget).await.unwrap().len(), 1);
}

#[tokio::test]
async fn secrets_in_arguments_never_reach_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let env = env_with_store(&store, Guardrails::default()).await;
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY12";
    ToolRegistry::standard()
        .invoke(
            &env,
            "s",
            "check_tag_compliance",
            json!({ "aws_secret_access_key": secret, "limit": 1 }),
            &CallContext::default(),
        )
        .await
        .unwrap();
    let records = store.audit_records(all_records()).await.unwrap();
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains(secret), "{text}");
    assert_eq!(records[0].status, AuditStatus::InvalidInput);
    assert!(!records[0].error.as_deref().unwrap_or("").contains(secret));
}

#[tokio::test]
async fn a_restart_keeps_the_cache_and_a_new_scan_supersedes_narrower_entries() {
    let dir = tempfile::tempdir().unwrap();
    let first_scan = {
        let store = Store::open(dir.path(), Retention::default()).unwrap();
        let env = env_with_store(&store, Guardrails::default()).await;
        let value = answer(
            &env,
            "a",
            "check_tag_compliance",
            json!({ "resource_types": ["ec2:instance"] }),
        )
        .await;
        assert_eq!(value["cache"]["from_cache"], false);
        env.scans.engine().shutdown().await;
        store.close();
        value["scan"]["scan_id"].clone()
    };
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let env = env_with_store(&store, Guardrails::default()).await;
    let again = answer(
        &env,
        "b",
        "check_tag_compliance",
        json!({ "resource_types": ["ec2:instance"], "limit": 3 }),
    )
    .await;
    assert_eq!(
        again["cache"]["from_cache"], true,
        "served after the restart"
    );
    assert_eq!(again["scan"]["scan_id"], first_scan);
    // find_untagged over the same scope shares the cached scan.
    let untagged = answer(
        &env,
        "b",
        "find_untagged_resources",
        json!({ "resource_types": ["ec2:instance"] }),
    )
    .await;
    assert_eq!(untagged["scan"]["scan_id"], first_scan);
    // A scan of everything supersedes the ec2-only entry.
    answer(&env, "b", "check_tag_compliance", json!({})).await;
    let after = answer(
        &env,
        "b",
        "check_tag_compliance",
        json!({ "resource_types": ["ec2:instance"], "limit": 4 }),
    )
    .await;
    assert_eq!(
        after["cache"]["from_cache"], false,
        "the narrower entry was dropped"
    );
    // force_refresh always scans.
    let forced = answer(
        &env,
        "b",
        "check_tag_compliance",
        json!({ "force_refresh": true }),
    )
    .await;
    assert_eq!(forced["cache"]["from_cache"], false);
    assert_eq!(
        store.status().await.unwrap().scans,
        4,
        "every fresh scan is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_time_limit_is_stopped_and_answered_with_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let policy = policy();
    let limits = Guardrails {
        call_timeout_seconds: 1,
        ..Guardrails::default()
    };
    let env = tool_env(estate(5_000_000, 42, &policy), &policy, Some(store.clone()))
        .await
        .with_guardrails(limits);
    let started = std::time::Instant::now();
    let ctx = CallContext::default();
    let outcome = ToolRegistry::standard()
        .invoke(&env, "s", "check_tag_compliance", json!({}), &ctx)
        .await
        .unwrap();
    assert_eq!(outcome.status, AuditStatus::Timeout, "{}", outcome.text());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.meta["guardrail"]["kind"], "timeout");
    assert!(
        outcome.text().contains("limit of 1 s"),
        "{}",
        outcome.text()
    );
    assert!(
        !ctx.cancel.is_cancelled(),
        "the request itself stays answerable"
    );
    // The scan was stopped in the engine, not left running behind the answer.
    wait_until_idle(env.scans.engine(), 3).await;
    let timeouts = AuditQuery {
        status: Some(AuditStatus::Timeout),
        ..all_records()
    };
    assert_eq!(store.audit_records(timeouts).await.unwrap().len(), 1);
}

/// Regression: every lookup was recorded as a scan, and findings were kept for the last N
/// scans of any scope, so twenty `validate_resource_tags` calls erased the main scope's drift.
/// Lookups are not recorded now, and findings are kept per (source, scope): neither lookups
/// nor scans of other scopes evict them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_narrow_scans_never_erase_the_drift_of_the_main_scope() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        findings_scans: 3,
        summary_days: 400,
    };
    let store = Store::open(dir.path(), retention).unwrap();
    // No loop guard: the test repeats calls on purpose.
    let env = env_with_store(
        &store,
        Guardrails {
            max_identical_calls: 0,
            ..Guardrails::default()
        },
    )
    .await;
    for _ in 0..2 {
        answer(
            &env,
            "s",
            "check_tag_compliance",
            json!({ "force_refresh": true }),
        )
        .await;
    }
    let arn = "arn:aws:ec2:us-east-1:123456789012:instance/i-ffffffffffffffff";
    for i in 0..25 {
        let found = answer(
            &env,
            "s",
            "validate_resource_tags",
            json!({ "resource_arns": [arn, format!("arn:aws:s3:::absent-{i}")] }),
        )
        .await;
        assert_eq!(found["not_found"], 2);
    }
    for region in [
        "us-east-1",
        "us-west-2",
        "eu-west-1",
        "us-east-1",
        "us-west-2",
    ] {
        answer(
            &env,
            "s",
            "check_tag_compliance",
            json!({ "filters": { "regions": [region] }, "force_refresh": true }),
        )
        .await;
    }
    let status = store.status().await.unwrap();
    assert_eq!(
        status.scans, 7,
        "two main scans and five narrow ones; no lookup"
    );
    let history = answer(&env, "s", "get_violation_history", json!({})).await;
    assert_eq!(history["scans_considered"], 2);
    assert!(
        history["drift"].is_object(),
        "the drift of the main scope survives: {history}"
    );
    assert_eq!(
        history["drift"]["tag_changes_count"], 0,
        "the same estate twice"
    );
}

/// A source that cannot plan: the caller lacks a permission.
struct Denied;

#[async_trait::async_trait]
impl tagguard::source::ResourceSource for Denied {
    fn name(&self) -> String {
        "denied".to_string()
    }

    async fn plan(
        &self,
        _scope: &tagguard::domain::ScanScope,
        _cx: &tagguard::source::FetchContext<'_>,
    ) -> Result<tagguard::source::ShardPlan, tagguard::source::SourceError> {
        let mut error = tagguard::source::SourceError::new(
            tagguard::domain::ScanIssueKind::AccessDenied,
            "sts:GetCallerIdentity was denied",
        );
        error.missing_permission = Some("sts:GetCallerIdentity".to_string());
        Err(error)
    }

    async fn fetch_page(
        &self,
        _shard: &tagguard::source::Shard,
        _token: Option<String>,
        _cx: &tagguard::source::FetchContext<'_>,
    ) -> Result<tagguard::source::Page, tagguard::source::SourceError> {
        unreachable!("nothing is planned")
    }
}

/// A tool that fails keeps the failure's kind and the permission missing, for the model (in
/// `_meta`) and for the audit log, not only in a sentence.
#[tokio::test]
async fn a_failed_call_keeps_its_error_kind_in_the_result_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let env = tool_env(std::sync::Arc::new(Denied), &policy(), Some(store.clone())).await;
    let registry = ToolRegistry::standard();
    let outcome = registry
        .invoke(
            &env,
            "s",
            "check_tag_compliance",
            json!({}),
            &CallContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, AuditStatus::ToolError);
    assert_eq!(outcome.meta["error_kind"], "access_denied");
    assert_eq!(outcome.meta["missing_permission"], "sts:GetCallerIdentity");
    assert!(outcome.text().contains("was denied"), "{}", outcome.text());
    let bad = registry
        .invoke(
            &env,
            "s",
            "check_tag_compliance",
            json!({ "limit": 0 }),
            &CallContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(bad.meta["error_kind"], "invalid_arguments");
    let kinds: Vec<Option<String>> = store
        .audit_records(all_records())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.error_kind)
        .collect();
    assert_eq!(
        kinds,
        [
            Some("access_denied".to_string()),
            Some("invalid_arguments".to_string())
        ]
    );
}
