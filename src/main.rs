//! The `tagguard` command line: scan, measure the cost-attribution gap, check and show
//! policies, and benchmark the pipeline.
//!
//! Exit codes: 0 every resource in scope is compliant; 1 some resource is not; 2 an error
//! (bad arguments, unreadable policy or source, or a partial scan whose readable resources
//! were all compliant: a gate must not pass on what it could not see).

use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use tagguard::config::Config;
use tagguard::cost::{
    Breakdown, CostService, GapQuestion, Granularity, Metric, PeriodSpec, open_billing,
};
use tagguard::domain::{
    Origin, ScanResult, ScanScope, ScopeFieldNames, SeverityFilter, parse_scope,
};
use tagguard::engine::{EngineHandle, ScanRequest};
use tagguard::mcp::{self, McpServer, http::HttpOptions, http::check_bind};
use tagguard::policy::import::Imported;
use tagguard::policy::{LoadOptions, Policy, default_policy, load_policy_with};
use tagguard::report::compliance::ReportOptions;
use tagguard::report::document::ReportFormat;
use tagguard::report::{self, Format};
use tagguard::scans::{CachePolicy, ProgressSink, RunContext, ScanQuestion, ScanService};
use tagguard::source::aws::{AwsOptions, TagPolicyReader};
use tagguard::source::{ResourceSource, SourceSpec, SyntheticSource, SyntheticSpec};
use tagguard::store::history::{GroupBy, HistoryQuery, history_report};
use tagguard::store::{
    AuditQuery, AuditStatus, Retention, Spool, Store, StoreError, default_data_dir,
};
use tagguard::tools::{CallContext, ReportQuestion, ToolEnv, ToolRegistry, build_report};

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
    /// Serve the MCP tools to AI assistants, over stdio or Streamable HTTP.
    Serve(ServeArgs),
    /// Show compliance over time from the recorded scans: per period, the trend, and what
    /// changed between the two latest scans.
    History(HistoryArgs),
    /// List or export the audit log of tool calls (newest last).
    Audit(AuditArgs),
    /// Ask a running HTTP server for GET /health; exit 0 if it answers "ok" (for container
    /// health checks, which have no curl in tagguard's image).
    Healthcheck {
        /// The server's address.
        #[arg(long, default_value = "127.0.0.1:8080", env = "TAGGUARD_HEALTH_ADDR")]
        addr: SocketAddr,
    },
    /// The cost-attribution gap of a period: usage spend the allocation tags cannot
    /// attribute (missing or invalid tags), per tag and broken down, from billing (the demo's,
    /// or AWS Cost Explorer with --source aws).
    Cost(CostArgs),
    /// Suggest values for the missing and invalid tags of resources (by ARN), each with a
    /// confidence measured on the estate and the evidence behind it; or, with --evaluate,
    /// measure how reliable the suggestions are on the estate.
    Suggest(SuggestArgs),
    /// Plan the tag changes that fix violations (from confident suggestions and values you
    /// set), written to a file with its plan id and the equivalent AWS CLI commands; nothing
    /// in AWS changes.
    Fix(FixArgs),
    /// Write the compliance report (score, rankings, tables per type, tag, account and region,
    /// trend, cost gap, worst offenders, recommendations) as json, csv, markdown or a
    /// self-contained html page.
    Report(ReportArgs),
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
        /// Treat warnings (unknown or unresolvable resource types, rules that check nothing)
        /// as errors.
        #[arg(long, env = "TAGGUARD_STRICT_POLICY")]
        strict: bool,
    },
    /// Import AWS Organizations tag policies: one policy, a list of them from the root down
    /// to the account (their effective policy is computed with AWS's inheritance operators),
    /// or the output of `aws organizations describe-policy` / `describe-effective-policy`;
    /// or, with --from-organization, read from AWS Organizations. Prints the tagguard policy
    /// (or writes it with --out); what cannot be expressed is reported on standard error.
    Import {
        /// The tag policy file (`-` reads standard input).
        #[arg(required_unless_present = "from_organization")]
        file: Option<PathBuf>,
        /// Read the tag policies from AWS Organizations (the standard AWS credential chain;
        /// the management account or a delegated administrator for tag policies): those
        /// attached to the organization's root, which every account inherits.
        #[arg(long, conflicts_with = "file")]
        from_organization: bool,
        /// With --from-organization: import the effective tag policy of this account (every
        /// policy from the root down, as AWS resolves them; DescribeEffectivePolicy).
        #[arg(long, value_name = "ID", requires = "from_organization")]
        account: Option<String>,
        /// Write the tagguard policy here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Export the policy as Cloud Custodian policies (YAML): one per Custodian resource,
    /// flagging exactly the resources tagguard finds non-compliant, without actions. What
    /// cannot be expressed is reported on standard error.
    Export {
        /// Write Cloud Custodian policies (the export format).
        #[arg(long, required = true)]
        custodian: bool,
        /// The policy file (default: the built-in policy).
        #[arg(long, env = "TAGGUARD_POLICY")]
        policy: Option<PathBuf>,
        /// Only these resource types (comma-separated: `ec2:instance,s3:bucket`); default:
        /// every type with a Custodian resource that the policy can flag.
        #[arg(long, value_delimiter = ',', value_name = "TYPES")]
        types: Vec<String>,
        /// Each policy is named PREFIX-<custodian resource>.
        #[arg(long, default_value = "tagguard", value_name = "PREFIX")]
        name_prefix: String,
        /// Write the YAML here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
    /// Load the policy strictly: its warnings (unknown or unresolvable resource types in
    /// applies_to, rules or a policy that check nothing) are errors.
    #[arg(long, env = "TAGGUARD_STRICT_POLICY")]
    strict_policy: bool,
    /// Engine and rate-limit configuration (default: the built-in config/tagguard.toml).
    #[arg(long, env = "TAGGUARD_CONFIG")]
    config: Option<PathBuf>,
    /// Where history, the audit log and the cache live (default: the config's
    /// `store.data_dir`, else ~/.local/share/tagguard).
    #[arg(long, env = "TAGGUARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Where resources come from and which part of them: shared by `scan` and `serve`.
#[derive(Args)]
struct SourceArgs {
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
    /// Regions, comma-separated, or `all`. AWS: default the config chain's region, `all` every
    /// enabled region. Other sources: default all they have.
    #[arg(long, value_delimiter = ',', env = "TAGGUARD_REGIONS")]
    regions: Vec<String>,
    /// Account ids, comma-separated. AWS: default the caller's account, `organization` every
    /// active account of the organisation. Other sources: default all they have.
    #[arg(long, value_delimiter = ',', env = "TAGGUARD_ACCOUNTS")]
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
}

#[derive(Args)]
struct ScanArgs {
    #[command(flatten)]
    from: SourceArgs,
    #[command(flatten)]
    common: Common,
    /// Resource types, comma-separated (`ec2:instance,s3:bucket`), or `all`.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    resource_types: Vec<String>,
    /// Which violations to list: all, errors_only or warnings_only (counts cover all).
    #[arg(long, default_value = "all")]
    severity: SeverityFilter,
    /// Output: table (a summary), json, csv or markdown.
    #[arg(long, default_value = "table")]
    format: Format,
    /// Never show a progress bar (it shows only when stderr is a terminal).
    #[arg(long)]
    no_progress: bool,
    /// Accept a scan that finds no resource in scope, or none a required tag applies to (exit
    /// 0 instead of 2).
    #[arg(long)]
    allow_empty: bool,
    /// Answer within this time (`90`, `90s`, `5m`, `1h`) with what was read by then: parts not
    /// read end as `timeout` issues, the result is partial (exit 2 unless violations were
    /// found). Default: the config's `timeouts.scan_deadline_seconds` (none).
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline, env = "TAGGUARD_DEADLINE")]
    deadline: Option<Duration>,
}

/// A deadline as seconds, or with an `s`, `m` or `h` suffix; above zero.
fn parse_deadline(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1),
        Some((i, 'm')) => (&text[..i], 60),
        Some((i, 'h')) => (&text[..i], 3600),
        _ => (text, 1),
    };
    match digits.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n.saturating_mul(unit))),
        _ => Err(format!(
            "'{text}' is not a deadline: give seconds above zero, or a number with s, m or h (90s, 5m)"
        )),
    }
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    from: SourceArgs,
    #[command(flatten)]
    common: Common,
    /// Resource types, comma-separated (`ec2:instance,s3:bucket`), or `all`.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    resource_types: Vec<String>,
    /// Output: markdown, json, csv or html.
    #[arg(long, default_value = "markdown")]
    format: ReportFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Leave the recommendations out.
    #[arg(long)]
    no_recommendations: bool,
    /// Days of history for the trend.
    #[arg(long, default_value_t = 30)]
    history_days: u32,
    /// Answer within this time (`90`, `90s`, `5m`) with what was read by then (the report
    /// says it is partial).
    #[arg(long, value_name = "DURATION", value_parser = parse_deadline, env = "TAGGUARD_DEADLINE")]
    deadline: Option<Duration>,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args)]
struct CostArgs {
    #[command(flatten)]
    from: SourceArgs,
    #[command(flatten)]
    common: Common,
    /// The period: last_month, last_30_days, month_to_date, or START..END (dates, the end
    /// exclusive: 2026-11-01..2026-12-01 is November).
    #[arg(long, default_value = "last_month")]
    period: PeriodSpec,
    /// The breakdown: service, region, account or resource_type.
    #[arg(long, default_value = "service")]
    group_by: Breakdown,
    /// The cost metric: AmortizedCost, UnblendedCost, NetAmortizedCost, NetUnblendedCost or
    /// BlendedCost.
    #[arg(long, default_value = "AmortizedCost")]
    metric: Metric,
    /// The time series' slices: monthly or daily.
    #[arg(long, default_value = "monthly")]
    granularity: Granularity,
    /// Allocation tags, comma-separated (exact keys); default the config's
    /// `cost.allocation_tags`, else the policy's required tags that apply to every type.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Output: table, json, csv or markdown.
    #[arg(long, default_value = "table")]
    format: Format,
    /// Ask billing again instead of using answers cached in the last hours.
    #[arg(long)]
    refresh: bool,
}

#[derive(Args)]
struct SuggestArgs {
    #[command(flatten)]
    from: SourceArgs,
    #[command(flatten)]
    common: Common,
    /// ARNs of the resources (1 to 100).
    #[arg(required_unless_present = "evaluate", conflicts_with = "evaluate")]
    arns: Vec<String>,
    /// Tags to suggest values for, comma-separated (default: each resource's missing and
    /// invalid required tags).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Output: table or json.
    #[arg(long, default_value = "table")]
    format: Format,
    /// Instead of suggesting: hide the known tags of every compliant resource in scope one
    /// at a time, predict them, and print the reliability table and the coverage.
    #[arg(long)]
    evaluate: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["plan", "apply", "undo"])))]
struct FixArgs {
    #[command(flatten)]
    from: SourceArgs,
    #[command(flatten)]
    common: Common,
    /// Plan: write the plan (JSON) to this file; nothing in AWS changes.
    #[arg(long, value_name = "PLAN.json")]
    plan: Option<PathBuf>,
    /// Apply a plan file through the Resource Groups Tagging API, after showing it and asking
    /// (or with --yes); every resource is re-read first and refused if its tags changed since
    /// the plan, then read back. Needs tagging write permissions (docs/iam-remediation.json).
    #[arg(long, value_name = "PLAN.json")]
    apply: Option<PathBuf>,
    /// Undo the apply of plan PLAN_ID: restore the values its keys held before.
    #[arg(long, value_name = "PLAN_ID")]
    undo: Option<String>,
    /// Apply or undo without asking.
    #[arg(long)]
    yes: bool,
    /// Resource types, comma-separated (`ec2:instance,s3:bucket`), or `all`.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    resource_types: Vec<String>,
    /// Fix these resources instead of every non-compliant resource in scope.
    #[arg(long = "arn", value_name = "ARN")]
    arns: Vec<String>,
    /// Suggestions below this confidence are left out.
    #[arg(long, default_value_t = 0.9)]
    min_confidence: f64,
    /// A value to set where the tag is missing or invalid (repeatable): Key=Value.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    sets: Vec<(String, String)>,
    /// Most resources the plan covers.
    #[arg(long, default_value_t = tagguard::remediate::plan::DEFAULT_LIMIT)]
    limit: usize,
}

/// `Key=Value` of `--set`.
fn parse_set(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Speak MCP on stdin and stdout (Claude Desktop, Claude Code and other local clients).
    #[arg(long, conflicts_with = "http")]
    stdio: bool,
    /// Serve MCP over Streamable HTTP on ADDR (default 127.0.0.1:8080): POST /mcp, GET
    /// /health. Any address but loopback needs TAGGUARD_AUTH_TOKEN.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = "127.0.0.1:8080",
        env = "TAGGUARD_HTTP_ADDR"
    )]
    http: Option<SocketAddr>,
    /// Serve apply_tag_remediation too, which writes the tags of a kept plan to AWS (with
    /// credentials allowed to: docs/iam-remediation.json). Without it the server only reads.
    #[arg(long)]
    allow_remediation: bool,
    #[command(flatten)]
    from: SourceArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct HistoryArgs {
    /// Days to look back (1 to 400).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=400))]
    days: u32,
    /// Period of each line: day, week or month.
    #[arg(long, default_value = "day")]
    group_by: GroupBy,
    /// Scans of this source only, as results name it: `demo`, `demo:size=N,seed=S` for
    /// another demo estate, `file:PATH`, `aws`.
    #[arg(long, default_value = "demo", env = "TAGGUARD_SOURCE")]
    source: String,
    /// Scans of these resource types only (as the scans named them); default every type.
    #[arg(long, value_delimiter = ',')]
    resource_types: Vec<String>,
    /// Scans of these regions only; default scans of every region.
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Scans of these accounts only; default scans of every account.
    #[arg(long, value_delimiter = ',')]
    accounts: Vec<String>,
    /// Most resources and tag changes listed in the drift.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Output: table or json.
    #[arg(long, default_value = "table")]
    format: HistoryFormat,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct AuditArgs {
    /// Days to look back.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Only calls of this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only calls that ended so: success, tool_error, invalid_input, timeout, budget_exceeded,
    /// loop_detected, cancelled, unknown_tool.
    #[arg(long)]
    status: Option<AuditStatus>,
    /// Only calls of this session.
    #[arg(long)]
    session: Option<String>,
    /// At most this many records (the most recent).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output: table, json (an array) or csv.
    #[arg(long, default_value = "table")]
    format: AuditFormat,
    #[command(flatten)]
    common: Common,
}

/// How `tagguard audit` prints.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuditFormat {
    /// One line per call.
    Table,
    /// A JSON array of records.
    Json,
    /// CSV with a header row.
    Csv,
}

/// How `tagguard history` prints.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HistoryFormat {
    /// A table for people.
    Table,
    /// The whole report as JSON (what the get_violation_history tool returns).
    Json,
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
        Command::Policy(PolicyCommand::Check { file, strict }) => {
            let policy = load(&Some(file.clone()), strict)?;
            let warned = if policy.warnings.is_empty() {
                String::new()
            } else {
                format!(", {} warnings", policy.warnings.len())
            };
            println!(
                "policy '{}' is valid: version {}, {} required tags, {} optional tags{warned}",
                file.display(),
                policy.version(),
                policy.required_tags().len(),
                policy.optional_tags().len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCommand::Import {
            file,
            from_organization: _,
            account,
            out,
        }) => {
            let imported = match file {
                Some(file) => import_tag_policy_file(&file)?,
                None => runtime()?.block_on(import_organization_tag_policy(account.as_deref()))?,
            };
            write_imported_policy(imported, out.as_deref())
        }
        Command::Policy(PolicyCommand::Export {
            custodian: _,
            policy,
            types,
            name_prefix,
            out,
        }) => {
            let policy = load(&policy, false)?;
            let options = tagguard::policy::export::ExportOptions::parse(&types, &name_prefix)
                .map_err(anyhow::Error::msg)?;
            let export = tagguard::policy::export::custodian(&policy, &options);
            for note in &export.notes {
                eprintln!("tagguard: note: {note}");
            }
            match out {
                Some(path) => std::fs::write(&path, &export.yaml)
                    .with_context(|| format!("cannot write '{}'", path.display()))?,
                None => io::stdout().lock().write_all(export.yaml.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCommand::Show { policy }) => {
            let policy = load(&policy, false)?;
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &policy.document)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => runtime()?.block_on(scan(args)),
        Command::Cost(args) => runtime()?.block_on(cost(args)),
        Command::Report(args) => runtime()?.block_on(compliance_report(args)),
        Command::Suggest(args) => runtime()?.block_on(suggest(args)),
        Command::Fix(args) => runtime()?.block_on(fix(args)),
        Command::History(args) => runtime()?.block_on(history(args)),
        Command::Audit(args) => runtime()?.block_on(audit(args)),
        Command::Healthcheck { addr } => runtime()?.block_on(healthcheck(addr)),
        Command::Serve(args) => {
            let runtime = runtime()?;
            let code = runtime.block_on(serve(args));
            // The stdin reader is a blocking thread that may sit in read(2) forever.
            runtime.shutdown_timeout(Duration::from_millis(200));
            code
        }
        Command::Bench(args) => runtime()?.block_on(bench(args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn load(policy: &Option<PathBuf>, strict: bool) -> Result<Policy> {
    let policy = match policy {
        Some(path) => load_policy_with(path, LoadOptions { strict })?,
        None => default_policy(),
    };
    for warning in &policy.warnings {
        eprintln!("tagguard: warning: {warning}");
    }
    Ok(policy)
}

fn scope(from: &SourceArgs, spec: &SourceSpec, resource_types: &[String]) -> Result<ScanScope> {
    // An empty environment variable (`TAGGUARD_REGIONS=` in a compose file) means "not set".
    let unset_if_blank = |values: &[String]| -> Vec<String> {
        match values {
            [only] if only.trim().is_empty() => Vec::new(),
            values => values.to_vec(),
        }
    };
    let parsed = parse_scope(
        ScopeFieldNames::CLI,
        resource_types,
        &unset_if_blank(&from.regions),
        &unset_if_blank(&from.accounts),
    )
    .map_err(anyhow::Error::msg)?;
    if parsed.organization && !matches!(spec, SourceSpec::Aws(_)) {
        bail!("--accounts organization applies to the aws source only");
    }
    for warning in &parsed.warnings {
        eprintln!("tagguard: warning: {warning}");
    }
    Ok(parsed.scope)
}

/// Opens the source the arguments name, with the scope they ask for. Arguments are checked
/// first: a typo should not wait for a source to load.
async fn open_source(
    from: &SourceArgs,
    resource_types: &[String],
    policy: &Arc<Policy>,
    config: &Config,
) -> Result<(Arc<dyn ResourceSource>, ScanScope, SourceSpec)> {
    let spec = from
        .source
        .parse::<SourceSpec>()
        .map_err(anyhow::Error::msg)?;
    if !matches!(spec, SourceSpec::Demo(_)) && (from.size.is_some() || from.seed.is_some()) {
        bail!(
            "--size and --seed apply to the demo source only, not to '{}'",
            from.source
        );
    }
    let spec = match spec {
        SourceSpec::Demo(default) => SourceSpec::Demo(SyntheticSpec {
            size: from.size.unwrap_or(default.size),
            seed: from.seed.unwrap_or(default.seed),
        }),
        SourceSpec::Aws(_) => SourceSpec::Aws(AwsOptions {
            all_regions: from.regions.iter().any(|r| r == "all"),
            organization: from.accounts.iter().any(|a| a == "organization"),
            role_name: from.role_name.clone(),
            external_id: from.external_id.clone(),
            retries: config.retries,
            timeouts: config.timeouts,
        }),
        other => other,
    };
    let scope = scope(from, &spec, resource_types)?;
    Ok((spec.open(policy).await?, scope, spec))
}

/// The import of a tag policy file, and the warnings its tagguard policy loads with.
fn import_tag_policy_file(file: &std::path::Path) -> Result<(Imported, Vec<String>)> {
    let (text, origin) = if file.as_os_str() == "-" {
        let mut text = String::new();
        io::Read::read_to_string(&mut io::stdin(), &mut text)?;
        (text, "standard input".to_string())
    } else {
        let name = file.file_name().map_or_else(
            || "the policy".to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read '{name}'"))?;
        (text, name)
    };
    // The result loads as any policy does; its warnings are reported with the notes.
    tagguard::policy::import::import_checked(&text, &origin).map_err(anyhow::Error::msg)
}

/// The import of the organization's tag policies (those attached to the root, or the
/// effective policy of `account`), read with the standard AWS credential chain.
async fn import_organization_tag_policy(account: Option<&str>) -> Result<(Imported, Vec<String>)> {
    let config = Config::load(None)?;
    let reader = TagPolicyReader::on_first_use(AwsOptions {
        retries: config.retries,
        timeouts: config.timeouts,
        ..AwsOptions::default()
    });
    tagguard::tools::import_from_organization(&reader, account)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// `tagguard policy import`: prints or writes the imported policy; its notes and load
/// warnings go to standard error.
fn write_imported_policy(
    (imported, load_warnings): (Imported, Vec<String>),
    out: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let json = serde_json::to_string_pretty(&imported.policy)?;
    for note in imported.notes.iter().chain(&load_warnings) {
        eprintln!("tagguard: note: {note}");
    }
    match out {
        Some(path) => {
            std::fs::write(path, format!("{json}\n"))
                .with_context(|| format!("cannot write '{}'", path.display()))?;
            eprintln!(
                "tagguard: wrote {} ({} required tags, {} checked where present)",
                path.display(),
                imported.policy.required_tags.len(),
                imported.policy.optional_tags.len()
            );
        }
        None => println!("{json}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `tagguard report`: a fresh scan (recorded in the history), the history and last month's
/// gap, rendered; exit 0 when written, 2 when it could not be made or the scan was partial
/// (the report is written all the same, and says so).
async fn compliance_report(args: ReportArgs) -> Result<ExitCode> {
    let Recorded {
        service,
        engine,
        store,
        scope,
        costs,
        deadline,
    } = recorded_scans(
        &args.from,
        &args.common,
        &args.resource_types,
        args.deadline,
        "the report's scan is handed to it for its history",
    )
    .await?;
    let mut env = ToolEnv::new(service).with_default_scope(scope.clone());
    if let Some(costs) = costs {
        env = env.with_cost(costs);
    }
    let bar = (!args.no_progress && io::stderr().is_terminal()).then(Spinner::new);
    let ctx = CallContext::new(
        bar.clone().map(|b| Arc::new(b) as Arc<dyn ProgressSink>),
        CancellationToken::new(),
    );
    let question = ReportQuestion {
        resource_types: scope.resource_types.iter().map(|t| t.to_string()).collect(),
        regions: Vec::new(),
        accounts: Vec::new(),
        force_refresh: true,
        deadline_seconds: deadline.map(|d| d.as_secs().max(1)),
        history_days: args.history_days,
        options: ReportOptions {
            recommendations: !args.no_recommendations,
        },
    };
    let built = build_report(&env, &ctx, question).await;
    if let Some(bar) = bar {
        bar.0.finish_and_clear();
    }
    engine.shutdown().await;
    if let Some(store) = store {
        store.close();
    }
    let built = built.map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = tagguard::report::document::render(&built.report, args.format);
    match &args.out {
        Some(path) => {
            // Written beside and renamed, so a reader never sees half a report.
            let partial_path = path.with_extension("tagguard-partial");
            std::fs::write(&partial_path, text.as_bytes())
                .and_then(|_| std::fs::rename(&partial_path, path))
                .with_context(|| format!("cannot write the report to '{}'", path.display()))?;
            eprintln!(
                "tagguard: report written to {} ({} bytes)",
                path.display(),
                text.len()
            );
        }
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
    }
    if built.report.scan.partial {
        eprintln!(
            "tagguard: the scan was partial ({} part(s) not read): the report covers only what was read",
            built.report.scan.issues.len()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

async fn cost(args: CostArgs) -> Result<ExitCode> {
    let policy = Arc::new(load(&args.common.policy, args.common.strict_policy)?);
    let config = Config::load(args.common.config.as_deref())?;
    let (_, scope, spec) = open_source(&args.from, &[], &policy, &config).await?;
    // The cache only: nothing of a cost question is recorded in the history.
    let store = open_store(&args.common, &config);
    let Some(service) = cost_service(&spec, &policy, &store, &config).await? else {
        bail!(
            "the source '{}' has no billing data: the attribution gap needs --source demo or --source aws",
            args.from.source
        );
    };
    let question = GapQuestion {
        period: args.period,
        granularity: args.granularity,
        metric: args.metric,
        group_by: args.group_by,
        tags: (!args.tags.is_empty()).then_some(args.tags),
        scope,
        force_refresh: args.refresh,
    };
    let answer = service
        .attribution_gap(&question, &CancellationToken::new())
        .await;
    if let Some(store) = store {
        store.close();
    }
    let gap = answer.map_err(anyhow::Error::from)?;
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    report::cost::write(&gap, args.format, &mut out).and_then(|_| out.flush())?;
    // A figure billing could not give is not a clean answer.
    Ok(
        if gap.partial || gap.gap.is_none() || gap.measured_tags.len() < gap.allocation_tags.len() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        },
    )
}

async fn suggest(args: SuggestArgs) -> Result<ExitCode> {
    if !matches!(args.format, Format::Table | Format::Json) {
        bail!(
            "--format {} is not offered here: use table or json",
            args.format
        );
    }
    let policy = Arc::new(load(&args.common.policy, args.common.strict_policy)?);
    let config = Config::load(args.common.config.as_deref())?;
    let (source, scope, spec) = open_source(&args.from, &[], &policy, &config).await?;
    let engine = EngineHandle::start(config).await?;
    let service = uncached_service(&engine, &policy, source);
    let ctx = RunContext::default();
    let mut out = BufWriter::new(io::stdout().lock());
    if args.evaluate {
        let intended = match &spec {
            SourceSpec::Demo(demo) => {
                Some(SyntheticSource::new(*demo, policy.clone())?.intended_tags(&scope))
            }
            _ => None,
        };
        let answer =
            tagguard::suggest::service::evaluate_scope(&service, &ctx, scope, intended.as_ref())
                .await;
        engine.shutdown().await;
        let (evaluation, notes) = answer?;
        for note in &notes {
            eprintln!("tagguard: note: {note}");
        }
        match args.format {
            Format::Json => serde_json::to_writer_pretty(&mut out, &evaluation)?,
            _ => report::suggest::write_evaluation(&evaluation, &mut out)?,
        }
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let question = tagguard::suggest::service::SuggestQuestion {
        arns: args.arns,
        tags: (!args.tags.is_empty()).then_some(args.tags),
        server_scope: scope,
        asked_by: "cli".to_string(),
        evidence_origin: Origin::Lookup("suggest".to_string()),
        refresh: false,
    };
    let answer = tagguard::suggest::service::suggest(&service, &ctx, question).await;
    engine.shutdown().await;
    let report = answer?;
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        _ => report::suggest::write_suggestions(&report, &mut out)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A scan service that records and caches nothing, for a command whose run reads its evidence
/// anew (`suggest`, `fix`).
fn uncached_service(
    engine: &EngineHandle,
    policy: &Arc<tagguard::policy::Policy>,
    source: Arc<dyn tagguard::source::ResourceSource>,
) -> Arc<ScanService> {
    Arc::new(ScanService::new(
        engine.clone(),
        policy.clone(),
        source,
        None,
        Duration::ZERO,
    ))
}

async fn fix(args: FixArgs) -> Result<ExitCode> {
    let policy = Arc::new(load(&args.common.policy, args.common.strict_policy)?);
    let config = Config::load(args.common.config.as_deref())?;
    let (source, scope, _) =
        open_source(&args.from, &args.resource_types, &policy, &config).await?;
    let store = open_store(&args.common, &config);
    let engine = EngineHandle::start(config).await?;
    let service = uncached_service(&engine, &policy, source);
    if args.apply.is_some() || args.undo.is_some() {
        let done = fix_write(&args, &service, &scope, store.as_ref()).await;
        engine.shutdown().await;
        if let Some(store) = store {
            store.close();
        }
        return done;
    }
    let plan_file = args.plan.clone().expect("clap requires one mode");
    let question = tagguard::remediate::PlanQuestion {
        scope,
        arns: args.arns,
        sets: args.sets,
        min_confidence: args.min_confidence,
        limit: args.limit,
        asked_by: "fix".to_string(),
        origin: Origin::Lookup("fix".to_string()),
    };
    let made = tagguard::remediate::make_plan(&service, &RunContext::default(), question).await;
    engine.shutdown().await;
    let plan = match made {
        Ok(plan) => plan,
        Err(e) => {
            if let Some(store) = store {
                store.close();
            }
            return Err(e.into());
        }
    };
    if let Some(store) = &store {
        if let Err(e) = tagguard::remediate::keep_plan(store, &plan).await {
            eprintln!(
                "tagguard: warning: the plan is not kept in the store ({e}); apply it from its file"
            );
        }
        store.close();
    }
    let file = std::fs::File::create(&plan_file)
        .with_context(|| format!("cannot write the plan to '{}'", plan_file.display()))?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, &plan)?;
    writeln!(out)?;
    out.flush()?;
    let t = &plan.totals;
    println!(
        "plan {} written to {}: {} change(s) on {} resource(s) ({} from suggestions, {} set, {} keys respelled), {} tag(s) left alone",
        plan.plan_id,
        plan_file.display(),
        t.changes,
        t.resources,
        t.from_suggestions,
        t.user_set,
        t.respelled,
        t.skipped
    );
    for note in &plan.notes {
        println!("note: {note}");
    }
    if !plan.commands.is_empty() {
        println!("\nthe same changes with the AWS CLI:");
        for line in &plan.commands {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `fix --apply` and `fix --undo`: show what will be written, ask, write, report.
async fn fix_write(
    args: &FixArgs,
    service: &Arc<ScanService>,
    scope: &tagguard::domain::ScanScope,
    store: Option<&Store>,
) -> Result<ExitCode> {
    use tagguard::remediate::{self as fixes, WriteKind};
    let Some(store) = store else {
        bail!(
            "the store cannot be opened: an apply must record the previous values, or it could not be undone"
        );
    };
    let ctx = RunContext::default();
    /// What is about to be written: the plan read once, or the apply an undo reverses.
    enum Write {
        Apply(fixes::Plan),
        Undo(fixes::WriteRecord),
    }
    let (write, kind, plan_id, count, places) = if let Some(path) = &args.apply {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the plan '{}'", path.display()))?;
        let plan: fixes::Plan = serde_json::from_str(&text)
            .with_context(|| format!("'{}' is not a tagguard plan", path.display()))?;
        let places = fixes::apply::places(&plan);
        let (id, count) = (plan.plan_id.clone(), plan.totals.changes);
        (Write::Apply(plan), WriteKind::Apply, id, count, places)
    } else {
        let id = args.undo.clone().expect("clap requires one mode");
        let Some(applied) = fixes::kept_apply(store, &id).await? else {
            bail!("no apply of plan '{id}' is recorded in this store");
        };
        let places = applied
            .results
            .iter()
            .map(|r| (r.account_id.clone(), r.region.clone()))
            .collect();
        let count = applied.applied + applied.failed;
        (Write::Undo(applied), WriteKind::Undo, id, count, places)
    };
    let where_: Vec<String> = places.iter().map(|(a, r)| format!("{a}/{r}")).collect();
    let what = match kind {
        WriteKind::Apply => format!("apply {count} tag change(s) of plan {plan_id}"),
        WriteKind::Undo => {
            format!("restore the previous tags of {count} resource(s) changed by plan {plan_id}")
        }
    };
    eprintln!(
        "tagguard: about to {what} through {} in {}",
        service.source().name(),
        where_.join(", ")
    );
    if !args.yes {
        if !io::stdin().is_terminal() {
            bail!("not confirmed: run it on a terminal to be asked, or pass --yes");
        }
        eprint!("proceed? [y/N] ");
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("tagguard: nothing changed");
            return Ok(ExitCode::from(2));
        }
    }
    let record = match write {
        Write::Apply(plan) => {
            fixes::keep_plan(store, &plan).await?;
            fixes::apply(service, &ctx, &plan, scope).await?
        }
        Write::Undo(applied) => fixes::undo(service, &ctx, &applied, scope).await?,
    };
    fixes::keep_record(store, &record).await?;
    let mut out = BufWriter::new(io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, &record)?;
    writeln!(out)?;
    out.flush()?;
    eprintln!(
        "tagguard: {} applied, {} failed, {} refused (changed since), {} skipped (gone)",
        record.applied, record.failed, record.refused, record.skipped
    );
    Ok(if record.failed + record.refused + record.skipped == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// A scan service whose scans are recorded and priced, on a new engine: what `scan` and
/// `report` run on, with the scope and deadline their options give.
struct Recorded {
    service: Arc<ScanService>,
    engine: EngineHandle,
    store: Option<Store>,
    scope: ScanScope,
    costs: Option<Arc<CostService>>,
    deadline: Option<Duration>,
}

async fn recorded_scans(
    from: &SourceArgs,
    common: &Common,
    resource_types: &[String],
    deadline: Option<Duration>,
    why: &str,
) -> Result<Recorded> {
    let policy = Arc::new(load(&common.policy, common.strict_policy)?);
    let config = Config::load(common.config.as_deref())?;
    let (source, scope, spec) = open_source(from, resource_types, &policy, &config).await?;
    let (store, spool) = open_recorder(common, &config, why);
    let costs = cost_service(&spec, &policy, &store, &config).await?;
    let deadline = deadline.or(config.timeouts.scan_deadline());
    let engine = EngineHandle::start(config).await?;
    // The cache is neither read nor written (a zero TTL); the scan is recorded.
    let service = Arc::new(
        ScanService::new(
            engine.clone(),
            policy,
            source,
            store.clone(),
            Duration::ZERO,
        )
        .with_spool(spool)
        .with_costs(costs.clone()),
    );
    Ok(Recorded {
        service,
        engine,
        store,
        scope,
        costs,
        deadline,
    })
}

async fn scan(args: ScanArgs) -> Result<ExitCode> {
    // A gate wants a fresh answer.
    let Recorded {
        service,
        engine,
        store,
        scope,
        deadline,
        ..
    } = recorded_scans(
        &args.from,
        &args.common,
        &args.resource_types,
        args.deadline,
        "the scan is handed to it for its history",
    )
    .await?;
    let mut question = ScanQuestion {
        severity: args.severity,
        cache: CachePolicy::Bypass,
        deadline,
        ..ScanQuestion::new(scope, Origin::Cli)
    };
    // What the gaps cost rides on the same pass.
    question.analyses.cost = true;
    let bar = (!args.no_progress && io::stderr().is_terminal()).then(Spinner::new);
    let ctx = RunContext {
        progress: bar.clone().map(|b| Arc::new(b) as Arc<dyn ProgressSink>),
        ..RunContext::default()
    };
    let answer = service.scan(&ctx, question).await;
    if let Some(bar) = bar {
        bar.0.finish_and_clear();
    }
    engine.shutdown().await;
    if let Some(store) = store {
        store.close();
    }
    let result = answer?.result;
    if args.format != Format::Table {
        // The table shows notes itself; other formats carry them in the data, and a person
        // watching the terminal should still see them.
        for note in &result.meta.notes {
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

/// The progress spinner of `tagguard scan` on a terminal.
#[derive(Clone)]
struct Spinner(ProgressBar);

impl Spinner {
    fn new() -> Spinner {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .expect("the template is a constant"),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(bar)
    }
}

impl ProgressSink for Spinner {
    fn report(&self, progress: f64, total: Option<f64>, message: String) {
        let shards = match total {
            Some(total) => format!("{progress}/{total} shards"),
            None => "planning".to_string(),
        };
        self.0.set_message(format!("{shards} · {message}"));
    }
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    if !args.stdio && args.http.is_none() {
        bail!("choose a transport: --stdio (local clients) or --http [ADDR] (remote clients)");
    }
    if args.stdio && args.from.source.trim() == "file:-" {
        bail!(
            "--source file:- reads the snapshot from standard input, which serve --stdio uses for MCP messages: give the snapshot's path, or serve over --http"
        );
    }
    let policy = Arc::new(load(&args.common.policy, args.common.strict_policy)?);
    let config = Config::load(args.common.config.as_deref())?;
    let options = HttpOptions::from(&config.server);
    if let Some(addr) = args.http {
        check_bind(addr, &options)?;
    }
    let (source, default_scope, spec) = open_source(&args.from, &[], &policy, &config).await?;
    let (store, spool) = open_recorder(
        &args.common,
        &config,
        "this server's scans are handed to it for its history; its tool calls are not audited and its cache is in memory only",
    );
    let (cache_ttl, guardrails, deadline) = (
        Duration::from_secs(config.cache.ttl_seconds),
        config.guardrails,
        config.timeouts.scan_deadline(),
    );
    let cost = cost_service(&spec, &policy, &store, &config).await?;
    let engine = EngineHandle::start(config).await?;
    let service = ScanService::new(engine.clone(), policy, source, store.clone(), cache_ttl)
        .with_default_deadline(deadline)
        .with_spool(spool)
        .with_costs(cost.clone());
    let mut env = ToolEnv::new(Arc::new(service))
        .with_default_scope(default_scope)
        .with_guardrails(guardrails);
    if let SourceSpec::Aws(options) = &spec {
        let reader = TagPolicyReader::on_first_use(options.clone());
        env = env.with_tag_policies(Arc::new(reader));
    }
    if let Some(cost) = cost {
        // One small billing question at start (cached for hours), so /health can say
        // whether cost data is reachable without a health check ever making a billed request.
        let probe = cost.clone();
        tokio::spawn(async move {
            probe.probe().await;
        });
        env = env.with_cost(cost);
    }
    let registry = if args.allow_remediation {
        ToolRegistry::with_remediation()
    } else {
        ToolRegistry::standard()
    };
    let server = McpServer::new(env, registry);
    let outcome = match args.http {
        None => mcp::stdio::serve(
            server,
            tokio::io::stdin(),
            tokio::io::stdout(),
            options.max_request_bytes,
            shutdown_signal(),
        )
        .await
        .context("stdio transport failed"),
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr()?;
            eprintln!(
                "tagguard: serving MCP on http://{local}/mcp (health: http://{local}/health)"
            );
            mcp::http::serve(server, listener, options, shutdown_signal())
                .await
                .map_err(anyhow::Error::from)
        }
    };
    engine.shutdown().await;
    if let Some(store) = store {
        store.close();
    }
    outcome.map(|()| ExitCode::SUCCESS)
}

/// The cost service of a source's billing (none for a snapshot file), caching in `store`.
async fn cost_service(
    spec: &SourceSpec,
    policy: &Arc<Policy>,
    store: &Option<Store>,
    config: &Config,
) -> Result<Option<Arc<CostService>>> {
    Ok(open_billing(spec, policy, config).await?.map(|billing| {
        Arc::new(CostService::new(
            billing,
            policy.clone(),
            store.clone(),
            config.cost.clone(),
        ))
    }))
}

/// The data directory the options and config name.
fn data_dir(common: &Common, config: &Config) -> PathBuf {
    common
        .data_dir
        .clone()
        .or_else(|| config.store.data_dir.clone())
        .unwrap_or_else(default_data_dir)
}

/// Where a scanning command records: the store, or, when another tagguard process owns it,
/// the spool through which that process records this one's scans.
fn open_recorder(common: &Common, config: &Config, what: &str) -> (Option<Store>, Option<Spool>) {
    let dir = data_dir(common, config);
    match Store::open(&dir, Retention::from(&config.store)) {
        Ok(store) => (Some(store), None),
        Err(StoreError::InUse { .. }) => {
            eprintln!(
                "tagguard: note: another tagguard process owns the store of this data directory: {what}"
            );
            (None, Some(Spool::of(&dir)))
        }
        Err(error) => {
            warn_no_store(&error);
            (None, None)
        }
    }
}

/// Says that the store could not be opened, which costs the history, not the run.
fn warn_no_store(error: &StoreError) {
    eprintln!(
        "tagguard: warning: {error}; this run is not recorded in the history (the data directory is set by --data-dir, TAGGUARD_DATA_DIR or store.data_dir)"
    );
}

/// Opens the store of the data directory the options and config name, to read it. A store
/// that cannot be opened is a warning.
fn open_store(common: &Common, config: &Config) -> Option<Store> {
    Store::open(&data_dir(common, config), Retention::from(&config.store))
        .inspect_err(warn_no_store)
        .ok()
}

async fn history(args: HistoryArgs) -> Result<ExitCode> {
    let config = Config::load(args.common.config.as_deref())?;
    let parsed = parse_scope(
        ScopeFieldNames::CLI,
        &args.resource_types,
        &args.regions,
        &args.accounts,
    )
    .map_err(anyhow::Error::msg)?;
    let Some(store) = open_store(&args.common, &config) else {
        bail!("no history to show: the store could not be opened");
    };
    let query = HistoryQuery {
        source: args.source.clone(),
        scope: parsed.scope,
        days_back: args.days,
        group_by: args.group_by,
        limit: args.limit,
        now: chrono::Utc::now(),
    };
    let report = history_report(&store, &query).await;
    store.close();
    let report = report?;
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        HistoryFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        HistoryFormat::Table => report::history::write_table(&report, &mut out)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn audit(args: AuditArgs) -> Result<ExitCode> {
    let config = Config::load(args.common.config.as_deref())?;
    let Some(store) = open_store(&args.common, &config) else {
        bail!("no audit log to show: the store could not be opened");
    };
    let query = AuditQuery {
        since: chrono::Utc::now() - chrono::Duration::days(args.days.into()),
        tool: args.tool.clone(),
        status: args.status,
        session: args.session.clone(),
        limit: args.limit,
    };
    let records = store.audit_records(query).await;
    store.close();
    let records = records?;
    let mut out = BufWriter::new(io::stdout().lock());
    match args.format {
        AuditFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &records)?;
            writeln!(out)?;
        }
        AuditFormat::Csv => report::audit::write_csv(&records, &mut out)?,
        AuditFormat::Table => report::audit::write_table(&records, args.days, &mut out)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn healthcheck(addr: SocketAddr) -> Result<ExitCode> {
    let health = mcp::http::probe_health(addr, Duration::from_secs(3))
        .await
        .with_context(|| format!("cannot get {addr}/health"))?;
    println!("{}", health.body);
    Ok(if health.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Resolves on Ctrl-C or SIGTERM (what `docker stop` sends).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn exit_code(result: &ScanResult, allow_empty: bool) -> ExitCode {
    if result.partial {
        eprintln!(
            "tagguard: the scan is partial: {} issue(s), not every resource could be read (see issues in the output)",
            result.tally.issues.len()
        );
    }
    if result.totals.total_resources == 0 && !allow_empty {
        eprintln!(
            "tagguard: no resource in scope, so nothing was checked: check --source, --regions, --accounts and --resource-types (or pass --allow-empty)"
        );
        return ExitCode::from(2);
    }
    let judged = result.totals.compliant_resources + result.totals.non_compliant_resources;
    if judged == 0 && !allow_empty {
        eprintln!(
            "tagguard: no required tag of the policy applies to any of the {} resources in scope, so nothing was checked: check the policy's applies_to (or pass --allow-empty)",
            result.totals.total_resources
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
    let policy = Arc::new(load(&args.common.policy, args.common.strict_policy)?);
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
            .scan(ScanRequest::new(source.clone(), policy.clone()))
            .await?;
        let elapsed = started.elapsed();
        eprintln!(
            "run {run}: {} resources, {} violations in {:.3} s",
            result.totals.total_resources,
            result.tally.violations.len(),
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
        "resources": result.totals.total_resources,
        "violations": result.tally.violations.len(),
        "compliance_score": result.totals.compliance_score,
        "runs": times.len(),
        "best_seconds": best,
        "median_seconds": median,
        "resources_per_second": (result.totals.total_resources as f64 / best).round(),
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
