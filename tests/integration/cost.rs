//! The attribution gap on the demo estate's billing, checked against sums of the bill's own
//! line items judged by what the estate's generator injected (not by the policy code under
//! test); the cost service's cache and request counts on a real store; the MCP tool.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::{Value, json};
use tagguard::config::CostConfig;
use tagguard::cost::query::{USAGE_RECORD_TYPES, range};
use tagguard::cost::service::{CacheState, CostError};
use tagguard::cost::synthetic::SyntheticBilling;
use tagguard::cost::{
    Activation, AttributionGap, Breakdown, CostService, GapQuestion, Granularity, Metric,
    PeriodSpec, TagStatus,
};
use tagguard::domain::{ScanScope, Severity, Usd};
use tagguard::policy::{Policy, parse_policy};
use tagguard::source::{SyntheticSource, SyntheticSpec};
use tagguard::store::{Retention, Store};
use tagguard::tools::{CallContext, ToolError, ToolRegistry};
use tokio_util::sync::CancellationToken;

use crate::support::{policy, policy_with_case, tool_env};

/// The day the tests' billing is as of.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()
}

fn billing(spec: SyntheticSpec, policy: &Arc<Policy>) -> Arc<SyntheticBilling> {
    Arc::new(SyntheticBilling::as_of(spec, policy.clone(), today()).expect("billing"))
}

fn service(
    billing: &Arc<SyntheticBilling>,
    policy: &Arc<Policy>,
    store: Option<Store>,
) -> CostService {
    CostService::new(
        billing.clone(),
        policy.clone(),
        store,
        CostConfig::default(),
    )
}

async fn gap(service: &CostService, question: &GapQuestion) -> AttributionGap {
    service
        .attribution_gap(question, &CancellationToken::new())
        .await
        .expect("a gap")
}

/// What the bill holds over `period` for `tags`, judged line by line: a resource's tag is
/// missing when billing records no value under its exact key, invalid when the generator
/// injected an error on it, valid otherwise.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    total: Usd,
    attributable: Usd,
    other: Usd,
    per_tag: BTreeMap<String, (Usd, Usd, Usd)>,
    per_account: BTreeMap<String, (Usd, Usd)>,
}

fn expected(
    billing: &SyntheticBilling,
    estate: &SyntheticSource,
    period: &tagguard::cost::Period,
    tags: &[&str],
    accounts: &[&str],
) -> Expected {
    let truth = estate.ground_truth(&ScanScope::default());
    let errors: BTreeSet<(&str, &str)> = truth
        .violations
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .map(|v| (v.resource_arn.as_str(), v.tag_name.as_str()))
        .collect();
    let mut out = Expected::default();
    for line in billing.lines() {
        if !accounts.is_empty() && !accounts.contains(&&*line.account) {
            continue;
        }
        let amount = line.amount_in(period);
        if !USAGE_RECORD_TYPES.contains(&line.record_type) {
            out.other += amount;
            continue;
        }
        out.total += amount;
        let mut all_valid = true;
        for tag in tags {
            let value = line.tags.iter().find(|t| t.key == *tag).map(|t| &t.value);
            let row = out.per_tag.entry(tag.to_string()).or_default();
            match (value, &line.resource_arn) {
                (None, _) => {
                    row.0 += amount;
                    all_valid = false;
                }
                (Some(v), _) if v.is_empty() => {
                    row.0 += amount;
                    all_valid = false;
                }
                (Some(_), Some(arn)) if errors.contains(&(arn.as_str(), *tag)) => {
                    row.1 += amount;
                    all_valid = false;
                }
                (Some(_), _) => row.2 += amount,
            }
        }
        let account = out.per_account.entry(line.account.to_string()).or_default();
        account.0 += amount;
        if all_valid {
            out.attributable += amount;
            account.1 += amount;
        }
    }
    out
}

fn question(period: tagguard::cost::Period, group_by: Breakdown) -> GapQuestion {
    GapQuestion {
        period: PeriodSpec::Range(period),
        group_by,
        ..GapQuestion::default()
    }
}

fn assert_sums(gap: &AttributionGap) {
    let attributable = gap.attributable_spend.expect("attributable known");
    assert_eq!(gap.gap, Some(gap.total_spend - attributable));
    let rows: Usd = gap.breakdown.iter().map(|r| r.total).sum();
    assert_eq!(rows, gap.total_spend, "breakdown totals");
    let rows: Usd = gap.breakdown.iter().filter_map(|r| r.attributable).sum();
    assert_eq!(rows, attributable, "breakdown attributable");
    let slices: Usd = gap.by_time.iter().map(|s| s.total).sum();
    assert_eq!(slices, gap.total_spend, "time series");
    for row in &gap.by_tag {
        let parts = row.missing.unwrap() + row.invalid.unwrap() + row.valid.unwrap();
        assert_eq!(Some(parts), row.total);
        assert_eq!(row.total, Some(gap.total_spend), "tag {}", row.tag);
    }
}

#[tokio::test]
async fn the_demo_gap_equals_the_bills_ground_truth() {
    for (size, seed, case_sensitive) in [(400, 1, false), (1_200, 7, true), (2_000, 42, false)] {
        let policy = policy_with_case(case_sensitive);
        let spec = SyntheticSpec { size, seed };
        let billing = billing(spec, &policy);
        let estate = SyntheticSource::new(spec, policy.clone()).unwrap();
        let service = service(&billing, &policy, None);
        for (period, granularity, group_by) in [
            (
                range("2026-11-01", "2026-12-01").unwrap(),
                Granularity::Monthly,
                Breakdown::Service,
            ),
            (
                range("2026-10-15", "2026-11-20").unwrap(),
                Granularity::Daily,
                Breakdown::Account,
            ),
            (
                range("2026-06-01", "2026-12-03").unwrap(),
                Granularity::Monthly,
                Breakdown::ResourceType,
            ),
        ] {
            let mut q = question(period, group_by);
            q.granularity = granularity;
            let gap = gap(&service, &q).await;
            let truth = expected(&billing, &estate, &period, &["CostCenter", "Owner"], &[]);
            let context = format!("size {size} seed {seed} case {case_sensitive} {period}");
            assert_eq!(gap.allocation_tags, ["CostCenter", "Owner"], "{context}");
            assert_eq!(gap.total_spend, truth.total, "{context}");
            assert_eq!(
                gap.attributable_spend,
                Some(truth.attributable),
                "{context}"
            );
            assert_eq!(gap.other_charges_total, Some(truth.other), "{context}");
            assert_eq!(
                gap.invoice_total,
                Some(truth.total + truth.other),
                "{context}"
            );
            for row in &gap.by_tag {
                let (missing, invalid, valid) = truth.per_tag[&row.tag];
                assert_eq!(row.status, TagStatus::Measured, "{context}");
                assert_eq!(row.activation, Activation::Active, "{context}");
                assert_eq!(
                    (row.missing, row.invalid, row.valid),
                    (Some(missing), Some(invalid), Some(valid)),
                    "{context} tag {}",
                    row.tag
                );
            }
            if group_by == Breakdown::Account {
                for row in &gap.breakdown {
                    let (total, attributable) = truth.per_account[&row.key];
                    assert_eq!((row.total, row.attributable), (total, Some(attributable)));
                }
            }
            assert_sums(&gap);
            assert!(
                gap.total_spend > Usd::ZERO && gap.gap.unwrap() > Usd::ZERO,
                "{context}"
            );
            assert_eq!(
                gap.estimated,
                period.end > NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
            );
        }
    }
}

#[tokio::test]
async fn accounts_and_regions_narrow_the_bill() {
    let policy = policy();
    let spec = SyntheticSpec { size: 900, seed: 3 };
    let billing = billing(spec, &policy);
    let estate = SyntheticSource::new(spec, policy.clone()).unwrap();
    let service = service(&billing, &policy, None);
    let period = range("2026-11-01", "2026-12-01").unwrap();
    let mut q = question(period, Breakdown::Region);
    q.scope.accounts = BTreeSet::from(["234567890123".to_string()]);
    let gap = gap(&service, &q).await;
    let truth = expected(
        &billing,
        &estate,
        &period,
        &["CostCenter", "Owner"],
        &["234567890123"],
    );
    assert_eq!(gap.total_spend, truth.total);
    assert_eq!(gap.attributable_spend, Some(truth.attributable));
    q.scope.regions = BTreeSet::from(["eu-west-1".to_string()]);
    let narrower = gap_of(&service, &q).await;
    assert!(narrower.total_spend < gap.total_spend && narrower.total_spend > Usd::ZERO);
    assert!(narrower.breakdown.iter().all(|r| r.key == "eu-west-1"));
    // Tax and support have no region: a region filter leaves them out.
    assert_eq!(narrower.other_charges_total, Some(Usd::ZERO));
}

async fn gap_of(service: &CostService, q: &GapQuestion) -> AttributionGap {
    gap(service, q).await
}

#[tokio::test]
async fn answers_are_cached_in_the_store_and_requests_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let policy = policy();
    let billing = billing(
        SyntheticSpec {
            size: 3_000,
            seed: 5,
        },
        &policy,
    );
    let service = service(&billing, &policy, Some(store.clone()));
    let mut q = question(
        range("2026-11-01", "2026-12-01").unwrap(),
        Breakdown::Service,
    );
    q.granularity = Granularity::Daily;
    let first = gap(&service, &q).await;
    // Activation, other charges, usage, two tags, attributable: at least 6, more with pages.
    assert!(first.ce_requests.made >= 6, "{:?}", first.ce_requests);
    assert_eq!(first.ce_requests.from_cache, 0);
    assert_eq!(first.cache.state, CacheState::Fresh);
    assert_eq!(
        first.ce_requests.price,
        Usd::ZERO,
        "the demo's billing is free"
    );
    let again = gap(&service, &q).await;
    assert_eq!(again.ce_requests.made, 0);
    assert_eq!(again.ce_requests.from_cache, first.ce_requests.made);
    assert_eq!(again.cache.state, CacheState::Cached);
    assert_eq!(again.total_spend, first.total_spend);
    assert_eq!(again.by_tag, first.by_tag);
    q.force_refresh = true;
    let refreshed = gap(&service, &q).await;
    assert_eq!(refreshed.ce_requests.made, first.ce_requests.made);
    assert_eq!(refreshed.cache.state, CacheState::Fresh);
    // Another metric is another question of billing; the tags' activation is the same.
    q.force_refresh = false;
    q.metric = Metric::UnblendedCost;
    let other_metric = gap(&service, &q).await;
    assert_eq!(other_metric.ce_requests.from_cache, 1);
    assert_eq!(other_metric.ce_requests.made, first.ce_requests.made - 1);
    assert_eq!(other_metric.cache.state, CacheState::Fresh);
    // A plan partly cached is asked again whole, so its figures are of one moment: another tag
    // reuses nothing of the plan's answers.
    q.metric = Metric::AmortizedCost;
    q.tags = Some(vec![
        "CostCenter".into(),
        "Owner".into(),
        "Environment".into(),
    ]);
    let more_tags = gap(&service, &q).await;
    assert_eq!(more_tags.cache.state, CacheState::Fresh);
    assert!(
        more_tags.ce_requests.made > first.ce_requests.made,
        "{:?}",
        more_tags.ce_requests
    );
    store.close();
}

#[tokio::test]
async fn a_tag_billing_does_not_record_is_not_measurable_rather_than_untagged() {
    let policy = policy();
    let billing = billing(SyntheticSpec { size: 500, seed: 9 }, &policy);
    let service = service(&billing, &policy, None);
    let mut q = question(
        range("2026-11-01", "2026-12-01").unwrap(),
        Breakdown::Service,
    );
    q.tags = Some(vec!["CostCenter".into(), "Team".into()]);
    let gap = gap(&service, &q).await;
    let team = gap.by_tag.iter().find(|r| r.tag == "Team").unwrap();
    assert_eq!(team.status, TagStatus::NotMeasurable);
    assert_eq!(team.activation, Activation::Inactive);
    assert_eq!(
        (team.missing, team.total, team.gap_percent),
        (None, None, None)
    );
    assert!(team.reason.as_deref().unwrap().contains("not activated"));
    assert_eq!(gap.measured_tags, ["CostCenter"]);
    assert!(
        gap.caveats
            .iter()
            .any(|c| c.contains("covers CostCenter only"))
    );
    // The attributable spend is that of CostCenter alone.
    let cost_center = gap.by_tag.iter().find(|r| r.tag == "CostCenter").unwrap();
    assert_eq!(gap.attributable_spend, cost_center.valid);
    assert_eq!(gap.tags_from, "argument");
}

#[tokio::test]
async fn a_policy_without_tags_for_every_type_needs_tags_named() {
    let text = r#"{"version": "1", "required_tags": [{"name": "Environment", "applies_to": ["ec2:instance"], "allowed_values": ["prod"]}]}"#;
    let policy = Arc::new(parse_policy(text, "test").unwrap());
    let billing = billing(SyntheticSpec { size: 50, seed: 1 }, &policy);
    let service = service(&billing, &policy, None);
    let q = question(
        range("2026-11-01", "2026-12-01").unwrap(),
        Breakdown::Service,
    );
    let error = service
        .attribution_gap(&q, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CostError::InvalidInput(m) if m.contains("no allocation tags")),
        "{error:?}"
    );
    let mut named = q.clone();
    named.tags = Some(vec!["Environment".into()]);
    let gap = gap(&service, &named).await;
    assert_eq!(gap.tags_from, "argument");
    // Only instances carry Environment: the rest of the spend misses it.
    assert!(gap.by_tag[0].missing.unwrap() > Usd::ZERO);
}

fn usd(value: &Value) -> Usd {
    serde_json::from_value(value.clone()).expect("an amount")
}

#[tokio::test]
async fn the_tool_answers_with_the_gap_and_refuses_bad_arguments() {
    let policy = policy();
    let source = crate::support::estate(800, 42, &policy);
    let billing = billing(
        SyntheticSpec {
            size: 800,
            seed: 42,
        },
        &policy,
    );
    let env = tool_env(source, &policy, None)
        .await
        .with_cost(Arc::new(service(&billing, &policy, None)));
    let registry = ToolRegistry::standard();
    let tool = registry
        .get("get_cost_attribution_gap")
        .expect("registered");
    let ctx = CallContext::default();
    let out = tool
        .call(
            &env,
            &ctx,
            json!({"time_period": {"start": "2026-11-01", "end": "2026-12-01"}, "group_by": "resource_type", "metric": "AmortizedCost"}),
        )
        .await
        .expect("an answer")
        .structured;
    assert_eq!(out["period_start"], "2026-11-01");
    assert_eq!(out["period_end"], "2026-12-01");
    assert_eq!(out["data_source"], "demo_billing");
    let rows = out["breakdown"].as_array().unwrap();
    let keys: BTreeSet<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert!(
        keys.contains("ec2:instance") && keys.contains("other"),
        "{keys:?}"
    );
    let sum: Usd = rows.iter().map(|r| usd(&r["total"])).sum();
    assert_eq!(sum, usd(&out["total_spend"]));
    assert_eq!(
        usd(&out["total_spend"]) - usd(&out["attributable_spend"]),
        usd(&out["gap"])
    );
    for bad in [
        json!({"time_period": "yesterday"}),
        json!({"time_period": {"start": "2026-12-01", "end": "2026-11-01"}}),
        json!({"group_by": "team"}),
        json!({"metric": "UsageQuantity"}),
        json!({"tags": ["Cost$Center"]}),
        json!({"time_period": {"start": "2027-01-01", "end": "2027-02-01"}}),
    ] {
        let error = tool.call(&env, &ctx, bad.clone()).await.unwrap_err();
        assert!(
            matches!(error, ToolError::InvalidInput(_)),
            "{bad}: {error:?}"
        );
    }
}

/// Each resource's monthly cost by the documented rule, from its own line of the bill: its
/// daily charge over the last 14 days, ÷ 14 days × 730 h ÷ 24, rounded half away from zero.
fn monthly_by_arn(billing: &SyntheticBilling) -> BTreeMap<String, Usd> {
    billing
        .lines()
        .into_iter()
        .filter_map(|line| {
            let tagguard::cost::synthetic::Charge::Daily(daily) = line.charge else {
                return None;
            };
            let fourteen = i128::from(daily.micros()) * 14;
            let monthly = (fourteen * 730 + 14 * 24 / 2) / (14 * 24);
            Some((line.resource_arn?, Usd::from_micros(monthly as i64)))
        })
        .collect()
}

#[tokio::test]
async fn every_scanned_demo_resource_costs_what_its_bill_says() {
    let policy = policy();
    let spec = SyntheticSpec {
        size: 1_500,
        seed: 11,
    };
    let estate = Arc::new(SyntheticSource::new(spec, policy.clone()).unwrap());
    let billing = billing(spec, &policy);
    let costs = Arc::new(service(&billing, &policy, None));
    let (engine, scans) = priced_scans(estate.clone(), &policy, None, &costs).await;
    let result = cli_scan(&scans).await;
    let monthly = monthly_by_arn(&billing);
    let mut seen = BTreeSet::new();
    for violation in result.violations() {
        let resource = &violation.resource;
        if !seen.insert(resource.arn.clone()) {
            continue;
        }
        assert_eq!(resource.cost_source, tagguard::domain::CostSource::Actual);
        assert_eq!(resource.monthly_cost, Some(monthly[&resource.arn]));
    }
    assert!(seen.len() > 300, "{} resources checked", seen.len());
    // The cost sums cover every resource, compliant or not, each at its bill's cost.
    let all: Usd = estate
        .resources(&ScanScope::default())
        .iter()
        .map(|r| monthly[&r.arn])
        .sum();
    let sums = result.tally.cost.as_ref().expect("costs summed").total();
    assert_eq!((sums.monthly_cost, sums.unknown), (all, 0));
    assert!(result.meta.notes.iter().any(|n| n.contains("14 days")));

    // The tools show the same figures.
    let env = tagguard::tools::ToolEnv::new(scans).with_cost(costs);
    let registry = ToolRegistry::standard();
    let found = registry
        .get("find_untagged_resources")
        .unwrap()
        .call(&env, &CallContext::default(), json!({"limit": 1000}))
        .await
        .unwrap()
        .structured;
    let listed = found["resources"].as_array().unwrap();
    assert!(!listed.is_empty());
    for item in listed {
        assert_eq!(item["cost_source"], "actual");
        let arn = item["resource_arn"].as_str().unwrap();
        assert_eq!(usd(&item["monthly_cost"]), monthly[arn], "{arn}");
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_recorded_scan_keeps_its_gap_and_the_history_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let policy = policy();
    let spec = SyntheticSpec { size: 600, seed: 4 };
    let estate = Arc::new(SyntheticSource::new(spec, policy.clone()).unwrap());
    let billing = billing(spec, &policy);
    let costs = Arc::new(service(&billing, &policy, Some(store.clone())));
    let (engine, scans) = priced_scans(estate, &policy, Some(store.clone()), &costs).await;
    let result = cli_scan(&scans).await;
    let recorded = result
        .meta
        .cost_gap
        .clone()
        .expect("a gap recorded with the scan");
    let last_month = gap(
        &costs,
        &GapQuestion {
            period: PeriodSpec::LastMonth,
            ..GapQuestion::default()
        },
    )
    .await;
    assert_eq!(recorded.total_spend, last_month.total_spend);
    assert_eq!(recorded.gap, last_month.gap);
    assert_eq!(recorded.gap_percent, last_month.gap_percent);
    assert_eq!(recorded.period_start, last_month.period_start);

    let env = tagguard::tools::ToolEnv::new(scans).with_cost(costs);
    let history = ToolRegistry::standard()
        .get("get_violation_history")
        .unwrap()
        .call(&env, &CallContext::default(), json!({}))
        .await
        .unwrap()
        .structured;
    let point = history["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        point["cost_gap"]["gap_percent"],
        json!(recorded.gap_percent.unwrap())
    );
    assert_eq!(history["gap_trend"]["periods"], 1);
    assert_eq!(history["gap_trend"]["direction"], "stable");
    engine.shutdown().await;
    store.close();
}

/// A scan service over `estate` whose scans are priced by `costs`, on a new engine.
async fn priced_scans(
    estate: Arc<SyntheticSource>,
    policy: &Arc<Policy>,
    store: Option<Store>,
    costs: &Arc<CostService>,
) -> (
    tagguard::engine::EngineHandle,
    Arc<tagguard::scans::ScanService>,
) {
    let engine = tagguard::engine::EngineHandle::start(tagguard::config::Config::default())
        .await
        .unwrap();
    let scans = Arc::new(
        tagguard::scans::ScanService::new(
            engine.clone(),
            policy.clone(),
            estate,
            store,
            std::time::Duration::ZERO,
        )
        .with_costs(Some(costs.clone())),
    );
    (engine, scans)
}

/// A fresh scan of everything, summing costs, as `tagguard scan` asks it.
async fn cli_scan(scans: &Arc<tagguard::scans::ScanService>) -> Arc<tagguard::domain::ScanResult> {
    let mut question =
        tagguard::scans::ScanQuestion::new(ScanScope::default(), tagguard::domain::Origin::Cli);
    question.analyses.cost = true;
    question.cache = tagguard::scans::CachePolicy::Bypass;
    scans
        .scan(&tagguard::scans::RunContext::default(), question)
        .await
        .unwrap()
        .result
}
