//! The Resource Groups Tagging API: tags of S3 buckets and Lambda functions in bulk (up to 100
//! ARNs per call instead of one call per resource), every other resource type when a scan
//! asks for them, and lookups of resources of those types by ARN.

use std::collections::HashMap;

use aws_sdk_resourcegroupstagging::types::ResourceTagMapping;

use super::{GLOBAL_REGION, ShardContext, classify, client};
use crate::domain::{Arn, CostSource, Resource, ResourceAttributes, Tag};
use crate::source::{Page, SourceError};

/// Service name (and rate-limit key) of the tagging API's shards and calls.
pub const SERVICE: &str = "tagging";

/// ARNs per `GetResources` call: the API's limit for `ResourceARNList`.
const ARNS_PER_CALL: usize = 100;

/// The largest pages `GetResources` serves when listing: `ResourcesPerPage` at most 100,
/// `TagsPerPage` at most 500 (the API reference; neither may go with `ResourceARNList`).
const RESOURCES_PER_PAGE: i32 = 100;
const TAGS_PER_PAGE: i32 = 500;

/// Tags as the SDK gives them, converted.
fn tags_of(mapping: &ResourceTagMapping) -> Vec<Tag> {
    mapping
        .tags()
        .iter()
        .map(|t| Tag::new(t.key(), t.value()))
        .collect()
}

/// Tags of the resources `arns` in `region`, by ARN. Resources that were never tagged are
/// absent from the answer (the caller treats them as untagged).
pub(crate) async fn tags_for(
    ctx: &ShardContext<'_>,
    region: &str,
    arns: &[String],
) -> Result<HashMap<String, Vec<Tag>>, SourceError> {
    let mut tags = HashMap::with_capacity(arns.len());
    for mapping in by_arns(ctx, region, arns).await? {
        if let Some(arn) = mapping.resource_arn() {
            tags.insert(arn.to_string(), tags_of(&mapping));
        }
    }
    Ok(tags)
}

/// A tagging API client for `region` of the shard's account.
fn client_in(ctx: &ShardContext<'_>, region: &str) -> aws_sdk_resourcegroupstagging::Client {
    client!(
        aws_sdk_resourcegroupstagging,
        &ctx.config_in(region),
        ctx.calls
    )
}

/// Tags of the resources `arns` of service `service` (`s3`) in `region`: by ARN list when
/// they fit in one call, else by listing the service's tagged resources in the region in the
/// largest pages and keeping those asked for, which takes fewer calls when most of a region's
/// resources are wanted (a listing shard's).
pub(crate) async fn tags_in_bulk(
    ctx: &ShardContext<'_>,
    region: &str,
    service: &str,
    arns: &[String],
) -> Result<HashMap<String, Vec<Tag>>, SourceError> {
    if arns.len() <= ARNS_PER_CALL {
        return tags_for(ctx, region, arns).await;
    }
    let wanted: std::collections::HashSet<&str> = arns.iter().map(String::as_str).collect();
    let client = client_in(ctx, region);
    let mut tags = HashMap::with_capacity(arns.len());
    let mut token: Option<String> = None;
    loop {
        let out = ctx
            .patiently_in(region, SERVICE, || async {
                client
                    .get_resources()
                    .resource_type_filters(service)
                    .resources_per_page(RESOURCES_PER_PAGE)
                    .tags_per_page(TAGS_PER_PAGE)
                    .set_pagination_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify("tag:GetResources", e))
            })
            .await?;
        for mapping in out.resource_tag_mapping_list() {
            if let Some(arn) = mapping.resource_arn().filter(|a| wanted.contains(a)) {
                tags.insert(arn.to_string(), tags_of(mapping));
            }
        }
        token = next_token(token, out.pagination_token())?;
        if token.is_none() {
            return Ok(tags);
        }
    }
}

/// `GetResources` for `arns` in `region`, 100 ARNs per call, following every
/// `PaginationToken`: AWS answers an ARN list in one page, but emulators page it.
async fn by_arns(
    ctx: &ShardContext<'_>,
    region: &str,
    arns: &[String],
) -> Result<Vec<ResourceTagMapping>, SourceError> {
    let mut mappings = Vec::new();
    if arns.is_empty() {
        return Ok(mappings);
    }
    let client = client_in(ctx, region);
    for chunk in arns.chunks(ARNS_PER_CALL) {
        let mut token: Option<String> = None;
        loop {
            let out = ctx
                .patiently_in(region, SERVICE, || async {
                    client
                        .get_resources()
                        .set_resource_arn_list(Some(chunk.to_vec()))
                        .set_pagination_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| classify("tag:GetResources", e))
                })
                .await?;
            token = next_token(token, out.pagination_token())?;
            mappings.extend(out.resource_tag_mapping_list.unwrap_or_default());
            if token.is_none() {
                break;
            }
        }
    }
    Ok(mappings)
}

/// The token of the next page after `current`, if any; the same token twice is an error (an
/// endpoint that would make the listing loop forever).
fn next_token(current: Option<String>, next: Option<&str>) -> Result<Option<String>, SourceError> {
    match next.filter(|t| !t.is_empty()) {
        Some(next) if current.as_deref() == Some(next) => Err(SourceError::new(
            crate::domain::ScanIssueKind::Other,
            format!(
                "tag:GetResources returned the same pagination token '{next}' twice; stopped to avoid a loop"
            ),
        )),
        next => Ok(next.map(str::to_string)),
    }
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
        .resources_per_page(RESOURCES_PER_PAGE)
        .tags_per_page(TAGS_PER_PAGE)
        .set_resource_type_filters((!filters.is_empty()).then_some(filters))
        .set_pagination_token(token)
        .send()
        .await
        .map_err(|e| classify("tag:GetResources", e))?;
    Ok(Page {
        next: out
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        ..page_of(ctx, out.resource_tag_mapping_list())
    })
}

/// The resources among `arns` (of types without a native lister) that the tagging API knows:
/// those tagged at least once.
pub(crate) async fn lookup(ctx: &ShardContext<'_>, arns: &[String]) -> Result<Page, SourceError> {
    let mappings = by_arns(ctx, ctx.region, arns).await?;
    Ok(page_of(ctx, &mappings))
}

/// The resources of a `GetResources` answer that this shard keeps; an ARN tagguard cannot
/// read is an issue of the page, not a resource dropped in silence.
fn page_of(ctx: &ShardContext<'_>, mappings: &[ResourceTagMapping]) -> Page {
    let mut resources = Vec::new();
    let mut issues = Vec::new();
    for mapping in mappings {
        let arn = match mapping.resource_arn().map(Arn::parse) {
            Some(Ok(arn)) => arn,
            Some(Err(error)) => {
                issues.push(ctx.issue(
                    ctx.region,
                    SERVICE,
                    SourceError::new(
                        crate::domain::ScanIssueKind::InvalidInput,
                        format!("tag:GetResources returned an ARN tagguard cannot read: {error}"),
                    ),
                ));
                continue;
            }
            None => continue,
        };
        let resource_type = arn.resource_type();
        // The native listers see these types, untagged resources included.
        if ctx.skip_types.contains(&resource_type) {
            continue;
        }
        // Global resources come back from every region's endpoint: one shard keeps them.
        let region = match arn.region() {
            "" if !ctx.keeps_global => continue,
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
            cost_source: CostSource::Unknown,
            attributes: ResourceAttributes::default(),
        });
    }
    Page {
        resources,
        next: None,
        issues,
    }
}
