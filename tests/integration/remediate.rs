//! Remediation against moto: a plan from suggestions, an apply through the tagging API that
//! refuses a resource changed since the plan and reports one that fails to tag while the rest
//! are applied, a fresh scan that finds the fixed resources compliant, and an undo that
//! restores the exact previous tags; and the types the tagging API answers it does not
//! support (an answering proxy says so, in the API's own format) written through their own
//! services.

use std::collections::{BTreeMap, BTreeSet};

use aws_credential_types::Credentials;
use serde_json::{Value, json};

use crate::aws_faults::FaultProxy;
use crate::aws_moto::{
    aws_cli, config_in, create_estate, credentials_in, moto, scan_cli_at, unique_account,
};
use crate::suggest::seed;

/// `tagguard fix …` against `endpoint` in `account`, with its own data directory.
fn fix(
    endpoint: &str,
    credentials: &Credentials,
    account: &str,
    data: &std::path::Path,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let out = aws_cli(endpoint, credentials)
        .env("TAGGUARD_DATA_DIR", data)
        .args([
            "fix",
            "--source",
            "aws",
            "--regions",
            "us-east-1",
            "--accounts",
            account,
        ])
        .args(args)
        .output()
        .expect("tagguard runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Every instance's whole tag set, as EC2 itself reports it.
async fn instance_tags(account: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let ec2 = aws_sdk_ec2::Client::new(&config_in(account, "us-east-1").await);
    let out = ec2
        .describe_instances()
        .send()
        .await
        .expect("DescribeInstances");
    let mut all = BTreeMap::new();
    for instance in out.reservations().iter().flat_map(|r| r.instances()) {
        let arn = format!(
            "arn:aws:ec2:us-east-1:{account}:instance/{}",
            instance.instance_id().unwrap()
        );
        let tags = instance
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect();
        all.insert(arn, tags);
    }
    all
}

#[tokio::test]
async fn a_plan_is_applied_verified_and_undone_on_moto() {
    let account = unique_account();
    seed(&account).await;
    let credentials = credentials_in(&account).await;
    let data = tempfile::tempdir().unwrap();
    let plan_path = data.path().join("plan.json");

    // Plan: only ec2 instances, suggestions of 0.8 and more.
    let (code, stdout, stderr) = fix(
        &moto(),
        &credentials,
        &account,
        data.path(),
        &[
            "--plan",
            plan_path.to_str().unwrap(),
            "--resource-types",
            "ec2:instance",
            "--min-confidence",
            "0.8",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("aws resourcegroupstaggingapi tag-resources"),
        "{stdout}"
    );
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let planned: Vec<&Value> = plan["resources"].as_array().unwrap().iter().collect();
    assert!(planned.len() >= 4, "{plan}");
    let before_apply = instance_tags(&account).await;
    // A plan never touches a valid value: every changed key is absent or invalid now.
    for r in &planned {
        let now = &before_apply[r["resource_arn"].as_str().unwrap()];
        for c in r["changes"].as_array().unwrap() {
            let tag = c["tag"].as_str().unwrap();
            assert!(!now.contains_key(tag), "{tag} is there already: {r}");
            assert!(c["origin"]["confidence"].as_f64().unwrap() >= 0.8);
        }
    }

    // One resource changes after the plan (to a value still invalid, so that it stays in the
    // fresh scan's violations); another cannot be tagged.
    let stale = planned[0]["resource_arn"].as_str().unwrap().to_string();
    let failing = planned[1]["resource_arn"].as_str().unwrap().to_string();
    let ec2 = aws_sdk_ec2::Client::new(&config_in(&account, "us-east-1").await);
    ec2.create_tags()
        .resources(stale.rsplit('/').next().unwrap())
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("CostCenter")
                .value("Sales-Team")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before_apply = instance_tags(&account).await;
    let proxy = FaultProxy::start(&[]);
    proxy
        .configure(json!({"answers": [{
            "target": "ResourceGroupsTaggingAPI_20170126.TagResources",
            "body_contains": failing.rsplit('/').next().unwrap(),
            "error": "AccessDeniedException",
            "message": "User is not authorized to perform: ec2:CreateTags",
        }]}))
        .await;

    // Apply, unconfirmed: refused.
    let plan_arg = plan_path.to_str().unwrap();
    let (code, _, stderr) = fix(
        &proxy.url,
        &credentials,
        &account,
        data.path(),
        &["--apply", plan_arg],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(
        instance_tags(&account).await,
        before_apply,
        "nothing written unconfirmed"
    );

    let (code, stdout, stderr) = fix(
        &proxy.url,
        &credentials,
        &account,
        data.path(),
        &["--apply", plan_arg, "--yes"],
    );
    assert_eq!(code, Some(2), "not everything applied: {stdout}{stderr}");
    let record: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let status: BTreeMap<&str, &str> = record["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["resource_arn"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(status[stale.as_str()], "refused", "{record}");
    assert_eq!(status[failing.as_str()], "failed", "{record}");
    assert_eq!(
        record["applied"].as_u64().unwrap() as usize,
        planned.len() - 2,
        "{record}"
    );
    assert_eq!(
        proxy.faults().await["answered"]["ResourceGroupsTaggingAPI_20170126.TagResources"]
            .as_u64()
            .map(|n| n >= 1),
        Some(true)
    );

    // What EC2 holds now: the applied resources carry exactly the planned values, and
    // nothing else of theirs changed; the refused and failed ones are untouched.
    let after_apply = instance_tags(&account).await;
    for r in &planned {
        let arn = r["resource_arn"].as_str().unwrap();
        let mut expected = before_apply[arn].clone();
        if arn != stale && arn != failing {
            for c in r["changes"].as_array().unwrap() {
                expected.insert(
                    c["tag"].as_str().unwrap().into(),
                    c["to_value"].as_str().unwrap().into(),
                );
            }
        }
        assert_eq!(after_apply[arn], expected, "{arn}");
    }

    // A fresh scan: the applied resources have no violation left on the tags planned.
    let (_, scan, _) = scan_cli_at(
        &moto(),
        &credentials,
        &[
            "--regions",
            "us-east-1",
            "--accounts",
            &account,
            "--resource-types",
            "ec2:instance",
        ],
    );
    let violated: BTreeSet<(String, String)> = scan["tally"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["resource_arn"].as_str().unwrap().to_string(),
                v["tag_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for r in &planned {
        let arn = r["resource_arn"].as_str().unwrap();
        for c in r["changes"].as_array().unwrap() {
            let key = (arn.to_string(), c["tag"].as_str().unwrap().to_string());
            assert_eq!(
                violated.contains(&key),
                arn == failing || arn == stale,
                "{key:?}"
            );
        }
    }

    // Undo: the exact previous tags come back.
    let plan_id = plan["plan_id"].as_str().unwrap();
    let (code, stdout, stderr) = fix(
        &moto(),
        &credentials,
        &account,
        data.path(),
        &["--undo", plan_id, "--yes"],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        instance_tags(&account).await,
        before_apply,
        "undo restores every tag"
    );
}

/// The whole tag set of each of `arns`, as the tagging API of moto reports it (a resource it
/// leaves out has none).
async fn tags_of(account: &str, arns: &[String]) -> BTreeMap<String, BTreeMap<String, String>> {
    let tagging =
        aws_sdk_resourcegroupstagging::Client::new(&config_in(account, "us-east-1").await);
    let mut all: BTreeMap<String, BTreeMap<String, String>> =
        arns.iter().map(|a| (a.clone(), BTreeMap::new())).collect();
    for chunk in arns.chunks(100) {
        let out = tagging
            .get_resources()
            .set_resource_arn_list(Some(chunk.to_vec()))
            .send()
            .await
            .expect("GetResources");
        for mapping in out.resource_tag_mapping_list() {
            let tags = mapping
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            all.insert(mapping.resource_arn().unwrap().to_string(), tags);
        }
    }
    all
}

#[tokio::test]
async fn types_the_tagging_api_cannot_write_are_written_through_their_own_service() {
    let account = unique_account();
    let config = config_in(&account, "us-east-1").await;
    let created = create_estate(&config, &account, "us-east-1", 5).await;
    let credentials = credentials_in(&account).await;
    let data = tempfile::tempdir().unwrap();
    let plan_path = data.path().join("plan.json");
    let types = "rds:db,s3:bucket,lambda:function,ecs:service";

    // Values the user sets, for every required tag: each resource missing one or carrying an
    // invalid value (or a key in the wrong case) gets a change.
    let (code, stdout, stderr) = fix(
        &moto(),
        &credentials,
        &account,
        data.path(),
        &[
            "--plan",
            plan_path.to_str().unwrap(),
            "--resource-types",
            types,
            "--set",
            "CostCenter=Research",
            "--set",
            "Owner=platform@example.com",
            "--set",
            "Environment=staging",
            "--set",
            "Application=billing",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let planned: Vec<&Value> = plan["resources"].as_array().unwrap().iter().collect();
    let planned_types: BTreeSet<&str> = planned
        .iter()
        .map(|r| r["resource_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned_types,
        BTreeSet::from(["rds:db", "s3:bucket", "lambda:function", "ecs:service"]),
        "{plan}"
    );
    let arns: Vec<String> = created
        .iter()
        .filter(|c| c.resource_type.as_str() != "ec2:instance")
        .map(|c| c.arn.clone())
        .collect();
    let before = tags_of(&account, &arns).await;

    // The tagging API answers every write: "not supported" for each ARN.
    let unsupported = json!({
        "StatusCode": 400,
        "ErrorCode": "InvalidParameterException",
        "ErrorMessage": "The resource type is not supported by this operation",
    });
    let proxy = FaultProxy::start(&[]);
    proxy
        .configure(json!({"answers": [
            {"target": "ResourceGroupsTaggingAPI_20170126.TagResources", "fail_each": unsupported},
            {"target": "ResourceGroupsTaggingAPI_20170126.UntagResources", "fail_each": unsupported},
        ]}))
        .await;
    let (code, stdout, stderr) = fix(
        &proxy.url,
        &credentials,
        &account,
        data.path(),
        &["--apply", plan_path.to_str().unwrap(), "--yes"],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let record: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    assert_eq!(
        record["applied"].as_u64().unwrap() as usize,
        planned.len(),
        "{record}"
    );
    let answered = &proxy.faults().await["answered"];
    assert!(
        answered["ResourceGroupsTaggingAPI_20170126.TagResources"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{answered}"
    );

    // Each service holds what was planned: added and corrected values, keys in the wrong case
    // renamed, nothing else touched.
    let after = tags_of(&account, &arns).await;
    for arn in &arns {
        let mut expected = before[arn].clone();
        if let Some(r) = planned.iter().find(|r| r["resource_arn"] == arn.as_str()) {
            for c in r["changes"].as_array().unwrap() {
                if let Some(from_key) = c["from_key"].as_str() {
                    expected.remove(from_key);
                }
                expected.insert(
                    c["tag"].as_str().unwrap().into(),
                    c["to_value"].as_str().unwrap().into(),
                );
            }
        }
        assert_eq!(after[arn], expected, "{arn}");
    }

    // Undo through the same refusing API: the exact previous tags, every service.
    let (code, stdout, stderr) = fix(
        &proxy.url,
        &credentials,
        &account,
        data.path(),
        &["--undo", plan["plan_id"].as_str().unwrap(), "--yes"],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        tags_of(&account, &arns).await,
        before,
        "undo restores every tag"
    );
    assert!(
        proxy.faults().await["answered"]["ResourceGroupsTaggingAPI_20170126.UntagResources"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
}

/// On the demo estate, through the public tool: a plan changes only tags the generator's own
/// record says are violated (missing, invalid, or a key of the wrong case), never a valid one;
/// every value it writes is one the policy accepts for the resource's type; a value set wins
/// wherever that tag needs a fix; and no suggestion below the minimum confidence is used.
#[tokio::test]
async fn a_plan_changes_only_violated_tags_with_accepted_values() {
    use tagguard::domain::{ResourceType, ScanScope, Tag};
    use tagguard::tools::{CallContext, ToolRegistry};

    let policy = crate::support::policy();
    let source = crate::support::estate(2_000, 77, &policy);
    let env = crate::support::tool_env(source.clone(), &policy, None).await;
    let truth = source.ground_truth(&ScanScope::default());
    let violated: BTreeSet<(String, String)> = truth
        .violations
        .iter()
        .map(|v| (v.resource_arn.clone(), v.tag_name.clone()))
        .collect();
    let plan = ToolRegistry::standard()
        .get("plan_tag_remediation")
        .expect("tool exists")
        .call(
            &env,
            &CallContext::default(),
            json!({"set": {"Owner": "finops@example.com"}, "min_confidence": 0.9, "limit": 200}),
        )
        .await
        .expect("a plan")
        .structured;
    let resources = plan["resources"].as_array().unwrap();
    // 200 non-compliant resources are looked at; one whose every fix is skipped is left out.
    assert!(
        (150..=200).contains(&resources.len()),
        "{} resources planned",
        resources.len()
    );
    let mut owners = 0;
    for r in resources {
        let arn = r["resource_arn"].as_str().unwrap();
        let kind: ResourceType = r["resource_type"].as_str().unwrap().parse().unwrap();
        for c in r["changes"].as_array().unwrap() {
            let tag = c["tag"].as_str().unwrap();
            let from_key = c["from_key"].as_str();
            assert!(
                violated.contains(&(arn.to_string(), tag.to_string()))
                    || from_key.is_some_and(|k| violated.contains(&(arn.to_string(), k.into()))),
                "{arn}: {tag} is not violated, yet changed: {c}"
            );
            let value = c["to_value"].as_str().unwrap();
            assert!(
                policy
                    .validate(&kind, &[Tag::new(tag, value)])
                    .iter()
                    .all(|f| *f.tag_name != *tag),
                "{arn}: {tag}={value} is rejected by the policy"
            );
            match c["origin"]["kind"].as_str().unwrap() {
                "suggestion" => assert!(c["origin"]["confidence"].as_f64().unwrap() >= 0.9),
                "user_set" => {
                    assert_eq!((tag, value), ("Owner", "finops@example.com"));
                    owners += 1;
                }
                "respelled" => assert!(from_key.is_some(), "{c}"),
                other => panic!("unknown origin {other}"),
            }
        }
        // Where Owner needed a fix, the value set is the one planned.
        if violated.contains(&(arn.to_string(), "Owner".to_string())) {
            assert!(
                r["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["tag"] == "Owner" && c["to_value"] == "finops@example.com"),
                "{r}"
            );
        }
    }
    assert!(owners > 0);
}
