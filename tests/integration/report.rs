//! The compliance report against what the demo estate's generator recorded and what its bill
//! prices: every table, ranking and recommendation figure is recomputed here from the
//! generator's violations and the bill's per-resource costs, not from the scan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use tagguard::config::CostConfig;
use tagguard::cost::synthetic::SyntheticBilling;
use tagguard::cost::{CostService, CostSource};
use tagguard::domain::{ResourceType, ScanScope, Usd};
use tagguard::report::compliance::{Recommendation, RecommendationKind, ReportOptions};
use tagguard::report::document::{ReportFormat, render};
use tagguard::source::{SyntheticSource, SyntheticSpec};
use tagguard::tools::{CallContext, ReportQuestion, ToolEnv, build_report};

use crate::support::{estate, policy};

/// One resource as the oracle sees it.
struct Known {
    resource_type: ResourceType,
    account: String,
    region: String,
    cost: Option<Usd>,
    tag_count: usize,
    /// (violation type, tag, severity) from the generator.
    violations: Vec<(String, String, String)>,
}

impl Known {
    fn non_compliant(&self) -> bool {
        self.violations.iter().any(|(_, _, s)| s == "error")
    }
}

fn oracle(source: &SyntheticSource, billing: &SyntheticBilling) -> BTreeMap<String, Known> {
    let all = ScanScope::default();
    let mut known: BTreeMap<String, Known> = source
        .resources(&all)
        .into_iter()
        .map(|mut r| {
            billing.price_locally(&mut r);
            (
                r.arn.clone(),
                Known {
                    resource_type: r.resource_type.clone(),
                    account: r.account_id.to_string(),
                    region: r.region.to_string(),
                    cost: r.monthly_cost,
                    tag_count: r.tags.len(),
                    violations: Vec::new(),
                },
            )
        })
        .collect();
    for v in source.ground_truth(&all).violations {
        known
            .get_mut(&v.resource_arn)
            .expect("a violation of a generated resource")
            .violations
            .push((
                v.violation_type.to_string(),
                v.tag_name.clone(),
                v.severity.to_string(),
            ));
    }
    known
}

/// Known cost summed, and how many had none.
fn sums<'a>(resources: impl Iterator<Item = &'a Known>) -> (u64, Usd, u64) {
    let (mut n, mut total, mut unknown) = (0, Usd::ZERO, 0);
    for r in resources {
        n += 1;
        match r.cost {
            Some(c) => total += c,
            None => unknown += 1,
        }
    }
    (n, total, unknown)
}

fn check(r: &Recommendation, expected: (u64, Usd, u64)) {
    assert_eq!(
        (
            r.resources,
            r.monthly_cost.monthly_cost,
            r.monthly_cost.unknown
        ),
        expected,
        "{}",
        r.title
    );
    assert!(
        r.examples.len() <= 5 && !r.examples.is_empty(),
        "{}",
        r.title
    );
    // The examples are the costliest the recommendation covers, costliest first.
    let costs: Vec<_> = r.examples.iter().map(|e| e.monthly_cost).collect();
    let mut sorted = costs.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(costs, sorted, "{}", r.title);
}

#[tokio::test]
async fn every_figure_of_the_report_is_the_generators_and_the_bills() {
    let policy = policy();
    let spec = SyntheticSpec {
        size: 1_200,
        seed: 4242,
    };
    let source = estate(spec.size, spec.seed, &policy);
    let today = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
    let billing = Arc::new(SyntheticBilling::as_of(spec, policy.clone(), today).unwrap());
    let known = oracle(&source, &billing);
    let costs = Arc::new(CostService::new(
        billing.clone(),
        policy.clone(),
        None,
        CostConfig::default(),
    ));
    let engine = tagguard::engine::EngineHandle::start(tagguard::config::Config::default())
        .await
        .unwrap();
    let scans = Arc::new(
        tagguard::scans::ScanService::new(
            engine.clone(),
            policy.clone(),
            source.clone(),
            None,
            std::time::Duration::ZERO,
        )
        .with_costs(Some(costs.clone())),
    );
    let env = ToolEnv::new(scans).with_cost(costs);
    let question = ReportQuestion {
        resource_types: Vec::new(),
        regions: Vec::new(),
        accounts: Vec::new(),
        force_refresh: true,
        deadline_seconds: None,
        history_days: 30,
        options: ReportOptions {
            recommendations: true,
        },
    };
    let built = build_report(&env, &CallContext::default(), question)
        .await
        .expect("a report");
    engine.shutdown().await;
    let report = built.report;

    // Totals and cost.
    let non_compliant: Vec<&Known> = known.values().filter(|k| k.non_compliant()).collect();
    assert_eq!(report.totals.total_resources, known.len() as u64);
    assert_eq!(
        report.totals.non_compliant_resources,
        non_compliant.len() as u64
    );
    let cost = report.cost.expect("the scan summed costs");
    let (_, all_cost, all_unknown) = sums(known.values());
    assert_eq!(
        (cost.total.monthly_cost, cost.total.unknown),
        (all_cost, all_unknown)
    );
    let (_, nc_cost, nc_unknown) = sums(non_compliant.iter().copied());
    assert_eq!(
        (cost.non_compliant.monthly_cost, cost.non_compliant.unknown),
        (nc_cost, nc_unknown)
    );

    // Tables per account, region and type: counts and the non-compliant cost.
    for (rows, key) in [
        (&report.by_account, 0),
        (&report.by_region, 1),
        (&report.by_resource_type, 2),
    ] {
        let name = |k: &Known| match key {
            0 => k.account.clone(),
            1 => k.region.clone(),
            _ => k.resource_type.to_string(),
        };
        let names: BTreeSet<String> = known.values().map(name).collect();
        assert_eq!(
            rows.iter().map(|r| r.name.clone()).collect::<BTreeSet<_>>(),
            names
        );
        for row in rows {
            let members: Vec<&Known> = known.values().filter(|k| name(k) == row.name).collect();
            let bad: Vec<&Known> = members
                .iter()
                .copied()
                .filter(|k| k.non_compliant())
                .collect();
            assert_eq!(row.total, members.len() as u64, "{}", row.name);
            assert_eq!(row.non_compliant, bad.len() as u64, "{}", row.name);
            assert_eq!(
                row.compliant + row.not_applicable,
                (members.len() - bad.len()) as u64
            );
            let (_, c, u) = sums(bad.into_iter());
            let got = row.non_compliant_cost.expect("costs summed");
            assert_eq!((got.monthly_cost, got.unknown), (c, u), "{}", row.name);
        }
        // Most non-compliant first.
        assert!(
            rows.windows(2)
                .all(|w| w[0].non_compliant >= w[1].non_compliant)
        );
    }

    // (type, tag, violation) groups: each resource once.
    let mut groups: BTreeMap<(String, String, String), Vec<&Known>> = BTreeMap::new();
    for k in known.values() {
        let mut seen = BTreeSet::new();
        for (kind, tag, _) in &k.violations {
            if seen.insert((kind.clone(), tag.clone())) {
                groups
                    .entry((k.resource_type.to_string(), tag.clone(), kind.clone()))
                    .or_default()
                    .push(k);
            }
        }
    }
    let most = groups.values().map(Vec::len).max().unwrap() as u64;
    assert_eq!(report.top_violations_by_count[0].resources, most);
    for g in report
        .top_violations_by_count
        .iter()
        .chain(&report.top_violations_by_cost)
    {
        let members = &groups[&(
            g.resource_type.clone(),
            g.tag.clone(),
            g.violation_type.to_string(),
        )];
        let (n, c, u) = sums(members.iter().copied());
        assert_eq!(
            (
                g.resources,
                g.monthly_cost.monthly_cost,
                g.monthly_cost.unknown
            ),
            (n, c, u)
        );
    }
    let costliest = groups
        .values()
        .map(|m| sums(m.iter().copied()).1)
        .max()
        .unwrap();
    assert_eq!(
        report.top_violations_by_cost[0].monthly_cost.monthly_cost,
        costliest
    );

    // Recommendations: each one's resources and spend, from the generator's record.
    let recommendations = report.recommendations.clone().expect("asked for");
    assert!(!recommendations.is_empty());
    let kinds: BTreeSet<_> = recommendations.iter().map(|r| r.kind).collect();
    for wanted in [
        RecommendationKind::TagMissing,
        RecommendationKind::FixValues,
        RecommendationKind::FixFormat,
        RecommendationKind::TagUntagged,
    ] {
        assert!(kinds.contains(&wanted), "no {wanted:?} in {kinds:?}");
    }
    for r in &recommendations {
        let with = |kind: &str, tag: &str, k: &Known| {
            k.violations.iter().any(|(v, t, _)| v == kind && t == tag)
        };
        let members: Vec<&Known> = match r.kind {
            RecommendationKind::TagMissing => {
                let (t, tag) = (
                    r.resource_type.as_deref().unwrap(),
                    r.tag.as_deref().unwrap(),
                );
                known
                    .values()
                    .filter(|k| {
                        k.resource_type.as_str() == t && with("missing_required_tag", tag, k)
                    })
                    .collect()
            }
            RecommendationKind::FillEmpty => {
                let (t, tag) = (
                    r.resource_type.as_deref().unwrap(),
                    r.tag.as_deref().unwrap(),
                );
                known
                    .values()
                    .filter(|k| k.resource_type.as_str() == t && with("empty_value", tag, k))
                    .collect()
            }
            RecommendationKind::FixValues => known
                .values()
                .filter(|k| with("invalid_value", r.tag.as_deref().unwrap(), k))
                .collect(),
            RecommendationKind::FixFormat => known
                .values()
                .filter(|k| with("invalid_format", r.tag.as_deref().unwrap(), k))
                .collect(),
            RecommendationKind::NormaliseValueCase => known
                .values()
                .filter(|k| with("value_case_mismatch", r.tag.as_deref().unwrap(), k))
                .collect(),
            RecommendationKind::NormaliseKeyCase => known
                .values()
                .filter(|k| with("key_case_mismatch", r.tag.as_deref().unwrap(), k))
                .collect(),
            RecommendationKind::TagUntagged => known
                .values()
                .filter(|k| k.tag_count == 0 && k.non_compliant())
                .collect(),
            RecommendationKind::FocusAccount => non_compliant
                .iter()
                .copied()
                .filter(|k| Some(k.account.as_str()) == r.account_id.as_deref())
                .collect(),
            RecommendationKind::PriceUnknown => non_compliant
                .iter()
                .copied()
                .filter(|k| k.cost.is_none())
                .collect(),
            RecommendationKind::RenewExemptions => panic!("the default policy exempts nothing"),
        };
        check(r, sums(members.into_iter()));
        // The title states the count and the spend it covers.
        assert!(
            r.title.contains(&tagguard_thousands(r.resources)),
            "{}",
            r.title
        );
        assert!(
            r.title.contains(&r.monthly_cost.monthly_cost.display()),
            "{}",
            r.title
        );
    }
    // Costliest first.
    assert!(
        recommendations
            .windows(2)
            .all(|w| { w[0].monthly_cost.monthly_cost >= w[1].monthly_cost.monthly_cost })
    );

    // The gap is billing's own answer, and every format carries the same figures.
    let figures = report.cost_gap.figures.as_ref().expect("billing answered");
    assert_eq!(figures.data_source, "demo_billing");
    let markdown = render(&report, ReportFormat::Markdown);
    let html = render(&report, ReportFormat::Html);
    for text in [&markdown, &html] {
        assert!(text.contains(&cost.non_compliant.monthly_cost.display()));
        assert!(text.contains(&recommendations[0].monthly_cost.monthly_cost.display()));
        assert!(text.contains(&figures.total_spend.display()));
    }
    let json: serde_json::Value =
        serde_json::from_str(&render(&report, ReportFormat::Json)).expect("JSON");
    assert_eq!(json["non_compliant_resources"], non_compliant.len() as u64);
    let csv_text = render(&report, ReportFormat::Csv);
    let mut csv = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    let summary = rows
        .iter()
        .find(|r| &r[0] == "summary")
        .expect("a summary row");
    assert_eq!(&summary[4], non_compliant.len().to_string());
    assert_eq!(&summary[10], nc_cost.cents_text());
    let listed = rows.iter().filter(|r| &r[0] == "recommendation").count();
    assert_eq!(listed, recommendations.len());
}

fn tagguard_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn tagguard(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tagguard"))
        .args(args)
        .env_remove("TAGGUARD_POLICY")
        .env_remove("TAGGUARD_CONFIG")
        .env("TAGGUARD_DATA_DIR", crate::support::data_dir())
        .output()
        .expect("the tagguard binary runs")
}

/// A snapshot in the form of `aws resourcegroupstaggingapi get-resources`.
fn snapshot(dir: &std::path::Path, resources: &[(&str, &[(&str, &str)])]) -> String {
    let list: Vec<serde_json::Value> = resources
        .iter()
        .map(|(arn, tags)| {
            serde_json::json!({
                "ResourceARN": arn,
                "Tags": tags.iter().map(|(k, v)| serde_json::json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let path = dir.join("snapshot.json");
    std::fs::write(
        &path,
        serde_json::json!({ "ResourceTagMappingList": list }).to_string(),
    )
    .unwrap();
    format!("file:{}", path.display())
}

fn report_json(source: &str) -> serde_json::Value {
    let out = tagguard(&["report", "--format", "json", "--source", source]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

const GOOD: [(&str, &str); 4] = [
    ("CostCenter", "Engineering"),
    ("Owner", "a@example.com"),
    ("Environment", "production"),
    ("Application", "checkout"),
];

#[test]
fn a_compliant_estate_gets_no_recommendation_and_each_problem_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let arn = |n: u32| format!("arn:aws:ec2:us-east-1:111122223333:instance/i-{n:017x}");
    let arns: Vec<String> = (1..=6).map(arn).collect();
    let clean = snapshot(
        dir.path(),
        &arns
            .iter()
            .map(|a| (a.as_str(), &GOOD[..]))
            .collect::<Vec<_>>(),
    );
    let report = report_json(&clean);
    assert_eq!(report["compliance_score"], 1.0);
    assert_eq!(report["recommendations"], serde_json::json!([]));

    // Owner values that are user names, not emails: one recommendation, saying so, on the
    // three resources that have them; nothing else.
    let user = |name: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut tags = GOOD.to_vec();
        tags[1] = ("Owner", name);
        tags
    };
    let (a, b, c) = (user("jsmith"), user("adoe"), user("bob.k"));
    let mixed = snapshot(
        dir.path(),
        &[
            (arns[0].as_str(), &a[..]),
            (arns[1].as_str(), &b[..]),
            (arns[2].as_str(), &c[..]),
            (arns[3].as_str(), &GOOD[..]),
        ],
    );
    let report = report_json(&mixed);
    let recs = report["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["kind"], "fix_format");
    assert_eq!(recs[0]["resources"], 3);
    let title = recs[0]["title"].as_str().unwrap();
    assert!(title.contains("user names, not email addresses"), "{title}");
    // The file source has no cost: the spend is unknown, never $0.
    assert_eq!(recs[0]["monthly_cost"]["known"], 0);
    assert!(title.contains("monthly cost unknown"), "{title}");

    // Values differing only in case: normalise them.
    let mut cased = GOOD.to_vec();
    cased[2] = ("Environment", "Production");
    let case = snapshot(
        dir.path(),
        &[
            (arns[0].as_str(), &cased[..]),
            (arns[1].as_str(), &cased[..]),
        ],
    );
    let report = report_json(&case);
    let recs = report["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["kind"], "normalise_value_case");
    assert!(
        recs[0]["detail"]
            .as_str()
            .unwrap()
            .contains("'Production' → 'production' (2)"),
        "{}",
        recs[0]["detail"]
    );
}

#[test]
fn values_from_the_estate_cannot_inject_into_html_csv_or_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = [
        ("CostCenter", "<script>alert(1)</script>"),
        ("Owner", "=HYPERLINK(\"http://x\")"),
        ("Environment", "| **x** |"),
    ];
    let source = snapshot(
        dir.path(),
        &[(
            "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0",
            &hostile[..],
        )],
    );
    let out = |format: &str| {
        let o = tagguard(&["report", "--format", format, "--source", &source]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let html = out("html");
    assert!(!html.contains("<script"), "raw script in the page");
    assert!(html.contains("&lt;script&gt;"));
    let csv_text = out("csv");
    for record in csv::Reader::from_reader(csv_text.as_bytes()).records() {
        for cell in record.unwrap().iter() {
            assert!(!cell.starts_with('='), "formula cell {cell}");
        }
    }
    let markdown = out("markdown");
    assert!(!markdown.contains("<script"));
    assert!(!markdown.contains("| **x** |"));
}

/// Chromium: `TAGGUARD_TEST_CHROMIUM`, else the system's. The test set-up installs it; a
/// test that needs it fails when it is not there.
fn chromium() -> String {
    if let Ok(path) = std::env::var("TAGGUARD_TEST_CHROMIUM") {
        return path;
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success());
        if let Some(o) = found {
            return String::from_utf8_lossy(&o.stdout).trim().to_string();
        }
    }
    panic!(
        "Chromium is not installed: scripts/test.sh installs it (Debian: apt-get install chromium), or set TAGGUARD_TEST_CHROMIUM"
    );
}

/// Hosts Chromium itself asks, whatever the page (its clock and sign-in checks); any other
/// request comes from the page. Font and script hosts (fonts.googleapis.com, gstatic) are not
/// among them.
const CHROMIUM_OWN_HOSTS: [&str; 3] = [
    "clients2.google.com",
    "accounts.google.com",
    "www.google.com",
];

/// Runs headless Chromium on `page` with `mode` (`--dump-dom`, `--print-to-pdf=…`), every
/// request to the network sent to a local proxy that records its host: returns the output
/// and the hosts the page asked for.
fn render_in_chromium(page: &std::path::Path, mode: &str) -> (String, Vec<String>) {
    use std::io::Read;
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    let hosts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hosts.clone();
    std::thread::spawn(move || {
        for stream in proxy.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut head = [0u8; 512];
            let n = stream.read(&mut head).unwrap_or(0);
            // `CONNECT host:443 HTTP/1.1` or `GET http://host/path HTTP/1.1`.
            let line = String::from_utf8_lossy(&head[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let target = line.split(' ').nth(1).unwrap_or("");
            let host = target
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .split(['/', ':'])
                .next()
                .unwrap_or("")
                .to_string();
            if !CHROMIUM_OWN_HOSTS.contains(&host.as_str()) {
                seen.lock().unwrap().push(host);
            }
        }
    });
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--proxy-server=http://127.0.0.1:{port}"),
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=3000",
            mode,
            &format!("file://{}", page.display()),
        ])
        .output()
        .expect("Chromium runs");
    assert!(
        out.status.success(),
        "Chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Requests still in flight when Chromium ends have been accepted already.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let hosts = hosts.lock().unwrap().clone();
    (String::from_utf8_lossy(&out.stdout).into_owned(), hosts)
}

#[test]
fn the_html_report_renders_and_prints_in_chromium_without_fetching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let out = tagguard(&[
        "report",
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
        "--source",
        "demo",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The proxy sees what a page fetches: one that loads an image from the web is counted.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><img src=\"http://tagguard.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let (_, fetched) = render_in_chromium(&control, "--dump-dom");
    assert!(
        fetched.iter().any(|h| h == "tagguard.invalid"),
        "the proxy did not see the control page's request: {fetched:?}"
    );

    let (dom, fetched) = render_in_chromium(&page, "--dump-dom");
    assert!(fetched.is_empty(), "the report fetched {fetched:?}");
    for chart in ["chart-score", "chart-tags", "chart-gap"] {
        let at = dom
            .find(&format!("id=\"{chart}\""))
            .unwrap_or_else(|| panic!("no {chart}"));
        assert!(dom[at..].contains("<svg"), "{chart} has no SVG");
    }
    assert!(dom.contains("Recommendations"));
    // Bars are drawn to scale: the tags chart has one per tag with violations.
    let tags_chart = &dom[dom.find("id=\"chart-tags\"").unwrap()..];
    let tags_chart = &tags_chart[..tags_chart.find("</figure>").unwrap()];
    assert!(tags_chart.matches("class=\"bar\"").count() >= 4);

    let pdf = dir.path().join("report.pdf");
    let (_, fetched) = render_in_chromium(&page, &format!("--print-to-pdf={}", pdf.display()));
    assert!(fetched.is_empty(), "printing fetched {fetched:?}");
    let bytes = std::fs::read(&pdf).expect("Chromium printed the report");
    assert!(bytes.starts_with(b"%PDF"));
    let pages = bytes.windows(10).filter(|w| w == b"/Type /Pag").count();
    assert!(pages >= 2, "the printed report has {pages} page objects");
}

#[test]
fn exemptions_are_counted_and_listed_and_aliases_accepted_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy: serde_json::Value =
        serde_json::from_str(tagguard::policy::DEFAULT_POLICY_JSON).unwrap();
    policy["required_tags"][0]["aliases"] = serde_json::json!(["cost-center", "cost_center"]);
    policy["exemptions"] = serde_json::json!([
        { "arn_pattern": "arn:aws:ec2:*:111122223333:instance/i-0legacy*", "reason": "legacy fleet, retired in Q1", "expires": "2099-03-31" },
        { "arn_pattern": "arn:aws:ec2:*:111122223333:instance/i-0old*", "reason": "was to be retired", "expires": "2020-01-31" },
    ]);
    policy["exemption_tag"] = serde_json::json!("tagguard-exempt");
    let policy_path = dir.path().join("policy.json");
    std::fs::write(&policy_path, policy.to_string()).unwrap();
    let arn = |id: &str| format!("arn:aws:ec2:us-east-1:111122223333:instance/{id}");
    let mut aliased = GOOD.to_vec();
    aliased[0] = ("cost-center", "Engineering");
    let tagged_exempt = [(
        "tagguard-exempt",
        "2099-12-31 moving to the platform account",
    )];
    let tagged_bad = [("tagguard-exempt", "soon")];
    let (legacy, old, by_tag, bad_tag, alias, good) = (
        arn("i-0legacy0000000001"),
        arn("i-0old000000000001"),
        arn("i-0000000000000003"),
        arn("i-0000000000000004"),
        arn("i-0000000000000005"),
        arn("i-0000000000000006"),
    );
    let source = snapshot(
        dir.path(),
        &[
            (legacy.as_str(), &[][..]),
            (old.as_str(), &[][..]),
            (by_tag.as_str(), &tagged_exempt[..]),
            (bad_tag.as_str(), &tagged_bad[..]),
            (alias.as_str(), &aliased[..]),
            (good.as_str(), &GOOD[..]),
        ],
    );
    let policy_arg = policy_path.to_str().unwrap();
    let out = tagguard(&[
        "scan", "--format", "json", "--source", &source, "--policy", policy_arg,
    ]);
    let scan: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(scan["total_resources"], 6);
    assert_eq!(scan["exempt_resources"], 2);
    assert_eq!(
        scan["compliant_resources"], 2,
        "the aliased and the good one"
    );
    assert_eq!(
        scan["non_compliant_resources"], 2,
        "the expired and the unreadable"
    );
    assert_eq!(scan["compliance_score"], 0.5);
    let exemptions = &scan["tally"]["exemptions"];
    let status = |a: &str| exemptions[a]["status"].as_str().unwrap().to_string();
    assert_eq!(status(&legacy), "active");
    assert_eq!(status(&by_tag), "active");
    assert_eq!(status(&old), "expired");
    assert_eq!(status(&bad_tag), "invalid");
    assert_eq!(
        exemptions[&by_tag]["reason"],
        "moving to the platform account"
    );
    assert_eq!(exemptions[&by_tag]["expires"], "2099-12-31");
    assert_eq!(
        exemptions[&legacy]["exempted_by"],
        "arn_pattern arn:aws:ec2:*:111122223333:instance/i-0legacy*"
    );
    assert!(exemptions.get(&good).is_none());
    let violations = scan["tally"]["violations"].as_array().unwrap();
    // Nothing of an exempt resource is validated; lapsed ones are.
    assert!(
        violations
            .iter()
            .all(|v| v["resource_arn"] != legacy.as_str() && v["resource_arn"] != by_tag.as_str())
    );
    assert!(violations.iter().any(|v| v["resource_arn"] == old.as_str()));
    let on_alias: Vec<&serde_json::Value> = violations
        .iter()
        .filter(|v| v["resource_arn"] == alias.as_str())
        .collect();
    assert_eq!(on_alias.len(), 1, "{on_alias:?}");
    assert_eq!(on_alias[0]["violation_type"], "key_alias");
    assert_eq!(on_alias[0]["severity"], "warning");
    assert_eq!(on_alias[0]["tag_name"], "CostCenter");
    assert_eq!(on_alias[0]["current_value"], "cost-center");

    // The report lists them, and asks to renew the two that lapsed.
    let out = tagguard(&[
        "report", "--format", "json", "--source", &source, "--policy", policy_arg,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["exemptions"].as_array().unwrap().len(), 4);
    let recs = report["recommendations"].as_array().unwrap();
    let renew = recs
        .iter()
        .find(|r| r["kind"] == "renew_exemptions")
        .expect("a renewal");
    assert_eq!(renew["resources"], 2);
    let respell = recs
        .iter()
        .find(|r| r["kind"] == "normalise_key_case")
        .expect("the alias");
    assert!(
        respell["detail"]
            .as_str()
            .unwrap()
            .contains("'cost-center' (1)")
    );

    // A policy whose exemption has no reason names the file, line and field.
    policy["exemptions"][0]["reason"] = serde_json::json!(" ");
    std::fs::write(&policy_path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
    let out = tagguard(&["policy", "check", policy_arg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exemptions[0].reason") && err.contains("line"),
        "{err}"
    );
}
