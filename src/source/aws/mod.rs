//! The AWS source: real SDK calls, multi-region and multi-account, one file per service.
//!
//! Planning resolves the accounts (the caller's, a list, or the organisation's active accounts,
//! each reached by STS `AssumeRole`), the regions of each account (the config chain's, a list,
//! or every region enabled for that account), and the shards: one per account × region ×
//! regional service, one per account for S3 (global, each bucket placed in its own region), and
//! one per account × region for the other resource types of the tagging API when the scan asks
//! for them. Credentials come only from the standard AWS chain; `AWS_ENDPOINT_URL` is honoured
//! by every client. Every call is paced by the engine's limiter of (account, region, API) and
//! counted per operation for the scan that made it.
//!
//! Shards carry everything a fetch needs (the regions S3 keeps, whether a tagging shard keeps
//! global resources, the role that reaches the account); the source keeps only what does not
//! depend on a scan: the configuration of each account, by the role that reaches it.
//!
//! A lookup of given ARNs ([`ResourceSource::plan_lookup`]) reads only those resources: the
//! native listers' own bulk calls by id (untagged resources included), the tagging API's
//! `GetResources` by ARN list (100 per call) for the other types.
//!
//! Adding a service: one file here implementing [`ServiceLister`], one line in [`listers`],
//! a rate limit in `config/tagguard.toml`, and a test against the emulator. The tagging API's
//! shards then leave its types to it, from the registry.

mod calls;
mod ec2;
mod ecs;
mod errors;
mod lambda;
mod network;
mod rds;
mod s3;
mod tag_policies;
mod tag_writer;
mod tagging;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures::StreamExt;

use super::{FetchContext, Page, ResourceSource, Shard, ShardPlan, SourceError};
use crate::config::{RetryConfig, RetryMode, TimeoutConfig};
use crate::domain::{Arn, ResourceType, ScanIssue, ScanIssueKind, ScanScope, Tag};

pub use calls::CountCalls;
pub use errors::{classify, from_code};
pub use tag_policies::{RootTagPolicies, TagPolicyReader};

pub use crate::domain::GLOBAL_REGION;

/// Accounts whose role is assumed at once while planning.
const PLAN_CONCURRENCY: usize = 8;

/// ARNs one page of a lookup shard reads: the tagging API's limit for `ResourceARNList`.
const LOOKUP_PAGE: usize = 100;

/// How the AWS source picks accounts and regions when the scope does not list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// Every region enabled for each account (EC2 `DescribeRegions`) instead of the config
    /// chain's region.
    pub all_regions: bool,
    /// Every active account of the organisation (Organizations `ListAccounts`).
    pub organization: bool,
    /// Role assumed in accounts other than the caller's.
    pub role_name: String,
    /// External id for `AssumeRole`, when the role requires one.
    pub external_id: Option<String>,
    /// The SDK's retries of every call (the fetcher's page retries are the engine's).
    pub retries: RetryConfig,
    /// Connect, attempt and operation timeouts of every call.
    pub timeouts: TimeoutConfig,
}

impl AwsOptions {
    /// The SDK configuration of the standard chain (environment, profile, SSO, instance role;
    /// `AWS_ENDPOINT_URL`) with these retries and timeouts: what every AWS reader of tagguard
    /// (the resource listers, Cost Explorer) builds its clients from.
    pub async fn sdk_config(&self) -> SdkConfig {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        with_call_settings(base, &self.retries, &self.timeouts)
    }
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            all_regions: false,
            organization: false,
            role_name: "OrganizationAccountAccessRole".to_string(),
            external_id: None,
            retries: RetryConfig::default(),
            timeouts: TimeoutConfig::default(),
        }
    }
}

/// `base` with the configured retries and timeouts, which every client built from it (and
/// the role credentials' STS calls) then follows.
fn with_call_settings(
    base: SdkConfig,
    retries: &RetryConfig,
    timeouts: &TimeoutConfig,
) -> SdkConfig {
    let retry = match retries.mode {
        RetryMode::Standard => aws_config::retry::RetryConfig::standard(),
        RetryMode::Adaptive => aws_config::retry::RetryConfig::adaptive(),
    }
    .with_max_attempts(retries.max_attempts.max(1))
    .with_initial_backoff(Duration::from_millis(retries.initial_backoff_ms))
    .with_max_backoff(Duration::from_millis(retries.max_backoff_ms.max(1)));
    let timeout = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(timeouts.connect_ms))
        .operation_attempt_timeout(Duration::from_secs(timeouts.attempt_seconds))
        .operation_timeout(Duration::from_secs(timeouts.operation_seconds))
        .build();
    base.to_builder()
        .retry_config(retry)
        .timeout_config(timeout)
        .build()
}

/// One service's lister: lists its resources in one account and region, page by page, and
/// looks given resources up.
#[async_trait]
pub(crate) trait ServiceLister: Send + Sync {
    /// The service namespace: the shard's service and its rate-limit key.
    fn service(&self) -> &'static str;
    /// The resource types it lists.
    fn resource_types(&self) -> Vec<ResourceType>;
    /// Listed once per account rather than per region (S3).
    fn global(&self) -> bool {
        false
    }
    /// One page; `token` is the lister's own continuation.
    async fn fetch(
        &self,
        ctx: &ShardContext<'_>,
        token: Option<String>,
    ) -> Result<Page, SourceError>;
    /// The resources among `arns` (ARNs of its types, in the shard's account and region)
    /// that exist, with their tags; absent ones are left out.
    async fn lookup(&self, ctx: &ShardContext<'_>, arns: &[String]) -> Result<Page, SourceError>;
}

/// The registry of native listers.
fn listers() -> Vec<Arc<dyn ServiceLister>> {
    vec![
        Arc::new(ec2::Ec2Lister),
        Arc::new(rds::RdsLister),
        Arc::new(s3::S3Lister),
        Arc::new(lambda::LambdaLister),
        Arc::new(ecs::EcsLister),
    ]
}

/// What a lister needs for one page: the shard's detail and the scan's pacing and counting.
pub(crate) struct ShardContext<'a> {
    /// The account's configuration (its credentials), for the shard's region.
    pub config: SdkConfig,
    /// The account.
    pub account: &'a Arc<str>,
    /// The region the calls go to (for S3: the home region).
    pub region: &'a Arc<str>,
    /// For a global service: the regions whose resources are in scope.
    pub keep_regions: &'a [String],
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// Counts every call for the scan; attached to every client.
    pub calls: CountCalls,
    /// Whether S3 has an endpoint override (then it uses path-style addressing).
    pub s3_custom_endpoint: bool,
    /// Resource types this shard lists.
    pub resource_types: &'a [ResourceType],
    /// Resource types this shard leaves to other listers.
    pub skip_types: &'a [ResourceType],
    /// Whether this shard keeps resources of no region (once per account).
    pub keeps_global: bool,
    /// Paces every call.
    pub cx: FetchContext<'a>,
    /// How a call AWS asks to try later is retried on its own.
    pub retries: &'a RetryConfig,
    /// Retries the page's calls may still spend on their own (`shard_retry_budget` per page):
    /// a page of many calls against a failing endpoint gives up in bounded time, and its
    /// fetcher decides what next.
    pub retry_budget: std::sync::atomic::AtomicU32,
}

impl ShardContext<'_> {
    /// Makes a call in the shard's region, paced by the limiter of `api`; see
    /// [`ShardContext::patiently_in`].
    pub async fn patiently<T, F, Fut>(&self, api: &str, call: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        self.patiently_in(self.region, api, call).await
    }

    /// Makes a call in `region`, each attempt paced by the limiter of (account, `region`,
    /// `api`). A call that failed past the SDK's attempts with an answer meaning "try later"
    /// (throttled, 5xx) is made again on its own after a backoff with full jitter, up to
    /// `page_retries` times: one throttled call among the hundreds of a page (S3's bucket
    /// locations) must not cost the page. A call that has spent its retries is not worth
    /// trying again: its error is no longer retryable, so its page is not fetched again (that
    /// would multiply the attempts); the fetcher's page retries are for calls made once.
    pub async fn patiently_in<T, F, Fut>(
        &self,
        region: &str,
        api: &str,
        mut call: F,
    ) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        let budget = Some(&self.retry_budget);
        crate::source::backoff::retrying(self.retries, self.cx.calls(), budget, || {
            let attempt = call();
            async move {
                self.pace_in(region, api).await;
                attempt.await
            }
        })
        .await
        .map_err(|mut error| {
            error.retryable = false;
            error
        })
    }

    /// Waits for a token of the (account, shard region, `api`) limiter.
    pub async fn pace(&self, api: &str) {
        self.cx.pace(self.account, self.region, api).await;
    }

    /// Waits for a token of the (account, `region`, `api`) limiter.
    pub async fn pace_in(&self, region: &str, api: &str) {
        self.cx.pace(self.account, region, api).await;
    }

    /// The same account's configuration in another region.
    pub fn config_in(&self, region: &str) -> SdkConfig {
        self.config
            .to_builder()
            .region(Region::new(region.to_string()))
            .build()
    }

    /// An issue of this shard that did not end it.
    pub fn issue(&self, region: &str, service: &str, error: SourceError) -> ScanIssue {
        ScanIssue {
            account_id: self.account.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            kind: error.kind,
            missing_permission: error.missing_permission,
            message: error.message,
            resources_before_failure: 0,
        }
    }
}

/// Builds a service client from a context's configuration, with the call counter attached.
macro_rules! client {
    ($sdk:ident, $config:expr, $calls:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($config)
                .interceptor($calls.clone())
                .build(),
        )
    };
}
pub(crate) use client;

/// The AWS source.
pub struct AwsSource {
    base: SdkConfig,
    options: AwsOptions,
    listers: Vec<Arc<dyn ServiceLister>>,
    /// Each account's configuration by how it is reached (the role's ARN; the caller's own
    /// is `base`). Credentials do not depend on a scan's scope, so one cache serves every
    /// scan; each configuration's identity cache refreshes its credentials.
    access: DashMap<Arc<str>, SdkConfig>,
}

impl AwsSource {
    /// Loads the AWS configuration from the standard chain (environment, profile, SSO,
    /// instance role) and builds the source.
    pub async fn new(options: AwsOptions) -> Result<AwsSource, SourceError> {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Ok(AwsSource::with_config(base, options))
    }

    /// The source on an explicit SDK configuration.
    pub fn with_config(base: SdkConfig, options: AwsOptions) -> AwsSource {
        AwsSource {
            base: with_call_settings(base, &options.retries, &options.timeouts),
            options,
            listers: listers(),
            access: DashMap::new(),
        }
    }

    fn home_region(&self) -> Region {
        self.base
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new("us-east-1"))
    }

    fn s3_custom_endpoint(&self) -> bool {
        self.base.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
    }

    fn lister_of(&self, resource_type: &ResourceType) -> Option<&Arc<dyn ServiceLister>> {
        self.listers
            .iter()
            .find(|l| l.resource_types().contains(resource_type))
    }

    /// The caller's account and partition.
    async fn caller(&self, cx: &FetchContext<'_>) -> Result<(String, String), SourceError> {
        let config = self.base.to_builder().region(self.home_region()).build();
        cx.pace("", self.home_region().as_ref(), "sts").await;
        let out = client!(aws_sdk_sts, &config, CountCalls::new(cx, ""))
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                let mut error = classify("sts:GetCallerIdentity", e);
                error.message = if error.message.contains("credential") {
                    format!(
                        "no usable AWS credentials ({}); configure them as for the AWS CLI (environment, profile, SSO or instance role)",
                        error.message
                    )
                } else if error.kind == ScanIssueKind::EndpointUnavailable {
                    format!(
                        "cannot reach AWS STS ({}); check the network and AWS_ENDPOINT_URL",
                        error.message
                    )
                } else {
                    format!("cannot identify the caller ({})", error.message)
                };
                error
            })?;
        let account = out.account().unwrap_or_default().to_string();
        let partition = out
            .arn()
            .and_then(|a| Arn::parse(a).ok())
            .map(|a| a.partition().to_string())
            .unwrap_or_else(|| "aws".to_string());
        Ok((account, partition))
    }

    async fn organization_accounts(
        &self,
        cx: &FetchContext<'_>,
    ) -> Result<Vec<String>, SourceError> {
        let home = self.home_region();
        let config = self.base.to_builder().region(home.clone()).build();
        let client = client!(aws_sdk_organizations, &config, CountCalls::new(cx, ""));
        let mut accounts = Vec::new();
        let mut token = None;
        loop {
            cx.pace("", home.as_ref(), "organizations").await;
            let out = client
                .list_accounts()
                .max_results(20) // the API's most
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify("organizations:ListAccounts", e))?;
            for account in out.accounts() {
                // `State` replaces the deprecated `Status`; either must say ACTIVE.
                #[allow(deprecated)]
                let active = match (account.state(), account.status()) {
                    (Some(state), _) => state.as_str() == "ACTIVE",
                    (None, Some(status)) => status.as_str() == "ACTIVE",
                    (None, None) => true,
                };
                if let (true, Some(id)) = (active, account.id()) {
                    accounts.push(id.to_string());
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(accounts)
    }

    /// The regions enabled for `account`, whose configuration is `config`.
    async fn enabled_regions(
        &self,
        account: &str,
        config: &SdkConfig,
        cx: &FetchContext<'_>,
    ) -> Result<Vec<String>, SourceError> {
        let home = self.home_region();
        let config = config.to_builder().region(home.clone()).build();
        cx.pace(account, home.as_ref(), "ec2").await;
        let out = client!(aws_sdk_ec2, &config, CountCalls::new(cx, account))
            .describe_regions()
            .all_regions(false)
            .send()
            .await
            .map_err(|e| classify("ec2:DescribeRegions", e))?;
        let mut regions: Vec<String> = out
            .regions()
            .iter()
            .filter(|r| r.opt_in_status().is_none_or(|s| s != "not-opted-in"))
            .filter_map(|r| r.region_name().map(str::to_string))
            .collect();
        regions.sort();
        Ok(regions)
    }

    /// How `account` is reached: empty for the caller's own credentials, else the role's ARN.
    fn access_of(&self, account: &str, caller: &str, partition: &str) -> Arc<str> {
        if account == caller {
            Arc::from("")
        } else {
            Arc::from(format!(
                "arn:{partition}:iam::{account}:role/{}",
                self.options.role_name
            ))
        }
    }

    /// The configuration that reaches an account: the caller's own (`access` empty), or
    /// credentials of the role `access` names, assumed once and cached.
    async fn account_config(&self, access: &Arc<str>) -> Result<SdkConfig, SourceError> {
        if access.is_empty() {
            return Ok(self.base.clone());
        }
        if let Some(config) = self.access.get(access) {
            return Ok(config.clone());
        }
        let mut builder = aws_config::sts::AssumeRoleProvider::builder(access.to_string())
            .session_name("tagguard")
            .region(self.home_region())
            .configure(&self.base);
        if let Some(id) = &self.options.external_id {
            builder = builder.external_id(id.clone());
        }
        let provider = builder.build().await;
        // Assume the role now, once, so that a missing trust or permission is one issue for
        // the account instead of one per shard. (The identity cache assumes it again on first
        // use: one extra call per account, not counted in `api_calls`, like its refreshes.)
        provider
            .provide_credentials()
            .await
            .map_err(|e| errors::assume_role_error(access, &e))?;
        let config = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        self.access.insert(access.clone(), config.clone());
        Ok(config)
    }

    /// The configuration reaching `account` in `region`, outside a scan's shards.
    /// Where tag writes of `account` in `region` go.
    fn writer<'a>(
        &'a self,
        config: &'a SdkConfig,
        account: &'a str,
        region: &'a str,
    ) -> tag_writer::Writer<'a> {
        tag_writer::Writer {
            config,
            account,
            region,
            retries: &self.options.retries,
            s3_path_style: self.s3_custom_endpoint(),
        }
    }

    async fn config_for(
        &self,
        account: &str,
        region: &str,
        cx: &FetchContext<'_>,
    ) -> Result<SdkConfig, SourceError> {
        let (caller, partition) = self.caller(cx).await?;
        let access = self.access_of(account, &caller, &partition);
        Ok(self
            .account_config(&access)
            .await?
            .to_builder()
            .region(Region::new(region.to_string()))
            .build())
    }

    /// Resolves one account: how it is reached, and its regions.
    async fn plan_account(
        &self,
        account: &str,
        access: Arc<str>,
        scope: &ScanScope,
        cx: &FetchContext<'_>,
    ) -> Result<AccountAccess, SourceError> {
        let config = self.account_config(&access).await?;
        let regions = if !scope.regions.is_empty() {
            scope
                .regions
                .iter()
                .filter(|r| *r != GLOBAL_REGION)
                .cloned()
                .collect()
        } else if self.options.all_regions {
            self.enabled_regions(account, &config, cx).await?
        } else {
            vec![self.home_region().to_string()]
        };
        Ok((access, regions))
    }

    /// The accounts of `scope` (or the defaults), each resolved, and the caller's partition.
    /// An account that cannot be reached becomes an issue.
    async fn plan_accounts(
        &self,
        scope: &ScanScope,
        cx: &FetchContext<'_>,
    ) -> Result<PlannedAccounts, SourceError> {
        let (caller, partition) = self.caller(cx).await?;
        let accounts: Vec<String> = if !scope.accounts.is_empty() {
            scope.accounts.iter().cloned().collect()
        } else if self.options.organization {
            self.organization_accounts(cx).await?
        } else {
            vec![caller.clone()]
        };
        let planned: Vec<(String, Result<AccountAccess, SourceError>)> =
            futures::stream::iter(accounts)
                .map(|account| {
                    let access = self.access_of(&account, &caller, &partition);
                    async move {
                        // One account's planning AWS asks to try later is retried on its own:
                        // a throttled AssumeRole must not drop the account.
                        let plan = crate::source::backoff::retrying(
                            &self.options.retries,
                            cx.calls(),
                            None,
                            || self.plan_account(&account, access.clone(), scope, cx),
                        )
                        .await;
                        (account, plan)
                    }
                })
                .buffered(PLAN_CONCURRENCY)
                .collect()
                .await;
        let mut out = PlannedAccounts {
            partition,
            accounts: Vec::new(),
            issues: Vec::new(),
        };
        for (account, plan) in planned {
            match plan {
                Ok((access, regions)) => out.accounts.push((Arc::from(account), access, regions)),
                Err(error) => {
                    let mut issue = ScanIssue::unattributed(error.kind, error.message);
                    issue.account_id = account;
                    issue.missing_permission = error.missing_permission;
                    out.issues.push(issue);
                }
            }
        }
        Ok(out)
    }

    fn note_no_region(&self, scope: &ScanScope, notes: &mut Vec<String>) {
        if self.base.region().is_none() && scope.regions.is_empty() && !self.options.all_regions {
            notes.push(format!(
                "no region is configured (AWS_REGION, AWS_DEFAULT_REGION or the profile's region), so only {} was scanned; pass --regions",
                self.home_region()
            ));
        }
    }
}

/// How an account is reached (the role's ARN, empty for the caller's own), and its regions.
type AccountAccess = (Arc<str>, Vec<String>);

/// What planning found of the accounts.
struct PlannedAccounts {
    partition: String,
    /// (account, access, regions) of each account reached.
    accounts: Vec<(Arc<str>, Arc<str>, Vec<String>)>,
    issues: Vec<ScanIssue>,
}

/// The shards that list `scope` in the accounts planned: each lister's (per region, or once per
/// account for a global one), and, when the scope asks for types no lister has, the tagging
/// API's per region, leaving out every type a lister counts. With them, the note that says what
/// the tagging API cannot see, when its shards are planned.
fn listing_shards(
    listers: &[Arc<dyn ServiceLister>],
    planned: &PlannedAccounts,
    scope: &ScanScope,
) -> (Vec<Shard>, Option<String>) {
    let native: BTreeSet<ResourceType> = listers.iter().flat_map(|l| l.resource_types()).collect();
    let listers: Vec<&Arc<dyn ServiceLister>> = listers
        .iter()
        .filter(|l| l.resource_types().iter().any(|t| scope.admits_type(t)))
        .collect();
    let other_types: Vec<ResourceType> = scope
        .resource_types
        .iter()
        .filter(|t| !native.contains(t))
        .cloned()
        .collect();
    let tagging_shards = scope.resource_types.is_empty() || !other_types.is_empty();
    let note = tagging_shards.then(|| {
        let names: Vec<&str> = native.iter().map(ResourceType::as_str).collect();
        format!(
            "resource types other than {} come from the Resource Groups Tagging API, which never returns resources that have never been tagged: untagged resources of those types are not counted",
            crate::domain::all_of(&names)
        )
    });
    let partition: Arc<str> = Arc::from(planned.partition.as_str());
    let skip_types: Vec<ResourceType> = native.iter().cloned().collect();
    let mut shards = Vec::new();
    for (account, access, regions) in &planned.accounts {
        let shard = |region: &str, service: &str, types: Vec<ResourceType>| Shard {
            partition: partition.clone(),
            access: access.clone(),
            ..Shard::new(account.clone(), region, service, types)
        };
        for lister in &listers {
            let types: Vec<ResourceType> = lister
                .resource_types()
                .into_iter()
                .filter(|t| scope.admits_type(t))
                .collect();
            if lister.global() {
                shards.push(Shard {
                    keep_regions: regions.clone(),
                    ..shard(GLOBAL_REGION, lister.service(), types)
                });
            } else {
                for region in regions {
                    shards.push(shard(region, lister.service(), types.clone()));
                }
            }
        }
        if tagging_shards {
            let home = global_home(&planned.partition, regions);
            for region in regions {
                shards.push(Shard {
                    skip_types: skip_types.clone(),
                    keeps_global: *region == home,
                    ..shard(region, tagging::SERVICE, other_types.clone())
                });
            }
        }
    }
    (shards, note)
}

/// AWS has no cost data in a resource listing; stated with every result so that an unknown
/// cost is never read as zero.
const COST_NOTE: &str = "AWS's listings carry no cost: a resource's monthly_cost is what Cost Explorer gives when the scan prices resources (the other notes say what it rests on), else unknown, never 0";

/// An SDK timestamp as a chrono time.
pub(crate) fn to_chrono(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// A tag from the SDK's optional key and value.
pub(crate) fn tag(key: Option<&str>, value: Option<&str>) -> Option<Tag> {
    key.map(|k| Tag::new(k, value.unwrap_or_default()))
}

/// The value of a tag, when present.
pub(crate) fn tag_value<'t>(tags: &'t [Tag], key: &str) -> Option<&'t str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

/// The region of a partition where AWS keeps its global services (and the tagging API
/// reports global resources).
fn partition_home(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "cn-north-1",
        "aws-us-gov" => "us-gov-west-1",
        _ => "us-east-1",
    }
}

/// The region where the tagging shards of a plan over `regions` keep global resources: the
/// partition's home when it is planned, else the first region planned (the tagging API returns
/// global resources from every region's endpoint).
fn global_home(partition: &str, regions: &[String]) -> String {
    let home = partition_home(partition);
    if regions.iter().any(|r| r == home) {
        home.to_string()
    } else {
        regions.first().cloned().unwrap_or_else(|| home.to_string())
    }
}

#[async_trait]
impl ResourceSource for AwsSource {
    fn name(&self) -> String {
        "aws".to_string()
    }

    fn cloud_provider(&self) -> Option<&'static str> {
        Some("aws")
    }

    async fn plan(
        &self,
        scope: &ScanScope,
        cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        let planned = self.plan_accounts(scope, cx).await?;
        let mut notes = vec![COST_NOTE.to_string()];
        self.note_no_region(scope, &mut notes);

        let (shards, tagging_note) = listing_shards(&self.listers, &planned, scope);
        notes.extend(tagging_note);
        Ok(ShardPlan {
            shards,
            issues: planned.issues,
            notes,
        })
    }

    /// One shard per account, region and service holding the ARNs asked for; S3 buckets and
    /// other ARNs without an account are looked for in every account of the scope.
    async fn plan_lookup(
        &self,
        scope: &ScanScope,
        cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        let planned = self.plan_accounts(scope, cx).await?;
        let partition: Arc<str> = Arc::from(planned.partition.as_str());
        let mut notes = vec![COST_NOTE.to_string()];
        // (account, region, service) → (types, ARNs).
        type Wanted =
            BTreeMap<(Arc<str>, String, &'static str), (BTreeSet<ResourceType>, Vec<String>)>;
        let mut wanted: Wanted = BTreeMap::new();
        let mut untaggable = false;
        for text in &scope.arns {
            let Ok(arn) = Arn::parse(text) else { continue };
            let resource_type = arn.resource_type();
            if !scope.admits_type(&resource_type) {
                continue;
            }
            let lister = self.lister_of(&resource_type);
            untaggable |= lister.is_none();
            let service = lister.map_or(tagging::SERVICE, |l| l.service());
            let region = match (arn.region(), lister.is_some_and(|l| l.global())) {
                (_, true) | ("", _) => GLOBAL_REGION.to_string(),
                (region, false) => region.to_string(),
            };
            for (account, _, regions) in &planned.accounts {
                let mine = arn.account_id().is_empty() || arn.account_id() == &**account;
                let placed = region == GLOBAL_REGION || regions.contains(&region);
                if mine && placed {
                    let entry = wanted
                        .entry((account.clone(), region.clone(), service))
                        .or_default();
                    entry.0.insert(resource_type.clone());
                    entry.1.push(text.clone());
                }
            }
        }
        if untaggable {
            notes.push(
                "resources of types without a native lister are looked up through the Resource Groups Tagging API, which cannot see resources that were never tagged: such a resource is reported as not found".to_string(),
            );
        }
        let mut shards = Vec::new();
        for ((account, region, service), (types, arns)) in wanted {
            let Some((_, access, regions)) =
                planned.accounts.iter().find(|(a, _, _)| *a == account)
            else {
                continue;
            };
            shards.push(Shard {
                partition: partition.clone(),
                access: access.clone(),
                keep_regions: regions.clone(),
                keeps_global: true,
                arns,
                ..Shard::new(account, region, service, types.into_iter().collect())
            });
        }
        Ok(ShardPlan {
            shards,
            issues: planned.issues,
            notes,
        })
    }

    async fn tag_resources(
        &self,
        account: &str,
        region: &str,
        arns: &[String],
        tags: &BTreeMap<String, String>,
        cx: &FetchContext<'_>,
    ) -> Result<BTreeMap<String, String>, SourceError> {
        let config = self.config_for(account, region, cx).await?;
        let writer = self.writer(&config, account, region);
        tag_writer::write(&writer, arns, &tag_writer::Change::Tag(tags), cx).await
    }

    async fn untag_resources(
        &self,
        account: &str,
        region: &str,
        arns: &[String],
        keys: &[String],
        cx: &FetchContext<'_>,
    ) -> Result<BTreeMap<String, String>, SourceError> {
        let config = self.config_for(account, region, cx).await?;
        let writer = self.writer(&config, account, region);
        tag_writer::write(&writer, arns, &tag_writer::Change::Untag(keys), cx).await
    }

    /// Reaches the account as its scans do (the caller's credentials, or the role in it).
    async fn network(
        &self,
        account: &str,
        region: &str,
        cx: &FetchContext<'_>,
    ) -> Result<Vec<crate::domain::NetworkObject>, SourceError> {
        let config = self.config_for(account, region, cx).await?;
        network::network_objects(&config, account, region, &self.options.retries, cx).await
    }

    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        cx: &FetchContext<'_>,
    ) -> Result<Page, SourceError> {
        let config = self.account_config(&shard.access).await?;
        let partition = if shard.partition.is_empty() {
            "aws"
        } else {
            &shard.partition
        };
        // A global shard's calls go to the configured region (S3's listing answers there),
        // except a lookup of global resources in the tagging API, which keeps them in the
        // partition's home region.
        let region: Arc<str> = match (&*shard.region, &*shard.service) {
            (GLOBAL_REGION, tagging::SERVICE) => Arc::from(partition_home(partition)),
            (GLOBAL_REGION, _) => Arc::from(self.home_region().as_ref()),
            _ => shard.region.clone(),
        };
        let ctx = ShardContext {
            config: config
                .to_builder()
                .region(Region::new(region.to_string()))
                .build(),
            account: &shard.account_id,
            region: &region,
            keep_regions: &shard.keep_regions,
            partition,
            calls: CountCalls::new(cx, &shard.account_id),
            s3_custom_endpoint: self.s3_custom_endpoint(),
            resource_types: &shard.resource_types,
            skip_types: &shard.skip_types,
            keeps_global: shard.keeps_global,
            cx: *cx,
            retries: &self.options.retries,
            retry_budget: std::sync::atomic::AtomicU32::new(
                self.options.retries.shard_retry_budget,
            ),
        };
        let lister = if &*shard.service == tagging::SERVICE {
            None
        } else {
            Some(
                self.listers
                    .iter()
                    .find(|l| l.service() == &*shard.service)
                    .ok_or_else(|| {
                        SourceError::new(
                            ScanIssueKind::Other,
                            format!("no lister for service '{}'", shard.service),
                        )
                    })?,
            )
        };
        if !shard.arns.is_empty() {
            let offset = super::page_offset(token)? as usize;
            let end = (offset + LOOKUP_PAGE).min(shard.arns.len());
            let chunk = &shard.arns[offset.min(end)..end];
            let mut page = match lister {
                Some(lister) => lister.lookup(&ctx, chunk).await?,
                None => tagging::lookup(&ctx, chunk).await?,
            };
            page.next = (end < shard.arns.len()).then(|| end.to_string());
            return Ok(page);
        }
        match lister {
            Some(lister) => lister.fetch(&ctx, token).await,
            None => tagging::fetch_other_types(&ctx, token).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sixth lister, as adding a service would register one.
    struct TablesLister;

    #[async_trait]
    impl ServiceLister for TablesLister {
        fn service(&self) -> &'static str {
            "dynamodb"
        }
        fn resource_types(&self) -> Vec<ResourceType> {
            vec![ResourceType::other("dynamodb:table")]
        }
        async fn fetch(
            &self,
            _ctx: &ShardContext<'_>,
            _token: Option<String>,
        ) -> Result<Page, SourceError> {
            unreachable!("planning only")
        }
        async fn lookup(
            &self,
            _ctx: &ShardContext<'_>,
            _arns: &[String],
        ) -> Result<Page, SourceError> {
            unreachable!("planning only")
        }
    }

    fn planned(regions: &[&str]) -> PlannedAccounts {
        PlannedAccounts {
            partition: "aws".to_string(),
            accounts: vec![(
                Arc::from("111111111111"),
                Arc::from(""),
                regions.iter().map(|r| r.to_string()).collect(),
            )],
            issues: Vec::new(),
        }
    }

    #[test]
    fn a_new_lister_s_types_are_left_out_of_the_tagging_api_s_shards() {
        let mut registry = listers();
        registry.push(Arc::new(TablesLister));
        let (shards, note) = listing_shards(
            &registry,
            &planned(&["us-east-1", "eu-west-1"]),
            &ScanScope::default(),
        );
        let tagging: Vec<&Shard> = shards
            .iter()
            .filter(|s| &*s.service == tagging::SERVICE)
            .collect();
        assert_eq!(tagging.len(), 2, "one per region");
        let table = ResourceType::other("dynamodb:table");
        for shard in &tagging {
            assert!(
                shard.skip_types.contains(&table),
                "counted once, by its lister"
            );
            assert!(shard.skip_types.contains(&ResourceType::S3Bucket));
        }
        assert!(note.unwrap().contains("dynamodb:table"));
        // Global resources are kept by one tagging shard per account: the partition's home.
        let keepers: Vec<&str> = tagging
            .iter()
            .filter(|s| s.keeps_global)
            .map(|s| &*s.region)
            .collect();
        assert_eq!(keepers, ["us-east-1"]);
        // S3 is listed once per account, keeping the planned regions' buckets.
        let s3: Vec<&Shard> = shards.iter().filter(|s| &*s.service == "s3").collect();
        assert_eq!(s3.len(), 1);
        assert_eq!(s3[0].keep_regions, ["us-east-1", "eu-west-1"]);
        assert_eq!(
            shards.iter().filter(|s| &*s.service == "dynamodb").count(),
            2
        );
    }

    #[test]
    fn native_types_only_need_no_tagging_shard() {
        let scope = ScanScope {
            resource_types: [ResourceType::Ec2Instance, ResourceType::S3Bucket].into(),
            ..ScanScope::default()
        };
        let (shards, note) = listing_shards(&listers(), &planned(&["us-east-1"]), &scope);
        assert!(note.is_none());
        let services: Vec<&str> = shards.iter().map(|s| &*s.service).collect();
        assert_eq!(services, ["ec2", "s3"]);
    }

    #[test]
    fn global_resources_are_kept_in_one_region_per_partition() {
        let regions = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            global_home("aws", &regions(&["eu-west-1", "us-east-1"])),
            "us-east-1"
        );
        assert_eq!(
            global_home("aws", &regions(&["eu-west-1", "eu-central-1"])),
            "eu-west-1"
        );
        assert_eq!(
            global_home("aws-cn", &regions(&["cn-north-1"])),
            "cn-north-1"
        );
    }
}
