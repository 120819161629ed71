//! VPCs and subnets with their names and tags (`DescribeVpcs`, `DescribeSubnets`): evidence
//! for suggestions, read once per account and region a suggestion needs.

use aws_config::SdkConfig;

use super::{CountCalls, classify, client, tag};
use crate::config::RetryConfig;
use crate::domain::{GroupKind, NetworkObject, Tag};
use crate::source::{FetchContext, SourceError, backoff::retrying};

/// Most pages read of either call: a bound on a runaway token loop (1,000 objects a page).
const MAX_PAGES: usize = 50;

/// Every VPC and subnet of `account` in `region` (the region `config` is set to).
pub(crate) async fn network_objects(
    config: &SdkConfig,
    account: &str,
    region: &str,
    retries: &RetryConfig,
    cx: &FetchContext<'_>,
) -> Result<Vec<NetworkObject>, SourceError> {
    let ec2 = client!(aws_sdk_ec2, config, CountCalls::new(cx, account));
    let object = |kind, id: Option<&str>, tags: &[aws_sdk_ec2::types::Tag]| {
        let tags: Vec<Tag> = tags
            .iter()
            .filter_map(|t| tag(t.key(), t.value()))
            .collect();
        id.map(|id| NetworkObject {
            kind,
            account_id: account.into(),
            region: region.into(),
            id: id.to_string(),
            name: tags
                .iter()
                .find(|t| t.key == "Name")
                .map(|t| t.value.clone()),
            tags,
        })
    };
    let mut objects = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = retrying(retries, cx.calls(), None, || {
            let call = ec2
                .describe_vpcs()
                .max_results(1000)
                .set_next_token(token.clone());
            async move {
                cx.pace(account, region, "ec2").await;
                call.send()
                    .await
                    .map_err(|e| classify("ec2:DescribeVpcs", e))
            }
        })
        .await?;
        objects.extend(
            out.vpcs()
                .iter()
                .filter_map(|v| object(GroupKind::Vpc, v.vpc_id(), v.tags())),
        );
        token = out.next_token().filter(|t| !t.is_empty()).map(String::from);
        if token.is_none() {
            break;
        }
    }
    token = None;
    for _ in 0..MAX_PAGES {
        let out = retrying(retries, cx.calls(), None, || {
            let call = ec2
                .describe_subnets()
                .max_results(1000)
                .set_next_token(token.clone());
            async move {
                cx.pace(account, region, "ec2").await;
                call.send()
                    .await
                    .map_err(|e| classify("ec2:DescribeSubnets", e))
            }
        })
        .await?;
        objects.extend(
            out.subnets()
                .iter()
                .filter_map(|s| object(GroupKind::Subnet, s.subnet_id(), s.tags())),
        );
        token = out.next_token().filter(|t| !t.is_empty()).map(String::from);
        if token.is_none() {
            break;
        }
    }
    Ok(objects)
}
