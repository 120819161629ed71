//! Cost Explorer through the real SDK against moto, which answers `GetCostAndUsage` from a
//! queue of results seeded per account (keyed by each request's exact body, so the plan's
//! fixed order decides which seed answers which question), and, for what moto lacks
//! (`ListCostAllocationTags`) or for failures, the answering proxy of `tests/fault_proxy.py`
//! in front of it. Each test works in an account of its own, so queues do not mix.

use std::sync::Arc;

use serde_json::{Value, json};
use tagguard::config::{CostConfig, PacingConfig, RateLimit, RetryConfig};
use tagguard::cost::explorer::ExplorerSource;
use tagguard::cost::query::range;
use tagguard::cost::service::CostError;
use tagguard::cost::{
    Activation, AttributionGap, Breakdown, CostService, GapQuestion, PeriodSpec, TagStatus,
};
use tagguard::domain::{ScanIssueKind, Usd};
use tokio_util::sync::CancellationToken;

use super::aws_faults::FaultProxy;
use super::aws_moto::{config_in, credentials_in, moto, unique_account};
use crate::support::policy;

/// Queues `results` (GetCostAndUsage answers, in the order the plan asks) for `account`.
async fn seed(account: &str, results: Vec<Value>) {
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/static/ce/cost-and-usage-results",
            moto()
        ))
        .json(&json!({ "account_id": account, "results": results }))
        .send()
        .await
        .expect("moto answers");
    assert_eq!(
        answer.status().as_u16(),
        201,
        "seeding Cost Explorer results"
    );
}

/// One answer of `groups` (`(keys, amount)`) grouped by `definitions`, for November 2026.
fn answer(definitions: &[(&str, &str)], groups: &[(&[&str], &str)], next: Option<&str>) -> Value {
    let mut out = json!({
        "GroupDefinitions": definitions
            .iter()
            .map(|(kind, key)| json!({"Type": kind, "Key": key}))
            .collect::<Vec<_>>(),
        "ResultsByTime": [{
            "TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"},
            "Total": {},
            "Estimated": false,
            "Groups": groups
                .iter()
                .map(|(keys, amount)| json!({
                    "Keys": keys,
                    "Metrics": {"AmortizedCost": {"Amount": amount, "Unit": "USD"}},
                }))
                .collect::<Vec<_>>(),
        }],
        "DimensionValueAttributes": [],
    });
    if let Some(token) = next {
        out["NextPageToken"] = json!(token);
    }
    out
}

/// The proxy's answer to `ListCostAllocationTags`: each tag with its status.
fn activation_answer(tags: &[(&str, &str)]) -> Value {
    json!({
        "target": "AWSInsightsIndexService.ListCostAllocationTags",
        "body": {"CostAllocationTags": tags
            .iter()
            .map(|(key, status)| json!({"TagKey": key, "Type": "UserDefined", "Status": status}))
            .collect::<Vec<_>>()}
    })
}

const EC2: &str = "Amazon Elastic Compute Cloud - Compute";
const RDS: &str = "Amazon Relational Database Service";

/// Other charges (with a negative credit), usage on two pages, CostCenter's split (a value
/// holding `$`), attributable: the plan's five requests for one tag.
fn november(with_tag_answers: bool) -> Vec<Value> {
    let mut results = vec![
        answer(
            &[("DIMENSION", "RECORD_TYPE")],
            &[
                (&["Usage"], "1000.00"),
                (&["DiscountedUsage"], "200.00"),
                (&["Tax"], "80.1234567"),
                (&["Credit"], "-150.00"),
            ],
            None,
        ),
        answer(
            &[("DIMENSION", "SERVICE")],
            &[(&[EC2], "700.000001")],
            Some("p2"),
        ),
        answer(&[("DIMENSION", "SERVICE")], &[(&[RDS], "499.999999")], None),
    ];
    if with_tag_answers {
        results.push(answer(
            &[("DIMENSION", "SERVICE"), ("TAG", "CostCenter")],
            &[
                (&[EC2, "CostCenter$Engineering"], "400.000001"),
                (&[EC2, "CostCenter$"], "300.00"),
                (&[RDS, "CostCenter$Fin$ance"], "100.00"),
                (&[RDS, "CostCenter$Finance"], "399.999999"),
            ],
            None,
        ));
        results.push(answer(
            &[("DIMENSION", "SERVICE")],
            &[(&[EC2], "400.000001"), (&[RDS], "399.999999")],
            None,
        ));
    }
    results
}

/// Retries that give up at once past the SDK's: moto answers what it lacks with 500s.
fn quick_retries() -> RetryConfig {
    RetryConfig {
        page_retries: 0,
        ..RetryConfig::default()
    }
}

async fn service_at(account: &str, endpoint: Option<&str>) -> CostService {
    let mut config = config_in(account, "us-east-1").await;
    if let Some(endpoint) = endpoint {
        config = config.to_builder().endpoint_url(endpoint).build();
    }
    let limit = RateLimit {
        requests_per_second: 50.try_into().unwrap(),
        burst: 50.try_into().unwrap(),
    };
    let source =
        ExplorerSource::with_config(config, quick_retries(), limit, &PacingConfig::default());
    CostService::new(Arc::new(source), policy(), None, CostConfig::default())
}

fn november_question(tags: &[&str]) -> GapQuestion {
    GapQuestion {
        period: PeriodSpec::Range(range("2026-11-01", "2026-12-01").unwrap()),
        group_by: Breakdown::Service,
        tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        ..GapQuestion::default()
    }
}

async fn ask(service: &CostService, question: &GapQuestion) -> Result<AttributionGap, CostError> {
    service
        .attribution_gap(question, &CancellationToken::new())
        .await
}

fn dollars(text: &str) -> Usd {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gap_follows_cost_explorers_pages_credits_and_dollar_values() {
    let account = unique_account();
    seed(&account, november(true)).await;
    let service = service_at(&account, None).await;
    let gap = ask(&service, &november_question(&["CostCenter"]))
        .await
        .unwrap();
    assert_eq!(gap.data_source, "cost_explorer");
    // Both pages of the usage answer count.
    assert_eq!(gap.total_spend, dollars("1200"));
    assert_eq!(gap.attributable_spend, Some(dollars("800")));
    assert_eq!(gap.gap, Some(dollars("400")));
    assert_eq!(gap.gap_percent, Some(33.33));
    let row = &gap.by_tag[0];
    assert_eq!(row.status, TagStatus::Measured);
    assert_eq!(row.missing, Some(dollars("300")));
    assert_eq!(row.invalid, Some(dollars("100")));
    assert_eq!(row.valid, Some(dollars("800")));
    assert_eq!(row.top_invalid_values[0].value, "Fin$ance");
    // Credits are other charges, never a smaller gap.
    assert_eq!(gap.other_charges_total, Some(dollars("-69.876543")));
    assert_eq!(gap.invoice_total, Some(dollars("1130.123457")));
    let credit = gap
        .other_charges
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.record_type == "Credit")
        .unwrap();
    assert_eq!(credit.amount, dollars("-150"));
    // Other charges, usage twice (two pages), the tag, attributable: five billed requests;
    // the activation check is a 500 on moto (not billed), so activation is unknown.
    assert_eq!(gap.ce_requests.made, 5, "{:?}", gap.ce_requests);
    assert_eq!(gap.ce_requests.failed, 1);
    assert_eq!(gap.ce_requests.price, Usd::from_cents(5));
    assert_eq!(row.activation, Activation::Unknown);
    assert!(
        gap.caveats.iter().any(|c| c.contains("activated")),
        "{:?}",
        gap.caveats
    );
    assert!(!gap.partial);
    let ec2 = gap.breakdown.iter().find(|r| r.key == EC2).unwrap();
    assert_eq!(
        (ec2.total, ec2.gap),
        (dollars("700.000001"), Some(dollars("300")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inactive_allocation_tag_is_not_measurable_and_not_asked() {
    let account = unique_account();
    seed(&account, november(true)).await;
    let proxy = FaultProxy::start(&[]);
    proxy
        .configure(json!({"answers": [activation_answer(&[
            ("CostCenter", "Active"),
            ("Team", "Inactive"),
        ])]}))
        .await;
    let service = service_at(&account, Some(&proxy.url)).await;
    let gap = ask(&service, &november_question(&["CostCenter", "Team"]))
        .await
        .unwrap();
    let team = gap.by_tag.iter().find(|r| r.tag == "Team").unwrap();
    assert_eq!(
        (team.status, team.activation),
        (TagStatus::NotMeasurable, Activation::Inactive)
    );
    assert_eq!(team.missing, None, "an inactive tag is not 100 % untagged");
    let cost_center = gap.by_tag.iter().find(|r| r.tag == "CostCenter").unwrap();
    assert_eq!(cost_center.activation, Activation::Active);
    assert_eq!(gap.measured_tags, ["CostCenter"]);
    assert_eq!(gap.attributable_spend, Some(dollars("800")));
    // Activation, other charges, usage (2 pages), CostCenter, attributable: Team is not asked.
    assert_eq!(gap.ce_requests.made, 6);
    assert_eq!(gap.ce_requests.failed, 0);
    let faults = proxy.faults().await;
    assert_eq!(
        faults["answered"]["AWSInsightsIndexService.ListCostAllocationTags"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_call_is_an_issue_and_unknown_never_zero() {
    let account = unique_account();
    seed(&account, november(false)).await;
    let proxy = FaultProxy::start(&[]);
    proxy
        .configure(json!({"answers": [
            activation_answer(&[("CostCenter", "Active")]),
            {"target": "AWSInsightsIndexService.GetCostAndUsage", "body_contains": "\"TAG\"",
             "error": "AccessDeniedException",
             "message": "User: arn:aws:iam::123456789012:user/x is not authorized to perform: ce:GetCostAndUsage"}
        ]}))
        .await;
    let service = service_at(&account, Some(&proxy.url)).await;
    let gap = ask(&service, &november_question(&["CostCenter"]))
        .await
        .unwrap();
    assert_eq!(gap.total_spend, dollars("1200"));
    assert_eq!(gap.by_tag[0].status, TagStatus::Unknown);
    assert_eq!((gap.by_tag[0].missing, gap.by_tag[0].valid), (None, None));
    assert_eq!(
        (gap.attributable_spend, gap.gap, gap.gap_percent),
        (None, None, None)
    );
    assert!(gap.partial);
    assert_eq!(gap.issues.len(), 1, "{:?}", gap.issues);
    assert_eq!(gap.issues[0].kind, "access_denied");
    assert_eq!(gap.issues[0].question, "tag CostCenter");

    // When the usage question itself fails there is no answer at all, with the reason.
    proxy
        .configure(json!({"answers": [
            {"target": "AWSInsightsIndexService.GetCostAndUsage",
             "error": "AccessDeniedException", "message": "not authorized to perform: ce:GetCostAndUsage"}
        ]}))
        .await;
    let mut question = november_question(&["CostCenter"]);
    question.force_refresh = true;
    match ask(&service, &question).await {
        Err(CostError::Source(error)) => {
            assert_eq!(error.kind, ScanIssueKind::AccessDenied);
            assert_eq!(
                error.missing_permission.as_deref(),
                Some("ce:GetCostAndUsage")
            );
        }
        other => panic!("expected access denied, got {other:?}"),
    }
    assert_eq!(service.health().state, "unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagguard_cost_reads_cost_explorer_through_aws_endpoint_url() {
    let account = unique_account();
    seed(&account, november(true)).await;
    let proxy = FaultProxy::start(&[]);
    proxy
        .configure(json!({"answers": [activation_answer(&[("CostCenter", "Active")])]}))
        .await;
    let credentials = credentials_in(&account).await;
    let data = tempfile::tempdir().unwrap();
    let run = || {
        let mut command = super::aws_moto::aws_cli(&proxy.url, &credentials);
        command
            .args([
                "cost",
                "--source",
                "aws",
                "--period",
                "2026-11-01..2026-12-01",
                "--tags",
                "CostCenter",
                "--format",
                "json",
            ])
            .env("TAGGUARD_DATA_DIR", data.path())
            // Cost Explorer answers from any region of the partition.
            .env("AWS_REGION", "eu-west-1");
        let out = command.output().expect("tagguard runs");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON on stdout ({e}); stderr: {stderr}"));
        (out.status.code(), json)
    };
    let (code, json) = run();
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["total_spend"], json!(1200.0));
    assert_eq!(json["gap"], json!(400.0));
    assert_eq!(json["ce_requests"]["made"], 6);
    assert_eq!(json["ce_requests"]["price"], json!(0.06));
    assert_eq!(json["cache"]["state"], "fresh");
    // Asked again within the TTL: the store's cache answers, and nothing is billed.
    let (code, again) = run();
    assert_eq!(code, Some(0));
    assert_eq!(again["ce_requests"]["made"], 0);
    assert_eq!(again["cache"]["state"], "cached");
    assert_eq!(again["total_spend"], json["total_spend"]);
}

/// Starts one untagged instance of each of `types` in us-east-1 of `account`; their ids.
async fn instances(account: &str, types: &[aws_sdk_ec2::types::InstanceType]) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(&config_in(account, "us-east-1").await);
    let mut ids = Vec::new();
    for itype in types {
        let out = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(itype.clone())
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .expect("RunInstances");
        ids.push(out.instances()[0].instance_id().unwrap().to_string());
    }
    ids
}

/// The monthly cost and its source of each violating resource of a JSON result, by id.
fn costs_by_id(json: &Value) -> std::collections::BTreeMap<String, (Value, String)> {
    json["tally"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["resource_id"].as_str().unwrap().to_string(),
                (
                    v["monthly_cost"].clone(),
                    v["cost_source"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// The pools the scan's pricing asks of `GetCostAndUsage` (last month, by account and region,
/// with normalised hours): EC2's, then RDS's (none).
fn pools(account: &str, ec2: (&str, &str)) -> Vec<Value> {
    let mut ec2_pool = answer(
        &[("DIMENSION", "LINKED_ACCOUNT"), ("DIMENSION", "REGION")],
        &[],
        None,
    );
    ec2_pool["ResultsByTime"][0]["Groups"] = json!([{
        "Keys": [account, "us-east-1"],
        "Metrics": {
            "AmortizedCost": {"Amount": ec2.0, "Unit": "USD"},
            "NormalizedUsageAmount": {"Amount": ec2.1, "Unit": "N/A"}
        }
    }]);
    let rds_pool = answer(
        &[("DIMENSION", "LINKED_ACCOUNT"), ("DIMENSION", "REGION")],
        &[],
        None,
    );
    vec![ec2_pool, rds_pool]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_allocated_their_size_share_of_ec2_spend_without_resource_data() {
    use aws_sdk_ec2::types::InstanceType;
    let account = unique_account();
    let ids = instances(
        &account,
        &[
            InstanceType::M5Large,
            InstanceType::M5Xlarge,
            InstanceType::T3Micro,
        ],
    )
    .await;
    // $876 over 8,760 normalised hours: $0.10 an hour of a size-1 (small) instance.
    seed(&account, pools(&account, ("876.00", "8760"))).await;
    let credentials = credentials_in(&account).await;
    let args = [
        "--regions",
        "us-east-1",
        "--resource-types",
        "ec2:instance,s3:bucket",
    ];
    let (code, json, stderr) = super::aws_moto::scan_cli_at(&moto(), &credentials, &args);
    assert_eq!(code, Some(1), "{stderr}");
    let costs = costs_by_id(&json);
    // A month of running: large (4) 4 × 730 h × $0.10, xlarge (8) twice that, micro (0.5).
    assert_eq!(costs[&ids[0]], (json!(292.0), "allocated".to_string()));
    assert_eq!(costs[&ids[1]], (json!(584.0), "allocated".to_string()));
    assert_eq!(costs[&ids[2]], (json!(36.5), "allocated".to_string()));
    let notes = json["notes"].to_string();
    assert!(
        notes.contains("resource-level cost data is unavailable"),
        "{notes}"
    );
    assert!(notes.contains("allocated for EC2 and RDS"), "{notes}");
    // The cost sums are those of the instances.
    let non_compliant = &json["tally"]["cost"]["by_resource_type"]["ec2:instance"]["non_compliant"];
    assert_eq!(
        non_compliant["monthly_cost"],
        json!(912.5),
        "{non_compliant}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_level_billing_gives_actual_costs_scaled_from_fourteen_days() {
    use aws_sdk_ec2::types::InstanceType;
    let account = unique_account();
    let ids = instances(&account, &[InstanceType::M5Large, InstanceType::T3Micro]).await;
    seed(&account, pools(&account, ("876.00", "8760"))).await;
    // Cost Explorer's resource-level answer for EC2 (moto lacks it): the large instance billed
    // $2.40 a day for 14 days; the micro is not in it, so it is allocated.
    let today = chrono::Utc::now().date_naive();
    let days: Vec<Value> = (1..=14)
        .map(|back| {
            let day = today - chrono::Duration::days(back);
            json!({
                "TimePeriod": {"Start": day.to_string(), "End": (day + chrono::Duration::days(1)).to_string()},
                "Total": {}, "Estimated": false,
                "Groups": [{"Keys": [ids[0]], "Metrics": {"AmortizedCost": {"Amount": "2.40", "Unit": "USD"}}}]
            })
        })
        .collect();
    let proxy = FaultProxy::start(&[]);
    proxy
        .configure(json!({"answers": [
            {"target": "AWSInsightsIndexService.GetCostAndUsageWithResources",
             "body_contains": "Amazon Elastic Compute Cloud - Compute",
             "body": {"ResultsByTime": days, "GroupDefinitions": [{"Type": "DIMENSION", "Key": "RESOURCE_ID"}]}},
            {"target": "AWSInsightsIndexService.GetCostAndUsageWithResources",
             "body": {"ResultsByTime": []}}
        ]}))
        .await;
    let credentials = credentials_in(&account).await;
    let args = ["--regions", "us-east-1", "--resource-types", "ec2:instance"];
    let (code, json, stderr) = super::aws_moto::scan_cli_at(&proxy.url, &credentials, &args);
    assert_eq!(code, Some(1), "{stderr}");
    let costs = costs_by_id(&json);
    // $2.40 a day: 730 / 24 days a month.
    assert_eq!(costs[&ids[0]], (json!(73.0), "actual".to_string()));
    assert_eq!(costs[&ids[1]], (json!(36.5), "allocated".to_string()));
    let notes = json["notes"].to_string();
    assert!(notes.contains("actual for 1 resource"), "{notes}");
    let faults = proxy.faults().await;
    assert_eq!(
        faults["answered"]["AWSInsightsIndexService.GetCostAndUsageWithResources"], 9,
        "one question per mapped service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungrouped_answer_gives_its_total_and_an_empty_queue_gives_no_data() {
    use tagguard::cost::CostSource;
    use tagguard::cost::query::CostQuery;
    let account = unique_account();
    seed(
        &account,
        vec![json!({
            "ResultsByTime": [{
                "TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"},
                "Total": {"AmortizedCost": {"Amount": "42.4200001", "Unit": "USD"}},
                "Groups": [], "Estimated": true
            }],
            "DimensionValueAttributes": []
        })],
    )
    .await;
    let limit = RateLimit {
        requests_per_second: 50.try_into().unwrap(),
        burst: 50.try_into().unwrap(),
    };
    let source = ExplorerSource::with_config(
        config_in(&account, "us-east-1").await,
        quick_retries(),
        limit,
        &PacingConfig::default(),
    );
    let query = CostQuery {
        period: range("2026-11-01", "2026-12-01").unwrap(),
        granularity: tagguard::cost::Granularity::Monthly,
        metric: tagguard::cost::Metric::AmortizedCost,
        filter: None,
        group_by: Vec::new(),
        with_usage: false,
    };
    let page = source.cost_and_usage(&query, None).await.unwrap();
    assert_eq!(page.slices.len(), 1);
    assert_eq!(page.slices[0].total, Some(Usd::from_micros(42_420_000)));
    assert!(page.slices[0].groups.is_empty() && page.slices[0].estimated);
    // Another question finds the queue empty: moto's default is no data, not an error.
    let mut other = query.clone();
    other.granularity = tagguard::cost::Granularity::Daily;
    let empty = source.cost_and_usage(&other, None).await.unwrap();
    assert!(empty.slices.is_empty() && empty.next_token.is_none());
}
