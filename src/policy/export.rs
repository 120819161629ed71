//! Export of the tagging policy to Cloud Custodian: YAML policies, one per Custodian resource,
//! whose filters flag exactly the resources tagguard finds non-compliant, and notes on what
//! could not be expressed.
//!
//! How tagguard's rules become Custodian filters (each policy's filters are
//! `not: [or: exemptions]` and `or: violations`):
//! - a tag is looked up as tagguard looks it up: its exact key, then (when the policy ignores
//!   case) the key in any case (`tag_key_transforms: [lower]`), then each alias the same way;
//!   the first one present is the tag judged, so every condition on a later lookup requires the
//!   earlier ones `absent`;
//! - a required tag that applies is flagged when every lookup is absent, or when the tag judged
//!   is blank, outside `allowed_values` (with `*` wildcards and case forgiven as the policy
//!   says) or fails `validation_regex`; with `exact_case`, a key found only ignoring case is
//!   flagged too; `checked_everywhere` tags and optional tags of severity `error` are flagged
//!   on the same terms when present;
//! - value tests are Python regexes matched with `op: regex-case` (`re.match`, which fails on
//!   an absent tag); a failed test is a negative lookahead, `(?!…)`; the policy's regex is
//!   parsed as tagguard compiles it and written out with flags applied and case-insensitivity,
//!   `\w`, `\d`, `\s`, `.` and Unicode classes as explicit ranges, so that nothing depends on
//!   Python's own tables; allowed values compared ignoring case are spelt out the same way;
//! - keys ignoring case go through Custodian's `tag_key_transforms: [lower]` (Python's
//!   `str.lower()`), which differs from tagguard's comparison only on a final sigma (noted);
//! - exemptions: an ARN pattern matched against the resource's ARN (its field, or one built
//!   from its id with Custodian's `{partition}`, `{region}` and `{account_id}` variables),
//!   while its last day has not passed (`value_type: expiration`, the day as a JMESPath
//!   literal, with its time zone); the exemption tag while its value reads `YYYY-MM-DD
//!   reason` and the day is not before the UTC date Custodian writes in when it runs;
//! - naming rules and everything else that only warns make no resource non-compliant, so
//!   nothing of them is exported.
//!
//! Custodian formats every string of a policy with its variables before it runs it, so every
//! `{` and `}` that is not one of those variables is doubled.

use std::collections::BTreeSet;

use regex_syntax::hir::{Class, Hir, HirKind, Look};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::model::{CompiledRequired, Policy};
use crate::domain::{ResourceType, Severity};

/// Where a Custodian resource's ARN is: a field of the resource, or built from a prefix and
/// its id field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArnSource {
    /// The resource carries its ARN in this field.
    Field(&'static str),
    /// The ARN is the prefix (with Custodian's variables) followed by this id field.
    Built(&'static str, &'static str),
}

/// A Custodian resource and the tagguard type of what it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustodianResource {
    /// tagguard's type (`ec2:instance`).
    pub resource_type: &'static str,
    /// Custodian's resource name, without the `aws.` prefix.
    pub resource: &'static str,
    /// Where its ARN is.
    pub arn: ArnSource,
}

const fn field(
    resource_type: &'static str,
    resource: &'static str,
    arn: &'static str,
) -> CustodianResource {
    CustodianResource {
        resource_type,
        resource,
        arn: ArnSource::Field(arn),
    }
}

const fn built(
    resource_type: &'static str,
    resource: &'static str,
    prefix: &'static str,
    id: &'static str,
) -> CustodianResource {
    CustodianResource {
        resource_type,
        resource,
        arn: ArnSource::Built(prefix, id),
    }
}

/// The Custodian resources tagguard exports to, by tagguard type. A test checks each against
/// Custodian's own resource metadata (its CloudFormation type and ARN form).
#[rustfmt::skip]
pub const CUSTODIAN_RESOURCES: &[CustodianResource] = &[
    built("ec2:instance", "ec2", "arn:{partition}:ec2:{region}:{account_id}:instance/", "InstanceId"),
    built("ec2:volume", "ebs", "arn:{partition}:ec2:{region}:{account_id}:volume/", "VolumeId"),
    built("ec2:security-group", "security-group", "arn:{partition}:ec2:{region}:{account_id}:security-group/", "GroupId"),
    built("ec2:vpc", "vpc", "arn:{partition}:ec2:{region}:{account_id}:vpc/", "VpcId"),
    built("ec2:subnet", "subnet", "arn:{partition}:ec2:{region}:{account_id}:subnet/", "SubnetId"),
    built("ec2:network-interface", "eni", "arn:{partition}:ec2:{region}:{account_id}:network-interface/", "NetworkInterfaceId"),
    built("ec2:elastic-ip", "elastic-ip", "arn:{partition}:ec2:{region}:{account_id}:elastic-ip/", "AllocationId"),
    built("ec2:natgateway", "nat-gateway", "arn:{partition}:ec2:{region}:{account_id}:natgateway/", "NatGatewayId"),
    built("ec2:internet-gateway", "internet-gateway", "arn:{partition}:ec2:{region}:{account_id}:internet-gateway/", "InternetGatewayId"),
    built("ec2:route-table", "route-table", "arn:{partition}:ec2:{region}:{account_id}:route-table/", "RouteTableId"),
    built("ec2:network-acl", "network-acl", "arn:{partition}:ec2:{region}:{account_id}:network-acl/", "NetworkAclId"),
    built("ec2:vpc-endpoint", "vpc-endpoint", "arn:{partition}:ec2:{region}:{account_id}:vpc-endpoint/", "VpcEndpointId"),
    field("ec2:transit-gateway", "transit-gateway", "TransitGatewayArn"),
    field("rds:db", "rds", "DBInstanceArn"),
    field("rds:cluster", "rds-cluster", "DBClusterArn"),
    built("s3:bucket", "s3", "arn:{partition}:s3:::", "Name"),
    field("lambda:function", "lambda", "FunctionArn"),
    field("ecs:service", "ecs-service", "serviceArn"),
    field("ecs:cluster", "ecs", "clusterArn"),
    field("ecs:task-definition", "ecs-task-definition", "taskDefinitionArn"),
    field("dynamodb:table", "dynamodb-table", "TableArn"),
    field("sqs:queue", "sqs", "QueueArn"),
    field("sns:topic", "sns", "TopicArn"),
    field("elasticloadbalancing:loadbalancer", "app-elb", "LoadBalancerArn"),
    built("elasticloadbalancing:loadbalancer", "elb", "arn:{partition}:elasticloadbalancing:{region}:{account_id}:loadbalancer/", "LoadBalancerName"),
    field("elasticfilesystem:file-system", "efs", "FileSystemArn"),
    built("elasticache:cluster", "cache-cluster", "arn:{partition}:elasticache:{region}:{account_id}:cluster:", "CacheClusterId"),
    built("kinesis:stream", "kinesis", "arn:{partition}:kinesis:{region}:{account_id}:stream/", "StreamName"),
    field("kms:key", "kms-key", "Arn"),
    field("secretsmanager:secret", "secrets-manager", "ARN"),
    built("logs:log-group", "log-group", "arn:{partition}:logs:{region}:{account_id}:log-group:", "logGroupName"),
    field("eks:cluster", "eks", "arn"),
    field("ecr:repository", "ecr", "repositoryArn"),
    field("autoscaling:autoScalingGroup", "asg", "AutoScalingGroupARN"),
    field("cloudformation:stack", "cfn", "StackId"),
    built("redshift:cluster", "redshift", "arn:{partition}:redshift:{region}:{account_id}:cluster:", "ClusterIdentifier"),
    field("states:stateMachine", "step-machine", "stateMachineArn"),
    field("es:domain", "elasticsearch", "ARN"),
    field("iam:role", "iam-role", "Arn"),
    field("iam:user", "iam-user", "Arn"),
    field("cloudfront:distribution", "distribution", "ARN"),
    field("sagemaker:notebook-instance", "sagemaker-notebook", "NotebookInstanceArn"),
    field("sagemaker:endpoint", "sagemaker-endpoint", "EndpointArn"),
    field("cloudtrail:trail", "cloudtrail", "TrailARN"),
    field("acm:certificate", "acm-certificate", "CertificateArn"),
    field("backup:backup-vault", "backup-vault", "BackupVaultArn"),
    field("kafka:cluster", "kafka", "ClusterArn"),
    field("events:rule", "event-rule", "Arn"),
    field("cloudwatch:alarm", "alarm", "AlarmArn"),
    field("codebuild:project", "codebuild", "arn"),
];

impl CustodianResource {
    /// The JMESPath expression of the resource's ARN.
    pub fn arn_expression(&self) -> String {
        match self.arn {
            ArnSource::Field(name) => name.to_string(),
            ArnSource::Built(prefix, id) => format!("join('', ['{prefix}', {id}])"),
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Only these tagguard types (empty: every type of [`CUSTODIAN_RESOURCES`] the policy can
    /// flag).
    pub types: Vec<ResourceType>,
    /// Each policy is named `{prefix}-{custodian resource}`.
    pub name_prefix: String,
}

impl ExportOptions {
    /// Options from what a user wrote: resource types (`service:type`) and a name prefix.
    pub fn parse(types: &[String], name_prefix: &str) -> Result<ExportOptions, String> {
        if !valid_name_prefix(name_prefix) {
            return Err(format!(
                "'{name_prefix}' cannot begin a Cloud Custodian policy name: use letters and digits, words joined by '-', starting with a letter"
            ));
        }
        let types = types
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.parse::<ResourceType>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExportOptions {
            types,
            name_prefix: name_prefix.to_string(),
        })
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            types: Vec::new(),
            name_prefix: "tagguard".to_string(),
        }
    }
}

/// The export: the YAML file, what each policy tests, and what could not be expressed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CustodianExport {
    /// The Custodian policy file (`policies:`), ready for `custodian validate` and `custodian
    /// run`; it has no actions, so it only reports.
    pub yaml: String,
    /// One entry per policy of the file.
    pub policies: Vec<ExportedPolicy>,
    /// What could not be expressed or was left out, and why.
    pub notes: Vec<String>,
}

/// One Custodian policy.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExportedPolicy {
    /// The policy's name.
    pub name: String,
    /// Custodian's resource (`aws.ec2`).
    pub resource: String,
    /// tagguard's type of those resources.
    pub resource_type: String,
    /// What makes a resource match, one line per condition (any of them flags it).
    pub conditions: Vec<String>,
    /// What exempts a resource (none of them may hold).
    pub exemptions: Vec<String>,
}

/// Whether a policy name prefix is one Custodian accepts: letters and digits in words joined
/// by `-`, starting with a letter.
pub fn valid_name_prefix(prefix: &str) -> bool {
    let mut words = prefix.split('-');
    words.next().is_some_and(|first| {
        first
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && first.chars().all(|c| c.is_ascii_alphanumeric())
    }) && words.all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Exports `policy` to Cloud Custodian.
pub fn custodian(policy: &Policy, options: &ExportOptions) -> CustodianExport {
    let mut notes = Notes::default();
    let ignore_case = !policy.naming().case_sensitivity;
    let mapped = |t: &ResourceType| {
        CUSTODIAN_RESOURCES
            .iter()
            .any(|r| r.resource_type == t.as_str())
    };
    let rows: Vec<&CustodianResource> = if options.types.is_empty() {
        CUSTODIAN_RESOURCES.iter().collect()
    } else {
        for wanted in &options.types {
            if !mapped(wanted) {
                notes.push(format!(
                    "{wanted} has no Cloud Custodian resource in tagguard's table, so it is not exported"
                ));
            }
        }
        CUSTODIAN_RESOURCES
            .iter()
            .filter(|r| options.types.iter().any(|t| t.as_str() == r.resource_type))
            .collect()
    };

    // Types the policy names that no row covers, and services it names whole.
    let mut uncovered = BTreeSet::new();
    let mut services = BTreeSet::new();
    let mut broad = false;
    for rule in policy.required_tags() {
        broad |= rule.applies_to.holds_every_type() || rule.checked_everywhere;
        services.extend(rule.applies_to.services().iter().map(|s| s.to_string()));
        for t in rule.applies_to.types() {
            if !mapped(t) {
                uncovered.insert(t.to_string());
            }
        }
    }
    broad |= policy
        .optional_tags()
        .iter()
        .any(|o| o.severity == Severity::Error);
    if options.types.is_empty() && !uncovered.is_empty() {
        notes.push(format!(
            "the policy names types without a Cloud Custodian resource in tagguard's table, not exported: {}",
            uncovered.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if options.types.is_empty() && !broad {
        for service in &services {
            let of_service: Vec<&str> = custodian_types()
                .into_iter()
                .filter(|t| t.split(':').next() == Some(service.as_str()))
                .collect();
            notes.push(if of_service.is_empty() {
                format!("'{service}:*' has no type with a Cloud Custodian resource in tagguard's table, so it is not exported")
            } else {
                format!(
                    "'{service}:*' is exported for the {service} types with a Cloud Custodian resource in tagguard's table ({}); its other types are not",
                    of_service.join(", ")
                )
            });
        }
    }
    if options.types.is_empty() && broad {
        notes.push(format!(
            "rules for every resource type are exported for the {} Custodian resources tagguard maps its types to; other types are not exported",
            CUSTODIAN_RESOURCES.len()
        ));
    }

    let rules = rule_conditions(policy, ignore_case, &mut notes);
    let tag_exemption = tag_exemption(policy);
    let mut policies = Vec::new();
    let mut documents = Vec::new();
    for row in rows {
        let resource_type: ResourceType = row
            .resource_type
            .parse()
            .expect("the table's types are 'service:type'");
        let conditions = violations(&rules, &resource_type);
        if conditions.is_empty() {
            if !options.types.is_empty() {
                notes.push(format!(
                    "no rule of the policy can make a {} non-compliant, so it gets no Custodian policy",
                    row.resource_type
                ));
            }
            continue;
        }
        let mut exempt = arn_exemptions(policy, row);
        exempt.extend(tag_exemption.clone());
        let name = format!("{}-{}", options.name_prefix, row.resource);
        let mut filters = Vec::new();
        if !exempt.is_empty() {
            filters.push(json!({ "not": [ { "or": exempt.iter().map(|c| c.filter.clone()).collect::<Vec<_>>() } ] }));
        }
        filters
            .push(json!({ "or": conditions.iter().map(|c| c.filter.clone()).collect::<Vec<_>>() }));
        let description = format!(
            "{} resources ({}) that tagguard finds non-compliant with policy version {}",
            row.resource,
            row.resource_type,
            policy.version()
        );
        let mut document = Map::new();
        document.insert("name".into(), text(&name));
        document.insert("resource".into(), text(&format!("aws.{}", row.resource)));
        document.insert("description".into(), text(&description));
        document.insert("filters".into(), Value::Array(filters));
        documents.push(Value::Object(document));
        policies.push(ExportedPolicy {
            name,
            resource: format!("aws.{}", row.resource),
            resource_type: row.resource_type.to_string(),
            conditions: conditions.into_iter().map(|c| c.description).collect(),
            exemptions: exempt.into_iter().map(|c| c.description).collect(),
        });
    }
    if policies.is_empty() {
        notes.push("no resource type gets a policy: nothing the policy checks can be flagged by Cloud Custodian".to_string());
    }

    let mut yaml = String::new();
    yaml.push_str(&format!(
        "# Cloud Custodian policies generated by tagguard from policy '{}' (version {}).\n",
        comment_safe(&policy.origin),
        comment_safe(policy.version())
    ));
    yaml.push_str("# Each flags the resources of one type that tagguard finds non-compliant; add actions\n# (notify, mark-for-op) to act on them. Regenerate after the policy changes.\n");
    for note in &notes.0 {
        yaml.push_str(&format!("# note: {}\n", comment_safe(note)));
    }
    yaml.push_str(&to_yaml(&json!({ "policies": documents })));
    CustodianExport {
        yaml,
        policies,
        notes: notes.0,
    }
}

/// Notes, each said once.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn push(&mut self, note: String) {
        if !self.0.contains(&note) {
            self.0.push(note);
        }
    }
}

/// One condition: its Custodian filter and a line saying what it tests.
#[derive(Debug, Clone)]
struct Condition {
    filter: Value,
    description: String,
}

/// One way tagguard looks a tag up: its key exactly, or ignoring case.
#[derive(Debug, Clone)]
struct Lookup {
    key: String,
    ignoring_case: bool,
}

impl Lookup {
    /// The value filter on this tag, before `op` and `value` are added.
    fn filter(&self) -> Map<String, Value> {
        let mut filter = Map::new();
        filter.insert("type".into(), json!("value"));
        if self.ignoring_case {
            filter.insert(
                "key".into(),
                text(&format!("tag:{}", self.key.to_lowercase())),
            );
            filter.insert("tag_key_transforms".into(), json!(["lower"]));
        } else {
            filter.insert("key".into(), text(&format!("tag:{}", self.key)));
        }
        filter
    }

    fn absent(&self) -> Value {
        let mut filter = self.filter();
        filter.insert("value".into(), json!("absent"));
        Value::Object(filter)
    }

    /// Matches when the tag is present and its value matches `regex` (a Python regex,
    /// matched at the start).
    fn matching(&self, regex: &str) -> Value {
        let mut filter = self.filter();
        filter.insert("op".into(), json!("regex-case"));
        filter.insert("value".into(), text(regex));
        Value::Object(filter)
    }

    fn describe(&self) -> String {
        if self.ignoring_case {
            format!("{} (any case)", self.key)
        } else {
            self.key.clone()
        }
    }
}

/// The lookups of a tag and its aliases, in the order tagguard tries them.
fn lookups(name: &str, aliases: &[std::sync::Arc<str>], ignore_case: bool) -> Vec<Lookup> {
    let mut out = Vec::new();
    for key in std::iter::once(name).chain(aliases.iter().map(|a| &**a)) {
        out.push(Lookup {
            key: key.to_string(),
            ignoring_case: false,
        });
        if ignore_case {
            out.push(Lookup {
                key: key.to_string(),
                ignoring_case: true,
            });
        }
    }
    out
}

/// The lookups before `lookups[index]` whose absence it needs: all of them, except that a
/// key's exact lookup is implied by its lookup in any case (which finds the exact key too), so
/// only the key's own exact lookup stays before its lookup in any case.
fn needed_absent(lookups: &[Lookup], index: usize) -> Vec<&Lookup> {
    let current = lookups.get(index);
    lookups[..index.min(lookups.len())]
        .iter()
        .filter(|l| {
            l.ignoring_case
                || current.is_some_and(|c| c.key == l.key)
                || !lookups.iter().any(|o| o.ignoring_case && o.key == l.key)
        })
        .collect()
}

/// `and` of `absent` and `last` (`last` alone when nothing must be absent).
fn after_absent(absent: &[&Lookup], last: Value) -> Value {
    if absent.is_empty() {
        return last;
    }
    let mut all: Vec<Value> = absent.iter().map(|l| l.absent()).collect();
    all.push(last);
    json!({ "and": all })
}

/// Every lookup absent: the tag is missing.
fn all_absent(lookups: &[Lookup]) -> Value {
    let absent: Vec<Value> = needed_absent(lookups, lookups.len())
        .into_iter()
        .map(Lookup::absent)
        .collect();
    match <[Value; 1]>::try_from(absent) {
        Ok([one]) => one,
        Err(absent) => json!({ "and": absent }),
    }
}

/// A character Rust's `char::is_whitespace` accepts (Unicode White_Space), in Python: its `\s`
/// also takes the separators U+001C to U+001F, which Rust does not.
const WHITE_SPACE: &str = r"[^\S\x1c-\x1f]";

/// A character that is not white space in Rust's sense.
const NOT_WHITE_SPACE: &str = r"[\S\x1c-\x1f]";

/// A blank value, as tagguard judges it.
fn blank_regex() -> String {
    format!("{WHITE_SPACE}*\\Z")
}

/// How a value is tested: what it must be for a rule.
struct ValueTests {
    /// Python regex of the values allowed, anchored at both ends.
    allowed: Option<String>,
    /// Python regex matching the values that fail the format (lookaheads), and the pattern.
    format: Option<(String, String)>,
}

/// The allowed values as a Python regex: each exactly (or, with wildcards, `*` any run), and
/// when case is forgiven, each ignoring case.
fn allowed_regex(values: &[String], wildcards: bool, forgive_case: bool) -> String {
    let exact: Vec<String> = values
        .iter()
        .map(|v| {
            if wildcards && v.contains('*') {
                glob_regex(v, false)
            } else {
                escape(v)
            }
        })
        .collect();
    let mut regex = format!("(?:{}", exact.join("|"));
    if forgive_case {
        for value in values {
            regex.push('|');
            regex.push_str(&ignoring_case(value));
        }
    }
    regex.push_str(")\\Z");
    regex
}

/// A rule's conditions, made once for every resource of the export: where the rule applies
/// (or always, for an optional tag), and, for a required tag, on types outside `applies_to`
/// (empty unless it is checked everywhere).
struct RuleConditions<'p> {
    required: Option<&'p CompiledRequired>,
    applies: Vec<Condition>,
    elsewhere: Vec<Condition>,
}

/// The conditions of every rule that can make a resource non-compliant.
fn rule_conditions<'p>(
    policy: &'p Policy,
    ignore_case: bool,
    notes: &mut Notes,
) -> Vec<RuleConditions<'p>> {
    let allowed = |values: Option<&std::sync::Arc<[String]>>, wildcards: bool, exact_case: bool| {
        values.map(|values| allowed_regex(values, wildcards, ignore_case && !exact_case))
    };
    let mut out = Vec::new();
    for rule in policy.required_tags() {
        let name = &*rule.name;
        note_sigma(name, &rule.aliases, ignore_case, notes);
        let tests = ValueTests {
            allowed: allowed(
                rule.allowed_values.as_ref(),
                !rule.wildcards.is_empty(),
                rule.exact_case,
            ),
            format: rule
                .regex
                .as_ref()
                .and_then(|(_, pattern)| format_test(name, pattern, ignore_case, notes)),
        };
        let key_case = rule.exact_case && ignore_case;
        let all = lookups(name, &rule.aliases, ignore_case);
        let mut applies = vec![Condition {
            filter: all_absent(&all),
            description: format!("{name} missing"),
        }];
        push_value_conditions(&mut applies, name, &all, &tests, true, true);
        let mut elsewhere = Vec::new();
        if rule.checked_everywhere {
            // Checked where present, by its name alone (aliases are for required tags).
            let own = lookups(name, &[], ignore_case);
            let blank_fails = rule.allowed_values.is_some();
            push_value_conditions(&mut elsewhere, name, &own, &tests, blank_fails, false);
        }
        if key_case {
            push_key_case(&mut applies, name);
            if rule.checked_everywhere {
                push_key_case(&mut elsewhere, name);
            }
        }
        out.push(RuleConditions {
            required: Some(rule),
            applies,
            elsewhere,
        });
    }
    for rule in policy.optional_tags() {
        if rule.severity != Severity::Error {
            continue;
        }
        let name = &*rule.name;
        note_sigma(name, &rule.aliases, ignore_case, notes);
        let tests = ValueTests {
            allowed: allowed(
                rule.allowed_values.as_ref(),
                !rule.wildcards.is_empty(),
                rule.exact_case,
            ),
            format: None,
        };
        let mut applies = Vec::new();
        // An optional tag's blank value is judged only against its allowed values.
        push_value_conditions(
            &mut applies,
            name,
            &lookups(name, &rule.aliases, ignore_case),
            &tests,
            false,
            false,
        );
        if rule.exact_case && ignore_case {
            push_key_case(&mut applies, name);
        }
        out.push(RuleConditions {
            required: None,
            applies,
            elsewhere: Vec::new(),
        });
    }
    out
}

/// The conditions that flag a resource of `resource_type`.
fn violations(rules: &[RuleConditions<'_>], resource_type: &ResourceType) -> Vec<Condition> {
    let mut out = Vec::new();
    for rule in rules {
        match rule.required {
            Some(required) if !required.applies_to(resource_type) => {
                out.extend(rule.elsewhere.iter().cloned())
            }
            _ => out.extend(rule.applies.iter().cloned()),
        }
    }
    out
}

/// The format test of `name`'s `validation_regex`, with a note when Python cannot express it
/// or may backtrack badly on it.
fn format_test(
    name: &str,
    pattern: &str,
    ignore_case: bool,
    notes: &mut Notes,
) -> Option<(String, String)> {
    if backtracks_badly(pattern) {
        notes.push(format!(
            "{name}'s validation_regex '{pattern}' repeats something that can match in several ways: Python's backtracking engine, which Custodian uses, can take exponential time on a long value that fails it (tagguard's engine is linear)"
        ));
    }
    match format_fails(pattern, ignore_case) {
        Ok(fails) => Some((fails, pattern.to_string())),
        Err(why) => {
            notes.push(format!(
                "{name}'s validation_regex '{pattern}' {why}, which Python's re cannot express: its format test is not exported, so Custodian flags fewer resources than tagguard"
            ));
            None
        }
    }
}

/// Keys looked up ignoring case are compared by Python's `str.lower()` in Custodian, which
/// lowercases a final capital sigma to `ς` where tagguard's comparison gives `σ`.
fn note_sigma(name: &str, aliases: &[std::sync::Arc<str>], ignore_case: bool, notes: &mut Notes) {
    let sigma = |k: &str| k.contains(['Σ', 'σ', 'ς']);
    if ignore_case && (sigma(name) || aliases.iter().any(|a| sigma(a))) {
        notes.push(format!(
            "the key {name} has a Greek sigma: Custodian's case-insensitive key lookup (Python's lower()) reads a final sigma as 'ς' where tagguard reads 'σ', so a key spelt with the other one may be judged differently"
        ));
    }
}

/// A Python regex matching the values that fail `pattern` as tagguard judges them: it searches
/// the value; a policy that ignores case passes a value either form of the pattern finds
/// (with case, or ignoring it: where the pattern negates a class, folding case can take
/// characters out of it, as `[^A-Z]` ignoring case refuses `p`).
fn format_fails(pattern: &str, ignore_case: bool) -> Result<String, String> {
    let search = |python: String| format!("(?![\\s\\S]*?(?:{python}))");
    let mut fails = search(python_regex(pattern, ignore_case)?);
    if ignore_case {
        let exact = search(python_regex(pattern, false)?);
        if exact != fails {
            fails.push_str(&exact);
        }
    }
    Ok(fails)
}

/// A key found only ignoring case, where case is part of the rule.
fn push_key_case(out: &mut Vec<Condition>, name: &str) {
    let exact = Lookup {
        key: name.to_string(),
        ignoring_case: false,
    };
    let folded = Lookup {
        key: name.to_string(),
        ignoring_case: true,
    };
    let mut present = folded.filter();
    present.insert("value".into(), json!("present"));
    out.push(Condition {
        filter: json!({ "and": [exact.absent(), Value::Object(present)] }),
        description: format!("{name}'s key in another case (its case is part of the rule)"),
    });
}

/// For each lookup, one condition on the value of the tag it finds (when the earlier ones
/// find nothing): blank (when `blank_fails`), outside the allowed values, or failing the
/// format, as one regex. `blank_judged`: a blank value is judged at all (a tag checked where
/// present, without allowed values, is not judged when blank).
fn push_value_conditions(
    out: &mut Vec<Condition>,
    name: &str,
    lookups: &[Lookup],
    tests: &ValueTests,
    blank_fails: bool,
    blank_judged: bool,
) {
    let blank = blank_regex();
    let mut fails = Vec::new();
    let mut what = Vec::new();
    if blank_fails {
        fails.push(blank.clone());
        what.push("blank".to_string());
    }
    if let Some(allowed) = &tests.allowed {
        fails.push(format!("(?!{allowed})"));
        what.push("not an allowed value".to_string());
    }
    if let Some((format_fails, pattern)) = &tests.format {
        fails.push(if blank_judged {
            format_fails.clone()
        } else {
            format!("(?!{blank}){format_fails}")
        });
        what.push(format!("not matching {pattern}"));
    }
    if fails.is_empty() {
        return;
    }
    let regex = format!("(?:{})", fails.join("|"));
    for (i, lookup) in lookups.iter().enumerate() {
        let found = if i == 0 {
            String::new()
        } else {
            format!(" (found as {})", lookup.describe())
        };
        out.push(Condition {
            filter: after_absent(&needed_absent(lookups, i), lookup.matching(&regex)),
            description: format!("{name}{found}: {}", what.join(", or ")),
        });
    }
}

/// The ARN patterns that exempt a resource listed by `row`.
fn arn_exemptions(policy: &Policy, row: &CustodianResource) -> Vec<Condition> {
    let mut out = Vec::new();
    let arn = row.arn_expression();
    for rule in &policy.exemptions {
        let mut matches = Map::new();
        matches.insert("type".into(), json!("value"));
        // The ARN expression's variables are Custodian's: its braces stay single.
        matches.insert("key".into(), Value::String(arn.clone()));
        matches.insert("op".into(), json!("regex-case"));
        matches.insert(
            "value".into(),
            text(&format!("{}\\Z", glob_regex(&rule.pattern, true))),
        );
        let until = json!({
            "type": "value",
            // A literal with its time zone: Custodian reads a bare day in local time.
            "key": format!("'{}T00:00:00+00:00'", rule.expires.format("%Y-%m-%d")),
            "value_type": "expiration",
            "op": "gt",
            "value": -1,
        });
        out.push(Condition {
            filter: json!({ "and": [Value::Object(matches), until] }),
            description: format!(
                "ARN matches {} until {} ({})",
                rule.pattern,
                rule.expires.format("%Y-%m-%d"),
                rule.reason
            ),
        });
    }
    out
}

/// The exemption tag's condition, the same on every resource.
fn tag_exemption(policy: &Policy) -> Option<Condition> {
    policy.document.exemption_tag.as_ref().map(|key| {
        let tag = Lookup {
            key: key.clone(),
            ignoring_case: false,
        };
        let (w, n) = (WHITE_SPACE, NOT_WHITE_SPACE);
        // tagguard's reading: trimmed, a day, optional colons, one white space, then a reason
        // that is not empty once its leading ':', '-' and ' ' and its white space are trimmed.
        // The lookahead with a back-reference takes the leading run whole, as the trim does.
        let readable = format!(
            "{w}*[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}:*{w}(?=([:\\- ]*))\\1(?:(?![:\\-]){n}|{w}[\\s\\S]*{n})"
        );
        // Whether the day has passed, as tagguard judges it (in UTC):
        // - where Custodian writes the date of its run into the policy (`{now:%Y-%m-%d}`, in
        //   UTC; pull mode, as these policies are), the day as text is not before it, and it
        //   is a real day (Custodian's date parsing refuses 2027-02-30);
        // - where it leaves `{now}` for later (its Lambda modes, whose filters never get it),
        //   the day at 00:00 of the runner's clock, UTC on Lambda, is later than a day ago.
        let capture = text(&format!("{w}*([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})"));
        let today = "{now:%Y-%m-%d}";
        let day_test = |op: &str, value: Value, value_type: Option<&str>| {
            let mut filter = tag.filter();
            filter.insert("value_regex".into(), capture.clone());
            if let Some(value_type) = value_type {
                filter.insert("value_type".into(), json!(value_type));
            }
            filter.insert("op".into(), json!(op));
            filter.insert("value".into(), value);
            Value::Object(filter)
        };
        let not_before_today = day_test("gte", json!(today), None);
        let a_real_day = day_test("gt", json!(-2), Some("expiration"));
        let since_yesterday = day_test("gt", json!(-1), Some("expiration"));
        let date_left_for_later = json!({
            "type": "value",
            "key": format!("'{today}'"),
            "op": "regex-case",
            "value": text("\\{"),
        });
        Condition {
            filter: json!({ "and": [
                tag.matching(&readable),
                { "or": [
                    { "and": [not_before_today, a_real_day] },
                    { "and": [date_left_for_later, since_yesterday] },
                ] },
            ] }),
            description: format!("tag {key} reads 'YYYY-MM-DD reason' and the day has not passed"),
        }
    })
}

/// A string of the policy, its braces doubled so that Custodian's variable formatting gives
/// it back as written.
fn text(s: &str) -> Value {
    Value::String(s.replace('{', "{{").replace('}', "}}"))
}

/// `text` as a Python pattern matching exactly it.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        push_char(c, &mut out);
    }
    out
}

/// A Python pattern matching exactly the texts equal to `text` ignoring case as tagguard
/// compares them (`eq_ignore_case`: each character's lowercase, `char::to_lowercase`), with
/// every character spelt out: Python's own case-insensitive mode folds more (`ı` with `i`,
/// `ς` with `σ`).
fn ignoring_case(text: &str) -> String {
    let lower: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    ignoring_case_from(&lower)
}

fn ignoring_case_from(lower: &[char]) -> String {
    let Some(&first) = lower.first() else {
        return String::new();
    };
    let inverse = lowercase_inverse();
    let mut branches = Vec::new();
    // Every character whose lowercase is `first`: itself (when it is its own lowercase) and
    // those that lowercase to it.
    let mut sources: Vec<char> = Vec::new();
    if first.to_lowercase().eq([first]) {
        sources.push(first);
    }
    sources.extend(inverse.single.get(&first).into_iter().flatten());
    sources.sort_unstable();
    if !sources.is_empty() {
        let mut class = String::new();
        if let [only] = sources[..] {
            push_char(only, &mut class);
        } else {
            class.push('[');
            for &c in &sources {
                push_char(c, &mut class);
            }
            class.push(']');
        }
        branches.push(class + &ignoring_case_from(&lower[1..]));
    }
    for (expansion, c) in &inverse.multi {
        if lower.starts_with(expansion) {
            let mut branch = String::new();
            push_char(*c, &mut branch);
            branch.push_str(&ignoring_case_from(&lower[expansion.len()..]));
            branches.push(branch);
        }
    }
    match branches.len() {
        0 => "(?!)".to_string(),
        1 => branches.pop().expect("one branch"),
        _ => format!("(?:{})", branches.join("|")),
    }
}

/// The characters whose lowercase is not themselves, by what `char::to_lowercase` makes of
/// them: one character, or several (`İ`).
struct LowercaseInverse {
    single: std::collections::HashMap<char, Vec<char>>,
    multi: Vec<(Vec<char>, char)>,
}

/// Characters above this have no case (a test checks it on the running Rust): scanning the
/// first two planes is enough.
const LAST_CASED: u32 = 0x1ffff;

fn lowercase_inverse() -> &'static LowercaseInverse {
    static INVERSE: std::sync::OnceLock<LowercaseInverse> = std::sync::OnceLock::new();
    INVERSE.get_or_init(|| {
        let mut single: std::collections::HashMap<char, Vec<char>> = Default::default();
        let mut multi = Vec::new();
        for c in (0..=LAST_CASED).filter_map(char::from_u32) {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.len()) {
                (Some(one), 0) if one == c => {}
                (Some(one), 0) => single.entry(one).or_default().push(c),
                _ => multi.push((c.to_lowercase().collect(), c)),
            }
        }
        LowercaseInverse { single, multi }
    })
}

/// A glob as a Python regex (not anchored at the end): `*` any run of characters but a line
/// break (as tagguard's `.*`), with `question_mark` `?` one.
fn glob_regex(pattern: &str, question_mark: bool) -> String {
    let mut out = String::new();
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' if question_mark => out.push('.'),
            c => push_char(c, &mut out),
        }
    }
    out
}

/// A Rust `regex` pattern (already known to compile), matched as tagguard matches it
/// (`ignore_case` as the policy says), written as a Python `re` pattern that matches the same
/// texts; `Err` names what Python cannot express. The pattern is parsed into its high-level
/// form, where flags are applied, case-insensitivity is spelt out as classes and `\w`, `\d`,
/// `\s`, `.` and `\p{…}` are explicit ranges, so nothing is left to Python's own tables (its
/// `\w`, its case folding and its Unicode version differ from Rust's). Group names are dropped.
pub fn python_regex(pattern: &str, ignore_case: bool) -> Result<String, String> {
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(ignore_case)
        .build()
        .parse(pattern)
        .map_err(|e| format!("does not parse ({e})"))?;
    let mut out = String::with_capacity(pattern.len() * 2);
    print_hir(&hir, &mut out)?;
    Ok(out)
}

/// Whether Python's backtracking engine, which Custodian uses, may take exponential time on a
/// value that fails `pattern` (Rust's engine is linear): a repetition that may run more than
/// once around something that can match in several ways, a variable repetition or an
/// alternation (`(a+)*`, `(a|aa)*`, `(a?){25}`).
pub fn backtracks_badly(pattern: &str) -> bool {
    fn ambiguous(hir: &Hir) -> bool {
        match hir.kind() {
            HirKind::Repetition(rep) => rep.max != Some(rep.min) || ambiguous(&rep.sub),
            HirKind::Alternation(_) => true,
            HirKind::Capture(cap) => ambiguous(&cap.sub),
            HirKind::Concat(items) => items.iter().any(ambiguous),
            _ => false,
        }
    }
    fn risky(hir: &Hir) -> bool {
        match hir.kind() {
            HirKind::Repetition(rep) => {
                (rep.max.is_none_or(|max| max > 1) && ambiguous(&rep.sub)) || risky(&rep.sub)
            }
            HirKind::Capture(cap) => risky(&cap.sub),
            HirKind::Concat(items) | HirKind::Alternation(items) => items.iter().any(risky),
            _ => false,
        }
    }
    regex_syntax::Parser::new()
        .parse(pattern)
        .is_ok_and(|hir| risky(&hir))
}

/// Rust's Unicode word characters, as a Python class (for word boundaries).
fn unicode_word_class() -> Result<String, String> {
    let hir = regex_syntax::Parser::new()
        .parse(r"\w")
        .expect("\\w is a valid regex");
    let mut out = String::new();
    print_hir(&hir, &mut out)?;
    Ok(out)
}

fn print_hir(hir: &Hir, out: &mut String) -> Result<(), String> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(literal) => {
            let text = std::str::from_utf8(&literal.0)
                .map_err(|_| "matches bytes that are not UTF-8 (the u flag off)".to_string())?;
            for c in text.chars() {
                push_char(c, out);
            }
        }
        HirKind::Class(Class::Unicode(class)) => {
            if class.ranges().is_empty() {
                // A class that matches nothing.
                out.push_str("(?!)");
                return Ok(());
            }
            out.push('[');
            for range in class.ranges() {
                push_char(range.start(), out);
                if range.end() > range.start() {
                    out.push('-');
                    push_char(range.end(), out);
                }
            }
            out.push(']');
        }
        HirKind::Class(Class::Bytes(class)) => {
            if class.ranges().iter().any(|r| r.end() > 0x7f) {
                return Err("matches raw bytes (the u flag off)".into());
            }
            if class.ranges().is_empty() {
                out.push_str("(?!)");
                return Ok(());
            }
            out.push('[');
            for range in class.ranges() {
                push_char(char::from(range.start()), out);
                if range.end() > range.start() {
                    out.push('-');
                    push_char(char::from(range.end()), out);
                }
            }
            out.push(']');
        }
        HirKind::Look(look) => {
            let word = |ascii: bool| -> Result<String, String> {
                if ascii {
                    Ok("[0-9A-Z_a-z]".to_string())
                } else {
                    unicode_word_class()
                }
            };
            let text = match look {
                Look::Start => r"\A".to_string(),
                Look::End => r"\Z".to_string(),
                Look::StartLF => r"(?:\A|(?<=\n))".to_string(),
                Look::EndLF => r"(?=\n|\Z)".to_string(),
                Look::StartCRLF => r"(?:\A|(?<=\n)|(?<=\r)(?!\n))".to_string(),
                Look::EndCRLF => r"(?:\Z|(?=\r)|(?<!\r)(?=\n))".to_string(),
                Look::WordAscii | Look::WordUnicode => {
                    let w = word(*look == Look::WordAscii)?;
                    format!("(?:(?<={w})(?!{w})|(?<!{w})(?={w}))")
                }
                Look::WordAsciiNegate | Look::WordUnicodeNegate => {
                    let w = word(*look == Look::WordAsciiNegate)?;
                    format!("(?:(?<={w})(?={w})|(?<!{w})(?!{w}))")
                }
                Look::WordStartAscii | Look::WordStartUnicode => {
                    let w = word(*look == Look::WordStartAscii)?;
                    format!("(?<!{w})(?={w})")
                }
                Look::WordEndAscii | Look::WordEndUnicode => {
                    let w = word(*look == Look::WordEndAscii)?;
                    format!("(?<={w})(?!{w})")
                }
                Look::WordStartHalfAscii | Look::WordStartHalfUnicode => {
                    let w = word(*look == Look::WordStartHalfAscii)?;
                    format!("(?<!{w})")
                }
                Look::WordEndHalfAscii | Look::WordEndHalfUnicode => {
                    let w = word(*look == Look::WordEndHalfAscii)?;
                    format!("(?!{w})")
                }
            };
            out.push_str(&text);
        }
        HirKind::Repetition(rep) => {
            out.push_str("(?:");
            print_hir(&rep.sub, out)?;
            out.push(')');
            match (rep.min, rep.max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (min, None) => out.push_str(&format!("{{{min},}}")),
                (min, Some(max)) if min == max => out.push_str(&format!("{{{min}}}")),
                (min, Some(max)) => out.push_str(&format!("{{{min},{max}}}")),
            }
            if !rep.greedy {
                out.push('?');
            }
        }
        HirKind::Capture(capture) => {
            out.push_str("(?:");
            print_hir(&capture.sub, out)?;
            out.push(')');
        }
        HirKind::Concat(items) => {
            for item in items {
                print_hir(item, out)?;
            }
        }
        HirKind::Alternation(items) => {
            out.push_str("(?:");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                print_hir(item, out)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

/// One character of a Python pattern: letters, digits and `_` as themselves, everything else
/// as an escape (`\-`, `\x0a`, `\u00e9`), so that the pattern is ASCII and means the character
/// itself wherever it stands, in a class or not.
fn push_char(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() || c == '_' {
        out.push(c);
    } else if c.is_ascii_graphic() || c == ' ' {
        out.push('\\');
        out.push(c);
    } else if (c as u32) <= 0xff {
        out.push_str(&format!("\\x{:02x}", c as u32));
    } else if (c as u32) <= 0xffff {
        out.push_str(&format!("\\u{:04x}", c as u32));
    } else {
        out.push_str(&format!("\\U{:08x}", c as u32));
    }
}

/// A comment line's text: printable ASCII, anything else written as its code point
/// (`\u{2028}`), so that nothing in a policy's name or version can end the line.
fn comment_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect()
}

/// A YAML double-quoted scalar of `text`, ASCII only: `"` and `\` escaped, every character
/// outside printable ASCII as `\x`, `\u` or `\U` (raw, some are line breaks or forbidden in
/// YAML).
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c == ' ' || c.is_ascii_graphic() => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A JSON value as block-style YAML: mappings and sequences indented, every string in double
/// quotes (ASCII, with YAML's escapes), keys quoted unless they are plain words.
pub fn to_yaml(value: &Value) -> String {
    // A long string written more than once (the same test on every resource and lookup) is
    // written once with an anchor (`&v1 "…"`) and then referred to (`*v1`).
    fn strings<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
        match value {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            Value::Object(map) => in_reading_order(map)
                .into_iter()
                .for_each(|(_, v)| strings(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    strings(value, &mut all);
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for s in &all {
        *counts.entry(s).or_default() += 1;
    }
    let mut anchors = Anchors::default();
    for s in all {
        if s.len() >= ANCHORED_LENGTH && counts[s] > 1 && !anchors.names.contains_key(s) {
            let name = format!("v{}", anchors.names.len() + 1);
            anchors.names.insert(s.to_string(), name);
        }
    }
    let mut out = String::new();
    emit(value, 0, false, &mut anchors, &mut out);
    out
}

/// Strings at least this long are written once when repeated.
const ANCHORED_LENGTH: usize = 64;

/// The anchors of repeated strings, and which are already written.
#[derive(Default)]
struct Anchors {
    names: std::collections::HashMap<String, String>,
    written: std::collections::HashSet<String>,
}

fn scalar(value: &Value, anchors: &mut Anchors) -> String {
    match value {
        Value::String(s) => match anchors.names.get(s) {
            Some(name) if anchors.written.contains(name) => format!("*{name}"),
            Some(name) => {
                anchors.written.insert(name.clone());
                format!("&{name} {}", quoted(s))
            }
            None => quoted(s),
        },
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

fn yaml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
    {
        key.to_string()
    } else {
        quoted(key)
    }
}

fn is_block(value: &Value) -> bool {
    matches!(value, Value::Array(a) if !a.is_empty())
        || matches!(value, Value::Object(o) if !o.is_empty())
}

/// The entries of a mapping in the order people read a Custodian policy (name and resource
/// first; a filter's type, key, op and value in that order), the rest alphabetically.
fn in_reading_order(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    const FIRST: [&str; 10] = [
        "name",
        "resource",
        "description",
        "type",
        "key",
        "tag_key_transforms",
        "value_regex",
        "value_type",
        "op",
        "value",
    ];
    let rank = |key: &str| FIRST.iter().position(|k| *k == key).unwrap_or(FIRST.len());
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| rank(a.0).cmp(&rank(b.0)).then_with(|| a.0.cmp(b.0)));
    entries
}

/// Writes `value` at `indent`; `continued`: the line is already started (by `- `).
fn emit(value: &Value, indent: usize, continued: bool, anchors: &mut Anchors, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (i, (key, item)) in in_reading_order(map).into_iter().enumerate() {
                if i > 0 || !continued {
                    out.push_str(&pad);
                }
                out.push_str(&yaml_key(key));
                out.push(':');
                if is_block(item) {
                    out.push('\n');
                    emit(item, indent + 2, false, anchors, out);
                } else {
                    out.push(' ');
                    out.push_str(&scalar(item, anchors));
                    out.push('\n');
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 || !continued {
                    out.push_str(&pad);
                }
                out.push_str("- ");
                if is_block(item) {
                    emit(item, indent + 2, true, anchors, out);
                } else {
                    out.push_str(&scalar(item, anchors));
                    out.push('\n');
                }
            }
        }
        other => {
            if !continued {
                out.push_str(&pad);
            }
            out.push_str(&scalar(other, anchors));
            out.push('\n');
        }
    }
}

/// The tagguard types of [`CUSTODIAN_RESOURCES`], each once, in table order.
pub fn custodian_types() -> Vec<&'static str> {
    let mut seen = Vec::new();
    for row in CUSTODIAN_RESOURCES {
        if !seen.contains(&row.resource_type) {
            seen.push(row.resource_type);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::known_resource_types;
    use crate::policy::parse_policy;

    #[test]
    fn every_type_of_the_table_is_known_to_tagguard() {
        let known = known_resource_types();
        let unknown: Vec<&str> = custodian_types()
            .into_iter()
            .filter(|t| !known.iter().any(|k| k == t))
            .collect();
        assert_eq!(unknown, Vec::<&str>::new());
    }

    #[test]
    fn rust_regexes_become_python_ones() {
        let cases = [
            (r"^[a-z]+$", false, r"\A(?:[a-z])+\Z"),
            (r"^a\z", false, r"\Aa\Z"),
            (r"(?<word>x)-\d{2,}", false, r"(?:x)\-(?:[0-9\u0660-\u0669"),
            (
                r"^env-(?i)prod$|^sandbox$",
                false,
                r"\A(?:env\-[Pp][Rr][Oo][Dd]\Z|[Ss\u017f][Aa][Nn][Dd][Bb][Oo][Xx]\Z)",
            ),
            (r"(?m)^a$", false, r"(?:\A|(?<=\n))a(?=\n|\Z)"),
            (r"k", true, r"[Kk\u212a]"),
            (r"a{2}*", false, r"(?:(?:a){2})*"),
            (r"\x{263A}", false, r"\u263a"),
        ];
        for (rust, ignore_case, python) in cases {
            let got = python_regex(rust, ignore_case).unwrap();
            assert!(got.starts_with(python), "{rust}: {got}");
            assert!(got.is_ascii(), "{rust}: {got}");
        }
        // What Python has no name for is spelt out, not refused.
        assert!(
            python_regex(r"\p{Greek}+", false)
                .unwrap()
                .contains(r"\u0370")
        );
        assert!(python_regex(r"[[:alpha:]&&[^aeiou]]", false).is_ok());
        assert!(python_regex(r"(?-u:\xff)", false).is_err());
        for risky in [
            r"^([a-z]+-?)*$",
            r"^(a|aa)*$",
            r"^(?:\d|\d\d)+$",
            r"^(a?){25}a{25}$",
        ] {
            assert!(backtracks_badly(risky), "{risky}");
        }
        for safe in [
            r"^[a-z]+(-[a-z]+)?$",
            r"^[a-z][a-z0-9-]{1,62}$",
            r"^\w+@x\.com$",
        ] {
            assert!(!backtracks_badly(safe), "{safe}");
        }
    }

    #[test]
    fn no_character_above_the_scanned_planes_has_a_lowercase() {
        let cased: Vec<char> = (LAST_CASED + 1..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| !c.to_lowercase().eq([c]))
            .collect();
        assert_eq!(cased, Vec::<char>::new());
    }

    #[test]
    fn values_ignoring_case_are_spelt_out_as_tagguard_compares_them() {
        // The Kelvin sign lowercases to k; final sigma does not lowercase to sigma.
        assert_eq!(ignoring_case("k"), r"[Kk\u212a]");
        assert!(!ignoring_case("\u{3c3}").contains(r"\u03c2"));
        // Dotted capital I lowercases to two characters.
        assert!(ignoring_case("i\u{307}").contains(r"\u0130"));
    }

    #[test]
    fn long_repeated_strings_are_written_once() {
        let long = "x".repeat(ANCHORED_LENGTH);
        let yaml = to_yaml(&json!({"a": [long, "short", long], "b": long}));
        assert_eq!(
            yaml,
            format!("a:\n  - &v1 \"{long}\"\n  - \"short\"\n  - *v1\nb: *v1\n")
        );
    }

    #[test]
    fn yaml_strings_are_ascii_with_escapes() {
        assert_eq!(
            quoted("a\"b\\c\u{7f}\u{85}\u{2028}\u{1F600}é"),
            r#""a\"b\\c\x7f\x85\u2028\U0001f600\xe9""#
        );
        assert_eq!(
            comment_safe("v1\u{2028}policies: []"),
            "v1\\u{2028}policies: []"
        );
    }

    #[test]
    fn braces_are_doubled_for_custodian_formatting() {
        assert_eq!(text("a{2}b"), json!("a{{2}}b"));
    }

    #[test]
    fn globs_and_values_are_escaped() {
        assert_eq!(
            glob_regex("arn:aws:s3:::logs-*", true),
            r"arn\:aws\:s3\:\:\:logs\-.*"
        );
        assert_eq!(glob_regex("a?b", false), r"a\?b");
        assert_eq!(
            allowed_regex(&["a.b".into(), "30*".into()], true, false),
            r"(?:a\.b|30.*)\Z"
        );
        assert_eq!(allowed_regex(&["x".into()], false, true), r"(?:x|[Xx])\Z");
    }

    #[test]
    fn yaml_is_block_style_with_quoted_strings() {
        let yaml = to_yaml(
            &json!({"policies": [{"name": "n", "filters": [{"or": [{"tag:A": "absent"}]}], "x": []}]}),
        );
        assert_eq!(
            yaml,
            "policies:\n  - name: \"n\"\n    filters:\n      - or:\n          - \"tag:A\": \"absent\"\n    x: []\n"
        );
    }

    #[test]
    fn the_default_policy_exports_one_policy_per_resource_of_the_table() {
        let policy = crate::policy::default_policy();
        let export = custodian(&policy, &ExportOptions::default());
        assert_eq!(export.policies.len(), CUSTODIAN_RESOURCES.len());
        let ec2 = export
            .policies
            .iter()
            .find(|p| p.resource == "aws.ec2")
            .unwrap();
        assert!(ec2.conditions.iter().any(|c| c == "Environment missing"));
        let s3 = export
            .policies
            .iter()
            .find(|p| p.resource == "aws.s3")
            .unwrap();
        assert!(!s3.conditions.iter().any(|c| c.starts_with("Environment")));
        assert!(export.yaml.contains("resource: \"aws.ecs-service\""));
    }

    #[test]
    fn only_types_asked_for_and_unknown_ones_are_noted() {
        let policy = crate::policy::default_policy();
        let options = ExportOptions {
            types: vec![ResourceType::Ec2Instance, ResourceType::other("foo:bar")],
            ..ExportOptions::default()
        };
        let export = custodian(&policy, &options);
        assert_eq!(export.policies.len(), 1);
        assert!(
            export.notes.iter().any(|n| n.contains("foo:bar")),
            "{:?}",
            export.notes
        );
    }

    #[test]
    fn unicode_classes_are_exported_and_backtracking_risks_reported() {
        let policy = parse_policy(
            r#"{"version": "1", "required_tags": [
                {"name": "Owner", "validation_regex": "^\\p{L}+$"},
                {"name": "Team", "validation_regex": "^([a-z]+-?)*$"}]}"#,
            "p.json",
        )
        .unwrap();
        let export = custodian(&policy, &ExportOptions::default());
        assert!(
            export.policies.iter().all(|p| p.conditions
                == [
                    "Owner missing",
                    "Owner: blank, or not matching ^\\p{L}+$",
                    "Team missing",
                    "Team: blank, or not matching ^([a-z]+-?)*$"
                ]),
            "{:?}",
            export.policies[0].conditions
        );
        assert!(
            export
                .notes
                .iter()
                .any(|n| n.starts_with("Team's validation_regex") && n.contains("exponential")),
            "{:?}",
            export.notes
        );
        assert!(
            !export.notes.iter().any(|n| n.starts_with("Owner")),
            "{:?}",
            export.notes
        );
    }

    #[test]
    fn a_service_wildcard_says_which_of_its_types_are_exported() {
        let policy = parse_policy(
            r#"{"version": "1", "required_tags": [{"name": "Owner", "applies_to": ["rds:*", "sqs:queue", "athena:workgroup"]}]}"#,
            "p.json",
        )
        .unwrap();
        let export = custodian(&policy, &ExportOptions::default());
        let resources: Vec<&str> = export
            .policies
            .iter()
            .map(|p| p.resource.as_str())
            .collect();
        assert_eq!(resources, ["aws.rds", "aws.rds-cluster", "aws.sqs"]);
        assert!(
            export
                .notes
                .iter()
                .any(|n| n.contains("'rds:*'") && n.contains("rds:db, rds:cluster")),
            "{:?}",
            export.notes
        );
        assert!(
            export.notes.iter().any(|n| n.contains("athena:workgroup")),
            "{:?}",
            export.notes
        );
    }

    #[test]
    fn prefixes_custodian_accepts() {
        for good in ["tagguard", "org-tags", "a1-b2"] {
            assert!(valid_name_prefix(good), "{good}");
        }
        for bad in ["", "1a", "a_b", "a--b", "a-", "-a"] {
            assert!(!valid_name_prefix(bad), "{bad}");
        }
    }
}
