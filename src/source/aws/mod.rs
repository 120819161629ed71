//! The AWS source: real SDK calls, multi-region and multi-account, one file per service.
//!
//! Planning resolves the accounts (the caller's, a list, or the organisation's active accounts,
//! each reached by STS `AssumeRole`), the regions of each account (the config chain's, a list,
//! or every region enabled for that account), and the shards: one per account × region ×
//! regional service, one per account for S3 (global, each bucket placed in its own region), and
//! one per account × region for the other resource types of the tagging API when the scan asks
//! for them. Credentials come only from the standard AWS chain; `AWS_ENDPOINT_URL` is honoured
//! by every client. Every call is paced by the engine's limiter of (account, region, API) and
//! counted per operation.
//!
//! Adding a service: one file here implementing [`ServiceLister`], one line in [`listers`],
//! a rate limit in `config/tagguard.toml`, and a test against the emulator.

mod calls;
mod ec2;
mod ecs;
mod errors;
mod lambda;
mod rds;
mod s3;
mod tagging;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures::StreamExt;

use super::{Page, ResourceSource, Shard, ShardPlan, SourceError, Throttle};
use crate::domain::{Arn, ResourceType, ScanIssue, ScanIssueKind, ScanScope, Tag};

pub use calls::ApiCalls;
pub use errors::{classify, from_code};

pub use crate::domain::GLOBAL_REGION;

/// Accounts whose role is assumed at once while planning.
const PLAN_CONCURRENCY: usize = 8;

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
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            all_regions: false,
            organization: false,
            role_name: "OrganizationAccountAccessRole".to_string(),
            external_id: None,
        }
    }
}

/// One service's lister: lists its resources in one account and region, page by page.
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

/// What a lister needs for one page.
pub(crate) struct ShardContext<'a> {
    /// The account's configuration (its credentials), for the shard's region.
    pub config: SdkConfig,
    /// The account.
    pub account: &'a Arc<str>,
    /// The region the calls go to (for S3: the home region).
    pub region: &'a Arc<str>,
    /// The regions planned for the account: S3 keeps the buckets located in them.
    pub regions: &'a [String],
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// Call counter to attach to clients.
    pub calls: &'a ApiCalls,
    /// Whether S3 has an endpoint override (then it uses path-style addressing).
    pub s3_custom_endpoint: bool,
    /// Resource types this shard lists.
    pub resource_types: &'a [ResourceType],
    /// The region where global resources of the tagging API are kept (once per account).
    pub global_home: &'a str,
    /// Paces every call.
    pub throttle: &'a dyn Throttle,
}

impl ShardContext<'_> {
    /// Waits for a token of the (account, shard region, `api`) limiter.
    pub async fn pace(&self, api: &str) {
        self.throttle.until_ready(self.region, api).await;
    }

    /// Waits for a token of the (account, `region`, `api`) limiter.
    pub async fn pace_in(&self, region: &str, api: &str) {
        self.throttle.until_ready(region, api).await;
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

/// An account ready to scan.
#[derive(Debug, Clone)]
struct PlannedAccount {
    config: SdkConfig,
    regions: Vec<String>,
}

/// The AWS source.
pub struct AwsSource {
    base: SdkConfig,
    options: AwsOptions,
    calls: ApiCalls,
    listers: Vec<Arc<dyn ServiceLister>>,
    /// Per account: its configuration (credentials) and regions, set when planning.
    accounts: DashMap<String, PlannedAccount>,
    /// Partition of the caller, set when planning.
    partition: std::sync::OnceLock<String>,
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
            base,
            options,
            calls: ApiCalls::default(),
            listers: listers(),
            accounts: DashMap::new(),
            partition: std::sync::OnceLock::new(),
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

    /// The caller's account and partition.
    async fn caller(&self) -> Result<(String, String), SourceError> {
        let config = self.base.to_builder().region(self.home_region()).build();
        let out = client!(aws_sdk_sts, &config, self.calls)
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

    async fn organization_accounts(&self) -> Result<Vec<String>, SourceError> {
        let config = self.base.to_builder().region(self.home_region()).build();
        let client = client!(aws_sdk_organizations, &config, self.calls);
        let mut accounts = Vec::new();
        let mut token = None;
        loop {
            let out = client
                .list_accounts()
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

    /// The regions enabled for the account of `config`.
    async fn enabled_regions(&self, config: &SdkConfig) -> Result<Vec<String>, SourceError> {
        let config = config.to_builder().region(self.home_region()).build();
        let out = client!(aws_sdk_ec2, &config, self.calls)
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

    /// The configuration for `account`: the caller's own, or credentials of the role assumed
    /// there. The identity cache of the returned configuration caches and refreshes them.
    async fn account_config(
        &self,
        account: &str,
        caller: &str,
        partition: &str,
    ) -> Result<SdkConfig, SourceError> {
        if account == caller {
            return Ok(self.base.clone());
        }
        let role = format!(
            "arn:{partition}:iam::{account}:role/{}",
            self.options.role_name
        );
        let mut builder = aws_config::sts::AssumeRoleProvider::builder(role.clone())
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
        provider.provide_credentials().await.map_err(|e| {
            let text = errors::source_chain(&e);
            let denied = text.contains("AccessDenied") || text.contains("not authorized");
            let kind = if denied {
                ScanIssueKind::AccessDenied
            } else if text.contains("dispatch failure") || text.contains("connect") {
                ScanIssueKind::EndpointUnavailable
            } else {
                ScanIssueKind::Other
            };
            SourceError {
                kind,
                missing_permission: denied.then(|| "sts:AssumeRole".to_string()),
                message: format!("cannot assume role '{role}': {text}"),
            }
        })?;
        Ok(self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build())
    }

    /// Resolves one account: its credentials and its regions.
    async fn plan_account(
        &self,
        account: &str,
        caller: &str,
        partition: &str,
        scope: &ScanScope,
    ) -> Result<PlannedAccount, SourceError> {
        let config = self.account_config(account, caller, partition).await?;
        let regions = if !scope.regions.is_empty() {
            scope
                .regions
                .iter()
                .filter(|r| *r != GLOBAL_REGION)
                .cloned()
                .collect()
        } else if self.options.all_regions {
            self.enabled_regions(&config).await?
        } else {
            vec![self.home_region().to_string()]
        };
        Ok(PlannedAccount { config, regions })
    }
}

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

/// The region where a partition's global resources are reported by the tagging API.
fn global_home(partition: &str, regions: &[String]) -> String {
    let home = match partition {
        "aws-cn" => "cn-north-1",
        "aws-us-gov" => "us-gov-west-1",
        _ => "us-east-1",
    };
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

    fn api_calls(&self) -> BTreeMap<String, u64> {
        self.calls.snapshot()
    }

    async fn plan(&self, scope: &ScanScope) -> Result<ShardPlan, SourceError> {
        let (caller, partition) = self.caller().await?;
        let _ = self.partition.set(partition.clone());
        let mut issues = Vec::new();
        let mut notes = Vec::new();

        let accounts: Vec<String> = if !scope.accounts.is_empty() {
            scope.accounts.iter().cloned().collect()
        } else if self.options.organization {
            self.organization_accounts().await?
        } else {
            vec![caller.clone()]
        };

        // Which listers, and whether the tagging API covers other types.
        let native: BTreeSet<ResourceType> = ResourceType::NATIVE.into_iter().collect();
        let listers: Vec<&Arc<dyn ServiceLister>> = self
            .listers
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
        if self.base.region().is_none() && scope.regions.is_empty() && !self.options.all_regions {
            notes.push(format!(
                "no region is configured (AWS_REGION, AWS_DEFAULT_REGION or the profile's region), so only {} was scanned; pass --regions",
                self.home_region()
            ));
        }
        if tagging_shards {
            notes.push(
                "resource types other than ec2:instance, rds:db, s3:bucket, lambda:function and ecs:service come from the Resource Groups Tagging API, which never returns resources that have never been tagged: untagged resources of those types are not counted".to_string(),
            );
        }

        let planned: Vec<(String, Result<PlannedAccount, SourceError>)> =
            futures::stream::iter(accounts)
                .map(|account| {
                    let (caller, partition) = (&caller, &partition);
                    async move {
                        let plan = self.plan_account(&account, caller, partition, scope).await;
                        (account, plan)
                    }
                })
                .buffered(PLAN_CONCURRENCY)
                .collect()
                .await;

        let mut shards = Vec::new();
        for (account, plan) in planned {
            let planned = match plan {
                Ok(planned) => planned,
                Err(error) => {
                    let mut issue = ScanIssue::unattributed(error.kind, error.message);
                    issue.account_id = account.clone();
                    issue.missing_permission = error.missing_permission;
                    issues.push(issue);
                    continue;
                }
            };
            let regions = planned.regions.clone();
            self.accounts.insert(account.clone(), planned);
            let account: Arc<str> = Arc::from(account.as_str());
            for lister in &listers {
                let types: Vec<ResourceType> = lister
                    .resource_types()
                    .into_iter()
                    .filter(|t| scope.admits_type(t))
                    .collect();
                let shard_regions: Vec<&str> = if lister.global() {
                    vec![GLOBAL_REGION]
                } else {
                    regions.iter().map(String::as_str).collect()
                };
                for region in shard_regions {
                    shards.push(Shard {
                        account_id: account.clone(),
                        region: Arc::from(region),
                        service: Arc::from(lister.service()),
                        resource_types: types.clone(),
                    });
                }
            }
            if tagging_shards {
                for region in &regions {
                    shards.push(Shard {
                        account_id: account.clone(),
                        region: Arc::from(region.as_str()),
                        service: Arc::from(tagging::SERVICE),
                        resource_types: other_types.clone(),
                    });
                }
            }
        }
        Ok(ShardPlan {
            shards,
            issues,
            notes,
        })
    }

    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        throttle: &dyn Throttle,
    ) -> Result<Page, SourceError> {
        let planned = self
            .accounts
            .get(&*shard.account_id)
            .map(|p| p.clone())
            .ok_or_else(|| {
                SourceError::new(
                    ScanIssueKind::Other,
                    format!("account {} was not planned", shard.account_id),
                )
            })?;
        let region: Arc<str> = if &*shard.region == GLOBAL_REGION {
            Arc::from(self.home_region().as_ref())
        } else {
            shard.region.clone()
        };
        let partition = self.partition.get().map_or("aws", String::as_str);
        let global_home = global_home(partition, &planned.regions);
        let ctx = ShardContext {
            config: planned
                .config
                .to_builder()
                .region(Region::new(region.to_string()))
                .build(),
            account: &shard.account_id,
            region: &region,
            regions: &planned.regions,
            partition,
            calls: &self.calls,
            s3_custom_endpoint: self.s3_custom_endpoint(),
            resource_types: &shard.resource_types,
            global_home: &global_home,
            throttle,
        };
        if &*shard.service == tagging::SERVICE {
            return tagging::fetch_other_types(&ctx, token).await;
        }
        let lister = self
            .listers
            .iter()
            .find(|l| l.service() == &*shard.service)
            .ok_or_else(|| {
                SourceError::new(
                    ScanIssueKind::Other,
                    format!("no lister for service '{}'", shard.service),
                )
            })?;
        lister.fetch(&ctx, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
