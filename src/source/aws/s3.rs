//! S3 buckets: listed once per account (`ListBuckets`, 10,000 per page), each placed in its own
//! region (`BucketRegion` when AWS returns it, else `GetBucketLocation`, 16 at a time), kept
//! when that region is planned, with tags from the tagging API in bulk per region (the regions
//! at once). Never-tagged buckets count as untagged. Each call AWS asks to try later is retried
//! on its own; a bucket whose region or tags still cannot be read (access denied, a region
//! that does not answer or keeps failing) is reported as an issue naming that region, and the
//! other buckets are scanned. Lookups list the account's
//! buckets once (a bucket ARN names no account or region) and read only those asked for.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use super::{ServiceLister, ShardContext, classify, tag_value, tagging, to_chrono};
use crate::domain::{Arn, CostSource, Resource, ResourceAttributes, ResourceType, ScanIssue};
use crate::source::{Page, SourceError};

/// Bucket location requests in flight at once.
const LOCATION_CONCURRENCY: usize = 16;

/// Regions whose buckets' tags are read at once.
const REGION_CONCURRENCY: usize = 8;

/// The most buckets one `ListBuckets` page may hold (`max-buckets`).
const BUCKETS_PER_PAGE: i32 = 10_000;

/// Lists S3 buckets.
pub struct S3Lister;

/// A `GetBucketLocation` constraint as a region: empty (or absent) is us-east-1, `EU` the
/// legacy name of eu-west-1.
fn region_of_constraint(constraint: Option<&str>) -> String {
    match constraint.unwrap_or("") {
        "" => "us-east-1".to_string(),
        "EU" => "eu-west-1".to_string(),
        region => region.to_string(),
    }
}

/// A bucket of the listing.
struct Bucket {
    name: String,
    region: Option<String>,
    created: Option<chrono::DateTime<chrono::Utc>>,
}

#[async_trait]
impl ServiceLister for S3Lister {
    fn service(&self) -> &'static str {
        "s3"
    }

    fn resource_types(&self) -> Vec<ResourceType> {
        vec![ResourceType::S3Bucket]
    }

    fn global(&self) -> bool {
        true
    }

    async fn fetch(
        &self,
        ctx: &ShardContext<'_>,
        token: Option<String>,
    ) -> Result<Page, SourceError> {
        let client = s3_client(ctx);
        let (buckets, next) = list_buckets(ctx, &client, token).await?;
        let mut page = read_buckets(ctx, &client, buckets).await;
        page.next = next;
        Ok(page)
    }

    async fn lookup(&self, ctx: &ShardContext<'_>, arns: &[String]) -> Result<Page, SourceError> {
        let wanted: std::collections::HashSet<String> = arns
            .iter()
            .filter_map(|a| Arn::parse(a).ok())
            .map(|a| a.resource_id().to_string())
            .collect();
        let client = s3_client(ctx);
        let mut token = None;
        let mut mine = Vec::new();
        loop {
            let (buckets, next) = list_buckets(ctx, &client, token).await?;
            mine.extend(buckets.into_iter().filter(|b| wanted.contains(&b.name)));
            token = next;
            if token.is_none() {
                break;
            }
        }
        Ok(read_buckets(ctx, &client, mine).await)
    }
}

fn s3_client(ctx: &ShardContext<'_>) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&ctx.config)
            .force_path_style(ctx.s3_custom_endpoint)
            .interceptor(ctx.calls.clone())
            .build(),
    )
}

/// One page of the account's buckets, and the token of the next.
async fn list_buckets(
    ctx: &ShardContext<'_>,
    client: &aws_sdk_s3::Client,
    token: Option<String>,
) -> Result<(Vec<Bucket>, Option<String>), SourceError> {
    ctx.pace("s3").await;
    let out = client
        .list_buckets()
        .max_buckets(BUCKETS_PER_PAGE)
        .set_continuation_token(token)
        .send()
        .await
        .map_err(|e| classify("s3:ListAllMyBuckets", e))?;
    let buckets = out
        .buckets()
        .iter()
        .filter_map(|b| {
            Some(Bucket {
                name: b.name()?.to_string(),
                region: b
                    .bucket_region()
                    .filter(|r| !r.is_empty())
                    .map(str::to_string),
                created: b.creation_date().and_then(to_chrono),
            })
        })
        .collect();
    let next = out
        .continuation_token()
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Ok((buckets, next))
}

/// Places each bucket in its region, keeps those of the planned regions, and reads their
/// tags (in bulk, per region). A bucket whose region or tags cannot be read, after the
/// call's own retries, is an issue.
async fn read_buckets(
    ctx: &ShardContext<'_>,
    client: &aws_sdk_s3::Client,
    mut buckets: Vec<Bucket>,
) -> Page {
    let mut issues: Vec<ScanIssue> = Vec::new();
    // Where ListBuckets leaves the region out, ask each bucket (there is no bulk call).
    let unplaced: Vec<String> = buckets
        .iter()
        .filter(|b| b.region.is_none())
        .map(|b| b.name.clone())
        .collect();
    let placed: Vec<(String, Result<String, SourceError>)> = futures::stream::iter(unplaced)
        .map(|name| {
            let client = client.clone();
            async move {
                let located = ctx
                    .patiently("s3", || async {
                        client
                            .get_bucket_location()
                            .bucket(&name)
                            .send()
                            .await
                            .map(|out| {
                                region_of_constraint(out.location_constraint().map(|c| c.as_str()))
                            })
                            .map_err(|e| classify("s3:GetBucketLocation", e))
                    })
                    .await;
                (name, located)
            }
        })
        .buffer_unordered(LOCATION_CONCURRENCY)
        .collect()
        .await;
    let mut located: HashMap<String, String> = HashMap::new();
    for (name, result) in placed {
        match result {
            Ok(region) => {
                located.insert(name, region);
            }
            Err(mut error) => {
                error.message = format!("bucket '{name}' was not scanned: {}", error.message);
                issues.push(ctx.issue(super::GLOBAL_REGION, "s3", error));
            }
        }
    }
    for bucket in &mut buckets {
        if bucket.region.is_none() {
            bucket.region = located.remove(&bucket.name);
        }
    }

    // Buckets of the planned regions, grouped by region for their tags.
    let mut by_region: BTreeMap<String, Vec<Bucket>> = BTreeMap::new();
    for bucket in buckets {
        if let Some(region) = bucket.region.clone()
            && ctx.keep_regions.contains(&region)
        {
            by_region.entry(region).or_default().push(bucket);
        }
    }
    let read: Vec<_> = futures::stream::iter(by_region)
        .map(|(region, buckets)| async move {
            let arns: Vec<String> = buckets
                .iter()
                .map(|b| format!("arn:{}:s3:::{}", ctx.partition, b.name))
                .collect();
            let tags = tagging::tags_in_bulk(ctx, &region, "s3", &arns).await;
            (region, buckets, arns, tags)
        })
        .buffered(REGION_CONCURRENCY)
        .collect()
        .await;
    let mut resources = Vec::new();
    for (region, buckets, arns, tags) in read {
        let mut tags = match tags {
            Ok(tags) => tags,
            Err(mut error) => {
                error.message = format!(
                    "the tags of {} buckets in {region} could not be read, so they were not scanned: {}",
                    buckets.len(),
                    error.message
                );
                issues.push(ctx.issue(&region, "s3", error));
                continue;
            }
        };
        let region: Arc<str> = Arc::from(region.as_str());
        for (bucket, arn) in buckets.into_iter().zip(arns) {
            let tags = tags.remove(&arn).unwrap_or_default();
            resources.push(Resource {
                arn,
                account_id: ctx.account.clone(),
                region: region.clone(),
                resource_type: ResourceType::S3Bucket,
                id: bucket.name.clone(),
                name: Some(bucket.name),
                created_at: bucket.created,
                monthly_cost: None,
                cost_source: CostSource::Unknown,
                attributes: ResourceAttributes {
                    cloudformation_stack: tag_value(&tags, "aws:cloudformation:stack-name")
                        .map(str::to_string),
                    ..ResourceAttributes::default()
                },
                tags,
            });
        }
    }
    Page {
        resources,
        next: None,
        issues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_constraints_map_to_regions() {
        assert_eq!(region_of_constraint(None), "us-east-1");
        assert_eq!(region_of_constraint(Some("")), "us-east-1");
        assert_eq!(region_of_constraint(Some("EU")), "eu-west-1");
        assert_eq!(region_of_constraint(Some("ap-south-1")), "ap-south-1");
    }
}
