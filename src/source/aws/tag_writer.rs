//! Writes tags through the Resource Groups Tagging API (`TagResources`, `UntagResources`,
//! 20 ARNs a call), and through the resource's own service where that API answers that it
//! does not support the type; paced by the `tagging_write` limiter and retried like every
//! call. Used only by an apply or an undo of a remediation plan, which a person asked for.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_resourcegroupstagging::types::FailureInfo;

use super::{CountCalls, classify, client};
use crate::config::RetryConfig;
use crate::domain::{Arn, ResourceType, ScanIssueKind};
use crate::source::{FetchContext, SourceError, backoff::retrying};

/// The limiter of tag writes.
pub(crate) const WRITE_API: &str = "tagging_write";

/// What one write call did: the ARNs it failed on, with the reason.
type Failures = BTreeMap<String, String>;

/// Where and how writes go.
pub(crate) struct Writer<'a> {
    /// The account's configuration in the region of the resources.
    pub config: &'a SdkConfig,
    pub account: &'a str,
    pub region: &'a str,
    pub retries: &'a RetryConfig,
    /// Path-style S3 addressing (a custom endpoint, such as an emulator's).
    pub s3_path_style: bool,
}

/// Tags (`tags` given) or untags (`keys` given) `arns`. A call the API refuses as a whole
/// (one ARN of a service it cannot tag, say) is made again per ARN, so that one resource's
/// failure does not cost the others; an ARN the API reports as of a type it does not support
/// is written through its own service, when it is of a type tagguard knows.
pub(crate) async fn write(
    writer: &Writer<'_>,
    arns: &[String],
    change: &Change<'_>,
    cx: &FetchContext<'_>,
) -> Result<Failures, SourceError> {
    let mut failures = Failures::new();
    for (arn, failure) in through_tagging_api(writer, arns, change, cx).await? {
        match failure {
            Failure::Unsupported(reason) if own_service_writes(&arn) => {
                if let Err(error) = through_own_service(writer, &arn, change, cx).await {
                    failures.insert(
                        arn,
                        format!("{reason}; through its own service: {}", error.message),
                    );
                }
            }
            Failure::Unsupported(reason) | Failure::Other(reason) => {
                failures.insert(arn, reason);
            }
        }
    }
    Ok(failures)
}

/// Why the tagging API did not write one ARN.
enum Failure {
    /// The API does not support the resource's type.
    Unsupported(String),
    /// Anything else (access denied, a resource gone, …).
    Other(String),
}

impl Failure {
    fn of(info: &FailureInfo) -> Failure {
        let code = info.error_code().map(|c| c.as_str()).unwrap_or("failed");
        let message = info.error_message().unwrap_or("no message");
        let reason = format!("{code}: {message}");
        if is_unsupported(code, message) {
            Failure::Unsupported(reason)
        } else {
            Failure::Other(reason)
        }
    }
}

/// Whether a failure of the tagging API says the resource's type is not one it can tag: AWS
/// answers `InvalidParameterException` "… is not supported …"; emulators "not yet supported".
fn is_unsupported(code: &str, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    let says_so = message.contains("not supported")
        || message.contains("unsupported")
        || message.contains("not yet supported");
    says_so && (code == "InvalidParameterException" || code == "InternalServiceException")
}

/// Whether tagguard can write `arn`'s tags through its own service.
fn own_service_writes(arn: &str) -> bool {
    Arn::parse(arn).is_ok_and(|arn| !matches!(arn.resource_type(), ResourceType::Other(_)))
}

/// The tagging API's failures for `arns`, per ARN.
async fn through_tagging_api(
    writer: &Writer<'_>,
    arns: &[String],
    change: &Change<'_>,
    cx: &FetchContext<'_>,
) -> Result<BTreeMap<String, Failure>, SourceError> {
    let (account, region, retries) = (writer.account, writer.region, writer.retries);
    let config = writer.config;
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
                            let failure = Failure::of(&info);
                            (arn, failure)
                        })
                        .collect::<BTreeMap<_, _>>())
                }
            })
            .await
        }
    };
    match call(arns.to_vec()).await {
        Ok(failures) => Ok(failures),
        Err(error) if arns.len() > 1 && !error.retryable => {
            let mut failures = BTreeMap::new();
            for arn in arns {
                match call(vec![arn.clone()]).await {
                    Ok(more) => failures.extend(more),
                    Err(error) => {
                        failures.insert(arn.clone(), Failure::Other(error.message));
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

/// A failure of tagguard's own making (not AWS's answer).
fn invalid(message: impl Into<String>) -> SourceError {
    SourceError::new(ScanIssueKind::InvalidInput, message)
}

/// Writes one resource's tags through its own service's API (`ec2:CreateTags`,
/// `rds:AddTagsToResource`, `s3:PutBucketTagging`, `lambda:TagResource`, `ecs:TagResource` and
/// their removals), paced and retried as the tagging API's calls are.
async fn through_own_service(
    writer: &Writer<'_>,
    arn: &str,
    change: &Change<'_>,
    cx: &FetchContext<'_>,
) -> Result<(), SourceError> {
    let parsed = Arn::parse(arn).map_err(|e| invalid(format!("{arn}: {e}")))?;
    let (account, region) = (writer.account, writer.region);
    let calls = CountCalls::new(cx, account);
    retrying(writer.retries, cx.calls(), None, || {
        let calls = calls.clone();
        let parsed = &parsed;
        async move {
            cx.pace(account, region, WRITE_API).await;
            let config = writer.config;
            match (parsed.resource_type(), change) {
                (ResourceType::Ec2Instance, Change::Tag(tags)) => {
                    client!(aws_sdk_ec2, config, calls)
                        .create_tags()
                        .resources(parsed.resource_id())
                        .set_tags(Some(
                            tags.iter()
                                .map(|(k, v)| {
                                    aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()
                                })
                                .collect(),
                        ))
                        .send()
                        .await
                        .map_err(|e| classify("ec2:CreateTags", e))?;
                }
                (ResourceType::Ec2Instance, Change::Untag(keys)) => {
                    // A tag given without a value is removed whatever its value.
                    client!(aws_sdk_ec2, config, calls)
                        .delete_tags()
                        .resources(parsed.resource_id())
                        .set_tags(Some(
                            keys.iter()
                                .map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build())
                                .collect(),
                        ))
                        .send()
                        .await
                        .map_err(|e| classify("ec2:DeleteTags", e))?;
                }
                (ResourceType::RdsDb, Change::Tag(tags)) => {
                    client!(aws_sdk_rds, config, calls)
                        .add_tags_to_resource()
                        .resource_name(arn)
                        .set_tags(Some(
                            tags.iter()
                                .map(|(k, v)| {
                                    aws_sdk_rds::types::Tag::builder().key(k).value(v).build()
                                })
                                .collect(),
                        ))
                        .send()
                        .await
                        .map_err(|e| classify("rds:AddTagsToResource", e))?;
                }
                (ResourceType::RdsDb, Change::Untag(keys)) => {
                    client!(aws_sdk_rds, config, calls)
                        .remove_tags_from_resource()
                        .resource_name(arn)
                        .set_tag_keys(Some(keys.to_vec()))
                        .send()
                        .await
                        .map_err(|e| classify("rds:RemoveTagsFromResource", e))?;
                }
                (ResourceType::LambdaFunction, Change::Tag(tags)) => {
                    client!(aws_sdk_lambda, config, calls)
                        .tag_resource()
                        .resource(arn)
                        .set_tags(Some(
                            tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        ))
                        .send()
                        .await
                        .map_err(|e| classify("lambda:TagResource", e))?;
                }
                (ResourceType::LambdaFunction, Change::Untag(keys)) => {
                    client!(aws_sdk_lambda, config, calls)
                        .untag_resource()
                        .resource(arn)
                        .set_tag_keys(Some(keys.to_vec()))
                        .send()
                        .await
                        .map_err(|e| classify("lambda:UntagResource", e))?;
                }
                (ResourceType::EcsService, Change::Tag(tags)) => {
                    client!(aws_sdk_ecs, config, calls)
                        .tag_resource()
                        .resource_arn(arn)
                        .set_tags(Some(
                            tags.iter()
                                .map(|(k, v)| {
                                    aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()
                                })
                                .collect(),
                        ))
                        .send()
                        .await
                        .map_err(|e| classify("ecs:TagResource", e))?;
                }
                (ResourceType::EcsService, Change::Untag(keys)) => {
                    client!(aws_sdk_ecs, config, calls)
                        .untag_resource()
                        .resource_arn(arn)
                        .set_tag_keys(Some(keys.to_vec()))
                        .send()
                        .await
                        .map_err(|e| classify("ecs:UntagResource", e))?;
                }
                (ResourceType::S3Bucket, change) => {
                    let s3 = aws_sdk_s3::Client::from_conf(
                        aws_sdk_s3::config::Builder::from(config)
                            .force_path_style(writer.s3_path_style)
                            .interceptor(calls.clone())
                            .build(),
                    );
                    write_bucket_tags(&s3, parsed.resource_id(), change).await?;
                }
                (ResourceType::Other(kind), _) => {
                    return Err(invalid(format!(
                        "tagguard cannot write tags of {kind} through its own service"
                    )));
                }
            }
            Ok(())
        }
    })
    .await
}

/// S3 replaces a bucket's whole tag set at once: read it, change it, write it back (or delete
/// it when nothing is left). A change of another key by someone else between the read and the
/// write is lost: S3 has no conditional tag write.
async fn write_bucket_tags(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    change: &Change<'_>,
) -> Result<(), SourceError> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let mut tags: BTreeMap<String, String> =
        match s3.get_bucket_tagging().bucket(bucket).send().await {
            Ok(out) => out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            Err(error)
                if error.as_service_error().and_then(|e| e.code()) == Some("NoSuchTagSet") =>
            {
                BTreeMap::new()
            }
            Err(error) => return Err(classify("s3:GetBucketTagging", error)),
        };
    match change {
        Change::Tag(set) => tags.extend(set.iter().map(|(k, v)| (k.clone(), v.clone()))),
        Change::Untag(keys) => tags.retain(|k, _| !keys.contains(k)),
    }
    if tags.is_empty() {
        s3.delete_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| classify("s3:DeleteBucketTagging", e))?;
        return Ok(());
    }
    let tag_set = tags
        .iter()
        .map(|(k, v)| {
            aws_sdk_s3::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| classify("s3:PutBucketTagging", e))?;
    Ok(())
}
