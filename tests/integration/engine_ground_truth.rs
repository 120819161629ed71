//! The engine scans synthetic estates exactly: per-type counts and every violation equal the
//! generator's ground truth, for several sizes, seeds, scopes and case rules.

use tagguard::domain::{ResourceType, ScanScope, SeverityFilter};

use crate::support::{estate, policy, policy_with_case, scan, truth_keys, violation_keys};

async fn check(size: u64, seed: u64, case_sensitive: bool, scope: ScanScope) {
    let policy = policy_with_case(case_sensitive);
    let source = estate(size, seed, &policy);
    let truth = source.ground_truth(&scope);
    let result = scan(source, &policy, scope, SeverityFilter::All).await;

    let expected_total: u64 = truth.by_type.values().map(|c| c.0).sum();
    assert_eq!(
        result.totals.total_resources, expected_total,
        "size {size} seed {seed}"
    );
    for (resource_type, (total, compliant)) in &truth.by_type {
        let counts = result.tally.by_resource_type[resource_type];
        assert_eq!(
            (counts.total, counts.compliant),
            (*total, *compliant),
            "{resource_type}, size {size} seed {seed}"
        );
    }
    assert_eq!(
        violation_keys(&result),
        truth_keys(&truth),
        "size {size} seed {seed}"
    );
    assert!(result.tally.issues.is_empty() && !result.partial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_estates_match_ground_truth_exactly() {
    for (size, seed) in [(0, 1), (1, 2), (997, 3), (5_000, 4), (40_000, 5)] {
        check(size, seed, false, ScanScope::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_sensitive_policy_matches_ground_truth() {
    check(6_000, 11, true, ScanScope::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_scans_match_ground_truth() {
    let scope = ScanScope {
        resource_types: [ResourceType::S3Bucket, ResourceType::LambdaFunction].into(),
        regions: ["us-west-2".to_string(), "eu-west-1".to_string()].into(),
        accounts: ["234567890123".to_string()].into(),
        ..ScanScope::default()
    };
    check(8_000, 9, false, scope).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_estate_scores_one() {
    let policy = policy();
    let result = scan(
        estate(0, 1, &policy),
        &policy,
        ScanScope::default(),
        SeverityFilter::All,
    )
    .await;
    assert_eq!(result.totals.total_resources, 0);
    assert_eq!(result.totals.compliance_score, 1.0);
}
