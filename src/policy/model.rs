//! The tagging policy: the JSON document as written, and the compiled form validation uses.

use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::domain::ResourceType;

/// The policy file, field for field. Unknown fields are errors so typos are caught at load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// The policy's version, recorded with every scan.
    pub version: String,
    /// When the policy was last changed (free text, usually a date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// Tags every resource in scope must carry.
    pub required_tags: Vec<RequiredTagRule>,
    /// Tags that are welcome; when present, their values are checked (warnings only).
    #[serde(default)]
    pub optional_tags: Vec<OptionalTagRule>,
    /// Rules on every tag's key and value.
    #[serde(default)]
    pub tag_naming_rules: NamingRules,
    /// Resources exempt from the policy, by ARN pattern, each with a reason and an expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exemptions: Vec<ExemptionRule>,
    /// A tag key that exempts the resource carrying it; its value is the last day and the
    /// reason: `2027-03-31 migrating to the new account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption_tag: Option<String>,
}

/// Resources exempt from the policy until a day, for a reason. Exempt resources are not
/// validated and not in the score; they are counted and listed as exempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExemptionRule {
    /// The ARNs exempt: `*` matches any run of characters, `?` one
    /// (`arn:aws:ec2:*:123456789012:instance/*`).
    pub arn_pattern: String,
    /// Why (shown with every exempt resource).
    pub reason: String,
    /// The last day the exemption holds (`YYYY-MM-DD`, UTC); from the next day the resources
    /// are validated again, and listed as under an expired exemption.
    pub expires: chrono::NaiveDate,
}

/// A required tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequiredTagRule {
    /// The tag key.
    pub name: String,
    /// What the tag is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The values the tag may take; absent means any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
    /// A regex the value must match (unanchored unless the pattern anchors itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_regex: Option<String>,
    /// Resource types the rule applies to; absent or empty means all. Each entry is a type
    /// (`ec2:instance`), every type of a service (`ec2:*`, or AWS's `ec2:ALL_SUPPORTED`), every
    /// type (`*`), or a CloudFormation type (`AWS::EC2::Instance`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applies_to: Vec<String>,
    /// Other keys accepted for this tag (`cost-center`, `costcenter` for `CostCenter`): a
    /// resource carrying one has the tag, with a `key_alias` warning to normalise the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The key's and the values' capitalisation are part of the rule (as in AWS tag
    /// policies): a key or a value matching only ignoring case is an error, not a warning.
    #[serde(default, skip_serializing_if = "is_false")]
    pub exact_case: bool,
    /// `*` in `allowed_values` matches any run of characters (`300*` allows `3001`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub wildcard_values: bool,
    /// On types outside `applies_to`, the tag is not required, but when present its key and
    /// value are checked by this rule (errors), as AWS tag policies check every tag they name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub checked_everywhere: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// An optional tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionalTagRule {
    /// The tag key.
    pub name: String,
    /// What the tag is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The values the tag may take when present; absent means any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_values: Option<Vec<String>>,
    /// Other keys accepted for this tag, with a `key_alias` warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// How a present value outside `allowed_values` (or a key in another case, with
    /// `exact_case`) counts: `warning` (default) or `error`, which makes the resource
    /// non-compliant though the tag is not required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<crate::domain::Severity>,
    /// As for required tags: case is part of the rule.
    #[serde(default, skip_serializing_if = "is_false")]
    pub exact_case: bool,
    /// As for required tags: `*` in `allowed_values` is a wildcard.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wildcard_values: bool,
}

/// Rules on keys and values of every tag (keys with the reserved `aws:` prefix excepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamingRules {
    /// `false`: keys and allowed values match ignoring case, and each case-only difference is
    /// a warning. `true` (AWS's own behaviour): a key in another case is a different tag.
    #[serde(default = "default_true")]
    pub case_sensitivity: bool,
    /// `false`: keys and values with characters outside letters, digits, spaces and
    /// `_ . : / = + - @` (the set every AWS service accepts) get a warning.
    #[serde(default = "default_true")]
    pub allow_special_characters: bool,
    /// Longest key without a warning (AWS allows 128).
    #[serde(default = "default_max_key_length")]
    pub max_key_length: usize,
    /// Longest value without a warning (AWS allows 256).
    #[serde(default = "default_max_value_length")]
    pub max_value_length: usize,
}

fn default_true() -> bool {
    true
}
fn default_max_key_length() -> usize {
    128
}
fn default_max_value_length() -> usize {
    256
}

impl Default for NamingRules {
    fn default() -> Self {
        NamingRules {
            case_sensitivity: true,
            allow_special_characters: true,
            max_key_length: default_max_key_length(),
            max_value_length: default_max_value_length(),
        }
    }
}

/// A required tag, compiled for the hot loop.
#[derive(Debug, Clone)]
pub struct CompiledRequired {
    /// The key as the policy spells it; shared into every finding.
    pub name: Arc<str>,
    /// Allowed values, shared into every `invalid_value` finding.
    pub allowed_values: Option<Arc<[String]>>,
    /// The compiled regex and its source text (matching ignoring case when the policy does).
    pub regex: Option<(Regex, Arc<str>)>,
    /// Without case sensitivity, the regex as written, case-sensitive: a value it rejects but
    /// `regex` accepts gets a case warning, as a value matching an allowed value only ignoring
    /// case does.
    pub regex_exact_case: Option<Regex>,
    /// Types the rule applies to.
    pub applies_to: TypeSet,
    /// Other keys accepted for the tag.
    pub aliases: Vec<Arc<str>>,
    /// Case differences are errors.
    pub exact_case: bool,
    /// Allowed values with `*`, as anchored regexes.
    pub wildcards: Arc<[Regex]>,
    /// Checked when present on types outside `applies_to`.
    pub checked_everywhere: bool,
}

impl CompiledRequired {
    /// Whether the rule applies to a resource type.
    pub fn applies_to(&self, resource_type: &ResourceType) -> bool {
        self.applies_to.contains(resource_type)
    }
}

/// A set of resource types: all of them, or some types and every type of some services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeSet {
    all: bool,
    types: Vec<ResourceType>,
    services: Vec<Arc<str>>,
}

impl TypeSet {
    /// Every resource type.
    pub fn all() -> TypeSet {
        TypeSet {
            all: true,
            ..TypeSet::default()
        }
    }

    /// Adds one type.
    pub fn add_type(&mut self, resource_type: ResourceType) {
        if !self.types.contains(&resource_type) {
            self.types.push(resource_type);
        }
    }

    /// Adds every type of `service`.
    pub fn add_service(&mut self, service: &str) {
        if !self.services.iter().any(|s| &**s == service) {
            self.services.push(Arc::from(service));
        }
    }

    /// Makes the set hold every type.
    pub fn add_all(&mut self) {
        self.all = true;
    }

    /// Whether the set holds `resource_type`.
    pub fn contains(&self, resource_type: &ResourceType) -> bool {
        self.all
            || self.types.contains(resource_type)
            || (!self.services.is_empty()
                && self
                    .services
                    .iter()
                    .any(|s| **s == *resource_type.service()))
    }

    /// Whether the set holds every type (`applies_to` empty or `*`).
    pub fn holds_every_type(&self) -> bool {
        self.all
    }

    /// Whether the set holds no type at all (every entry of `applies_to` was unresolvable).
    pub fn is_empty(&self) -> bool {
        !self.all && self.types.is_empty() && self.services.is_empty()
    }

    /// The single types in the set.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The services all of whose types are in the set (`ec2` for `ec2:*`).
    pub fn services(&self) -> &[Arc<str>] {
        &self.services
    }
}

/// An optional tag, compiled.
#[derive(Debug, Clone)]
pub struct CompiledOptional {
    /// The key as the policy spells it.
    pub name: Arc<str>,
    /// Allowed values, when the policy restricts them.
    pub allowed_values: Option<Arc<[String]>>,
    /// Other keys accepted for the tag.
    pub aliases: Vec<Arc<str>>,
    /// Severity of a present value outside `allowed_values`.
    pub severity: crate::domain::Severity,
    /// Case differences count at `severity`.
    pub exact_case: bool,
    /// Allowed values with `*`, as anchored regexes.
    pub wildcards: Arc<[Regex]>,
}

/// The allowed values of a rule with `wildcard_values` that hold `*`, as anchored,
/// case-sensitive regexes.
pub fn value_wildcards(values: Option<&[String]>, wildcard: bool) -> Arc<[Regex]> {
    if !wildcard {
        return Arc::from(Vec::new());
    }
    values
        .into_iter()
        .flatten()
        .filter(|v| v.contains('*'))
        .map(|v| glob(v, false))
        .collect::<Vec<_>>()
        .into()
}

/// An exemption rule, compiled.
#[derive(Debug, Clone)]
pub struct CompiledExemption {
    /// The pattern as written.
    pub pattern: Arc<str>,
    /// The pattern as an anchored regex.
    pub regex: Regex,
    /// Why.
    pub reason: Arc<str>,
    /// The last day it holds.
    pub expires: chrono::NaiveDate,
}

/// What exempts a resource, and whether it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptionHit {
    /// Active, expired, or unreadable.
    pub status: crate::domain::ExemptionStatus,
    /// `arn_pattern <pattern>` or `tag <key>`.
    pub exempted_by: String,
    /// Why.
    pub reason: String,
    /// The last day it holds, when known.
    pub expires: Option<chrono::NaiveDate>,
}

/// A day written exactly `YYYY-MM-DD` (ASCII digits, two for month and day), as the policy
/// documents it; chrono alone would also take `2027-3-1`, which Custodian exports could not.
fn strict_day(text: &str) -> Option<chrono::NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Active through its last day, expired from the next.
fn holds_until(
    expires: chrono::NaiveDate,
    today: chrono::NaiveDate,
) -> crate::domain::ExemptionStatus {
    if today <= expires {
        crate::domain::ExemptionStatus::Active
    } else {
        crate::domain::ExemptionStatus::Expired
    }
}

/// A glob of ARNs (`*` any run, `?` one character) as an anchored regex.
pub fn arn_glob(pattern: &str) -> Regex {
    glob(pattern, true)
}

/// A glob as an anchored regex: `*` any run of characters, and with `question_mark` `?` one
/// (AWS tag values know only `*`).
fn glob(pattern: &str, question_mark: bool) -> Regex {
    let mut re = String::with_capacity(pattern.len() + 8);
    re.push('^');
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' if question_mark => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).expect("an escaped glob is a valid regex")
}

/// A loaded, checked and compiled policy. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The document as loaded, for display (`get_tagging_policy`).
    pub document: PolicyDocument,
    /// Where it came from (file name or `built-in`), for messages.
    pub origin: String,
    pub(crate) required: Vec<CompiledRequired>,
    pub(crate) optional: Vec<CompiledOptional>,
    pub(crate) exemptions: Vec<CompiledExemption>,
    /// Things that load but are probably mistakes (an unknown resource type in `applies_to`, a
    /// policy that checks nothing); errors when the policy is loaded strictly.
    pub warnings: Vec<String>,
}

impl Policy {
    /// The policy's version string.
    pub fn version(&self) -> &str {
        &self.document.version
    }

    /// The naming rules.
    pub fn naming(&self) -> &NamingRules {
        &self.document.tag_naming_rules
    }

    /// Required tags, compiled.
    pub fn required_tags(&self) -> &[CompiledRequired] {
        &self.required
    }

    /// Optional tags, compiled.
    pub fn optional_tags(&self) -> &[CompiledOptional] {
        &self.optional
    }

    /// Whether some required tag applies to a resource type (else the resource is counted
    /// as not applicable, outside the score).
    pub fn applies_to_type(&self, resource_type: &ResourceType) -> bool {
        self.required.iter().any(|r| r.applies_to(resource_type))
    }

    /// The exemption that names a resource (by its ARN or its exemption tag) on `today`, if
    /// any: an active one first; an expired or unreadable one otherwise (the resource is then
    /// validated, and the exemption listed with why it does not hold).
    pub fn exemption_for(
        &self,
        arn: &str,
        tags: &[crate::domain::Tag],
        today: chrono::NaiveDate,
    ) -> Option<ExemptionHit> {
        use crate::domain::ExemptionStatus;
        let mut lapsed = None;
        for rule in &self.exemptions {
            if rule.regex.is_match(arn) {
                let hit = ExemptionHit {
                    status: holds_until(rule.expires, today),
                    exempted_by: format!("arn_pattern {}", rule.pattern),
                    reason: rule.reason.to_string(),
                    expires: Some(rule.expires),
                };
                if hit.status == ExemptionStatus::Active {
                    return Some(hit);
                }
                lapsed.get_or_insert(hit);
            }
        }
        if let Some(key) = &self.document.exemption_tag
            && let Some(tag) = tags.iter().find(|t| t.key == *key)
        {
            let value = tag.value.trim();
            let (day, reason) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
            let reason = reason.trim_start_matches([':', '-', ' ']).trim();
            let hit = match strict_day(day.trim_end_matches(':')) {
                Some(expires) if !reason.is_empty() => ExemptionHit {
                    status: holds_until(expires, today),
                    exempted_by: format!("tag {key}"),
                    reason: reason.to_string(),
                    expires: Some(expires),
                },
                _ => ExemptionHit {
                    status: ExemptionStatus::Invalid,
                    exempted_by: format!("tag {key}"),
                    reason: format!(
                        "the value '{}' is not 'YYYY-MM-DD reason'",
                        crate::domain::text::show(&crate::domain::text::truncate(value, 80))
                    ),
                    expires: None,
                },
            };
            if hit.status == ExemptionStatus::Active {
                return Some(hit);
            }
            lapsed.get_or_insert(hit);
        }
        lapsed
    }

    /// Whether the policy has any exemption (so the hot loop skips the check otherwise).
    pub fn has_exemptions(&self) -> bool {
        !self.exemptions.is_empty() || self.document.exemption_tag.is_some()
    }

    /// Required tags that apply to a resource type.
    pub fn required_for<'a>(
        &'a self,
        resource_type: &'a ResourceType,
    ) -> impl Iterator<Item = &'a CompiledRequired> + 'a {
        self.required
            .iter()
            .filter(move |r| r.applies_to(resource_type))
    }
}
