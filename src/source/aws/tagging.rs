//! The Resource Groups Tagging API: tags of S3 buckets and Lambda functions in bulk (up to 100
//! ARNs per call instead of one call per resource), and every other resource type when a scan
//! asks for them.

use std::collections::HashMap;

use super::{GLOBAL_REGION, ShardContext, classify, client};
use crate::domain::{Arn, Resource, ResourceAttributes, ResourceType, Tag};
use crate::source::{Page, SourceError};

/// Service name (and rate-limit key) of the tagging API's shards and calls.
pub const SERVICE: &str = "tagging";

/// ARNs per `GetResources` call: the API's limit for `ResourceARNList`.
const ARNS_PER_CALL: usize = 100;

/// Tags as the SDK gives them, converted.
fn tags_of(mapping: &aws_sdk_resourcegroupstagging::types::ResourceTagMapping) -> Vec<Tag> {
    mapping
        .tags()
        .iter()
        .map(|t| Tag::new(t.key(), t.value()))
        .collect()
}

/// Tags of the resources `arns` in `region`, by ARN. Resources that were never tagged are
/// absent from the answer (the caller treats them as untagged). Follows every
/// `PaginationToken`, since the API pages even when given an ARN list.
pub(crate) async fn tags_for(
    ctx: &ShardContext<'_>,
    region: &str,
    arns: &[String],
) -> Result<HashMap<String, Vec<Tag>>, SourceError> {
    let mut tags = HashMap::with_capacity(arns.len());
    if arns.is_empty() {
        return Ok(tags);
    }
    let client = client!(
        aws_sdk_resourcegroupstagging,
        &ctx.config_in(region),
        ctx.calls
    );
    for chunk in arns.chunks(ARNS_PER_CALL) {
        let mut token: Option<String> = None;
        loop {
            ctx.pace_in(region, SERVICE).await;
            let out = client
                .get_resources()
                .set_resource_arn_list(Some(chunk.to_vec()))
                .set_pagination_token(token)
                .send()
                .await
                .map_err(|e| classify("tag:GetResources", e))?;
            for mapping in out.resource_tag_mapping_list() {
                if let Some(arn) = mapping.resource_arn() {
                    tags.insert(arn.to_string(), tags_of(mapping));
                }
            }
            token = out
                .pagination_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(tags)
}

/// One page of resources of types without a native lister.
pub(crate) async fn fetch_other_types(
    ctx: &ShardContext<'_>,
    token: Option<String>,
) -> Result<Page, SourceError> {
    let filters: Vec<String> = ctx.resource_types.iter().map(|t| t.to_string()).collect();
    ctx.pace(SERVICE).await;
    let out = client!(aws_sdk_resourcegroupstagging, &ctx.config, ctx.calls)
        .get_resources()
        .resources_per_page(100)
        .set_resource_type_filters((!filters.is_empty()).then_some(filters))
        .set_pagination_token(token)
        .send()
        .await
        .map_err(|e| classify("tag:GetResources", e))?;
    let mut resources = Vec::new();
    for mapping in out.resource_tag_mapping_list() {
        let Some(Ok(arn)) = mapping.resource_arn().map(Arn::parse) else {
            continue;
        };
        let resource_type = arn.resource_type();
        // The native listers see these types, untagged resources included.
        if ResourceType::NATIVE.contains(&resource_type) {
            continue;
        }
        // Global resources come back from every region's endpoint: keep them in one.
        let region = match arn.region() {
            "" if **ctx.region != *ctx.global_home => continue,
            "" => GLOBAL_REGION,
            region => region,
        };
        resources.push(Resource {
            arn: arn.as_str().to_string(),
            account_id: match arn.account_id() {
                "" => ctx.account.clone(),
                account if account == &**ctx.account => ctx.account.clone(),
                account => account.into(),
            },
            region: if region == &**ctx.region {
                ctx.region.clone()
            } else {
                region.into()
            },
            resource_type,
            id: arn.resource_id().to_string(),
            name: None,
            tags: tags_of(mapping),
            created_at: None,
            monthly_cost: None,
            attributes: ResourceAttributes::default(),
        });
    }
    Ok(Page {
        resources,
        next: out
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        issues: Vec::new(),
    })
}
