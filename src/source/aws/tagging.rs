//! The Resource Groups Tagging API: bulk tags for S3 and Lambda (100 resources per call instead
//! of one call per resource), and every other resource type when a scan asks for them.

use aws_sdk_resourcegroupstagging::Client;

use super::{GLOBAL_REGION, ShardContext, classify, tag};
use crate::domain::{Arn, Resource, ResourceAttributes, ResourceType, Tag};
use crate::source::{Page, SourceError};

/// Service name of the shards that list other resource types through the tagging API.
pub const SERVICE: &str = "tagging";

fn client(ctx: &ShardContext<'_>, region: &str) -> Client {
    let conf = aws_sdk_resourcegroupstagging::config::Builder::from(&ctx.config)
        .region(aws_config::Region::new(region.to_string()))
        .interceptor(ctx.calls.clone())
        .build();
    Client::from_conf(conf)
}

/// Calls `each(arn, tags)` for every resource of the given types (all types when empty) that
/// the tagging API knows in `region`, following every `PaginationToken`.
pub(crate) async fn for_each_mapping(
    ctx: &ShardContext<'_>,
    region: &str,
    type_filters: &[String],
    mut each: impl FnMut(String, Vec<Tag>),
) -> Result<(), SourceError> {
    let client = client(ctx, region);
    let mut token: Option<String> = None;
    loop {
        let out = client
            .get_resources()
            .resources_per_page(100)
            .set_resource_type_filters((!type_filters.is_empty()).then(|| type_filters.to_vec()))
            .set_pagination_token(token)
            .send()
            .await
            .map_err(|e| classify("tag:GetResources", e))?;
        for mapping in out.resource_tag_mapping_list() {
            if let Some(arn) = mapping.resource_arn() {
                let tags = mapping
                    .tags()
                    .iter()
                    .filter_map(|t| tag(Some(t.key()), Some(t.value())))
                    .collect();
                each(arn.to_string(), tags);
            }
        }
        token = out
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if token.is_none() {
            return Ok(());
        }
    }
}

/// One page of resources of types without a native lister.
pub(crate) async fn fetch_other_types(
    ctx: &ShardContext<'_>,
    token: Option<String>,
) -> Result<Page, SourceError> {
    let filters: Vec<String> = ctx.resource_types.iter().map(|t| t.to_string()).collect();
    let out = client(ctx, ctx.region)
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
        // Global resources come back from every region's endpoint: keep them once.
        let region = match arn.region() {
            "" if &**ctx.region != "us-east-1" => continue,
            "" => GLOBAL_REGION,
            region => region,
        };
        let tags: Vec<Tag> = mapping
            .tags()
            .iter()
            .filter_map(|t| tag(Some(t.key()), Some(t.value())))
            .collect();
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
            tags,
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
    })
}
