//! The result of a scan as one interchange value: what the scan was ([`ScanMeta`]), its
//! headline numbers, and its [`Tally`]. It is what the engine returns, what `--format json`
//! writes, what the cache stores and what reads back, exactly; and results of parts of one
//! scan (shards run apart) combine with [`ScanResult::merge`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    CostSource, Expected, Finding, Resource, ResourceType, ScanId, ScanScope, Severity,
    SeverityFilter, Tally, TypeCounts, Usd, ViolationType,
};

/// The identity of a resource, shared by all of its violations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceRef {
    /// Full ARN.
    pub arn: String,
    /// Id inside its type.
    pub id: String,
    /// `service:type`.
    pub resource_type: ResourceType,
    /// Region (`global` for resources of no region).
    pub region: Arc<str>,
    /// Account id.
    pub account_id: Arc<str>,
    /// Human name, when known.
    pub name: Option<String>,
    /// Monthly cost in USD; null when unknown (never 0 for unknown).
    pub monthly_cost: Option<Usd>,
    /// Where `monthly_cost` comes from.
    #[serde(default)]
    pub cost_source: CostSource,
    /// Creation time, when known.
    pub created_at: Option<DateTime<Utc>>,
    /// How many tags the resource carries (0: untagged), to tell untagged resources from
    /// partly tagged ones without keeping every tag.
    pub tag_count: u32,
}

impl ResourceRef {
    /// Whole days since creation at `now`, when the creation time is known.
    pub fn age_days(&self, now: DateTime<Utc>) -> Option<i64> {
        age_days(self.created_at, now)
    }
}

/// Whole days from `created` to `now`, never negative.
pub(crate) fn age_days(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    created.map(|t| (now - t).num_days().max(0))
}

impl From<Resource> for ResourceRef {
    fn from(resource: Resource) -> Self {
        ResourceRef {
            tag_count: u32::try_from(resource.tags.len()).unwrap_or(u32::MAX),
            arn: resource.arn,
            id: resource.id,
            resource_type: resource.resource_type,
            region: resource.region,
            account_id: resource.account_id,
            name: resource.name,
            monthly_cost: resource.monthly_cost,
            cost_source: resource.cost_source,
            created_at: resource.created_at,
        }
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
        use super::text::show;
        let f = &self.finding;
        let tag = show(&f.tag_name);
        let current = f.current_value.as_deref().unwrap_or("");
        // Invisible characters in a value are why it fails more often than not: name them.
        let hidden = |text: &str| {
            let parts = super::text::invisible_parts(text);
            if parts.is_empty() {
                String::new()
            } else {
                format!(" (it contains {})", parts.join(", "))
            }
        };
        let shown = show(current);
        match (f.violation_type, &f.expected) {
            (V::MissingRequiredTag, _) if !current.is_empty() => {
                let how = match super::look_alike(current, &f.tag_name) {
                    Some(super::LookAlike::Case) => {
                        "which differs only in case (tag keys are case-sensitive)".to_string()
                    }
                    Some(super::LookAlike::Invisible) => {
                        let parts = super::text::invisible_parts(current);
                        format!("which differs by {}", parts.join(", "))
                    }
                    Some(super::LookAlike::Separators) => {
                        "which differs in spaces or separators".to_string()
                    }
                    Some(super::LookAlike::Typo) => {
                        "which differs by one character: a misspelling?".to_string()
                    }
                    None => "which looks like it".to_string(),
                };
                format!("required tag '{tag}' is missing; the resource has '{shown}', {how}")
            }
            (V::MissingRequiredTag, _) => format!("required tag '{tag}' is missing"),
            (V::EmptyValue, _) => {
                format!("required tag '{tag}' has an empty value{}", hidden(current))
            }
            (V::InvalidValue, Expected::AllowedValues(allowed)) => format!(
                "tag '{tag}' has value '{shown}', which is not one of: {}{}",
                allowed.join(", "),
                hidden(current)
            ),
            (V::InvalidFormat, Expected::Pattern(pattern)) => format!(
                "tag '{tag}' has value '{shown}', which does not match '{pattern}'{}",
                hidden(current)
            ),
            (V::KeyAlias, _) => format!(
                "tag key '{shown}' is an alias of the policy's '{tag}': accepted, but rename it to '{tag}'"
            ),
            (V::KeyCaseMismatch, _) => {
                format!("tag key '{shown}' differs only in case from the policy's '{tag}'")
            }
            (V::ValueCaseMismatch, Expected::Canonical(canonical)) => format!(
                "tag '{tag}' has value '{shown}', which differs only in case from '{canonical}'"
            ),
            (V::ValueCaseMismatch, Expected::Pattern(pattern)) => format!(
                "tag '{tag}' has value '{shown}', which matches '{pattern}' only when case is ignored"
            ),
            (V::KeyTooLong, Expected::MaxLength(max)) => {
                format!("tag key '{tag}' is longer than {max} characters")
            }
            (V::ValueTooLong, Expected::MaxLength(max)) => {
                format!("tag '{tag}' has a value longer than {max} characters")
            }
            (V::InvalidCharacters, _) => format!(
                "tag '{tag}': '{shown}' has characters outside letters, digits, spaces and _ . : / = + - @{}",
                hidden(current)
            ),
            (kind, _) => format!("tag '{tag}': {kind}"),
        }
    }
}

/// A violation as it is written out and read back: the resource and the finding, flat, so
/// that a reader (a person, `jq`, a model) finds everything in one object. Fields that do not
/// apply are left out; the cost is always there (null when unknown, never 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ViolationRecord<'a> {
    /// ARN of the resource.
    pub resource_arn: Cow<'a, str>,
    /// The resource's id within its type (instance id, bucket name, ...).
    pub resource_id: Cow<'a, str>,
    /// `service:type`, e.g. `ec2:instance`.
    pub resource_type: ResourceType,
    /// Region (`global` for resources of no region).
    pub region: Cow<'a, str>,
    /// Account id.
    pub account_id: Cow<'a, str>,
    /// The resource's name (its `Name` tag or API name), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<Cow<'a, str>>,
    /// What is wrong: missing_required_tag, empty_value, invalid_value, invalid_format,
    /// key_case_mismatch, value_case_mismatch, key_too_long, value_too_long, invalid_characters.
    pub violation_type: ViolationType,
    /// The tag concerned, as the policy spells it (the resource's key, for naming rules).
    pub tag_name: Cow<'a, str>,
    /// `error` (makes the resource non-compliant) or `warning`.
    pub severity: Severity,
    /// The value found; for a key case mismatch the key found, and for a missing tag a key of
    /// the resource that looks like it (`Cost Center` for `CostCenter`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_value: Option<Cow<'a, str>>,
    /// The values the policy allows for this tag, for invalid_value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Cow<'a, [String]>>,
    /// The regular expression the value must match, for invalid_format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_pattern: Option<Cow<'a, str>>,
    /// The policy's spelling, for case mismatches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_value: Option<Cow<'a, str>>,
    /// The length limit exceeded, for length violations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// Monthly cost of the resource in USD; null when unknown (never 0 for unknown).
    #[serde(default)]
    pub monthly_cost: Option<Usd>,
    /// Where `monthly_cost` comes from.
    #[serde(default)]
    pub cost_source: CostSource,
    /// When the resource was created, when known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339::option"
    )]
    pub created_at: Option<DateTime<Utc>>,
    /// How many tags the resource carries (0: untagged).
    #[serde(default)]
    pub tag_count: u32,
    /// One sentence saying what is wrong (ignored when read back: it follows from the rest).
    #[serde(default)]
    pub message: Cow<'a, str>,
}

impl<'a> From<&'a Violation> for ViolationRecord<'a> {
    fn from(v: &'a Violation) -> Self {
        let r = &*v.resource;
        let f = &v.finding;
        let (mut allowed_values, mut expected_pattern, mut expected_value, mut max_length) =
            (None, None, None, None);
        match &f.expected {
            Expected::Nothing => {}
            Expected::AllowedValues(values) => allowed_values = Some(Cow::Borrowed(&values[..])),
            Expected::Pattern(pattern) => expected_pattern = Some(Cow::Borrowed(&**pattern)),
            Expected::Canonical(value) => expected_value = Some(Cow::Borrowed(&**value)),
            Expected::MaxLength(max) => max_length = Some(*max as u64),
        }
        ViolationRecord {
            resource_arn: Cow::Borrowed(&r.arn),
            resource_id: Cow::Borrowed(&r.id),
            resource_type: r.resource_type.clone(),
            region: Cow::Borrowed(&r.region),
            account_id: Cow::Borrowed(&r.account_id),
            resource_name: r.name.as_deref().map(Cow::Borrowed),
            violation_type: f.violation_type,
            tag_name: Cow::Borrowed(&f.tag_name),
            severity: f.severity,
            current_value: f.current_value.as_deref().map(Cow::Borrowed),
            allowed_values,
            expected_pattern,
            expected_value,
            max_length,
            monthly_cost: r.monthly_cost,
            cost_source: r.cost_source,
            created_at: r.created_at,
            tag_count: r.tag_count,
            message: Cow::Owned(v.message()),
        }
    }
}

/// Shares the strings that repeat across the violations read back (tag names, regions,
/// accounts, allowed-value lists), as a scan shares them.
#[derive(Default)]
pub(crate) struct Interner {
    strings: HashMap<String, Arc<str>>,
    lists: HashMap<Vec<String>, Arc<[String]>>,
}

impl Interner {
    pub(crate) fn text(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(text.to_string(), shared.clone());
        shared
    }

    fn list(&mut self, list: Vec<String>) -> Arc<[String]> {
        if let Some(shared) = self.lists.get(&list) {
            return shared.clone();
        }
        let shared: Arc<[String]> = Arc::from(list.clone());
        self.lists.insert(list, shared.clone());
        shared
    }
}

impl ViolationRecord<'_> {
    /// Whether the record's resource is exactly `resource`.
    pub(crate) fn describes(&self, resource: &ResourceRef) -> bool {
        *self.resource_arn == *resource.arn
            && *self.resource_id == *resource.id
            && self.resource_type == resource.resource_type
            && *self.region == *resource.region
            && *self.account_id == *resource.account_id
            && self.resource_name.as_deref() == resource.name.as_deref()
            && self.monthly_cost == resource.monthly_cost
            && self.cost_source == resource.cost_source
            && self.created_at == resource.created_at
            && self.tag_count == resource.tag_count
    }

    /// The violation the record describes; `shared` is its resource when an earlier record
    /// described it.
    pub(crate) fn into_violation(
        self,
        shared: Option<Arc<ResourceRef>>,
        interner: &mut Interner,
    ) -> Result<Violation, String> {
        let expected = match (
            self.allowed_values,
            self.expected_pattern,
            self.expected_value,
            self.max_length,
        ) {
            (None, None, None, None) => Expected::Nothing,
            (Some(values), None, None, None) => {
                Expected::AllowedValues(interner.list(values.into_owned()))
            }
            (None, Some(pattern), None, None) => Expected::Pattern(interner.text(&pattern)),
            (None, None, Some(value), None) => Expected::Canonical(interner.text(&value)),
            (None, None, None, Some(max)) => Expected::MaxLength(max as usize),
            _ => {
                return Err(format!(
                    "violation of '{}' on '{}' names more than one expectation",
                    self.tag_name, self.resource_arn
                ));
            }
        };
        let resource = match shared {
            Some(resource) => resource,
            None => Arc::new(ResourceRef {
                arn: self.resource_arn.into_owned(),
                id: self.resource_id.into_owned(),
                resource_type: self.resource_type,
                region: interner.text(&self.region),
                account_id: interner.text(&self.account_id),
                name: self.resource_name.map(Cow::into_owned),
                monthly_cost: self.monthly_cost,
                cost_source: self.cost_source,
                created_at: self.created_at,
                tag_count: self.tag_count,
            }),
        };
        Ok(Violation {
            resource,
            finding: Finding {
                violation_type: self.violation_type,
                severity: self.severity,
                tag_name: interner.text(&self.tag_name),
                current_value: self.current_value.map(|v| v.into_owned().into_boxed_str()),
                expected,
            },
        })
    }
}

impl Serialize for Violation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ViolationRecord::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Violation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ViolationRecord::deserialize(deserializer)?
            .into_violation(None, &mut Interner::default())
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Violation {
    fn schema_name() -> Cow<'static, str> {
        "Violation".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ViolationRecord::json_schema(generator)
    }
}

/// Why part of the estate could not be read. The scan completes without it and says it is
/// partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScanIssueKind {
    /// The credentials lack a permission.
    AccessDenied,
    /// The service kept throttling past the retry budget.
    Throttled,
    /// The region is disabled or not opted in.
    RegionDisabled,
    /// The endpoint could not be reached, or kept failing on its side.
    EndpointUnavailable,
    /// The endpoint did not answer in time (a call past its timeout, or the scan's deadline).
    Timeout,
    /// The source's input was unreadable or malformed.
    InvalidInput,
    /// The fetcher (or the planning) crashed; the rest of the scan went on.
    FetcherCrashed,
    /// Anything else.
    Other,
}

super::string_enum!(ScanIssueKind "an issue kind" {
    AccessDenied => "access_denied",
    Throttled => "throttled",
    RegionDisabled => "region_disabled",
    EndpointUnavailable => "endpoint_unavailable",
    Timeout => "timeout",
    InvalidInput => "invalid_input",
    FetcherCrashed => "fetcher_crashed",
    Other => "other",
});

/// A part of the estate that could not be read: a shard, a page of one, one resource, or an
/// entry of an input file. The scan completes without it and says it is partial.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
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
    /// The class of error: access_denied, throttled, region_disabled, endpoint_unavailable,
    /// timeout, invalid_input, fetcher_crashed, other.
    pub kind: ScanIssueKind,
    /// The IAM action that was denied, for access-denied errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<String>,
    /// What went wrong, without credentials or local paths.
    pub message: String,
    /// Resources of the shard that were read before it failed (they are in the result).
    #[serde(default)]
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

/// The headline numbers of a scan, shared by every view of one (summaries, history points,
/// tool answers) and flattened into them, so that each names them the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ComplianceTotals {
    /// Compliant resources / resources some required tag applies to, from 0.0 to 1.0 (1.0
    /// when there are none). Resources no rule applies to are not in it.
    pub compliance_score: f64,
    /// Resources in scope: compliant + non-compliant + not applicable + exempt.
    pub total_resources: u64,
    /// Resources some required tag applies to, with no error-severity violation.
    pub compliant_resources: u64,
    /// Resources with at least one error.
    pub non_compliant_resources: u64,
    /// Resources no required tag of the policy applies to (their types are in no rule's
    /// applies_to): neither compliant nor non-compliant, and not in the score.
    #[serde(default)]
    pub not_applicable_resources: u64,
    /// Resources under an active exemption of the policy: not validated, not in the score,
    /// listed in the tally's `exemptions`.
    #[serde(default)]
    pub exempt_resources: u64,
    /// Error-severity violations (whatever a severity filter lists).
    pub error_count: u64,
    /// Warning-severity violations (whatever a severity filter lists).
    pub warning_count: u64,
}

impl ComplianceTotals {
    /// The totals of these counts.
    pub fn of(counts: &TypeCounts) -> ComplianceTotals {
        ComplianceTotals {
            compliance_score: counts.score(),
            total_resources: counts.total,
            compliant_resources: counts.compliant,
            non_compliant_resources: counts.non_compliant,
            not_applicable_resources: counts.not_applicable,
            exempt_resources: counts.exempt,
            error_count: counts.errors,
            warning_count: counts.warnings,
        }
    }
}

/// Who asked for a scan. A lookup (given ARNs, for one answer) is not an audit of the estate
/// and is never recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// `tagguard scan`.
    Cli,
    /// An MCP tool, by name.
    Tool(String),
    /// A look at given resources for a tool, by name: answered, not recorded.
    Lookup(String),
    /// A scheduled audit, by schedule name.
    Schedule(String),
}

impl Origin {
    /// Whether scans of this origin go into the history.
    pub fn is_recorded(&self) -> bool {
        !matches!(self, Origin::Lookup(_))
    }
}

impl fmt::Display for Origin {
    /// `cli`, `mcp:TOOL`, `lookup:TOOL`, `schedule:NAME`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Cli => f.write_str("cli"),
            Origin::Tool(tool) => write!(f, "mcp:{tool}"),
            Origin::Lookup(tool) => write!(f, "lookup:{tool}"),
            Origin::Schedule(name) => write!(f, "schedule:{name}"),
        }
    }
}

impl FromStr for Origin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = |prefix: &str| s.strip_prefix(prefix).map(str::to_string);
        if s == "cli" {
            Ok(Origin::Cli)
        } else if let Some(tool) = named("mcp:") {
            Ok(Origin::Tool(tool))
        } else if let Some(tool) = named("lookup:") {
            Ok(Origin::Lookup(tool))
        } else if let Some(name) = named("schedule:") {
            Ok(Origin::Schedule(name))
        } else {
            Err(format!(
                "'{s}' is not a scan origin: expected cli, mcp:TOOL, lookup:TOOL or schedule:NAME"
            ))
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a scan was: which one, of what, when, how, and how much of it could be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScanMeta {
    /// The scan's id.
    pub scan_id: ScanId,
    /// When the scan started (UTC).
    pub scan_timestamp: DateTime<Utc>,
    /// Wall time of the scan in milliseconds.
    pub duration_ms: u64,
    /// Where the resources came from (`demo`, `file:…`, `aws`).
    pub source: String,
    /// Version of the policy the scan used.
    pub policy_version: String,
    /// What the scan covered.
    pub scope: ScanScope,
    /// Which violations are listed (counts cover all).
    pub severity_filter: SeverityFilter,
    /// Shards (account × region × service) planned.
    pub shards_total: u64,
    /// Shards read to the end.
    pub shards_succeeded: u64,
    /// API calls the source made for this scan, per `service:Operation`, retries included
    /// (AWS only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api_calls: BTreeMap<String, u64>,
    /// Of those calls, the attempts AWS answered with throttling, per operation: how hard AWS
    /// pushed back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub throttled_calls: BTreeMap<String, u64>,
    /// Retries per operation: the SDK's attempts after the first, and the fetchers' retries of
    /// a page whose call failed past them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retried_calls: BTreeMap<String, u64>,
    /// Limits of the source that the counts are subject to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The cost-attribution gap of the last full month, when one was computed with the scan
    /// (`cost.record_gap`): the history keeps it for its trend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_gap: Option<super::costing::GapRecord>,
}

/// Why two results cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot merge scan results: {0}")]
pub struct MergeError(pub String);

impl ScanMeta {
    /// Combines the metadata of two parts of one scan: the first id and start, the longest
    /// duration (parts run side by side), shards and calls added, notes united, and the
    /// scopes joined (a list left empty, meaning all, stays all).
    fn merge(&mut self, other: ScanMeta) -> Result<(), MergeError> {
        for (what, mine, theirs) in [
            ("sources", &self.source, &other.source),
            (
                "policy versions",
                &self.policy_version,
                &other.policy_version,
            ),
        ] {
            if mine != theirs {
                return Err(MergeError(format!(
                    "different {what}: '{mine}' and '{theirs}'"
                )));
            }
        }
        if self.severity_filter != other.severity_filter {
            return Err(MergeError(format!(
                "different severity filters: {} and {}",
                self.severity_filter, other.severity_filter
            )));
        }
        self.scan_id = self.scan_id.min(other.scan_id);
        self.scan_timestamp = self.scan_timestamp.min(other.scan_timestamp);
        self.duration_ms = self.duration_ms.max(other.duration_ms);
        self.shards_total += other.shards_total;
        self.shards_succeeded += other.shards_succeeded;
        for (mine, theirs) in [
            (&mut self.api_calls, other.api_calls),
            (&mut self.throttled_calls, other.throttled_calls),
            (&mut self.retried_calls, other.retried_calls),
        ] {
            for (call, n) in theirs {
                *mine.entry(call).or_default() += n;
            }
        }
        let notes: BTreeSet<String> = self.notes.drain(..).chain(other.notes).collect();
        self.notes = notes.into_iter().collect();
        // Parts of one scan share its gap; either part's will do.
        self.cost_gap = self.cost_gap.take().or(other.cost_gap);
        self.scope = join_scopes(&self.scope, &other.scope);
        Ok(())
    }
}

fn join_scopes(a: &ScanScope, b: &ScanScope) -> ScanScope {
    fn join<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> BTreeSet<T> {
        if a.is_empty() || b.is_empty() {
            BTreeSet::new()
        } else {
            a.union(b).cloned().collect()
        }
    }
    ScanScope {
        resource_types: join(&a.resource_types, &b.resource_types),
        regions: join(&a.regions, &b.regions),
        accounts: join(&a.accounts, &b.accounts),
        arns: join(&a.arns, &b.arns),
    }
}

/// The result of one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanResult {
    /// What the scan was.
    #[serde(flatten)]
    pub meta: ScanMeta,
    /// Score and counts, from the tally.
    #[serde(flatten)]
    pub totals: ComplianceTotals,
    /// True when some part of the estate could not be read (see `tally.issues`): the counts
    /// cover only what was read.
    pub partial: bool,
    /// Counts, violations, offenders, issues and the optional analyses.
    pub tally: Tally,
}

impl ScanResult {
    /// The result of a scan described by `meta` that tallied `tally`.
    pub fn new(meta: ScanMeta, tally: Tally) -> ScanResult {
        ScanResult {
            meta,
            totals: tally.totals(),
            partial: !tally.issues.is_empty(),
            tally,
        }
    }

    /// Adds the result of another part of the same scan (other shards of the same source,
    /// policy and severity filter). Associative and commutative in everything but the id,
    /// start and duration, which take the first and the longest.
    pub fn merge(&mut self, other: ScanResult) -> Result<(), MergeError> {
        self.meta.merge(other.meta)?;
        self.tally.merge(other.tally);
        self.totals = self.tally.totals();
        self.partial = !self.tally.issues.is_empty();
        Ok(())
    }

    /// The score for `compliant` of `total` judged resources: 1.0 when there are none.
    pub fn score(compliant: u64, total: u64) -> f64 {
        if total == 0 {
            1.0
        } else {
            compliant as f64 / total as f64
        }
    }

    /// Whether no resource in scope is non-compliant (the CLI's exit 0).
    pub fn all_compliant(&self) -> bool {
        self.totals.non_compliant_resources == 0
    }

    /// The violations the severity filter admits, in source order.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> + '_ {
        self.tally.violations.iter()
    }
}

/// Timestamps written as chrono writes them (RFC 3339, UTC as `Z`, fractions of a second only
/// when there are some, in 3, 6 or 9 digits), without its formatting machinery: a result
/// writes one per violation, and formatting them was a tenth of writing a big result.
mod rfc3339 {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    use serde::Serializer;

    pub fn option<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_str(&text(time)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn text(time: &DateTime<Utc>) -> String {
        let year = time.year();
        if !(0..=9999).contains(&year) {
            return time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        }
        // A leap second is written as :60, as chrono writes it.
        let (second, nanos) = match time.nanosecond() {
            n if n >= 1_000_000_000 => (time.second() + 1, n - 1_000_000_000),
            n => (time.second(), n),
        };
        let mut out = String::with_capacity(30);
        push(&mut out, year as u32, 4);
        for (separator, value) in [
            ('-', time.month()),
            ('-', time.day()),
            ('T', time.hour()),
            (':', time.minute()),
            (':', second),
        ] {
            out.push(separator);
            push(&mut out, value, 2);
        }
        let (fraction, width) = match nanos {
            0 => (0, 0),
            n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
            n if n % 1_000 == 0 => (n / 1_000, 6),
            n => (n, 9),
        };
        if width > 0 {
            out.push('.');
            push(&mut out, fraction, width);
        }
        out.push('Z');
        out
    }

    /// `value` in decimal, zero-padded to `width` digits.
    fn push(out: &mut String, value: u32, width: usize) {
        let mut digits = [b'0'; 10];
        let mut rest = value;
        let mut at = digits.len();
        while rest > 0 {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let start = (digits.len() - width).min(at);
        for &d in &digits[start..] {
            out.push(d as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        use chrono::TimeZone;
        let base = Utc.with_ymd_and_hms(2024, 4, 7, 8, 9, 7).unwrap();
        for nanos in [0, 123_000_000, 123_456_000, 123_456_789, 1_000] {
            let time = base + chrono::Duration::nanoseconds(nanos);
            assert_eq!(
                rfc3339::text(&time),
                serde_json::to_value(time).unwrap().as_str().unwrap(),
                "{nanos}"
            );
        }
    }

    #[test]
    fn origins_print_and_parse() {
        for (origin, text) in [
            (Origin::Cli, "cli"),
            (
                Origin::Tool("check_tag_compliance".into()),
                "mcp:check_tag_compliance",
            ),
            (
                Origin::Lookup("validate_resource_tags".into()),
                "lookup:validate_resource_tags",
            ),
            (Origin::Schedule("nightly".into()), "schedule:nightly"),
        ] {
            assert_eq!(origin.to_string(), text);
            assert_eq!(text.parse::<Origin>().unwrap(), origin);
        }
        assert!(!Origin::Lookup("x".into()).is_recorded());
        assert!("robot".parse::<Origin>().is_err());
    }

    #[test]
    fn scopes_join_with_all_absorbing() {
        let a = ScanScope {
            regions: ["us-east-1".to_string()].into(),
            accounts: ["111111111111".to_string()].into(),
            ..ScanScope::default()
        };
        let b = ScanScope {
            regions: ["eu-west-1".to_string()].into(),
            ..ScanScope::default()
        };
        let joined = join_scopes(&a, &b);
        assert_eq!(joined.regions.len(), 2);
        assert!(joined.accounts.is_empty(), "b covers every account");
    }
}
