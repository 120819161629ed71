//! Tag suggestions: for a resource's missing or invalid tags, candidate values ranked by a
//! confidence measured on the estate itself, each with the evidence behind it.
//!
//! # Signals
//! - **Groups of related resources**, counted by the scan ([`TagStats`]): the resource's
//!   CloudFormation stack, Auto Scaling group, subnet and VPC; resources of its type in its VPC;
//!   resources whose names share a word with its name; resources carrying the same valid value
//!   of another policy tag. A group proposes the values its other resources carry.
//! - **Hints**: the tags and the name of its VPC and subnet, a word of its own name that matches
//!   an allowed value (`prod` → `production`), and corrections of its current value (case, a
//!   near miss of an allowed value, an obvious fix of the format).
//!
//! # What confidence means
//! A group's proposal is right as often as the same kind of group is right **in this
//! estate**: every resource of every group of that kind is predicted from the rest of its
//! group (its own value left out), and the share of right predictions, for the same kind, tag,
//! agreement and group size, is the confidence. Hints are measured the same way (how often
//! resources of a VPC tagged `Environment=production` carry that value). A confidence of 0.9
//! thus reads: nine in ten resources of this estate with this evidence carry the value. Only
//! corrections of a value's case or spelling have fixed confidences (nothing in the estate
//! measures them). A value the policy rejects is never proposed.

pub mod evaluate;
pub mod service;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;

use crate::domain::{
    Finding, GroupKey, GroupKind, NetworkObject, Resource, ResourceType, Tag, TagStats,
    eq_ignore_case, find_tag, groups_of, keys_are_ascii, name_tokens,
};
use crate::policy::Policy;

/// Candidates kept per tag.
pub const CANDIDATES_KEPT: usize = 3;

/// Confidence from which a suggestion counts as confident (what `tagguard fix` applies by
/// default, and what the evaluation's headline measures).
pub const CONFIDENT: f64 = 0.8;

/// What a signal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// The other resources of its CloudFormation stack.
    Stack,
    /// The other resources of its Auto Scaling group.
    AutoScalingGroup,
    /// The other resources of its subnet.
    Subnet,
    /// The other resources of its VPC.
    Vpc,
    /// Resources of the same type in the same VPC (or account and region).
    SimilarResources,
    /// Resources whose names share a word with its name.
    NameToken,
    /// Resources with the same value of another policy tag.
    OtherTag,
    /// A tag its VPC or subnet carries.
    NetworkTag,
    /// A word of its VPC's or subnet's name that matches an allowed value.
    NetworkName,
    /// A word of its own name that matches an allowed value.
    NameMatch,
    /// Its current value differs from an allowed value only in case.
    CaseCorrection,
    /// Its current value is a near miss (abbreviation, typo) of one allowed value.
    NearMiss,
    /// Its current value, fixed in an obvious way, passes the format rule.
    FormatFix,
}

impl SignalKind {
    fn of_group(kind: GroupKind) -> SignalKind {
        match kind {
            GroupKind::Stack => SignalKind::Stack,
            GroupKind::AutoScalingGroup => SignalKind::AutoScalingGroup,
            GroupKind::Subnet => SignalKind::Subnet,
            GroupKind::Vpc => SignalKind::Vpc,
            GroupKind::Similar => SignalKind::SimilarResources,
            GroupKind::NameToken => SignalKind::NameToken,
            GroupKind::CoTag => SignalKind::OtherTag,
        }
    }
}

/// One piece of evidence for a candidate value.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Signal {
    /// What kind of evidence.
    pub kind: SignalKind,
    /// What it is: the stack's name, the VPC's id, the word, the other tag, the current value.
    pub source: String,
    /// The value it points to.
    pub value: String,
    /// How many resources of the group carry the value (for group signals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support: Option<u64>,
    /// Of how many resources of the group carrying a valid value (for group signals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<u64>,
    /// The confidence this signal alone gives the value.
    pub confidence: f64,
}

/// One candidate value of a tag.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Candidate {
    /// The value (always one the policy accepts).
    pub value: String,
    /// How likely it is right, 0 to 1 (see the module's documentation).
    pub confidence: f64,
    /// One sentence a person can check.
    pub reasoning: String,
    /// The signals behind it, strongest first.
    pub evidence: Vec<Signal>,
}

/// Why a tag is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The tag is missing (or blank, or under a key of another case the policy rejects).
    Missing,
    /// Its value draws a finding.
    Invalid,
    /// Its key is spelled in another case than the policy's; the value may be right (a fix
    /// renames the key).
    KeyCase,
    /// It is valid; the caller asked about it anyway.
    Requested,
}

/// The suggestions for one tag of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TagSuggestion {
    /// The tag, as the policy spells it.
    pub tag: String,
    /// Why it is asked about.
    pub problem: Problem,
    /// Its current value, when it has one.
    pub current_value: Option<String>,
    /// Candidates, most likely first (ties by value): at most three.
    pub candidates: Vec<Candidate>,
    /// When there is no candidate: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_suggestion: Option<String>,
}

/// A right and a total count.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    right: u64,
    all: u64,
}

impl Cell {
    fn add(&mut self, right: u64, all: u64) {
        self.right += right;
        self.all += all;
    }
}

/// How a network object hints at a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Hint {
    Tag,
    Name,
}

/// Pseudo-count pulling a sparse cell towards its kind's rate.
const SHRINK: f64 = 12.0;

/// Confidence of a hint never measured in the estate: it stays below [`CONFIDENT`].
const UNMEASURED_HINT: f64 = 0.5;

/// The estate's own record of how often each kind of evidence is right.
#[derive(Debug, Default)]
struct Calibration {
    groups: HashMap<(GroupKind, Arc<str>, u8, u8), Cell>,
    kinds: HashMap<(GroupKind, u8, u8), Cell>,
    hints: HashMap<(Arc<str>, Hint), Cell>,
    names: HashMap<Arc<str>, Cell>,
}

/// Bands of a group's agreement on its top value.
fn agreement_band(share: f64) -> u8 {
    match share {
        s if s >= 1.0 => 5,
        s if s >= 0.95 => 4,
        s if s >= 0.85 => 3,
        s if s >= 0.7 => 2,
        s if s >= 0.5 => 1,
        _ => 0,
    }
}

/// Bands of a group's size (resources carrying a valid value).
fn size_band(n: u64) -> u8 {
    match n {
        0 | 1 => 0,
        2..=3 => 1,
        4..=9 => 2,
        10..=29 => 3,
        _ => 4,
    }
}

/// The most common value of `counts` with one `hidden` value left out: (value, its count, all
/// counted). Ties go to the smallest value, so the ranking is stable.
fn top<'c>(counts: &'c BTreeMap<String, u64>, hidden: Option<&str>) -> Option<(&'c str, u64, u64)> {
    let mut best: Option<(&str, u64)> = None;
    let mut all = 0;
    for (value, count) in counts {
        let count = count - u64::from(hidden == Some(value.as_str()));
        all += count;
        if count > 0 && best.is_none_or(|(_, b)| count > b) {
            best = Some((value, count));
        }
    }
    best.map(|(v, c)| (v, c, all))
}

/// Whether a group of kind `kind` and id `id` may speak of `tag` (a group of resources
/// carrying `tag=…` says nothing new about `tag`).
fn speaks_of(kind: GroupKind, id: &str, tag: &str) -> bool {
    !(kind == GroupKind::CoTag
        && id
            .split_once('=')
            .is_some_and(|(key, _)| eq_ignore_case(key, tag)))
}

/// The stage words organisations abbreviate, and their long forms.
const ABBREVIATIONS: [(&str, &str); 10] = [
    ("prod", "production"),
    ("prd", "production"),
    ("live", "production"),
    ("stg", "staging"),
    ("stage", "staging"),
    ("dev", "development"),
    ("devel", "development"),
    ("qa", "test"),
    ("tst", "test"),
    ("uat", "staging"),
];

/// The one allowed value `word` names: equal ignoring case, a known abbreviation, or a prefix
/// (three letters or more) of exactly one value.
fn allowed_named_by<'a>(word: &str, allowed: &'a [String]) -> Option<&'a str> {
    if let Some(v) = allowed.iter().find(|v| eq_ignore_case(v, word)) {
        return Some(v);
    }
    let word = word.to_lowercase();
    if let Some((_, long)) = ABBREVIATIONS.iter().find(|(short, _)| *short == word)
        && let Some(v) = allowed.iter().find(|v| eq_ignore_case(v, long))
    {
        return Some(v);
    }
    if word.chars().count() < 3 {
        return None;
    }
    let mut prefixed = allowed
        .iter()
        .filter(|v| v.to_lowercase().starts_with(&word));
    match (prefixed.next(), prefixed.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// The words of a network object's name.
fn name_words(name: &str) -> impl Iterator<Item = &str> {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// What is known about the estate: the scan's groups, the network, and how often each kind of
/// evidence is right in it.
#[derive(Debug)]
pub struct Evidence {
    stats: TagStats,
    network: HashMap<(GroupKind, Arc<str>, Arc<str>, String), NetworkObject>,
    calibration: Calibration,
}

impl Evidence {
    /// The evidence of a scan's tag statistics and the network objects of its accounts and
    /// regions, measured against `policy`.
    pub fn new(stats: TagStats, network: Vec<NetworkObject>, policy: &Policy) -> Evidence {
        let network = network
            .into_iter()
            .map(|o| {
                (
                    (o.kind, o.account_id.clone(), o.region.clone(), o.id.clone()),
                    o,
                )
            })
            .collect();
        let mut evidence = Evidence {
            stats,
            network,
            calibration: Calibration::default(),
        };
        evidence.calibrate(policy);
        evidence
    }

    /// Groups counted.
    pub fn groups(&self) -> usize {
        self.stats.groups.len()
    }

    /// Measures every kind of evidence on the estate, each resource predicted from the rest.
    fn calibrate(&mut self, policy: &Policy) {
        let mut calibration = Calibration::default();
        for (key, group) in &self.stats.groups {
            for (tag, counts) in &group.values {
                if !speaks_of(key.kind, &key.id, tag) {
                    continue;
                }
                for (value, count) in counts {
                    let Some((predicted, best, all)) = top(counts, Some(value)) else {
                        continue;
                    };
                    let right = if predicted == value { *count } else { 0 };
                    let bands = (agreement_band(best as f64 / all as f64), size_band(all));
                    calibration
                        .groups
                        .entry((key.kind, tag.clone(), bands.0, bands.1))
                        .or_default()
                        .add(right, *count);
                    calibration
                        .kinds
                        .entry((key.kind, bands.0, bands.1))
                        .or_default()
                        .add(right, *count);
                }
            }
        }
        for object in self.network.values() {
            let key = GroupKey {
                kind: object.kind,
                account: object.account_id.clone(),
                region: object.region.clone(),
                id: object.id.clone(),
            };
            let Some(group) = self.stats.groups.get(&key) else {
                continue;
            };
            for (tag, counts) in &group.values {
                if let Some((hint, value)) = network_hint(policy, object, tag) {
                    let right = counts.get(&value).copied().unwrap_or(0);
                    let all = counts.values().sum();
                    calibration
                        .hints
                        .entry((tag.clone(), hint))
                        .or_default()
                        .add(right, all);
                }
            }
        }
        for (key, group) in &self.stats.groups {
            if key.kind != GroupKind::NameToken {
                continue;
            }
            for (tag, counts) in &group.values {
                let Some(allowed) = allowed_values(policy, tag) else {
                    continue;
                };
                if let Some(value) = allowed_named_by(&key.id, allowed) {
                    let right = counts.get(value).copied().unwrap_or(0);
                    let all = counts.values().sum();
                    calibration
                        .names
                        .entry(tag.clone())
                        .or_default()
                        .add(right, all);
                }
            }
        }
        self.calibration = calibration;
    }

    /// How often a group of `kind` whose top value holds `share` of `all` resources is right
    /// about `tag`.
    fn group_confidence(&self, kind: GroupKind, tag: &Arc<str>, best: u64, all: u64) -> f64 {
        let share = best as f64 / all as f64;
        let bands = (agreement_band(share), size_band(all));
        let kind_rate = match self.calibration.kinds.get(&(kind, bands.0, bands.1)) {
            Some(cell) if cell.all > 0 => (cell.right as f64 + 1.0) / (cell.all as f64 + 2.0),
            // Never measured: the group's own agreement, discounted for its size.
            _ => share * all as f64 / (all as f64 + 1.0),
        };
        let cell = self
            .calibration
            .groups
            .get(&(kind, tag.clone(), bands.0, bands.1))
            .copied()
            .unwrap_or_default();
        (cell.right as f64 + SHRINK * kind_rate) / (cell.all as f64 + SHRINK)
    }

    fn measured(cell: Option<&Cell>) -> f64 {
        match cell {
            Some(cell) if cell.all > 0 => (cell.right as f64 + 1.0) / (cell.all as f64 + 2.0),
            _ => UNMEASURED_HINT,
        }
    }
}

/// The rule of a policy tag: its allowed values, if any.
fn allowed_values<'p>(policy: &'p Policy, tag: &str) -> Option<&'p [String]> {
    policy
        .required_tags()
        .iter()
        .find(|r| &*r.name == tag)
        .map(|r| r.allowed_values.as_deref())
        .or_else(|| {
            policy
                .optional_tags()
                .iter()
                .find(|r| &*r.name == tag)
                .map(|r| r.allowed_values.as_deref())
        })
        .flatten()
}

/// What a network object says of `tag`: a valid value it carries, else an allowed value a word
/// of its name names.
fn network_hint(policy: &Policy, object: &NetworkObject, tag: &str) -> Option<(Hint, String)> {
    let ignore_case = !policy.naming().case_sensitivity;
    let ascii = keys_are_ascii(&object.tags);
    if let Some(found) = find_tag(&object.tags, tag, ignore_case, ascii)
        && tag_accepts(policy, None, tag, &found.tag.value)
    {
        return Some((Hint::Tag, found.tag.value.clone()));
    }
    let allowed = allowed_values(policy, tag)?;
    let name = object.name.as_deref()?;
    name_words(name)
        .find_map(|w| allowed_named_by(w, allowed))
        .map(|v| (Hint::Name, v.to_string()))
}

/// Whether the policy accepts `value` for `tag` with no finding at all (on `resource_type`
/// when known): the same validation scans make, so nothing proposed can be rejected.
pub fn tag_accepts(
    policy: &Policy,
    resource_type: Option<&ResourceType>,
    tag: &str,
    value: &str,
) -> bool {
    let typical;
    let resource_type = match resource_type {
        Some(t) => t,
        None => {
            typical = type_of_rule(policy, tag);
            &typical
        }
    };
    policy
        .validate(resource_type, &[Tag::new(tag, value)])
        .iter()
        .all(|f| !eq_ignore_case(&f.tag_name, tag))
}

/// A type `tag`'s rule applies to (its value is only checked on such types).
fn type_of_rule(policy: &Policy, tag: &str) -> ResourceType {
    policy
        .required_tags()
        .iter()
        .find(|r| &*r.name == tag)
        .and_then(|r| r.applies_to.types().first().cloned())
        .unwrap_or(ResourceType::Ec2Instance)
}

/// The tags a resource carries validly, as `(policy tag, value)`: present, not blank, no
/// finding on the tag.
fn clean_values<'r>(
    policy_tags: &'r [Arc<str>],
    resource: &'r Resource,
    findings: &[Finding],
    ignore_case: bool,
) -> Vec<(&'r Arc<str>, &'r str)> {
    let ascii = keys_are_ascii(&resource.tags);
    policy_tags
        .iter()
        .filter_map(|name| {
            let found = find_tag(&resource.tags, name, ignore_case, ascii)?;
            let value = found.tag.value.as_str();
            let flagged = findings.iter().any(|f| *f.tag_name == **name);
            (!flagged && !value.trim().is_empty()).then_some((name, value))
        })
        .collect()
}

/// What to suggest for: a resource, and (for an evaluation) a value of the tag asked about to
/// leave out of the groups, as if the resource did not carry it.
pub struct Subject<'a> {
    /// The resource.
    pub resource: &'a Resource,
    /// Its findings.
    pub findings: &'a [Finding],
    /// The value it carries of the tag asked about, hidden from the evidence.
    pub hidden: Option<&'a str>,
}

/// The policy's tag names (required, then optional).
pub fn policy_tags(policy: &Policy) -> Vec<Arc<str>> {
    policy
        .required_tags()
        .iter()
        .map(|r| r.name.clone())
        .chain(policy.optional_tags().iter().map(|r| r.name.clone()))
        .collect()
}

/// Suggestions for `tag` of `subject`.
pub fn suggest_tag(
    policy: &Policy,
    evidence: &Evidence,
    subject: &Subject<'_>,
    tag: &Arc<str>,
    problem: Problem,
    current_value: Option<&str>,
) -> TagSuggestion {
    let resource = subject.resource;
    let ignore_case = !policy.naming().case_sensitivity;
    let names = policy_tags(policy);
    let clean: Vec<(&Arc<str>, &str)> =
        clean_values(&names, resource, subject.findings, ignore_case)
            .into_iter()
            .filter(|(name, _)| *name != tag)
            .collect();
    let accepts = |value: &str| tag_accepts(policy, Some(&resource.resource_type), tag, value);
    let mut signals: BTreeMap<String, Vec<Signal>> = BTreeMap::new();
    let mut push = |signal: Signal| {
        signals
            .entry(signal.value.clone())
            .or_default()
            .push(signal);
    };

    // Groups of related resources.
    let mut related = 0;
    for (kind, id) in groups_of(resource, &clean) {
        if !speaks_of(kind, &id, tag) {
            continue;
        }
        let key = GroupKey {
            kind,
            account: resource.account_id.clone(),
            region: resource.region.clone(),
            id,
        };
        let Some(counts) = evidence
            .stats
            .groups
            .get(&key)
            .and_then(|g| g.values.get(tag))
        else {
            continue;
        };
        let Some((best_value, best, all)) = top(counts, subject.hidden) else {
            continue;
        };
        related += 1;
        let confidence = evidence.group_confidence(kind, tag, best, all);
        for (value, count) in counts {
            let count = count - u64::from(subject.hidden == Some(value.as_str()));
            if count == 0 || !accepts(value) {
                continue;
            }
            let p = if value == best_value {
                confidence
            } else if all > best {
                (1.0 - confidence) * count as f64 / (all - best) as f64
            } else {
                0.0
            };
            push(Signal {
                kind: SignalKind::of_group(kind),
                source: key.id.clone(),
                value: value.clone(),
                support: Some(count),
                of: Some(all),
                confidence: p,
            });
        }
    }

    // The network it runs in.
    for (kind, id) in [
        (GroupKind::Vpc, &resource.attributes.vpc_id),
        (GroupKind::Subnet, &resource.attributes.subnet_id),
    ] {
        let Some(id) = id else { continue };
        let key = (
            kind,
            resource.account_id.clone(),
            resource.region.clone(),
            id.clone(),
        );
        let Some(object) = evidence.network.get(&key) else {
            continue;
        };
        if let Some((hint, value)) = network_hint(policy, object, tag)
            && accepts(&value)
        {
            let cell = evidence.calibration.hints.get(&(tag.clone(), hint));
            push(Signal {
                kind: match hint {
                    Hint::Tag => SignalKind::NetworkTag,
                    Hint::Name => SignalKind::NetworkName,
                },
                source: match &object.name {
                    Some(name) => format!("{} ({name})", object.id),
                    None => object.id.clone(),
                },
                value,
                support: None,
                of: None,
                confidence: Evidence::measured(cell),
            });
        }
    }

    // Its own name.
    if let Some(allowed) = allowed_values(policy, tag) {
        for word in name_tokens(resource) {
            if let Some(value) = allowed_named_by(&word, allowed)
                && accepts(value)
            {
                push(Signal {
                    kind: SignalKind::NameMatch,
                    source: word.clone(),
                    value: value.to_string(),
                    support: None,
                    of: None,
                    confidence: Evidence::measured(evidence.calibration.names.get(tag)),
                });
            }
        }
    }

    // Its current value, corrected.
    if let Some(current) = current_value {
        for signal in corrections(policy, tag, current) {
            if accepts(&signal.value) {
                push(signal);
            }
        }
    }

    let mut candidates: Vec<Candidate> = signals
        .into_iter()
        .map(|(value, mut evidence)| {
            evidence.sort_by(|a, b| {
                b.confidence
                    .total_cmp(&a.confidence)
                    .then(a.kind.cmp(&b.kind))
                    .then(a.source.cmp(&b.source))
            });
            let confidence = round(evidence[0].confidence);
            let reasoning = reasoning(tag, resource, &evidence);
            Candidate {
                value,
                confidence,
                reasoning,
                evidence,
            }
        })
        .filter(|c| c.confidence > 0.0)
        .collect();
    candidates.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.value.cmp(&b.value))
    });
    candidates.truncate(CANDIDATES_KEPT);
    let no_suggestion = candidates
        .is_empty()
        .then(|| no_suggestion_reason(policy, tag, related));
    TagSuggestion {
        tag: tag.to_string(),
        problem,
        current_value: current_value.map(str::to_string),
        candidates,
        no_suggestion,
    }
}

/// A confidence to three decimals, as shown.
fn round(p: f64) -> f64 {
    (p.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

/// Why there is no candidate for `tag`.
fn no_suggestion_reason(policy: &Policy, tag: &str, related: usize) -> String {
    if related > 0 {
        return format!(
            "the {related} group(s) of resources related to it carry no valid {tag} value the policy accepts"
        );
    }
    let names = if allowed_values(policy, tag).is_some() {
        ", and no word of its name matches an allowed value"
    } else {
        ""
    };
    format!(
        "nothing relates it to resources carrying a valid {tag}: no stack, Auto Scaling group, VPC or subnet with such resources, no word of its name shared with them, no other valid tag{names}"
    )
}

/// One sentence for the strongest signal, and how many others agree.
fn reasoning(tag: &str, resource: &Resource, evidence: &[Signal]) -> String {
    let s = &evidence[0];
    let v = &s.value;
    let (support, of) = (s.support.unwrap_or(0), s.of.unwrap_or(0));
    let mut sentence = match s.kind {
        SignalKind::Stack => format!(
            "{support} of the {of} other resources of CloudFormation stack {} with a valid {tag} carry {tag}={v}",
            s.source
        ),
        SignalKind::AutoScalingGroup => format!(
            "{support} of the {of} other instances of Auto Scaling group {} with a valid {tag} carry {tag}={v}",
            s.source
        ),
        SignalKind::Subnet => format!(
            "{support} of the {of} other resources in subnet {} with a valid {tag} carry {tag}={v}",
            s.source
        ),
        SignalKind::Vpc => format!(
            "{support} of the {of} other resources in VPC {} with a valid {tag} carry {tag}={v}",
            s.source
        ),
        SignalKind::SimilarResources => format!(
            "{support} of the {of} other {} resources in {} with a valid {tag} carry {tag}={v}",
            resource.resource_type,
            resource.attributes.vpc_id.as_deref().map_or_else(
                || "this account and region".to_string(),
                |vpc| format!("VPC {vpc}")
            )
        ),
        SignalKind::NameToken => format!(
            "{support} of the {of} resources whose names contain '{}' and carry a valid {tag} carry {tag}={v}",
            s.source
        ),
        SignalKind::OtherTag => format!(
            "{support} of the {of} resources tagged {} with a valid {tag} carry {tag}={v}",
            s.source
        ),
        SignalKind::NetworkTag => format!("its network {} is tagged {tag}={v}", s.source),
        SignalKind::NetworkName => format!(
            "the name of its network {} names the allowed value {v}",
            s.source
        ),
        SignalKind::NameMatch => format!(
            "its name contains '{}', which names the allowed value {v}",
            s.source
        ),
        SignalKind::CaseCorrection => format!(
            "its value '{}' differs from the allowed value '{v}' only in case",
            s.source
        ),
        SignalKind::NearMiss => format!(
            "its value '{}' is a near miss of the allowed value '{v}' and of no other",
            s.source
        ),
        SignalKind::FormatFix => format!(
            "its value '{}' fails the tag's format; '{v}' is the same value in the format",
            s.source
        ),
    };
    let others = evidence.len() - 1;
    if others > 0 {
        sentence.push_str(&format!(
            " ({others} more signal{} agree{})",
            if others == 1 { "" } else { "s" },
            if others == 1 { "s" } else { "" }
        ));
    }
    sentence
}

/// Confidence of a case-only correction: the policy names the value, only its case differs.
const CASE_CONFIDENCE: f64 = 0.95;

/// Confidence of a near miss of one allowed value (an abbreviation, one or two typos).
const NEAR_MISS_CONFIDENCE: f64 = 0.75;

/// Confidence of a value fixed to pass the tag's format (spacing, case, separators).
const FORMAT_FIX_CONFIDENCE: f64 = 0.6;

/// Corrections of an invalid `current` value of `tag`: an allowed value of another case, the
/// one allowed value it is a near miss of, or the value made to pass the format.
fn corrections(policy: &Policy, tag: &str, current: &str) -> Vec<Signal> {
    let signal = |kind, value: &str, confidence| Signal {
        kind,
        source: current.to_string(),
        value: value.to_string(),
        support: None,
        of: None,
        confidence,
    };
    let trimmed = current.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    if let Some(allowed) = allowed_values(policy, tag) {
        if let Some(v) = allowed.iter().find(|v| eq_ignore_case(v, trimmed))
            && v != current
        {
            return vec![signal(SignalKind::CaseCorrection, v, CASE_CONFIDENCE)];
        }
        if let Some(v) = allowed_named_by(trimmed, allowed) {
            return vec![signal(SignalKind::NearMiss, v, NEAR_MISS_CONFIDENCE)];
        }
        let lower = trimmed.to_lowercase();
        let near: Vec<&String> = allowed
            .iter()
            .filter(|v| {
                let limit = if v.chars().count() >= 8 { 2 } else { 1 };
                edit_distance(&v.to_lowercase(), &lower) <= limit
            })
            .collect();
        if let [v] = near.as_slice() {
            return vec![signal(SignalKind::NearMiss, v, NEAR_MISS_CONFIDENCE)];
        }
        return Vec::new();
    }
    // No list: try the obvious fixes of a format rule, most conservative first.
    let fixes = [
        trimmed.to_string(),
        trimmed.to_lowercase(),
        trimmed.replace([' ', '_'], "-"),
        trimmed.to_lowercase().replace([' ', '_'], "-"),
    ];
    fixes
        .iter()
        .find(|fix| fix.as_str() != current && tag_accepts(policy, None, tag, fix))
        .map(|fix| vec![signal(SignalKind::FormatFix, fix, FORMAT_FIX_CONFIDENCE)])
        .unwrap_or_default()
}

/// Levenshtein distance of two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(previous + usize::from(ca != *cb));
            previous = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The tags of a resource worth a suggestion: with `asked`, those tags; else every required
/// tag applying to its type that is missing or draws a finding. With the problem and the
/// current value of each.
pub fn tags_to_suggest(
    policy: &Policy,
    resource: &Resource,
    findings: &[Finding],
    asked: Option<&[Arc<str>]>,
) -> Vec<(Arc<str>, Problem, Option<String>)> {
    let ignore_case = !policy.naming().case_sensitivity;
    let ascii = keys_are_ascii(&resource.tags);
    let state = |tag: &Arc<str>| {
        let current =
            find_tag(&resource.tags, tag, ignore_case, ascii).map(|found| found.tag.value.clone());
        let on_tag = || findings.iter().filter(|f| *f.tag_name == **tag);
        let flagged = on_tag().next().is_some();
        let key_case_only =
            on_tag().all(|f| f.violation_type == crate::domain::ViolationType::KeyCaseMismatch);
        let problem = match (&current, flagged) {
            (None, _) => Problem::Missing,
            (Some(v), true) if v.trim().is_empty() => Problem::Missing,
            (Some(_), true) if key_case_only => Problem::KeyCase,
            (Some(_), true) => Problem::Invalid,
            (Some(_), false) => Problem::Requested,
        };
        (
            tag.clone(),
            problem,
            current.filter(|v| !v.trim().is_empty()),
        )
    };
    match asked {
        Some(tags) => tags.iter().map(state).collect(),
        None => policy
            .required_tags()
            .iter()
            .filter(|r| r.applies_to(&resource.resource_type))
            .map(|r| state(&r.name))
            .filter(|(_, problem, _)| *problem != Problem::Requested)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CostSource, GroupTagStats, ResourceAttributes};
    use crate::policy::default_policy;
    use proptest::prelude::*;

    fn resource(name: &str, stack: Option<&str>, tags: Vec<Tag>) -> Resource {
        Resource {
            arn: format!("arn:aws:rds:us-east-1:123456789012:db:{name}"),
            account_id: Arc::from("123456789012"),
            region: Arc::from("us-east-1"),
            resource_type: ResourceType::RdsDb,
            id: name.to_string(),
            name: Some(name.to_string()),
            tags,
            created_at: None,
            monthly_cost: None,
            cost_source: CostSource::Unknown,
            attributes: ResourceAttributes {
                cloudformation_stack: stack.map(str::to_string),
                ..ResourceAttributes::default()
            },
        }
    }

    /// `stacks` stacks of 6 to 14 resources, each resource tagged CostCenter=Finance with
    /// probability `finance` (else Sales), independently: the estate then measures what a
    /// stack's majority is worth.
    fn stats(stacks: usize, finance: f64) -> TagStats {
        let mut stats = TagStats::default();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut draw = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 10_000) as f64 / 10_000.0
        };
        for s in 0..stacks {
            let size = 6 + (s % 9) as u64;
            let finance_count = (0..size).filter(|_| draw() < finance).count() as u64;
            let mut group = GroupTagStats {
                resources: size,
                ..GroupTagStats::default()
            };
            let values = group.values.entry(Arc::from("CostCenter")).or_default();
            if finance_count > 0 {
                values.insert("Finance".to_string(), finance_count);
            }
            if size > finance_count {
                values.insert("Sales".to_string(), size - finance_count);
            }
            stats.groups.insert(
                GroupKey {
                    kind: GroupKind::Stack,
                    account: Arc::from("123456789012"),
                    region: Arc::from("us-east-1"),
                    id: format!("stack-{s}"),
                },
                group,
            );
        }
        stats
    }

    fn suggest(evidence: &Evidence, r: &Resource, tag: &str) -> TagSuggestion {
        let policy = default_policy();
        let findings = policy.validate(&r.resource_type, &r.tags);
        let subject = Subject {
            resource: r,
            findings: &findings,
            hidden: None,
        };
        let current = r
            .tags
            .iter()
            .find(|t| t.key == tag)
            .map(|t| t.value.as_str());
        suggest_tag(
            &policy,
            evidence,
            &subject,
            &Arc::from(tag),
            Problem::Missing,
            current,
        )
    }

    #[test]
    fn a_unanimous_stack_is_trusted_as_much_as_stacks_are_right_in_the_estate() {
        let policy = default_policy();
        let evidence = Evidence::new(stats(500, 1.0), Vec::new(), &policy);
        let r = resource("orders-db", Some("stack-3"), Vec::new());
        let s = suggest(&evidence, &r, "CostCenter");
        assert_eq!(s.candidates[0].value, "Finance");
        // Every stack is unanimous: every resource left out is predicted right.
        assert!(s.candidates[0].confidence > 0.97, "{s:?}");
        assert_eq!(s.candidates[0].evidence[0].kind, SignalKind::Stack);
        assert!(
            s.candidates[0].reasoning.contains("9 of the 9"),
            "{}",
            s.candidates[0].reasoning
        );
    }

    #[test]
    fn stacks_that_say_nothing_give_the_base_rate_not_their_majority() {
        let policy = default_policy();
        // Each resource is Finance with probability 0.6 whatever its stack: a stack's
        // majority tells nothing more, and the measured confidence says so.
        let evidence = Evidence::new(stats(3_000, 0.6), Vec::new(), &policy);
        let r = resource("orders-db", Some("stack-7"), Vec::new());
        let s = suggest(&evidence, &r, "CostCenter");
        for c in &s.candidates {
            assert!(c.confidence < 0.75, "{c:?}");
        }
        let unanimous = Evidence::new(stats(3_000, 1.0), Vec::new(), &policy);
        let sure = suggest(&unanimous, &r, "CostCenter");
        assert!(sure.candidates[0].confidence > s.candidates[0].confidence + 0.2);
    }

    #[test]
    fn no_signal_means_no_suggestion_and_a_reason() {
        let policy = default_policy();
        let evidence = Evidence::new(TagStats::default(), Vec::new(), &policy);
        let r = resource("x1", None, Vec::new());
        let s = suggest(&evidence, &r, "CostCenter");
        assert!(s.candidates.is_empty());
        assert!(s.no_suggestion.unwrap().contains("nothing relates it"));
    }

    #[test]
    fn corrections_of_case_near_misses_and_formats() {
        let policy = default_policy();
        let evidence = Evidence::new(TagStats::default(), Vec::new(), &policy);
        let case = suggest(
            &evidence,
            &resource("a", None, vec![Tag::new("Environment", "Production")]),
            "Environment",
        );
        assert_eq!(case.candidates[0].value, "production");
        assert_eq!(
            case.candidates[0].evidence[0].kind,
            SignalKind::CaseCorrection
        );
        let abbreviation = suggest(
            &evidence,
            &resource("b", None, vec![Tag::new("Environment", "prod")]),
            "Environment",
        );
        assert_eq!(abbreviation.candidates[0].value, "production");
        let typo = suggest(
            &evidence,
            &resource("c", None, vec![Tag::new("CostCenter", "Enginering")]),
            "CostCenter",
        );
        assert_eq!(typo.candidates[0].value, "Engineering");
        let format = suggest(
            &evidence,
            &resource("d", None, vec![Tag::new("Application", "Team Alpha")]),
            "Application",
        );
        assert_eq!(format.candidates[0].value, "team-alpha");
        let nothing = suggest(
            &evidence,
            &resource("e", None, vec![Tag::new("CostCenter", "legacy")]),
            "CostCenter",
        );
        assert!(nothing.candidates.is_empty());
    }

    #[test]
    fn a_name_word_names_an_allowed_value() {
        let policy = default_policy();
        let evidence = Evidence::new(TagStats::default(), Vec::new(), &policy);
        let s = suggest(
            &evidence,
            &resource("payments-prod-db", None, Vec::new()),
            "Environment",
        );
        assert_eq!(s.candidates[0].value, "production");
        assert!(
            s.candidates[0].confidence < CONFIDENT,
            "never measured: not confident"
        );
        assert!(s.candidates[0].reasoning.contains("'prod'"));
    }

    #[test]
    fn near_misses_are_unique() {
        let allowed: Vec<String> = ["production", "staging", "development", "test"]
            .map(String::from)
            .to_vec();
        assert_eq!(allowed_named_by("prod", &allowed), Some("production"));
        assert_eq!(allowed_named_by("stg", &allowed), Some("staging"));
        assert_eq!(allowed_named_by("dev", &allowed), Some("development"));
        assert_eq!(allowed_named_by("PRODUCTION", &allowed), Some("production"));
        assert_eq!(allowed_named_by("te", &allowed), None);
        assert_eq!(allowed_named_by("payments", &allowed), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    proptest! {
        /// Whatever the groups hold (valid values, invalid ones, ties), every candidate is a
        /// value the policy accepts, every confidence is within [0, 1], candidates are ranked
        /// and at most three, and the same question gives the same answer.
        #[test]
        fn suggestions_are_accepted_bounded_ranked_and_stable(
            groups in proptest::collection::vec(
                (0usize..4, proptest::collection::btree_map(
                    prop_oneof![
                        Just("Engineering".to_string()), Just("Sales".to_string()),
                        Just("engineering".to_string()), Just("tbd".to_string()),
                        Just("".to_string()), "[A-Za-z ]{0,12}",
                    ],
                    1u64..20, 1..5)),
                0..12),
            current in proptest::option::of("[A-Za-z _-]{0,14}"),
            name in "[a-z-]{1,20}",
        ) {
            let policy = default_policy();
            let mut stats = TagStats::default();
            for (i, (stack, values)) in groups.iter().enumerate() {
                let key = GroupKey {
                    kind: if i % 2 == 0 { GroupKind::Stack } else { GroupKind::NameToken },
                    account: Arc::from("123456789012"),
                    region: Arc::from("us-east-1"),
                    id: if i % 2 == 0 { format!("stack-{stack}") } else { name.split('-').next().unwrap_or("x").to_string() },
                };
                let group = stats.groups.entry(key).or_default();
                group.resources += values.values().sum::<u64>();
                for tag in ["CostCenter", "Environment"] {
                    group.values.insert(Arc::from(tag), values.clone());
                }
            }
            let evidence = Evidence::new(stats, Vec::new(), &policy);
            let mut tags = Vec::new();
            if let Some(current) = &current {
                tags.push(Tag::new("CostCenter", current.clone()));
            }
            let r = resource(&name, Some("stack-1"), tags);
            for tag in ["CostCenter", "Environment", "Owner"] {
                let first = suggest(&evidence, &r, tag);
                prop_assert_eq!(&first, &suggest(&evidence, &r, tag));
                prop_assert!(first.candidates.len() <= CANDIDATES_KEPT);
                prop_assert_eq!(first.candidates.is_empty(), first.no_suggestion.is_some());
                for pair in first.candidates.windows(2) {
                    prop_assert!(pair[0].confidence >= pair[1].confidence);
                }
                for c in &first.candidates {
                    prop_assert!((0.0..=1.0).contains(&c.confidence));
                    prop_assert!(
                        policy.validate(&r.resource_type, &[Tag::new(tag, c.value.clone())])
                            .iter()
                            .all(|f| *f.tag_name != *tag),
                        "{} is not accepted for {}", c.value, tag
                    );
                }
            }
        }
    }
}
