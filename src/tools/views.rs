//! The shapes tools return: plain structs whose JSON Schema is the tools' `outputSchema`.
//!
//! Domain types serialise compactly for files; these views are what a model reads, with every
//! field present (null when unknown) and described in the schema.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::domain::{Expected, ScanIssue, ScanResult, TagCounts, TypeCounts, Violation};

/// One violation of the policy on one resource.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ViolationView {
    /// ARN of the resource.
    pub resource_arn: String,
    /// The resource's id within its type (instance id, bucket name, ...).
    pub resource_id: String,
    /// `service:type`, e.g. `ec2:instance`.
    pub resource_type: String,
    /// Region (`global` for resources of no region).
    pub region: String,
    /// Account id.
    pub account_id: String,
    /// What is wrong: missing_required_tag, invalid_value, invalid_format, empty_value,
    /// key_case_mismatch, value_case_mismatch, key_too_long, value_too_long, invalid_characters.
    pub violation_type: String,
    /// The tag concerned, as the policy spells it.
    pub tag_name: String,
    /// `error` (makes the resource non-compliant) or `warning`.
    pub severity: String,
    /// The value found on the resource (the key found, for a key case mismatch); null if absent.
    pub current_value: Option<String>,
    /// The values the policy allows for this tag, when it lists them.
    pub allowed_values: Option<Vec<String>>,
    /// The regular expression the value must match, when the policy sets one.
    pub expected_pattern: Option<String>,
    /// The policy's spelling, for case mismatches.
    pub expected_value: Option<String>,
    /// The length limit exceeded, for length violations.
    pub max_length: Option<u64>,
    /// Monthly cost of the resource in USD; null when unknown (never 0 for unknown).
    pub monthly_cost: Option<f64>,
    /// One sentence saying what is wrong.
    pub message: String,
}

impl From<&Violation> for ViolationView {
    fn from(v: &Violation) -> Self {
        let r = &v.resource;
        let f = &v.finding;
        let (mut allowed_values, mut expected_pattern, mut expected_value, mut max_length) =
            (None, None, None, None);
        match &f.expected {
            Expected::Nothing => {}
            Expected::AllowedValues(values) => allowed_values = Some(values.to_vec()),
            Expected::Pattern(pattern) => expected_pattern = Some(pattern.to_string()),
            Expected::Canonical(value) => expected_value = Some(value.to_string()),
            Expected::MaxLength(max) => max_length = Some(*max as u64),
        }
        ViolationView {
            resource_arn: r.arn.clone(),
            resource_id: r.id.clone(),
            resource_type: r.resource_type.to_string(),
            region: r.region.to_string(),
            account_id: r.account_id.to_string(),
            violation_type: f.violation_type.to_string(),
            tag_name: f.tag_name.to_string(),
            severity: f.severity.to_string(),
            current_value: f.current_value.as_deref().map(str::to_string),
            allowed_values,
            expected_pattern,
            expected_value,
            max_length,
            monthly_cost: r.monthly_cost,
            message: v.message(),
        }
    }
}

/// A part of the estate that could not be read, making the result partial.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct IssueView {
    /// Account id ("" when the issue concerns no single account).
    pub account_id: String,
    /// Region ("" when the issue concerns no single region).
    pub region: String,
    /// Service (ec2, s3, tagging, ...), or "" for planning.
    pub service: String,
    /// Class of failure: access_denied, throttled, region_disabled, endpoint_unavailable,
    /// invalid_input, timeout, other.
    pub kind: String,
    /// For access_denied: the IAM action to grant.
    pub missing_permission: Option<String>,
    /// What went wrong.
    pub message: String,
    /// Resources read from this part before it failed.
    pub resources_before_failure: u64,
}

impl From<&ScanIssue> for IssueView {
    fn from(i: &ScanIssue) -> Self {
        IssueView {
            account_id: i.account_id.clone(),
            region: i.region.clone(),
            service: i.service.clone(),
            kind: i.kind.to_string(),
            missing_permission: i.missing_permission.clone(),
            message: i.message.clone(),
            resources_before_failure: i.resources_before_failure,
        }
    }
}

/// Counts for one resource type.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TypeCountsView {
    /// Resources of the type in scope.
    pub total: u64,
    /// Of which compliant (no error).
    pub compliant: u64,
    /// Of which non-compliant.
    pub non_compliant: u64,
    /// Error-severity violations.
    pub errors: u64,
    /// Warning-severity violations.
    pub warnings: u64,
}

impl From<&TypeCounts> for TypeCountsView {
    fn from(c: &TypeCounts) -> Self {
        TypeCountsView {
            total: c.total,
            compliant: c.compliant,
            non_compliant: c.non_compliant,
            errors: c.errors,
            warnings: c.warnings,
        }
    }
}

/// Counts for one tag of the policy.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TagCountsView {
    /// Resources missing the tag where it is required.
    pub missing: u64,
    /// Resources whose value breaks a rule (error).
    pub invalid: u64,
    /// Warnings (case differences, ...).
    pub warnings: u64,
}

impl From<&TagCounts> for TagCountsView {
    fn from(c: &TagCounts) -> Self {
        TagCountsView {
            missing: c.missing,
            invalid: c.invalid,
            warnings: c.warnings,
        }
    }
}

/// Which scan produced a result, and how it went.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScanInfo {
    /// The scan's id.
    pub scan_id: String,
    /// Where resources came from (demo, file:..., aws).
    pub source: String,
    /// Version of the policy validated against.
    pub policy_version: String,
    /// When the scan started (UTC).
    pub scanned_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Shards (account × region × service) planned.
    pub shards_total: u64,
    /// Shards read to the end.
    pub shards_succeeded: u64,
    /// AWS API calls made, per `service:Operation` (empty for offline sources).
    pub api_calls: BTreeMap<String, u64>,
}

impl From<&ScanResult> for ScanInfo {
    fn from(r: &ScanResult) -> Self {
        ScanInfo {
            scan_id: r.scan_id.to_string(),
            source: r.source.clone(),
            policy_version: r.policy_version.clone(),
            scanned_at: r.scan_timestamp,
            duration_ms: r.duration_ms,
            shards_total: r.shards_total,
            shards_succeeded: r.shards_succeeded,
            api_calls: r.api_calls.clone(),
        }
    }
}

/// Issues of a result as views.
pub fn issues(result: &ScanResult) -> Vec<IssueView> {
    result.issues.iter().map(IssueView::from).collect()
}

/// How complete, where from and how fresh a scan-based answer is: the tail every scanning
/// tool's answer ends with (flattened into it).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScanContext {
    /// True when part of the estate could not be read (see `issues`): the numbers cover only
    /// what was read.
    pub partial: bool,
    /// What could not be read, and why.
    pub issues: Vec<IssueView>,
    /// Limits of the source and hints about the arguments.
    pub notes: Vec<String>,
    /// Which scan answered.
    pub scan: ScanInfo,
    /// Whether the scan came from the cache, and how old it is.
    pub cache: super::CacheInfo,
}

impl ScanContext {
    /// The context of `result`; `notes` (about the arguments) come before the source's own.
    pub fn new(result: &ScanResult, cache: super::CacheInfo, mut notes: Vec<String>) -> Self {
        notes.extend(result.notes.iter().cloned());
        ScanContext {
            partial: result.partial,
            issues: issues(result),
            notes,
            scan: ScanInfo::from(result),
            cache,
        }
    }
}
