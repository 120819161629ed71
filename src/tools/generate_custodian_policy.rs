//! `generate_custodian_policy`: the policy in effect as Cloud Custodian policies (YAML), one
//! per Custodian resource, flagging exactly the resources tagguard finds non-compliant, with
//! what could not be expressed in `notes`.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{CallContext, Content, ToolEnv, ToolError, TypedTool};
use crate::policy::export::{CustodianExport, ExportOptions, custodian};

/// The tool.
pub struct GenerateCustodianPolicy;

/// Arguments of `generate_custodian_policy`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustodianParams {
    /// Only these resource types (`ec2:instance`, `s3:bucket`…); default: every type with a
    /// Custodian resource that the policy can flag.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// Each policy is named `{name_prefix}-{custodian resource}` (default `tagguard`).
    #[serde(default)]
    pub name_prefix: Option<String>,
}

#[async_trait]
impl TypedTool for GenerateCustodianPolicy {
    type Params = CustodianParams;
    type Output = CustodianExport;
    const NAME: &'static str = "generate_custodian_policy";
    const TITLE: &'static str = "Export the policy to Cloud Custodian";
    const DESCRIPTION: &'static str = "Writes the tagging policy in effect as Cloud Custodian \
        policies (YAML): one per Custodian resource (aws.ec2, aws.s3…), whose filters (OR-ed) \
        flag exactly the resources tagguard finds non-compliant: required tags missing, blank, \
        outside their allowed values or pattern, keys in the wrong case where case is part of \
        the rule, exemptions honoured. The policies have no actions: add notify or \
        mark-for-op. `notes` lists what could not be expressed (a regex construct Python \
        lacks, a type without a Custodian resource). Changes nothing.";
    const HINT: &'static str =
        "generate_custodian_policy to enforce the policy with Cloud Custodian";
    const OPEN_WORLD: bool = false;

    async fn run(
        &self,
        env: &ToolEnv,
        _ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let prefix = params.name_prefix.as_deref().unwrap_or("tagguard");
        let options = ExportOptions::parse(&params.resource_types, prefix)
            .map_err(ToolError::InvalidInput)?;
        Ok(custodian(env.policy(), &options))
    }

    /// The YAML as its own block, ready to save, after a summary of the rest.
    fn content(&self, output: &Self::Output, structured: &Value) -> Vec<Content> {
        let mut summary = structured.clone();
        if let Value::Object(map) = &mut summary {
            map.remove("yaml");
        }
        vec![
            Content::text(summary.to_string()),
            Content::Text {
                text: output.yaml.clone(),
                mime_type: Some("application/yaml"),
            },
        ]
    }
}
