//! `suggest_tags`: candidate values for the missing and invalid tags of given resources,
//! each with a confidence measured on the estate, a sentence of reasoning and the evidence
//! (the resource's stack, Auto Scaling group, network, name and similar resources).

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CallContext, ToolEnv, ToolError, TypedTool};
use crate::domain::Origin;
use crate::suggest::service::{SuggestError, SuggestQuestion, SuggestReport, suggest};

/// The tool.
pub struct SuggestTags;

/// Arguments of `suggest_tags`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestParams {
    /// ARNs of the resources (1 to 100), e.g.
    /// `["arn:aws:rds:us-east-1:123456789012:db:payments-prod-db"]`.
    pub resource_arns: Vec<String>,
    /// Tags to suggest values for (policy tag names). Default: each resource's required
    /// tags that are missing or have an invalid value.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Scan the evidence anew rather than use a scan cached in the last minutes.
    #[serde(default)]
    pub force_refresh: bool,
}

impl From<SuggestError> for ToolError {
    fn from(error: SuggestError) -> Self {
        match error {
            SuggestError::InvalidInput(message) => ToolError::InvalidInput(message),
            SuggestError::Scan(error) => error.into(),
        }
    }
}

#[async_trait]
impl TypedTool for SuggestTags {
    type Params = SuggestParams;
    type Output = SuggestReport;
    const NAME: &'static str = "suggest_tags";
    const TITLE: &'static str = "Suggest tag values";
    const DESCRIPTION: &'static str = "Suggests values for the missing and invalid tags of \
        specific resources (by ARN, up to 100): for each tag, up to three candidates, each \
        with a confidence from 0 to 1, one sentence of reasoning a person can check, and the \
        evidence (its CloudFormation stack, Auto Scaling group, VPC and subnet and what their \
        other resources carry, words of its name, similar resources, resources sharing another \
        tag's value, corrections of a value's case or spelling). Confidence is measured on \
        the estate: the share of resources with the same evidence that carry the value; 0.8 \
        or more is right at least nine times in ten in tagguard's evaluations. Only values the \
        policy accepts are suggested; with no evidence there is no suggestion, and the entry \
        says why. Reads the resources, a scan of their accounts and regions (cached) and their \
        VPCs and subnets; changes nothing.";
    const HINT: &'static str = "suggest_tags for what missing or invalid tags should be";

    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let question = SuggestQuestion {
            arns: params.resource_arns,
            tags: params.tags,
            server_scope: env.default_scope.clone(),
            asked_by: Self::NAME.to_string(),
            evidence_origin: Origin::Tool(Self::NAME.to_string()),
            refresh: params.force_refresh,
        };
        Ok(suggest(&env.scans, &ctx.run_context(), question).await?)
    }
}
