//! Writes tags through the Resource Groups Tagging API (`TagResources`, `UntagResources`,
//! 20 ARNs a call), paced by the `tagging_write` limiter and retried like every call. Used only
//! by an apply or an undo of a remediation plan, which a person asked for.

use std::collections::BTreeMap;

use aws_config::SdkConfig;

use super::{CountCalls, classify, client};
use crate::config::RetryConfig;
use crate::source::{FetchContext, SourceError, backoff::retrying};

/// The limiter of tag writes.
pub(crate) const WRITE_API: &str = "tagging_write";

/// What one write call did: the ARNs it failed on, with the reason.
type Failures = BTreeMap<String, String>;

/// Tags (`tags` given) or untags (`keys` given) `arns`. A call the API refuses as a whole
/// (one ARN of a service it cannot tag, say) is made again per ARN, so that one resource's
/// failure does not cost the others.
pub(crate) async fn write(
    config: &SdkConfig,
    account: &str,
    region: &str,
    arns: &[String],
    change: &Change<'_>,
    retries: &RetryConfig,
    cx: &FetchContext<'_>,
) -> Result<Failures, SourceError> {
    let tagging = client!(
        aws_sdk_resourcegroupstagging,
        config,
        CountCalls::new(cx, account)
    );
    let call = |arns: Vec<String>| {
        let tagging = tagging.clone();
        async move {
            retrying(retries, cx.calls(), None, || {
                let (tagging, arns) = (tagging.clone(), arns.clone());
                async move {
                    cx.pace(account, region, WRITE_API).await;
                    let failed = match change {
                        Change::Tag(tags) => tagging
                            .tag_resources()
                            .set_resource_arn_list(Some(arns))
                            .set_tags(Some(
                                tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                            ))
                            .send()
                            .await
                            .map_err(|e| classify("tag:TagResources", e))?
                            .failed_resources_map
                            .unwrap_or_default(),
                        Change::Untag(keys) => tagging
                            .untag_resources()
                            .set_resource_arn_list(Some(arns))
                            .set_tag_keys(Some(keys.to_vec()))
                            .send()
                            .await
                            .map_err(|e| classify("tag:UntagResources", e))?
                            .failed_resources_map
                            .unwrap_or_default(),
                    };
                    Ok(failed
                        .into_iter()
                        .map(|(arn, info)| {
                            let reason = format!(
                                "{}: {}",
                                info.error_code().map(|c| c.as_str()).unwrap_or("failed"),
                                info.error_message().unwrap_or("no message")
                            );
                            (arn, reason)
                        })
                        .collect::<Failures>())
                }
            })
            .await
        }
    };
    match call(arns.to_vec()).await {
        Ok(failures) => Ok(failures),
        Err(error) if arns.len() > 1 && !error.retryable => {
            let mut failures = Failures::new();
            for arn in arns {
                match call(vec![arn.clone()]).await {
                    Ok(more) => failures.extend(more),
                    Err(error) => {
                        failures.insert(arn.clone(), error.message);
                    }
                }
            }
            Ok(failures)
        }
        Err(error) => Err(error),
    }
}

/// A write: tags to set, or keys to remove.
pub(crate) enum Change<'a> {
    /// Set these tags.
    Tag(&'a BTreeMap<String, String>),
    /// Remove these keys.
    Untag(&'a [String]),
}
