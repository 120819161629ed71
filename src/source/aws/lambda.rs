//! Lambda functions: two `ListFunctions` pages of 50 (its most) per page of the shard, then
//! the tags of those 100 functions from the tagging API in one call (its most ARNs; the Lambda
//! API has no bulk tag call). Functions never tagged
//! are absent from the tagging API and count as untagged. The Lambda API gives no creation
//! time, only `LastModified`, so `created_at` stays unknown. Lookups take tags from the
//! tagging API by ARN list and ask `GetFunction` only for the functions it did not return
//! (never tagged, or absent).

use std::collections::HashMap;

use async_trait::async_trait;

use super::{ServiceLister, ShardContext, classify, client, tag_value, tagging};
use crate::domain::{Arn, CostSource, Resource, ResourceAttributes, ResourceType, Tag};
use crate::source::{Page, SourceError};

/// Lists Lambda functions.
pub struct LambdaLister;

/// Functions one `ListFunctions` call returns at most.
const FUNCTIONS_PER_LISTING: i32 = 50;

/// `ListFunctions` calls per page of the shard: their functions fill one tagging call.
const LISTINGS_PER_PAGE: usize = 2;

fn function_resource(
    ctx: &ShardContext<'_>,
    arn: &str,
    name: &str,
    vpc: Option<&aws_sdk_lambda::types::VpcConfigResponse>,
    tags: Vec<Tag>,
) -> Resource {
    let attributes = ResourceAttributes {
        vpc_id: vpc
            .and_then(|v| v.vpc_id())
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        subnet_id: vpc.and_then(|v| v.subnet_ids().first()).cloned(),
        security_groups: vpc
            .map(|v| v.security_group_ids().to_vec())
            .unwrap_or_default(),
        cloudformation_stack: tag_value(&tags, "aws:cloudformation:stack-name").map(str::to_string),
        ..ResourceAttributes::default()
    };
    Resource {
        arn: arn.to_string(),
        account_id: ctx.account.clone(),
        region: ctx.region.clone(),
        resource_type: ResourceType::LambdaFunction,
        id: name.to_string(),
        name: Some(name.to_string()),
        tags,
        created_at: None,
        monthly_cost: None,
        cost_source: CostSource::Unknown,
        attributes,
    }
}

#[async_trait]
impl ServiceLister for LambdaLister {
    fn service(&self) -> &'static str {
        "lambda"
    }

    fn resource_types(&self) -> Vec<ResourceType> {
        vec![ResourceType::LambdaFunction]
    }

    async fn fetch(
        &self,
        ctx: &ShardContext<'_>,
        token: Option<String>,
    ) -> Result<Page, SourceError> {
        // Two listing pages (ListFunctions serves at most 50) for one tagging call (which
        // takes up to 100 ARNs).
        let client = client!(aws_sdk_lambda, &ctx.config, ctx.calls);
        let mut listed = Vec::new();
        let mut marker = token;
        for _ in 0..LISTINGS_PER_PAGE {
            let out = ctx
                .patiently("lambda", || async {
                    client
                        .list_functions()
                        .max_items(FUNCTIONS_PER_LISTING)
                        .set_marker(marker.clone())
                        .send()
                        .await
                        .map_err(|e| classify("lambda:ListFunctions", e))
                })
                .await?;
            marker = out
                .next_marker()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            listed.extend(out.functions.unwrap_or_default());
            if marker.is_none() {
                break;
            }
        }
        let functions: Vec<_> = listed
            .iter()
            .filter(|f| f.function_arn().is_some() && f.function_name().is_some())
            .collect();
        let arns: Vec<String> = functions
            .iter()
            .filter_map(|f| f.function_arn().map(str::to_string))
            .collect();
        let mut tags = tagging::tags_for(ctx, ctx.region, &arns).await?;
        let mut resources = Vec::with_capacity(functions.len());
        for function in functions {
            let (Some(arn), Some(name)) = (function.function_arn(), function.function_name())
            else {
                continue;
            };
            let tags = tags.remove(arn).unwrap_or_default();
            resources.push(function_resource(
                ctx,
                arn,
                name,
                function.vpc_config(),
                tags,
            ));
        }
        Ok(Page {
            resources,
            next: marker,
            issues: Vec::new(),
        })
    }

    async fn lookup(&self, ctx: &ShardContext<'_>, arns: &[String]) -> Result<Page, SourceError> {
        let mut tagged: HashMap<String, Vec<Tag>> =
            tagging::tags_for(ctx, ctx.region, arns).await?;
        let client = client!(aws_sdk_lambda, &ctx.config, ctx.calls);
        let mut resources = Vec::new();
        for arn in arns {
            let name = Arn::parse(arn)
                .map(|a| a.resource_id().to_string())
                .unwrap_or_else(|_| arn.clone());
            if let Some(tags) = tagged.remove(arn) {
                resources.push(function_resource(ctx, arn, &name, None, tags));
                continue;
            }
            // Not in the tagging API: never tagged, or not there.
            ctx.pace("lambda").await;
            match client.get_function().function_name(arn).send().await {
                Ok(out) => {
                    let config = out.configuration();
                    let tags = out
                        .tags()
                        .map(|t| t.iter().map(|(k, v)| Tag::new(k, v)).collect())
                        .unwrap_or_default();
                    resources.push(function_resource(
                        ctx,
                        arn,
                        config.and_then(|c| c.function_name()).unwrap_or(&name),
                        config.and_then(|c| c.vpc_config()),
                        tags,
                    ));
                }
                Err(error) => {
                    let error = classify("lambda:GetFunction", error);
                    if !error.message.contains("ResourceNotFoundException") {
                        return Err(error);
                    }
                }
            }
        }
        Ok(Page {
            resources,
            next: None,
            issues: Vec::new(),
        })
    }
}
