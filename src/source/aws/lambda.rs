//! Lambda functions: `ListFunctions`, 50 per page, with their tags from the tagging API in bulk
//! (the Lambda API has no bulk tag call). Functions never tagged are absent from the tagging
//! API and count as untagged. The Lambda API gives no creation time, only `LastModified`, so
//! `created_at` stays unknown.

use async_trait::async_trait;

use super::{ServiceLister, ShardContext, classify, tag_value};
use crate::domain::{Resource, ResourceAttributes, ResourceType};
use crate::source::{Page, SourceError};

/// Tagging API type filter for functions.
const TYPE_FILTER: &str = "lambda:function";

/// Lists Lambda functions.
pub struct LambdaLister;

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
        let tags = ctx.source.bulk_tags(ctx, ctx.region, TYPE_FILTER).await?;
        let conf = aws_sdk_lambda::config::Builder::from(&ctx.config)
            .interceptor(ctx.calls.clone())
            .build();
        let out = aws_sdk_lambda::Client::from_conf(conf)
            .list_functions()
            .max_items(50)
            .set_marker(token)
            .send()
            .await
            .map_err(|e| classify("lambda:ListFunctions", e))?;
        let mut resources = Vec::new();
        for function in out.functions() {
            let (Some(arn), Some(name)) = (function.function_arn(), function.function_name())
            else {
                continue;
            };
            let tags = tags.get(arn).cloned().unwrap_or_default();
            let vpc = function.vpc_config();
            let attributes = ResourceAttributes {
                vpc_id: vpc
                    .and_then(|v| v.vpc_id())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                subnet_id: vpc.and_then(|v| v.subnet_ids().first()).cloned(),
                security_groups: vpc
                    .map(|v| v.security_group_ids().to_vec())
                    .unwrap_or_default(),
                cloudformation_stack: tag_value(&tags, "aws:cloudformation:stack-name")
                    .map(str::to_string),
                ..ResourceAttributes::default()
            };
            resources.push(Resource {
                arn: arn.to_string(),
                account_id: ctx.account.clone(),
                region: ctx.region.clone(),
                resource_type: ResourceType::LambdaFunction,
                id: name.to_string(),
                name: Some(name.to_string()),
                tags,
                created_at: None,
                monthly_cost: None,
                attributes,
            });
        }
        let next = out
            .next_marker()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if next.is_none() {
            ctx.source.forget_tags(ctx.account, ctx.region, TYPE_FILTER);
        }
        Ok(Page { resources, next })
    }
}
