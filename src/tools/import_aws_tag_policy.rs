//! `import_aws_tag_policy`: the tagguard policy equivalent to AWS Organizations tag policies
//! (one, or a chain from the root down to an account, resolved with AWS's inheritance
//! operators), with what cannot be expressed reported. Changes nothing: the server keeps its
//! policy; the answer is a policy to review and load.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CallContext, ToolEnv, ToolError, TypedTool};
use crate::policy::PolicyDocument;
use crate::policy::import::{Imported, effective_json, import_chain_checked, import_checked};
use crate::source::aws::TagPolicyReader;

/// The tool.
pub struct ImportAwsTagPolicy;

/// Arguments of `import_aws_tag_policy`: a policy given, or the organisation's.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// The tag policy: one document (`{"tags": {...}}`), a list of them from the root down to
    /// the account, or what `aws organizations describe-policy` or `describe-effective-policy`
    /// returns. Leave it out with `from_organization`.
    #[serde(default)]
    pub policy: Option<Value>,
    /// Read the policies from AWS Organizations instead (a server started with `--source
    /// aws`, with the management account's or a delegated administrator's credentials): those
    /// attached to the root, or with `account_id` the effective policy of that account.
    #[serde(default)]
    pub from_organization: bool,
    /// With `from_organization`: the 12-digit account whose effective tag policy (every
    /// policy from the root down, as AWS resolves them) is imported.
    #[serde(default)]
    pub account_id: Option<String>,
}

/// Result of `import_aws_tag_policy`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ImportReport {
    /// The tagguard policy (save it as a file and pass it with --policy).
    pub policy: PolicyDocument,
    /// The effective tag policy as AWS computes it (plain values, no operators).
    pub effective_policy: Value,
    /// What could not be expressed, or was left out, and why.
    pub notes: Vec<String>,
    /// Warnings the tagguard policy loads with (unknown resource types, say).
    pub load_warnings: Vec<String>,
}

#[async_trait]
impl TypedTool for ImportAwsTagPolicy {
    type Params = ImportParams;
    type Output = ImportReport;
    const NAME: &'static str = "import_aws_tag_policy";
    const TITLE: &'static str = "Import an AWS tag policy";
    const DESCRIPTION: &'static str = "Translates AWS Organizations tag policies into a tagguard \
        policy with the same meaning: tag_key's capitalisation is exact, tag_value's values (with \
        * as a wildcard) are the only ones allowed, report_required_tag_for makes the tag \
        required for those types, and a tag the policy names is checked wherever it is present. \
        A list of policies (root first) is resolved with @@assign, @@append, @@remove and \
        @@operators_allowed_for_child_policies as AWS computes an effective policy. Give the \
        policy, or set from_organization to read the policies attached to the organization's \
        root (or, with account_id, the effective policy of that account) from AWS \
        Organizations. enforced_for (which only blocks tagging operations in AWS) and anything \
        else that cannot be expressed is listed in notes. Nothing changes on the server or in \
        AWS.";
    const HINT: &'static str =
        "import_aws_tag_policy to turn an AWS Organizations tag policy into a tagguard policy";

    async fn run(
        &self,
        env: &ToolEnv,
        _ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let (imported, load_warnings) = match (params.policy, params.from_organization) {
            (Some(_), true) => {
                return Err(ToolError::InvalidInput(
                    "give either policy or from_organization, not both".to_string(),
                ));
            }
            (None, false) => {
                return Err(ToolError::InvalidInput(
                    "give the tag policy as policy, or set from_organization to read it from AWS Organizations".to_string(),
                ));
            }
            (Some(policy), false) => {
                if params.account_id.is_some() {
                    return Err(ToolError::InvalidInput(
                        "account_id goes with from_organization".to_string(),
                    ));
                }
                let text = match &policy {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                import_checked(&text, "the policy argument").map_err(ToolError::InvalidInput)?
            }
            (None, true) => {
                let reader = env.tag_policies.as_deref().ok_or_else(|| {
                    ToolError::InvalidInput(
                        "this server does not read AWS (it was not started with --source aws), so it cannot read the organization's tag policies: give the policy instead".to_string(),
                    )
                })?;
                import_from_organization(reader, params.account_id.as_deref()).await?
            }
        };
        Ok(ImportReport {
            effective_policy: effective_json(&imported.effective),
            policy: imported.policy,
            notes: imported.notes,
            load_warnings,
        })
    }
}

/// The tagguard policy of the organisation's tag policies: those attached to the root, or
/// with `account` the effective policy AWS computes for that account. Returns the import and
/// the warnings its policy loads with.
pub async fn import_from_organization(
    reader: &TagPolicyReader,
    account: Option<&str>,
) -> Result<(Imported, Vec<String>), ToolError> {
    let invalid = ToolError::InvalidInput;
    if let Some(account) = account {
        if !crate::domain::is_account_id(account) {
            return Err(invalid(format!(
                "'{account}' is not an AWS account id (12 digits)"
            )));
        }
        let Some(effective) = reader
            .effective_policy(account)
            .await
            .map_err(ToolError::Source)?
        else {
            return Err(invalid(format!(
                "no tag policy is in force on account {account}: none is attached to it, its OUs or the root"
            )));
        };
        return import_chain_checked(&[effective], Vec::new()).map_err(invalid);
    }
    let root = reader.root_policies().await.map_err(ToolError::Source)?;
    if root.attached_to_root.is_empty() {
        let mut message =
            "no tag policy is attached to the organization's root, so none applies to every account".to_string();
        for note in &root.elsewhere {
            message.push_str("; ");
            message.push_str(note);
        }
        return Err(invalid(message));
    }
    let mut notes = Vec::new();
    if !root.enabled {
        notes.push(
            "tag policies are not enabled on the organization's root: AWS reports and enforces none of them; imported as written".to_string(),
        );
    }
    if root.attached_to_root.len() > 1 {
        let names: Vec<&str> = root
            .attached_to_root
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        notes.push(format!(
            "{} tag policies are attached to the root ({}): they are combined in that order; where two set the same field, compare with an account's effective policy (account_id)",
            names.len(),
            names.join(", ")
        ));
    }
    notes.extend(root.elsewhere);
    import_chain_checked(&root.attached_to_root, notes).map_err(invalid)
}
