//! Where resources come from: one trait, paginated per shard, and its implementations.
//!
//! A scan is split into shards (account × region × service). The engine asks a source to
//! [`ResourceSource::plan`] the shards for a scope, then pulls each shard page by page with
//! [`ResourceSource::fetch_page`], one fetcher actor per shard. Sources know nothing of actors,
//! rate limiters or policies' semantics; the engine knows nothing of where pages come from.
//!
//! A [`Shard`] is self-describing: everything fetching it needs (account, region, service,
//! the regions a global service keeps, how to reach the account) is in the shard, never in
//! state the source kept from planning. So concurrent scans of one source cannot disturb each
//! other, and a shard planned in one place can be fetched in another.

pub mod aws;
pub mod backoff;
pub mod snapshot;
pub mod synthetic;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::domain::{NetworkObject, Resource, ResourceType, ScanIssue, ScanIssueKind, ScanScope};
use crate::policy::Policy;

pub use snapshot::SnapshotSource;
pub use synthetic::{GroundTruth, SyntheticSource, SyntheticSpec};

/// The unit of fetching: one service in one region of one account, with everything a source
/// needs to fetch it. Serialisable, so a plan can be split and run elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// Account id.
    pub account_id: Arc<str>,
    /// Region (`global` for a service listed once per account).
    pub region: Arc<str>,
    /// Service namespace (`ec2`): the unit of AWS rate limits.
    pub service: Arc<str>,
    /// Types of that service to list in this shard (empty: every type it has).
    pub resource_types: Vec<ResourceType>,
    /// Types to leave out even when the service returns them: the tagging API's shards skip
    /// the types native listers count (untagged ones included), which would be counted twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_types: Vec<ResourceType>,
    /// For a global service (S3): the regions whose resources are in scope; a bucket located
    /// elsewhere is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_regions: Vec<String>,
    /// Whether the shard keeps resources of no region. The tagging API returns them from every
    /// region's endpoint, so one shard per account (in the partition's home region) keeps them.
    #[serde(default)]
    pub keeps_global: bool,
    /// The partition (`aws`, `aws-cn`, `aws-us-gov`) for ARNs the source builds; empty when the
    /// source has none.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub partition: Arc<str>,
    /// How the source reaches the account: empty for the caller's own credentials, else the
    /// ARN of the role to assume. Never a secret.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub access: Arc<str>,
    /// For a lookup of given resources: their ARNs (read in chunks); empty for a listing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arns: Vec<String>,
}

impl Shard {
    /// A listing shard of `service` in `region` of `account`, for `resource_types`, with no
    /// source-specific detail.
    pub fn new(
        account: impl Into<Arc<str>>,
        region: impl Into<Arc<str>>,
        service: impl Into<Arc<str>>,
        resource_types: Vec<ResourceType>,
    ) -> Shard {
        Shard {
            account_id: account.into(),
            region: region.into(),
            service: service.into(),
            resource_types,
            skip_types: Vec::new(),
            keep_regions: Vec::new(),
            keeps_global: false,
            partition: Arc::from(""),
            access: Arc::from(""),
            arns: Vec::new(),
        }
    }

    /// The shard's id, `account/region/service`: unique within a plan, and the key that
    /// orders a scan's violations.
    pub fn id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.account_id, self.region, self.service)?;
        if !self.arns.is_empty() {
            write!(f, "/lookup")?;
        }
        Ok(())
    }
}

/// One page of a shard and the token of the next, if any.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Resources of this page.
    pub resources: Vec<Resource>,
    /// Token for the next page; `None` when the shard is done.
    pub next: Option<String>,
    /// Problems that cost some resources of the page but not the shard (a bucket whose region
    /// could not be read, say). They make the scan partial.
    pub issues: Vec<ScanIssue>,
}

/// Paces a source's API calls: before each call, a source waits for a token of the limiter of
/// (`account`, `region`, `api`). The engine owns the limiters (sized from
/// `config/tagguard.toml`, shared by concurrent scans); sources only say what they call.
#[async_trait]
pub trait Throttle: Send + Sync {
    /// Waits until a call to `api` (`ec2`, `tagging`, `local`, ...) in `region` of `account`
    /// may be made.
    async fn until_ready(&self, account: &str, region: &str, api: &str);

    /// A call to `api` in `region` of `account` was throttled: later calls should slow down.
    fn throttled(&self, _account: &str, _region: &str, _api: &str) {}
}

/// A throttle that never waits: for tests, benchmarks and embedders that pace calls themselves.
pub struct Unthrottled;

#[async_trait]
impl Throttle for Unthrottled {
    async fn until_ready(&self, _account: &str, _region: &str, _api: &str) {}
}

/// API calls of one scan, per `service:Operation` (retries counted, as AWS counts them
/// against quotas), with how many of them AWS throttled and how many were retries. Cheap to
/// clone; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct ApiCallCounter {
    counts: Arc<DashMap<String, AtomicU64>>,
    throttled: Arc<DashMap<String, AtomicU64>>,
    retries: Arc<DashMap<String, AtomicU64>>,
}

/// Adds one to `operation`'s count in `counts`.
fn bump(counts: &DashMap<String, AtomicU64>, operation: &str) {
    if let Some(count) = counts.get(operation) {
        count.fetch_add(1, Ordering::Relaxed);
        return;
    }
    counts
        .entry(operation.to_string())
        .or_default()
        .fetch_add(1, Ordering::Relaxed);
}

/// The non-zero counts of `counts`.
fn read(counts: &DashMap<String, AtomicU64>) -> BTreeMap<String, u64> {
    counts
        .iter()
        .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

impl ApiCallCounter {
    /// Counts one call of `operation` (`ec2:DescribeInstances`).
    pub fn record(&self, operation: &str) {
        bump(&self.counts, operation);
    }

    /// Counts one call of `operation` that AWS answered with throttling.
    pub fn record_throttled(&self, operation: &str) {
        bump(&self.throttled, operation);
    }

    /// Counts one retry of `operation` (by the SDK, or of its page by the fetcher).
    pub fn record_retry(&self, operation: &str) {
        bump(&self.retries, operation);
    }

    /// The call counts so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        read(&self.counts)
    }

    /// The throttled calls so far, per operation.
    pub fn throttled(&self) -> BTreeMap<String, u64> {
        read(&self.throttled)
    }

    /// The retries so far, per operation.
    pub fn retries(&self) -> BTreeMap<String, u64> {
        read(&self.retries)
    }
}

/// What the engine lends a source for the calls of one scan: pacing, and the scan's own
/// call counter (so that each scan reports its own calls, whatever runs beside it).
#[derive(Clone, Copy)]
pub struct FetchContext<'a> {
    throttle: &'a Arc<dyn Throttle>,
    calls: &'a ApiCallCounter,
}

/// The throttle of [`FetchContext::unthrottled`].
static UNTHROTTLED: std::sync::LazyLock<Arc<dyn Throttle>> =
    std::sync::LazyLock::new(|| Arc::new(Unthrottled));

impl<'a> FetchContext<'a> {
    /// A context pacing with `throttle` and counting into `calls`.
    pub fn new(throttle: &'a Arc<dyn Throttle>, calls: &'a ApiCallCounter) -> FetchContext<'a> {
        FetchContext { throttle, calls }
    }

    /// A context that never waits, counting into `calls`.
    pub fn unthrottled(calls: &'a ApiCallCounter) -> FetchContext<'a> {
        FetchContext {
            throttle: &UNTHROTTLED,
            calls,
        }
    }

    /// The throttle itself, for what outlives the context (an SDK interceptor that reports
    /// throttled calls).
    pub fn throttle(&self) -> Arc<dyn Throttle> {
        self.throttle.clone()
    }

    /// Waits until a call to `api` in `region` of `account` may be made.
    pub async fn pace(&self, account: &str, region: &str, api: &str) {
        self.throttle.until_ready(account, region, api).await;
    }

    /// The scan's call counter.
    pub fn calls(&self) -> &'a ApiCallCounter {
        self.calls
    }
}

/// The shards a scan will fetch, and what could not even be planned (an account whose role
/// could not be assumed, say). Serialisable: a plan made in one place can be split
/// ([`ShardPlan::split`]) and its parts fetched elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// Shards to fetch.
    pub shards: Vec<Shard>,
    /// Problems found while planning; they make the scan partial.
    #[serde(default)]
    pub issues: Vec<ScanIssue>,
    /// Limits of the source the result must state (never-tagged resources invisible, say).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl ShardPlan {
    /// The plan cut into `parts` plans (at least one) whose shards, taken together, are this
    /// plan's, each once: shard `i` goes to part `i % parts`. The planning issues go to the
    /// first part (once), the notes to every part.
    pub fn split(self, parts: usize) -> Vec<ShardPlan> {
        let parts = parts.max(1);
        let mut out: Vec<ShardPlan> = (0..parts)
            .map(|_| ShardPlan {
                shards: Vec::new(),
                issues: Vec::new(),
                notes: self.notes.clone(),
            })
            .collect();
        out[0].issues = self.issues;
        for (i, shard) in self.shards.into_iter().enumerate() {
            out[i % parts].shards.push(shard);
        }
        out
    }
}

/// A failure of a source. Becomes a [`ScanIssue`] when it concerns one shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// The class of failure.
    pub kind: ScanIssueKind,
    /// For access denied: the IAM action that is missing.
    pub missing_permission: Option<String>,
    /// What went wrong, quoting the offending input; no credentials, no local paths beyond
    /// what the user typed.
    pub message: String,
    /// Whether trying again later may succeed: AWS answered "too many requests" or failed on
    /// its side (5xx). The fetcher retries such a page after a backoff; other failures end the
    /// shard at once.
    pub retryable: bool,
    /// The operation that failed (`ec2:DescribeInstances`), when known: retries are counted
    /// against it.
    pub operation: Option<String>,
}

impl SourceError {
    /// A failure of the given kind.
    pub fn new(kind: ScanIssueKind, message: impl Into<String>) -> SourceError {
        SourceError {
            kind,
            missing_permission: None,
            message: message.into(),
            retryable: false,
            operation: None,
        }
    }

    /// The issue this failure becomes for `shard`, after `resources_before_failure` were read.
    pub fn into_issue(self, shard: &Shard, resources_before_failure: u64) -> ScanIssue {
        ScanIssue {
            account_id: shard.account_id.to_string(),
            region: shard.region.to_string(),
            service: shard.service.to_string(),
            kind: self.kind,
            missing_permission: self.missing_permission,
            message: self.message,
            resources_before_failure,
        }
    }
}

/// A provider of resources, paginated per shard.
#[async_trait]
pub trait ResourceSource: Send + Sync + 'static {
    /// A short name for results and logs (`demo`, `file:estate.json`, `aws`).
    fn name(&self) -> String;

    /// Whether resources come from a cloud provider's APIs (`/health` names them), rather than
    /// a file or a generator.
    fn cloud_provider(&self) -> Option<&'static str> {
        None
    }

    /// The shards covering `scope`. Shards outside the scope must not be returned. Every API
    /// call goes through `cx` (paced and counted for the scan).
    async fn plan(
        &self,
        scope: &ScanScope,
        cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError>;

    /// The shards that read the resources `scope.arns` names (within the rest of the scope).
    /// The default plans the scope and lets the engine drop what was not asked for; a source
    /// that can look resources up by ARN plans shards that read only those.
    async fn plan_lookup(
        &self,
        scope: &ScanScope,
        cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        self.plan(scope, cx).await
    }

    /// One page of a shard: the first when `token` is `None`. Every API call goes through
    /// `cx` first. Works on any shard the source planned, whoever planned it.
    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        cx: &FetchContext<'_>,
    ) -> Result<Page, SourceError>;

    /// Writes `tags` on `arns` (resources of `account` in `region`, at most 20): the ARNs it
    /// could not tag, each with the reason. The default: the source cannot be written.
    async fn tag_resources(
        &self,
        _account: &str,
        _region: &str,
        _arns: &[String],
        _tags: &BTreeMap<String, String>,
        _cx: &FetchContext<'_>,
    ) -> Result<BTreeMap<String, String>, SourceError> {
        Err(self.read_only())
    }

    /// Removes the tags `keys` from `arns`: the ARNs it could not untag, with the reason.
    async fn untag_resources(
        &self,
        _account: &str,
        _region: &str,
        _arns: &[String],
        _keys: &[String],
        _cx: &FetchContext<'_>,
    ) -> Result<BTreeMap<String, String>, SourceError> {
        Err(self.read_only())
    }

    /// Why tags cannot be written here.
    fn read_only(&self) -> SourceError {
        SourceError::new(
            ScanIssueKind::InvalidInput,
            format!(
                "the source '{}' cannot be changed: tags are applied to AWS only (--source aws)",
                self.name()
            ),
        )
    }

    /// The VPCs and subnets of `account` in `region`, with their names and tags (evidence
    /// for suggestions). The default: none known (a file of resources has no network).
    async fn network(
        &self,
        _account: &str,
        _region: &str,
        _cx: &FetchContext<'_>,
    ) -> Result<Vec<NetworkObject>, SourceError> {
        Ok(Vec::new())
    }
}

/// The offset a page token of an in-memory source stands for (`None` is the first page).
pub(crate) fn page_offset(token: Option<String>) -> Result<u64, SourceError> {
    match token {
        None => Ok(0),
        Some(t) => t.parse().map_err(|_| {
            SourceError::new(ScanIssueKind::InvalidInput, format!("bad page token '{t}'"))
        }),
    }
}

/// Which source to scan, as the CLI and tools name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The synthetic demo estate.
    Demo(SyntheticSpec),
    /// A snapshot file of `aws resourcegroupstaggingapi get-resources`.
    File(PathBuf),
    /// AWS itself, through the official SDK.
    Aws(aws::AwsOptions),
}

impl FromStr for SourceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "demo" {
            Ok(SourceSpec::Demo(SyntheticSpec::default()))
        } else if s == "aws" {
            Ok(SourceSpec::Aws(aws::AwsOptions::default()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                Err("'file:' needs a path, e.g. file:estate.json".to_string())
            } else {
                Ok(SourceSpec::File(PathBuf::from(path)))
            }
        } else {
            Err(format!(
                "'{s}' is not a source: use 'demo', 'file:PATH' or 'aws'"
            ))
        }
    }
}

impl SourceSpec {
    /// Opens the source. The synthetic estate is generated against `policy`.
    pub async fn open(&self, policy: &Arc<Policy>) -> Result<Arc<dyn ResourceSource>, SourceError> {
        Ok(match self {
            SourceSpec::Demo(spec) => Arc::new(SyntheticSource::new(*spec, policy.clone())?),
            SourceSpec::File(path) => Arc::new(SnapshotSource::open(path)?),
            SourceSpec::Aws(options) => Arc::new(aws::AwsSource::new(options.clone()).await?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_plan_holds_every_shard_once_and_the_issues_once() {
        let shards: Vec<Shard> = (0..7)
            .map(|i| Shard::new("1", format!("r{i}"), "ec2", Vec::new()))
            .collect();
        let plan = ShardPlan {
            shards: shards.clone(),
            issues: vec![ScanIssue::unattributed(ScanIssueKind::Other, "x")],
            notes: vec!["n".into()],
        };
        let parts = plan.split(3);
        assert_eq!(parts.len(), 3);
        let mut all: Vec<Shard> = parts.iter().flat_map(|p| p.shards.clone()).collect();
        all.sort_by_key(|s| s.id());
        assert_eq!(all, shards);
        assert_eq!(parts.iter().map(|p| p.issues.len()).sum::<usize>(), 1);
        assert!(parts.iter().all(|p| p.notes == ["n"]));
    }

    #[test]
    fn source_specs_parse() {
        assert!(matches!("demo".parse(), Ok(SourceSpec::Demo(_))));
        assert_eq!(
            "file:a/b.json".parse::<SourceSpec>(),
            Ok(SourceSpec::File(PathBuf::from("a/b.json")))
        );
        assert!("file:".parse::<SourceSpec>().is_err());
        assert!(
            "s3://x"
                .parse::<SourceSpec>()
                .unwrap_err()
                .contains("'s3://x'")
        );
    }
}
