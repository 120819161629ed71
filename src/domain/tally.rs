//! The tally: everything a scan counts and keeps, built by observing every resource once
//! ([`Tally::observe`], compliant ones included) and combined by one associative,
//! order-independent [`Tally::merge`]: batch → shard → scan → the results of several
//! processes. Optional analyses (cost sums, tag statistics for suggestions) ride on the same
//! pass when a request asks for them, so a feature that needs something from every resource
//! adds an analysis here, not a second pass.
//!
//! Pure data: no I/O, no async. Merging is associative and commutative because every part is
//! a sum, a set union, a top-K under a strict total order, or runs of violations keyed by
//! their place in the source (shard, page), which distinct batches never share.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::result::Interner;
use super::{
    ComplianceTotals, CostSource, Finding, Resource, ResourceRef, ResourceType, ScanIssue,
    Severity, SeverityFilter, Usd, Violation, ViolationRecord, ViolationType, find_tag,
    keys_are_ascii,
};

/// How many worst offenders a tally keeps.
pub const OFFENDERS_KEPT: usize = 10;

/// Counts for one resource type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TypeCounts {
    /// Resources of this type in scope.
    pub total: u64,
    /// Resources some required tag applies to, with no error-severity violation.
    pub compliant: u64,
    /// Resources with at least one error.
    pub non_compliant: u64,
    /// Resources no required tag of the policy applies to: neither compliant nor not, and not
    /// in the score.
    #[serde(default)]
    pub not_applicable: u64,
    /// Resources under an active exemption of the policy: not validated, not in the score,
    /// and listed with the exemption (never dropped).
    #[serde(default)]
    pub exempt: u64,
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
        self.not_applicable += other.not_applicable;
        self.exempt += other.exempt;
        self.errors += other.errors;
        self.warnings += other.warnings;
    }

    /// Counts one resource with `errors` errors and `warnings` warnings; `applicable`: some
    /// required tag applies to it.
    fn count(&mut self, applicable: bool, errors: u32, warnings: u32) {
        self.total += 1;
        self.errors += u64::from(errors);
        self.warnings += u64::from(warnings);
        if errors > 0 {
            self.non_compliant += 1;
        } else if applicable {
            self.compliant += 1;
        } else {
            self.not_applicable += 1;
        }
    }

    /// Counts one exempt resource.
    fn count_exempt(&mut self) {
        self.total += 1;
        self.exempt += 1;
    }

    /// Compliant resources / resources some rule applies to (1.0 when there are none).
    pub fn score(&self) -> f64 {
        super::ScanResult::score(self.compliant, self.compliant + self.non_compliant)
    }
}

/// Violation counts for one tag, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TagCounts {
    /// Resources missing the tag where it is required.
    pub missing: u64,
    /// Errors on the tag other than missing (empty, invalid value or format).
    pub invalid: u64,
    /// Warnings on the tag (case differences, bad optional values, naming rules).
    pub warnings: u64,
}

impl TagCounts {
    /// Adds another count into this one.
    pub fn merge(&mut self, other: &TagCounts) {
        self.missing += other.missing;
        self.invalid += other.invalid;
        self.warnings += other.warnings;
    }

    fn count(&mut self, finding: &Finding) {
        match (finding.violation_type, finding.severity) {
            (ViolationType::MissingRequiredTag, _) => self.missing += 1,
            (_, Severity::Error) => self.invalid += 1,
            (_, Severity::Warning) => self.warnings += 1,
        }
    }
}

/// A resource with errors, for the worst offenders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Offender {
    /// The resource.
    pub resource: Arc<ResourceRef>,
    /// Its error count.
    pub errors: u32,
    /// Its warning count.
    pub warnings: u32,
}

impl Offender {
    /// Most errors first, then the highest known monthly cost (what a FinOps team fixes
    /// first; unknown last), then most warnings, then ARN: a strict total order, so the top K
    /// of any merge order is the same.
    fn rank(&self) -> (Reverse<u32>, Reverse<i64>, Reverse<u32>, &str) {
        let cost = self.resource.monthly_cost.map_or(i64::MIN, Usd::micros);
        (
            Reverse(self.errors),
            Reverse(cost),
            Reverse(self.warnings),
            &self.resource.arn,
        )
    }
}

/// The [`OFFENDERS_KEPT`] worst offenders, best-ranked first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Offenders(Vec<Offender>);

impl Offenders {
    /// Offers an offender; it is kept if it ranks among the worst.
    pub fn push(&mut self, offender: Offender) {
        if self.0.len() == OFFENDERS_KEPT {
            if offender.rank() >= self.0[OFFENDERS_KEPT - 1].rank() {
                return;
            }
            self.0.pop();
        }
        let at = self.0.partition_point(|o| o.rank() < offender.rank());
        self.0.insert(at, offender);
    }

    /// Keeps the worst of both.
    pub fn merge(&mut self, other: Offenders) {
        for offender in other.0 {
            self.push(offender);
        }
    }

    /// The offenders, worst first.
    pub fn as_slice(&self) -> &[Offender] {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a run of violations sits in source order: the shard that read it (by its id,
/// `account/region/service`) and the page within the shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunKey {
    /// The shard's id.
    pub shard: Arc<str>,
    /// The page number within the shard, from 0.
    pub page: u64,
}

/// One run in the serialised index of [`ViolationRuns`]: its key and how many violations of
/// the flat list it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunEntry {
    shard: Arc<str>,
    page: u64,
    count: usize,
}

/// Violations in source order: runs keyed by (shard, page), each in page order. Merging runs
/// of distinct keys keeps them in key order whatever the order of the merges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViolationRuns {
    runs: BTreeMap<RunKey, Vec<Violation>>,
    len: usize,
}

impl ViolationRuns {
    /// Appends a violation to the run at `at`.
    pub fn push(&mut self, at: &RunKey, violation: Violation) {
        self.len += 1;
        // Batches are one run: the last key is the one written to.
        if let Some(mut last) = self.runs.last_entry()
            && last.key() == at
        {
            last.get_mut().push(violation);
            return;
        }
        self.runs.entry(at.clone()).or_default().push(violation);
    }

    /// Adds the runs of `other`. A key both hold (which distinct batches never do) gets
    /// `other`'s violations after this one's.
    pub fn merge(&mut self, other: ViolationRuns) {
        if self.runs.is_empty() {
            *self = other;
            return;
        }
        self.len += other.len;
        for (key, mut violations) in other.runs {
            match self.runs.entry(key) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(violations);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    slot.get_mut().append(&mut violations);
                }
            }
        }
    }

    /// Every violation, in source order.
    pub fn iter(&self) -> impl Iterator<Item = &Violation> + '_ {
        self.runs.values().flatten()
    }

    /// How many violations there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the violations `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&Violation) -> bool) {
        for run in self.runs.values_mut() {
            run.retain(&mut keep);
        }
        self.runs.retain(|_, run| !run.is_empty());
        self.len = self.runs.values().map(Vec::len).sum();
    }

    fn index(&self) -> Vec<RunEntry> {
        self.runs
            .iter()
            .map(|(key, run)| RunEntry {
                shard: key.shard.clone(),
                page: key.page,
                count: run.len(),
            })
            .collect()
    }

    /// Rebuilds the runs from the flat list and its index.
    fn from_flat(violations: Vec<Violation>, index: Vec<RunEntry>) -> Result<Self, String> {
        let total: usize = index.iter().map(|e| e.count).sum();
        if total != violations.len() {
            return Err(format!(
                "violation_runs counts {total} violations, but the list has {}",
                violations.len()
            ));
        }
        let mut runs = BTreeMap::new();
        let len = violations.len();
        let mut rest = violations.into_iter();
        for entry in index {
            let run: Vec<Violation> = rest.by_ref().take(entry.count).collect();
            let key = RunKey {
                shard: entry.shard,
                page: entry.page,
            };
            if runs.insert(key.clone(), run).is_some() {
                return Err(format!(
                    "violation_runs names shard '{}' page {} twice",
                    key.shard, key.page
                ));
            }
        }
        Ok(ViolationRuns { runs, len })
    }
}

/// Which optional analyses a tally makes, and how it lists violations. Not part of the
/// tally's data: every tally of one scan is built with the same options.
#[derive(Debug, Clone, Default)]
pub struct TallyOptions {
    /// Which violations are listed (counts always cover all).
    pub severity: SeverityFilter,
    /// Keep the ARN of every resource seen (for lookups of given ARNs).
    pub match_arns: bool,
    /// Sum monthly costs per type and per tag.
    pub cost: bool,
    /// Count tag values per group of related resources (for suggestions).
    pub tag_stats: Option<Arc<TagStatsSpec>>,
    /// Keep every resource seen, whole: for lookups of given ARNs and for evaluations of
    /// suggestions, never for scans of a whole estate (it holds the estate in memory).
    pub keep_resources: bool,
}

/// Everything a scan counts and keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Counts per resource type.
    pub by_resource_type: BTreeMap<ResourceType, TypeCounts>,
    /// Violation counts per tag.
    pub by_tag: BTreeMap<Arc<str>, TagCounts>,
    /// Counts per account.
    pub by_account: BTreeMap<Arc<str>, TypeCounts>,
    /// Counts per region (`global` for resources of no region).
    pub by_region: BTreeMap<Arc<str>, TypeCounts>,
    /// The resources with the most errors.
    pub worst_offenders: Offenders,
    /// Violations the severity filter admits, in source order.
    pub violations: ViolationRuns,
    /// Parts of the estate that could not be read (sorted, so merges agree).
    pub issues: Vec<ScanIssue>,
    /// Resources an exemption of the policy names, by ARN: active ones (not validated) and
    /// expired or malformed ones (validated as any other).
    pub exemptions: BTreeMap<String, ExemptResource>,
    /// With [`TallyOptions::match_arns`]: the ARN of every resource seen.
    pub matched_arns: BTreeSet<String>,
    /// With [`TallyOptions::cost`]: monthly cost sums.
    pub cost: Option<CostTally>,
    /// With [`TallyOptions::tag_stats`]: tag values per group of resources.
    pub tag_stats: Option<TagStats>,
    /// With [`TallyOptions::keep_resources`]: every resource seen, sorted by ARN. Not
    /// serialised: a kept resource answers the question that asked for it and no other.
    pub resources: Vec<Resource>,
}

impl Tally {
    /// An empty tally making the analyses `options` asks for.
    pub fn new(options: &TallyOptions) -> Tally {
        Tally {
            cost: options.cost.then(CostTally::default),
            tag_stats: options.tag_stats.as_ref().map(|_| TagStats::default()),
            ..Tally::default()
        }
    }

    /// Counts one resource and its findings (as the policy returned them), and keeps its
    /// violations at `at`; `applicable`: some required tag of the policy applies to the
    /// resource's type. Drains `findings`, so one buffer serves a whole batch; the resource's
    /// identity is kept (shared by its violations) only when it has some.
    pub fn observe(
        &mut self,
        options: &TallyOptions,
        at: &RunKey,
        resource: Resource,
        applicable: bool,
        findings: &mut Vec<Finding>,
    ) {
        let errors = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count() as u32;
        let warnings = findings.len() as u32 - errors;
        match self.by_resource_type.get_mut(&resource.resource_type) {
            Some(counts) => counts.count(applicable, errors, warnings),
            None => {
                let mut counts = TypeCounts::default();
                counts.count(applicable, errors, warnings);
                self.by_resource_type
                    .insert(resource.resource_type.clone(), counts);
            }
        }
        for (place, by_place) in [
            (&resource.account_id, &mut self.by_account),
            (&resource.region, &mut self.by_region),
        ] {
            match by_place.get_mut(place) {
                Some(counts) => counts.count(applicable, errors, warnings),
                None => by_place
                    .entry(place.clone())
                    .or_default()
                    .count(applicable, errors, warnings),
            }
        }
        if let Some(cost) = &mut self.cost {
            cost.observe(&resource, errors > 0, findings);
        }
        if let (Some(stats), Some(spec)) = (&mut self.tag_stats, &options.tag_stats) {
            stats.observe(spec, &resource, findings);
        }
        if options.match_arns {
            self.matched_arns.insert(resource.arn.clone());
        }
        if options.keep_resources {
            let at = self
                .resources
                .partition_point(|kept| kept.arn < resource.arn);
            self.resources.insert(at, resource.clone());
        }
        if findings.is_empty() {
            return;
        }
        for finding in findings.iter() {
            match self.by_tag.get_mut(&*finding.tag_name) {
                Some(counts) => counts.count(finding),
                None => {
                    let mut counts = TagCounts::default();
                    counts.count(finding);
                    self.by_tag.insert(finding.tag_name.clone(), counts);
                }
            }
        }
        let resource = Arc::new(ResourceRef::from(resource));
        if errors > 0 {
            self.worst_offenders.push(Offender {
                resource: resource.clone(),
                errors,
                warnings,
            });
        }
        for finding in findings.drain(..) {
            if options.severity.admits(finding.severity) {
                let violation = Violation {
                    resource: resource.clone(),
                    finding,
                };
                self.violations.push(at, violation);
            }
        }
    }

    /// Counts a resource under an active exemption: in the totals and its groups as exempt,
    /// its cost apart, and listed; nothing of it is validated.
    pub fn observe_exempt(&mut self, resource: &Resource, exemption: ExemptResource) {
        match self.by_resource_type.get_mut(&resource.resource_type) {
            Some(counts) => counts.count_exempt(),
            None => self
                .by_resource_type
                .entry(resource.resource_type.clone())
                .or_default()
                .count_exempt(),
        }
        for (place, by_place) in [
            (&resource.account_id, &mut self.by_account),
            (&resource.region, &mut self.by_region),
        ] {
            by_place.entry(place.clone()).or_default().count_exempt();
        }
        if let Some(cost) = &mut self.cost {
            cost.observe_exempt(resource);
        }
        self.exemptions.insert(resource.arn.clone(), exemption);
    }

    /// Lists an exemption that does not hold (expired, malformed): the resource is validated
    /// as any other, and the exemption listed with why it does not hold.
    pub fn note_exemption(&mut self, exemption: ExemptResource) {
        self.exemptions
            .insert(exemption.resource_arn.clone(), exemption);
    }

    /// Adds issues, keeping the list sorted (appending a sorted run and sorting is linear in
    /// the list, so adding many at once costs one sort).
    pub fn add_issues(&mut self, issues: impl IntoIterator<Item = ScanIssue>) {
        let before = self.issues.len();
        self.issues.extend(issues);
        if self.issues.len() > before {
            self.issues.sort();
        }
    }

    /// Adds `other` into this tally. Associative and commutative: any grouping and order of
    /// the same tallies gives the same result.
    pub fn merge(&mut self, other: Tally) {
        let (self_empty, other_empty) = (self.is_empty(), other.is_empty());
        for (resource_type, counts) in other.by_resource_type {
            self.by_resource_type
                .entry(resource_type)
                .or_default()
                .merge(&counts);
        }
        for (tag, counts) in other.by_tag {
            self.by_tag.entry(tag).or_default().merge(&counts);
        }
        for (account, counts) in other.by_account {
            self.by_account.entry(account).or_default().merge(&counts);
        }
        for (region, counts) in other.by_region {
            self.by_region.entry(region).or_default().merge(&counts);
        }
        self.worst_offenders.merge(other.worst_offenders);
        self.violations.merge(other.violations);
        if self.exemptions.is_empty() {
            self.exemptions = other.exemptions;
        } else {
            self.exemptions.extend(other.exemptions);
        }
        if self.issues.is_empty() {
            self.issues = other.issues;
        } else {
            self.add_issues(other.issues);
        }
        if self.matched_arns.is_empty() {
            self.matched_arns = other.matched_arns;
        } else {
            self.matched_arns.extend(other.matched_arns);
        }
        if self.resources.is_empty() {
            self.resources = other.resources;
        } else if !other.resources.is_empty() {
            self.resources.extend(other.resources);
            self.resources.sort_by(|a, b| a.arn.cmp(&b.arn));
        }
        self.cost = merge_analysis(
            self.cost.take(),
            self_empty,
            other.cost,
            other_empty,
            CostTally::merge,
        );
        self.tag_stats = merge_analysis(
            self.tag_stats.take(),
            self_empty,
            other.tag_stats,
            other_empty,
            TagStats::merge,
        );
    }

    /// Whether no resource was observed.
    pub fn is_empty(&self) -> bool {
        self.by_resource_type.is_empty()
    }

    /// The headline numbers.
    pub fn totals(&self) -> ComplianceTotals {
        let mut all = TypeCounts::default();
        for counts in self.by_resource_type.values() {
            all.merge(counts);
        }
        ComplianceTotals::of(&all)
    }
}

/// Merges an optional analysis: present in the result only if every side that observed
/// resources made it (a sum over part of the resources would mislead), so an empty tally
/// is the identity whatever its options.
fn merge_analysis<T>(
    mine: Option<T>,
    mine_empty: bool,
    theirs: Option<T>,
    theirs_empty: bool,
    merge: fn(&mut T, T),
) -> Option<T> {
    match (mine, theirs) {
        (Some(mut a), Some(b)) => {
            merge(&mut a, b);
            Some(a)
        }
        (Some(a), None) if theirs_empty => Some(a),
        (None, Some(b)) if mine_empty => Some(b),
        _ => None,
    }
}

impl Serialize for Tally {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Tally", 12)?;
        s.serialize_field("by_resource_type", &self.by_resource_type)?;
        s.serialize_field("by_tag", &self.by_tag)?;
        s.serialize_field("by_account", &self.by_account)?;
        s.serialize_field("by_region", &self.by_region)?;
        s.serialize_field("worst_offenders", &self.worst_offenders)?;
        s.serialize_field("violations", &Flat(&self.violations))?;
        s.serialize_field("violation_runs", &self.violations.index())?;
        s.serialize_field("issues", &self.issues)?;
        if !self.exemptions.is_empty() {
            s.serialize_field("exemptions", &self.exemptions)?;
        }
        if !self.matched_arns.is_empty() {
            s.serialize_field("matched_arns", &self.matched_arns)?;
        }
        if let Some(cost) = &self.cost {
            s.serialize_field("cost", cost)?;
        }
        if let Some(stats) = &self.tag_stats {
            s.serialize_field("tag_stats", stats)?;
        }
        s.end()
    }
}

/// The violations as one flat list, in source order (what a reader of the JSON wants).
struct Flat<'a>(&'a ViolationRuns);

impl Serialize for Flat<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ViolationRecord::from))
    }
}

/// Reads the flat list back, sharing one resource between the consecutive violations of the
/// same resource, as a scan does.
struct FlatViolations(Vec<Violation>);

impl<'de> Deserialize<'de> for FlatViolations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seq;
        impl<'de> Visitor<'de> for Seq {
            type Value = FlatViolations;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of violations")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<Violation> = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                let mut interner = Interner::default();
                while let Some(record) = seq.next_element::<ViolationRecord>()? {
                    let shared = out
                        .last()
                        .filter(|v| record.describes(&v.resource))
                        .map(|v| v.resource.clone());
                    let violation = record
                        .into_violation(shared, &mut interner)
                        .map_err(de::Error::custom)?;
                    out.push(violation);
                }
                Ok(FlatViolations(out))
            }
        }
        deserializer.deserialize_seq(Seq)
    }
}

impl<'de> Deserialize<'de> for Tally {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TallyVisitor;
        impl<'de> Visitor<'de> for TallyVisitor {
            type Value = Tally;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scan tally")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tally, A::Error> {
                let mut tally = Tally::default();
                let mut flat: Option<Vec<Violation>> = None;
                let mut index: Option<Vec<RunEntry>> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match &*key {
                        "by_resource_type" => tally.by_resource_type = map.next_value()?,
                        "by_tag" => tally.by_tag = map.next_value()?,
                        "by_account" => tally.by_account = map.next_value()?,
                        "by_region" => tally.by_region = map.next_value()?,
                        "worst_offenders" => tally.worst_offenders = map.next_value()?,
                        "violations" => flat = Some(map.next_value::<FlatViolations>()?.0),
                        "violation_runs" => index = Some(map.next_value()?),
                        "issues" => {
                            let mut issues: Vec<ScanIssue> = map.next_value()?;
                            issues.sort();
                            tally.issues = issues;
                        }
                        "matched_arns" => tally.matched_arns = map.next_value()?,
                        "exemptions" => tally.exemptions = map.next_value()?,
                        "cost" => tally.cost = map.next_value()?,
                        "tag_stats" => tally.tag_stats = map.next_value()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let flat = flat.unwrap_or_default();
                // Without an index (a list written by hand), the list is one run.
                let index = index.unwrap_or_else(|| {
                    vec![RunEntry {
                        shard: Arc::from(""),
                        page: 0,
                        count: flat.len(),
                    }]
                });
                tally.violations =
                    ViolationRuns::from_flat(flat, index).map_err(de::Error::custom)?;
                Ok(tally)
            }
        }
        deserializer.deserialize_map(TallyVisitor)
    }
}

/// Which cost sources contributed to a sum (a small set, as bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostSources(u8);

impl CostSources {
    fn bit(source: CostSource) -> u8 {
        1 << (source as u8)
    }

    /// Adds a source.
    pub fn insert(&mut self, source: CostSource) {
        self.0 |= Self::bit(source);
    }

    /// The sources, in order.
    pub fn iter(self) -> impl Iterator<Item = CostSource> {
        CostSource::ALL
            .iter()
            .copied()
            .filter(move |s| self.0 & Self::bit(*s) != 0)
    }
}

impl Serialize for CostSources {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for CostSources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut set = CostSources::default();
        for source in Vec::<CostSource>::deserialize(deserializer)? {
            set.insert(source);
        }
        Ok(set)
    }
}

impl JsonSchema for CostSources {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CostSources".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Vec<CostSource>>()
    }
}

/// Whether an exemption holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExemptionStatus {
    /// It holds: the resource is not validated.
    Active,
    /// Its expiry has passed: the resource is validated as any other.
    Expired,
    /// It cannot be read (an exemption tag whose value is not `YYYY-MM-DD reason`).
    Invalid,
}

super::string_enum!(ExemptionStatus "an exemption status" {
    Active => "active",
    Expired => "expired",
    Invalid => "invalid",
});

/// A resource an exemption of the policy names, with the exemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExemptResource {
    /// ARN.
    pub resource_arn: String,
    /// `service:type`.
    pub resource_type: ResourceType,
    /// Account id.
    pub account_id: String,
    /// Region.
    pub region: String,
    /// Name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Monthly cost; null when unknown.
    pub monthly_cost: Option<Usd>,
    /// Where the cost comes from.
    #[serde(default)]
    pub cost_source: CostSource,
    /// `active`, `expired` or `invalid`.
    pub status: ExemptionStatus,
    /// What exempts it: `arn_pattern <pattern>` or `tag <key>`.
    pub exempted_by: String,
    /// Why, as the exemption says.
    pub reason: String,
    /// The last day it holds; null when it could not be read.
    pub expires: Option<chrono::NaiveDate>,
}

/// Summed monthly cost of some resources, and how many had no known cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CostSums {
    /// Monthly cost of the resources whose cost is known (USD).
    pub monthly_cost: Usd,
    /// Resources whose cost is known (in `monthly_cost`).
    pub known: u64,
    /// Resources whose cost is unknown (not in `monthly_cost`, never counted as zero).
    pub unknown: u64,
    /// Where the known costs came from.
    pub sources: CostSources,
}

impl CostSums {
    /// Counts one resource's cost.
    pub fn add(&mut self, cost: Option<Usd>, source: CostSource) {
        match cost {
            Some(usd) => {
                self.monthly_cost += usd;
                self.known += 1;
                self.sources.insert(source);
            }
            None => self.unknown += 1,
        }
    }

    /// Adds another sum into this one.
    pub fn merge(&mut self, other: &CostSums) {
        self.monthly_cost += other.monthly_cost;
        self.known += other.known;
        self.unknown += other.unknown;
        self.sources.0 |= other.sources.0;
    }

    /// Resources counted, known cost or not.
    pub fn resources(&self) -> u64 {
        self.known + self.unknown
    }
}

/// The cost of one type's resources, compliant and not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CostSplit {
    /// Resources with no error.
    pub compliant: CostSums,
    /// Resources with at least one error.
    pub non_compliant: CostSums,
    /// Resources under an active exemption.
    #[serde(default)]
    pub exempt: CostSums,
}

/// The cost of the resources with an error on one tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TagCostSums {
    /// Resources missing the tag.
    pub missing: CostSums,
    /// Resources whose value of the tag breaks a rule.
    pub invalid: CostSums,
}

/// Monthly cost sums of a scan: per type, split by compliance, and per tag with errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CostTally {
    /// Per resource type.
    pub by_resource_type: BTreeMap<ResourceType, CostSplit>,
    /// Per tag: the resources missing it, and those whose value is invalid (each resource
    /// once per tag, however many errors it has there).
    pub by_tag: BTreeMap<Arc<str>, TagCostSums>,
    /// Per account.
    #[serde(default)]
    pub by_account: BTreeMap<Arc<str>, CostSplit>,
    /// Per region.
    #[serde(default)]
    pub by_region: BTreeMap<Arc<str>, CostSplit>,
}

impl CostSplit {
    fn add(&mut self, non_compliant: bool, cost: Option<Usd>, source: CostSource) {
        if non_compliant {
            self.non_compliant.add(cost, source);
        } else {
            self.compliant.add(cost, source);
        }
    }

    fn merge(&mut self, other: &CostSplit) {
        self.compliant.merge(&other.compliant);
        self.non_compliant.merge(&other.non_compliant);
        self.exempt.merge(&other.exempt);
    }
}

impl CostTally {
    fn observe(&mut self, resource: &Resource, non_compliant: bool, findings: &[Finding]) {
        let (cost, source) = (resource.monthly_cost, resource.cost_source);
        let split = match self.by_resource_type.get_mut(&resource.resource_type) {
            Some(split) => split,
            None => self
                .by_resource_type
                .entry(resource.resource_type.clone())
                .or_default(),
        };
        split.add(non_compliant, cost, source);
        for (place, by_place) in [
            (&resource.account_id, &mut self.by_account),
            (&resource.region, &mut self.by_region),
        ] {
            match by_place.get_mut(place) {
                Some(split) => split.add(non_compliant, cost, source),
                None => by_place
                    .entry(place.clone())
                    .or_default()
                    .add(non_compliant, cost, source),
            }
        }
        for (i, finding) in findings.iter().enumerate() {
            if finding.severity != Severity::Error {
                continue;
            }
            let missing = finding.violation_type == ViolationType::MissingRequiredTag;
            // Each resource once per tag and kind.
            let seen = findings[..i].iter().any(|f| {
                f.severity == Severity::Error
                    && (f.violation_type == ViolationType::MissingRequiredTag) == missing
                    && f.tag_name == finding.tag_name
            });
            if seen {
                continue;
            }
            let sums = match self.by_tag.get_mut(&*finding.tag_name) {
                Some(sums) => sums,
                None => self.by_tag.entry(finding.tag_name.clone()).or_default(),
            };
            if missing {
                sums.missing.add(cost, source);
            } else {
                sums.invalid.add(cost, source);
            }
        }
    }

    fn merge(&mut self, other: CostTally) {
        for (resource_type, split) in other.by_resource_type {
            self.by_resource_type
                .entry(resource_type)
                .or_default()
                .merge(&split);
        }
        for (account, split) in other.by_account {
            self.by_account.entry(account).or_default().merge(&split);
        }
        for (region, split) in other.by_region {
            self.by_region.entry(region).or_default().merge(&split);
        }
        for (tag, sums) in other.by_tag {
            let mine = self.by_tag.entry(tag).or_default();
            mine.missing.merge(&sums.missing);
            mine.invalid.merge(&sums.invalid);
        }
    }

    /// Every resource's cost, compliant, not, and exempt.
    pub fn total(&self) -> CostSums {
        let mut all = CostSums::default();
        for split in self.by_resource_type.values() {
            all.merge(&split.compliant);
            all.merge(&split.non_compliant);
            all.merge(&split.exempt);
        }
        all
    }

    fn observe_exempt(&mut self, resource: &Resource) {
        let (cost, source) = (resource.monthly_cost, resource.cost_source);
        self.by_resource_type
            .entry(resource.resource_type.clone())
            .or_default()
            .exempt
            .add(cost, source);
        for (place, by_place) in [
            (&resource.account_id, &mut self.by_account),
            (&resource.region, &mut self.by_region),
        ] {
            by_place
                .entry(place.clone())
                .or_default()
                .exempt
                .add(cost, source);
        }
    }

    /// The cost of the non-compliant resources.
    pub fn non_compliant(&self) -> CostSums {
        let mut all = CostSums::default();
        for split in self.by_resource_type.values() {
            all.merge(&split.non_compliant);
        }
        all
    }
}

/// Which tags to count values of for suggestions, and how keys match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagStatsSpec {
    /// The policy's tag names.
    pub names: Vec<Arc<str>>,
    /// Match keys ignoring case (the policy's `case_sensitivity: false`).
    pub ignore_case: bool,
}

/// What groups resources for suggestions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKind {
    /// The VPC the resource runs in.
    Vpc,
    /// The subnet.
    Subnet,
    /// The CloudFormation stack that created it.
    Stack,
    /// The Auto Scaling group it belongs to.
    AutoScalingGroup,
    /// Resources of the same type in the same VPC (or, with no VPC, the same type).
    Similar,
    /// Resources whose names share a word (`payments` in `payments-prod-db`).
    NameToken,
    /// Resources carrying the same valid value of another policy tag (`Owner=a@example.com`).
    CoTag,
}

super::string_enum!(GroupKind "a group kind" {
    Vpc => "vpc",
    Subnet => "subnet",
    Stack => "stack",
    AutoScalingGroup => "asg",
    Similar => "similar",
    NameToken => "name",
    CoTag => "tag",
});

/// Words of names that say nothing about who owns a resource or what it is for: kinds of
/// resource and roles every application has.
const GENERIC_WORDS: [&str; 24] = [
    "api", "app", "asg", "aws", "bucket", "cluster", "data", "database", "db", "default", "fn",
    "function", "handler", "instance", "lambda", "logs", "node", "server", "service", "srv",
    "stack", "svc", "web", "worker",
];

/// The words of a resource's name (its `name`, else its id) that can tell something about
/// it: lowercase, three characters or more, not a number, not a hex id, not a generic word.
/// At most four, in order.
pub fn name_tokens(resource: &Resource) -> Vec<String> {
    let name = resource.name.as_deref().unwrap_or(&resource.id);
    let mut tokens: Vec<String> = Vec::new();
    for word in name.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        let has_digit = word.chars().any(|c| c.is_ascii_digit());
        let hex_id = has_digit && word.chars().all(|c| c.is_ascii_hexdigit());
        let numbered =
            has_digit && word.chars().filter(|c| c.is_ascii_digit()).count() * 2 >= word.len();
        if word.chars().count() < 3
            || hex_id
            || numbered
            || GENERIC_WORDS.contains(&word.as_str())
            || tokens.contains(&word)
        {
            continue;
        }
        tokens.push(word);
        if tokens.len() == 4 {
            break;
        }
    }
    tokens
}

/// The groups a resource belongs to, given the valid values it carries (`clean`, as
/// `(tag, value)`): what [`TagStats`] counts it in and what suggestions look up.
pub fn groups_of(resource: &Resource, clean: &[(&Arc<str>, &str)]) -> Vec<(GroupKind, String)> {
    let attributes = &resource.attributes;
    let mut groups = Vec::with_capacity(8 + clean.len());
    for (kind, id) in [
        (GroupKind::Vpc, &attributes.vpc_id),
        (GroupKind::Subnet, &attributes.subnet_id),
        (GroupKind::Stack, &attributes.cloudformation_stack),
        (GroupKind::AutoScalingGroup, &attributes.autoscaling_group),
    ] {
        if let Some(id) = id {
            groups.push((kind, id.clone()));
        }
    }
    groups.push((
        GroupKind::Similar,
        format!(
            "{}|{}",
            resource.resource_type,
            attributes.vpc_id.as_deref().unwrap_or("-")
        ),
    ));
    for token in name_tokens(resource) {
        groups.push((GroupKind::NameToken, token));
    }
    for (tag, value) in clean {
        groups.push((GroupKind::CoTag, format!("{tag}={value}")));
    }
    groups
}

/// One group of resources: its kind, and where it lives (ids are unique per account and
/// region).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// VPC, subnet, stack or Auto Scaling group.
    pub kind: GroupKind,
    /// The account.
    pub account: Arc<str>,
    /// The region.
    pub region: Arc<str>,
    /// The group's id or name.
    pub id: String,
}

impl fmt::Display for GroupKey {
    /// `kind/account/region/id`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.kind, self.account, self.region, self.id
        )
    }
}

impl std::str::FromStr for GroupKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(4, '/');
        let (Some(kind), Some(account), Some(region), Some(id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "'{s}' is not a group: expected kind/account/region/id"
            ));
        };
        Ok(GroupKey {
            kind: kind.parse()?,
            account: Arc::from(account),
            region: Arc::from(region),
            id: id.to_string(),
        })
    }
}

impl Serialize for GroupKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// What the resources of one group carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTagStats {
    /// Resources in the group.
    pub resources: u64,
    /// Per policy tag: how many resources of the group carry each value (values with no
    /// violation on the tag only: what a suggestion may propose).
    pub values: BTreeMap<Arc<str>, BTreeMap<String, u64>>,
}

/// Tag values per group of resources, for suggestions: what the other resources of a
/// resource's VPC, subnet, stack or Auto Scaling group carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagStats {
    /// Per group.
    pub groups: BTreeMap<GroupKey, GroupTagStats>,
}

impl TagStats {
    fn observe(&mut self, spec: &TagStatsSpec, resource: &Resource, findings: &[Finding]) {
        let keys_ascii = keys_are_ascii(&resource.tags);
        // The clean values: carried, not blank, and with no finding on the tag.
        let clean: Vec<(&Arc<str>, &str)> = spec
            .names
            .iter()
            .filter_map(|name| {
                let found = find_tag(&resource.tags, name, spec.ignore_case, keys_ascii)?;
                let value = found.tag.value.as_str();
                let flagged = findings.iter().any(|f| *f.tag_name == **name);
                (!flagged && !value.trim().is_empty()).then_some((name, value))
            })
            .collect();
        for (kind, id) in groups_of(resource, &clean) {
            let key = GroupKey {
                kind,
                account: resource.account_id.clone(),
                region: resource.region.clone(),
                id,
            };
            let group = self.groups.entry(key).or_default();
            group.resources += 1;
            for (name, value) in &clean {
                let values = match group.values.get_mut(&***name) {
                    Some(values) => values,
                    None => group.values.entry((*name).clone()).or_default(),
                };
                *values.entry((*value).to_string()).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: TagStats) {
        for (key, theirs) in other.groups {
            let mine = self.groups.entry(key).or_default();
            mine.resources += theirs.resources;
            for (tag, values) in theirs.values {
                let counts = mine.values.entry(tag).or_default();
                for (value, n) in values {
                    *counts.entry(value).or_default() += n;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Expected, ResourceAttributes, Tag};
    use proptest::prelude::*;

    fn resource(i: u64, cost: Option<i64>, tags: Vec<Tag>) -> Resource {
        Resource {
            arn: format!("arn:aws:ec2:us-east-1:123456789012:instance/i-{i:04}"),
            account_id: Arc::from("123456789012"),
            region: Arc::from("us-east-1"),
            resource_type: if i.is_multiple_of(3) {
                ResourceType::Ec2Instance
            } else {
                ResourceType::RdsDb
            },
            id: format!("i-{i:04}"),
            name: None,
            tags,
            created_at: None,
            monthly_cost: cost.map(Usd::from_cents),
            cost_source: if cost.is_some() {
                CostSource::Estimated
            } else {
                CostSource::Unknown
            },
            attributes: ResourceAttributes {
                vpc_id: Some(format!("vpc-{}", i % 2)),
                ..ResourceAttributes::default()
            },
        }
    }

    fn finding(kind: ViolationType, severity: Severity, tag: &str) -> Finding {
        Finding {
            violation_type: kind,
            severity,
            tag_name: Arc::from(tag),
            current_value: None,
            expected: Expected::Nothing,
        }
    }

    /// A batch tally of resources `first..first + n` at run (`shard`, `page`), with findings
    /// derived from each index.
    fn batch(options: &TallyOptions, shard: &str, page: u64, first: u64, n: u64) -> Tally {
        let at = RunKey {
            shard: Arc::from(shard),
            page,
        };
        let mut tally = Tally::new(options);
        for i in first..first + n {
            let mut findings = Vec::new();
            if i % 2 == 0 {
                findings.push(finding(
                    ViolationType::MissingRequiredTag,
                    Severity::Error,
                    "CostCenter",
                ));
            }
            if i % 5 == 0 {
                findings.push(finding(
                    ViolationType::KeyCaseMismatch,
                    Severity::Warning,
                    "Owner",
                ));
            }
            let tags = vec![Tag::new("Owner", format!("team-{}", i % 3))];
            let cost = (i % 7 != 0).then_some((i * 37 % 1000) as i64);
            tally.observe(options, &at, resource(i, cost, tags), true, &mut findings);
            assert!(findings.is_empty(), "observe drains the findings");
        }
        tally
    }

    fn options() -> TallyOptions {
        TallyOptions {
            severity: SeverityFilter::All,
            match_arns: true,
            cost: true,
            tag_stats: Some(Arc::new(TagStatsSpec {
                names: vec![Arc::from("CostCenter"), Arc::from("Owner")],
                ignore_case: true,
            })),
            keep_resources: true,
        }
    }

    #[test]
    fn a_batch_counts_every_resource_and_keeps_violations_in_order() {
        let options = options();
        let tally = batch(&options, "a/us-east-1/ec2", 0, 0, 10);
        let totals = tally.totals();
        assert_eq!(totals.total_resources, 10);
        assert_eq!(
            totals.non_compliant_resources, 5,
            "even indices miss CostCenter"
        );
        assert_eq!(totals.error_count, 5);
        assert_eq!(totals.warning_count, 2, "indices 0 and 5");
        assert_eq!(tally.by_tag["CostCenter"].missing, 5);
        let order: Vec<&str> = tally
            .violations
            .iter()
            .map(|v| v.resource.id.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "i-0000", "i-0000", "i-0002", "i-0004", "i-0005", "i-0006", "i-0008"
            ]
        );
        assert_eq!(tally.matched_arns.len(), 10);
        let cost = tally.cost.as_ref().unwrap();
        // Known costs: every index but 0 and 7.
        let expected: i64 = (0..10u64)
            .filter(|i| i % 7 != 0)
            .map(|i| (i * 37 % 1000) as i64)
            .sum();
        assert_eq!(cost.total().monthly_cost, Usd::from_cents(expected));
        assert_eq!((cost.total().known, cost.total().unknown), (8, 2));
        let stats = tally.tag_stats.as_ref().unwrap();
        let vpc0 = stats.groups.keys().find(|k| k.id == "vpc-0").unwrap();
        // vpc-0 holds the even indices; Owner is flagged on 0 (and 5), so its clean values
        // there are those of 2, 4, 6 and 8.
        let owners: u64 = stats.groups[vpc0].values["Owner"].values().sum();
        assert_eq!(owners, 4);
    }

    #[test]
    fn offenders_keep_the_worst_ten_by_errors_cost_and_arn() {
        let options = options();
        let tally = batch(&options, "s", 0, 0, 100);
        let worst = tally.worst_offenders.as_slice();
        assert_eq!(worst.len(), OFFENDERS_KEPT);
        for pair in worst.windows(2) {
            assert!(pair[0].rank() < pair[1].rank());
        }
        // All have one error; the costliest known come first.
        let costs: Vec<Option<Usd>> = worst.iter().map(|o| o.resource.monthly_cost).collect();
        assert!(costs[0] >= costs[9]);
    }

    fn tallies() -> impl Strategy<Value = Vec<Tally>> {
        // Batches of distinct runs: (shard, page) never repeats, as in a scan.
        proptest::collection::vec((0u64..4, 0u64..60), 1..6).prop_map(|sizes| {
            let options = options();
            sizes
                .iter()
                .enumerate()
                .map(|(i, (shard, n))| {
                    batch(&options, &format!("s{shard}"), i as u64, i as u64 * 100, *n)
                })
                .collect()
        })
    }

    fn merged(parts: impl IntoIterator<Item = Tally>) -> Tally {
        let mut all = Tally::default();
        for part in parts {
            all.merge(part);
        }
        all
    }

    proptest! {
        #[test]
        fn merge_is_associative_and_order_independent(parts in tallies(), seed in any::<u64>()) {
            let forward = merged(parts.clone());
            let mut shuffled = parts.clone();
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(&merged(shuffled), &forward);
            // Grouped differently: (a + b) + (c + ...) equals a + (b + (c + ...)).
            let split = parts.len() / 2;
            let mut left = merged(parts[..split].to_vec());
            left.merge(merged(parts[split..].to_vec()));
            prop_assert_eq!(&left, &forward);
            let mut right = Tally::default();
            for part in parts.iter().rev() {
                let mut next = part.clone();
                next.merge(right);
                right = next;
            }
            prop_assert_eq!(&right, &forward);
        }

        #[test]
        fn a_tally_reads_back_equal(parts in tallies()) {
            let mut tally = merged(parts);
            let json = serde_json::to_string(&tally).unwrap();
            let back: Tally = serde_json::from_str(&json).unwrap();
            // Kept resources answer one question and are not written.
            tally.resources.clear();
            prop_assert_eq!(back, tally);
        }
    }

    #[test]
    fn an_analysis_missing_on_one_side_is_dropped_unless_that_side_is_empty() {
        let with = batch(&options(), "a", 0, 0, 5);
        let without = batch(&TallyOptions::default(), "b", 0, 5, 5);
        let mut both = with.clone();
        both.merge(without);
        assert!(
            both.cost.is_none(),
            "a sum over part of the resources would mislead"
        );
        let mut with_empty = with.clone();
        with_empty.merge(Tally::default());
        assert_eq!(with_empty, with, "an empty tally is the identity");
    }
}
