//! The result of a compliance scan: score, counts, violations with full detail, and shard issues.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::{Expected, Finding, ResourceType, ScanId, ScanScope, SeverityFilter};

/// The identity of a resource, shared by all of its violations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceRef {
    /// Full ARN.
    pub arn: String,
    /// Id inside its type.
    pub id: String,
    /// `service:type`.
    pub resource_type: ResourceType,
    /// Region.
    pub region: Arc<str>,
    /// Account id.
    pub account_id: Arc<str>,
    /// Human name, when known.
    pub name: Option<String>,
    /// Monthly cost in USD when known (`None` is unknown, never zero).
    pub monthly_cost: Option<f64>,
    /// Creation time, when known.
    pub created_at: Option<DateTime<Utc>>,
    /// How many tags the resource carries (0: untagged), to tell untagged resources from
    /// partly tagged ones without keeping every tag.
    pub tag_count: u32,
}

impl ResourceRef {
    /// Whole days since creation at `now`, when the creation time is known.
    pub fn age_days(&self, now: DateTime<Utc>) -> Option<i64> {
        self.created_at.map(|t| (now - t).num_days().max(0))
    }
}

/// One violation on one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The resource, shared between its violations.
    pub resource: Arc<ResourceRef>,
    /// What is wrong with it.
    pub finding: Finding,
}

impl Violation {
    /// A one-line explanation a person (or a model) can act on.
    pub fn message(&self) -> String {
        use super::ViolationType as V;
        let f = &self.finding;
        let tag = &f.tag_name;
        let current = f.current_value.as_deref().unwrap_or("");
        match (f.violation_type, &f.expected) {
            (V::MissingRequiredTag, _) => format!("required tag '{tag}' is missing"),
            (V::EmptyValue, _) => format!("required tag '{tag}' has an empty value"),
            (V::InvalidValue, Expected::AllowedValues(allowed)) => format!(
                "tag '{tag}' has value '{current}', which is not one of: {}",
                allowed.join(", ")
            ),
            (V::InvalidFormat, Expected::Pattern(pattern)) => {
                format!("tag '{tag}' has value '{current}', which does not match '{pattern}'")
            }
            (V::KeyCaseMismatch, _) => {
                format!("tag key '{current}' differs only in case from the policy's '{tag}'")
            }
            (V::ValueCaseMismatch, Expected::Canonical(canonical)) => format!(
                "tag '{tag}' has value '{current}', which differs only in case from '{canonical}'"
            ),
            (V::KeyTooLong, Expected::MaxLength(max)) => {
                format!("tag key '{tag}' is longer than {max} characters")
            }
            (V::ValueTooLong, Expected::MaxLength(max)) => {
                format!("tag '{tag}' has a value longer than {max} characters")
            }
            (V::InvalidCharacters, _) => format!(
                "tag '{tag}': '{current}' has characters outside letters, digits, spaces and _ . : / = + - @"
            ),
            (kind, _) => format!("tag '{tag}': {kind}"),
        }
    }
}

impl Serialize for Violation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = &self.resource;
        let f = &self.finding;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("resource_arn", &r.arn)?;
        map.serialize_entry("resource_id", &r.id)?;
        map.serialize_entry("resource_type", &r.resource_type)?;
        map.serialize_entry("region", &*r.region)?;
        map.serialize_entry("account_id", &*r.account_id)?;
        map.serialize_entry("violation_type", &f.violation_type)?;
        map.serialize_entry("tag_name", &*f.tag_name)?;
        map.serialize_entry("severity", &f.severity)?;
        if let Some(value) = &f.current_value {
            map.serialize_entry("current_value", &**value)?;
        }
        match &f.expected {
            Expected::Nothing => {}
            Expected::AllowedValues(values) => map.serialize_entry("allowed_values", &**values)?,
            Expected::Pattern(pattern) => map.serialize_entry("expected_pattern", &**pattern)?,
            Expected::Canonical(value) => map.serialize_entry("expected_value", &**value)?,
            Expected::MaxLength(max) => map.serialize_entry("max_length", max)?,
        }
        if let Some(cost) = r.monthly_cost {
            map.serialize_entry("monthly_cost", &cost)?;
        }
        map.serialize_entry("message", &self.message())?;
        map.end()
    }
}

/// Why a shard (or the planning of a scan) could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanIssueKind {
    /// The credentials lack a permission.
    AccessDenied,
    /// The service kept throttling past the retry budget.
    Throttled,
    /// The region is disabled or not opted in.
    RegionDisabled,
    /// The endpoint could not be reached.
    EndpointUnavailable,
    /// The source's input was unreadable or malformed.
    InvalidInput,
    /// The fetcher crashed; the rest of the scan went on.
    FetcherCrashed,
    /// Anything else.
    Other,
}

impl std::fmt::Display for ScanIssueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScanIssueKind::AccessDenied => "access_denied",
            ScanIssueKind::Throttled => "throttled",
            ScanIssueKind::RegionDisabled => "region_disabled",
            ScanIssueKind::EndpointUnavailable => "endpoint_unavailable",
            ScanIssueKind::InvalidInput => "invalid_input",
            ScanIssueKind::FetcherCrashed => "fetcher_crashed",
            ScanIssueKind::Other => "other",
        })
    }
}

/// A shard that failed. The scan completes without it and says it is partial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanIssue {
    /// Account of the shard (empty, and absent from JSON, when not tied to one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account_id: String,
    /// Region of the shard.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// Service of the shard (`ec2`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// The class of error.
    pub kind: ScanIssueKind,
    /// The IAM action that was denied, for access-denied errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<String>,
    /// What went wrong, without credentials or local paths.
    pub message: String,
    /// Resources of the shard that were read before it failed (they are in the result).
    pub resources_before_failure: u64,
}

impl ScanIssue {
    /// Where the issue happened, as `account/region/service` (the parts known), or `scan`.
    pub fn place(&self) -> String {
        let parts: Vec<&str> = [&self.account_id, &self.region, &self.service]
            .into_iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            "scan".to_string()
        } else {
            parts.join("/")
        }
    }

    /// An issue not tied to one shard (a malformed entry of a snapshot, say).
    pub fn unattributed(kind: ScanIssueKind, message: impl Into<String>) -> ScanIssue {
        ScanIssue {
            account_id: String::new(),
            region: String::new(),
            service: String::new(),
            kind,
            missing_permission: None,
            message: message.into(),
            resources_before_failure: 0,
        }
    }
}

/// Counts for one resource type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCounts {
    /// Resources of this type in scope.
    pub total: u64,
    /// Resources with no error-severity violation.
    pub compliant: u64,
    /// Resources with at least one error.
    pub non_compliant: u64,
    /// Error-severity violations.
    pub errors: u64,
    /// Warning-severity violations.
    pub warnings: u64,
}

impl TypeCounts {
    /// Adds another count into this one.
    pub fn merge(&mut self, other: &TypeCounts) {
        self.total += other.total;
        self.compliant += other.compliant;
        self.non_compliant += other.non_compliant;
        self.errors += other.errors;
        self.warnings += other.warnings;
    }
}

/// Violation counts for one tag, by violation type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCounts {
    /// Resources missing the tag.
    pub missing: u64,
    /// Errors on the tag other than missing (empty, invalid value or format).
    pub invalid: u64,
    /// Warnings on the tag.
    pub warnings: u64,
}

/// A resource with many errors, for the summary's worst offenders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offender {
    /// The resource.
    pub resource: Arc<ResourceRef>,
    /// Its error count.
    pub errors: u32,
    /// Its warning count.
    pub warnings: u32,
}

/// The compliance result of one scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanResult {
    /// The scan's id.
    pub scan_id: ScanId,
    /// Compliant resources / resources in scope, in 0.0–1.0; 1.0 when there are none.
    pub compliance_score: f64,
    /// Resources in scope.
    pub total_resources: u64,
    /// Resources with no error-severity violation.
    pub compliant_resources: u64,
    /// Resources with at least one error.
    pub non_compliant_resources: u64,
    /// Error-severity violations (all of them, whatever the severity filter).
    pub error_count: u64,
    /// Warning-severity violations (all of them, whatever the severity filter).
    pub warning_count: u64,
    /// Violations admitted by the severity filter, every one of them, ordered by resource ARN.
    pub violations: Vec<Violation>,
    /// Shards that failed; non-empty means the result is partial.
    pub issues: Vec<ScanIssue>,
    /// True when some shard failed: counts cover only what could be read.
    pub partial: bool,
    /// Limits of the source that the counts are subject to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// API calls the source made for this scan, per `service:Operation` (AWS only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub api_calls: BTreeMap<String, u64>,
    /// When the scan started.
    pub scan_timestamp: DateTime<Utc>,
    /// Wall time of the scan in milliseconds.
    pub duration_ms: u64,
    /// Where the resources came from (`demo`, `file:…`, `aws`).
    pub source: String,
    /// Version of the policy the scan used.
    pub policy_version: String,
    /// What the scan covered.
    pub scope: ScanScope,
    /// Which violations are listed.
    pub severity_filter: SeverityFilter,
    /// Counts per resource type.
    pub by_resource_type: BTreeMap<ResourceType, TypeCounts>,
    /// Violation counts per tag.
    pub by_tag: BTreeMap<String, TagCounts>,
    /// Up to ten resources with the most errors.
    pub worst_offenders: Vec<Offender>,
    /// Shards planned and shards read successfully.
    pub shards_total: u64,
    /// Shards read to the end.
    pub shards_succeeded: u64,
    /// With an ARN filter in the scope: the ARNs found, compliant or not, in source order.
    /// Empty without one (listing every resource would cost memory for nothing).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_arns: Vec<String>,
}

/// The headline numbers of a scan, shared by every view of one (summaries, history points,
/// tool answers) and flattened into them, so that each names them the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComplianceTotals {
    /// Compliant resources / all resources in scope, from 0.0 to 1.0 (1.0 when there are none).
    pub compliance_score: f64,
    /// Resources checked.
    pub total_resources: u64,
    /// Resources with no error-severity violation.
    pub compliant_resources: u64,
    /// Resources with at least one error.
    pub non_compliant_resources: u64,
    /// Error-severity violations (whatever a severity filter lists).
    pub error_count: u64,
    /// Warning-severity violations (whatever a severity filter lists).
    pub warning_count: u64,
}

impl ScanResult {
    /// The headline numbers.
    pub fn totals(&self) -> ComplianceTotals {
        ComplianceTotals {
            compliance_score: self.compliance_score,
            total_resources: self.total_resources,
            compliant_resources: self.compliant_resources,
            non_compliant_resources: self.non_compliant_resources,
            error_count: self.error_count,
            warning_count: self.warning_count,
        }
    }
}

impl ScanResult {
    /// The score for `compliant` of `total` resources: 1.0 when there are none.
    pub fn score(compliant: u64, total: u64) -> f64 {
        if total == 0 {
            1.0
        } else {
            compliant as f64 / total as f64
        }
    }

    /// Whether every resource in scope is compliant (the CLI's exit 0).
    pub fn all_compliant(&self) -> bool {
        self.compliant_resources == self.total_resources
    }
}
