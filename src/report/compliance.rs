//! The compliance report: one document a FinOps team forwards, built from a scan result, the
//! history of its scope and the cost-attribution gap: the score and totals, violations ranked
//! by count and by monthly cost, tables per type, tag, account and region, the trend, the gap,
//! the worst offenders, and recommendations derived from the violations themselves (each says
//! how many resources and how much spend it covers, and fires only where the data shows it).
//!
//! Pure: the caller gathers the parts; [`Report::build`] makes one pass over the violations.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use crate::cost::AttributionGap;
use crate::domain::{
    ComplianceTotals, CostSource, CostSums, Expected, ResourceRef, ResourceType, ScanIssue,
    ScanResult, ScanScope, Severity, TypeCounts, Usd, ViolationType,
};
use crate::store::history::{HistoryReport, Trend};

/// How many rows the ranked lists keep.
pub const RANKED_ROWS: usize = 10;
/// How many examples a recommendation names.
pub const EXAMPLES: usize = 5;
/// The most recommendations a report makes (the costliest first).
pub const MAX_RECOMMENDATIONS: usize = 12;

/// What the report is about.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReportScan {
    /// The scan's id.
    pub scan_id: String,
    /// When it started.
    pub scanned_at: DateTime<Utc>,
    /// Where the resources came from (`demo`, `file:…`, `aws`).
    pub source: String,
    /// The policy's version.
    pub policy_version: String,
    /// What the scan covered (empty lists: everything the source covers).
    pub scope: ScanScope,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Some part of the estate could not be read: the counts cover only what was read.
    pub partial: bool,
    /// The parts not read, and why.
    pub issues: Vec<ScanIssue>,
    /// Limits of the source the counts are subject to.
    pub notes: Vec<String>,
}

/// Counts and cost of one group of resources (a type, an account, a region).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GroupRow {
    /// The type, account id or region.
    pub name: String,
    /// Resources in scope.
    pub total: u64,
    /// Resources a required tag applies to with no error.
    pub compliant: u64,
    /// Resources with at least one error.
    pub non_compliant: u64,
    /// Resources no required tag applies to.
    pub not_applicable: u64,
    /// Resources under an active exemption.
    pub exempt: u64,
    /// compliant / (compliant + non_compliant), 0 to 1; null when no resource was judged.
    pub score: Option<f64>,
    /// Error-severity violations.
    pub errors: u64,
    /// Warning-severity violations.
    pub warnings: u64,
    /// Monthly cost of the non-compliant resources; null when the scan did not sum costs.
    pub non_compliant_cost: Option<CostSums>,
}

impl GroupRow {
    fn of(name: String, counts: &TypeCounts, cost: Option<CostSums>) -> GroupRow {
        let judged = counts.compliant + counts.non_compliant;
        GroupRow {
            name,
            total: counts.total,
            compliant: counts.compliant,
            non_compliant: counts.non_compliant,
            not_applicable: counts.not_applicable,
            exempt: counts.exempt,
            score: (judged > 0).then(|| counts.compliant as f64 / judged as f64),
            errors: counts.errors,
            warnings: counts.warnings,
            non_compliant_cost: cost,
        }
    }
}

/// Violations of one tag.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TagRow {
    /// The tag, as the policy spells it.
    pub tag: String,
    /// Resources missing it where it is required.
    pub missing: u64,
    /// Other errors on it (empty, invalid value or format).
    pub invalid: u64,
    /// Warnings on it.
    pub warnings: u64,
    /// Monthly cost of the resources missing it; null when the scan did not sum costs.
    pub missing_cost: Option<CostSums>,
    /// Monthly cost of the resources whose value is invalid; null likewise.
    pub invalid_cost: Option<CostSums>,
}

/// The resources of one type with one kind of violation on one tag.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ViolationGroup {
    /// `service:type`.
    pub resource_type: String,
    /// The tag.
    pub tag: String,
    /// What is wrong.
    pub violation_type: ViolationType,
    /// Error or warning.
    pub severity: Severity,
    /// Resources with it (each once).
    pub resources: u64,
    /// Their monthly cost (known costs summed; the unknown counted apart, never as 0).
    pub monthly_cost: CostSums,
}

/// A resource named in a report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReportResource {
    /// ARN.
    pub arn: String,
    /// `service:type`.
    pub resource_type: String,
    /// Account id.
    pub account_id: String,
    /// Region.
    pub region: String,
    /// Name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Monthly cost; null when unknown.
    pub monthly_cost: Option<Usd>,
    /// Where the cost comes from.
    pub cost_source: CostSource,
    /// Its errors, for worst offenders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u32>,
    /// Its warnings, for worst offenders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<u32>,
}

impl ReportResource {
    fn of(resource: &ResourceRef) -> ReportResource {
        ReportResource {
            arn: resource.arn.clone(),
            resource_type: resource.resource_type.to_string(),
            account_id: resource.account_id.to_string(),
            region: resource.region.to_string(),
            name: resource.name.clone(),
            monthly_cost: resource.monthly_cost,
            cost_source: resource.cost_source,
            errors: None,
            warnings: None,
        }
    }
}

/// One period of the score's history.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TrendPoint {
    /// The period (`2026-11-24`).
    pub period: String,
    /// When its last scan ran.
    pub at: DateTime<Utc>,
    /// Its last scan's score (0 to 1).
    pub score: f64,
    /// Its last scan's non-compliant resources.
    pub non_compliant: u64,
    /// Its last scan's resources.
    pub total: u64,
}

/// The score over time.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TrendSection {
    /// One point per period, oldest first; the last is this report's scan.
    pub points: Vec<TrendPoint>,
    /// `improving`, `declining` or `stable` (latest period against the earliest).
    pub trend: Trend,
    /// Score change from the first point to the last (0.05: five percentage points).
    pub score_change: f64,
    /// Days of history looked at.
    pub days_back: u32,
    /// What the history leaves out.
    pub notes: Vec<String>,
}

/// What kind of work a recommendation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationKind {
    /// Resources of one type miss a required tag.
    TagMissing,
    /// A tag is present with an empty value.
    FillEmpty,
    /// Values differ from allowed ones only in case.
    NormaliseValueCase,
    /// Keys differ from the policy's only in case.
    NormaliseKeyCase,
    /// Values fail the tag's pattern.
    FixFormat,
    /// Values are outside the allowed list.
    FixValues,
    /// Resources carry no tag at all.
    TagUntagged,
    /// One account holds most of the non-compliance.
    FocusAccount,
    /// The cost of non-compliant resources is not known.
    PriceUnknown,
    /// Exemptions have expired or cannot be read.
    RenewExemptions,
}

/// A concrete, checkable piece of work, derived from the violations.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Recommendation {
    /// What kind of work.
    pub kind: RecommendationKind,
    /// One sentence with the count and the spend.
    pub title: String,
    /// The evidence: values, examples, how to do it.
    pub detail: String,
    /// Resources it covers (each once).
    pub resources: u64,
    /// Their monthly cost (known costs summed; the unknown counted apart).
    pub monthly_cost: CostSums,
    /// The tag concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The resource type concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The account concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The costliest resources it covers, at most five.
    pub examples: Vec<ReportResource>,
}

/// Monthly cost of the scope.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct ReportCost {
    /// Every resource.
    pub total: CostSums,
    /// The non-compliant resources.
    pub non_compliant: CostSums,
}

/// The cost-attribution gap, or why it is not in the report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GapSection {
    /// The gap, when billing answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<AttributionGap>,
    /// Why there are no figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// The gap as the caller could get it.
pub enum GapInput {
    /// Billing answered.
    Figures(Box<AttributionGap>),
    /// It could not: why.
    Unavailable(String),
}

/// The whole report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    /// "Tag compliance report".
    pub title: String,
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// The scan behind it.
    pub scan: ReportScan,
    /// Score and counts.
    #[serde(flatten)]
    pub totals: ComplianceTotals,
    /// Monthly cost of the scope; null when the scan did not sum costs.
    pub cost: Option<ReportCost>,
    /// Per resource type, most non-compliant first.
    pub by_resource_type: Vec<GroupRow>,
    /// Per tag, most violations first.
    pub by_tag: Vec<TagRow>,
    /// Per account, most non-compliant first.
    pub by_account: Vec<GroupRow>,
    /// Per region, most non-compliant first.
    pub by_region: Vec<GroupRow>,
    /// (type, tag, violation) groups with the most resources.
    pub top_violations_by_count: Vec<ViolationGroup>,
    /// (type, tag, violation) groups with the highest known monthly cost.
    pub top_violations_by_cost: Vec<ViolationGroup>,
    /// The resources with the most errors (then the costliest).
    pub worst_offenders: Vec<ReportResource>,
    /// Resources an exemption names: active (not validated), expired or unreadable
    /// (validated), the soonest to expire first.
    pub exemptions: Vec<crate::domain::ExemptResource>,
    /// The score over time; null when the history could not be read.
    pub trend: Option<TrendSection>,
    /// The attribution gap from billing.
    pub cost_gap: GapSection,
    /// What to do first, costliest first; null when not asked for.
    pub recommendations: Option<Vec<Recommendation>>,
    /// Recommendations found beyond the ones listed.
    pub recommendations_not_listed: u64,
}

/// What to include.
#[derive(Debug, Clone, Copy)]
pub struct ReportOptions {
    /// Make recommendations.
    pub recommendations: bool,
}

/// The costliest resources of a group: at most [`EXAMPLES`], by known cost (unknown last),
/// then ARN, so the same data always names the same resources.
#[derive(Default)]
struct Examples(Vec<Arc<ResourceRef>>);

impl Examples {
    fn rank(r: &ResourceRef) -> (Reverse<i64>, &str) {
        (
            Reverse(r.monthly_cost.map_or(i64::MIN, Usd::micros)),
            &r.arn,
        )
    }

    fn offer(&mut self, resource: &Arc<ResourceRef>) {
        let at = self
            .0
            .partition_point(|kept| Self::rank(kept) < Self::rank(resource));
        if at < EXAMPLES {
            self.0.insert(at, resource.clone());
            self.0.truncate(EXAMPLES);
        }
    }

    fn rows(&self) -> Vec<ReportResource> {
        self.0.iter().map(|r| ReportResource::of(r)).collect()
    }
}

/// Resources of a group, counted once each, with their cost and examples.
#[derive(Default)]
struct Covered {
    resources: u64,
    cost: CostSums,
    examples: Examples,
}

impl Covered {
    fn add(&mut self, resource: &Arc<ResourceRef>) {
        self.resources += 1;
        self.cost.add(resource.monthly_cost, resource.cost_source);
        self.examples.offer(resource);
    }
}

/// What a failing value looks like, to say why it fails its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Shape {
    Email,
    UserName,
    Number,
    Words,
    Other,
}

impl Shape {
    fn of(value: &str) -> Shape {
        let value = value.trim();
        let at = value.matches('@').count();
        if at == 1 {
            let (local, domain) = value.split_once('@').unwrap_or_default();
            if !local.is_empty() && domain.contains('.') && !value.contains(char::is_whitespace) {
                return Shape::Email;
            }
        }
        if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
            return Shape::Number;
        }
        if value.contains(char::is_whitespace) {
            return Shape::Words;
        }
        let mut chars = value.chars();
        if chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && (2..=32).contains(&value.len())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Shape::UserName;
        }
        Shape::Other
    }

    fn plural(self) -> &'static str {
        match self {
            Shape::Email => "email addresses",
            Shape::UserName => "user names",
            Shape::Number => "numbers",
            Shape::Words => "free text with spaces",
            Shape::Other => "other text",
        }
    }

    /// What a pattern asks for, when it says so plainly.
    fn expected_by(pattern: &str) -> Option<Shape> {
        if pattern.contains('@') {
            Some(Shape::Email)
        } else if pattern
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .all(|c| c == 'd')
            && (pattern.contains("\\d") || pattern.contains("[0-9]"))
        {
            Some(Shape::Number)
        } else {
            None
        }
    }
}

/// Why values fail a pattern, most common first: `(reason, resources, up to three values)`.
/// A reason is a change that makes the value pass (surrounding spaces, case, separators),
/// tried with the pattern itself; else what the values look like.
fn format_reasons(
    pattern: &str,
    values: &[(&String, u64, Option<&String>)],
) -> Vec<(String, u64, Vec<String>)> {
    let regex = regex::Regex::new(pattern).ok();
    let passes = |candidate: &str| regex.as_ref().is_some_and(|r| r.is_match(candidate));
    let expected = Shape::expected_by(pattern);
    let mut reasons: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for (value, n, _) in values {
        let trimmed = value.trim();
        let lower = trimmed.to_lowercase();
        let dashed: String = lower
            .chars()
            .map(|c| if matches!(c, '_' | '.' | ' ') { '-' } else { c })
            .collect();
        let why = if trimmed != value.as_str() && passes(trimmed) {
            "have spaces around the value".to_string()
        } else if lower != trimmed && passes(&lower) {
            "would pass in lower case".to_string()
        } else if dashed != lower && passes(&dashed) {
            "would pass with '-' for '_', '.' or spaces".to_string()
        } else {
            let shape = Shape::of(value);
            match expected {
                Some(want) if want != shape => {
                    format!("look like {}, not {}", shape.plural(), want.plural())
                }
                Some(_) => format!("are {} but not of the form asked for", shape.plural()),
                None => format!("look like {}", shape.plural()),
            }
        };
        let entry = reasons.entry(why).or_default();
        entry.0 += n;
        if entry.1.len() < 3 {
            entry.1.push(quoted(value));
        }
    }
    let mut reasons: Vec<_> = reasons
        .into_iter()
        .map(|(why, (n, v))| (why, n, v))
        .collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    reasons
}

/// Values seen for one tag and one kind of failure.
#[derive(Default)]
struct ValueTally {
    covered: Covered,
    /// value (or key, for key case) → (resources, what it should be).
    values: BTreeMap<String, (u64, Option<String>)>,
    /// The pattern, for format failures; the allowed list, for invalid values.
    expected: Option<Expected>,
}

impl ValueTally {
    fn add(&mut self, resource: &Arc<ResourceRef>, value: &str, should: Option<&str>) {
        self.covered.add(resource);
        let entry = self
            .values
            .entry(value.to_string())
            .or_insert((0, should.map(str::to_string)));
        entry.0 += 1;
    }

    /// Values by resources, most first (then alphabetically).
    fn ranked(&self) -> Vec<(&String, u64, Option<&String>)> {
        let mut values: Vec<_> = self
            .values
            .iter()
            .map(|(v, (n, should))| (v, *n, should.as_ref()))
            .collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        values
    }
}

/// Everything one pass over the violations gathers.
#[derive(Default)]
struct Gathered {
    groups: HashMap<(ResourceType, Arc<str>, ViolationType), (Severity, Covered)>,
    value_case: BTreeMap<Arc<str>, ValueTally>,
    key_case: BTreeMap<Arc<str>, ValueTally>,
    format: BTreeMap<Arc<str>, ValueTally>,
    invalid: BTreeMap<Arc<str>, ValueTally>,
    untagged: Covered,
    untagged_by_type: BTreeMap<String, u64>,
    unknown_cost: Covered,
    unknown_cost_by_type: BTreeMap<String, u64>,
    non_compliant_by_account: BTreeMap<Arc<str>, Covered>,
}

impl Gathered {
    fn of(result: &ScanResult) -> Gathered {
        let mut gathered = Gathered::default();
        let mut violations = result.violations().peekable();
        // A resource's violations are consecutive and share one `ResourceRef`.
        let mut findings = Vec::new();
        while let Some(first) = violations.next() {
            let resource = first.resource.clone();
            findings.clear();
            findings.push(&first.finding);
            while let Some(next) = violations.peek() {
                if !Arc::ptr_eq(&next.resource, &resource) {
                    break;
                }
                findings.push(&violations.next().expect("peeked").finding);
            }
            gathered.observe(&resource, &findings);
        }
        gathered
    }

    fn observe(&mut self, resource: &Arc<ResourceRef>, findings: &[&crate::domain::Finding]) {
        let mut seen: Vec<(&str, ViolationType)> = Vec::with_capacity(findings.len());
        for finding in findings {
            let key = (&*finding.tag_name, finding.violation_type);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let (_, covered) = self
                .groups
                .entry((
                    resource.resource_type.clone(),
                    finding.tag_name.clone(),
                    finding.violation_type,
                ))
                .or_insert_with(|| (finding.severity, Covered::default()));
            covered.add(resource);
            let value = finding.current_value.as_deref().unwrap_or("");
            let tally = match finding.violation_type {
                ViolationType::ValueCaseMismatch => Some(&mut self.value_case),
                ViolationType::KeyCaseMismatch | ViolationType::KeyAlias => {
                    Some(&mut self.key_case)
                }
                ViolationType::InvalidFormat => Some(&mut self.format),
                ViolationType::InvalidValue => Some(&mut self.invalid),
                _ => None,
            };
            if let Some(by_tag) = tally {
                let tally = by_tag.entry(finding.tag_name.clone()).or_default();
                let should = match &finding.expected {
                    Expected::Canonical(canonical) => Some(canonical.to_string()),
                    Expected::AllowedValues(allowed) => {
                        crate::domain::text::closest(value, allowed.iter().map(String::as_str), 2)
                            .map(str::to_string)
                    }
                    _ => None,
                };
                tally.add(resource, value, should.as_deref());
                if tally.expected.is_none() {
                    tally.expected = Some(finding.expected.clone());
                }
            }
        }
        let errors = findings.iter().any(|f| f.severity == Severity::Error);
        if !errors {
            return;
        }
        if resource.tag_count == 0 {
            self.untagged.add(resource);
            *self
                .untagged_by_type
                .entry(resource.resource_type.to_string())
                .or_default() += 1;
        }
        if resource.monthly_cost.is_none() {
            self.unknown_cost.add(resource);
            *self
                .unknown_cost_by_type
                .entry(resource.resource_type.to_string())
                .or_default() += 1;
        }
        self.non_compliant_by_account
            .entry(resource.account_id.clone())
            .or_default()
            .add(resource);
    }
}

/// A spend as a phrase: `$12,400.00/month`, with what is not known said apart.
pub fn spend(cost: &CostSums) -> String {
    match (cost.known, cost.unknown) {
        (0, 0) => "$0.00/month".to_string(),
        (0, _) => "monthly cost unknown".to_string(),
        (_, 0) => format!("{}/month", cost.monthly_cost.display()),
        (_, unknown) => format!(
            "{}/month, plus {} of unknown cost",
            cost.monthly_cost.display(),
            resources_phrase(unknown)
        ),
    }
}

fn resources_phrase(n: u64) -> String {
    if n == 1 {
        "1 resource".to_string()
    } else {
        format!("{} resources", super::thousands(n))
    }
}

/// `'a' (30), 'b' (12) and 3 more`.
fn listed(items: &[String], total: usize) -> String {
    let mut text = items.join(", ");
    if total > items.len() {
        text.push_str(&format!(" and {} more", total - items.len()));
    }
    text
}

fn quoted(text: &str) -> String {
    format!("'{}'", crate::domain::text::show(text))
}

fn example_names(examples: &Examples) -> String {
    examples
        .0
        .iter()
        .map(|r| {
            let name = r.name.as_deref().unwrap_or(&r.id);
            match r.monthly_cost {
                Some(cost) => format!("{} ({})", crate::domain::text::show(name), cost.display()),
                None => crate::domain::text::show(name).into_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn recommendation(
    kind: RecommendationKind,
    title: String,
    detail: String,
    covered: &Covered,
) -> Recommendation {
    Recommendation {
        kind,
        title,
        detail,
        resources: covered.resources,
        monthly_cost: covered.cost,
        tag: None,
        resource_type: None,
        account_id: None,
        examples: covered.examples.rows(),
    }
}

impl Gathered {
    fn recommendations(&self, result: &ScanResult) -> Vec<Recommendation> {
        let mut out = Vec::new();
        // Missing and empty tags, per type: the work is one tagging job per (type, tag).
        let mut groups: Vec<_> = self.groups.iter().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        for ((resource_type, tag, kind), (severity, covered)) in groups {
            let (kind, verb) = match (kind, severity) {
                (ViolationType::MissingRequiredTag, _) => {
                    (RecommendationKind::TagMissing, "missing")
                }
                (ViolationType::EmptyValue, _) => (RecommendationKind::FillEmpty, "with an empty"),
                _ => continue,
            };
            let these = format!(
                "{} {resource_type} resource{}",
                super::thousands(covered.resources),
                if covered.resources == 1 { "" } else { "s" }
            );
            let what = match kind {
                RecommendationKind::TagMissing => format!("Tag {these} {verb} {tag}"),
                _ => format!("Fill in {tag} on {these} {verb} value"),
            };
            let mut r = recommendation(
                kind,
                format!("{what} ({})", spend(&covered.cost)),
                format!(
                    "costliest first: {}. tagguard fix --plan proposes values where suggestions are confident.",
                    example_names(&covered.examples)
                ),
                covered,
            );
            r.tag = Some(tag.to_string());
            r.resource_type = Some(resource_type.to_string());
            out.push(r);
        }
        for (tag, tally) in &self.value_case {
            let values = tally.ranked();
            // A pattern that passes ignoring case: the case it passes in is the fix.
            let pattern = match &tally.expected {
                Some(Expected::Pattern(p)) => regex::Regex::new(p).ok(),
                _ => None,
            };
            let recased = |v: &str| -> String {
                let passes = |c: &str| pattern.as_ref().is_some_and(|r| r.is_match(c));
                let (lower, upper) = (v.to_lowercase(), v.to_uppercase());
                if passes(&lower) {
                    quoted(&lower)
                } else if passes(&upper) {
                    quoted(&upper)
                } else {
                    "another case".to_string()
                }
            };
            let shown: Vec<String> = values
                .iter()
                .take(5)
                .map(|(v, n, should)| match should {
                    Some(s) => format!("{} → {} ({n})", quoted(v), quoted(s)),
                    None => format!("{} → {} ({n})", quoted(v), recased(v)),
                })
                .collect();
            let mut r = recommendation(
                RecommendationKind::NormaliseValueCase,
                format!(
                    "Normalise the case of {} {tag} value{} on {} ({})",
                    values.len(),
                    if values.len() == 1 { "" } else { "s" },
                    resources_phrase(tally.covered.resources),
                    spend(&tally.covered.cost)
                ),
                format!("{}.", listed(&shown, values.len())),
                &tally.covered,
            );
            r.tag = Some(tag.to_string());
            out.push(r);
        }
        for (tag, tally) in &self.key_case {
            let keys = tally.ranked();
            let shown: Vec<String> = keys
                .iter()
                .take(5)
                .map(|(k, n, _)| format!("{} ({n})", quoted(k)))
                .collect();
            let mut r = recommendation(
                RecommendationKind::NormaliseKeyCase,
                format!(
                    "Respell the key {tag} on {} that spell it otherwise ({})",
                    resources_phrase(tally.covered.resources),
                    spend(&tally.covered.cost)
                ),
                format!(
                    "keys found: {}; billing and AWS tag policies match keys exactly, so they see these as other tags.",
                    listed(&shown, keys.len())
                ),
                &tally.covered,
            );
            r.tag = Some(tag.to_string());
            out.push(r);
        }
        for (tag, tally) in &self.format {
            let pattern = match &tally.expected {
                Some(Expected::Pattern(p)) => p.to_string(),
                _ => String::new(),
            };
            let reasons = format_reasons(&pattern, &tally.ranked());
            let values_total: u64 = tally.values.values().map(|(n, _)| n).sum();
            let (lead, lead_count, _) = &reasons[0];
            let share = if *lead_count == values_total {
                "all of them".to_string()
            } else {
                format!("{lead_count} of them")
            };
            let shown: Vec<String> = reasons
                .iter()
                .map(|(why, n, samples)| format!("{n} {why} (e.g. {})", samples.join(", ")))
                .collect();
            let mut r = recommendation(
                RecommendationKind::FixFormat,
                format!(
                    "{tag} fails its pattern on {} ({}): {share} {lead}",
                    resources_phrase(tally.covered.resources),
                    spend(&tally.covered.cost)
                ),
                format!("the pattern is {}; {}.", quoted(&pattern), shown.join("; ")),
                &tally.covered,
            );
            r.tag = Some(tag.to_string());
            out.push(r);
        }
        for (tag, tally) in &self.invalid {
            let values = tally.ranked();
            let shown: Vec<String> = values
                .iter()
                .take(5)
                .map(|(v, n, closest)| match closest {
                    Some(c) => format!("{} ({n}, probably {})", quoted(v), quoted(c)),
                    None => format!("{} ({n})", quoted(v)),
                })
                .collect();
            let allowed = match &tally.expected {
                Some(Expected::AllowedValues(allowed)) => allowed.join(", "),
                _ => String::new(),
            };
            let mut r = recommendation(
                RecommendationKind::FixValues,
                format!(
                    "Replace {} {tag} value{} outside the allowed list on {} ({})",
                    values.len(),
                    if values.len() == 1 { "" } else { "s" },
                    resources_phrase(tally.covered.resources),
                    spend(&tally.covered.cost)
                ),
                format!(
                    "values found: {}; allowed: {allowed}.",
                    listed(&shown, values.len())
                ),
                &tally.covered,
            );
            r.tag = Some(tag.to_string());
            out.push(r);
        }
        if self.untagged.resources > 0 {
            let mut by_type: Vec<_> = self.untagged_by_type.iter().collect();
            by_type.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let shown: Vec<String> = by_type
                .iter()
                .take(5)
                .map(|(t, n)| format!("{t} ({n})"))
                .collect();
            out.push(recommendation(
                RecommendationKind::TagUntagged,
                format!(
                    "{} carry no tag at all ({}): tag them where they are created",
                    resources_phrase(self.untagged.resources),
                    spend(&self.untagged.cost)
                ),
                format!(
                    "by type: {}; default tags in the IaC provider or a tag policy's enforcement stop new ones. Costliest: {}.",
                    listed(&shown, by_type.len()),
                    example_names(&self.untagged.examples)
                ),
                &self.untagged,
            ));
        }
        if let Some(r) = self.focus_account(result) {
            out.push(r);
        }
        if let Some(r) = lapsed_exemptions(result) {
            out.push(r);
        }
        // Only where some costs are known: with none (a file source), every figure already
        // says unknown, and no billing setting would change it.
        let some_known = result
            .tally
            .cost
            .as_ref()
            .is_some_and(|c| c.total().known > 0);
        if self.unknown_cost.resources > 0 && some_known {
            let mut by_type: Vec<_> = self.unknown_cost_by_type.iter().collect();
            by_type.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let shown: Vec<String> = by_type
                .iter()
                .take(5)
                .map(|(t, n)| format!("{t} ({n})"))
                .collect();
            out.push(recommendation(
                RecommendationKind::PriceUnknown,
                format!(
                    "The monthly cost of {} non-compliant resources is unknown",
                    super::thousands(self.unknown_cost.resources)
                ),
                format!(
                    "by type: {}; resource-level data in Cost Explorer (daily, 14 days) prices them as actual; until then the spend above leaves them out.",
                    listed(&shown, by_type.len())
                ),
                &self.unknown_cost,
            ));
        }
        out.sort_by(by_spend);
        out
    }
}

impl Gathered {
    /// The account whose score lags the rest of the estate by ten points or more while it
    /// holds a fifth or more of the non-compliant resources: the owners to talk to first.
    fn focus_account(&self, result: &ScanResult) -> Option<Recommendation> {
        let by_account = &result.tally.by_account;
        if by_account.len() < 2 {
            return None;
        }
        let all = &result.totals;
        let mut best: Option<(f64, &Arc<str>, f64, f64)> = None;
        for (account, counts) in by_account {
            let judged = counts.compliant + counts.non_compliant;
            let rest_compliant = all.compliant_resources - counts.compliant;
            let rest_judged = all.compliant_resources + all.non_compliant_resources - judged;
            if judged == 0 || rest_judged == 0 || all.non_compliant_resources == 0 {
                continue;
            }
            let score = counts.compliant as f64 / judged as f64;
            let rest = rest_compliant as f64 / rest_judged as f64;
            let share = counts.non_compliant as f64 / all.non_compliant_resources as f64;
            if rest - score >= 0.10 && share >= 0.20 && best.is_none_or(|b| rest - score > b.0) {
                best = Some((rest - score, account, score, rest));
            }
        }
        let (_, account, score, rest) = best?;
        let covered = self.non_compliant_by_account.get(account)?;
        let mut r = recommendation(
            RecommendationKind::FocusAccount,
            format!(
                "Start with account {account}: its score is {} against {} in the other accounts; {} of the {} non-compliant resources ({})",
                super::percent(score),
                super::percent(rest),
                super::thousands(covered.resources),
                super::thousands(all.non_compliant_resources),
                spend(&covered.cost)
            ),
            format!(
                "its costliest non-compliant resources: {}.",
                example_names(&covered.examples)
            ),
            covered,
        );
        r.account_id = Some(account.to_string());
        Some(r)
    }
}

/// Exemptions that no longer hold (expired, or an exemption tag that cannot be read): their
/// resources are validated again, and someone must renew or end them.
fn lapsed_exemptions(result: &ScanResult) -> Option<Recommendation> {
    use crate::domain::ExemptionStatus;
    let lapsed: Vec<&crate::domain::ExemptResource> = result
        .tally
        .exemptions
        .values()
        .filter(|e| e.status != ExemptionStatus::Active)
        .collect();
    if lapsed.is_empty() {
        return None;
    }
    let mut cost = CostSums::default();
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &lapsed {
        cost.add(e.monthly_cost, e.cost_source);
        *by.entry(e.exempted_by.as_str()).or_default() += 1;
    }
    let shown: Vec<String> = by
        .iter()
        .take(5)
        .map(|(k, n)| format!("{} ({n})", crate::domain::text::show(k)))
        .collect();
    let mut examples: Vec<&crate::domain::ExemptResource> = lapsed.clone();
    examples.sort_by(|a, b| {
        b.monthly_cost
            .cmp(&a.monthly_cost)
            .then(a.resource_arn.cmp(&b.resource_arn))
    });
    Some(Recommendation {
        kind: RecommendationKind::RenewExemptions,
        title: format!(
            "Renew or end the exemptions of {} that no longer hold ({})",
            resources_phrase(lapsed.len() as u64),
            spend(&cost)
        ),
        detail: format!(
            "expired or unreadable: {}; their resources are validated again until the exemption is renewed.",
            listed(&shown, by.len())
        ),
        resources: lapsed.len() as u64,
        monthly_cost: cost,
        tag: None,
        resource_type: None,
        account_id: None,
        examples: examples
            .iter()
            .take(EXAMPLES)
            .map(|e| ReportResource {
                arn: e.resource_arn.clone(),
                resource_type: e.resource_type.to_string(),
                account_id: e.account_id.clone(),
                region: e.region.clone(),
                name: e.resource_name.clone(),
                monthly_cost: e.monthly_cost,
                cost_source: e.cost_source,
                errors: None,
                warnings: None,
            })
            .collect(),
    })
}

/// The recommendations to list: the costliest of each kind first (so that cheap but
/// different work is not crowded out by many of one kind), then the costliest of the rest,
/// at most `max`, in order of spend. Returns them and how many were left out.
pub fn select(mut all: Vec<Recommendation>, max: usize) -> (Vec<Recommendation>, u64) {
    let total = all.len();
    let mut chosen = Vec::with_capacity(max.min(total));
    let mut kinds_seen = Vec::new();
    let mut i = 0;
    while i < all.len() && chosen.len() < max {
        if kinds_seen.contains(&all[i].kind) {
            i += 1;
        } else {
            kinds_seen.push(all[i].kind);
            chosen.push(all.remove(i));
        }
    }
    let room = max - chosen.len();
    chosen.extend(all.drain(..room.min(all.len())));
    chosen.sort_by(by_spend);
    let left = (total - chosen.len()) as u64;
    (chosen, left)
}

/// The costliest work first; then the most resources; then a fixed order.
fn by_spend(a: &Recommendation, b: &Recommendation) -> std::cmp::Ordering {
    b.monthly_cost
        .monthly_cost
        .cmp(&a.monthly_cost.monthly_cost)
        .then(b.resources.cmp(&a.resources))
        .then(a.kind.cmp(&b.kind))
        .then(a.title.cmp(&b.title))
}

fn by_name<K: ToString>(
    counts: &BTreeMap<K, TypeCounts>,
    cost: impl Fn(&K) -> Option<CostSums>,
) -> Vec<GroupRow> {
    let mut rows: Vec<GroupRow> = counts
        .iter()
        .map(|(k, c)| GroupRow::of(k.to_string(), c, cost(k)))
        .collect();
    rows.sort_by(|a, b| {
        b.non_compliant
            .cmp(&a.non_compliant)
            .then(a.name.cmp(&b.name))
    });
    rows
}

impl Report {
    /// The report of `result`, with its scope's `history` (when it could be read) and the gap.
    pub fn build(
        result: &ScanResult,
        history: Option<&HistoryReport>,
        gap: GapInput,
        options: ReportOptions,
        now: DateTime<Utc>,
    ) -> Report {
        let tally = &result.tally;
        let costs = tally.cost.as_ref();
        let by_resource_type = by_name(&tally.by_resource_type, |t| {
            costs.map(|c| {
                c.by_resource_type
                    .get(t)
                    .copied()
                    .unwrap_or_default()
                    .non_compliant
            })
        });
        let by_account = by_name(&tally.by_account, |a| {
            costs.map(|c| {
                c.by_account
                    .get(a)
                    .copied()
                    .unwrap_or_default()
                    .non_compliant
            })
        });
        let by_region = by_name(&tally.by_region, |r| {
            costs.map(|c| {
                c.by_region
                    .get(r)
                    .copied()
                    .unwrap_or_default()
                    .non_compliant
            })
        });
        let mut by_tag: Vec<TagRow> = tally
            .by_tag
            .iter()
            .map(|(tag, counts)| {
                let sums = costs.map(|c| c.by_tag.get(tag).copied().unwrap_or_default());
                TagRow {
                    tag: tag.to_string(),
                    missing: counts.missing,
                    invalid: counts.invalid,
                    warnings: counts.warnings,
                    missing_cost: sums.map(|s| s.missing),
                    invalid_cost: sums.map(|s| s.invalid),
                }
            })
            .collect();
        by_tag.sort_by(|a, b| {
            (b.missing + b.invalid + b.warnings)
                .cmp(&(a.missing + a.invalid + a.warnings))
                .then(a.tag.cmp(&b.tag))
        });
        let gathered = Gathered::of(result);
        let mut groups: Vec<ViolationGroup> = gathered
            .groups
            .iter()
            .map(|((t, tag, kind), (severity, covered))| ViolationGroup {
                resource_type: t.to_string(),
                tag: tag.to_string(),
                violation_type: *kind,
                severity: *severity,
                resources: covered.resources,
                monthly_cost: covered.cost,
            })
            .collect();
        let fixed = |a: &ViolationGroup, b: &ViolationGroup| {
            (&a.resource_type, &a.tag, a.violation_type).cmp(&(
                &b.resource_type,
                &b.tag,
                b.violation_type,
            ))
        };
        groups.sort_by(|a, b| b.resources.cmp(&a.resources).then(fixed(a, b)));
        let top_violations_by_count = groups.iter().take(RANKED_ROWS).cloned().collect();
        groups.retain(|g| g.monthly_cost.known > 0);
        groups.sort_by(|a, b| {
            b.monthly_cost
                .monthly_cost
                .cmp(&a.monthly_cost.monthly_cost)
                .then(fixed(a, b))
        });
        groups.truncate(RANKED_ROWS);
        let worst_offenders = tally
            .worst_offenders
            .as_slice()
            .iter()
            .map(|o| ReportResource {
                errors: Some(o.errors),
                warnings: Some(o.warnings),
                ..ReportResource::of(&o.resource)
            })
            .collect();
        let (recommendations, recommendations_not_listed) = if options.recommendations {
            let (listed, rest) = select(gathered.recommendations(result), MAX_RECOMMENDATIONS);
            (Some(listed), rest)
        } else {
            (None, 0)
        };
        let cost_gap = match gap {
            GapInput::Figures(figures) => GapSection {
                figures: Some(*figures),
                unavailable: None,
            },
            GapInput::Unavailable(reason) => GapSection {
                figures: None,
                unavailable: Some(reason),
            },
        };
        let mut exemptions: Vec<crate::domain::ExemptResource> =
            tally.exemptions.values().cloned().collect();
        exemptions.sort_by(|a, b| {
            (a.status, a.expires, &a.resource_arn).cmp(&(b.status, b.expires, &b.resource_arn))
        });
        Report {
            title: "Tag compliance report".to_string(),
            generated_at: now,
            scan: ReportScan {
                scan_id: result.meta.scan_id.to_string(),
                scanned_at: result.meta.scan_timestamp,
                source: result.meta.source.clone(),
                policy_version: result.meta.policy_version.clone(),
                scope: result.meta.scope.clone(),
                duration_ms: result.meta.duration_ms,
                partial: result.partial,
                issues: tally.issues.clone(),
                notes: result.meta.notes.clone(),
            },
            totals: result.totals,
            cost: costs.map(|c| ReportCost {
                total: c.total(),
                non_compliant: c.non_compliant(),
            }),
            by_resource_type,
            by_tag,
            by_account,
            by_region,
            top_violations_by_count,
            top_violations_by_cost: groups,
            worst_offenders,
            exemptions,
            trend: history.map(|h| trend(h, result)),
            cost_gap,
            recommendations,
            recommendations_not_listed,
        }
    }

    /// A few lines for a tool result or a terminal: the score, the cost and the first
    /// recommendations.
    pub fn summary(&self) -> String {
        let mut lines = vec![format!(
            "Compliance {} ({} of {} judged resources compliant; {} non-compliant{}).",
            super::percent(self.totals.compliance_score),
            super::thousands(self.totals.compliant_resources),
            super::thousands(self.totals.compliant_resources + self.totals.non_compliant_resources),
            super::thousands(self.totals.non_compliant_resources),
            match &self.cost {
                Some(cost) => format!(", {}", spend(&cost.non_compliant)),
                None => String::new(),
            }
        )];
        if let Some(figures) = &self.cost_gap.figures {
            lines.push(format!(
                "Attribution gap {} to {}: {} of {} ({}).",
                figures.period_start,
                figures.period_end,
                figures.gap.map_or("unknown".to_string(), |g| g.display()),
                figures.total_spend.display(),
                figures
                    .gap_percent
                    .map_or("unknown".to_string(), |p| format!("{p:.1}%"))
            ));
        }
        if self.scan.partial {
            lines.push(format!(
                "Partial: {} part(s) of the estate could not be read.",
                self.scan.issues.len()
            ));
        }
        for r in self.recommendations.iter().flatten().take(3) {
            lines.push(format!("- {}", r.title));
        }
        lines.join("\n")
    }
}

/// The history's points, with this report's scan as the last (it may not be recorded yet).
fn trend(history: &HistoryReport, result: &ScanResult) -> TrendSection {
    let mut points: Vec<TrendPoint> = history
        .history
        .iter()
        .map(|p| TrendPoint {
            period: p.period.clone(),
            at: p.last_scan_at,
            score: p.totals.compliance_score,
            non_compliant: p.totals.non_compliant_resources,
            total: p.totals.total_resources,
        })
        .collect();
    let now = TrendPoint {
        period: crate::store::history::period_of(result.meta.scan_timestamp, history.group_by),
        at: result.meta.scan_timestamp,
        score: result.totals.compliance_score,
        non_compliant: result.totals.non_compliant_resources,
        total: result.totals.total_resources,
    };
    match points.last_mut() {
        Some(last) if last.period == now.period => {
            if last.at <= now.at {
                *last = now;
            }
        }
        _ => points.push(now),
    }
    let change = match (points.first(), points.last()) {
        (Some(first), Some(last)) => last.score - first.score,
        _ => 0.0,
    };
    TrendSection {
        trend: if change > 0.005 {
            Trend::Improving
        } else if change < -0.005 {
            Trend::Declining
        } else {
            Trend::Stable
        },
        score_change: change,
        points,
        days_back: history.days_back,
        notes: history.notes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_values() {
        assert_eq!(Shape::of("jsmith"), Shape::UserName);
        assert_eq!(Shape::of("j.smith_2"), Shape::UserName);
        assert_eq!(Shape::of("a@example.com"), Shape::Email);
        assert_eq!(Shape::of("4521"), Shape::Number);
        assert_eq!(Shape::of("John Smith"), Shape::Words);
        assert_eq!(Shape::of("@@"), Shape::Other);
        assert_eq!(
            Shape::expected_by(r"^[a-z.]+@example\.com$"),
            Some(Shape::Email)
        );
        assert_eq!(Shape::expected_by(r"^\d{4}$"), Some(Shape::Number));
        assert_eq!(Shape::expected_by(r"^[A-Z]{2}-\d+$"), None);
    }

    #[test]
    fn spend_never_shows_unknown_as_zero() {
        let mut sums = CostSums::default();
        sums.add(None, CostSource::Unknown);
        assert_eq!(spend(&sums), "monthly cost unknown");
        sums.add(Some(Usd::from_dollars(12.5).unwrap()), CostSource::Actual);
        assert_eq!(
            spend(&sums),
            "$12.50/month, plus 1 resource of unknown cost"
        );
    }
}
