//! The redb store: scans recorded and read back, history over a moved clock, retention,
//! restarts, schema versions, and a SIGKILL in the middle of writes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use tagguard::domain::{Origin, ScanId, ScanResult, ScanScope, SeverityFilter};
use tagguard::store::history::{GroupBy, HistoryQuery, Trend, history_report};
use tagguard::store::{Retention, SCHEMA_VERSION, SPOOL_DIR, STORE_FILE, Spool, Store, StoreError};

use crate::support::{estate, policy, scan};

/// A scan of a demo estate of `size` resources and `seed`, dated `at`.
async fn scan_at(size: u64, seed: u64, at: DateTime<Utc>) -> ScanResult {
    let policy = policy();
    let mut result = scan(
        estate(size, seed, &policy),
        &policy,
        ScanScope::default(),
        SeverityFilter::All,
    )
    .await;
    // One estate that changes over time, as a real account does.
    result.meta.source = "demo".to_string();
    result.meta.scan_timestamp = at;
    result.meta.scan_id = ScanId(at.timestamp_micros() as u64);
    result
}

fn query(now: DateTime<Utc>, days_back: u32, group_by: GroupBy) -> HistoryQuery {
    HistoryQuery {
        source: "demo".to_string(),
        scope: ScanScope::default(),
        days_back,
        group_by,
        limit: 10,
        now,
    }
}

#[tokio::test]
async fn scans_over_time_give_the_expected_history_and_trend() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 10, d, h, 0, 0).unwrap();
    // Scores differ by seed; keep what each scan scored to check the points against.
    let mut scores = Vec::new();
    for (seed, at) in [
        (1, day(1, 9)),
        (2, day(1, 17)),
        (3, day(8, 9)),
        (4, day(20, 9)),
    ] {
        let result = scan_at(200, seed, at).await;
        scores.push(result.totals.compliance_score);
        store.record_scan(&result, &Origin::Cli).await.unwrap();
    }
    let now = day(21, 0);

    let report = history_report(&store, &query(now, 30, GroupBy::Day))
        .await
        .unwrap();
    let periods: Vec<&str> = report.history.iter().map(|p| p.period.as_str()).collect();
    assert_eq!(periods, ["2026-10-01", "2026-10-08", "2026-10-20"]);
    assert_eq!(report.history[0].scans, 2);
    // A period shows its last scan.
    assert_eq!(report.history[0].totals.compliance_score, scores[1]);
    assert_eq!(report.history[2].totals.compliance_score, scores[3]);
    let change = scores[3] - scores[1];
    assert!((report.score_change - change).abs() < 1e-12);
    let expected = if change > 0.005 {
        Trend::Improving
    } else if change < -0.005 {
        Trend::Declining
    } else {
        Trend::Stable
    };
    assert_eq!(report.trend, expected);
    assert_eq!(report.scans_considered, 4);
    let drift = report.drift.expect("two scans with findings give a drift");
    assert!(drift.became_non_compliant_count + drift.no_longer_non_compliant_count > 0);

    // A narrower window sees only the last scan; months fold everything into one point.
    let recent = history_report(&store, &query(now, 5, GroupBy::Day))
        .await
        .unwrap();
    assert_eq!(recent.scans_considered, 1);
    assert_eq!(recent.trend, Trend::Stable);
    assert!(recent.drift.is_none());
    let monthly = history_report(&store, &query(now, 30, GroupBy::Month))
        .await
        .unwrap();
    assert_eq!(monthly.history.len(), 1);
    assert_eq!(monthly.history[0].scans, 4);
    // The clock decides: seen from before the last scan, it is not there.
    let earlier = history_report(&store, &query(day(10, 0), 30, GroupBy::Week))
        .await
        .unwrap();
    assert_eq!(earlier.scans_considered, 3);
    store.close();
}

#[tokio::test]
async fn scans_of_other_scopes_and_sources_are_not_mixed_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let now = Utc::now();
    let mut narrow = scan_at(100, 1, now - chrono::Duration::hours(2)).await;
    narrow.meta.scope.regions.insert("us-east-1".to_string());
    store.record_scan(&narrow, &Origin::Cli).await.unwrap();
    let mut other_source = scan_at(100, 2, now - chrono::Duration::hours(1)).await;
    other_source.meta.source = "aws".to_string();
    store
        .record_scan(&other_source, &Origin::Cli)
        .await
        .unwrap();
    let report = history_report(&store, &query(now, 1, GroupBy::Day))
        .await
        .unwrap();
    assert_eq!(report.scans_considered, 0);
    assert!(report.notes.iter().any(|n| n.contains("2 scans of other")));
}

#[tokio::test]
async fn a_restart_keeps_history_and_findings_beyond_retention_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        findings_scans: 2,
        summary_days: 400,
    };
    let now = Utc::now();
    let mut ids = Vec::new();
    {
        let store = Store::open(dir.path(), retention).unwrap();
        for (i, seed) in [5, 6, 7].into_iter().enumerate() {
            let at = now - chrono::Duration::minutes(10 - i as i64);
            let result = scan_at(100, seed, at).await;
            ids.push(store.record_scan(&result, &Origin::Cli).await.unwrap());
        }
        store.close();
    }
    let store = Store::open(dir.path(), retention).unwrap();
    let recent = store.recent_scans(10).await.unwrap();
    assert_eq!(
        recent.iter().map(|s| s.scan_id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "every summary survives the restart, newest first"
    );
    assert!(store.findings(ids[0]).await.unwrap().is_none(), "pruned");
    assert!(store.findings(ids[1]).await.unwrap().is_some());
    assert!(store.findings(ids[2]).await.unwrap().is_some());
    assert_eq!(store.status().await.unwrap().scans, 3);
    // Summaries older than the retention go, with their findings; 400 days is the floor.
    let mut old = scan_at(10, 8, now - chrono::Duration::days(401)).await;
    old.meta.scope.regions.insert("eu-west-1".to_string());
    let old_id = store.record_scan(&old, &Origin::Cli).await.unwrap();
    assert_eq!(store.status().await.unwrap().scans, 3);
    assert!(
        store.findings(old_id).await.unwrap().is_none(),
        "no findings are left behind by a summary that aged out"
    );
}

#[test]
fn a_store_from_a_newer_tagguard_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            let mut table = txn.open_table(meta).unwrap();
            table.insert("schema_version", SCHEMA_VERSION + 1).unwrap();
        }
        txn.commit().unwrap();
    }
    match Store::open(dir.path(), Retention::default()) {
        Err(StoreError::TooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[test]
fn an_unusable_data_dir_is_an_error_naming_the_file_not_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let error = Store::open(&blocker, Retention::default())
        .err()
        .expect("a file is not a directory");
    let text = error.to_string();
    assert!(text.contains(STORE_FILE), "{text}");
    assert!(!text.contains(&*dir.path().to_string_lossy()), "{text}");
}

/// Kills `tagguard serve --stdio` with SIGKILL while tool calls are recording scans, then
/// checks that the store opens and holds every scan whose answer had arrived (an answer is
/// sent only after its scan's commit), intact with its findings.
#[test]
fn sigkill_during_writes_loses_no_committed_scan() {
    let dir = tempfile::tempdir().unwrap();
    // Keep the findings of every scan, so that all acknowledged ones can be checked.
    let config = dir.path().join("tagguard.toml");
    let text = tagguard::config::DEFAULT_CONFIG_TOML
        .replace("findings_scans = 20", "findings_scans = 1000");
    assert!(text.contains("findings_scans = 1000"));
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(["serve", "--stdio", "--size", "300", "--config"])
        .arg(&config)
        .env("TAGGUARD_DATA_DIR", dir.path())
        .env_remove("TAGGUARD_SOURCE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut send = |message: Value| {
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    };
    send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}));
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    // Many calls at once, each a fresh scan (distinct arguments, no cache, so neither the
    // loop guard nor the cache answers): the writer is busy committing when the kill comes.
    for id in 1..=200 {
        send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "check_tag_compliance", "arguments": {"limit": id, "force_refresh": true}}}));
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.len() < 15 && Instant::now() < deadline {
        let line = lines.next().expect("the server answers").unwrap();
        let message: Value = serde_json::from_str(&line).unwrap();
        match message["result"]["structuredContent"]["scan"]["scan_id"].as_str() {
            Some(scan_id) => acknowledged.push(scan_id.to_string()),
            None if message["id"] == 0 => {}
            None => panic!("a call failed: {message}"),
        }
    }
    assert!(acknowledged.len() >= 15, "answers arrived");
    child.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush, no commit runs.
    child.wait().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(dir.path(), Retention::default()).expect("the file opens");
        let stored = store.recent_scans(1000).await.unwrap();
        let ids: Vec<String> = stored
            .iter()
            .map(|s| ScanId(s.scan_id).to_string())
            .collect();
        for id in &acknowledged {
            let position = ids.iter().position(|s| s == id);
            let summary = &stored[position.unwrap_or_else(|| panic!("{id} was lost"))];
            assert_eq!(summary.totals.total_resources, 300);
            assert_eq!(summary.origin.to_string(), "mcp:check_tag_compliance");
            let findings = store.findings(summary.scan_id).await.unwrap().unwrap();
            assert_eq!(
                findings.len() as u64,
                summary.totals.error_count + summary.totals.warning_count,
                "{id}: every finding is there"
            );
        }
    });
}

#[tokio::test]
async fn drift_skips_scans_that_listed_warnings_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let now = Utc::now();
    for (i, seed) in [1, 1].into_iter().enumerate() {
        let at = now - chrono::Duration::minutes(30 - i as i64);
        store
            .record_scan(&scan_at(100, seed, at).await, &Origin::Cli)
            .await
            .unwrap();
    }
    // A later scan of the same estate that listed warnings only: no errors to compare.
    let mut warnings_only = scan_at(100, 1, now - chrono::Duration::minutes(1)).await;
    warnings_only.meta.severity_filter = SeverityFilter::WarningsOnly;
    warnings_only
        .tally
        .violations
        .retain(|v| v.finding.severity == tagguard::domain::Severity::Warning);
    store
        .record_scan(&warnings_only, &Origin::Cli)
        .await
        .unwrap();
    let report = history_report(&store, &query(now, 1, GroupBy::Day))
        .await
        .unwrap();
    assert_eq!(report.scans_considered, 3);
    let drift = report.drift.expect("the two full scans are compared");
    assert_eq!(
        (
            drift.became_non_compliant_count,
            drift.no_longer_non_compliant_count
        ),
        (0, 0),
        "the same estate twice: nothing changed"
    );
}

/// The drift between two scans of one estate is exactly what changed: here one resource's
/// invalid value became another invalid value, one resource was fixed, and one broke.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_names_exactly_what_changed_between_two_scans() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Retention::default()).unwrap();
    let estate = dir.path().join("estate.json");
    let bucket = |name: &str, cost_center: &str| {
        format!(
            r#"{{"ResourceARN": "arn:aws:s3:::{name}", "Tags": [{{"Key": "CostCenter", "Value": "{cost_center}"}}, {{"Key": "Owner", "Value": "ops@example.com"}}]}}"#
        )
    };
    let snapshot =
        |entries: &[String]| format!(r#"{{"ResourceTagMappingList": [{}]}}"#, entries.join(","));
    let policy = policy();
    let mut at = Utc::now() - chrono::Duration::minutes(10);
    let mut scan_file = |text: String| {
        std::fs::write(&estate, text).unwrap();
        let source =
            std::sync::Arc::new(tagguard::source::SnapshotSource::open(&estate).expect("snapshot"));
        at += chrono::Duration::minutes(1);
        let when = at;
        let policy = policy.clone();
        async move {
            let mut result = scan(source, &policy, ScanScope::default(), SeverityFilter::All).await;
            result.meta.scan_timestamp = when;
            result.meta.scan_id = ScanId(when.timestamp_micros() as u64);
            result
        }
    };
    let before = scan_file(snapshot(&[
        bucket("changes", "Mkt"),
        bucket("gets-fixed", "Nope"),
        bucket("breaks", "Finance"),
        bucket("stays", "Finance"),
    ]))
    .await;
    let after = scan_file(snapshot(&[
        bucket("changes", "Sales-x"),
        bucket("gets-fixed", "Finance"),
        bucket("breaks", "Bogus"),
        bucket("stays", "Finance"),
    ]))
    .await;
    let source = before.meta.source.clone();
    store.record_scan(&before, &Origin::Cli).await.unwrap();
    store.record_scan(&after, &Origin::Cli).await.unwrap();
    let report = history_report(
        &store,
        &HistoryQuery {
            source,
            ..query(Utc::now(), 1, GroupBy::Day)
        },
    )
    .await
    .unwrap();
    let drift = report.drift.expect("two scans with findings");
    assert_eq!(drift.became_non_compliant, ["arn:aws:s3:::breaks"]);
    assert_eq!(drift.no_longer_non_compliant, ["arn:aws:s3:::gets-fixed"]);
    assert_eq!(drift.tag_changes.len(), 1, "{:?}", drift.tag_changes);
    let change = &drift.tag_changes[0];
    assert_eq!(
        (
            change.resource_arn.as_str(),
            change.tag.as_str(),
            change.change.as_str()
        ),
        ("arn:aws:s3:::changes", "CostCenter", "changed"),
        "exactly one tag change, on the resource failing in both scans"
    );
    assert_eq!(
        (change.before.as_deref(), change.after.as_deref()),
        (Some("Mkt"), Some("Sales-x"))
    );
}

/// A scan handed in through the spool is stored once when a process opens the store, even
/// when the same file turns up again (a merge cut short before the file was deleted).
#[tokio::test]
async fn a_spooled_scan_is_merged_once() {
    let dir = tempfile::tempdir().unwrap();
    let result = scan_at(60, 4, Utc::now()).await;
    let spool = Spool::of(dir.path());
    let name = spool.hand_in(&result, &Origin::Cli).expect("spooled");
    let file = dir.path().join(SPOOL_DIR).join(&name);
    let kept = std::fs::read(&file).unwrap();
    for round in 0..2 {
        let store = Store::open(dir.path(), Retention::default()).expect("opens and merges");
        let stored = store.recent_scans(10).await.unwrap();
        assert_eq!(stored.len(), 1, "round {round}: stored once");
        assert_eq!(stored[0].scan_id, result.meta.scan_id.0);
        assert_eq!(stored[0].totals.total_resources, 60);
        assert!(!file.exists(), "merged files are deleted");
        let findings = store.findings(stored[0].scan_id).await.unwrap().unwrap();
        assert_eq!(
            findings.len() as u64,
            result.totals.error_count + result.totals.warning_count
        );
        store.close();
        // The file comes back, as after a crash between the commit and the deletion.
        std::fs::write(&file, &kept).unwrap();
    }
    // An unreadable file is set aside, not merged and not lost.
    std::fs::write(
        dir.path().join(SPOOL_DIR).join("1-2-x.scan.json"),
        b"{not json",
    )
    .unwrap();
    let store = Store::open(dir.path(), Retention::default()).expect("opens");
    assert_eq!(store.recent_scans(10).await.unwrap().len(), 1);
    assert!(
        dir.path()
            .join(SPOOL_DIR)
            .join("unreadable/1-2-x.scan.json")
            .exists()
    );
}

/// `tagguard scan`s run while `tagguard serve` owns the data directory are recorded all the
/// same: handed to the server through the spool and merged while it runs, each once.
#[test]
fn scans_run_beside_a_server_are_recorded_by_it_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--size",
            "80",
        ])
        .env("TAGGUARD_DATA_DIR", dir.path())
        .env_remove("TAGGUARD_SOURCE")
        .env_remove("TAGGUARD_AUTH_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let mut log = BufReader::new(server.stderr.take().unwrap()).lines();
    let first = log
        .next()
        .expect("the server says where it serves")
        .unwrap();
    assert!(first.contains("serving MCP"), "{first}");
    // Concurrent scans of other sizes (distinct scans) in the same data directory.
    let scans: Vec<_> = (0..4)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_tagguard"))
                .args([
                    "scan",
                    "--size",
                    &(40 + i).to_string(),
                    "--format",
                    "json",
                    "--no-progress",
                ])
                .env("TAGGUARD_DATA_DIR", dir.path())
                .env_remove("TAGGUARD_SOURCE")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a scan starts")
        })
        .collect();
    let mut ids = Vec::new();
    for scan in scans {
        let out = scan.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("another tagguard process owns the store"),
            "{stderr}"
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        let notes = json["notes"].to_string();
        assert!(notes.contains("handed to it"), "{notes}");
        ids.push(json["scan_id"].as_str().unwrap().to_string());
    }
    // The server merges the spool while it runs.
    let spool = dir.path().join(SPOOL_DIR);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&spool).map_or(0, |d| d.filter(|e| e.is_ok()).count()) > 0 {
        assert!(
            Instant::now() < deadline,
            "the server did not merge the spool"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(server.wait().unwrap().success());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(dir.path(), Retention::default()).expect("the file opens");
        let stored: Vec<String> = store
            .recent_scans(100)
            .await
            .unwrap()
            .iter()
            .map(|s| ScanId(s.scan_id).to_string())
            .collect();
        let mut want = ids.clone();
        want.sort();
        let mut got = stored.clone();
        got.sort();
        assert_eq!(got, want, "each scan once, none lost");
    });
}
