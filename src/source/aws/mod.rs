//! The AWS source: real SDK calls, multi-region and multi-account, one file per service.
//!
//! Planning resolves the accounts (the caller's, a list, or the organisation's active accounts,
//! each reached by STS `AssumeRole`), the regions (the config chain's, a list, or every enabled
//! region), and the shards: one per account × region × regional service, one per account for
//! S3 (global, each bucket placed in its own region), and one per account × region for the
//! other resource types of the tagging API when the scan asks for them. Credentials come only
//! from the standard AWS chain; `AWS_ENDPOINT_URL` is honoured by every client.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use chrono::{DateTime, Utc};
use dashmap::DashMap;

use super::{Page, ResourceSource, Shard, ShardPlan, SourceError};
use crate::domain::{Arn, ResourceType, ScanIssue, ScanIssueKind, ScanScope, Tag};

pub use calls::ApiCalls;
pub use errors::{classify, from_code};

/// Region label of S3 shards: buckets are listed once per account and placed in their regions.
pub const GLOBAL_REGION: &str = "global";

/// How the AWS source picks accounts and regions when the scope does not list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// Every enabled region (EC2 `DescribeRegions`) instead of the config chain's region.
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

/// What a lister needs for one call.
pub(crate) struct ShardContext<'a> {
    /// The account's configuration (its credentials), for the shard's region.
    pub config: SdkConfig,
    /// The account.
    pub account: &'a Arc<str>,
    /// The region (for S3: the region the listing calls go to).
    pub region: &'a Arc<str>,
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// Call counter to attach to clients.
    pub calls: &'a ApiCalls,
    /// Whether an endpoint override is set (then S3 uses path-style addressing).
    pub custom_endpoint: bool,
    /// The source, for caches shared between pages of a shard.
    pub source: &'a AwsSource,
    /// Resource types this shard lists.
    pub resource_types: &'a [ResourceType],
}

/// Tags of resources, by ARN.
pub(crate) type TagsByArn = HashMap<String, Vec<Tag>>;

/// The AWS source.
pub struct AwsSource {
    base: SdkConfig,
    options: AwsOptions,
    calls: ApiCalls,
    listers: Vec<Arc<dyn ServiceLister>>,
    /// Per account: its configuration (credentials), set when planning.
    accounts: DashMap<String, SdkConfig>,
    /// Partition of the caller, set when planning.
    partition: std::sync::OnceLock<String>,
    /// Tags from the tagging API, per (account, region, type filter), shared by the pages of a
    /// shard: fetched once in bulk rather than once per resource.
    tag_cache: DashMap<(String, String, String), Arc<TagsByArn>>,
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
            tag_cache: DashMap::new(),
        }
    }

    fn home_region(&self) -> Region {
        self.base
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new("us-east-1"))
    }

    fn custom_endpoint(&self) -> bool {
        self.base.endpoint_url().is_some()
    }

    /// The caller's account and partition.
    async fn caller(&self) -> Result<(String, String), SourceError> {
        let conf = aws_sdk_sts::config::Builder::from(&self.base)
            .region(self.home_region())
            .interceptor(self.calls.clone())
            .build();
        let out = aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                let mut error = classify("sts:GetCallerIdentity", e);
                error.message = format!(
                    "no usable AWS credentials ({}); configure them as for the AWS CLI (environment, profile, SSO or instance role)",
                    error.message
                );
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
        let conf = aws_sdk_organizations::config::Builder::from(&self.base)
            .region(self.home_region())
            .interceptor(self.calls.clone())
            .build();
        let client = aws_sdk_organizations::Client::from_conf(conf);
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
                let active = account.status().is_none_or(|s| s.as_str() == "ACTIVE");
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

    async fn enabled_regions(&self) -> Result<Vec<String>, SourceError> {
        let conf = aws_sdk_ec2::config::Builder::from(&self.base)
            .region(self.home_region())
            .interceptor(self.calls.clone())
            .build();
        let out = aws_sdk_ec2::Client::from_conf(conf)
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
        // the account instead of one per shard.
        provider.provide_credentials().await.map_err(|e| {
            let mut error = SourceError::new(
                ScanIssueKind::AccessDenied,
                format!("cannot assume role '{role}': {}", error_text(&e)),
            );
            error.missing_permission = Some("sts:AssumeRole".to_string());
            error
        })?;
        Ok(self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build())
    }

    /// Tags of every resource of `type_filter` in (account, region), from the tagging API in
    /// bulk (100 per call), cached for the shard's later pages.
    pub(crate) async fn bulk_tags(
        &self,
        ctx: &ShardContext<'_>,
        region: &str,
        type_filter: &str,
    ) -> Result<Arc<TagsByArn>, SourceError> {
        let key = (
            ctx.account.to_string(),
            region.to_string(),
            type_filter.to_string(),
        );
        if let Some(found) = self.tag_cache.get(&key) {
            return Ok(found.clone());
        }
        let mut tags = HashMap::new();
        tagging::for_each_mapping(ctx, region, &[type_filter.to_string()], |arn, list| {
            tags.insert(arn, list);
        })
        .await?;
        let tags = Arc::new(tags);
        self.tag_cache.insert(key, tags.clone());
        Ok(tags)
    }

    /// Drops the cached tags of a shard once its last page is read.
    pub(crate) fn forget_tags(&self, account: &str, region: &str, type_filter: &str) {
        self.tag_cache.remove(&(
            account.to_string(),
            region.to_string(),
            type_filter.to_string(),
        ));
    }
}

fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
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
        let regions: Vec<String> = if !scope.regions.is_empty() {
            scope.regions.iter().cloned().collect()
        } else if self.options.all_regions {
            self.enabled_regions().await?
        } else {
            vec![self.home_region().to_string()]
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
        if scope.resource_types.is_empty() {
            notes.push(
                "resource types other than ec2:instance, rds:db, s3:bucket, lambda:function and ecs:service come from the Resource Groups Tagging API, which never returns resources that have never been tagged: untagged resources of those types are not counted".to_string(),
            );
        }

        let mut shards = Vec::new();
        for account in &accounts {
            let config = match self.account_config(account, &caller, &partition).await {
                Ok(config) => config,
                Err(error) => {
                    let mut issue = ScanIssue::unattributed(error.kind, error.message);
                    issue.account_id = account.clone();
                    issue.missing_permission = error.missing_permission;
                    issues.push(issue);
                    continue;
                }
            };
            self.accounts.insert(account.clone(), config);
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

    async fn fetch_page(&self, shard: &Shard, token: Option<String>) -> Result<Page, SourceError> {
        let config = self
            .accounts
            .get(&*shard.account_id)
            .map(|c| c.clone())
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
        let config = config
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        let partition = self.partition.get().map_or("aws", String::as_str);
        let ctx = ShardContext {
            config,
            account: &shard.account_id,
            region: &region,
            partition,
            calls: &self.calls,
            custom_endpoint: self.custom_endpoint(),
            source: self,
            resource_types: &shard.resource_types,
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
