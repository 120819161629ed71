//! The Cloud Custodian export checked with Cloud Custodian itself (`c7n` from PyPI, which
//! `scripts/test.sh` installs into `.venv`): `custodian validate` accepts what `tagguard policy
//! export --custodian` writes, Custodian's own resource metadata agrees with tagguard's table of
//! its resources, and `custodian run` against moto flags exactly the resources tagguard's own
//! scan finds non-compliant, under policies that use every kind of rule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tagguard::domain::{ResourceType, Tag};
use tagguard::policy::export::{ArnSource, CUSTODIAN_RESOURCES};

use super::aws_moto::{
    Created, NATIVE_TYPES, REGIONS, config_in, create_bucket, create_cluster, create_db,
    create_function, create_instance, create_service, credentials_in, lambda_role, moto,
    reaching_aws, scan_cli_at, unique_account,
};

/// The `custodian` command: `TAGGUARD_TEST_CUSTODIAN`, set by `scripts/test.sh`. Without it
/// the test fails loudly.
fn custodian() -> PathBuf {
    let path = std::env::var("TAGGUARD_TEST_CUSTODIAN").expect(
        "TAGGUARD_TEST_CUSTODIAN is not set: the Custodian tests need the c7n that scripts/test.sh installs into .venv; run the suite with scripts/test.sh",
    );
    PathBuf::from(path)
}

/// `custodian` at the lowest CPU priority: `validate` takes about a second a policy of CPU,
/// and the tests beside it that time an answer must not wait on it.
fn custodian_command() -> Command {
    let mut command = Command::new("nice");
    command.args(["-n", "19"]).arg(custodian());
    command
}

/// The Python beside `custodian`, which has c7n.
fn custodian_python() -> PathBuf {
    custodian().with_file_name("python")
}

/// `tagguard policy export --custodian` with `args`; the YAML file it wrote and its notes.
fn export(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, String) {
    let out_file = dir.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(["policy", "export", "--custodian", "--out"])
        .arg(&out_file)
        .args(args)
        .env_remove("TAGGUARD_POLICY")
        .output()
        .expect("tagguard runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    (out_file, stderr)
}

/// An AWS tag policy chain (as in `cli.rs`): CostCenter required on instances and databases
/// with exact case and wildcard values, checked wherever present; Project checked where
/// present.
const AWS_CHAIN: &str = r#"[
  {"tags": {
    "costcenter": {"tag_key": {"@@assign": "CostCenter"},
                   "tag_value": {"@@assign": ["100", "200", "300*"]},
                   "report_required_tag_for": {"@@assign": ["ec2:instance", "rds:db"]}},
    "project": {"tag_key": {"@@assign": "Project"}, "tag_value": {"@@assign": ["alpha", "beta"]}}}},
  {"tags": {"costcenter": {"tag_value": {"@@remove": ["200"]}}}}
]"#;

/// A policy with every feature the export translates: aliases, wildcards, a regex with `$`,
/// an inline flag before `|`, Unicode `\w`, a negated class ignoring case, exact case on a tag checked everywhere, optional
/// tags of severity error (one with values whose case folds differently in Python), ARN
/// exemptions (one active, one lapsed) and an exemption tag; `{ec2}` is replaced with an
/// instance's ARN.
const FEATURES: &str = r#"{
  "version": "features-1",
  "required_tags": [
    {"name": "CostCenter", "allowed_values": ["100", "300*"], "wildcard_values": true,
     "aliases": ["cost-center"]},
    {"name": "Owner", "validation_regex": "^[a-z]+@example\\.com$",
     "applies_to": ["ec2:instance", "lambda:function"]},
    {"name": "Team", "allowed_values": ["Data", "Web"], "exact_case": true,
     "applies_to": ["s3:bucket"], "checked_everywhere": true},
    {"name": "Tier", "validation_regex": "^web-(?i)front$|^back$", "applies_to": ["rds:db"]},
    {"name": "App", "validation_regex": "^\\w+$", "applies_to": ["ecs:service"]},
    {"name": "Code", "validation_regex": "^[^A-Z]+$", "applies_to": ["lambda:function"]}
  ],
  "optional_tags": [
    {"name": "Stage", "allowed_values": ["prod", "dev"], "severity": "error"},
    {"name": "Dept", "allowed_values": ["Πωλήσεις", "teſt"], "severity": "error"}
  ],
  "tag_naming_rules": {"case_sensitivity": false},
  "exemptions": [
    {"arn_pattern": "{ec2}", "reason": "being retired", "expires": "2999-01-01"},
    {"arn_pattern": "arn:aws:s3:::legacy-*", "reason": "old logs", "expires": "2999-01-01"},
    {"arn_pattern": "arn:aws:rds:eu-west-1:*:db:legacy-*", "reason": "migrating", "expires": "2999-01-01"},
    {"arn_pattern": "arn:aws:lambda:*:*:function:legacy-?n*", "reason": "old", "expires": "2999-01-01"},
    {"arn_pattern": "arn:aws:ecs:*:*:service/*", "reason": "lapsed long ago", "expires": "2020-01-01"}
  ],
  "exemption_tag": "TagguardExempt"
}"#;

/// The features policy (exempting the instance `ec2`) and the tagguard policy `tagguard policy
/// import` makes of the AWS chain, written in `dir`.
fn policy_files(dir: &Path, ec2: &str) -> (PathBuf, PathBuf) {
    let features = dir.join("features.json");
    std::fs::write(&features, FEATURES.replace("{ec2}", ec2)).unwrap();
    let chain = dir.join("chain.json");
    std::fs::write(&chain, AWS_CHAIN).unwrap();
    let imported = dir.join("imported.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(["policy", "import"])
        .arg(&chain)
        .arg("--out")
        .arg(&imported)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (features, imported)
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
}

/// Tag sets that exercise each rule of the three policies, compliant and not.
fn tag_sets() -> Vec<Vec<Tag>> {
    let good = [
        ("CostCenter", "Engineering"),
        ("Owner", "ann@example.com"),
        ("Environment", "production"),
        ("Application", "checkout"),
    ];
    vec![
        tags(&good),
        tags(&[
            ("CostCenter", "100"),
            ("Owner", "ann@example.com"),
            ("Team", "Data"),
            ("Stage", "prod"),
        ]),
        tags(&[
            ("CostCenter", "3001"),
            ("Owner", "bob@example.com"),
            ("Team", "Web"),
        ]),
        tags(&[
            ("cost-center", "100"),
            ("Owner", "ann@example.com"),
            ("Team", "Data"),
        ]),
        tags(&[
            ("cost-center", "999"),
            ("Owner", "ann@example.com"),
            ("Team", "Data"),
        ]),
        tags(&[
            ("costcenter", "100"),
            ("OWNER", "ANN@EXAMPLE.COM"),
            ("Team", "Data"),
        ]),
        tags(&[
            ("CostCenter", "100"),
            ("Owner", "ann@example.com"),
            ("team", "Data"),
        ]),
        tags(&[
            ("CostCenter", "100"),
            ("Owner", "ann@example.com"),
            ("Team", "data"),
        ]),
        tags(&[
            ("CostCenter", "100"),
            ("Owner", "ann@example.com"),
            ("Team", "Web"),
            ("Stage", "Prod"),
        ]),
        tags(&[
            ("CostCenter", "100"),
            ("Owner", "ann@example.com"),
            ("Team", "Web"),
            ("Stage", "qa"),
        ]),
        tags(&[("CostCenter", ""), ("Owner", "  "), ("Team", "Data")]),
        tags(&[
            ("CostCenter", "100"),
            ("Owner", "ann@example.com.evil"),
            ("Team", "Data"),
        ]),
        tags(&[("TagguardExempt", "2999-12-31 migrating")]),
        tags(&[("TagguardExempt", "2020-01-01 lapsed")]),
        tags(&[("TagguardExempt", "2999-12-31 -")]),
        tags(&[("TagguardExempt", "soon")]),
        tags(&[
            ("CostCenter", "999"),
            ("costcenter", "100"),
            ("Owner", "ann@example.com"),
        ]),
        tags(&[
            ("CostCenter", "100"),
            ("costcenter", "999"),
            ("Owner", "ann@example.com"),
            ("Team", "Web"),
        ]),
        tags(&[("Project", "gamma"), ("CostCenter", "300")]),
        tags(&[("project", "alpha"), ("CostCenter", "100")]),
        tags(&[
            ("Environment", "Production"),
            ("Application", "Checkout App"),
            ("CostCenter", "sales"),
            ("Owner", "x@y.io"),
        ]),
        // Where Python's regex engine, left to itself, would judge otherwise.
        tags(&[
            ("Owner", "yılmaz@example.com"),
            ("Tier", "web-FRONT"),
            ("App", "हिन्दी"),
            ("Dept", "ΠΩΛΉΣΕΙΣ"),
            ("Code", "prod"),
        ]),
        tags(&[
            ("Owner", "ann@example.com"),
            ("Tier", "BACK"),
            ("App", "m²"),
            ("Dept", "πωλήσεις"),
            ("Code", "PROD"),
        ]),
        tags(&[
            ("Owner", "ann@example.com"),
            ("Tier", "Web-front"),
            ("App", "cafe\u{301}"),
            ("Dept", "TEST"),
            ("Code", "\u{212a}9"),
        ]),
        // The exemption tag's last day is today (it holds) or yesterday (it has lapsed), in UTC.
        vec![Tag::new(
            "TagguardExempt",
            format!("{} ends today", utc_day(0)),
        )],
        vec![Tag::new(
            "TagguardExempt",
            format!("{} ended yesterday", utc_day(-1)),
        )],
        Vec::new(),
    ]
}

/// Today's date in UTC, moved by `days`, as `YYYY-MM-DD`.
fn utc_day(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// Every tag set on each of the five types in `region`, plus one untagged resource of each
/// type named `legacy-…` (or, for instances, whose ARN the features policy exempts).
async fn create_estate(account: &str, region: &str) -> Vec<Created> {
    let config = config_in(account, region).await;
    let role = lambda_role(&config, &format!("custodian-{region}")).await;
    create_cluster(&config, "web").await;
    let mut created = Vec::new();
    let sets = tag_sets();
    let legacy = sets.len();
    for (k, set) in sets.iter().chain([&Vec::new()]).enumerate() {
        let prefix = if k == legacy { "legacy-" } else { "" };
        created.push(create_instance(&config, account, region, set).await);
        created.push(create_db(&config, region, &format!("{prefix}db-{k}"), set).await);
        let bucket = format!("{prefix}b-{account}-{region}-{k}");
        // moto leaves a blank value out of GetBucketTagging's XML (AWS writes
        // `<Value></Value>`), and boto3 then gives Custodian a tag without a value while the
        // Rust SDK reads an empty one: blank values are tested on the other four types only.
        let bucket_set: Vec<Tag> = set
            .iter()
            .filter(|t| !t.value.trim().is_empty())
            .cloned()
            .collect();
        created.push(create_bucket(&config, region, &bucket, &bucket_set).await);
        let function = format!("{prefix}fn-{k}");
        created.push(create_function(&config, region, &function, &role, set).await);
        let service = format!("{prefix}svc-{k}");
        created.push(create_service(&config, region, "web", &service, set).await);
    }
    created
}

/// The ARNs tagguard's own scan of the account finds non-compliant under `policy`.
fn tagguard_flags(
    credentials: &aws_credential_types::Credentials,
    policy: &Path,
) -> BTreeSet<String> {
    let regions = REGIONS.join(",");
    let (_, json, stderr) = scan_cli_at(
        &moto(),
        credentials,
        &[
            "--regions",
            &regions,
            "--resource-types",
            NATIVE_TYPES,
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(json["partial"], json!(false), "{stderr}");
    json["tally"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["severity"] == "error")
        .map(|v| v["resource_arn"].as_str().unwrap().to_string())
        .collect()
}

/// The ARNs `custodian run` flags with the policies of `file` (named `{prefix}…`) in both
/// regions, each resource's ARN read the way AWS writes it (not through tagguard's table).
fn custodian_flags(
    credentials: &aws_credential_types::Credentials,
    account: &str,
    file: &Path,
    prefix: &str,
    out_dir: &Path,
) -> BTreeSet<String> {
    let mut command = custodian_command();
    command
        .args(["run", "--dryrun", "-s"])
        .arg(out_dir)
        .args(REGIONS.iter().flat_map(|r| ["-r", r]))
        .arg(file)
        .env("TZ", "UTC");
    let out = reaching_aws(&mut command, &moto(), credentials)
        .output()
        .expect("custodian runs");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "custodian run failed: {log}");
    let mut arns = BTreeSet::new();
    for region in REGIONS {
        for entry in std::fs::read_dir(out_dir.join(region)).expect("custodian's output") {
            let dir = entry.unwrap().path();
            let resources: Vec<Value> =
                serde_json::from_slice(&std::fs::read(dir.join("resources.json")).unwrap())
                    .unwrap();
            let policy = dir.file_name().unwrap().to_string_lossy().to_string();
            let resource = policy
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("a policy tagguard did not write: {policy}"));
            for r in resources {
                let text = |k: &str| {
                    r[k].as_str()
                        .unwrap_or_else(|| panic!("{k} in {r}"))
                        .to_string()
                };
                arns.insert(match resource {
                    "ec2" => format!(
                        "arn:aws:ec2:{region}:{account}:instance/{}",
                        text("InstanceId")
                    ),
                    "rds" => text("DBInstanceArn"),
                    "s3" => format!("arn:aws:s3:::{}", text("Name")),
                    "lambda" => text("FunctionArn"),
                    "ecs-service" => text("serviceArn"),
                    other => panic!("a policy tagguard did not write: {other}"),
                });
            }
        }
    }
    arns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custodian_flags_exactly_what_tagguard_flags() {
    let account = unique_account();
    let mut created = Vec::new();
    for region in REGIONS {
        created.extend(create_estate(&account, region).await);
    }
    let all: BTreeSet<String> = created.iter().map(|c| c.arn.clone()).collect();
    let credentials = credentials_in(&account).await;
    let dir = tempfile::tempdir().unwrap();

    // The features policy exempts the legacy instance of us-east-1 by its ARN.
    let legacy_instance = created
        .iter()
        .rfind(|c| c.resource_type == ResourceType::Ec2Instance && c.region == REGIONS[0])
        .unwrap()
        .arn
        .clone();
    let (features, imported) = policy_files(dir.path(), &legacy_instance);
    let builtin = dir.path().join("builtin.json");
    let shown = Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(["policy", "show"])
        .env_remove("TAGGUARD_POLICY")
        .output()
        .unwrap();
    std::fs::write(&builtin, &shown.stdout).unwrap();

    for (name, policy) in [
        ("builtin", &builtin),
        ("aws", &imported),
        ("features", &features),
    ] {
        let expected = tagguard_flags(&credentials, policy);
        let (yaml, notes) = export(
            dir.path(),
            &format!("{name}.yml"),
            &[
                "--policy",
                policy.to_str().unwrap(),
                "--types",
                NATIVE_TYPES,
                "--name-prefix",
                &format!("{name}-t"),
            ],
        );
        assert!(!notes.contains("cannot express"), "{name}: {notes}");
        let flagged = custodian_flags(
            &credentials,
            &account,
            &yaml,
            &format!("{name}-t-"),
            &dir.path().join(name),
        );
        let missed: Vec<&String> = expected.difference(&flagged).collect();
        let extra: Vec<&String> = flagged.difference(&expected).collect();
        assert!(
            missed.is_empty() && extra.is_empty(),
            "{name}: Custodian missed {missed:#?} and flagged beyond tagguard {extra:#?}"
        );
        // Neither everything nor nothing: the comparison can tell policies apart.
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "{name}: {}",
            expected.len()
        );
        if name == "features" {
            // What the exemptions spare is not flagged; a lapsed exemption spares nothing.
            assert!(!flagged.contains(&legacy_instance));
            assert!(!flagged.iter().any(|a| a.contains(":::legacy-")));
            assert!(
                flagged
                    .iter()
                    .any(|a| a.contains(":service/web/legacy-svc")),
                "{flagged:#?}"
            );
            // Today's exemption holds, yesterday's does not.
            let today = tag_sets().len() - 3;
            let db = |k: usize| format!(":db:db-{k}");
            assert!(
                !flagged.iter().any(|a| a.ends_with(&db(today))),
                "{flagged:#?}"
            );
            assert!(
                flagged.iter().any(|a| a.ends_with(&db(today + 1))),
                "{flagged:#?}"
            );
        }
    }
}

#[test]
fn custodian_validates_every_export() {
    let dir = tempfile::tempdir().unwrap();
    let (features, imported) = policy_files(
        dir.path(),
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
    );
    // Every resource of the table (the built-in policy covers them all), and the two
    // policies above with their exemptions, aliases and exact case on the five types
    // (`custodian validate` takes about a second a policy, more for the larger ones).
    let (all, notes) = export(dir.path(), "builtin.yml", &[]);
    assert!(notes.contains("50 Custodian resources"), "{notes}");
    let only = ["--types", NATIVE_TYPES, "--policy"];
    let (aws, _) = export(
        dir.path(),
        "aws.yml",
        &[
            &only[..],
            &[imported.to_str().unwrap(), "--name-prefix", "aws"],
        ]
        .concat(),
    );
    let (feat, _) = export(
        dir.path(),
        "features.yml",
        &[
            &only[..],
            &[features.to_str().unwrap(), "--name-prefix", "feat"],
        ]
        .concat(),
    );
    let out = custodian_command()
        .arg("validate")
        .args([&all, &aws, &feat])
        .output()
        .expect("custodian runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "custodian validate: {log}");
    assert_eq!(log.matches("Configuration valid").count(), 3, "{log}");

    // A broken policy is refused: the check can fail.
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&feat)
            .unwrap()
            .replacen("aws.s3", "aws.s4", 1),
    )
    .unwrap();
    let out = custodian_command()
        .arg("validate")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Custodian's own metadata of each resource in tagguard's table: it exists, creates the type
/// tagguard says (by its CloudFormation type), and its ARN as Custodian computes it is the
/// one tagguard's expression builds.
#[test]
fn the_table_agrees_with_custodians_own_metadata() {
    let rows: Vec<Value> = CUSTODIAN_RESOURCES
        .iter()
        .map(|r| json!({"resource": r.resource, "arn_expression": r.arn_expression()}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rows.json");
    std::fs::write(&input, serde_json::to_vec(&rows).unwrap()).unwrap();
    let out = Command::new(custodian_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/custodian_table.py"
        ))
        .arg(&input)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said.len(), CUSTODIAN_RESOURCES.len());
    for (row, said) in CUSTODIAN_RESOURCES.iter().zip(&said) {
        assert_eq!(
            said["exists"],
            json!(true),
            "aws.{} is not a Custodian resource",
            row.resource
        );
        if let Some(cfn) = said["cfn_type"].as_str() {
            assert_eq!(
                ResourceType::from_cloudformation(cfn)
                    .map(|t| t.to_string())
                    .as_deref(),
                Some(row.resource_type),
                "aws.{} creates {cfn}",
                row.resource
            );
        }
        if row.resource == "log-group" {
            // Custodian drops the ':*' its field ends with; tagguard builds the same ARN from
            // the name, as the tagging API writes it.
            assert_eq!(
                row.arn,
                ArnSource::Built(
                    "arn:{partition}:logs:{region}:{account_id}:log-group:",
                    "logGroupName"
                )
            );
            continue;
        }
        let agrees = said["arns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["custodian"] == p["tagguard"] && p["tagguard"].is_string());
        assert!(agrees, "aws.{}: {}", row.resource, said["arns"]);
    }
}
