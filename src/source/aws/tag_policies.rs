//! Reading AWS Organizations tag policies through the SDK: the policies attached to the
//! organisation's root (`ListRoots`, `ListPolicies`, `DescribePolicy`, `ListTargetsForPolicy`)
//! and the effective policy AWS computes for one account (`DescribeEffectivePolicy`). Read-only;
//! the translation into a tagguard policy is `policy::import`'s.

use aws_config::{Region, SdkConfig};
use aws_sdk_organizations::Client;
use aws_sdk_organizations::types::{EffectivePolicyType, PolicyType, TargetType};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;

use super::{AwsOptions, classify};
use crate::domain::ScanIssueKind;
use crate::source::SourceError;

/// The region Organizations answers in when the configuration names none (it is global).
const HOME_REGION: &str = "us-east-1";

/// The tag policies of an organisation, as far as they apply to every account.
#[derive(Debug, Clone)]
pub struct RootTagPolicies {
    /// The policies attached to the root, in the order `ListPolicies` gives them: a name for
    /// messages (`Name (p-…)`) and the policy document.
    pub attached_to_root: Vec<(String, Value)>,
    /// Policies that are not part of what every account inherits (attached to OUs or
    /// accounts, or attached nowhere), each saying where it is attached.
    pub elsewhere: Vec<String>,
    /// Whether tag policies are enabled on the root: when they are not, none is in force.
    pub enabled: bool,
}

/// Reads tag policies with the credentials of a configuration (the management account, or a
/// delegated administrator for tag policies).
pub struct TagPolicyReader {
    /// Where the configuration comes from when it is loaded on first use.
    options: Option<AwsOptions>,
    client: tokio::sync::OnceCell<Client>,
}

impl TagPolicyReader {
    /// A reader on `config` (the standard chain's configuration; `AWS_ENDPOINT_URL` honoured).
    pub fn new(config: &SdkConfig) -> TagPolicyReader {
        TagPolicyReader {
            options: None,
            client: tokio::sync::OnceCell::new_with(Some(client_on(config))),
        }
    }

    /// A reader that loads the standard chain's configuration, with `options`' retries and
    /// timeouts, when it is first asked: a server pays for it only when the tool is called.
    pub fn on_first_use(options: AwsOptions) -> TagPolicyReader {
        TagPolicyReader {
            options: Some(options),
            client: tokio::sync::OnceCell::new(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let options = self.options.clone().unwrap_or_default();
                client_on(&options.sdk_config().await)
            })
            .await
    }

    /// The tag policies attached to the root, and where the others are attached.
    pub async fn root_policies(&self) -> Result<RootTagPolicies, SourceError> {
        let roots = self
            .client()
            .await
            .list_roots()
            .send()
            .await
            .map_err(|e| organization_error("organizations:ListRoots", e))?;
        let root = roots.roots().first().ok_or_else(|| {
            SourceError::new(
                ScanIssueKind::Other,
                "organizations:ListRoots answered no root",
            )
        })?;
        let root_id = root.id().unwrap_or_default().to_string();
        let enabled = root.policy_types().iter().any(|t| {
            t.r#type() == Some(&PolicyType::TagPolicy)
                && t.status().is_some_and(|s| s.as_str() == "ENABLED")
        });

        let mut attached_to_root = Vec::new();
        let mut elsewhere = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client()
                .await
                .list_policies()
                .filter(PolicyType::TagPolicy)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| organization_error("organizations:ListPolicies", e))?;
            for summary in page.policies() {
                let id = summary.id().unwrap_or_default();
                let name = format!("{} ({id})", summary.name().unwrap_or("unnamed"));
                let targets = self.targets_of(id).await?;
                if targets.iter().any(|(target, _)| target == &root_id) {
                    let document = self.document_of(id, &name).await?;
                    attached_to_root.push((name, document));
                } else if targets.is_empty() {
                    elsewhere.push(format!(
                        "tag policy {name} is attached nowhere, so it is in force nowhere"
                    ));
                } else {
                    let places: Vec<&str> = targets.iter().map(|(_, p)| p.as_str()).collect();
                    elsewhere.push(format!(
                        "tag policy {name} is attached to {} only, not to the root: it is not in what every account inherits; `--account ID` imports the policy in force on one account below it",
                        places.join(", ")
                    ));
                }
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(RootTagPolicies {
            attached_to_root,
            elsewhere,
            enabled,
        })
    }

    /// The tag policy in force on `account`, as AWS computes it from every policy from the
    /// root down: a name for messages and the document. `Ok(None)` when none applies.
    pub async fn effective_policy(
        &self,
        account: &str,
    ) -> Result<Option<(String, Value)>, SourceError> {
        let action = "organizations:DescribeEffectivePolicy";
        let out = match self
            .client()
            .await
            .describe_effective_policy()
            .policy_type(EffectivePolicyType::TagPolicy)
            .target_id(account)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.code() == Some("EffectivePolicyNotFoundException") => return Ok(None),
            Err(e) => return Err(organization_error(action, e)),
        };
        let content = out
            .effective_policy()
            .and_then(|p| p.policy_content())
            .ok_or_else(|| {
                SourceError::new(
                    ScanIssueKind::Other,
                    format!("{action} answered no policy content for account {account}"),
                )
            })?;
        let name = format!("the effective tag policy of account {account}");
        let document = parse_content(content, &name)?;
        Ok(Some((name, document)))
    }

    /// Where policy `id` is attached: each target's id and a description of it.
    async fn targets_of(&self, id: &str) -> Result<Vec<(String, String)>, SourceError> {
        let mut targets = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client()
                .await
                .list_targets_for_policy()
                .policy_id(id)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| organization_error("organizations:ListTargetsForPolicy", e))?;
            for target in page.targets() {
                let kind = match target.r#type() {
                    Some(TargetType::Root) => "the root",
                    Some(TargetType::OrganizationalUnit) => "OU",
                    Some(TargetType::Account) => "account",
                    _ => "target",
                };
                let target_id = target.target_id().unwrap_or_default().to_string();
                let place = match (kind, target.name()) {
                    ("the root", _) => kind.to_string(),
                    (_, Some(name)) => format!("{kind} {name} ({target_id})"),
                    (_, None) => format!("{kind} {target_id}"),
                };
                targets.push((target_id, place));
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(targets)
    }

    /// The document of policy `id`.
    async fn document_of(&self, id: &str, name: &str) -> Result<Value, SourceError> {
        let out = self
            .client()
            .await
            .describe_policy()
            .policy_id(id)
            .send()
            .await
            .map_err(|e| organization_error("organizations:DescribePolicy", e))?;
        let content = out.policy().and_then(|p| p.content()).ok_or_else(|| {
            SourceError::new(
                ScanIssueKind::Other,
                format!("organizations:DescribePolicy answered no content for {name}"),
            )
        })?;
        parse_content(content, name)
    }
}

/// An Organizations client on `config`, in the region Organizations answers in when the
/// configuration names none.
fn client_on(config: &SdkConfig) -> Client {
    let config = if config.region().is_some() {
        config.clone()
    } else {
        config.to_builder().region(Region::new(HOME_REGION)).build()
    };
    Client::new(&config)
}

/// A policy's content, which Organizations keeps as a JSON string.
fn parse_content(content: &str, name: &str) -> Result<Value, SourceError> {
    serde_json::from_str(content).map_err(|e| {
        SourceError::new(
            ScanIssueKind::Other,
            format!("the content of {name} is not JSON: {e}"),
        )
    })
}

/// An Organizations failure, saying plainly what the common ones mean.
fn organization_error<E>(
    action: &str,
    error: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let meaning = match error.code() {
        Some("AWSOrganizationsNotInUseException") => {
            Some("the caller's account is not a member of an organization")
        }
        Some("AccessDeniedException") => Some(
            "tag policies are read by the organization's management account or a delegated administrator for tag policies",
        ),
        Some("TargetNotFoundException") => Some("the organization has no such account"),
        _ => None,
    };
    let mut classified = classify(action, error);
    if let Some(meaning) = meaning {
        classified.message = format!("{} ({meaning})", classified.message);
    }
    classified
}
