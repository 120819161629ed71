//! ECS services: `ListClusters`, then per cluster `ListServices` (100 per page) and
//! `DescribeServices` with `include=TAGS` (10 per call, the API's most; a page's calls go out
//! together, each paced); lookups describe the services asked
//! for, cluster by cluster (the cluster is in the service's ARN).

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{ServiceLister, ShardContext, classify, client, tag, tag_value, to_chrono};
use crate::domain::{
    Arn, CostSource, Resource, ResourceAttributes, ResourceType, ScanIssue, ScanIssueKind,
};
use crate::source::{Page, SourceError};

/// Lists ECS services.
pub struct EcsLister;

/// Services one `DescribeServices` call takes at most.
const SERVICES_PER_DESCRIBE: usize = 10;

/// `DescribeServices` calls of one listing page in flight at once: a page of 100 services.
const DESCRIBES_AT_ONCE: usize = 10;

/// Where the listing is: the clusters (listed once, on the first page), which one, and the
/// `ListServices` token inside it. Serialised as the shard's page token.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    clusters: Vec<String>,
    index: usize,
    services_token: Option<String>,
}

#[async_trait]
impl ServiceLister for EcsLister {
    fn service(&self) -> &'static str {
        "ecs"
    }

    fn resource_types(&self) -> Vec<ResourceType> {
        vec![ResourceType::EcsService]
    }

    async fn fetch(
        &self,
        ctx: &ShardContext<'_>,
        token: Option<String>,
    ) -> Result<Page, SourceError> {
        let client = client!(aws_sdk_ecs, &ctx.config, ctx.calls);
        let mut cursor = match token {
            Some(token) => serde_json::from_str::<Cursor>(&token).map_err(|e| {
                SourceError::new(ScanIssueKind::Other, format!("bad ECS page token: {e}"))
            })?,
            None => {
                let mut clusters = Vec::new();
                let mut next = None;
                loop {
                    ctx.pace("ecs").await;
                    let out = client
                        .list_clusters()
                        .max_results(100)
                        .set_next_token(next)
                        .send()
                        .await
                        .map_err(|e| classify("ecs:ListClusters", e))?;
                    clusters.extend(out.cluster_arns().iter().cloned());
                    next = out
                        .next_token()
                        .filter(|t| !t.is_empty())
                        .map(str::to_string);
                    if next.is_none() {
                        break;
                    }
                }
                Cursor {
                    clusters,
                    ..Cursor::default()
                }
            }
        };
        let Some(cluster) = cursor.clusters.get(cursor.index).cloned() else {
            return Ok(Page::default());
        };
        ctx.pace("ecs").await;
        let listed = client
            .list_services()
            .cluster(&cluster)
            .max_results(100)
            .set_next_token(cursor.services_token.take())
            .send()
            .await
            .map_err(|e| classify("ecs:ListServices", e))?;
        let (resources, issues) = describe(ctx, &client, &cluster, listed.service_arns()).await?;
        match listed.next_token().filter(|t| !t.is_empty()) {
            Some(next) => cursor.services_token = Some(next.to_string()),
            None => cursor.index += 1,
        }
        let next = (cursor.index < cursor.clusters.len())
            .then(|| serde_json::to_string(&cursor).expect("a cursor of strings serialises"));
        Ok(Page {
            resources,
            next,
            issues,
        })
    }

    async fn lookup(&self, ctx: &ShardContext<'_>, arns: &[String]) -> Result<Page, SourceError> {
        let client = client!(aws_sdk_ecs, &ctx.config, ctx.calls);
        let mut by_cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for arn in arns {
            by_cluster
                .entry(cluster_of(arn))
                .or_default()
                .push(arn.clone());
        }
        let mut page = Page::default();
        for (cluster, services) in by_cluster {
            match describe(ctx, &client, &cluster, &services).await {
                Ok((resources, issues)) => {
                    page.resources.extend(resources);
                    page.issues.extend(issues);
                }
                // A cluster that does not exist holds none of the services asked for: they
                // are not found, and the other clusters' are still looked up.
                Err(error) if error.message.contains("ClusterNotFoundException") => {}
                Err(error) => return Err(error),
            }
        }
        Ok(page)
    }
}

/// Describes `services` (ARNs) of `cluster`, 10 per call, with their tags. A service gone
/// between the listing and the call is left out; other failures are issues.
async fn describe(
    ctx: &ShardContext<'_>,
    client: &aws_sdk_ecs::Client,
    cluster: &str,
    services: &[String],
) -> Result<(Vec<Resource>, Vec<ScanIssue>), SourceError> {
    let mut resources = Vec::new();
    let mut issues = Vec::new();
    // The calls of one listing page go out together, in order, each paced by the limiter.
    let chunks: Vec<Vec<String>> = services
        .chunks(SERVICES_PER_DESCRIBE)
        .map(<[String]>::to_vec)
        .collect();
    let answers: Vec<_> = futures::stream::iter(chunks)
        .map(|chunk| async move {
            ctx.patiently("ecs", || async {
                client
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(chunk.clone()))
                    .include(aws_sdk_ecs::types::ServiceField::Tags)
                    .send()
                    .await
                    .map_err(|e| classify("ecs:DescribeServices", e))
            })
            .await
        })
        .buffered(DESCRIBES_AT_ONCE)
        .collect()
        .await;
    for described in answers {
        let described = described?;
        for failure in described.failures() {
            // A service deleted between the two calls is gone, not lost; anything else is.
            if failure.reason() != Some("MISSING") {
                issues.push(ctx.issue(
                    ctx.region,
                    "ecs",
                    SourceError::new(
                        ScanIssueKind::Other,
                        format!(
                            "ecs:DescribeServices could not describe '{}': {}",
                            failure.arn().unwrap_or_default(),
                            failure.reason().unwrap_or("no reason given")
                        ),
                    ),
                ));
            }
        }
        for service in described.services() {
            if let Some(resource) = service_resource(ctx, service) {
                resources.push(resource);
            }
        }
    }
    Ok((resources, issues))
}

fn service_resource(
    ctx: &ShardContext<'_>,
    service: &aws_sdk_ecs::types::Service,
) -> Option<Resource> {
    let arn = service.service_arn()?;
    let tags: Vec<_> = service
        .tags()
        .iter()
        .filter_map(|t| tag(t.key(), t.value()))
        .collect();
    let network = service
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration());
    let id = Arn::parse(arn)
        .map(|a| a.resource_id().to_string())
        .unwrap_or_else(|_| service.service_name().unwrap_or_default().to_string());
    Some(Resource {
        arn: arn.to_string(),
        account_id: ctx.account.clone(),
        region: ctx.region.clone(),
        resource_type: ResourceType::EcsService,
        id,
        name: service.service_name().map(str::to_string),
        created_at: service.created_at().and_then(to_chrono),
        monthly_cost: None,
        cost_source: CostSource::Unknown,
        attributes: ResourceAttributes {
            subnet_id: network.and_then(|n| n.subnets().first()).cloned(),
            security_groups: network
                .map(|n| n.security_groups().to_vec())
                .unwrap_or_default(),
            cloudformation_stack: tag_value(&tags, "aws:cloudformation:stack-name")
                .map(str::to_string),
            ..ResourceAttributes::default()
        },
        tags,
    })
}

/// The cluster of a service ARN: `service/CLUSTER/NAME`, or the `default` cluster in the old
/// format `service/NAME`.
fn cluster_of(arn: &str) -> String {
    let resource = Arn::parse(arn)
        .map(|a| a.resource().to_string())
        .unwrap_or_default();
    let parts: Vec<&str> = resource.split('/').collect();
    match parts[..] {
        [_, cluster, _] => cluster.to_string(),
        _ => "default".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_come_from_service_arns() {
        assert_eq!(
            cluster_of("arn:aws:ecs:us-east-1:123456789012:service/prod/checkout"),
            "prod"
        );
        assert_eq!(
            cluster_of("arn:aws:ecs:us-east-1:123456789012:service/checkout"),
            "default"
        );
    }
}
