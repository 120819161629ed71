//! The AWS source against a real AWS API emulator (the moto server that `scripts/test.sh`
//! installs and starts): estates are created through the Rust SDK, and `tagguard scan --source
//! aws` must find exactly what was created, across regions and accounts.
//!
//! Each test works in accounts of its own (moto gives every account its own state, and the keys
//! `AssumeRole` returns act in the role's account), so tests run in parallel on one server.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use serde_json::Value;
use tagguard::domain::{ResourceType, Severity, Tag};
use tagguard::policy::default_policy;

pub(crate) const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// The five types with native listers: scans limited to them see exactly what the tests create.
pub(crate) const NATIVE_TYPES: &str = "ec2:instance,rds:db,s3:bucket,lambda:function,ecs:service";

/// The emulator's address, set by `scripts/test.sh`. Without it the test fails loudly.
pub(crate) fn moto() -> String {
    std::env::var("TAGGUARD_TEST_MOTO").expect(
        "TAGGUARD_TEST_MOTO is not set: the AWS tests need the moto server that scripts/test.sh installs and starts; run the suite with scripts/test.sh",
    )
}

/// A fresh 12-digit account id per call, unique within the run.
pub(crate) fn unique_account() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() as u64 % 100_000;
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 1_000;
    format!("7{pid:05}{time:03}{n:03}")
}

/// Credentials acting in `account` (moto maps `AssumeRole` keys to the role's account).
pub(crate) async fn credentials_in(account: &str) -> Credentials {
    let base = base_config().await;
    let out = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("tests")
        .send()
        .await
        .expect("AssumeRole on moto");
    let c = out.credentials().expect("credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "moto-assumed",
    )
}

async fn base_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

pub(crate) async fn config_in(account: &str, region: &str) -> SdkConfig {
    base_config()
        .await
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(
            credentials_in(account).await,
        ))
        .region(Region::new(region.to_string()))
        .build()
}

/// What was created: enough to predict what the scan must report.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub arn: String,
    pub resource_type: ResourceType,
    pub region: String,
    pub tags: Vec<Tag>,
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
}

/// Tag sets cycled through the estate: compliant, missing tags, invalid values, case-only
/// differences (warnings), and nothing at all.
fn tag_sets(is_bucket: bool) -> Vec<Vec<Tag>> {
    let good = if is_bucket {
        tags(&[("CostCenter", "Finance"), ("Owner", "data@example.com")])
    } else {
        tags(&[
            ("CostCenter", "Engineering"),
            ("Owner", "team@example.com"),
            ("Environment", "production"),
            ("Application", "checkout"),
        ])
    };
    vec![
        good,
        tags(&[("CostCenter", "Sales")]),
        tags(&[
            ("CostCenter", "Engineering"),
            ("Owner", "not-an-email"),
            ("Environment", "prod"),
            ("Application", "Checkout App"),
        ]),
        tags(&[
            ("costcenter", "engineering"),
            ("Owner", "ops@example.com"),
            ("Environment", "Production"),
            ("Application", "billing"),
        ]),
        Vec::new(),
    ]
}

/// Creates `per_type` resources of each of the five types in `region` of the account of
/// `config`, and returns them.
pub(crate) async fn create_estate(
    config: &SdkConfig,
    account: &str,
    region: &str,
    per_type: usize,
) -> Vec<Created> {
    let compute_sets = tag_sets(false);
    let bucket_sets = tag_sets(true);
    let mut created = Vec::new();
    for i in 0..per_type {
        let set = &compute_sets[i % compute_sets.len()];
        created.push(create_instance(config, account, region, set).await);
    }
    for i in 0..per_type {
        let set = &compute_sets[(i + 1) % compute_sets.len()];
        created.push(create_db(config, region, &format!("orders-{region}-{i}"), set).await);
    }
    for i in 0..per_type {
        let set = &bucket_sets[(i + 2) % bucket_sets.len()];
        let name = format!("logs-{account}-{region}-{i}");
        created.push(create_bucket(config, region, &name, set).await);
    }
    let role = lambda_role(config, &format!("lambda-exec-{region}")).await;
    for i in 0..per_type {
        let set = &compute_sets[(i + 3) % compute_sets.len()];
        created.push(create_function(config, region, &format!("resize-{i}"), &role, set).await);
    }
    create_cluster(config, "web").await;
    for i in 0..per_type {
        let set = &compute_sets[(i + 4) % compute_sets.len()];
        created.push(create_service(config, region, "web", &format!("api-{i}"), set).await);
    }
    created
}

/// An EC2 instance tagged `set`.
pub(crate) async fn create_instance(
    config: &SdkConfig,
    account: &str,
    region: &str,
    set: &[Tag],
) -> Created {
    let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Instance);
    for t in set {
        spec = spec.tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build(),
        );
    }
    let mut run = aws_sdk_ec2::Client::new(config)
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1);
    if !set.is_empty() {
        run = run.tag_specifications(spec.build());
    }
    let out = run.send().await.expect("RunInstances");
    let id = out.instances()[0].instance_id().unwrap().to_string();
    Created {
        arn: format!("arn:aws:ec2:{region}:{account}:instance/{id}"),
        resource_type: ResourceType::Ec2Instance,
        region: region.into(),
        tags: set.to_vec(),
    }
}

/// An S3 bucket `name` in `region`, tagged `set`.
pub(crate) async fn create_bucket(
    config: &SdkConfig,
    region: &str,
    name: &str,
    set: &[Tag],
) -> Created {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    let mut create = s3.create_bucket().bucket(name);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    create.send().await.expect("CreateBucket");
    if !set.is_empty() {
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .set_tag_set(Some(
                set.iter()
                    .map(|t| {
                        aws_sdk_s3::types::Tag::builder()
                            .key(&t.key)
                            .value(&t.value)
                            .build()
                            .unwrap()
                    })
                    .collect(),
            ))
            .build()
            .unwrap();
        s3.put_bucket_tagging()
            .bucket(name)
            .tagging(tagging)
            .send()
            .await
            .expect("PutBucketTagging");
    }
    Created {
        arn: format!("arn:aws:s3:::{name}"),
        resource_type: ResourceType::S3Bucket,
        region: region.into(),
        tags: set.to_vec(),
    }
}

pub(crate) async fn create_db(config: &SdkConfig, region: &str, id: &str, set: &[Tag]) -> Created {
    let mut create = aws_sdk_rds::Client::new(config)
        .create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("admin")
        .master_user_password("password123")
        .allocated_storage(20);
    for t in set {
        create = create.tags(
            aws_sdk_rds::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build(),
        );
    }
    let out = create.send().await.expect("CreateDBInstance");
    Created {
        arn: out
            .db_instance()
            .unwrap()
            .db_instance_arn()
            .unwrap()
            .to_string(),
        resource_type: ResourceType::RdsDb,
        region: region.into(),
        tags: set.to_vec(),
    }
}

/// An execution role for functions (moto requires it to exist in the account).
pub(crate) async fn lambda_role(config: &SdkConfig, name: &str) -> String {
    let role = aws_sdk_iam::Client::new(config)
        .create_role()
        .role_name(name)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .expect("CreateRole");
    role.role().unwrap().arn().to_string()
}

pub(crate) async fn create_function(
    config: &SdkConfig,
    region: &str,
    name: &str,
    role: &str,
    set: &[Tag],
) -> Created {
    let mut create = aws_sdk_lambda::Client::new(config)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(role)
        .handler("app.handler")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(
                    b"not really a zip".to_vec(),
                ))
                .build(),
        );
    for t in set {
        create = create.tags(&t.key, &t.value);
    }
    let out = create.send().await.expect("CreateFunction");
    Created {
        arn: out.function_arn().unwrap().to_string(),
        resource_type: ResourceType::LambdaFunction,
        region: region.into(),
        tags: set.to_vec(),
    }
}

pub(crate) async fn create_cluster(config: &SdkConfig, name: &str) {
    aws_sdk_ecs::Client::new(config)
        .create_cluster()
        .cluster_name(name)
        .send()
        .await
        .expect("CreateCluster");
}

pub(crate) async fn create_service(
    config: &SdkConfig,
    region: &str,
    cluster: &str,
    name: &str,
    set: &[Tag],
) -> Created {
    let mut create = aws_sdk_ecs::Client::new(config)
        .create_service()
        .cluster(cluster)
        .service_name(name)
        .desired_count(0);
    for t in set {
        create = create.tags(
            aws_sdk_ecs::types::Tag::builder()
                .key(&t.key)
                .value(&t.value)
                .build(),
        );
    }
    let out = create.send().await.expect("CreateService");
    Created {
        arn: out.service().unwrap().service_arn().unwrap().to_string(),
        resource_type: ResourceType::EcsService,
        region: region.into(),
        tags: set.to_vec(),
    }
}

type Key = (String, String, String, String);

/// What the built-in policy says of what was created: violations and per-type counts.
pub(crate) fn expected(created: &[Created]) -> (BTreeSet<Key>, BTreeMap<String, (u64, u64)>) {
    let policy = default_policy();
    let mut violations = BTreeSet::new();
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in created {
        let findings = policy.validate(&c.resource_type, &c.tags);
        let entry = counts.entry(c.resource_type.to_string()).or_default();
        entry.0 += 1;
        if !findings.iter().any(|f| f.severity == Severity::Error) {
            entry.1 += 1;
        }
        for f in findings {
            violations.insert((
                c.arn.clone(),
                f.violation_type.to_string(),
                f.tag_name.to_string(),
                f.severity.to_string(),
            ));
        }
    }
    (violations, counts)
}

/// Runs `tagguard scan --source aws` against moto with the given credentials.
fn scan_cli(credentials: &Credentials, args: &[&str]) -> (Option<i32>, Value, String) {
    scan_cli_at(&moto(), credentials, args)
}

/// Runs `tagguard scan --source aws` against the AWS endpoint `endpoint` (moto, or a proxy in
/// front of it).
pub(crate) fn scan_cli_at(
    endpoint: &str,
    credentials: &Credentials,
    args: &[&str],
) -> (Option<i32>, Value, String) {
    let mut command = aws_cli(endpoint, credentials);
    command
        .env("TAGGUARD_DATA_DIR", crate::support::data_dir())
        .args([
            "scan",
            "--source",
            "aws",
            "--format",
            "json",
            "--no-progress",
        ])
        .args(args);
    let out = command.output().expect("tagguard runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON on stdout ({e}); stderr: {stderr}"));
    (out.status.code(), json, stderr)
}

/// The tagguard binary reaching AWS at `endpoint` (moto, or a proxy in front of it) with
/// `credentials` only: no profile, config file or instance metadata of the machine.
pub(crate) fn aws_cli(endpoint: &str, credentials: &Credentials) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagguard"));
    reaching_aws(&mut command, endpoint, credentials)
        .env_remove("TAGGUARD_POLICY")
        .env_remove("TAGGUARD_CONFIG");
    command
}

/// `command` (tagguard, or another AWS client such as Custodian) reaching AWS at `endpoint`
/// in us-east-1 with `credentials` only: no profile, config file or instance metadata.
pub(crate) fn reaching_aws<'c>(
    command: &'c mut Command,
    endpoint: &str,
    credentials: &Credentials,
) -> &'c mut Command {
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE");
    match credentials.session_token() {
        Some(token) => command.env("AWS_SESSION_TOKEN", token),
        None => command.env_remove("AWS_SESSION_TOKEN"),
    }
}

pub(crate) fn found(json: &Value) -> (BTreeSet<Key>, BTreeMap<String, (u64, u64)>) {
    let violations = json["tally"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["resource_arn"].as_str().unwrap().to_string(),
                v["violation_type"].as_str().unwrap().to_string(),
                v["tag_name"].as_str().unwrap().to_string(),
                v["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let counts = json["tally"]["by_resource_type"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(t, c)| {
            (
                t.clone(),
                (
                    c["total"].as_u64().unwrap(),
                    c["compliant"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    (violations, counts)
}

/// The scan found exactly what was created: no issue, the same per-type counts and violations.
pub(crate) fn assert_exact(json: &Value, created: &[Created]) {
    assert_eq!(
        json["tally"]["issues"].as_array().unwrap().len(),
        0,
        "{}",
        json["tally"]["issues"]
    );
    let (want_violations, want_counts) = expected(created);
    let (got_violations, got_counts) = found(json);
    assert_eq!(got_counts, want_counts);
    assert_eq!(got_violations, want_violations);
}

pub(crate) fn caller_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "tests")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_finds_exactly_what_was_created_in_two_regions() {
    let account = unique_account();
    let mut created = Vec::new();
    for region in REGIONS {
        let config = config_in(&account, region).await;
        created.extend(create_estate(&config, &account, region, 7).await);
    }

    let (code, json, stderr) = scan_cli(
        &caller_credentials(),
        &[
            "--accounts",
            &account,
            "--regions",
            "us-east-1,eu-west-1",
            "--resource-types",
            NATIVE_TYPES,
        ],
    );
    assert_eq!(code, Some(1), "non-compliant estate; stderr: {stderr}");
    assert_exact(&json, &created);

    // Every resource is placed in the region it was created in, buckets included.
    let regions: BTreeMap<&str, &str> = created
        .iter()
        .map(|c| (c.arn.as_str(), c.region.as_str()))
        .collect();
    for v in json["tally"]["violations"].as_array().unwrap() {
        let arn = v["resource_arn"].as_str().unwrap();
        assert_eq!(v["region"].as_str().unwrap(), regions[arn], "{arn}");
        assert_eq!(v["account_id"].as_str().unwrap(), account);
    }

    // Tags come in bulk: no call per bucket or function for tags.
    let calls = json["api_calls"]
        .as_object()
        .expect("api_calls in the result");
    for per_resource in ["s3:GetBucketTagging", "lambda:ListTags"] {
        assert!(
            !calls.contains_key(per_resource),
            "{per_resource} was called: {calls:?}"
        );
    }
    assert!(calls.contains_key("tag:GetResources"), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_accounts_are_reached_by_assume_role() {
    let management = unique_account();
    let management_config = config_in(&management, "us-east-1").await;
    let org = aws_sdk_organizations::Client::new(&management_config);
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    let mut members = Vec::new();
    for i in 0..2 {
        let out = org
            .create_account()
            .email(format!("member{i}-{management}@example.com"))
            .account_name(format!("member-{i}"))
            .send()
            .await
            .expect("CreateAccount");
        let status = out.create_account_status().unwrap();
        members.push(
            status
                .account_id()
                .expect("moto creates accounts at once")
                .to_string(),
        );
    }
    let mut created = Vec::new();
    for member in &members {
        let config = config_in(member, "us-east-1").await;
        created.extend(create_estate(&config, member, "us-east-1", 3).await);
    }

    let (code, json, stderr) = scan_cli(
        &credentials_in(&management).await,
        &[
            "--accounts",
            "organization",
            "--regions",
            "us-east-1",
            "--resource-types",
            NATIVE_TYPES,
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_exact(&json, &created);
    let accounts: BTreeSet<&str> = json["tally"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, members.iter().map(String::as_str).collect());
    assert!(calls_of(&json, "organizations:ListAccounts") >= 1);
}

fn calls_of(json: &Value, operation: &str) -> u64 {
    json["api_calls"][operation].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_region_gives_a_partial_result_with_the_reason() {
    let account = unique_account();
    let config = config_in(&account, "us-east-1").await;
    let created = create_estate(&config, &account, "us-east-1", 5).await;
    let (want_violations, want_counts) = expected(&created);

    // moto answers 500 for a region it does not know: the region's endpoint is down.
    let (code, json, stderr) = scan_cli(
        &caller_credentials(),
        &[
            "--accounts",
            &account,
            "--regions",
            "us-east-1,zz-down-1",
            "--resource-types",
            NATIVE_TYPES,
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(json["partial"], true);
    let issues = json["tally"]["issues"].as_array().unwrap();
    let failed: BTreeSet<(&str, &str)> = issues
        .iter()
        .map(|i| {
            (
                i["region"].as_str().unwrap(),
                i["service"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("zz-down-1", "ec2"),
            ("zz-down-1", "ecs"),
            ("zz-down-1", "lambda"),
            ("zz-down-1", "rds")
        ]
        .into()
    );
    for issue in issues {
        assert_eq!(issue["account_id"].as_str().unwrap(), account);
        assert_eq!(issue["kind"], "endpoint_unavailable", "{issue}");
        let message = issue["message"].as_str().unwrap();
        assert!(message.contains("HTTP 500"), "{message}");
        assert!(
            !message.contains("testing"),
            "no credentials in messages: {message}"
        );
    }
    // The healthy region is complete and exact.
    let (got_violations, got_counts) = found(&json);
    assert_eq!(got_counts, want_counts);
    assert_eq!(got_violations, want_violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_types_adds_the_tagging_api_and_says_what_it_cannot_see() {
    let account = unique_account();
    let config = config_in(&account, "us-east-1").await;
    let created = create_estate(&config, &account, "us-east-1", 2).await;
    // A type without a native lister: an EBS volume, tagged but missing most required tags.
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let volume = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(8)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("CostCenter")
                        .value("Finance")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateVolume");
    let volume_arn = format!(
        "arn:aws:ec2:us-east-1:{account}:volume/{}",
        volume.volume_id().unwrap()
    );

    let (_, json, stderr) = scan_cli(
        &caller_credentials(),
        &["--accounts", &account, "--regions", "us-east-1"],
    );
    assert!(
        json["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("never been tagged")),
        "{}",
        json["notes"]
    );
    assert!(stderr.contains("tagguard: note:"), "{stderr}");
    let counts = json["tally"]["by_resource_type"].as_object().unwrap();
    assert_eq!(counts["ec2:volume"]["total"], 1);
    // Native types are listed once, not again through the tagging API.
    let (_, want_counts) = expected(&created);
    for (resource_type, (total, _)) in want_counts {
        assert_eq!(
            counts[&resource_type]["total"].as_u64().unwrap(),
            total,
            "{resource_type}"
        );
    }
    let volume_violations: Vec<&str> = json["tally"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["resource_arn"] == volume_arn.as_str())
        .map(|v| v["tag_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        volume_violations,
        ["Owner"],
        "CostCenter and Owner apply to every type"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_longer_than_a_page_are_read_to_the_end() {
    // 105 DB instances (RDS pages at 100, following Marker), 60 tagged functions (the tagging
    // API pages at 50 resources even for an ARN list), 12 ECS services (DescribeServices takes
    // 10 at a time).
    let account = unique_account();
    let region = "us-east-1";
    let config = config_in(&account, region).await;
    let sets = tag_sets(false);
    let mut created = Vec::new();
    for i in 0..105 {
        created.push(create_db(&config, region, &format!("page-{i}"), &sets[i % sets.len()]).await);
    }
    let role = lambda_role(&config, "pages").await;
    for i in 0..60 {
        // Every function tagged, so that all of them come back from the tagging API.
        let set = &sets[i % 4];
        created.push(create_function(&config, region, &format!("page-{i}"), &role, set).await);
    }
    create_cluster(&config, "pages").await;
    for i in 0..12 {
        let set = &sets[i % sets.len()];
        created.push(create_service(&config, region, "pages", &format!("svc-{i}"), set).await);
    }
    let (_, json, stderr) = scan_cli(
        &caller_credentials(),
        &[
            "--accounts",
            &account,
            "--regions",
            region,
            "--resource-types",
            "rds:db,lambda:function,ecs:service",
        ],
    );
    assert!(
        json["tally"]["issues"].as_array().unwrap().is_empty(),
        "{} {stderr}",
        json["tally"]["issues"]
    );
    assert_exact(&json, &created);
    assert!(
        calls_of(&json, "rds:DescribeDBInstances") >= 2,
        "followed Marker: {}",
        json["api_calls"]
    );
    assert!(
        calls_of(&json, "tag:GetResources") >= 2,
        "followed PaginationToken: {}",
        json["api_calls"]
    );
    assert_eq!(calls_of(&json, "ecs:DescribeServices"), 2);
}

/// The MCP tools over the AWS source (the real SDK against moto): compliance counts match what
/// was created, and `validate_resource_tags` gives each ARN its verdict, never-tagged resources
/// and buckets (whose ARNs name no region or account) included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_answer_from_aws_through_the_sdk() {
    use std::sync::Arc;
    use tagguard::config::Config;
    use tagguard::domain::ScanScope;
    use tagguard::engine::EngineHandle;
    use tagguard::source::aws::{AwsOptions, AwsSource};
    use tagguard::tools::{CallContext, ToolEnv, ToolRegistry};

    let account = unique_account();
    let mut created = Vec::new();
    for region in REGIONS {
        let config = config_in(&account, region).await;
        created.extend(create_estate(&config, &account, region, 5).await);
    }
    let source = Arc::new(AwsSource::with_config(
        base_config().await,
        AwsOptions::default(),
    ));
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let scope = ScanScope {
        regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        accounts: [account.clone()].into(),
        ..ScanScope::default()
    };
    let scans = tagguard::scans::ScanService::new(
        engine,
        Arc::new(default_policy()),
        source,
        None,
        std::time::Duration::from_secs(300),
    );
    let env = ToolEnv::new(Arc::new(scans)).with_default_scope(scope);
    let registry = ToolRegistry::standard();
    let call = |tool: &'static str, args: Value| {
        let (registry, env) = (&registry, &env);
        async move {
            registry
                .get(tool)
                .unwrap()
                .call(env, &CallContext::default(), args)
                .await
                .unwrap_or_else(|e| panic!("{tool}: {e}"))
                .structured
        }
    };
    let types: Vec<&str> = NATIVE_TYPES.split(',').collect();

    let report = call(
        "check_tag_compliance",
        serde_json::json!({ "resource_types": types, "limit": 1000 }),
    )
    .await;
    assert_eq!(report["partial"], false, "{}", report["issues"]);
    let (want_violations, want_counts) = expected(&created);
    assert_eq!(report["total_resources"], created.len());
    let got: u64 = report["violations_matching"].as_u64().unwrap();
    assert_eq!(got, want_violations.len() as u64);
    for (resource_type, (total, compliant)) in &want_counts {
        assert_eq!(report["by_resource_type"][resource_type]["total"], *total);
        assert_eq!(
            report["by_resource_type"][resource_type]["compliant"],
            *compliant
        );
    }

    // One ARN per verdict the estate holds, and one that does not exist.
    let policy = default_policy();
    let fails = |c: &Created| {
        policy
            .validate(&c.resource_type, &c.tags)
            .iter()
            .any(|f| f.severity == Severity::Error)
    };
    let compliant = created.iter().find(|c| !fails(c)).unwrap();
    let untagged = created
        .iter()
        .find(|c| c.tags.is_empty() && c.resource_type == ResourceType::Ec2Instance)
        .unwrap();
    let bucket = created
        .iter()
        .find(|c| c.resource_type == ResourceType::S3Bucket && fails(c))
        .unwrap();
    let absent = format!("arn:aws:ec2:eu-west-1:{account}:instance/i-0123456789abcdef0");
    let answer = call(
        "validate_resource_tags",
        serde_json::json!({ "resource_arns": [compliant.arn, untagged.arn, bucket.arn, absent] }),
    )
    .await;
    let statuses: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["compliant", "non_compliant", "non_compliant", "not_found"],
        "{answer}"
    );
    let missing: Vec<&str> = answer["results"][1]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["tag_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        ["CostCenter", "Owner", "Environment", "Application"],
        "a never-tagged instance misses every required tag"
    );

    let untagged_report = call(
        "find_untagged_resources",
        serde_json::json!({ "resource_types": types, "missing_tags": ["CostCenter"], "limit": 1000 }),
    )
    .await;
    let lacking = created
        .iter()
        .filter(|c| {
            !c.tags
                .iter()
                .any(|t| t.key.eq_ignore_ascii_case("CostCenter"))
        })
        .count();
    assert_eq!(untagged_report["total_found"], lacking);
    env.scans.engine().shutdown().await;
}

/// The engine and the AWS source as a long-running server holds them: one source for every
/// scan, whose account is reached by `AssumeRole` from the caller.
async fn shared_source() -> std::sync::Arc<tagguard::source::aws::AwsSource> {
    use tagguard::source::aws::{AwsOptions, AwsSource};
    std::sync::Arc::new(AwsSource::with_config(
        base_config().await,
        AwsOptions::default(),
    ))
}

/// Regression: the AWS source kept each plan's regions in one map per account, so two scans of
/// the same account with different regions overwrote each other, and one reported no bucket
/// at all, without an issue. Concurrent scans of one source must each find exactly theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scans_of_other_regions_of_one_account_each_find_their_own() {
    use tagguard::config::Config;
    use tagguard::domain::ScanScope;
    use tagguard::engine::{EngineHandle, ScanRequest};

    let account = unique_account();
    let mut created = Vec::new();
    for region in REGIONS {
        let config = config_in(&account, region).await;
        created.extend(create_estate(&config, &account, region, 3).await);
    }
    let policy = std::sync::Arc::new(default_policy());
    let source = shared_source().await;
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let request = |region: &str| {
        let scope = ScanScope {
            resource_types: NATIVE_TYPES
                .split(',')
                .map(|t| t.parse().unwrap())
                .collect(),
            regions: [region.to_string()].into(),
            accounts: [account.clone()].into(),
            ..ScanScope::default()
        };
        ScanRequest::new(source.clone(), policy.clone()).with_scope(scope)
    };
    // Each scan alone, for the calls it makes.
    let alone = [
        engine
            .scan(request(REGIONS[0]))
            .await
            .unwrap()
            .meta
            .api_calls,
        engine
            .scan(request(REGIONS[1]))
            .await
            .unwrap()
            .meta
            .api_calls,
    ];
    for round in 0..3 {
        let (east, west) = tokio::join!(
            engine.scan(request(REGIONS[0])),
            engine.scan(request(REGIONS[1]))
        );
        for ((result, region), calls) in [(east.unwrap(), REGIONS[0]), (west.unwrap(), REGIONS[1])]
            .into_iter()
            .zip(&alone)
        {
            // Regression: the calls of one scan included those of the scan beside it.
            assert_eq!(
                &result.meta.api_calls, calls,
                "round {round}, {region}: its own calls"
            );
            let mine: Vec<Created> = created
                .iter()
                .filter(|c| c.region == region)
                .cloned()
                .collect();
            let json = serde_json::to_value(&result).unwrap();
            assert_exact(&json, &mine);
            let buckets = result.tally.by_resource_type[&ResourceType::S3Bucket].total;
            assert_eq!(
                buckets, 3,
                "round {round}, {region}: every bucket of the region"
            );
        }
    }
    engine.shutdown().await;
}

/// ARN lookups read only what they name: a bucket asked for costs one location call however
/// many buckets the account has, an instance one filtered describe call, and nothing else of
/// the account is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_read_only_the_resources_named() {
    use tagguard::config::Config;
    use tagguard::domain::{Origin, ScanScope};
    use tagguard::engine::EngineHandle;
    use tagguard::scans::{ScanQuestion, ScanService};

    let account = unique_account();
    let mut created = Vec::new();
    for region in REGIONS {
        let config = config_in(&account, region).await;
        created.extend(create_estate(&config, &account, region, 4).await);
    }
    let engine = EngineHandle::start(Config::default()).await.unwrap();
    let service = std::sync::Arc::new(ScanService::new(
        engine.clone(),
        std::sync::Arc::new(default_policy()),
        shared_source().await,
        None,
        std::time::Duration::ZERO,
    ));
    // Never-tagged ones where there are: the tagging API cannot see those, the listers can.
    let pick = |resource_type: ResourceType, region: &str| {
        let of = |c: &&Created| c.resource_type == resource_type && c.region == region;
        created
            .iter()
            .filter(of)
            .find(|c| c.tags.is_empty())
            .or_else(|| created.iter().find(of))
            .unwrap()
            .clone()
    };
    let wanted = [
        pick(ResourceType::Ec2Instance, "eu-west-1"),
        pick(ResourceType::RdsDb, "us-east-1"),
        pick(ResourceType::LambdaFunction, "eu-west-1"),
        pick(ResourceType::EcsService, "us-east-1"),
        pick(ResourceType::S3Bucket, "us-east-1"),
    ];
    let scope = ScanScope {
        regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        accounts: [account.clone()].into(),
        arns: wanted.iter().map(|c| c.arn.clone()).collect(),
        ..ScanScope::default()
    };
    let question = ScanQuestion::new(scope, Origin::Lookup("test".into()));
    let answer = service
        .scan(&tagguard::scans::RunContext::default(), question)
        .await
        .unwrap();
    let result = &answer.result;
    assert!(!result.partial, "{:?}", result.tally.issues);
    let found: BTreeSet<&str> = result
        .tally
        .matched_arns
        .iter()
        .map(String::as_str)
        .collect();
    let asked: BTreeSet<&str> = wanted.iter().map(|c| c.arn.as_str()).collect();
    assert_eq!(
        found, asked,
        "every resource named is found, untagged ones too"
    );
    assert!(
        wanted.iter().any(|c| c.tags.is_empty()),
        "the lookup covers a never-tagged one"
    );
    assert_exact(&serde_json::to_value(&**result).unwrap(), &wanted);
    let calls = &result.meta.api_calls;
    let count = |op: &str| calls.get(op).copied().unwrap_or(0);
    assert_eq!(count("s3:GetBucketLocation"), 1, "{calls:?}");
    assert_eq!(count("ec2:DescribeInstances"), 1, "{calls:?}");
    assert_eq!(count("rds:DescribeDBInstances"), 1, "{calls:?}");
    assert_eq!(count("lambda:ListFunctions"), 0, "{calls:?}");
    assert_eq!(count("ecs:ListServices"), 0, "{calls:?}");
    engine.shutdown().await;
}
