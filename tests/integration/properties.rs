//! Property tests of the invariants: score bounds and ratio, full detail on every violation,
//! filter consistency, validation correctness against a model of the policy's rules, the
//! merge of any split of a scan equal to the whole, and results that read back exactly.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use tagguard::config::Config;
use tagguard::domain::{
    Expected, ResourceType, ScanScope, Severity, SeverityFilter, Tag, ViolationType,
};
use tagguard::engine::{Analyses, EngineHandle, ScanRequest};
use tagguard::policy::{Policy, eq_ignore_case};
use tagguard::source::{ApiCallCounter, FetchContext, ResourceSource, ShardPlan, SnapshotSource};
use tagguard::store::{Retention, Store};

use crate::support::{estate, policy_with_case, scan, violation_keys};

const ACCOUNTS: [&str; 4] = [
    "123456789012",
    "234567890123",
    "345678901234",
    "999999999999",
];
const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn resource_type() -> impl Strategy<Value = ResourceType> {
    prop_oneof![
        Just(ResourceType::Ec2Instance),
        Just(ResourceType::RdsDb),
        Just(ResourceType::S3Bucket),
        Just(ResourceType::LambdaFunction),
        Just(ResourceType::EcsService),
        Just(ResourceType::other("dynamodb:table")),
    ]
}

/// Keys and values drawn from what matters to the default policy, plus noise.
fn tag() -> impl Strategy<Value = Tag> {
    let key = prop_oneof![
        Just("CostCenter".to_string()),
        Just("costcenter".to_string()),
        Just("Owner".to_string()),
        Just("OWNER".to_string()),
        Just("Environment".to_string()),
        Just("Application".to_string()),
        Just("Compliance".to_string()),
        Just("Project".to_string()),
        Just("team#id".to_string()),
        Just("aws:cloudformation:stack-name".to_string()),
        "[A-Za-z]{1,10}",
    ];
    let value = prop_oneof![
        Just("Engineering".to_string()),
        Just("engineering".to_string()),
        Just("production".to_string()),
        Just("Production".to_string()),
        Just("hipaa".to_string()),
        Just("HIPAA".to_string()),
        Just("ana@example.com".to_string()),
        Just("checkout-api".to_string()),
        Just("Bad Value!".to_string()),
        Just("".to_string()),
        Just("x".repeat(300)),
        "[a-z@.-]{0,12}",
    ];
    (key, value).prop_map(|(k, v)| Tag::new(k, v))
}

/// Tags with unique keys, as AWS guarantees.
fn tags() -> impl Strategy<Value = Vec<Tag>> {
    prop::collection::vec(tag(), 0..9).prop_map(|tags| {
        let mut seen = BTreeSet::new();
        tags.into_iter()
            .filter(|t| seen.insert(t.key.clone()))
            .collect()
    })
}

/// The error-severity violations the policy's rules call for, computed from the policy
/// document's plain fields (not the compiled rules): the model the validator must agree with.
fn model_errors(
    policy: &Policy,
    resource_type: &ResourceType,
    tags: &[Tag],
) -> BTreeSet<(ViolationType, String)> {
    let doc = &policy.document;
    let ignore_case = !doc.tag_naming_rules.case_sensitivity;
    let mut errors = BTreeSet::new();
    for rule in &doc.required_tags {
        let applies = rule.applies_to.is_empty()
            || rule.applies_to.iter().any(|t| t == resource_type.as_str());
        if !applies {
            continue;
        }
        let found = tags.iter().find(|t| t.key == rule.name).or_else(|| {
            tags.iter()
                .find(|t| ignore_case && eq_ignore_case(&t.key, &rule.name))
        });
        let Some(found) = found else {
            errors.insert((ViolationType::MissingRequiredTag, rule.name.clone()));
            continue;
        };
        if found.value.trim().is_empty() {
            errors.insert((ViolationType::EmptyValue, rule.name.clone()));
            continue;
        }
        if let Some(allowed) = &rule.allowed_values {
            let ok = allowed
                .iter()
                .any(|a| *a == found.value || (ignore_case && eq_ignore_case(a, &found.value)));
            if !ok {
                errors.insert((ViolationType::InvalidValue, rule.name.clone()));
            }
        }
        if let Some(pattern) = &rule.validation_regex
            && !regex::RegexBuilder::new(pattern)
                .case_insensitive(ignore_case)
                .build()
                .unwrap()
                .is_match(&found.value)
        {
            errors.insert((ViolationType::InvalidFormat, rule.name.clone()));
        }
    }
    errors
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn validation_agrees_with_the_model(
        resource_type in resource_type(),
        tags in tags(),
        case_sensitive in any::<bool>(),
    ) {
        let policy = policy_with_case(case_sensitive);
        let findings = policy.validate(&resource_type, &tags);
        let errors: BTreeSet<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| (f.violation_type, f.tag_name.to_string()))
            .collect();
        prop_assert_eq!(errors, model_errors(&policy, &resource_type, &tags));
        // Reserved keys are never judged.
        prop_assert!(findings.iter().all(|f| !f.tag_name.starts_with("aws:")));
        // A case-sensitive policy never reports case-only differences: they are other tags.
        if case_sensitive {
            prop_assert!(findings.iter().all(|f| !matches!(
                f.violation_type,
                ViolationType::KeyCaseMismatch | ViolationType::ValueCaseMismatch
            )));
        }
    }

    #[test]
    fn tag_order_does_not_change_findings(resource_type in resource_type(), tags in tags()) {
        // With two keys equal but for case and no exact match, the first one wins by design;
        // order independence holds for keys unique ignoring case.
        let mut seen = BTreeSet::new();
        let tags: Vec<Tag> = tags.into_iter().filter(|t| seen.insert(t.key.to_lowercase())).collect();
        let policy = policy_with_case(false);
        let mut forward: Vec<String> = policy.validate(&resource_type, &tags).iter().map(|f| format!("{f:?}")).collect();
        let reversed: Vec<Tag> = tags.iter().rev().cloned().collect();
        let mut backward: Vec<String> = policy.validate(&resource_type, &reversed).iter().map(|f| format!("{f:?}")).collect();
        forward.sort();
        backward.sort();
        prop_assert_eq!(forward, backward);
    }

    #[test]
    fn every_violation_carries_its_full_detail(resource_type in resource_type(), tags in tags()) {
        let policy = policy_with_case(false);
        for f in policy.validate(&resource_type, &tags) {
            prop_assert!(!f.tag_name.is_empty());
            let detail_ok = match f.violation_type {
                // A missing tag may name a key of the resource that looks like it.
                ViolationType::MissingRequiredTag => f.expected == Expected::Nothing
                    && f.current_value.as_deref().is_none_or(|key| tags.iter().any(|t| t.key == key)),
                ViolationType::EmptyValue => f.current_value.is_some(),
                ViolationType::InvalidValue => f.current_value.is_some()
                    && matches!(&f.expected, Expected::AllowedValues(v) if !v.is_empty()),
                ViolationType::InvalidFormat => f.current_value.is_some()
                    && matches!(&f.expected, Expected::Pattern(p) if !p.is_empty()),
                ViolationType::KeyCaseMismatch | ViolationType::KeyAlias => f.current_value.is_some()
                    && matches!(&f.expected, Expected::Canonical(_)),
                // Against an allowed value, or a regex matched only ignoring case.
                ViolationType::ValueCaseMismatch => f.current_value.is_some()
                    && matches!(&f.expected, Expected::Canonical(_) | Expected::Pattern(_)),
                ViolationType::KeyTooLong | ViolationType::ValueTooLong => matches!(f.expected, Expected::MaxLength(_)),
                ViolationType::InvalidCharacters => f.current_value.is_some(),
            };
            prop_assert!(detail_ok, "{:?}", f);
            let expected_severity = match f.violation_type {
                ViolationType::MissingRequiredTag | ViolationType::EmptyValue | ViolationType::InvalidFormat => Severity::Error,
                ViolationType::InvalidValue => f.severity, // error for required, warning for optional
                _ => Severity::Warning,
            };
            prop_assert_eq!(f.severity, expected_severity);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn score_is_bounded_and_is_the_compliant_ratio(size in 0u64..400, seed in any::<u64>()) {
        let policy = policy_with_case(false);
        let result = runtime().block_on(scan(estate(size, seed, &policy), &policy, ScanScope::default(), SeverityFilter::All));
        prop_assert!((0.0..=1.0).contains(&result.totals.compliance_score));
        prop_assert_eq!(result.totals.compliant_resources + result.totals.non_compliant_resources, result.totals.total_resources);
        if result.totals.total_resources == 0 {
            prop_assert_eq!(result.totals.compliance_score, 1.0);
        } else {
            prop_assert_eq!(result.totals.compliance_score, result.totals.compliant_resources as f64 / result.totals.total_resources as f64);
        }
        let per_type: u64 = result.tally.by_resource_type.values().map(|c| c.total).sum();
        prop_assert_eq!(per_type, result.totals.total_resources);
        let errors = result.violations().filter(|v| v.finding.severity == Severity::Error).count() as u64;
        prop_assert_eq!(errors, result.totals.error_count);
    }

    /// Filters are checked against literal membership (not the predicates the engine filters
    /// with), on an estate that has resources of no region (`global`), which belong to every
    /// region's scope, and resources whose account the entry names.
    #[test]
    fn filters_never_return_anything_outside_them(
        estate in proptest::collection::vec(
            (0usize..4, 0usize..5, 0usize..6, tags()), 0..60),
        types in prop::collection::btree_set(resource_type(), 0..3),
        regions in prop::collection::btree_set(prop::sample::select(REGIONS.to_vec()), 0..3),
        accounts in prop::collection::btree_set(prop::sample::select(ACCOUNTS.to_vec()), 0..3),
        severity in prop_oneof![Just(SeverityFilter::All), Just(SeverityFilter::ErrorsOnly), Just(SeverityFilter::WarningsOnly)],
    ) {
        let policy = policy_with_case(false);
        // Region 4 is "none": a resource of no region, reported as global.
        let entries = entries_of(&estate);
        let scope = ScanScope {
            resource_types: types,
            regions: regions.into_iter().map(String::from).collect(),
            accounts: accounts.into_iter().map(String::from).collect(),
            ..ScanScope::default()
        };
        let admitted = |e: &Entry| {
            (scope.resource_types.is_empty() || scope.resource_types.contains(&e.resource_type))
                && (scope.regions.is_empty() || e.region.is_none() || scope.regions.contains(e.region.unwrap()))
                && (scope.accounts.is_empty() || scope.accounts.contains(e.account))
        };
        let expected: Vec<&Entry> = entries.iter().filter(|e| admitted(e)).collect();
        let source = Arc::new(snapshot(&entries));
        let result = runtime().block_on(scan(source, &policy, scope.clone(), severity));
        prop_assert_eq!(result.totals.total_resources, expected.len() as u64);
        let arns: BTreeSet<&str> = expected.iter().map(|e| e.arn.as_str()).collect();
        for v in result.violations() {
            prop_assert!(arns.contains(v.resource.arn.as_str()), "{} is outside the scope", v.resource.arn);
            prop_assert!(severity.admits(v.finding.severity));
        }
        let mut want: Vec<(String, String, String, String)> = expected
            .iter()
            .flat_map(|e| {
                policy
                    .validate(&e.resource_type, &e.tags)
                    .into_iter()
                    .filter(|f| severity.admits(f.severity))
                    .map(|f| (e.arn.clone(), f.violation_type.to_string(), f.tag_name.to_string(), f.severity.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        want.sort();
        prop_assert_eq!(violation_keys(&result), want);
    }

    /// The same estate written as one page, as pages one after the other, as an array of pages,
    /// as loose entries one per line or in an array, with or without a page written twice,
    /// reads to the same scan.
    #[test]
    fn the_same_estate_in_any_paging_and_concatenation_reads_the_same(
        estate in proptest::collection::vec((0usize..4, 0usize..5, 0usize..6, tags()), 0..40),
        cuts in proptest::collection::vec(any::<bool>(), 40),
        form in 0usize..4,
        repeat in any::<bool>(),
    ) {
        let policy = policy_with_case(false);
        let entries = entries_of(&estate);
        let whole = Arc::new(snapshot(&entries));
        let mappings: Vec<serde_json::Value> = entries.iter().map(mapping).collect();
        let mut pages: Vec<Vec<serde_json::Value>> = vec![Vec::new()];
        for (i, m) in mappings.iter().enumerate() {
            if cuts[i] && !pages.last().unwrap().is_empty() {
                pages.push(Vec::new());
            }
            pages.last_mut().unwrap().push(m.clone());
        }
        if repeat {
            let first = pages[0].clone();
            pages.push(first);
        }
        let page = |p: &Vec<serde_json::Value>| serde_json::json!({"ResourceTagMappingList": p, "PaginationToken": ""});
        let text = match form {
            0 => pages.iter().map(|p| page(p).to_string()).collect::<Vec<_>>().join("\n"),
            1 => serde_json::Value::Array(pages.iter().map(page).collect()).to_string(),
            2 => pages.iter().flatten().map(|m| m.to_string()).collect::<Vec<_>>().join("\n"),
            _ => serde_json::Value::Array(pages.iter().flatten().cloned().collect()).to_string(),
        };
        // Loose entries of an empty estate are an empty file, which is an error; skip that one.
        prop_assume!(!(form == 2 && mappings.is_empty()));
        let paged = Arc::new(SnapshotSource::parse(&text, "paged.json").map_err(|e| TestCaseError::fail(e.message))?);
        let (a, b) = runtime().block_on(async {
            (
                scan(whole, &policy, ScanScope::default(), SeverityFilter::All).await,
                scan(paged, &policy, ScanScope::default(), SeverityFilter::All).await,
            )
        });
        prop_assert_eq!(a.totals, b.totals);
        prop_assert_eq!(violation_keys(&a), violation_keys(&b));
        prop_assert!(b.tally.issues.is_empty(), "{:?}", b.tally.issues);
        prop_assert_eq!(repeat && !mappings.is_empty(), b.meta.notes.iter().any(|n| n.contains("repeat")));
    }

    /// A scan split in any way (its plan's shards dealt out to parts scanned apart) and merged
    /// back equals the scan made whole, in everything but its id, start and duration.
    #[test]
    fn the_merge_of_any_split_of_a_scan_equals_the_whole(
        size in 0u64..1_500,
        seed in any::<u64>(),
        parts in 1usize..6,
        deal in proptest::collection::vec(0usize..6, 45),
        cost in any::<bool>(),
    ) {
        let policy = policy_with_case(false);
        let source = estate(size, seed, &policy);
        let analyses = Analyses { cost, tag_stats: !cost, resources: cost };
        runtime().block_on(async {
            let engine = EngineHandle::start(Config::default()).await.unwrap();
            let whole = engine
                .scan(ScanRequest::new(source.clone(), policy.clone()).with_analyses(analyses))
                .await
                .unwrap();
            let calls = ApiCallCounter::default();
            let plan = source.plan(&ScanScope::default(), &FetchContext::unthrottled(&calls)).await.unwrap();
            let mut plans = vec![ShardPlan::default(); parts];
            for (i, shard) in plan.shards.into_iter().enumerate() {
                plans[deal[i % deal.len()] % parts].shards.push(shard);
            }
            let mut merged: Option<tagguard::domain::ScanResult> = None;
            for part in plans {
                let result = engine
                    .scan(ScanRequest::new(source.clone(), policy.clone()).with_analyses(analyses).with_plan(part))
                    .await
                    .unwrap();
                match &mut merged {
                    None => merged = Some(result),
                    Some(all) => all.merge(result).unwrap(),
                }
            }
            let mut merged = merged.unwrap();
            engine.shutdown().await;
            merged.meta.scan_id = whole.meta.scan_id;
            merged.meta.scan_timestamp = whole.meta.scan_timestamp;
            merged.meta.duration_ms = whole.meta.duration_ms;
            prop_assert_eq!(merged, whole);
            Ok(())
        })?;
    }

    /// A result written to the store's cache reads back equal, whatever the estate and the
    /// analyses.
    #[test]
    fn a_stored_result_reads_back_equal(size in 0u64..600, seed in any::<u64>(), severity in prop_oneof![Just(SeverityFilter::All), Just(SeverityFilter::ErrorsOnly)]) {
        let policy = policy_with_case(false);
        runtime().block_on(async {
            let engine = EngineHandle::start(Config::default()).await.unwrap();
            let request = ScanRequest::new(estate(size, seed, &policy), policy.clone())
                .with_severity(severity)
                .with_analyses(Analyses { cost: true, tag_stats: true, resources: false });
            let result = engine.scan(request).await.unwrap();
            engine.shutdown().await;
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), Retention::default()).unwrap();
            store.cache_result("k".to_string(), &result).await.unwrap();
            let back = store.cached_result("k").await.unwrap().expect("cached");
            store.close();
            prop_assert_eq!(back, result);
            Ok(())
        })?;
    }
}

/// One resource of a generated snapshot.
#[derive(Debug, Clone)]
struct Entry {
    arn: String,
    account: &'static str,
    region: Option<&'static str>,
    resource_type: ResourceType,
    tags: Vec<Tag>,
}

impl Entry {
    fn new(
        i: usize,
        account: &'static str,
        region: Option<&'static str>,
        kind: usize,
        tags: Vec<Tag>,
    ) -> Entry {
        let (arn, resource_type) = match (region, kind) {
            // Of no region: a hosted zone (no region, no account in its ARN).
            (None, _) => (
                format!("arn:aws:route53:::hostedzone/Z{i:06}"),
                ResourceType::other("route53:hostedzone"),
            ),
            (Some(region), 0) => (
                format!("arn:aws:ec2:{region}:{account}:instance/i-{i:06}"),
                ResourceType::Ec2Instance,
            ),
            (Some(region), 1) => (
                format!("arn:aws:rds:{region}:{account}:db:db-{i}"),
                ResourceType::RdsDb,
            ),
            // A bucket: its ARN names neither, its entry says both.
            (Some(_), 2) => (format!("arn:aws:s3:::bucket-{i}"), ResourceType::S3Bucket),
            (Some(region), 3) => (
                format!("arn:aws:lambda:{region}:{account}:function:f-{i}"),
                ResourceType::LambdaFunction,
            ),
            (Some(region), 4) => (
                format!("arn:aws:ecs:{region}:{account}:service/c/s-{i}"),
                ResourceType::EcsService,
            ),
            (Some(region), _) => (
                format!("arn:aws:dynamodb:{region}:{account}:table/t-{i}"),
                ResourceType::other("dynamodb:table"),
            ),
        };
        Entry {
            arn,
            account,
            region,
            resource_type,
            tags,
        }
    }
}

/// The entries of an estate drawn as (account, region, kind, tags) indexes; region 4 is
/// "none": a resource of no region, reported as global.
fn entries_of(estate: &[(usize, usize, usize, Vec<Tag>)]) -> Vec<Entry> {
    estate
        .iter()
        .enumerate()
        .map(|(i, (account, region, kind, tags))| {
            Entry::new(
                i,
                ACCOUNTS[*account],
                REGIONS.get(*region).copied(),
                *kind,
                tags.clone(),
            )
        })
        .collect()
}

/// One entry of `get-resources`, plus tagguard's `Region` and `AccountId` for ARNs that lack
/// them.
fn mapping(e: &Entry) -> serde_json::Value {
    let tags: Vec<serde_json::Value> = e
        .tags
        .iter()
        .map(|t| serde_json::json!({ "Key": t.key, "Value": t.value }))
        .collect();
    let mut entry =
        serde_json::json!({ "ResourceARN": e.arn, "Tags": tags, "AccountId": e.account });
    if let Some(region) = e.region {
        entry["Region"] = serde_json::json!(region);
    }
    entry
}

/// The snapshot file of `entries`, as `get-resources` writes it.
fn snapshot(entries: &[Entry]) -> SnapshotSource {
    let mappings: Vec<serde_json::Value> = entries.iter().map(mapping).collect();
    let text = serde_json::json!({ "ResourceTagMappingList": mappings }).to_string();
    SnapshotSource::parse(&text, "generated.json").expect("a well-formed snapshot")
}

#[test]
fn model_sees_the_same_policy_as_the_validator() {
    // Guards the model above: it reads the document, the validator the compiled rules; they
    // must name the same rules, applying to the same types.
    let policy: Arc<Policy> = policy_with_case(false);
    let document: Vec<(String, Vec<String>)> = policy
        .document
        .required_tags
        .iter()
        .map(|r| (r.name.clone(), r.applies_to.clone()))
        .collect();
    let compiled: Vec<(String, Vec<String>)> = policy
        .required_tags()
        .iter()
        .map(|r| {
            (
                r.name.to_string(),
                r.applies_to.types().iter().map(|t| t.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(document, compiled);
    assert!(
        compiled.iter().any(|(_, types)| !types.is_empty()),
        "the default policy scopes some rule to some types, so the comparison means something"
    );
}

/// A decimal text of exactly `micros` micro-dollars, written in one of the ways billing and
/// files write amounts: plain, with padding zeros, or with an exponent.
fn decimal_text(micros: i64, style: u8, pad: usize) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let (whole, fraction) = (abs / 1_000_000, abs % 1_000_000);
    match style % 3 {
        0 => format!("{sign}{whole}.{fraction:06}{}", "0".repeat(pad)),
        1 => format!("{sign}{}{whole}.{fraction:06}", "0".repeat(pad)),
        // All the digits as an integer, scaled back by an exponent.
        _ => format!("{sign}{abs}{}E-{}", "0".repeat(pad), 6 + pad),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Amounts parse to the exact micro-dollar however they are written, and sums of parsed
    /// amounts are the sums of the integers: no float drift at any cent.
    #[test]
    fn amounts_parse_exactly_and_sum_exactly(
        amounts in proptest::collection::vec((-100_000_000_000_000i64..100_000_000_000_000, any::<u8>(), 0usize..4), 1..60),
    ) {
        let mut sum = tagguard::domain::Usd::ZERO;
        let mut exact: i128 = 0;
        for (micros, style, pad) in &amounts {
            let text = decimal_text(*micros, *style, *pad);
            let parsed: tagguard::domain::Usd = text.parse().unwrap();
            prop_assert_eq!(parsed.micros(), *micros, "{}", text);
            sum += parsed;
            exact += i128::from(*micros);
        }
        prop_assert_eq!(i128::from(sum.micros()), exact);
        let cents = (exact.abs() + 5_000) / 10_000 * exact.signum();
        prop_assert_eq!(i128::from(sum.cents()), cents);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// On any demo bill, any period, breakdown and tags: attributable + gap = total, the
    /// breakdown's rows and the time series sum to the totals, each measured tag's missing,
    /// invalid and valid spend sum to the total, and the attributable spend is at most any
    /// tag's valid spend.
    #[test]
    fn gap_figures_sum_to_their_totals(
        size in 20u64..400,
        seed in any::<u64>(),
        start in 0i64..150,
        days in 1i64..100,
        daily in any::<bool>(),
        group_by in 0usize..4,
        tags in proptest::sample::subsequence(vec!["CostCenter", "Owner", "Environment", "Team"], 1..4),
        case_sensitive in any::<bool>(),
    ) {
        use tagguard::cost::{Breakdown, CostService, GapQuestion, Granularity, Period, PeriodSpec, TagStatus};
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let first = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap() + chrono::Duration::days(start);
        let end = (first + chrono::Duration::days(days)).min(today);
        prop_assume!(first < end);
        let policy = policy_with_case(case_sensitive);
        let billing = tagguard::cost::synthetic::SyntheticBilling::as_of(
            tagguard::source::SyntheticSpec { size, seed }, policy.clone(), today,
        ).unwrap();
        let service = CostService::new(Arc::new(billing), policy, None, Default::default());
        let question = GapQuestion {
            period: PeriodSpec::Range(Period::new(first, end).unwrap()),
            granularity: if daily { Granularity::Daily } else { Granularity::Monthly },
            group_by: [Breakdown::Service, Breakdown::Region, Breakdown::Account, Breakdown::ResourceType][group_by],
            tags: Some(tags.iter().map(|t| t.to_string()).collect()),
            ..GapQuestion::default()
        };
        let gap = runtime()
            .block_on(service.attribution_gap(&question, &tokio_util::sync::CancellationToken::new()))
            .unwrap();
        let total = gap.total_spend;
        let rows: tagguard::domain::Usd = gap.breakdown.iter().map(|r| r.total).sum();
        prop_assert_eq!(rows, total);
        let slices: tagguard::domain::Usd = gap.by_time.iter().map(|s| s.total).sum();
        prop_assert_eq!(slices, total);
        if let Some(attributable) = gap.attributable_spend {
            prop_assert_eq!(gap.gap, Some(total - attributable));
            let rows: tagguard::domain::Usd = gap.breakdown.iter().filter_map(|r| r.attributable).sum();
            prop_assert_eq!(rows, attributable);
            let gaps: tagguard::domain::Usd = gap.breakdown.iter().filter_map(|r| r.gap).sum();
            prop_assert_eq!(gaps, total - attributable);
            for row in gap.by_tag.iter().filter(|r| r.status == TagStatus::Measured) {
                prop_assert!(attributable <= row.valid.unwrap());
            }
        }
        for row in &gap.by_tag {
            match row.status {
                TagStatus::Measured => {
                    let parts = row.missing.unwrap() + row.invalid.unwrap() + row.valid.unwrap();
                    prop_assert_eq!(parts, total, "tag {}", &row.tag);
                }
                // Team is in no policy: billing does not record it.
                _ => prop_assert_eq!(row.tag.as_str(), "Team"),
            }
        }
        if let Some(percent) = gap.gap_percent {
            prop_assert!((0.0..=100.0).contains(&percent));
        }
    }
}
