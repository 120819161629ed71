//! The `tagguard` command line: scan, check and show policies, and benchmark the pipeline.
//!
//! Exit codes: 0 every resource in scope is compliant; 1 some resource is not; 2 an error
//! (bad arguments, unreadable policy or source, or a partial scan whose readable resources
//! were all compliant: a gate must not pass on what it could not see).

use std::collections::BTreeSet;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use tagguard::config::Config;
use tagguard::domain::{ResourceType, ScanResult, ScanScope, SeverityFilter, TypeCheck};
use tagguard::engine::{EngineHandle, ScanRequest};
use tagguard::policy::{Policy, default_policy, load_policy};
use tagguard::report::{self, Format};
use tagguard::source::aws::AwsOptions;
use tagguard::source::{SourceSpec, SyntheticSpec};

/// mimalloc: scans allocate and free millions of small strings; the system allocator spent
/// about 40 % of a 1 M-resource scan in malloc and free (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tagguard", version, about = "Tag compliance for AWS estates", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan resources against the tagging policy.
    Scan(ScanArgs),
    /// Check or show a tagging policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the whole pipeline on a synthetic estate and report throughput and peak memory.
    Bench(BenchArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check a policy file; errors name the file, line, column and field (exit 2).
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Print the policy in effect as JSON.
    Show {
        /// The policy file (default: the built-in policy).
        #[arg(long, env = "TAGGUARD_POLICY")]
        policy: Option<PathBuf>,
    },
}

#[derive(Args)]
struct Common {
    /// Tagging policy file (default: the built-in policies/tagging_policy.json).
    #[arg(long, env = "TAGGUARD_POLICY")]
    policy: Option<PathBuf>,
    /// Engine and rate-limit configuration (default: the built-in config/tagguard.toml).
    #[arg(long, env = "TAGGUARD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct ScanArgs {
    /// Where resources come from: `demo` (a synthetic estate), `file:PATH` (the output of
    /// `aws resourcegroupstaggingapi get-resources`) or `aws` (the AWS APIs, read-only).
    #[arg(long, default_value = "demo", env = "TAGGUARD_SOURCE")]
    source: String,
    /// Resources in the demo estate (default 2000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=MAX_DEMO_SIZE))]
    size: Option<u64>,
    /// Seed of the demo estate: the same seed gives the same estate (default 42).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    common: Common,
    /// Resource types, comma-separated (`ec2:instance,s3:bucket`), or `all`.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    resource_types: Vec<String>,
    /// Regions, comma-separated, or `all`. AWS: default the config chain's region, `all` every
    /// enabled region. Other sources: default all they have.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Account ids, comma-separated. AWS: default the caller's account, `organization` every
    /// active account of the organisation. Other sources: default all they have.
    #[arg(long, value_delimiter = ',')]
    accounts: Vec<String>,
    /// AWS: the role assumed in accounts other than the caller's.
    #[arg(
        long,
        default_value = "OrganizationAccountAccessRole",
        env = "TAGGUARD_ROLE_NAME"
    )]
    role_name: String,
    /// AWS: the external id the role requires, if any.
    #[arg(long, env = "TAGGUARD_EXTERNAL_ID")]
    external_id: Option<String>,
    /// Which violations to list: all, errors_only or warnings_only (counts cover all).
    #[arg(long, default_value = "all")]
    severity: SeverityFilter,
    /// Output: table (a summary), json, csv or markdown.
    #[arg(long, default_value = "table")]
    format: Format,
    /// Never show a progress bar (it shows only when stderr is a terminal).
    #[arg(long)]
    no_progress: bool,
    /// Accept a scan that finds no resource in scope (exit 0 instead of 2).
    #[arg(long)]
    allow_empty: bool,
}

/// Largest demo estate: about 400 MiB of memory per million resources with violations kept.
const MAX_DEMO_SIZE: u64 = 10_000_000;

#[derive(Args)]
struct BenchArgs {
    /// Resources in the synthetic estate.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(0..=MAX_DEMO_SIZE))]
    size: u64,
    /// Seed of the estate.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Scans to run; the best and the median are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            eprintln!("tagguard: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("TAGGUARD_LOG") {
        Err(_) => EnvFilter::new("warn"),
        Ok(text) => EnvFilter::try_new(&text).unwrap_or_else(|e| {
            eprintln!(
                "tagguard: warning: TAGGUARD_LOG='{text}' is not a log filter ({e}); using 'warn'"
            );
            EnvFilter::new("warn")
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    if io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Policy(PolicyCommand::Check { file }) => {
            let policy = load(&Some(file.clone()))?;
            println!(
                "policy '{}' is valid: version {}, {} required tags, {} optional tags",
                file.display(),
                policy.version(),
                policy.required_tags().len(),
                policy.optional_tags().len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCommand::Show { policy }) => {
            let policy = load(&policy)?;
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &policy.document)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => runtime()?.block_on(scan(args)),
        Command::Bench(args) => runtime()?.block_on(bench(args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load(policy: &Option<PathBuf>) -> Result<Policy> {
    let policy = match policy {
        Some(path) => load_policy(path)?,
        None => default_policy(),
    };
    for warning in &policy.warnings {
        eprintln!("tagguard: warning: {warning}");
    }
    Ok(policy)
}

fn scope(args: &ScanArgs) -> Result<ScanScope> {
    let mut resource_types = BTreeSet::new();
    let is_aws = args.source == "aws";
    for text in args
        .resource_types
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
    {
        if text == "all" {
            continue;
        }
        let resource_type = text.parse::<ResourceType>()?;
        match resource_type.check() {
            TypeCheck::Known => {}
            TypeCheck::WrongCase(known) => {
                bail!(
                    "'{text}' is not a resource type; types are case-sensitive: did you mean '{known}'?"
                )
            }
            TypeCheck::Unknown => eprintln!(
                "tagguard: warning: '{text}' is not a resource type tagguard knows; if it is a typo, nothing will match it"
            ),
        }
        resource_types.insert(resource_type);
    }
    for account in args
        .accounts
        .iter()
        .filter(|a| !(is_aws && *a == "organization"))
    {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            bail!("'{account}' is not an account id: expected 12 digits");
        }
    }
    for region in args.regions.iter().map(|r| r.trim()) {
        if !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!("'{region}' is not a region: regions are lowercase, e.g. 'us-east-1'");
        }
    }
    for (option, values, keyword) in [
        ("--regions", &args.regions, "all"),
        ("--accounts", &args.accounts, "organization"),
    ] {
        if values.iter().any(|v| v.trim().is_empty()) {
            bail!("{option} has an empty value: {}", values.join(","));
        }
        if values.len() > 1 && values.iter().any(|v| v == keyword) {
            bail!(
                "{option} takes either '{keyword}' or a list, not both: {}",
                values.join(",")
            );
        }
    }
    // `all` and `organization` select rather than filter.
    let list = |items: &[String]| -> BTreeSet<String> {
        items
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "all" && s != "organization")
            .collect()
    };
    Ok(ScanScope {
        resource_types,
        regions: list(&args.regions),
        accounts: list(&args.accounts),
    })
}

async fn scan(args: ScanArgs) -> Result<ExitCode> {
    let policy = Arc::new(load(&args.common.policy)?);
    let config = Config::load(args.common.config.as_deref())?;
    let is_demo = args.source == "demo";
    if !is_demo && (args.size.is_some() || args.seed.is_some()) {
        bail!(
            "--size and --seed apply to the demo source only, not to '{}'",
            args.source
        );
    }
    let spec = match args
        .source
        .parse::<SourceSpec>()
        .map_err(anyhow::Error::msg)?
    {
        SourceSpec::Demo(default) => SourceSpec::Demo(SyntheticSpec {
            size: args.size.unwrap_or(default.size),
            seed: args.seed.unwrap_or(default.seed),
        }),
        SourceSpec::Aws(_) => SourceSpec::Aws(AwsOptions {
            all_regions: args.regions.iter().any(|r| r == "all"),
            organization: args.accounts.iter().any(|a| a == "organization"),
            role_name: args.role_name.clone(),
            external_id: args.external_id.clone(),
        }),
        other => other,
    };
    // Arguments first: a typo should not wait for a source to load.
    let scope = scope(&args)?;
    let source = spec.open(&policy).await?;
    let engine = EngineHandle::start(config).await?;
    let ticket = engine
        .start_scan(ScanRequest {
            source,
            policy,
            scope,
            severity: args.severity,
        })
        .await?;

    let bar = (!args.no_progress && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .expect("the template is a constant"),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let watcher = bar.clone().map(|bar| {
        let mut progress = ticket.progress();
        tokio::spawn(async move {
            while progress.changed().await.is_ok() {
                let p = progress.borrow_and_update().clone();
                let shards = p
                    .shards_total
                    .map(|t| format!("{}/{t} shards", p.shards_done))
                    .unwrap_or_else(|| "planning".into());
                bar.set_message(format!(
                    "{shards} · {} resources · {} non-compliant",
                    p.resources_scanned, p.non_compliant
                ));
            }
        })
    });
    let result = ticket.result().await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    engine.shutdown().await;
    let result = result?;

    if args.format != Format::Table {
        // The table shows notes itself; other formats carry them in the data, and a person
        // watching the terminal should still see them.
        for note in &result.notes {
            eprintln!("tagguard: note: {note}");
        }
    }
    let code = exit_code(&result, args.allow_empty);
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let written = report::write(&result, args.format, &mut out).and_then(|_| out.flush());
    match written {
        // A reader that stops early (`| head`) does not change what the scan found.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(code),
    }
}

fn exit_code(result: &ScanResult, allow_empty: bool) -> ExitCode {
    if result.partial {
        eprintln!(
            "tagguard: the scan is partial: {} issue(s), not every resource could be read (see issues in the output)",
            result.issues.len()
        );
    }
    if result.total_resources == 0 && !allow_empty {
        eprintln!(
            "tagguard: no resource in scope, so nothing was checked: check --source, --regions, --accounts and --resource-types (or pass --allow-empty)"
        );
        return ExitCode::from(2);
    }
    if !result.all_compliant() {
        ExitCode::from(1)
    } else if result.partial {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

async fn bench(args: BenchArgs) -> Result<ExitCode> {
    let policy = Arc::new(load(&args.common.policy)?);
    let config = Config::load(args.common.config.as_deref())?;
    let spec = SyntheticSpec {
        size: args.size,
        seed: args.seed,
    };
    let source = SourceSpec::Demo(spec).open(&policy).await?;
    let engine = EngineHandle::start(config).await?;
    let mut times = Vec::new();
    let mut last = None;
    for run in 1..=args.runs.max(1) {
        drop(last.take());
        let started = Instant::now();
        let result = engine
            .scan(ScanRequest {
                source: source.clone(),
                policy: policy.clone(),
                scope: ScanScope::default(),
                severity: SeverityFilter::All,
            })
            .await?;
        let elapsed = started.elapsed();
        eprintln!(
            "run {run}: {} resources, {} violations in {:.3} s",
            result.total_resources,
            result.violations.len(),
            elapsed.as_secs_f64()
        );
        times.push(elapsed);
        last = Some(result);
    }
    engine.shutdown().await;
    let result = last.expect("at least one run");
    times.sort();
    let best = times[0].as_secs_f64();
    let median = times[times.len() / 2].as_secs_f64();
    let report = serde_json::json!({
        "resources": result.total_resources,
        "violations": result.violations.len(),
        "compliance_score": result.compliance_score,
        "runs": times.len(),
        "best_seconds": best,
        "median_seconds": median,
        "resources_per_second": (result.total_resources as f64 / best).round(),
        "peak_rss_mib": peak_rss_mib(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// Peak resident memory of this process, from `/proc/self/status` (Linux only).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}
