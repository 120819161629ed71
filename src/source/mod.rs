//! Where resources come from: one trait, paginated per shard, and its implementations.
//!
//! A scan is split into shards (account × region × service). The engine asks a source to
//! [`ResourceSource::plan`] the shards for a scope, then pulls each shard page by page with
//! [`ResourceSource::fetch_page`], one fetcher actor per shard. Sources know nothing of actors,
//! rate limiters or policies' semantics; the engine knows nothing of where pages come from.

pub mod aws;
pub mod snapshot;
pub mod synthetic;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Resource, ResourceType, ScanIssue, ScanIssueKind, ScanScope};
use crate::policy::Policy;

pub use snapshot::SnapshotSource;
pub use synthetic::{GroundTruth, SyntheticSource, SyntheticSpec};

/// The unit of fetching: one service in one region of one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Account id.
    pub account_id: Arc<str>,
    /// Region.
    pub region: Arc<str>,
    /// Service namespace (`ec2`): the unit of AWS rate limits.
    pub service: Arc<str>,
    /// Types of that service to list in this shard.
    pub resource_types: Vec<ResourceType>,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.account_id, self.region, self.service)
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
/// (the shard's account, `region`, `api`). The engine owns the limiters (sized from
/// `config/tagguard.toml`, shared by concurrent scans); sources only say what they call.
#[async_trait]
pub trait Throttle: Send + Sync {
    /// Waits until a call to `api` (`ec2`, `tagging`, `local`, ...) in `region` may be made.
    async fn until_ready(&self, region: &str, api: &str);
}

/// A throttle that never waits: for tests, benchmarks and embedders that pace calls themselves.
pub struct Unthrottled;

#[async_trait]
impl Throttle for Unthrottled {
    async fn until_ready(&self, _region: &str, _api: &str) {}
}

/// The shards a scan will fetch, and what could not even be planned (an account whose role
/// could not be assumed, say).
#[derive(Debug, Clone, Default)]
pub struct ShardPlan {
    /// Shards to fetch.
    pub shards: Vec<Shard>,
    /// Problems found while planning; they make the scan partial.
    pub issues: Vec<ScanIssue>,
    /// Limits of the source the result must state (never-tagged resources invisible, say).
    pub notes: Vec<String>,
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
}

impl SourceError {
    /// A failure of the given kind.
    pub fn new(kind: ScanIssueKind, message: impl Into<String>) -> SourceError {
        SourceError {
            kind,
            missing_permission: None,
            message: message.into(),
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

    /// The shards covering `scope`. Shards outside the scope must not be returned.
    async fn plan(&self, scope: &ScanScope) -> Result<ShardPlan, SourceError>;

    /// API calls made so far, per `service:Operation` (empty for sources without an API).
    fn api_calls(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }

    /// One page of a shard: the first when `token` is `None`. Every API call goes through
    /// `throttle` first.
    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        throttle: &dyn Throttle,
    ) -> Result<Page, SourceError>;
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
