//! Loading a policy file: parse, check and compile, with errors naming file, line, column and field.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use regex::RegexBuilder;

use super::model::{CompiledOptional, CompiledRequired, Policy, PolicyDocument, TypeSet};
use crate::domain::arn_forms::FORMS;
use crate::domain::text::closest;
use crate::domain::{ResourceType, TypeCheck, known_resource_types};

/// The policy shipped in `policies/tagging_policy.json`, embedded so the binary runs anywhere.
pub const DEFAULT_POLICY_JSON: &str = include_str!("../../policies/tagging_policy.json");

/// Largest compiled regex accepted, so a hostile policy cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a policy could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy '{file}': {reason}")]
    Io {
        /// The file as the user named it.
        file: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The file was read but is not a valid policy.
    #[error("error in policy '{file}' at line {line}, column {column}{}: {message}", field_part(.field))]
    Invalid {
        /// The file as the user named it.
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column of the offending text.
        column: usize,
        /// Dotted path of the offending field (`required_tags[1].validation_regex`); empty for
        /// the document itself.
        field: String,
        /// What is wrong, quoting the offending input.
        message: String,
    },
}

fn field_part(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(", field '{field}'")
    }
}

/// How strictly a policy is loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Every warning (an unresolvable or unknown resource type, a rule or a policy that checks
    /// nothing) is an error instead, so that a CI gate never runs on a policy that is probably
    /// wrong.
    pub strict: bool,
}

/// Reads, checks and compiles the policy in `path`.
pub fn load_policy(path: &Path) -> Result<Policy, PolicyError> {
    load_policy_with(path, LoadOptions::default())
}

/// Reads, checks and compiles the policy in `path` with `options`.
pub fn load_policy_with(path: &Path, options: LoadOptions) -> Result<Policy, PolicyError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Io {
        file: file.clone(),
        reason: io_reason(&e),
    })?;
    parse_policy_with(&text, &file, options)
}

/// The built-in default policy.
pub fn default_policy() -> Policy {
    parse_policy(DEFAULT_POLICY_JSON, "built-in")
        .expect("the embedded default policy is checked by a unit test")
}

/// Parses, checks and compiles policy text; `origin` names it in errors.
pub fn parse_policy(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    parse_policy_with(text, origin, LoadOptions::default())
}

/// Parses, checks and compiles policy text with `options`; `origin` names it in errors.
pub fn parse_policy_with(
    text: &str,
    origin: &str,
    options: LoadOptions,
) -> Result<Policy, PolicyError> {
    // Editors on some systems save JSON with a byte-order mark; it is not part of the document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let document: PolicyDocument =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            if let Some(error) = organizations_policy(text, origin) {
                return error;
            }
            let field = e.path().to_string();
            let inner = e.into_inner();
            PolicyError::Invalid {
                file: origin.to_string(),
                line: inner.line(),
                column: inner.column(),
                field: if field == "." { String::new() } else { field },
                message: humanize(&strip_position(&inner.to_string())),
            }
        })?;
    deserializer.end().map_err(|e| PolicyError::Invalid {
        file: origin.to_string(),
        line: e.line(),
        column: e.column(),
        field: String::new(),
        message: strip_position(&e.to_string()),
    })?;
    compile(document, text, origin, options)
}

/// The error for an AWS Organizations tag policy given where a tagguard policy is expected:
/// it has a top-level `tags` object whose entries use `tag_key` or the `@@assign` operators.
fn organizations_policy(text: &str, origin: &str) -> Option<PolicyError> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let tags = value.get("tags")?.as_object()?;
    let looks_like = tags.values().any(|entry| {
        entry.get("tag_key").is_some()
            || entry.get("tag_value").is_some()
            || entry.get("enforced_for").is_some()
            || entry.get("report_required_tag_for").is_some()
    }) || text.contains("@@assign");
    if !looks_like {
        return None;
    }
    let check = Checker { text, origin };
    Some(
        check.error(
            &[Step::Key("tags")],
            "this is an AWS Organizations tag policy, not a tagguard policy. tagguard reads \
         {\"version\": ..., \"required_tags\": [{\"name\": ..., \"allowed_values\": [...], \
         \"applies_to\": [...]}]}: each tag_key becomes a name, its tag_value list the \
         allowed_values, and report_required_tag_for the applies_to of a required tag \
         (enforced_for only blocks non-compliant tagging; it does not make a tag required, and \
         a wildcard value such as 300* has no equivalent yet) (docs/policy.md)"
                .to_string(),
        ),
    )
}

/// The reason of an I/O error in plain words.
pub fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_string(),
        std::io::ErrorKind::InvalidData => "it is not UTF-8 text".to_string(),
        kind => kind.to_string(),
    }
}

/// serde's messages name Rust types (`struct PolicyDocument`, `usize`); say what they mean.
pub fn humanize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("struct ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "struct ".len()..];
        let name_end = after
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(after.len());
        let mut tail = &after[name_end..];
        // "struct X with 5 elements": the element count is noise to a user.
        if let Some(stripped) = tail.strip_prefix(" with ") {
            let digits = stripped
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(stripped.len());
            let words = &stripped[digits..];
            if digits > 0 && (words.starts_with(" elements") || words.starts_with(" element")) {
                let word_len = if words.starts_with(" elements") { 9 } else { 8 };
                tail = &words[word_len..];
            }
        }
        out.push_str("a JSON object");
        rest = tail;
    }
    out.push_str(rest);
    out.replace("usize", "a non-negative integer")
        .replace("u64", "a non-negative integer")
        .replace("f64", "a number")
}

/// serde_json appends " at line L column C"; we report position separately.
pub fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// One step of a path into the JSON document.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Builds errors for semantic checks, locating the field in the source text.
struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Checker<'_> {
    fn error(&self, path: &[Step<'_>], message: String) -> PolicyError {
        let offset = locate(self.text, path).unwrap_or(0);
        let (line, column) = line_column(self.text, offset);
        let mut field = String::new();
        for step in path {
            match step {
                Step::Key(key) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                Step::Index(i) => field.push_str(&format!("[{i}]")),
            }
        }
        PolicyError::Invalid {
            file: self.origin.to_string(),
            line,
            column,
            field,
            message,
        }
    }
}

fn compile(
    document: PolicyDocument,
    text: &str,
    origin: &str,
    options: LoadOptions,
) -> Result<Policy, PolicyError> {
    let check = Checker { text, origin };
    // serde also accepts a struct written as an array of its fields; the schema is objects.
    let mut objects: Vec<Vec<Step<'_>>> = vec![vec![]];
    if locate(text, &[Step::Key("tag_naming_rules")]).is_some() {
        objects.push(vec![Step::Key("tag_naming_rules")]);
    }
    for (list, len) in [
        ("required_tags", document.required_tags.len()),
        ("optional_tags", document.optional_tags.len()),
    ] {
        for i in 0..len {
            objects.push(vec![Step::Key(list), Step::Index(i)]);
        }
    }
    for path in &objects {
        if let Some(at) = locate(text, path)
            && text.as_bytes().get(at) != Some(&b'{')
        {
            return Err(check.error(path, "expected a JSON object".into()));
        }
    }
    // Probable mistakes, located; errors when loading strictly.
    let mut warnings: Vec<PolicyError> = Vec::new();
    if document.version.trim().is_empty() {
        return Err(check.error(&[Step::Key("version")], "the version is empty".into()));
    }
    let rules = &document.tag_naming_rules;
    for (field, value) in [
        ("max_key_length", rules.max_key_length),
        ("max_value_length", rules.max_value_length),
    ] {
        if value == 0 {
            return Err(check.error(
                &[Step::Key("tag_naming_rules"), Step::Key(field)],
                format!("{field} must be at least 1"),
            ));
        }
    }
    let fold = |name: &str| {
        if rules.case_sensitivity {
            name.to_string()
        } else {
            name.to_lowercase()
        }
    };

    // Names seen so far, to reject duplicates (across required and optional tags).
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut check_name = |list: &'static str, index: usize, name: &str| {
        let path = [Step::Key(list), Step::Index(index), Step::Key("name")];
        if name.trim().is_empty() {
            return Err(check.error(&path, "the tag name is empty".into()));
        }
        if crate::policy::is_reserved(name) {
            return Err(check.error(
                &path,
                format!("tag name '{name}' uses the prefix 'aws:', which AWS reserves for itself"),
            ));
        }
        if !rules.allow_special_characters && !crate::policy::is_portable(name) {
            return Err(check.error(
                &path,
                format!("tag name '{name}' has characters outside letters, digits, spaces and _ . : / = + - @, which allow_special_characters: false forbids"),
            ));
        }
        if name.len() > rules.max_key_length {
            return Err(check.error(
                &path,
                format!("tag name '{name}' is longer than max_key_length"),
            ));
        }
        if let Some(previous) = seen.insert(fold(name), format!("{list}[{index}]")) {
            let how = if rules.case_sensitivity {
                ""
            } else {
                " (names are compared ignoring case)"
            };
            return Err(check.error(
                &path,
                format!("duplicate tag name '{name}', already defined at {previous}{how}"),
            ));
        }
        Ok(())
    };

    let mut required = Vec::with_capacity(document.required_tags.len());
    for (index, rule) in document.required_tags.iter().enumerate() {
        check_name("required_tags", index, &rule.name)?;
        let at = |field: &'static str| {
            [
                Step::Key("required_tags"),
                Step::Index(index),
                Step::Key(field),
            ]
        };
        let allowed = compile_allowed(
            &check,
            &at("allowed_values"),
            &rule.allowed_values,
            rules.case_sensitivity,
        )?;
        let build = |pattern: &str, ignore_case: bool| {
            RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .case_insensitive(ignore_case)
                .build()
        };
        let regex = match &rule.validation_regex {
            None => None,
            Some(pattern) => {
                // Without case sensitivity, `Production` passes `^[a-z]+$` as it passes
                // `allowed_values: ["production"]` (with a case warning, not a format error).
                let compiled = build(pattern, !rules.case_sensitivity).map_err(|e| {
                    // The regex crate's message ends with a line "error: <what>".
                    let reason = e.to_string();
                    let reason = reason
                        .lines()
                        .last()
                        .unwrap_or("invalid")
                        .trim()
                        .trim_start_matches("error: ")
                        .to_string();
                    check.error(
                        &at("validation_regex"),
                        format!("regex '{pattern}' does not compile: {reason}"),
                    )
                })?;
                Some((compiled, Arc::from(pattern.as_str())))
            }
        };
        // The same pattern compiled case-insensitively, so it compiles as written too.
        let regex_exact_case = match (&rule.validation_regex, rules.case_sensitivity) {
            (Some(pattern), false) => build(pattern, false).ok(),
            _ => None,
        };
        if let (Some(values), Some((regex, pattern))) = (&allowed, &regex)
            && let Some(value) = values.iter().find(|v| !regex.is_match(v))
        {
            return Err(check.error(
                &at("allowed_values"),
                format!("allowed value '{value}' does not match validation_regex '{pattern}'"),
            ));
        }
        let mut applies_to = if rule.applies_to.is_empty() {
            TypeSet::all()
        } else {
            TypeSet::default()
        };
        for (i, text) in rule.applies_to.iter().enumerate() {
            let path = [
                Step::Key("required_tags"),
                Step::Index(index),
                Step::Key("applies_to"),
                Step::Index(i),
            ];
            match resolve_type(text) {
                Resolved::All => applies_to.add_all(),
                Resolved::Service(service, doubt) => {
                    if let Some(doubt) = doubt {
                        warnings.push(check.error(&path, doubt));
                    }
                    applies_to.add_service(&service);
                }
                Resolved::Type(resource_type, doubt) => {
                    if let Some(doubt) = doubt {
                        warnings.push(check.error(&path, doubt));
                    }
                    applies_to.add_type(resource_type);
                }
                Resolved::Unresolvable(why) => warnings.push(check.error(
                    &path,
                    format!("{why}; the entry is left out, so it makes the rule apply to nothing"),
                )),
                Resolved::Error(why) => return Err(check.error(&path, why)),
            }
        }
        if applies_to.is_empty() {
            warnings.push(check.error(
                &[
                    Step::Key("required_tags"),
                    Step::Index(index),
                    Step::Key("applies_to"),
                ],
                format!(
                    "required tag '{}' applies to no resource type, so it checks nothing",
                    rule.name
                ),
            ));
        }
        required.push(CompiledRequired {
            name: Arc::from(rule.name.as_str()),
            allowed_values: allowed,
            regex,
            regex_exact_case,
            applies_to,
            aliases: rule.aliases.iter().map(|a| Arc::from(a.as_str())).collect(),
            exact_case: rule.exact_case,
            wildcards: crate::policy::model::value_wildcards(
                rule.allowed_values.as_deref(),
                rule.wildcard_values,
            ),
            checked_everywhere: rule.checked_everywhere,
        });
    }

    let mut optional = Vec::with_capacity(document.optional_tags.len());
    for (index, rule) in document.optional_tags.iter().enumerate() {
        check_name("optional_tags", index, &rule.name)?;
        let path = [
            Step::Key("optional_tags"),
            Step::Index(index),
            Step::Key("allowed_values"),
        ];
        optional.push(CompiledOptional {
            name: Arc::from(rule.name.as_str()),
            aliases: rule.aliases.iter().map(|a| Arc::from(a.as_str())).collect(),
            severity: rule.severity.unwrap_or(crate::domain::Severity::Warning),
            exact_case: rule.exact_case,
            wildcards: crate::policy::model::value_wildcards(
                rule.allowed_values.as_deref(),
                rule.wildcard_values,
            ),
            allowed_values: compile_allowed(
                &check,
                &path,
                &rule.allowed_values,
                rules.case_sensitivity,
            )?,
        });
    }

    // An alias is a key like a name: it may be neither empty, nor reserved, nor another
    // tag's name or alias.
    let aliases = document
        .required_tags
        .iter()
        .map(|r| &r.aliases)
        .enumerate()
        .map(|(i, a)| ("required_tags", i, a))
        .chain(
            document
                .optional_tags
                .iter()
                .map(|r| &r.aliases)
                .enumerate()
                .map(|(i, a)| ("optional_tags", i, a)),
        );
    for (list, index, names) in aliases {
        for (j, alias) in names.iter().enumerate() {
            let path = [
                Step::Key(list),
                Step::Index(index),
                Step::Key("aliases"),
                Step::Index(j),
            ];
            if alias.trim().is_empty() {
                return Err(check.error(&path, "the alias is empty".into()));
            }
            if crate::policy::is_reserved(alias) {
                return Err(check.error(
                    &path,
                    format!("alias '{alias}' uses the prefix 'aws:', which AWS reserves"),
                ));
            }
            if let Some(previous) =
                seen.insert(fold(alias), format!("{list}[{index}].aliases[{j}]"))
            {
                return Err(check.error(
                    &path,
                    format!("alias '{alias}' is already a tag name or alias, at {previous}"),
                ));
            }
        }
    }

    let mut exemptions = Vec::with_capacity(document.exemptions.len());
    let today = chrono::Utc::now().date_naive();
    for (index, rule) in document.exemptions.iter().enumerate() {
        let at = |field| {
            [
                Step::Key("exemptions"),
                Step::Index(index),
                Step::Key(field),
            ]
        };
        if rule.arn_pattern.trim().is_empty() {
            return Err(check.error(&at("arn_pattern"), "the ARN pattern is empty".into()));
        }
        if rule.reason.trim().is_empty() {
            return Err(check.error(
                &at("reason"),
                "an exemption needs a reason (it is shown with every exempt resource)".into(),
            ));
        }
        if !rule.arn_pattern.starts_with("arn:") && !rule.arn_pattern.starts_with('*') {
            warnings.push(check.error(
                &at("arn_pattern"),
                format!(
                    "'{}' does not start with 'arn:', so it matches no ARN",
                    rule.arn_pattern
                ),
            ));
        }
        if rule.expires < today {
            warnings.push(check.error(
                &at("expires"),
                format!(
                    "the exemption of '{}' expired on {}: its resources are validated (and listed as under an expired exemption)",
                    rule.arn_pattern, rule.expires
                ),
            ));
        }
        exemptions.push(crate::policy::model::CompiledExemption {
            pattern: Arc::from(rule.arn_pattern.as_str()),
            regex: crate::policy::model::arn_glob(&rule.arn_pattern),
            reason: Arc::from(rule.reason.trim()),
            expires: rule.expires,
        });
    }
    if let Some(key) = &document.exemption_tag
        && (key.trim().is_empty() || crate::policy::is_reserved(key))
    {
        return Err(check.error(
            &[Step::Key("exemption_tag")],
            format!("'{key}' cannot be an exemption tag: give a key that is not empty and not 'aws:'-prefixed"),
        ));
    }

    if required.is_empty() {
        warnings.push(
            check.error(
                &[Step::Key("required_tags")],
                "the policy has no required tags, so no resource can fail it (optional tags and \
             naming rules only warn)"
                    .to_string(),
            ),
        );
    }
    if options.strict
        && let Some(first) = warnings.first().cloned()
    {
        return Err(match first {
            PolicyError::Invalid {
                file,
                line,
                column,
                field,
                message,
            } => PolicyError::Invalid {
                file,
                line,
                column,
                field,
                message: format!("{message} (an error because the policy is loaded strictly)"),
            },
            other => other,
        });
    }
    let warnings = warnings
        .into_iter()
        .map(|w| match w {
            PolicyError::Invalid {
                file,
                line,
                column,
                message,
                ..
            } => format!("policy '{file}' at line {line}, column {column}: {message}"),
            other => other.to_string(),
        })
        .collect();
    Ok(Policy {
        document,
        origin: origin.to_string(),
        required,
        optional,
        exemptions,
        warnings,
    })
}

/// What an `applies_to` entry names.
enum Resolved {
    /// `*` or `ALL_SUPPORTED`: every type.
    All,
    /// `ec2:*` or `ec2:ALL_SUPPORTED`: every type of a service; with a doubt when the service
    /// is not one tagguard knows.
    Service(String, Option<String>),
    /// One type; with a doubt when tagguard does not know it.
    Type(ResourceType, Option<String>),
    /// Nothing tagguard can resolve (an unknown CloudFormation type): left out, with why.
    Unresolvable(String),
    /// Certainly wrong (a case error, text that is no type): a load error, with why.
    Error(String),
}

/// Whether tagguard knows `service` (it has ARN forms of it).
fn known_service(service: &str) -> bool {
    FORMS.iter().any(|form| form.0 == service)
}

fn resolve_type(entry: &str) -> Resolved {
    let text = entry.trim();
    if text == "*" || text == "ALL_SUPPORTED" {
        return Resolved::All;
    }
    if text.starts_with("AWS::") || text.to_ascii_lowercase().starts_with("aws::") {
        if let Some((resource_type, exact)) = ResourceType::from_cloudformation_exactly(text) {
            let doubt = (!exact).then(|| {
                format!(
                    "'{text}' is read as the CloudFormation type of {resource_type}; CloudFormation writes its types with capitals (AWS::EC2::Instance)"
                )
            });
            return Resolved::Type(resource_type, doubt);
        }
        let names = FORMS
            .iter()
            .flat_map(|form| form.4.split(' '))
            .filter(|n| !n.is_empty());
        let hint = match closest(text, names, 3) {
            Some(name) => format!(
                ": did you mean '{name}' ({})?",
                ResourceType::from_cloudformation(name).map_or_else(String::new, |t| t.to_string())
            ),
            None => {
                let service = text.split("::").nth(1).unwrap_or("").to_ascii_lowercase();
                if known_service(&service) {
                    format!(
                        ": write '{service}:*' for every {service} type, or a type such as '{service}:...' from get_tagging_policy's known_resource_types"
                    )
                } else {
                    ": write the type as service:type (ec2:instance)".to_string()
                }
            }
        };
        return Resolved::Unresolvable(format!(
            "'{text}' is not a CloudFormation type tagguard can map to a resource type{hint}"
        ));
    }
    if let Some((service, kind)) = text.split_once(':')
        && (kind == "*" || kind == "ALL_SUPPORTED")
    {
        if service.is_empty() || service.contains(char::is_whitespace) {
            return Resolved::Error(format!("'{text}' names no service before ':*'"));
        }
        if service != service.to_ascii_lowercase() && known_service(&service.to_ascii_lowercase()) {
            return Resolved::Error(format!(
                "'{text}' is not a service wildcard; services are lower case: did you mean '{}:*'?",
                service.to_ascii_lowercase()
            ));
        }
        let doubt = (!known_service(service)).then(|| {
            format!("'{service}' in '{text}' is not a service tagguard knows; if it is a typo, the entry matches nothing")
        });
        return Resolved::Service(service.to_string(), doubt);
    }
    let resource_type: ResourceType = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: crate::domain::ResourceTypeError = e;
            let hint = if !text.contains(':') && known_service(text) {
                format!(", or '{text}:*' for every type of the service")
            } else {
                String::new()
            };
            return Resolved::Error(format!("{e}{hint}"));
        }
    };
    match resource_type.check() {
        TypeCheck::Known => Resolved::Type(resource_type, None),
        TypeCheck::WrongCase(known) => Resolved::Error(format!(
            "'{text}' is not a resource type; types are case-sensitive: did you mean '{known}'?"
        )),
        TypeCheck::Unknown => {
            let hint = closest(text, known_resource_types().iter().map(String::as_str), 2)
                .map(|k| format!(" (did you mean '{k}'?)"))
                .unwrap_or_default();
            Resolved::Type(
                resource_type,
                Some(format!(
                    "'{text}' is not a resource type tagguard knows{hint}; if it is a typo, the entry matches nothing"
                )),
            )
        }
    }
}

fn compile_allowed(
    check: &Checker<'_>,
    path: &[Step<'_>],
    values: &Option<Vec<String>>,
    case_sensitive: bool,
) -> Result<Option<Arc<[String]>>, PolicyError> {
    let Some(values) = values else {
        return Ok(None);
    };
    if values.is_empty() {
        return Err(check.error(
            path,
            "allowed_values is empty, so no value could pass: omit it to allow any value".into(),
        ));
    }
    for (i, value) in values.iter().enumerate() {
        let mut at = path.to_vec();
        at.push(Step::Index(i));
        if value.trim().is_empty() {
            return Err(check.error(
                &at,
                "an allowed value is empty; a blank required tag is always an error".into(),
            ));
        }
        let same = |other: &String| {
            if case_sensitive {
                other == value
            } else {
                crate::policy::eq_ignore_case(other, value)
            }
        };
        if let Some(first) = values[..i].iter().position(same) {
            return Err(check.error(
                &at,
                format!(
                    "allowed value '{value}' repeats allowed_values[{first}] '{}'",
                    values[first]
                ),
            ));
        }
    }
    Ok(Some(Arc::from(values.clone())))
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
        + 1;
    (line, column)
}

/// Byte offset of the value at `path` in well-formed JSON `text`: a small scanner, so semantic
/// errors point at the field the same way syntax errors do.
fn locate(text: &str, path: &[Step<'_>]) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    for step in path {
        match (step, bytes.get(pos)?) {
            (Step::Key(wanted), b'{') => {
                pos = skip_ws(bytes, pos + 1);
                loop {
                    if bytes.get(pos)? == &b'}' {
                        return None;
                    }
                    let key_end = skip_string(bytes, pos)?;
                    let key: String = serde_json::from_str(&text[pos..key_end]).ok()?;
                    pos = skip_ws(bytes, key_end);
                    pos = skip_ws(bytes, pos + 1); // the ':'
                    if key == *wanted {
                        break;
                    }
                    pos = skip_ws(bytes, skip_value(bytes, pos)?);
                    if bytes.get(pos)? == &b',' {
                        pos = skip_ws(bytes, pos + 1);
                    }
                }
            }
            (Step::Index(wanted), b'[') => {
                pos = skip_ws(bytes, pos + 1);
                for _ in 0..*wanted {
                    if bytes.get(pos)? == &b']' {
                        return None;
                    }
                    pos = skip_ws(bytes, skip_value(bytes, pos)?);
                    if bytes.get(pos)? == &b',' {
                        pos = skip_ws(bytes, pos + 1);
                    }
                }
            }
            _ => return None,
        }
    }
    Some(pos)
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

/// Position just past the string starting at `pos` (which must be `"`).
fn skip_string(bytes: &[u8], pos: usize) -> Option<usize> {
    if bytes.get(pos)? != &b'"' {
        return None;
    }
    let mut i = pos + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Position just past the value starting at `pos`.
fn skip_value(bytes: &[u8], pos: usize) -> Option<usize> {
    match bytes.get(pos)? {
        b'"' => skip_string(bytes, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = pos;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => {
                        i = skip_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = pos;
            while i < bytes.len()
                && !matches!(bytes[i], b',' | b'}' | b']')
                && !bytes[i].is_ascii_whitespace()
            {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (usize, usize, String, String) {
        match parse_policy(text, "p.json").expect_err("policy should be rejected") {
            PolicyError::Invalid {
                line,
                column,
                field,
                message,
                ..
            } => (line, column, field, message),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn default_policy_loads() {
        let policy = default_policy();
        let names: Vec<&str> = policy.required_tags().iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["CostCenter", "Owner", "Environment", "Application"]);
        let optional: Vec<&str> = policy.optional_tags().iter().map(|r| &*r.name).collect();
        assert_eq!(optional, ["Project", "Compliance"]);
    }

    #[test]
    fn unknown_field_names_line_column_and_field() {
        let text = "{\n  \"version\": \"1\",\n  \"required_tags\": [\n    {\"name\": \"A\", \"alowed_values\": [\"x\"]}\n  ]\n}";
        let (line, column, field, message) = invalid(text);
        assert_eq!(line, 4);
        assert!(column > 10, "column {column}");
        assert!(field.starts_with("required_tags[0]"), "{field}");
        assert!(
            message.contains("unknown field `alowed_values`"),
            "{message}"
        );
        let shown = parse_policy(text, "p.json").unwrap_err().to_string();
        assert!(
            shown.starts_with("error in policy 'p.json' at line 4, column"),
            "{shown}"
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let text = "{\"version\": \"1\", \"required_tags\": [{\"name\": \"A\", \"allowed_values\": \"x\"}]}";
        let (line, _, field, message) = invalid(text);
        assert_eq!(line, 1);
        assert_eq!(field, "required_tags[0].allowed_values");
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn bad_regex_is_located() {
        let text = "{\n \"version\": \"1\",\n \"required_tags\": [\n  {\"name\": \"A\"},\n  {\"name\": \"B\",\n   \"validation_regex\": \"^(a\"}\n ]\n}";
        let (line, column, field, message) = invalid(text);
        assert_eq!((line, column), (6, 24));
        assert_eq!(field, "required_tags[1].validation_regex");
        assert!(
            message.contains("'^(a' does not compile: unclosed group"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_names_are_rejected_with_case_rules() {
        let insensitive = "{\"version\": \"1\", \"required_tags\": [{\"name\": \"Owner\"}], \"optional_tags\": [{\"name\": \"owner\"}], \"tag_naming_rules\": {\"case_sensitivity\": false}}";
        let (_, _, field, message) = invalid(insensitive);
        assert_eq!(field, "optional_tags[0].name");
        assert!(message.contains("duplicate tag name 'owner'"), "{message}");
        let sensitive = insensitive.replace("false", "true");
        assert!(parse_policy(&sensitive, "p.json").is_ok());
    }

    #[test]
    fn semantic_checks() {
        let cases = [
            (
                r#"{"version": "", "required_tags": []}"#,
                "version",
                "empty",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "A", "applies_to": ["ec2"]}]}"#,
                "required_tags[0].applies_to[0]",
                "'ec2' is not a resource type",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "A", "allowed_values": []}]}"#,
                "required_tags[0].allowed_values",
                "empty",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "A", "allowed_values": ["ok", "Bad"], "validation_regex": "^[a-z]+$"}]}"#,
                "required_tags[0].allowed_values",
                "'Bad' does not match",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": " "}]}"#,
                "required_tags[0].name",
                "empty",
            ),
            (
                r#"{"version": "1", "required_tags": [], "tag_naming_rules": {"max_key_length": 0}}"#,
                "tag_naming_rules.max_key_length",
                "at least 1",
            ),
        ];
        for (text, want_field, want_message) in cases {
            let (_, _, field, message) = invalid(text);
            assert_eq!(field, want_field, "{text}");
            assert!(message.contains(want_message), "{message} for {text}");
        }
    }

    #[test]
    fn more_semantic_checks() {
        let cases = [
            (
                r#"["1", "x", [], [], {"case_sensitivity": true, "allow_special_characters": true, "max_key_length": 1, "max_value_length": 1}]"#,
                "",
                "expected a JSON object",
            ),
            (
                r#"{"version": "1", "required_tags": [["A"]]}"#,
                "required_tags[0]",
                "expected a JSON object",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "A", "allowed_values": ["x", ""]}]}"#,
                "required_tags[0].allowed_values[1]",
                "empty",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "A", "allowed_values": ["x", "y", "x"]}]}"#,
                "required_tags[0].allowed_values[2]",
                "repeats allowed_values[0]",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "A", "allowed_values": ["x", "X"]}], "tag_naming_rules": {"case_sensitivity": false}}"#,
                "required_tags[0].allowed_values[1]",
                "repeats",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "aws:team"}]}"#,
                "required_tags[0].name",
                "reserves",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "team#id"}], "tag_naming_rules": {"allow_special_characters": false}}"#,
                "required_tags[0].name",
                "allow_special_characters",
            ),
            (
                r#"{"version": "1", "required_tags": [{"name": "A", "applies_to": ["EC2:Instance"]}]}"#,
                "required_tags[0].applies_to[0]",
                "did you mean 'ec2:instance'",
            ),
        ];
        for (text, want_field, want_message) in cases {
            let (_, _, field, message) = invalid(text);
            assert_eq!(field, want_field, "{text}");
            assert!(message.contains(want_message), "{message} for {text}");
            assert!(!message.contains("struct"), "{message}");
        }
        // Case variants are distinct values when the policy is case-sensitive.
        let sensitive =
            r#"{"version": "1", "required_tags": [{"name": "A", "allowed_values": ["x", "X"]}]}"#;
        assert!(parse_policy(sensitive, "p.json").is_ok());
    }

    #[test]
    fn unknown_resource_types_warn_with_their_position() {
        let text = "{\"version\": \"1\",\n \"required_tags\": [{\"name\": \"A\", \"applies_to\": [\"ec2:instanse\", \"dynamodb:table\"]}]}";
        let policy = parse_policy(text, "p.json").unwrap();
        assert_eq!(policy.warnings.len(), 1, "{:?}", policy.warnings);
        assert!(
            policy.warnings[0].starts_with("policy 'p.json' at line 2, column"),
            "{}",
            policy.warnings[0]
        );
        assert!(policy.warnings[0].contains("'ec2:instanse'"));
        assert!(default_policy().warnings.is_empty());
    }

    fn rule(applies_to: &str) -> String {
        format!(
            r#"{{"version": "1", "required_tags": [{{"name": "CostCenter", "applies_to": {applies_to}}}]}}"#
        )
    }

    #[test]
    fn service_wildcards_and_cloudformation_names_resolve() {
        let policy = parse_policy(
            &rule(r#"["ec2:*", "rds:ALL_SUPPORTED", "AWS::S3::Bucket", "AWS::Lambda::Function"]"#),
            "p.json",
        )
        .unwrap();
        assert!(policy.warnings.is_empty(), "{:?}", policy.warnings);
        let applies = |t: &str| policy.required_tags()[0].applies_to(&t.parse().unwrap());
        for t in [
            "ec2:instance",
            "ec2:volume",
            "ec2:some-new-type",
            "rds:cluster",
            "s3:bucket",
            "lambda:function",
        ] {
            assert!(applies(t), "{t}");
        }
        for t in ["s3:object", "ecs:service", "ec2x:instance"] {
            assert!(!applies(t), "{t}");
        }
        let all = parse_policy(&rule(r#"["*"]"#), "p.json").unwrap();
        assert!(all.required_tags()[0].applies_to(&"iam:role".parse().unwrap()));
    }

    #[test]
    fn unresolvable_entries_warn_with_a_suggestion_and_fail_strict_loads() {
        let text = rule(r#"["AWS::EC2::Instanse", "ec2:instanse"]"#);
        let policy = parse_policy(&text, "p.json").unwrap();
        let joined = policy.warnings.join("\n");
        assert!(
            joined.contains("did you mean 'AWS::EC2::Instance' (ec2:instance)?"),
            "{joined}"
        );
        assert!(joined.contains("did you mean 'ec2:instance'?"), "{joined}");
        let strict = parse_policy_with(&text, "p.json", LoadOptions { strict: true }).unwrap_err();
        let PolicyError::Invalid { field, message, .. } = &strict else {
            panic!("{strict}")
        };
        assert_eq!(field, "required_tags[0].applies_to[0]");
        assert!(message.contains("loaded strictly"), "{message}");
        // A rule left with no type checks nothing, and says so.
        let nothing = parse_policy(&rule(r#"["AWS::Nope::Thing"]"#), "p.json").unwrap();
        assert!(
            nothing
                .warnings
                .iter()
                .any(|w| w.contains("applies to no resource type, so it checks nothing")),
            "{:?}",
            nothing.warnings
        );
        assert!(!nothing.required_tags()[0].applies_to(&"ec2:instance".parse().unwrap()));
    }

    #[test]
    fn wildcard_mistakes_are_errors_that_say_what_to_write() {
        let (_, _, field, message) = invalid(&rule(r#"["EC2:*"]"#));
        assert_eq!(field, "required_tags[0].applies_to[0]");
        assert!(message.contains("did you mean 'ec2:*'?"), "{message}");
        let (_, _, _, message) = invalid(&rule(r#"["ec2"]"#));
        assert!(
            message.contains("'ec2:*' for every type of the service"),
            "{message}"
        );
    }

    #[test]
    fn a_policy_that_checks_nothing_says_so() {
        let policy = parse_policy(r#"{"version": "1", "required_tags": []}"#, "p.json").unwrap();
        assert_eq!(policy.warnings.len(), 1);
        assert!(policy.warnings[0].contains("no required tags, so no resource can fail it"));
        let strict = parse_policy_with(
            r#"{"version": "1", "required_tags": []}"#,
            "p.json",
            LoadOptions { strict: true },
        );
        assert!(strict.is_err());
    }

    #[test]
    fn an_organizations_tag_policy_is_recognised() {
        let text = r#"{
  "tags": {
    "costcenter": {
      "tag_key": {"@@assign": "CostCenter"},
      "tag_value": {"@@assign": ["100", "200"]},
      "enforced_for": {"@@assign": ["ec2:instance"]}
    }
  }
}"#;
        let (line, _, field, message) = invalid(text);
        assert_eq!((line, field.as_str()), (2, "tags"));
        assert!(
            message.contains("AWS Organizations tag policy"),
            "{message}"
        );
        assert!(message.contains("tag_key becomes a name"), "{message}");
    }

    #[test]
    fn case_insensitive_policies_match_regexes_ignoring_case() {
        let text = r#"{"version": "1", "tag_naming_rules": {"case_sensitivity": false},
            "required_tags": [{"name": "Environment", "allowed_values": ["production", "staging"],
                               "validation_regex": "^[a-z]+$"}]}"#;
        let policy = parse_policy(text, "p.json").unwrap();
        let findings = policy.validate(
            &"ec2:instance".parse().unwrap(),
            &[crate::domain::Tag::new("Environment", "Production")],
        );
        let kinds: Vec<_> = findings.iter().map(|f| f.violation_type).collect();
        assert_eq!(
            kinds,
            [crate::domain::ViolationType::ValueCaseMismatch],
            "{findings:?}"
        );
    }

    #[test]
    fn byte_order_mark_is_ignored_and_type_names_do_not_leak() {
        assert!(
            parse_policy(
                "\u{feff}{\"version\": \"1\", \"required_tags\": []}",
                "p.json"
            )
            .is_ok()
        );
        let (_, _, _, message) = invalid(
            r#"{"version": "1", "required_tags": [], "tag_naming_rules": {"max_key_length": -1}}"#,
        );
        assert!(
            message.contains("non-negative integer") && !message.contains("usize"),
            "{message}"
        );
        assert_eq!(
            humanize("invalid type: sequence, expected struct PolicyDocument with 5 elements"),
            "invalid type: sequence, expected a JSON object"
        );
    }

    #[test]
    fn syntax_errors_and_trailing_text() {
        let (line, _, _, message) = invalid("{\"version\": \"1\",\n \"required_tags\": [}\n");
        assert_eq!(line, 2);
        assert!(!message.contains(" at line "), "{message}");
        let (_, _, _, message) = invalid("{\"version\": \"1\", \"required_tags\": []} x");
        assert!(message.contains("trailing"), "{message}");
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = load_policy(Path::new("no-such-policy.json")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read policy 'no-such-policy.json': no such file"
        );
    }
}
