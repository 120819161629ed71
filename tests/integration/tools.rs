//! The MCP tools through their public API (`ToolRegistry` over an engine and the synthetic
//! estate), checked against what the estate really holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};
use tagguard::domain::{Resource, ScanScope, Usd, ViolationType};
use tagguard::source::SyntheticSource;
use tagguard::tools::{CallContext, ToolEnv, ToolError, ToolRegistry};

use crate::support::{estate, policy, tool_env, wait_until_idle};

/// A tool environment over a synthetic estate of `size` resources.
async fn env(size: u64) -> (ToolEnv, Arc<SyntheticSource>) {
    let policy = policy();
    let source = estate(size, 42, &policy);
    let env = tool_env(source.clone(), &policy, None).await;
    (env, source)
}

/// Every resource of the estate, generated straight from its definition.
async fn resources(source: &SyntheticSource) -> Vec<Resource> {
    source.resources(&ScanScope::default())
}

async fn call(env: &ToolEnv, tool: &str, args: Value) -> Result<Value, ToolError> {
    let registry = ToolRegistry::standard();
    registry
        .get(tool)
        .expect("tool exists")
        .call(env, &CallContext::default(), args)
        .await
        .map(|output| output.structured)
}

/// A JSON amount of USD as the money type: exact below a billion dollars.
fn usd(value: &Value) -> Option<Usd> {
    serde_json::from_value(value.clone()).ok()
}

#[tokio::test]
async fn find_untagged_lists_exactly_the_resources_missing_required_tags() {
    let (env, source) = env(600).await;
    let truth = source.ground_truth(&ScanScope::default());
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for v in &truth.violations {
        if v.violation_type == ViolationType::MissingRequiredTag {
            expected
                .entry(v.resource_arn.clone())
                .or_default()
                .insert(v.tag_name.clone());
        }
    }
    assert!(!expected.is_empty(), "the estate has untagged resources");
    let by_arn: BTreeMap<String, Resource> = resources(&source)
        .await
        .into_iter()
        .map(|r| (r.arn.clone(), r))
        .collect();

    let out = call(&env, "find_untagged_resources", json!({ "limit": 1000 }))
        .await
        .expect("tool succeeds");
    assert_eq!(out["total_found"], expected.len());
    let listed = out["resources"].as_array().expect("resources");
    assert_eq!(listed.len(), expected.len());
    assert_eq!(out["truncated"], Value::Null);
    let mut cost = Usd::ZERO;
    let mut previous: Option<Usd> = None;
    for item in listed {
        let arn = item["resource_arn"].as_str().unwrap();
        let missing: BTreeSet<String> = item["missing_tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(missing, expected[arn], "{arn}");
        let resource = &by_arn[arn];
        assert_eq!(item["untagged"], resource.tags.is_empty(), "{arn}");
        assert_eq!(usd(&item["monthly_cost"]), resource.monthly_cost, "{arn}");
        assert_eq!(item["cost_source"], resource.cost_source.as_str(), "{arn}");
        // Most expensive first; unknown cost (null) last.
        let this = usd(&item["monthly_cost"]);
        if let Some(previous) = previous {
            assert!(this <= Some(previous), "sorted by cost, descending");
        }
        previous = this;
        cost += resource.monthly_cost.unwrap_or(Usd::ZERO);
    }
    assert_eq!(
        usd(&out["total_monthly_cost"]),
        Some(cost),
        "exact to the cent"
    );
    let untagged = listed.iter().filter(|i| i["untagged"] == true).count();
    assert_eq!(out["untagged_count"], untagged);
    assert_eq!(
        out["partially_tagged_count"],
        expected.len() - untagged,
        "every resource found is untagged or partly tagged"
    );
}

#[tokio::test]
async fn missing_tags_narrows_to_one_tag_and_prices_it() {
    let (env, source) = env(600).await;
    let truth = source.ground_truth(&ScanScope::default());
    let lacking: BTreeSet<&str> = truth
        .violations
        .iter()
        .filter(|v| {
            v.violation_type == ViolationType::MissingRequiredTag && v.tag_name == "CostCenter"
        })
        .map(|v| v.resource_arn.as_str())
        .collect();
    let cost: Usd = resources(&source)
        .await
        .iter()
        .filter(|r| lacking.contains(r.arn.as_str()))
        .filter_map(|r| r.monthly_cost)
        .sum();
    let out = call(
        &env,
        "find_untagged_resources",
        json!({ "missing_tags": ["costcenter"], "limit": 1000 }),
    )
    .await
    .unwrap();
    assert_eq!(out["total_found"], lacking.len());
    assert_eq!(
        usd(&out["missing_by_tag"]["CostCenter"]["monthly_cost"]),
        Some(cost)
    );
    assert_eq!(
        out["missing_by_tag"]["CostCenter"]["resources"],
        lacking.len()
    );
    let error = call(
        &env,
        "find_untagged_resources",
        json!({ "missing_tags": ["Colour"] }),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("not a required tag"), "{error}");
}

#[tokio::test]
async fn a_cost_threshold_keeps_only_known_costs_at_or_above_it() {
    let (env, _) = env(600).await;
    let all = call(&env, "find_untagged_resources", json!({ "limit": 1000 }))
        .await
        .unwrap();
    let out = call(
        &env,
        "find_untagged_resources",
        json!({ "min_cost_threshold": 100.0, "limit": 1000 }),
    )
    .await
    .unwrap();
    let listed = out["resources"].as_array().unwrap();
    assert!(!listed.is_empty());
    assert!(
        listed
            .iter()
            .all(|r| r["monthly_cost"].as_f64().is_some_and(|c| c >= 100.0))
    );
    let total = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(
        total(&out, "total_found")
            + total(&out, "excluded_below_threshold")
            + total(&out, "excluded_unknown_cost"),
        total(&all, "total_found"),
        "every resource is listed or counted as left out"
    );
}

#[tokio::test]
async fn validate_reports_each_arn_with_the_estates_verdict() {
    let (env, source) = env(300).await;
    let truth = source.ground_truth(&ScanScope::default());
    let failing: BTreeSet<&str> = truth
        .violations
        .iter()
        .filter(|v| v.severity == tagguard::domain::Severity::Error)
        .map(|v| v.resource_arn.as_str())
        .collect();
    let all = resources(&source).await;
    let compliant = all
        .iter()
        .find(|r| !failing.contains(r.arn.as_str()))
        .expect("a compliant resource");
    let non_compliant = all
        .iter()
        .find(|r| failing.contains(r.arn.as_str()))
        .expect("a non-compliant resource");
    let absent = "arn:aws:ec2:us-east-1:123456789012:instance/i-ffffffffffffffff";
    let out = call(
        &env,
        "validate_resource_tags",
        json!({ "resource_arns": [non_compliant.arn, "not-an-arn", compliant.arn, absent, compliant.arn] }),
    )
    .await
    .unwrap();
    let results = out["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    // Duplicates are answered once, in the order given.
    assert_eq!(
        statuses,
        ["non_compliant", "invalid_arn", "compliant", "not_found"]
    );
    let expected_errors = truth
        .violations
        .iter()
        .filter(|v| {
            v.resource_arn == non_compliant.arn && v.severity == tagguard::domain::Severity::Error
        })
        .count();
    assert_eq!(results[0]["errors"], expected_errors);
    assert!(
        results[0]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["resource_arn"] == non_compliant.arn.as_str())
    );
    assert!(
        results[1]["message"]
            .as_str()
            .unwrap()
            .contains("not an ARN")
    );
    assert_eq!(
        (
            &out["compliant"],
            &out["non_compliant"],
            &out["not_found"],
            &out["invalid"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1))
    );
}

#[tokio::test]
async fn arguments_outside_the_schema_are_tool_errors_that_name_the_field() {
    let (env, _) = env(10).await;
    for (tool, args, needle) in [
        ("check_tag_compliance", json!({ "limit": "x" }), "'limit'"),
        ("check_tag_compliance", json!({ "limit": 0 }), "'limit'"),
        ("check_tag_compliance", json!({ "limt": 5 }), "limt"),
        (
            "check_tag_compliance",
            json!({ "filters": { "regions": ["US-EAST-1"] } }),
            "'US-EAST-1' in regions",
        ),
        (
            "check_tag_compliance",
            json!({ "resource_types": ["EC2:Instance"] }),
            "did you mean 'ec2:instance'",
        ),
        (
            "find_untagged_resources",
            json!({ "min_cost_threshold": -1 }),
            "min_cost_threshold",
        ),
        ("validate_resource_tags", json!({}), "resource_arns"),
        (
            "validate_resource_tags",
            json!({ "resource_arns": [] }),
            "'resource_arns' is empty",
        ),
        ("get_tagging_policy", json!({ "x": 1 }), "unknown field"),
    ] {
        match call(&env, tool, args.clone()).await {
            Err(ToolError::InvalidInput(message)) => {
                assert!(message.contains(needle), "{tool} {args}: {message}")
            }
            other => panic!("{tool} {args}: expected invalid input, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_cancelled_call_stops_its_scan_promptly() {
    let (env, _) = env(3_000_000).await;
    let ctx = CallContext::default();
    let cancel = ctx.cancel.clone();
    let registry = ToolRegistry::standard();
    let tool = registry.get("check_tag_compliance").unwrap().clone();
    let started = Instant::now();
    let handle = tokio::spawn({
        let env = env.clone();
        async move { tool.call(&env, &ctx, json!({})).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the call ends soon after the cancel")
        .expect("no panic");
    assert_eq!(outcome.unwrap_err(), ToolError::Cancelled);
    // The scan was stopped in the engine, not left running behind the answer.
    wait_until_idle(env.scans.engine(), 5).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // And the engine scans on: a small check is answered promptly.
    let again = tokio::time::timeout(
        Duration::from_secs(5),
        call(
            &env,
            "validate_resource_tags",
            json!({ "resource_arns": ["arn:aws:ec2:us-east-1:123456789012:instance/i-x"] }),
        ),
    )
    .await
    .expect("answered promptly")
    .unwrap();
    assert_eq!(again["not_found"], 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Totals of check_tag_compliance for any filter equal the estate's ground truth for it,
    /// and never exceed the unfiltered totals.
    #[test]
    fn compliance_totals_follow_the_filters(
        types in proptest::sample::subsequence(
            vec!["ec2:instance", "rds:db", "s3:bucket", "lambda:function", "ecs:service"], 0..=5),
        regions in proptest::sample::subsequence(vec!["us-east-1", "us-west-2", "eu-west-1"], 0..=3),
        limit in 1u32..20,
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let (env, source) = env(400).await;
            let args = json!({ "resource_types": types, "filters": { "regions": regions }, "limit": limit });
            let out = call(&env, "check_tag_compliance", args).await.unwrap();
            let scope = ScanScope {
                resource_types: types.iter().map(|t| t.parse().unwrap()).collect(),
                regions: regions.iter().map(|r| r.to_string()).collect(),
                ..ScanScope::default()
            };
            let truth = source.ground_truth(&scope);
            let total: u64 = truth.by_type.values().map(|c| c.0).sum();
            let compliant: u64 = truth.by_type.values().map(|c| c.1).sum();
            prop_assert_eq!(out["total_resources"].as_u64().unwrap(), total);
            prop_assert_eq!(out["compliant_resources"].as_u64().unwrap(), compliant);
            let listed = out["violations"].as_array().unwrap().len() as u64;
            let matching = out["violations_matching"].as_u64().unwrap();
            prop_assert_eq!(listed, matching.min(limit as u64));
            prop_assert_eq!(out["truncated"].is_null(), listed == matching);
            let score = out["compliance_score"].as_f64().unwrap();
            prop_assert!((0.0..=1.0).contains(&score));
            Ok(())
        })?;
    }
}

/// `/health` says whether the engine runs: a server whose engine has stopped answers 503 with
/// `engine_down`, so a container's health check sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_an_engine_that_stopped() {
    use tagguard::mcp::{McpServer, http};
    let (env, _) = env(10).await;
    let options = http::HttpOptions::from(&tagguard::config::ServerConfig::default());
    let serve = |env: ToolEnv| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = McpServer::new(env, ToolRegistry::standard());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(server, listener, options.clone(), async {
            let _ = stopped.await;
        }));
        (addr, stop, task)
    };
    let (addr, stop, task) = serve(env.clone()).await;
    let up = http::probe_health(addr, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(up.healthy, "{}", up.body);
    let body: Value = serde_json::from_str(&up.body).unwrap();
    assert_eq!(body["engine"]["state"], "running");
    env.scans.engine().shutdown().await;
    let down = http::probe_health(addr, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(!down.healthy);
    let body: Value = serde_json::from_str(&down.body).unwrap();
    assert_eq!(body["status"], "engine_down");
    assert_eq!(body["engine"]["state"], "stopped");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
