//! Tag policies read from AWS Organizations through the SDK (`tagguard policy import
//! --from-organization`, and `import_aws_tag_policy` with `from_organization`): against moto,
//! which keeps organizations, OUs, tag policies and where they are attached, and through the
//! answering proxy of `tests/fault_proxy.py` for `DescribeEffectivePolicy`, which moto lacks.
//!
//! The oracle for what a policy read from Organizations means is the import of the same
//! documents from a file (its semantics are tested against AWS's own verdicts in `cli.rs`):
//! reading through the API must change nothing but where the documents come from.

use std::sync::Arc;

use aws_sdk_organizations::types::{OrganizationFeatureSet, PolicyType};
use serde_json::{Value, json};
use tagguard::source::aws::TagPolicyReader;
use tagguard::tools::{CallContext, ToolError, ToolRegistry};

use super::aws_faults::FaultProxy;
use super::aws_moto::{aws_cli, config_in, credentials_in, moto, unique_account};
use super::support;

/// The policy attached to the root: CostCenter with wildcard values, required on instances.
const ROOT_POLICY: &str = r#"{"tags": {
  "costcenter": {"tag_key": {"@@assign": "CostCenter"},
                 "tag_value": {"@@assign": ["100", "200", "300*"]},
                 "enforced_for": {"@@assign": ["ec2:instance"]},
                 "report_required_tag_for": {"@@assign": ["ec2:instance", "rds:db"]}},
  "project": {"tag_key": {"@@assign": "Project"}, "tag_value": {"@@assign": ["alpha", "beta"]}}}}"#;

/// The policy of the OU below it: takes a value away and makes Project required on buckets.
const OU_POLICY: &str = r#"{"tags": {
  "costcenter": {"tag_value": {"@@remove": ["200"]}},
  "project": {"report_required_tag_for": {"@@assign": ["s3:bucket"]}}}}"#;

/// What AWS's DescribeEffectivePolicy answers for an account in that OU: the two resolved,
/// plain values, no operators (written by hand from AWS's inheritance rules).
const EFFECTIVE: &str = r#"{"tags": {
  "costcenter": {"tag_key": "CostCenter", "tag_value": ["100", "300*"],
                 "enforced_for": ["ec2:instance"],
                 "report_required_tag_for": ["ec2:instance", "rds:db"]},
  "project": {"tag_key": "Project", "tag_value": ["alpha", "beta"],
              "report_required_tag_for": ["s3:bucket"]}}}"#;

/// An organization managed by a new account, with tag policies enabled: the root policy on the
/// root, the OU policy on an OU, and one policy attached nowhere. Returns the account, the
/// OU's id and the names of the three policies.
async fn organization() -> (String, String) {
    let account = unique_account();
    let config = config_in(&account, "us-east-1").await;
    let org = aws_sdk_organizations::Client::new(&config);
    org.create_organization()
        .feature_set(OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    let roots = org.list_roots().send().await.expect("ListRoots");
    let root = roots.roots()[0].id().unwrap().to_string();
    org.enable_policy_type()
        .root_id(&root)
        .policy_type(PolicyType::TagPolicy)
        .send()
        .await
        .expect("EnablePolicyType");
    let ou = org
        .create_organizational_unit()
        .parent_id(&root)
        .name("Workloads")
        .send()
        .await
        .expect("CreateOrganizationalUnit")
        .organizational_unit()
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    for (name, content, target) in [
        ("cost-tags", ROOT_POLICY, Some(root.as_str())),
        ("workload-tags", OU_POLICY, Some(ou.as_str())),
        ("draft-tags", OU_POLICY, None),
    ] {
        let id = org
            .create_policy()
            .name(name)
            .description("tagguard test")
            .r#type(PolicyType::TagPolicy)
            .content(content)
            .send()
            .await
            .expect("CreatePolicy")
            .policy()
            .unwrap()
            .policy_summary()
            .unwrap()
            .id()
            .unwrap()
            .to_string();
        if let Some(target) = target {
            org.attach_policy()
                .policy_id(&id)
                .target_id(target)
                .send()
                .await
                .expect("AttachPolicy");
        }
    }
    (account, ou)
}

/// A policy without its `version`, which names where it was read from.
fn rules_of(policy: &Value) -> Value {
    let mut policy = policy.clone();
    policy
        .as_object_mut()
        .expect("a policy object")
        .remove("version");
    policy
}

/// `tagguard policy import FILE` of `text`: the policy printed, as JSON.
fn import_file(text: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.json");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(["policy", "import", path.to_str().unwrap()])
        .output()
        .expect("tagguard runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON policy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_policies_are_imported_and_the_others_named() {
    let (account, _ou) = organization().await;
    let credentials = credentials_in(&account).await;
    let out = aws_cli(&moto(), &credentials)
        .args(["policy", "import", "--from-organization"])
        .output()
        .expect("tagguard runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let policy: Value = serde_json::from_slice(&out.stdout).expect("a JSON policy");
    assert_eq!(
        rules_of(&policy),
        rules_of(&import_file(ROOT_POLICY)),
        "{stderr}"
    );
    let version = policy["version"].as_str().unwrap();
    assert!(
        version.starts_with("aws-tag-policy:cost-tags (p-"),
        "{version}"
    );
    // The OU's and the unattached policies are not what every account inherits: said, and
    // how to get the policy of an account below the OU.
    assert!(
        stderr.contains("workload-tags") && stderr.contains("OU Workloads"),
        "{stderr}"
    );
    assert!(stderr.contains("--account"), "{stderr}");
    assert!(
        stderr.contains("draft-tags") && stderr.contains("attached nowhere"),
        "{stderr}"
    );
    // enforced_for is reported, not dropped.
    assert!(stderr.contains("enforced_for"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_effective_policy_is_imported_as_aws_computes_it() {
    let (account, _ou) = organization().await;
    let member = unique_account();
    let credentials = credentials_in(&account).await;
    let proxy = FaultProxy::start(&[]);
    let effective = json!({"EffectivePolicy": {
        "PolicyContent": EFFECTIVE,
        "LastUpdatedTimestamp": 1.7e9,
        "TargetId": member,
        "PolicyType": "TAG_POLICY"}});
    let elsewhere = unique_account();
    proxy
        .configure(json!({"answers": [
            {"target": "AWSOrganizationsV20161128.DescribeEffectivePolicy",
             "body_contains": member, "body": effective},
            {"target": "AWSOrganizationsV20161128.DescribeEffectivePolicy",
             "body_contains": elsewhere, "error": "EffectivePolicyNotFoundException",
             "message": "No effective policy of type TAG_POLICY found for the target."},
        ]}))
        .await;

    let out = aws_cli(&proxy.url, &credentials)
        .args([
            "policy",
            "import",
            "--from-organization",
            "--account",
            &member,
        ])
        .output()
        .expect("tagguard runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let policy: Value = serde_json::from_slice(&out.stdout).expect("a JSON policy");
    // AWS's resolution (the answer) and tagguard's own of the chain agree.
    let chain = format!("[{ROOT_POLICY}, {OU_POLICY}]");
    assert_eq!(rules_of(&policy), rules_of(&import_file(&chain)));
    assert_eq!(rules_of(&policy), rules_of(&import_file(EFFECTIVE)));
    assert_eq!(
        policy["version"],
        json!(format!(
            "aws-tag-policy:the effective tag policy of account {member}"
        ))
    );
    let cost_center = policy["required_tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "CostCenter")
        .expect("CostCenter is required");
    assert_eq!(cost_center["allowed_values"], json!(["100", "300*"]));

    let out = aws_cli(&proxy.url, &credentials)
        .args([
            "policy",
            "import",
            "--from-organization",
            "--account",
            &elsewhere,
        ])
        .output()
        .expect("tagguard runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("no tag policy is in force on account {elsewhere}")),
        "{stderr}"
    );
    let answered = proxy.faults().await;
    assert_eq!(
        answered["answered"]["AWSOrganizationsV20161128.DescribeEffectivePolicy"],
        json!(2),
        "{answered}"
    );

    let out = aws_cli(&proxy.url, &credentials)
        .args([
            "policy",
            "import",
            "--from-organization",
            "--account",
            "12345",
        ])
        .output()
        .expect("tagguard runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'12345' is not an AWS account id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_outside_any_organization_is_told_so() {
    let credentials = credentials_in(&unique_account()).await;
    let out = aws_cli(&moto(), &credentials)
        .args(["policy", "import", "--from-organization"])
        .output()
        .expect("tagguard runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not a member of an organization"),
        "{stderr}"
    );
    assert!(stderr.contains("organizations:ListRoots"), "{stderr}");
    // No credential in what is said.
    assert!(
        !stderr.contains(credentials.secret_access_key()),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_reads_the_organization_when_the_server_reads_aws() {
    let (account, _ou) = organization().await;
    let config = config_in(&account, "us-east-1").await;
    let policy = support::policy();
    let source = support::estate(10, 1, &policy);
    let registry = ToolRegistry::standard();
    let tool = registry.get("import_aws_tag_policy").expect("the tool");

    let without = support::tool_env(source.clone(), &policy, None).await;
    let refused = tool
        .call(
            &without,
            &CallContext::default(),
            json!({"from_organization": true}),
        )
        .await
        .expect_err("a server that does not read AWS cannot read Organizations");
    assert!(
        matches!(&refused, ToolError::InvalidInput(m) if m.contains("--source aws")),
        "{refused:?}"
    );

    let env = support::tool_env(source, &policy, None)
        .await
        .with_tag_policies(Arc::new(TagPolicyReader::new(&config)));
    let answer = tool
        .call(
            &env,
            &CallContext::default(),
            json!({"from_organization": true}),
        )
        .await
        .expect("the organization's root policy")
        .structured;
    assert_eq!(
        rules_of(&answer["policy"]),
        rules_of(&import_file(ROOT_POLICY))
    );
    let notes = answer["notes"].to_string();
    assert!(notes.contains("workload-tags"), "{notes}");

    let both = tool
        .call(
            &env,
            &CallContext::default(),
            json!({"from_organization": true, "policy": {"tags": {}}}),
        )
        .await
        .expect_err("one source at a time");
    assert!(matches!(both, ToolError::InvalidInput(_)), "{both:?}");
}
