//! The vocabulary shared by every layer: resources, their types and tags, money, scan scope,
//! the mergeable tally a scan builds, and its result.
//!
//! Pure data: no I/O, no async runtime, no AWS SDK types.

mod arn;
pub mod arn_forms;
pub mod costing;
mod filters;
mod money;
mod result;
mod tags;
mod tally;
pub mod text;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use arn::{Arn, ArnError, Placeholder, form_placeholders, render_form};
pub use filters::{ParsedScope, ScopeFieldNames, parse_scope};
pub use money::{CostSource, Usd, UsdError};
pub(crate) use result::Interner;
pub use result::{
    ComplianceTotals, MergeError, Origin, ResourceRef, ScanIssue, ScanIssueKind, ScanMeta,
    ScanResult, Violation, ViolationRecord,
};
pub use tags::{LookAlike, TagMatch, eq_ignore_case, find_tag, keys_are_ascii, look_alike};
pub use tally::{
    CostSplit, CostSums, CostTally, ExemptResource, ExemptionStatus, GroupKey, GroupKind,
    GroupTagStats, OFFENDERS_KEPT, Offender, Offenders, RunKey, TagCostSums, TagCounts, TagStats,
    TagStatsSpec, Tally, TallyOptions, TypeCounts, ViolationRuns, groups_of, name_tokens,
};

/// Gives a fieldless enum one spelling per variant, used everywhere: `as_str`, `Display`,
/// `FromStr` (whose error lists the choices), serde in both directions and a JSON Schema of
/// the names. `$what` names the kind of value in errors (`'x' is not a severity filter: ...`).
macro_rules! string_enum {
    ($name:ident $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case name used in every output format.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        Err(format!(
                            "'{other}' is not {}: use {}",
                            $what,
                            $crate::domain::one_of(&names)
                        ))
                    }
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "enum": [$($text),+]
                })
            }
        }
    };
}
pub(crate) use string_enum;

/// `a`, `a or b`, `a, b or c`: a list of choices for a message.
pub(crate) fn one_of(names: &[&str]) -> String {
    joined(names, "or")
}

/// `a`, `a and b`, `a, b and c`: a list for a message.
pub(crate) fn all_of(names: &[&str]) -> String {
    joined(names, "and")
}

fn joined(names: &[&str], last_word: &str) -> String {
    match names {
        [] => String::new(),
        [only] => only.to_string(),
        [init @ .., last] => format!("{} {last_word} {last}", init.join(", ")),
    }
}

/// A resource type as `service:type` (`ec2:instance`). The five types the scanner lists
/// natively are variants, so comparing them in the hot loop is an integer compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// `ec2:instance`
    Ec2Instance,
    /// `rds:db`
    RdsDb,
    /// `s3:bucket`
    S3Bucket,
    /// `lambda:function`
    LambdaFunction,
    /// `ecs:service`
    EcsService,
    /// Any other `service:type`, as found in ARNs or written in a policy.
    Other(Arc<str>),
}

/// Why a string is not a resource type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a resource type: expected 'service:type', e.g. 'ec2:instance'")]
pub struct ResourceTypeError(pub String);

impl ResourceType {
    /// The five types with dedicated fetchers, in display order.
    pub const NATIVE: [ResourceType; 5] = [
        ResourceType::Ec2Instance,
        ResourceType::RdsDb,
        ResourceType::S3Bucket,
        ResourceType::LambdaFunction,
        ResourceType::EcsService,
    ];

    /// Builds a type from an ARN's service and resource kind.
    pub fn from_parts(service: &str, kind: &str) -> ResourceType {
        match (service, kind) {
            ("ec2", "instance") => ResourceType::Ec2Instance,
            ("rds", "db") => ResourceType::RdsDb,
            ("s3", "bucket") => ResourceType::S3Bucket,
            ("lambda", "function") => ResourceType::LambdaFunction,
            ("ecs", "service") => ResourceType::EcsService,
            _ => ResourceType::Other(Arc::from(format!("{service}:{kind}"))),
        }
    }

    /// A type outside the native five, from its `service:type` text.
    pub fn other(text: &str) -> ResourceType {
        ResourceType::Other(Arc::from(text))
    }

    /// `service:type`.
    pub fn as_str(&self) -> &str {
        match self {
            ResourceType::Ec2Instance => "ec2:instance",
            ResourceType::RdsDb => "rds:db",
            ResourceType::S3Bucket => "s3:bucket",
            ResourceType::LambdaFunction => "lambda:function",
            ResourceType::EcsService => "ecs:service",
            ResourceType::Other(text) => text,
        }
    }

    /// The service namespace (`ec2`), which is also the unit of AWS rate limits.
    pub fn service(&self) -> &str {
        let text = self.as_str();
        text.split(':').next().unwrap_or(text)
    }
}

impl FromStr for ResourceType {
    type Err = ResourceTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        match text.split_once(':') {
            Some((service, kind))
                if !service.is_empty()
                    && !kind.is_empty()
                    && !kind.contains(':')
                    && !text.contains(char::is_whitespace) =>
            {
                Ok(ResourceType::from_parts(service, kind))
            }
            _ => Err(ResourceTypeError(s.to_string())),
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResourceType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResourceType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ResourceType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ResourceType".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A resource type as service:type, e.g. ec2:instance."
        })
    }
}

/// The resource types tagguard knows: those of the ARN forms in `arn_forms.rs`, sorted. A
/// type outside this list is accepted (AWS adds types often) but named in a warning, since it
/// is usually a typo; a type that differs from one of these only in case is an error.
pub fn known_resource_types() -> &'static [String] {
    &arn::KNOWN_TYPES
}

/// How a resource type relates to [`known_resource_types`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeCheck {
    /// A known type.
    Known,
    /// Not known: a warning, since AWS adds types.
    Unknown,
    /// Differs from a known type only in case: an error (types are case-sensitive).
    WrongCase(&'static str),
}

impl ResourceType {
    /// Checks the type against [`known_resource_types`].
    pub fn check(&self) -> TypeCheck {
        let text = self.as_str();
        let known = known_resource_types();
        if known.binary_search_by(|k| k.as_str().cmp(text)).is_ok() {
            return TypeCheck::Known;
        }
        match known.iter().find(|k| k.eq_ignore_ascii_case(text)) {
            Some(known) => TypeCheck::WrongCase(known.as_str()),
            None => TypeCheck::Unknown,
        }
    }

    /// The type a CloudFormation resource type (`AWS::EC2::Instance`) creates, if tagguard
    /// knows it; a name in another case (`aws::ec2::instance`) is read too.
    pub fn from_cloudformation(name: &str) -> Option<ResourceType> {
        ResourceType::from_cloudformation_exactly(name).map(|(t, _)| t)
    }

    /// As `from_cloudformation`, saying whether the name was written exactly as
    /// CloudFormation writes it.
    pub fn from_cloudformation_exactly(name: &str) -> Option<(ResourceType, bool)> {
        let find = |matches: &dyn Fn(&str) -> bool| {
            arn_forms::FORMS
                .iter()
                .find(|form| form.4.split(' ').any(matches))
                .map(|form| ResourceType::from_parts(form.0, form.1))
        };
        find(&|cfn| cfn == name)
            .map(|t| (t, true))
            .or_else(|| find(&|cfn| cfn.eq_ignore_ascii_case(name)).map(|t| (t, false)))
    }
}

/// Region label of resources that belong to no region.
pub const GLOBAL_REGION: &str = "global";

/// Whether `text` is an AWS account id: twelve ASCII digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Account label of resources whose ARN names no account and whose source gives none (S3
/// buckets, Route 53 zones and API Gateway APIs in a snapshot without `AccountId`).
pub const UNKNOWN_ACCOUNT: &str = "unknown";

/// One tag as AWS returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// The tag key, case preserved.
    pub key: String,
    /// The tag value; may be empty.
    pub value: String,
}

impl Tag {
    /// A tag from a key and a value.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Attributes beyond tags that reports, cost and suggestions use. All optional: sources fill
/// what they know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceAttributes {
    /// EC2 instance type or RDS DB instance class (`t3.micro`, `db.r6g.large`).
    pub instance_type: Option<String>,
    /// VPC the resource runs in.
    pub vpc_id: Option<String>,
    /// Subnet the resource runs in.
    pub subnet_id: Option<String>,
    /// CloudFormation stack that created the resource (from `aws:cloudformation:stack-name`).
    pub cloudformation_stack: Option<String>,
    /// Auto Scaling group the instance belongs to.
    pub autoscaling_group: Option<String>,
    /// Security groups attached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// IAM instance profile of an EC2 instance.
    pub iam_instance_profile: Option<String>,
}

/// A network object resources run in (a VPC or a subnet), with its name and tags: what
/// suggestions read besides the resources (an `Environment` the VPC carries, `prod` in its
/// name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkObject {
    /// `vpc` or `subnet`.
    pub kind: GroupKind,
    /// The account.
    pub account_id: Arc<str>,
    /// The region.
    pub region: Arc<str>,
    /// `vpc-…` or `subnet-…`.
    pub id: String,
    /// Its `Name` tag.
    pub name: Option<String>,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// A resource as every source delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The full ARN; unique across accounts and regions.
    pub arn: String,
    /// The owning account (12 digits), shared between the resources of a shard.
    pub account_id: Arc<str>,
    /// The region the resource lives in (`us-east-1`); S3 buckets carry their bucket region.
    pub region: Arc<str>,
    /// `service:type`.
    pub resource_type: ResourceType,
    /// The id inside its type (`i-0abc`, a bucket name).
    pub id: String,
    /// A human name when the service has one (`Name` tag, DB identifier).
    pub name: Option<String>,
    /// The tags, in the order the source returned them.
    pub tags: Vec<Tag>,
    /// When the resource was created, when known.
    pub created_at: Option<DateTime<Utc>>,
    /// Monthly cost when known; `None` means unknown, never zero.
    pub monthly_cost: Option<Usd>,
    /// Where `monthly_cost` comes from (`Unknown` exactly when it is `None`).
    pub cost_source: CostSource,
    /// Extra attributes.
    pub attributes: ResourceAttributes,
}

impl Resource {
    /// Age in whole days at `now`, when the creation time is known.
    pub fn age_days(&self, now: DateTime<Utc>) -> Option<i64> {
        result::age_days(self.created_at, now)
    }
}

/// Severity of a violation. Only errors make a resource non-compliant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Breaks the policy: the resource is non-compliant.
    Error,
    /// Worth fixing, never makes a resource non-compliant.
    Warning,
}

string_enum!(Severity "a severity" {
    Error => "error",
    Warning => "warning",
});

/// Which violations a result lists. The score and counts always cover everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SeverityFilter {
    /// Errors and warnings.
    #[default]
    All,
    /// Errors only.
    ErrorsOnly,
    /// Warnings only.
    WarningsOnly,
}

impl SeverityFilter {
    /// Whether a violation of this severity is listed.
    pub fn admits(self, severity: Severity) -> bool {
        match self {
            SeverityFilter::All => true,
            SeverityFilter::ErrorsOnly => severity == Severity::Error,
            SeverityFilter::WarningsOnly => severity == Severity::Warning,
        }
    }
}

string_enum!(SeverityFilter "a severity filter" {
    All => "all",
    ErrorsOnly => "errors_only",
    WarningsOnly => "warnings_only",
});

/// The kind of a policy violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationType {
    /// A required tag that applies to the resource's type is absent.
    MissingRequiredTag,
    /// A required tag is present with an empty (or blank) value.
    EmptyValue,
    /// The value is not in the tag's `allowed_values` (error for required tags, warning for
    /// optional ones).
    InvalidValue,
    /// The value does not match the tag's `validation_regex`.
    InvalidFormat,
    /// The key matches a policy tag only when case is ignored (`costcenter` for `CostCenter`).
    KeyCaseMismatch,
    /// The value matches an allowed value only when case is ignored.
    ValueCaseMismatch,
    /// The key is longer than `max_key_length`.
    KeyTooLong,
    /// The value is longer than `max_value_length`.
    ValueTooLong,
    /// The key or value has characters outside letters, digits, spaces and `_ . : / = + - @`.
    InvalidCharacters,
    /// The key is one of the tag's aliases in the policy (`cost-center` for `CostCenter`):
    /// accepted, with a warning to normalise it.
    KeyAlias,
}

string_enum!(ViolationType "a violation type" {
    MissingRequiredTag => "missing_required_tag",
    EmptyValue => "empty_value",
    InvalidValue => "invalid_value",
    InvalidFormat => "invalid_format",
    KeyCaseMismatch => "key_case_mismatch",
    ValueCaseMismatch => "value_case_mismatch",
    KeyTooLong => "key_too_long",
    ValueTooLong => "value_too_long",
    InvalidCharacters => "invalid_characters",
    KeyAlias => "key_alias",
});

/// What a finding compares the tag against, kept by reference to the compiled policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// Nothing to show beyond the violation type.
    Nothing,
    /// The tag's allowed values.
    AllowedValues(Arc<[String]>),
    /// The tag's validation regex.
    Pattern(Arc<str>),
    /// The canonical spelling (of the key, or of the allowed value).
    Canonical(Arc<str>),
    /// The configured maximum length.
    MaxLength(usize),
}

/// One violation found on one resource by the policy, without the resource's identity.
/// Built only when something is wrong, so the compliant path allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What is wrong.
    pub violation_type: ViolationType,
    /// Error or warning.
    pub severity: Severity,
    /// The policy's name of the tag (or the resource's key, for naming rules).
    pub tag_name: Arc<str>,
    /// The value found on the resource (the key found, for a key case mismatch).
    pub current_value: Option<Box<str>>,
    /// What the value was compared against.
    pub expected: Expected,
}

/// What a scan covers. Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScanScope {
    /// Resource types to scan; empty means every type the source knows.
    pub resource_types: BTreeSet<ResourceType>,
    /// Regions to scan; empty means the source's default regions.
    pub regions: BTreeSet<String>,
    /// Accounts to scan; empty means the source's default accounts.
    pub accounts: BTreeSet<String>,
    /// Exact ARNs to check; empty means every resource. Set, the result lists the ARNs that
    /// were found in the tally's `matched_arns`, so that a compliant resource can be told
    /// from one that does not exist.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub arns: BTreeSet<String>,
}

impl ScanScope {
    /// Whether a resource type is in scope.
    pub fn admits_type(&self, resource_type: &ResourceType) -> bool {
        self.resource_types.is_empty() || self.resource_types.contains(resource_type)
    }

    /// Whether a region is in scope. Resources of no region (`global`: CloudFront, Route 53,
    /// S3 buckets of a snapshot that does not say) belong to every region's scope: a region
    /// filter cannot place them, and dropping them would hide them.
    pub fn admits_region(&self, region: &str) -> bool {
        self.regions.is_empty() || region == GLOBAL_REGION || self.regions.contains(region)
    }

    /// Whether an account is in scope. Resources of no known account (`unknown`: S3 buckets,
    /// Route 53 zones, API Gateway APIs of a snapshot that does not say) belong to every
    /// account's scope, as resources of no region belong to every region's: an account
    /// filter cannot place them, and dropping them would hide them.
    pub fn admits_account(&self, account: &str) -> bool {
        self.accounts.is_empty() || account == UNKNOWN_ACCOUNT || self.accounts.contains(account)
    }

    /// The scope as text, the same for the same sets whatever the order they were given in:
    /// `types|regions|accounts|arns`, each list comma-separated. Keys history and the cache.
    pub fn key(&self) -> String {
        fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
            items.collect::<Vec<_>>().join(",")
        }
        format!(
            "{}|{}|{}|{}",
            join(self.resource_types.iter().map(ResourceType::as_str)),
            join(self.regions.iter().map(String::as_str)),
            join(self.accounts.iter().map(String::as_str)),
            join(self.arns.iter().map(String::as_str)),
        )
    }

    /// Whether a resource is in scope: its type, region and account all pass.
    pub fn admits(&self, resource: &Resource) -> bool {
        self.admits_type(&resource.resource_type)
            && self.admits_region(&resource.region)
            && self.admits_account(&resource.account_id)
            && (self.arns.is_empty() || self.arns.contains(&resource.arn))
    }
}

/// A scan's id: time-ordered, unique within a process. Printed as `scan-` and 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScanId(pub u64);

impl Serialize for ScanId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for ScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scan-{:016x}", self.0)
    }
}

impl FromStr for ScanId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("scan-")
            .filter(|hex| hex.len() == 16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(ScanId)
            .ok_or_else(|| format!("'{s}' is not a scan id: expected scan- and 16 hex digits"))
    }
}

impl<'de> Deserialize<'de> for ScanId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ScanId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScanId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A scan's id: scan- and 16 hex digits (time-ordered)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types_parse_and_print() {
        for text in [
            "ec2:instance",
            "rds:db",
            "s3:bucket",
            "lambda:function",
            "ecs:service",
        ] {
            let parsed: ResourceType = text.parse().unwrap();
            assert!(
                !matches!(parsed, ResourceType::Other(_)),
                "{text} is native"
            );
            assert_eq!(parsed.to_string(), text);
        }
        let other: ResourceType = "dynamodb:table".parse().unwrap();
        assert_eq!(other, ResourceType::other("dynamodb:table"));
        assert_eq!(other.service(), "dynamodb");
        for bad in ["ec2", ":instance", "ec2:", "ec2 :x", "a:b:c"] {
            assert!(bad.parse::<ResourceType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn severity_filter_admits_what_it_names() {
        assert!(SeverityFilter::All.admits(Severity::Warning));
        assert!(SeverityFilter::ErrorsOnly.admits(Severity::Error));
        assert!(!SeverityFilter::ErrorsOnly.admits(Severity::Warning));
        assert!(!SeverityFilter::WarningsOnly.admits(Severity::Error));
        assert_eq!("errors_only".parse(), Ok(SeverityFilter::ErrorsOnly));
        assert!("errors".parse::<SeverityFilter>().is_err());
    }
}
