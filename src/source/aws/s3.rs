//! S3 buckets: listed once per account (`ListBuckets`), each placed in its own region
//! (`BucketRegion` when AWS returns it, else `GetBucketLocation`, 16 at a time), with tags from
//! the tagging API in bulk per bucket region. Never-tagged buckets count as untagged.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};

use super::{ServiceLister, ShardContext, classify, tag_value, to_chrono};
use crate::domain::{Resource, ResourceAttributes, ResourceType};
use crate::source::{Page, SourceError};

/// Tagging API type filter for buckets.
const TYPE_FILTER: &str = "s3";

/// Bucket location requests in flight at once.
const LOCATION_CONCURRENCY: usize = 16;

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
        let conf = aws_sdk_s3::config::Builder::from(&ctx.config)
            .force_path_style(ctx.custom_endpoint)
            .interceptor(ctx.calls.clone())
            .build();
        let client = aws_sdk_s3::Client::from_conf(conf);
        let out = client
            .list_buckets()
            .max_buckets(1000)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| classify("s3:ListAllMyBuckets", e))?;

        let buckets: Vec<_> = out
            .buckets()
            .iter()
            .filter(|b| b.name().is_some())
            .collect();
        let missing: Vec<String> = buckets
            .iter()
            .filter(|b| b.bucket_region().is_none_or(str::is_empty))
            .filter_map(|b| b.name().map(str::to_string))
            .collect();
        let located: HashMap<String, String> = futures::stream::iter(missing)
            .map(|name| {
                let client = client.clone();
                async move {
                    let out = client
                        .get_bucket_location()
                        .bucket(&name)
                        .send()
                        .await
                        .map_err(|e| {
                            let mut error = classify("s3:GetBucketLocation", e);
                            error.message = format!("bucket '{name}': {}", error.message);
                            error
                        })?;
                    let region =
                        region_of_constraint(out.location_constraint().map(|c| c.as_str()));
                    Ok::<_, SourceError>((name, region))
                }
            })
            .buffer_unordered(LOCATION_CONCURRENCY)
            .try_collect()
            .await?;

        let region_of = |bucket: &aws_sdk_s3::types::Bucket| -> String {
            match bucket.bucket_region().filter(|r| !r.is_empty()) {
                Some(region) => region.to_string(),
                None => located
                    .get(bucket.name().unwrap_or_default())
                    .cloned()
                    .unwrap_or_else(|| "us-east-1".to_string()),
            }
        };
        let regions: BTreeSet<String> = buckets.iter().map(|b| region_of(b)).collect();
        let mut tags_by_region = HashMap::new();
        for region in &regions {
            tags_by_region.insert(
                region.clone(),
                ctx.source.bulk_tags(ctx, region, TYPE_FILTER).await?,
            );
        }
        let mut interned: HashMap<String, Arc<str>> = HashMap::new();
        let mut resources = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            let name = bucket.name().unwrap_or_default();
            let region = region_of(bucket);
            let arn = format!("arn:{}:s3:::{name}", ctx.partition);
            // The tagging API may return a bucket from any region's endpoint: look everywhere.
            let tags = tags_by_region
                .get(&region)
                .and_then(|t| t.get(&arn))
                .or_else(|| tags_by_region.values().find_map(|t| t.get(&arn)))
                .cloned()
                .unwrap_or_default();
            let region = interned
                .entry(region.clone())
                .or_insert_with(|| Arc::from(region.as_str()))
                .clone();
            resources.push(Resource {
                arn,
                account_id: ctx.account.clone(),
                region,
                resource_type: ResourceType::S3Bucket,
                id: name.to_string(),
                name: Some(name.to_string()),
                created_at: bucket.creation_date().and_then(to_chrono),
                monthly_cost: None,
                attributes: ResourceAttributes {
                    cloudformation_stack: tag_value(&tags, "aws:cloudformation:stack-name")
                        .map(str::to_string),
                    ..ResourceAttributes::default()
                },
                tags,
            });
        }
        let next = out
            .continuation_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if next.is_none() {
            for region in &regions {
                ctx.source.forget_tags(ctx.account, region, TYPE_FILTER);
            }
        }
        Ok(Page { resources, next })
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
