//! The `tagguard` binary as a user runs it: exit codes, formats, sources, policy errors.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn tagguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(args)
        .env_remove("TAGGUARD_POLICY")
        .env_remove("TAGGUARD_CONFIG")
        .env_remove("TAGGUARD_SOURCE")
        .env("TAGGUARD_DATA_DIR", crate::support::data_dir())
        .output()
        .expect("the tagguard binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

/// `tagguard scan --format json` of the snapshot at `path`.
fn scan_file_as_json(path: &str) -> Output {
    tagguard(&[
        "scan",
        "--format",
        "json",
        "--source",
        &format!("file:{path}"),
    ])
}

/// `tagguard scan --format json` of `source` with `extra` options, and the JSON it printed.
fn scan_source_as_json(source: &str, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["scan", "--format", "json", "--source", source];
    args.extend_from_slice(extra);
    let out = tagguard(&args);
    let json = serde_json::from_str(&stdout(&out)).expect("JSON on standard output");
    (out, json)
}

/// Fails with the whole standard error when it lacks `text`.
fn assert_stderr_has(output: &Output, text: &str) {
    let err = stderr(output);
    assert!(err.contains(text), "standard error lacks {text:?}:\n{err}");
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("utf-8 output")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file");
    path.display().to_string()
}

#[test]
fn demo_scan_prints_a_summary_and_exits_1() {
    let out = tagguard(&["scan"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "Compliance score",
        "ec2:instance",
        "CostCenter",
        "Worst offenders",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        text.lines().count() < 60,
        "the summary lists rows, not every violation"
    );
}

#[test]
fn json_output_carries_every_violation_with_detail() {
    let out = tagguard(&["scan", "--format", "json", "--size", "3000", "--seed", "5"]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    let violations = json["tally"]["violations"]
        .as_array()
        .expect("violations array");
    assert_eq!(
        violations.len() as u64,
        json["error_count"].as_u64().unwrap() + json["warning_count"].as_u64().unwrap()
    );
    assert_eq!(json["total_resources"], 3000);
    let score = json["compliance_score"].as_f64().unwrap();
    let ratio = json["compliant_resources"].as_f64().unwrap() / 3000.0;
    assert!((score - ratio).abs() < 1e-12);
    assert!(
        json.get("scan_timestamp").is_some(),
        "missing scan_timestamp"
    );
    for key in ["issues", "by_resource_type", "by_tag", "worst_offenders"] {
        assert!(json["tally"].get(key).is_some(), "missing tally.{key}");
    }
    // The file is the interchange form: it reads back as the result it was written from.
    let result: tagguard::domain::ScanResult =
        serde_json::from_str(&stdout(&out)).expect("the output reads back as a ScanResult");
    assert_eq!(result.totals.total_resources, 3000);
    assert_eq!(result.tally.violations.len(), violations.len());
    assert_eq!(
        result.tally.totals(),
        result.totals,
        "the counts agree with the tally"
    );
    let written: Value = serde_json::to_value(&result).unwrap();
    assert_eq!(written, json, "written again, byte for byte the same JSON");
    for v in violations {
        for key in [
            "resource_arn",
            "resource_id",
            "resource_type",
            "region",
            "account_id",
            "violation_type",
            "tag_name",
            "severity",
        ] {
            assert!(v.get(key).is_some(), "violation lacks {key}: {v}");
        }
        if v["violation_type"] == "invalid_value" {
            assert!(
                v["current_value"].is_string() && v["allowed_values"].is_array(),
                "{v}"
            );
        }
    }
}

#[test]
fn filters_and_severity_apply() {
    let out = tagguard(&[
        "scan",
        "--format",
        "json",
        "--size",
        "4000",
        "--resource-types",
        "s3:bucket,rds:db",
        "--regions",
        "us-west-2",
        "--severity",
        "warnings_only",
    ]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors are counted whatever the listing shows"
    );
    let types: Vec<&str> = json["tally"]["by_resource_type"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(types, ["rds:db", "s3:bucket"]);
    let violations = json["tally"]["violations"].as_array().unwrap();
    assert!(!violations.is_empty(), "the filter leaves warnings to list");
    assert_eq!(
        violations.len() as u64,
        json["warning_count"].as_u64().unwrap()
    );
    for v in violations {
        assert_eq!(v["region"], "us-west-2");
        assert_eq!(v["severity"], "warning");
        assert!(["rds:db", "s3:bucket"].contains(&v["resource_type"].as_str().unwrap()));
    }
}

#[test]
fn csv_and_markdown_formats() {
    let json: Value = serde_json::from_str(&stdout(&tagguard(&[
        "scan", "--format", "json", "--size", "200",
    ])))
    .unwrap();
    let violations = json["tally"]["violations"].as_array().unwrap();
    assert!(violations.len() > 10);

    let out = tagguard(&["scan", "--format", "csv", "--size", "200"]);
    let text = stdout(&out);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[..6],
        [
            "resource_arn",
            "resource_id",
            "resource_type",
            "region",
            "account_id",
            "violation_type"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), violations.len(), "one row per violation");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    for (row, v) in rows.iter().zip(violations) {
        assert_eq!(
            &row[column("resource_arn")],
            v["resource_arn"].as_str().unwrap()
        );
        assert_eq!(&row[column("tag_name")], v["tag_name"].as_str().unwrap());
        assert_eq!(&row[column("message")], v["message"].as_str().unwrap());
        match v["monthly_cost"].as_f64() {
            Some(cost) => assert_eq!(&row[column("monthly_cost")], format!("{cost:.2}")),
            None => assert_eq!(&row[column("monthly_cost")], ""),
        }
    }

    let out = tagguard(&["scan", "--format", "markdown", "--size", "200"]);
    let text = stdout(&out);
    assert!(text.starts_with("# Tag compliance report"));
    let listed = text.lines().filter(|l| l.starts_with("| `arn:")).count();
    assert_eq!(
        listed,
        violations
            .len()
            .min(tagguard::report::MARKDOWN_VIOLATION_ROWS),
        "one table row per violation, up to the cap"
    );
}

#[test]
fn compliant_snapshot_exits_0_and_bad_one_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::billing-exports",
        "Tags": [{"Key": "CostCenter", "Value": "Finance"}, {"Key": "Owner", "Value": "finops@example.com"}]}]}"#;
    let path = write(dir.path(), "good.json", good);
    let out = tagguard(&["scan", "--source", &format!("file:{path}")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let bad = r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::untagged-bucket", "Tags": []}]}"#;
    let path = write(dir.path(), "bad.json", bad);
    let out = tagguard(&[
        "scan",
        "--format",
        "json",
        "--source",
        &format!("file:{path}"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let tags: Vec<&str> = json["tally"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["tag_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["CostCenter", "Owner"],
        "untagged bucket misses the two tags that apply to buckets"
    );
}

#[test]
fn snapshot_with_a_bad_arn_is_partial_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b1",
        "Tags": [{"Key": "CostCenter", "Value": "Finance"}, {"Key": "Owner", "Value": "a@example.com"}]},
        {"ResourceARN": "bucket-without-arn", "Tags": []}]}"#;
    let path = write(dir.path(), "partial.json", text);
    let out = tagguard(&[
        "scan",
        "--format",
        "json",
        "--source",
        &format!("file:{path}"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "compliant but partial: a gate must not pass"
    );
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["partial"], true);
    assert!(
        json["tally"]["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("'bucket-without-arn' is not an ARN")
    );
}

#[test]
fn a_partial_non_compliant_scan_says_it_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b1", "Tags": []},
        {"ResourceARN": "bucket-without-arn", "Tags": []}]}"#;
    let path = write(dir.path(), "partial.json", text);
    let out = tagguard(&[
        "scan",
        "--format",
        "csv",
        "--source",
        &format!("file:{path}"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "non-compliant wins over partial"
    );
    assert_stderr_has(&out, "the scan is partial: 1 issue(s)");
}

#[test]
fn policy_check_reports_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "broken.json",
        "{\n  \"version\": \"1\",\n  \"required_tags\": [\n    {\"name\": \"Owner\", \"validation_regex\": \"[a-z\"}\n  ]\n}\n",
    );
    let out = tagguard(&["policy", "check", &path]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("error in policy '{path}' at line 4, column")),
        "{err}"
    );
    assert!(
        err.contains("field 'required_tags[0].validation_regex'"),
        "{err}"
    );

    let out = tagguard(&["scan", "--policy", &path]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a scan with a broken policy is an error"
    );

    let out = tagguard(&["policy", "check", "policies/tagging_policy.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    for (args, needle) in [
        (
            vec!["scan", "--resource-types", "ec2"],
            "'ec2' is not a resource type",
        ),
        (
            vec!["scan", "--accounts", "12"],
            "'12' in --accounts is not an account id",
        ),
        (
            vec!["scan", "--source", "s3://x"],
            "'s3://x' is not a source",
        ),
        (
            vec!["scan", "--source", "file:/nonexistent/estate.json"],
            "cannot read snapshot '/nonexistent/estate.json': no such file",
        ),
        (
            vec!["scan", "--regions", "US-EAST-1"],
            "regions are lowercase",
        ),
        (
            vec!["scan", "--resource-types", "S3:Bucket"],
            "did you mean 's3:bucket'",
        ),
        (
            vec!["scan", "--source", "file:x.json", "--size", "10"],
            "--size and --seed apply to the demo source only",
        ),
        (vec!["scan", "--size", "99999999999"], "99999999999"),
        (
            vec!["scan", "--regions", "all,us-east-1"],
            "either 'all' or a list",
        ),
        (
            vec![
                "scan",
                "--source",
                "aws",
                "--accounts",
                "organization,111111111111",
            ],
            "either 'organization' or a list",
        ),
        (vec!["scan", "--regions", ","], "empty value"),
    ] {
        let out = tagguard(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_scope_matching_nothing_does_not_pass_the_gate() {
    for args in [
        vec!["scan", "--regions", "us-eats-1"],
        vec!["scan", "--accounts", "999999999999"],
    ] {
        let out = tagguard(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_stderr_has(&out, "no resource in scope");
    }
    let out = tagguard(&["scan", "--regions", "us-eats-1", "--allow-empty"]);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "empty.json",
        r#"{"ResourceTagMappingList": []}"#,
    );
    let out = tagguard(&["scan", "--source", &format!("file:{path}")]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an empty snapshot checks nothing"
    );
}

#[test]
fn a_closed_pipe_keeps_the_scan_exit_code() {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(["scan", "--format", "csv", "--size", "20000"])
        .env("TAGGUARD_DATA_DIR", crate::support::data_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take()); // like `| head -c 64`
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "non-compliant, not an error: {err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}

/// A policy whose only rule names a type with a typo.
const TYPO_POLICY: &str =
    r#"{"version": "1", "required_tags": [{"name": "Owner", "applies_to": ["ec2:instanse"]}]}"#;

#[test]
fn policy_warnings_reach_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "typo.json", TYPO_POLICY);
    let out = tagguard(&["policy", "check", &path]);
    assert_eq!(out.status.code(), Some(0));
    assert_stderr_has(
        &out,
        "'ec2:instanse' is not a resource type tagguard knows (did you mean 'ec2:instance'?)",
    );
}

#[test]
fn strict_policy_loads_fail_on_warnings_and_wildcards_gate_scans() {
    let dir = tempfile::tempdir().unwrap();
    let typo = write(dir.path(), "typo.json", TYPO_POLICY);
    let out = tagguard(&["policy", "check", "--strict", &typo]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_stderr_has(&out, "field 'required_tags[0].applies_to[0]'");
    // AWS's wildcard form checks every type of the service: the untagged instance fails.
    let wildcard = write(
        dir.path(),
        "wildcard.json",
        r#"{"version": "1", "required_tags": [{"name": "Owner", "applies_to": ["ec2:*", "AWS::S3::Bucket"]}]}"#,
    );
    let estate = write(
        dir.path(),
        "estate.json",
        r#"{"ResourceTagMappingList": [
            {"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:volume/vol-1", "Tags": []},
            {"ResourceARN": "arn:aws:s3:::logs", "Tags": [{"Key": "Owner", "Value": "ana"}]},
            {"ResourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "Tags": []}
        ]}"#,
    );
    let source = format!("file:{estate}");
    let out = tagguard(&[
        "scan",
        "--strict-policy",
        "--policy",
        &wildcard,
        "--source",
        &source,
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["non_compliant_resources"], 1, "{json}");
    assert_eq!(json["compliant_resources"], 1, "{json}");
    // The queue is of a type no rule applies to: counted apart, and out of the score.
    assert_eq!(json["not_applicable_resources"], 1, "{json}");
    assert_eq!(json["compliance_score"], 0.5, "{json}");
    let table = tagguard(&["scan", "--policy", &wildcard, "--source", &source]);
    assert!(
        stdout(&table).contains("Not applicable    1 resource no required tag applies to"),
        "{}",
        stdout(&table)
    );
}

#[test]
fn policy_show_prints_the_policy() {
    let out = tagguard(&["policy", "show"]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["required_tags"].as_array().unwrap().len(), 4);
}

fn tagguard_with_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(args)
        .env_remove("TAGGUARD_POLICY")
        .env_remove("TAGGUARD_CONFIG")
        .env_remove("TAGGUARD_SOURCE")
        .env("TAGGUARD_DATA_DIR", crate::support::data_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the tagguard binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

const TAGGED: &str =
    r#"[{"Key": "CostCenter", "Value": "Finance"}, {"Key": "Owner", "Value": "a@example.com"}]"#;

/// Two pages as `aws resourcegroupstaggingapi get-resources >> estate.json` leaves them: every
/// resource is read, from a file or from standard input.
#[test]
fn pages_written_one_after_the_other_are_all_read_from_a_file_or_stdin() {
    let page_1 = format!(
        r#"{{"ResourceTagMappingList": [{{"ResourceARN": "arn:aws:s3:::b1", "Tags": {TAGGED}}}], "PaginationToken": "x"}}"#
    );
    let page_2 = format!(
        r#"{{"ResourceTagMappingList": [{{"ResourceARN": "arn:aws:s3:::b2", "Tags": {TAGGED}}},
            {{"ResourceARN": "arn:aws:s3:::b3", "Tags": []}}]}}"#
    );
    let text = format!("{page_1}\n{page_2}\n");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "estate.json", &text);
    for out in [
        scan_file_as_json(&path),
        tagguard_with_stdin(&["scan", "--format", "json", "--source", "file:-"], &text),
    ] {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(json["total_resources"], 3, "{json}");
        assert_eq!(json["non_compliant_resources"], 1);
        assert_eq!(json["partial"], false);
    }
}

#[test]
fn account_filters_keep_resources_of_no_account_as_region_filters_keep_global_ones() {
    let text = format!(
        r#"{{"ResourceTagMappingList": [
            {{"ResourceARN": "arn:aws:s3:::b1", "Tags": {TAGGED}}},
            {{"ResourceARN": "arn:aws:route53:::hostedzone/Z1", "Tags": []}},
            {{"ResourceARN": "arn:aws:apigateway:us-east-1::/restapis/a1", "Tags": []}},
            {{"ResourceARN": "arn:aws:ec2:us-east-1:111111111111:instance/i-1", "Tags": []}},
            {{"ResourceARN": "arn:aws:ec2:us-east-1:222222222222:instance/i-2", "Tags": []}}
        ]}}"#
    );
    let dir = tempfile::tempdir().unwrap();
    let source = format!("file:{}", write(dir.path(), "estate.json", &text));
    let (_, json) = scan_source_as_json(&source, &["--accounts", "111111111111"]);
    assert_eq!(json["total_resources"], 4, "{json}");
    assert!(json["tally"]["by_resource_type"]["apigateway:restapis"]["total"] == 1);
    let (_, json) = scan_source_as_json(&source, &["--regions", "eu-west-1"]);
    assert_eq!(
        json["total_resources"], 2,
        "the bucket and the zone: {json}"
    );
    // A filter naming a region or account of no resource (a typo) must not pass a gate on the
    // resources of no region or account alone.
    for filter in [["--regions", "us-est-1"], ["--accounts", "111111111112"]] {
        let (out, json) = scan_source_as_json(&source, &filter);
        assert_ne!(out.status.code(), Some(0), "{filter:?}: {}", stderr(&out));
        assert_eq!(json["partial"], true, "{json}");
        let issue = json["tally"]["issues"][0]["message"].as_str().unwrap();
        assert!(issue.contains("did you mean"), "{issue}");
    }
    // A policy no resource's type is in checks nothing: that is not a pass either.
    let queues = write(
        dir.path(),
        "queues.json",
        r#"{"version": "1", "required_tags": [{"name": "Owner", "applies_to": ["sqs:queue"]}]}"#,
    );
    let out = tagguard(&["scan", "--source", &source, "--policy", &queues]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_has(
        &out,
        "no required tag of the policy applies to any of the 5 resources",
    );
}

#[test]
fn each_bad_input_form_is_named_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let scan = |name: &str, text: &str| {
        let path = write(dir.path(), name, text);
        scan_file_as_json(&path)
    };
    // Text after the page: an error naming the line, exit 2.
    let out = scan(
        "trailing.json",
        &format!(
            "{{\"ResourceTagMappingList\": [{{\"ResourceARN\": \"arn:aws:s3:::b1\", \"Tags\": {TAGGED}}}]}}\nDone.\n"
        ),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_has(&out, "at line 2, column 1");
    assert_stderr_has(&out, "text that is not JSON: 'Done.'");
    // Other outputs of the CLI, and Python's repr.
    let out = scan(
        "text.txt",
        "RESOURCETAGMAPPINGLIST\tarn:aws:s3:::b1\nTAGS\tOwner\tana\n",
    );
    assert_stderr_has(&out, "run it again with --output json");
    let out = scan(
        "repr.txt",
        "{'ResourceTagMappingList': [{'ResourceARN': 'arn:aws:s3:::b1'}]}",
    );
    assert!(stderr(&out).contains("json.dump"), "{}", stderr(&out));
    // Bad fields in single entries: issues of those entries; the rest is scanned.
    let out = scan(
        "fields.json",
        &format!(
            r#"{{"ResourceTagMappingList": [
            {{"ResourceARN": "arn:aws:s3:::b1", "Tags": {{"CostCenter": "Finance", "Owner": "a@example.com"}}}},
            {{"ResourceARN": "arn:aws:s3:::b2", "Tags": null}},
            {{"ResourceARN": "arn:aws:s3:::b3", "Tags": [{{"Key": "CostCenter", "Value": 7}}]}},
            {{"ResourceARN": "arn:aws:s3:::b4", "CreatedAt": 1714564800, "Tags": {TAGGED}}},
            {{"ResourceARN": "arn:aws:s3:::b5", "Tags": [["CostCenter", "Finance"]]}},
            {{"ResourceARN": "arn:aws:s3:::b1", "Tags": {TAGGED}}}
        ]}}"#
        ),
    );
    assert_eq!(out.status.code(), Some(1), "non-compliant (and partial)");
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["partial"], true, "one entry unread");
    assert_eq!(json["total_resources"], 4, "b1 once, b2, b3, b4: {json}");
    assert_eq!(json["compliant_resources"], 2, "b1 and b4: {json}");
    let issues = json["tally"]["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0]["message"]
            .as_str()
            .unwrap()
            .contains("entry 5 (line 6)"),
        "{issues:?}"
    );
    let notes = json["notes"].to_string();
    assert!(notes.contains("1 entry repeats an ARN"), "{json}");
    assert!(notes.contains("read as text"), "{json}");
}

/// Values from the estate are data where they are written: a CSV cell never starts a formula,
/// Markdown never passes raw HTML or breaks its table.
#[test]
fn hostile_tag_values_are_written_safely_in_csv_and_markdown() {
    let text = r#"{"ResourceTagMappingList": [
        {"ResourceARN": "arn:aws:s3:::b1", "Tags": [
            {"Key": "CostCenter", "Value": "=HYPERLINK(\"http://evil.example\",\"x\")"},
            {"Key": "Owner", "Value": "<img src=x onerror=alert(1)>|`x`"}]},
        {"ResourceARN": "arn:aws:s3:::b2", "Tags": [
            {"Key": "CostCenter", "Value": "+1-2"}, {"Key": "Owner", "Value": "@SUM(A1)"}]}
    ]}"#;
    let dir = tempfile::tempdir().unwrap();
    let source = format!("file:{}", write(dir.path(), "hostile.json", text));
    let out = tagguard(&["scan", "--format", "csv", "--source", &source]);
    let csv_text = stdout(&out);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 7, "errors and warnings: {rows:?}");
    let current = header.iter().position(|h| h == "current_value").unwrap();
    let values: Vec<&str> = rows.iter().map(|r| &r[current]).collect();
    for row in &rows {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "a cell starts a formula: {cell}"
            );
        }
    }
    assert!(
        values.contains(&"'=HYPERLINK(\"http://evil.example\",\"x\")"),
        "{values:?}"
    );
    assert!(
        values.contains(&"'+1-2") && values.contains(&"'@SUM(A1)"),
        "{values:?}"
    );

    let out = tagguard(&["scan", "--format", "markdown", "--source", &source]);
    let markdown = stdout(&out);
    assert!(!markdown.contains("<img"), "{markdown}");
    assert!(
        markdown.contains("&lt;img src=x onerror=alert(1)&gt;\\|\\`x\\`"),
        "{markdown}"
    );
    let rows: Vec<&str> = markdown
        .lines()
        .filter(|l| l.starts_with("| `arn:"))
        .collect();
    assert_eq!(rows.len(), 7);
    for row in rows {
        let cells = row.replace("\\|", "").matches('|').count();
        assert_eq!(cells, 9, "eight cells, whatever the values: {row}");
    }
}

#[test]
fn an_organizations_tag_policy_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "org.json",
        r#"{
    "tags": {
        "costcenter": {
            "tag_key": {"@@assign": "CostCenter"},
            "tag_value": {"@@assign": ["100", "200", "300*"]},
            "enforced_for": {"@@assign": ["secretsmanager:*"]}
        }
    }
}"#,
    );
    let out = tagguard(&["policy", "check", &path]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("at line 2, column"), "{err}");
    assert!(
        err.contains("this is an AWS Organizations tag policy"),
        "{err}"
    );
}

/// `tagguard policy import` of an AWS tag policy chain, then a scan with the result: what AWS
/// would call compliant is compliant, and nothing else.
#[test]
fn an_imported_aws_tag_policy_judges_as_aws_does() {
    let dir = tempfile::tempdir().unwrap();
    let chain = r#"[
      {"tags": {
        "costcenter": {"tag_key": {"@@assign": "CostCenter"},
                       "tag_value": {"@@assign": ["100", "200", "300*"]},
                       "enforced_for": {"@@assign": ["ec2:instance"]},
                       "report_required_tag_for": {"@@assign": ["ec2:instance"]}},
        "project": {"tag_key": {"@@assign": "Project"}, "tag_value": {"@@assign": ["alpha", "beta"]}}}},
      {"tags": {"costcenter": {"tag_value": {"@@remove": ["200"]}}}}
    ]"#;
    let chain_file = write(dir.path(), "chain.json", chain);
    let imported = dir.path().join("imported.json");
    let out = tagguard(&[
        "policy",
        "import",
        &chain_file,
        "--out",
        imported.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // What cannot be expressed is said, not dropped.
    assert_stderr_has(&out, "enforced_for");
    let ec2 = |n: u32| format!("arn:aws:ec2:us-east-1:111122223333:instance/i-{n:017x}");
    let s3 = |name: &str| format!("arn:aws:s3:::{name}");
    // (ARN, tags, compliant as AWS judges it)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, bool);
    let cases: Vec<Case> = vec![
        (ec2(1), vec![("CostCenter", "3001")], true), // the wildcard
        (ec2(2), vec![("CostCenter", "100")], true),
        (ec2(3), vec![("CostCenter", "200")], false), // removed down the chain
        (ec2(4), vec![("costcenter", "100")], false), // the key in another case
        (ec2(5), vec![], false),                      // required on instances
        (ec2(6), vec![("CostCenter", "300")], true),
        (s3("not-required"), vec![], true), // not required on buckets
        (s3("bad-value"), vec![("CostCenter", "999")], false), // but checked where present
        (s3("bad-project"), vec![("Project", "gamma")], false),
        (s3("project-case"), vec![("project", "alpha")], false),
        (s3("project-value-case"), vec![("Project", "Alpha")], false),
        (s3("good-project"), vec![("Project", "beta")], true),
    ];
    let list: Vec<serde_json::Value> = cases
        .iter()
        .map(|(arn, tags, _)| {
            serde_json::json!({
                "ResourceARN": arn,
                "Tags": tags.iter().map(|(k, v)| serde_json::json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let estate = write(
        dir.path(),
        "estate.json",
        &serde_json::json!({ "ResourceTagMappingList": list }).to_string(),
    );
    let (out, scan) = scan_source_as_json(
        &format!("file:{estate}"),
        &["--policy", imported.to_str().unwrap()],
    );
    assert!(out.status.code().is_some(), "{}", stderr(&out));
    let violations = scan["tally"]["violations"].as_array().unwrap();
    for (arn, tags, compliant) in &cases {
        let errors: Vec<&serde_json::Value> = violations
            .iter()
            .filter(|v| v["resource_arn"] == arn.as_str() && v["severity"] == "error")
            .collect();
        assert_eq!(errors.is_empty(), *compliant, "{arn} {tags:?}: {errors:?}");
    }
}

/// `tagguard policy export --custodian`: YAML on standard output, the types asked for only,
/// notes on standard error; a prefix Custodian would refuse, or a type that is not one, is an
/// error that says why.
#[test]
fn the_custodian_export_prints_yaml_for_the_types_asked() {
    let out = tagguard(&[
        "policy",
        "export",
        "--custodian",
        "--types",
        "ec2:instance,sqs:queue,athena:workgroup",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = stdout(&out);
    assert!(
        yaml.starts_with("# Cloud Custodian policies generated by tagguard"),
        "{yaml}"
    );
    let resources: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("resource: "))
        .collect();
    assert_eq!(resources, ["\"aws.ec2\"", "\"aws.sqs\""]);
    assert_stderr_has(&out, "athena:workgroup has no Cloud Custodian resource");

    let out = tagguard(&["policy", "export", "--custodian", "--name-prefix", "9lives"]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_has(&out, "'9lives' cannot begin a Cloud Custodian policy name");
    let out = tagguard(&["policy", "export", "--custodian", "--types", "ec2"]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_has(&out, "'ec2' is not a resource type");
    let out = tagguard(&["policy", "export"]);
    assert_eq!(out.status.code(), Some(2), "the format is required");
}
