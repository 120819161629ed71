//! `validate_resource_tags`: check given ARNs against the policy, each one reported on its own
//! (a malformed or unknown ARN is an item of the answer, not a failure of the call).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::views::ScanInfo;
use super::{CallContext, ToolEnv, ToolError, TypedTool};
use crate::domain::{Arn, Origin, ScanIssue, ScanResult, Severity, Violation};
use crate::scans::ScanQuestion;

/// The tool.
pub struct ValidateResourceTags;

/// Most ARNs per call: each becomes an item of the answer, which must fit a model's context.
pub const MAX_ARNS: usize = 100;

/// Arguments of `validate_resource_tags`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateParams {
    /// ARNs of the resources to check (1 to 100), e.g.
    /// `["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"]`.
    pub resource_arns: Vec<String>,
}

/// The verdict on one ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArnStatus {
    /// Found, and no error-severity violation.
    Compliant,
    /// Found, with at least one error.
    NonCompliant,
    /// Found, but no required tag of the policy applies to its type: nothing to comply with.
    NotApplicable,
    /// Not found where the server looks (wrong account or region, deleted, or a typo).
    NotFound,
    /// Could not be checked: the part of the estate holding it could not be read.
    Unknown,
    /// Not an ARN.
    InvalidArn,
}

/// The answer for one ARN.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ArnResult {
    /// The ARN as given.
    pub resource_arn: String,
    /// The verdict.
    pub status: ArnStatus,
    /// Error-severity violations.
    pub errors: u64,
    /// Warning-severity violations.
    pub warnings: u64,
    /// Every violation, with the current value and what the policy allows.
    pub violations: Vec<Violation>,
    /// For not_found, unknown and invalid_arn: why, and what to do.
    pub message: Option<String>,
}

/// Result of `validate_resource_tags`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ValidationReport {
    /// One entry per ARN given, in the order given (duplicates answered once).
    pub results: Vec<ArnResult>,
    /// ARNs found and compliant.
    pub compliant: u64,
    /// ARNs found and not compliant.
    pub non_compliant: u64,
    /// ARNs found whose type no required tag applies to.
    pub not_applicable: u64,
    /// ARNs not found.
    pub not_found: u64,
    /// ARNs that could not be checked (see `issues`).
    pub unknown: u64,
    /// Strings that are not ARNs.
    pub invalid: u64,
    /// True when part of the estate could not be read (see `issues`).
    pub partial: bool,
    /// What could not be read, and why.
    pub issues: Vec<ScanIssue>,
    /// Which scan answered; null when no ARN was valid, so nothing was scanned.
    pub scan: Option<ScanInfo>,
}

#[async_trait]
impl TypedTool for ValidateResourceTags {
    type Params = ValidateParams;
    type Output = ValidationReport;
    const NAME: &'static str = "validate_resource_tags";
    const TITLE: &'static str = "Validate resource tags";
    const DESCRIPTION: &'static str = "Checks specific resources, by ARN, against the tagging \
        policy: for each ARN, compliant or not, and every violation with the current value and \
        the allowed values or pattern. A malformed or unknown ARN is reported in its own entry; \
        the others are still checked. Up to 100 ARNs per call. Only the resources named are \
        read (one lookup per 100 ARNs), and the lookup is not recorded in the history.";
    const HINT: &'static str = "validate_resource_tags for specific ARNs";

    async fn run(
        &self,
        env: &ToolEnv,
        ctx: &CallContext,
        params: Self::Params,
    ) -> Result<Self::Output, ToolError> {
        let mut given: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for arn in params.resource_arns {
            let arn = arn.trim().to_string();
            if seen.insert(arn.clone()) {
                given.push(arn);
            }
        }
        if given.is_empty() {
            return Err(ToolError::InvalidInput(
                "'resource_arns' is empty; give at least one ARN".to_string(),
            ));
        }
        if given.len() > MAX_ARNS {
            return Err(ToolError::InvalidInput(format!(
                "'resource_arns' has {} ARNs; the most per call is {MAX_ARNS}: split the list",
                given.len()
            )));
        }

        let mut parsed: HashMap<&str, Result<Arn, String>> = HashMap::new();
        for text in &given {
            parsed.insert(text, Arn::parse(text).map_err(|e| e.to_string()));
        }
        let valid: Vec<&Arn> = parsed.values().filter_map(|p| p.as_ref().ok()).collect();
        // A lookup, not an audit: the scans read only these resources, and are not recorded.
        let lookups = crate::scans::lookup_scopes(&valid, &env.default_scope)
            .into_iter()
            .map(|scope| {
                super::scan(
                    env,
                    ctx,
                    ScanQuestion::new(scope, Origin::Lookup(Self::NAME.to_string())),
                )
            });
        // Parts of one question (same source, policy and filter): one result, whose calls
        // and issues cover both.
        let mut merged: Option<ScanResult> = None;
        for answer in futures::future::try_join_all(lookups).await? {
            let part = ScanResult::clone(&answer.result);
            match &mut merged {
                None => merged = Some(part),
                Some(all) => all
                    .merge(part)
                    .map_err(|e| ToolError::Failed(e.to_string()))?,
            }
        }

        let mut by_arn: HashMap<&str, Vec<Violation>> = HashMap::new();
        let mut found: HashSet<&str> = HashSet::new();
        if let Some(result) = &merged {
            found.extend(result.tally.matched_arns.iter().map(String::as_str));
            for v in result.violations() {
                by_arn
                    .entry(v.resource.arn.as_str())
                    .or_default()
                    .push(v.clone());
            }
        }
        let partial = merged.as_ref().is_some_and(|r| r.partial);

        let mut report = ValidationReport {
            results: Vec::with_capacity(given.len()),
            compliant: 0,
            non_compliant: 0,
            not_applicable: 0,
            not_found: 0,
            unknown: 0,
            invalid: 0,
            partial,
            issues: merged
                .as_ref()
                .map(|r| r.tally.issues.clone())
                .unwrap_or_default(),
            scan: merged.as_ref().map(|r| ScanInfo::from(&r.meta)),
        };
        for text in &given {
            let mut item = ArnResult {
                resource_arn: text.clone(),
                status: ArnStatus::NotFound,
                errors: 0,
                warnings: 0,
                violations: Vec::new(),
                message: None,
            };
            match &parsed[text.as_str()] {
                Err(error) => {
                    item.status = ArnStatus::InvalidArn;
                    item.message = Some(format!(
                        "{error}; an ARN looks like arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"
                    ));
                    report.invalid += 1;
                }
                Ok(arn) if found.contains(text.as_str()) => {
                    item.violations = by_arn.remove(text.as_str()).unwrap_or_default();
                    item.errors = item
                        .violations
                        .iter()
                        .filter(|v| v.finding.severity == Severity::Error)
                        .count() as u64;
                    item.warnings = item.violations.len() as u64 - item.errors;
                    if item.errors == 0 && !env.policy().applies_to_type(&arn.resource_type()) {
                        item.status = ArnStatus::NotApplicable;
                        item.message = Some(format!(
                            "no required tag of the policy applies to {}",
                            arn.resource_type()
                        ));
                        report.not_applicable += 1;
                    } else if item.errors == 0 {
                        item.status = ArnStatus::Compliant;
                        report.compliant += 1;
                    } else {
                        item.status = ArnStatus::NonCompliant;
                        report.non_compliant += 1;
                    }
                }
                Ok(_) if partial => {
                    item.status = ArnStatus::Unknown;
                    item.message = Some(
                        "not found, but part of the estate could not be read (see issues): it may be there"
                            .to_string(),
                    );
                    report.unknown += 1;
                }
                Ok(_) => {
                    item.message = Some(format!(
                        "no such resource in the accounts and regions '{}' covers: check the account, region and id",
                        env.source().name()
                    ));
                    report.not_found += 1;
                }
            }
            report.results.push(item);
        }
        Ok(report)
    }
}
