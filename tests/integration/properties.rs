//! Property tests of the invariants: score bounds and ratio, full detail on every violation,
//! filter consistency, and validation correctness against a model of the policy's rules.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use tagguard::domain::{
    Expected, ResourceType, ScanScope, Severity, SeverityFilter, Tag, ViolationType,
};
use tagguard::policy::{Policy, eq_ignore_case};

use crate::support::{estate, policy_with_case, scan, truth_keys, violation_keys};

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
            && !regex::Regex::new(pattern).unwrap().is_match(&found.value)
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
                ViolationType::MissingRequiredTag => f.current_value.is_none() && f.expected == Expected::Nothing,
                ViolationType::EmptyValue => f.current_value.is_some(),
                ViolationType::InvalidValue => f.current_value.is_some()
                    && matches!(&f.expected, Expected::AllowedValues(v) if !v.is_empty()),
                ViolationType::InvalidFormat => f.current_value.is_some()
                    && matches!(&f.expected, Expected::Pattern(p) if !p.is_empty()),
                ViolationType::KeyCaseMismatch | ViolationType::ValueCaseMismatch => f.current_value.is_some()
                    && matches!(&f.expected, Expected::Canonical(_)),
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

    #[test]
    fn filters_never_return_anything_outside_them(
        seed in any::<u64>(),
        types in prop::collection::btree_set(resource_type(), 0..3),
        regions in prop::collection::btree_set(prop::sample::select(REGIONS.to_vec()), 0..3),
        accounts in prop::collection::btree_set(prop::sample::select(ACCOUNTS.to_vec()), 0..3),
        severity in prop_oneof![Just(SeverityFilter::All), Just(SeverityFilter::ErrorsOnly), Just(SeverityFilter::WarningsOnly)],
    ) {
        let policy = policy_with_case(false);
        let scope = ScanScope {
            resource_types: types,
            regions: regions.into_iter().map(String::from).collect(),
            accounts: accounts.into_iter().map(String::from).collect(),
            ..ScanScope::default()
        };
        let source = estate(1_500, seed, &policy);
        let truth = source.ground_truth(&scope);
        let result = runtime().block_on(scan(source, &policy, scope.clone(), severity));
        for v in result.violations() {
            prop_assert!(scope.admits_type(&v.resource.resource_type));
            prop_assert!(scope.admits_region(&v.resource.region));
            prop_assert!(scope.admits_account(&v.resource.account_id));
            prop_assert!(severity.admits(v.finding.severity));
        }
        for resource_type in result.tally.by_resource_type.keys() {
            prop_assert!(scope.admits_type(resource_type));
        }
        prop_assert_eq!(result.totals.total_resources, truth.by_type.values().map(|c| c.0).sum::<u64>());
        let mut expected = truth_keys(&truth);
        expected.retain(|(_, _, _, s)| match severity {
            SeverityFilter::All => true,
            SeverityFilter::ErrorsOnly => s == "error",
            SeverityFilter::WarningsOnly => s == "warning",
        });
        prop_assert_eq!(violation_keys(&result), expected);
    }
}

#[test]
fn model_sees_the_same_policy_as_the_validator() {
    // Guards the model above: it reads the document, the validator the compiled rules.
    let policy: Arc<Policy> = policy_with_case(false);
    assert_eq!(
        policy.document.required_tags.len(),
        policy.required_tags().len()
    );
}
