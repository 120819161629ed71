//! EC2 instances: `DescribeInstances`, 1,000 per page, tags inline.

use async_trait::async_trait;

use super::{ServiceLister, ShardContext, classify, client, tag, tag_value, to_chrono};
use crate::domain::{Resource, ResourceAttributes, ResourceType};
use crate::source::{Page, SourceError};

/// Lists EC2 instances (terminated ones excepted: they cost nothing and vanish within the hour).
pub struct Ec2Lister;

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
        ctx.pace("ec2").await;
        // Terminated instances cost nothing and vanish within the hour: filtered out by AWS.
        let live = aws_sdk_ec2::types::Filter::builder()
            .name("instance-state-name")
            .set_values(Some(
                ["pending", "running", "shutting-down", "stopping", "stopped"]
                    .map(String::from)
                    .to_vec(),
            ))
            .build();
        let out = client!(aws_sdk_ec2, &ctx.config, ctx.calls)
            .describe_instances()
            .filters(live)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("ec2:DescribeInstances", e))?;
        let mut resources = Vec::new();
        for instance in out.reservations().iter().flat_map(|r| r.instances()) {
            let state = instance.state().and_then(|s| s.name()).map(|n| n.as_str());
            if matches!(state, Some("terminated")) {
                continue;
            }
            let Some(id) = instance.instance_id() else {
                continue;
            };
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
                cloudformation_stack: tag_value(&tags, "aws:cloudformation:stack-name")
                    .map(str::to_string),
                autoscaling_group: tag_value(&tags, "aws:autoscaling:groupName")
                    .map(str::to_string),
            };
            resources.push(Resource {
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
                tags,
                attributes,
            });
        }
        Ok(Page {
            resources,
            next: out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            issues: Vec::new(),
        })
    }
}
