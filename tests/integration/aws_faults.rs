//! The AWS source on a hostile network: `tagguard scan --source aws` against moto behind the
//! fault-injecting proxy of `tests/fault_proxy.py` (started by each test), which answers
//! throttling in each service's own wire format, 500s, and makes one region reset or hang.
//! The scan must stay exact on what it can read, name only the broken region's shards, and
//! end within the bound the configuration documents.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::aws_moto::{
    NATIVE_TYPES, REGIONS, assert_exact, caller_credentials, config_in, create_estate, expected,
    found, moto, scan_cli_at, unique_account,
};

/// The proxy, killed when dropped.
pub(crate) struct FaultProxy {
    child: Child,
    pub(crate) url: String,
}

impl FaultProxy {
    /// Starts the proxy in front of moto with `rules` (the proxy's command-line options).
    pub(crate) fn start(rules: &[&str]) -> FaultProxy {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fault_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--upstream", &moto(), "--port", "0"])
            .args(rules)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts the fault proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the proxy says where it listens");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line of the proxy: {line:?}"))
            .to_string();
        FaultProxy { child, url }
    }

    /// The faults injected so far (`GET /__faults`).
    pub(crate) async fn faults(&self) -> Value {
        reqwest::get(format!("{}/__faults", self.url))
            .await
            .expect("the proxy answers")
            .json()
            .await
            .expect("JSON counters")
    }

    /// Replaces the fault rules (`POST /__faults/config`).
    pub(crate) async fn configure(&self, rules: Value) {
        let answer = reqwest::Client::new()
            .post(format!("{}/__faults/config", self.url))
            .json(&rules)
            .send()
            .await
            .expect("the proxy answers");
        assert!(answer.status().is_success(), "{}", answer.status());
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file for the scans: the built-in one with the given keys' values replaced (each
/// key is unique in the file).
fn config_file(dir: &std::path::Path, values: &[(&str, u64)]) -> std::path::PathBuf {
    let text: Vec<String> = tagguard::config::DEFAULT_CONFIG_TOML
        .lines()
        .map(|line| {
            match values
                .iter()
                .find(|(key, _)| line.starts_with(&format!("{key} =")))
            {
                Some((key, value)) => format!("{key} = {value}"),
                None => line.to_string(),
            }
        })
        .collect();
    let path = dir.join("tagguard.toml");
    std::fs::write(&path, text.join("\n")).expect("config written");
    path
}

/// An estate of `per_type` resources of each native type in both regions of a new account.
async fn two_region_estate(per_type: usize) -> (String, Vec<super::aws_moto::Created>) {
    let account = unique_account();
    let mut created = Vec::new();
    for region in REGIONS {
        let config = config_in(&account, region).await;
        created.extend(create_estate(&config, &account, region, per_type).await);
    }
    (account, created)
}

fn scan_args<'a>(account: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--accounts",
        account,
        "--regions",
        "us-east-1,eu-west-1",
        "--resource-types",
        NATIVE_TYPES,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_throttling_and_five_percent_500s_lose_nothing() {
    let (account, created) = two_region_estate(30).await;
    let proxy = FaultProxy::start(&["--seed", "11"]);
    // The listing's services: Cost Explorer's calls (the scan's pricing and its gap) are
    // counted in the result's notes, not in the listing's call counters this test checks.
    proxy
        .configure(json!({"throttle": 0.3, "error500": 0.05,
            "only_services": ["ec2", "rds", "s3", "lambda", "ecs", "tagging", "sts", "organizations"]}))
        .await;
    // The built-in configuration: what users get.
    let (code, json, stderr) =
        scan_cli_at(&proxy.url, &caller_credentials(), &scan_args(&account, &[]));
    assert_eq!(
        code,
        Some(1),
        "non-compliant estate, complete scan: {stderr}"
    );
    assert_eq!(json["partial"], false, "{}", json["tally"]["issues"]);
    assert_exact(&json, &created);

    // Every throttled answer the proxy sent was seen and counted, per operation.
    let faults = proxy.faults().await;
    let injected = sum_of(&faults["throttled"]);
    let counted = sum_of(&json["throttled_calls"]);
    assert!(injected > 10, "the proxy throttled: {faults}");
    assert_eq!(counted, injected, "{}", json["throttled_calls"]);
    // Every operation AWS pushed back on was retried (a failed call's retry is the SDK's next
    // attempt, or its page's retry by the fetcher, which redoes the page's calls together).
    let server_errors = sum_of(&faults["error500"]);
    assert!(server_errors > 0, "the proxy failed calls: {faults}");
    for operation in json["throttled_calls"].as_object().unwrap().keys() {
        assert!(
            json["retried_calls"][operation].as_u64().unwrap_or(0) > 0,
            "{operation} was throttled and never retried: {}",
            json["retried_calls"]
        );
    }
    for operation in json["throttled_calls"].as_object().unwrap().keys() {
        assert!(
            json["api_calls"][operation].as_u64().unwrap() > 0,
            "{operation} is counted in api_calls too"
        );
    }
}

/// The sum of a JSON object's counts (0 when absent).
fn sum_of(counts: &Value) -> u64 {
    counts
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// The regions' shards a result names in its issues, with their kinds.
fn failed_regions(json: &Value) -> BTreeSet<(String, String)> {
    json["tally"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["region"].as_str().unwrap_or_default().to_string(),
                i["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The healthy region's part of the estate, found exactly.
fn assert_exact_in(json: &Value, created: &[super::aws_moto::Created], region: &str) {
    let mine: Vec<_> = created
        .iter()
        .filter(|c| c.region == region)
        .cloned()
        .collect();
    let (want_violations, want_counts) = expected(&mine);
    let (got_violations, got_counts) = found(json);
    assert_eq!(got_counts, want_counts);
    assert_eq!(got_violations, want_violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_region_ends_within_the_timeouts_and_the_other_stays_exact() {
    let (account, created) = two_region_estate(4).await;
    let proxy = FaultProxy::start(&["--hang-region", "eu-west-1"]);
    let dir = tempfile::tempdir().unwrap();
    // Short timeouts keep the test short; the bound is the same formula as the defaults'.
    let (attempt, operation) = (2, 4);
    let config = config_file(
        dir.path(),
        &[
            ("attempt_seconds", attempt),
            ("operation_seconds", operation),
        ],
    );
    let started = Instant::now();
    let (code, json, stderr) = scan_cli_at(
        &proxy.url,
        &caller_credentials(),
        &scan_args(&account, &["--config", config.to_str().unwrap()]),
    );
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(json["partial"], true);
    // Every failed shard is eu-west-1's (S3's too: its eu-west-1 buckets), as a timeout.
    let failed = failed_regions(&json);
    assert!(!failed.is_empty());
    for (region, kind) in &failed {
        assert_eq!(region, "eu-west-1", "{failed:?}");
        assert_eq!(kind, "timeout", "{}", json["tally"]["issues"]);
    }
    let services: BTreeSet<&str> = json["tally"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["ec2", "ecs", "lambda", "rds", "s3"].into());
    assert_exact_in(&json, &created, "us-east-1");
    // The documented bound: planning does not touch the hanging region, and every shard ends
    // at its first hung call, all shards at once (fewer than the fetcher slots).
    let bound = Duration::from_secs(operation) * 2 + Duration::from_secs(10);
    assert!(took < bound, "took {took:?}, bound {bound:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_region_is_reported_and_the_other_stays_exact() {
    let (account, created) = two_region_estate(4).await;
    let proxy = FaultProxy::start(&["--reset-region", "eu-west-1"]);
    let (code, json, stderr) =
        scan_cli_at(&proxy.url, &caller_credentials(), &scan_args(&account, &[]));
    assert_eq!(code, Some(1), "{stderr}");
    let failed = failed_regions(&json);
    assert_eq!(
        failed,
        [("eu-west-1".to_string(), "endpoint_unavailable".to_string())].into(),
        "{}",
        json["tally"]["issues"]
    );
    assert_exact_in(&json, &created, "us-east-1");
    for issue in json["tally"]["issues"].as_array().unwrap() {
        let message = issue["message"].as_str().unwrap();
        assert!(!message.contains("testing"), "no credentials: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_ends_a_scan_whose_region_hangs_with_what_was_read() {
    let (account, created) = two_region_estate(4).await;
    let proxy = FaultProxy::start(&["--hang-region", "eu-west-1"]);
    // Timeouts far beyond the deadline: the deadline alone ends the scan.
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &[("attempt_seconds", 120), ("operation_seconds", 300)],
    );
    let started = Instant::now();
    let (code, json, stderr) = scan_cli_at(
        &proxy.url,
        &caller_credentials(),
        &scan_args(
            &account,
            &["--config", config.to_str().unwrap(), "--deadline", "6s"],
        ),
    );
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // The regional shards of eu-west-1 end as timeouts, and so does S3's one shard of the
    // account (it was waiting for eu-west-1's bucket tags): its buckets are not counted.
    let failed = failed_regions(&json);
    assert_eq!(
        failed,
        [
            ("eu-west-1".to_string(), "timeout".to_string()),
            ("global".to_string(), "timeout".to_string())
        ]
        .into(),
        "{}",
        json["tally"]["issues"]
    );
    for issue in json["tally"]["issues"].as_array().unwrap() {
        assert!(
            issue["message"]
                .as_str()
                .unwrap()
                .contains("deadline of 6 s"),
            "{issue}"
        );
    }
    let healthy: Vec<_> = created
        .iter()
        .filter(|c| c.resource_type != tagguard::domain::ResourceType::S3Bucket)
        .cloned()
        .collect();
    assert_exact_in(&json, &healthy, "us-east-1");
}
