//! RDS DB instances: `DescribeDBInstances`, 100 per page (following `Marker`), tags inline;
//! lookups by the `db-instance-id` filter (one call per 100 ARNs).

use async_trait::async_trait;

use super::{ServiceLister, ShardContext, classify, client, tag, tag_value, to_chrono};
use crate::domain::{CostSource, Resource, ResourceAttributes, ResourceType};
use crate::source::{Page, SourceError};

/// Lists RDS DB instances.
pub struct RdsLister;

async fn describe(
    ctx: &ShardContext<'_>,
    filter: Option<aws_sdk_rds::types::Filter>,
    token: Option<String>,
) -> Result<Page, SourceError> {
    ctx.pace("rds").await;
    let out = client!(aws_sdk_rds, &ctx.config, ctx.calls)
        .describe_db_instances()
        .set_filters(filter.map(|f| vec![f]))
        .max_records(100)
        .set_marker(token)
        .send()
        .await
        .map_err(|e| classify("rds:DescribeDBInstances", e))?;
    let mut resources = Vec::new();
    for db in out.db_instances() {
        let Some(id) = db.db_instance_identifier() else {
            continue;
        };
        let tags: Vec<_> = db
            .tag_list()
            .iter()
            .filter_map(|t| tag(t.key(), t.value()))
            .collect();
        let arn = db.db_instance_arn().map(str::to_string).unwrap_or_else(|| {
            format!(
                "arn:{}:rds:{}:{}:db:{id}",
                ctx.partition, ctx.region, ctx.account
            )
        });
        let attributes = ResourceAttributes {
            instance_type: db.db_instance_class().map(str::to_string),
            vpc_id: db
                .db_subnet_group()
                .and_then(|g| g.vpc_id())
                .map(str::to_string),
            security_groups: db
                .vpc_security_groups()
                .iter()
                .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
                .collect(),
            cloudformation_stack: tag_value(&tags, "aws:cloudformation:stack-name")
                .map(str::to_string),
            ..ResourceAttributes::default()
        };
        resources.push(Resource {
            arn,
            account_id: ctx.account.clone(),
            region: ctx.region.clone(),
            resource_type: ResourceType::RdsDb,
            id: id.to_string(),
            name: Some(id.to_string()),
            created_at: db.instance_create_time().and_then(to_chrono),
            monthly_cost: None,
            cost_source: CostSource::Unknown,
            tags,
            attributes,
        });
    }
    Ok(Page {
        resources,
        next: out.marker().filter(|t| !t.is_empty()).map(str::to_string),
        issues: Vec::new(),
    })
}

#[async_trait]
impl ServiceLister for RdsLister {
    fn service(&self) -> &'static str {
        "rds"
    }

    fn resource_types(&self) -> Vec<ResourceType> {
        vec![ResourceType::RdsDb]
    }

    async fn fetch(
        &self,
        ctx: &ShardContext<'_>,
        token: Option<String>,
    ) -> Result<Page, SourceError> {
        describe(ctx, None, token).await
    }

    /// The `db-instance-id` filter takes ARNs, and leaves out those that do not exist.
    async fn lookup(&self, ctx: &ShardContext<'_>, arns: &[String]) -> Result<Page, SourceError> {
        let filter = aws_sdk_rds::types::Filter::builder()
            .name("db-instance-id")
            .set_values(Some(arns.to_vec()))
            .build();
        let mut resources = Vec::new();
        let mut token = None;
        loop {
            let page = describe(ctx, Some(filter.clone()), token).await?;
            resources.extend(page.resources);
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        Ok(Page {
            resources,
            next: None,
            issues: Vec::new(),
        })
    }
}
