//! A whole [`ScanResult`] as stored bytes and back, for the result cache: resources are
//! written once and violations point at them, as the in-memory result shares them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StoreError, decode, encode};
use crate::domain::{
    Expected, Finding, Offender, ResourceRef, ResourceType, ScanId, ScanIssue, ScanResult,
    ScanScope, Severity, SeverityFilter, TagCounts, TypeCounts, Violation, ViolationType,
};

#[derive(Serialize, Deserialize)]
struct StoredRef {
    arn: String,
    id: String,
    resource_type: ResourceType,
    region: String,
    account_id: String,
    name: Option<String>,
    monthly_cost: Option<f64>,
    created_at: Option<DateTime<Utc>>,
    tag_count: u32,
}

#[derive(Serialize, Deserialize)]
enum StoredExpected {
    Nothing,
    AllowedValues(Vec<String>),
    Pattern(String),
    Canonical(String),
    MaxLength(usize),
}

#[derive(Serialize, Deserialize)]
struct StoredViolation {
    resource: u32,
    violation_type: ViolationType,
    severity: Severity,
    tag_name: String,
    current_value: Option<String>,
    expected: StoredExpected,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    scan_id: u64,
    compliance_score: f64,
    total_resources: u64,
    compliant_resources: u64,
    non_compliant_resources: u64,
    error_count: u64,
    warning_count: u64,
    resources: Vec<StoredRef>,
    violations: Vec<StoredViolation>,
    offenders: Vec<(u32, u32, u32)>,
    issues: Vec<ScanIssue>,
    partial: bool,
    notes: Vec<String>,
    api_calls: BTreeMap<String, u64>,
    scan_timestamp: DateTime<Utc>,
    duration_ms: u64,
    source: String,
    policy_version: String,
    scope: ScanScope,
    severity_filter: SeverityFilter,
    by_resource_type: BTreeMap<ResourceType, TypeCounts>,
    by_tag: BTreeMap<String, TagCounts>,
    shards_total: u64,
    shards_succeeded: u64,
    matched_arns: Vec<String>,
}

/// The bytes of a result.
pub fn encode_result(result: &ScanResult) -> Vec<u8> {
    let mut index: HashMap<*const ResourceRef, u32> = HashMap::new();
    let mut resources = Vec::new();
    let mut index_of = |r: &Arc<ResourceRef>| -> u32 {
        *index.entry(Arc::as_ptr(r)).or_insert_with(|| {
            resources.push(StoredRef {
                arn: r.arn.clone(),
                id: r.id.clone(),
                resource_type: r.resource_type.clone(),
                region: r.region.to_string(),
                account_id: r.account_id.to_string(),
                name: r.name.clone(),
                monthly_cost: r.monthly_cost,
                created_at: r.created_at,
                tag_count: r.tag_count,
            });
            resources.len() as u32 - 1
        })
    };
    let violations = result
        .violations
        .iter()
        .map(|v| StoredViolation {
            resource: index_of(&v.resource),
            violation_type: v.finding.violation_type,
            severity: v.finding.severity,
            tag_name: v.finding.tag_name.to_string(),
            current_value: v.finding.current_value.as_deref().map(str::to_string),
            expected: match &v.finding.expected {
                Expected::Nothing => StoredExpected::Nothing,
                Expected::AllowedValues(values) => StoredExpected::AllowedValues(values.to_vec()),
                Expected::Pattern(p) => StoredExpected::Pattern(p.to_string()),
                Expected::Canonical(c) => StoredExpected::Canonical(c.to_string()),
                Expected::MaxLength(m) => StoredExpected::MaxLength(*m),
            },
        })
        .collect();
    let offenders = result
        .worst_offenders
        .iter()
        .map(|o| (index_of(&o.resource), o.errors, o.warnings))
        .collect();
    encode(&Stored {
        scan_id: result.scan_id.0,
        compliance_score: result.compliance_score,
        total_resources: result.total_resources,
        compliant_resources: result.compliant_resources,
        non_compliant_resources: result.non_compliant_resources,
        error_count: result.error_count,
        warning_count: result.warning_count,
        resources,
        violations,
        offenders,
        issues: result.issues.clone(),
        partial: result.partial,
        notes: result.notes.clone(),
        api_calls: result.api_calls.clone(),
        scan_timestamp: result.scan_timestamp,
        duration_ms: result.duration_ms,
        source: result.source.clone(),
        policy_version: result.policy_version.clone(),
        scope: result.scope.clone(),
        severity_filter: result.severity_filter,
        by_resource_type: result.by_resource_type.clone(),
        by_tag: result.by_tag.clone(),
        shards_total: result.shards_total,
        shards_succeeded: result.shards_succeeded,
        matched_arns: result.matched_arns.clone(),
    })
}

/// The result of some bytes from [`encode_result`].
pub fn decode_result(bytes: &[u8]) -> Result<ScanResult, StoreError> {
    let stored: Stored = decode(bytes)?;
    // Regions and accounts repeat across resources: share their strings, as scans do.
    let mut interned: HashMap<String, Arc<str>> = HashMap::new();
    let mut intern = |s: String| -> Arc<str> {
        interned
            .entry(s)
            .or_insert_with_key(|k| Arc::from(k.as_str()))
            .clone()
    };
    let resources: Vec<Arc<ResourceRef>> = stored
        .resources
        .into_iter()
        .map(|r| {
            Arc::new(ResourceRef {
                arn: r.arn,
                id: r.id,
                resource_type: r.resource_type,
                region: intern(r.region),
                account_id: intern(r.account_id),
                name: r.name,
                monthly_cost: r.monthly_cost,
                created_at: r.created_at,
                tag_count: r.tag_count,
            })
        })
        .collect();
    let resource = |i: u32| -> Result<Arc<ResourceRef>, StoreError> {
        resources.get(i as usize).cloned().ok_or_else(|| {
            StoreError::Io(format!(
                "cached result refers to resource {i}, which it lacks"
            ))
        })
    };
    let mut tags: HashMap<String, Arc<str>> = HashMap::new();
    let mut violations = Vec::with_capacity(stored.violations.len());
    for v in stored.violations {
        let tag_name = tags
            .entry(v.tag_name)
            .or_insert_with_key(|k| Arc::from(k.as_str()))
            .clone();
        violations.push(Violation {
            resource: resource(v.resource)?,
            finding: Finding {
                violation_type: v.violation_type,
                severity: v.severity,
                tag_name,
                current_value: v.current_value.map(String::into_boxed_str),
                expected: match v.expected {
                    StoredExpected::Nothing => Expected::Nothing,
                    StoredExpected::AllowedValues(values) => Expected::AllowedValues(values.into()),
                    StoredExpected::Pattern(p) => Expected::Pattern(p.into()),
                    StoredExpected::Canonical(c) => Expected::Canonical(c.into()),
                    StoredExpected::MaxLength(m) => Expected::MaxLength(m),
                },
            },
        });
    }
    let worst_offenders = stored
        .offenders
        .into_iter()
        .map(|(i, errors, warnings)| {
            Ok(Offender {
                resource: resource(i)?,
                errors,
                warnings,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(ScanResult {
        scan_id: ScanId(stored.scan_id),
        compliance_score: stored.compliance_score,
        total_resources: stored.total_resources,
        compliant_resources: stored.compliant_resources,
        non_compliant_resources: stored.non_compliant_resources,
        error_count: stored.error_count,
        warning_count: stored.warning_count,
        violations,
        issues: stored.issues,
        partial: stored.partial,
        notes: stored.notes,
        api_calls: stored.api_calls,
        scan_timestamp: stored.scan_timestamp,
        duration_ms: stored.duration_ms,
        source: stored.source,
        policy_version: stored.policy_version,
        scope: stored.scope,
        severity_filter: stored.severity_filter,
        by_resource_type: stored.by_resource_type,
        by_tag: stored.by_tag,
        worst_offenders,
        shards_total: stored.shards_total,
        shards_succeeded: stored.shards_succeeded,
        matched_arns: stored.matched_arns,
    })
}
