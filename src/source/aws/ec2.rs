//! EC2 instances: `DescribeInstances`, 1,000 per page, tags inline; lookups by instance id
//! (one call per 100 ARNs).

use async_trait::async_trait;

use super::{ServiceLister, ShardContext, classify, client, tag, tag_value, to_chrono};
use crate::domain::{Arn, CostSource, Resource, ResourceAttributes, ResourceType};
use crate::source::{Page, SourceError};

/// Lists EC2 instances (terminated ones excepted: they cost nothing and vanish within the hour).
pub struct Ec2Lister;

/// The states of instances that exist: terminated ones cost nothing and vanish within the
/// hour, so AWS filters them out.
fn live() -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            ["pending", "running", "shutting-down", "stopping", "stopped"]
                .map(String::from)
                .to_vec(),
        ))
        .build()
}

/// One page of `DescribeInstances` with `filters`, as resources.
async fn describe(
    ctx: &ShardContext<'_>,
    filters: Vec<aws_sdk_ec2::types::Filter>,
    page_size: Option<i32>,
    token: Option<String>,
) -> Result<Page, SourceError> {
    ctx.pace("ec2").await;
    let out = client!(aws_sdk_ec2, &ctx.config, ctx.calls)
        .describe_instances()
        .set_filters(Some(filters))
        .set_max_results(page_size)
        .set_next_token(token)
        .send()
        .await
        .map_err(|e| classify("ec2:DescribeInstances", e))?;
    let resources = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|instance| instance_resource(ctx, instance))
        .collect();
    Ok(Page {
        resources,
        next: out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        issues: Vec::new(),
    })
}

fn instance_resource(
    ctx: &ShardContext<'_>,
    instance: &aws_sdk_ec2::types::Instance,
) -> Option<Resource> {
    let state = instance.state().and_then(|s| s.name()).map(|n| n.as_str());
    if matches!(state, Some("terminated")) {
        return None;
    }
    let id = instance.instance_id()?;
    let tags: Vec<_> = instance
        .tags()
        .iter()
        .filter_map(|t| tag(t.key(), t.value()))
        .collect();
    let attributes = ResourceAttributes {
        instance_type: instance.instance_type().map(|t| t.as_str().to_string()),
        vpc_id: instance.vpc_id().map(str::to_string),
        subnet_id: instance.subnet_id().map(str::to_string),
        security_groups: instance
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        iam_instance_profile: instance
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .map(str::to_string),
        cloudformation_stack: tag_value(&tags, "aws:cloudformation:stack-name").map(str::to_string),
        autoscaling_group: tag_value(&tags, "aws:autoscaling:groupName").map(str::to_string),
    };
    Some(Resource {
        arn: format!(
            "arn:{}:ec2:{}:{}:instance/{id}",
            ctx.partition, ctx.region, ctx.account
        ),
        account_id: ctx.account.clone(),
        region: ctx.region.clone(),
        resource_type: ResourceType::Ec2Instance,
        id: id.to_string(),
        name: tag_value(&tags, "Name").map(str::to_string),
        created_at: instance.launch_time().and_then(to_chrono),
        monthly_cost: None,
        cost_source: CostSource::Unknown,
        tags,
        attributes,
    })
}

#[async_trait]
impl ServiceLister for Ec2Lister {
    fn service(&self) -> &'static str {
        "ec2"
    }

    fn resource_types(&self) -> Vec<ResourceType> {
        vec![ResourceType::Ec2Instance]
    }

    async fn fetch(
        &self,
        ctx: &ShardContext<'_>,
        token: Option<String>,
    ) -> Result<Page, SourceError> {
        describe(ctx, vec![live()], Some(1000), token).await
    }

    /// An `instance-id` filter rather than `InstanceIds`, which fails the whole call when one
    /// id does not exist.
    async fn lookup(&self, ctx: &ShardContext<'_>, arns: &[String]) -> Result<Page, SourceError> {
        let ids: Vec<String> = arns
            .iter()
            .filter_map(|a| Arn::parse(a).ok())
            .map(|a| a.resource_id().to_string())
            .collect();
        let by_id = aws_sdk_ec2::types::Filter::builder()
            .name("instance-id")
            .set_values(Some(ids))
            .build();
        let mut page = describe(ctx, vec![live(), by_id], None, None).await?;
        // A filter by id answers in one page (at most 100 ids).
        page.next = None;
        Ok(page)
    }
}
