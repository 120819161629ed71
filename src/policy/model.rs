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
}

/// An optional tag, compiled.
#[derive(Debug, Clone)]
pub struct CompiledOptional {
    /// The key as the policy spells it.
    pub name: Arc<str>,
    /// Allowed values, when the policy restricts them.
    pub allowed_values: Option<Arc<[String]>>,
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
