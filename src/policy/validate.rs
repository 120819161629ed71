//! Validation of one resource's tags against the policy: the hot loop, allocation-free when
//! the resource is compliant.
//!
//! Rules, in the order findings are emitted:
//! 1. each required tag that applies to the type: absent → `missing_required_tag` (error,
//!    naming a key that looks like it, such as `Cost Center` for `CostCenter`);
//!    blank value → `empty_value` (error); value outside `allowed_values` → `invalid_value`
//!    (error); value not matching `validation_regex` → `invalid_format` (error);
//! 2. each optional tag that is present: value outside its `allowed_values` → `invalid_value`
//!    (warning);
//! 3. with `case_sensitivity: false`, a key, an allowed value or a regex that matches only when
//!    case is ignored passes, with a `key_case_mismatch` / `value_case_mismatch` warning;
//! 4. every tag but those with the reserved `aws:` prefix: key or value too long, or (when
//!    special characters are not allowed) characters outside AWS's portable set → warnings.

use std::sync::Arc;

use super::model::{CompiledRequired, Policy};
pub use crate::domain::eq_ignore_case;
use crate::domain::{
    Expected, Finding, ResourceType, Severity, Tag, TagMatch, ViolationType, find_tag, look_alike,
};

impl Policy {
    /// Appends the findings for a resource of `resource_type` carrying `tags` to `out`, and
    /// says whether some required tag applies to the type (else the resource is not
    /// applicable). Appends nothing when the resource is fully compliant, and then allocates
    /// nothing.
    pub fn validate_into(
        &self,
        resource_type: &ResourceType,
        tags: &[Tag],
        out: &mut Vec<Finding>,
    ) -> bool {
        let ignore_case = !self.document.tag_naming_rules.case_sensitivity;
        // Once per resource: with ASCII keys, case variants have the key's exact length.
        let keys_ascii = !ignore_case || tags.iter().all(|t| t.key.is_ascii());

        let mut applicable = false;
        for rule in &self.required {
            if !rule.applies_to(resource_type) {
                // Not required here, but checked when present (AWS tag policies' semantics).
                if rule.checked_everywhere
                    && let Some(TagMatch { tag, exact, others }) =
                        find_tag(tags, &rule.name, ignore_case, keys_ascii)
                {
                    let severity = key_case_severity(rule.exact_case, Severity::Error);
                    push_key_findings(out, tags, tag, exact, others, &rule.name, severity);
                    if !is_blank(&tag.value) || rule.allowed_values.is_some() {
                        check_required_value(out, rule, &tag.value, ignore_case);
                    }
                }
                continue;
            }
            applicable = true;
            let found = find_or_alias(
                tags,
                &rule.name,
                &rule.aliases,
                ignore_case,
                keys_ascii,
                out,
            );
            let Some(TagMatch { tag, exact, others }) = found else {
                // A key that looks like the name (`Cost Center`, `costcenter` with case
                // sensitivity) is named, since it is usually the tag meant.
                let look_alike = tags
                    .iter()
                    .find(|t| !is_reserved(&t.key) && look_alike(&t.key, &rule.name).is_some());
                out.push(finding(
                    ViolationType::MissingRequiredTag,
                    Severity::Error,
                    &rule.name,
                    look_alike.map(|t| t.key.as_str()),
                    Expected::Nothing,
                ));
                continue;
            };
            let severity = key_case_severity(rule.exact_case, Severity::Error);
            push_key_findings(out, tags, tag, exact, others, &rule.name, severity);
            check_required_value(out, rule, &tag.value, ignore_case);
        }

        for rule in &self.optional {
            let found = find_or_alias(
                tags,
                &rule.name,
                &rule.aliases,
                ignore_case,
                keys_ascii,
                out,
            );
            let Some(TagMatch { tag, exact, others }) = found else {
                continue;
            };
            let severity = key_case_severity(rule.exact_case, rule.severity);
            push_key_findings(out, tags, tag, exact, others, &rule.name, severity);
            if let Some(allowed) = &rule.allowed_values {
                check_allowed(
                    out,
                    &rule.name,
                    &tag.value,
                    allowed,
                    &rule.wildcards,
                    ignore_case && !rule.exact_case,
                    rule.severity,
                );
            }
        }

        self.check_naming(tags, out);
        applicable
    }

    /// Why the policy rejects `value` for the required tag `rule` (blank, not allowed, wrong
    /// format), judged exactly as on a resource; `None` when it accepts it (a case difference
    /// the policy forgives is accepted, as on a resource, where it is only a warning).
    pub fn rejects_value(&self, rule: &CompiledRequired, value: &str) -> Option<ViolationType> {
        let ignore_case = !self.document.tag_naming_rules.case_sensitivity;
        let mut findings = Vec::new();
        check_required_value(&mut findings, rule, value, ignore_case);
        findings
            .into_iter()
            .find(|f| f.severity == Severity::Error)
            .map(|f| f.violation_type)
    }

    /// The findings for one resource, as a new vector.
    pub fn validate(&self, resource_type: &ResourceType, tags: &[Tag]) -> Vec<Finding> {
        let mut out = Vec::new();
        self.validate_into(resource_type, tags, &mut out);
        out
    }

    fn check_naming(&self, tags: &[Tag], out: &mut Vec<Finding>) {
        let rules = &self.document.tag_naming_rules;
        for tag in tags {
            if is_reserved(&tag.key) {
                continue;
            }
            if char_len_exceeds(&tag.key, rules.max_key_length) {
                out.push(finding(
                    ViolationType::KeyTooLong,
                    Severity::Warning,
                    &tag.key,
                    None,
                    Expected::MaxLength(rules.max_key_length),
                ));
            }
            if char_len_exceeds(&tag.value, rules.max_value_length) {
                out.push(finding(
                    ViolationType::ValueTooLong,
                    Severity::Warning,
                    &tag.key,
                    Some(&tag.value),
                    Expected::MaxLength(rules.max_value_length),
                ));
            }
            if !rules.allow_special_characters {
                for part in [&tag.key, &tag.value] {
                    if !is_portable(part) {
                        out.push(finding(
                            ViolationType::InvalidCharacters,
                            Severity::Warning,
                            &tag.key,
                            Some(part),
                            Expected::Nothing,
                        ));
                    }
                }
            }
        }
    }
}

/// The tag `name` on a resource, else the first of its aliases the resource carries, with a
/// `key_alias` warning pushed; an alias match counts as exact, so no case warning follows (the
/// alias warning says it all).
fn find_or_alias<'t>(
    tags: &'t [Tag],
    name: &Arc<str>,
    aliases: &[Arc<str>],
    ignore_case: bool,
    keys_ascii: bool,
    out: &mut Vec<Finding>,
) -> Option<TagMatch<'t>> {
    if let Some(found) = find_tag(tags, name, ignore_case, keys_ascii) {
        return Some(found);
    }
    let found = aliases
        .iter()
        .find_map(|alias| find_tag(tags, alias, ignore_case, keys_ascii))?;
    out.push(finding(
        ViolationType::KeyAlias,
        Severity::Warning,
        name,
        Some(&found.tag.key),
        Expected::Canonical(name.clone()),
    ));
    Some(TagMatch {
        exact: true,
        ..found
    })
}

/// Appends the findings of a required tag's value: blank, not allowed, wrong format, or a
/// case the policy forgives (a warning). One place, so that resources and billing line items
/// (the cost layer) are judged alike.
fn check_required_value(
    out: &mut Vec<Finding>,
    rule: &CompiledRequired,
    value: &str,
    ignore_case: bool,
) {
    if is_blank(value) {
        out.push(finding(
            ViolationType::EmptyValue,
            Severity::Error,
            &rule.name,
            Some(value),
            Expected::Nothing,
        ));
        return;
    }
    if let Some(allowed) = &rule.allowed_values {
        check_allowed(
            out,
            &rule.name,
            value,
            allowed,
            &rule.wildcards,
            ignore_case && !rule.exact_case,
            Severity::Error,
        );
    }
    if let Some((regex, pattern)) = &rule.regex {
        // Each regex runs at most once; the exact-case one first, since it is the one
        // a compliant value passes.
        let case_only = match &rule.regex_exact_case {
            None if regex.is_match(value) => None,
            Some(exact) if exact.is_match(value) => None,
            Some(_) if regex.is_match(value) => Some(true),
            _ => Some(false),
        };
        let judged = match case_only {
            None => None,
            Some(false) => Some((ViolationType::InvalidFormat, Severity::Error)),
            // With allowed values, their case check has said it already.
            Some(true) if rule.allowed_values.is_some() => None,
            Some(true) => Some((ViolationType::ValueCaseMismatch, Severity::Warning)),
        };
        if let Some((violation, severity)) = judged {
            out.push(finding(
                violation,
                severity,
                &rule.name,
                Some(value),
                Expected::Pattern(pattern.clone()),
            ));
        }
    }
}

/// The policy's spelling of the tag name, shared (a clone of an `Arc`, no copy of the text).
trait TagName {
    fn shared(&self) -> Arc<str>;
}

impl TagName for Arc<str> {
    fn shared(&self) -> Arc<str> {
        self.clone()
    }
}

impl TagName for String {
    fn shared(&self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

fn finding(
    violation_type: ViolationType,
    severity: Severity,
    tag_name: &impl TagName,
    current_value: Option<&str>,
    expected: Expected,
) -> Finding {
    Finding {
        violation_type,
        severity,
        tag_name: tag_name.shared(),
        current_value: current_value.map(Box::from),
        expected,
    }
}

/// A key in another case: a warning, or with `exact_case` as grave as the rule's `severity`.
fn key_case_severity(exact_case: bool, severity: Severity) -> Severity {
    if exact_case {
        severity
    } else {
        Severity::Warning
    }
}

/// The findings of a found key: its case (at `severity`) when it matched only ignoring case,
/// and the other case variants the resource carries, which were not judged.
fn push_key_findings(
    out: &mut Vec<Finding>,
    tags: &[Tag],
    tag: &Tag,
    exact: bool,
    others: bool,
    name: &Arc<str>,
    severity: Severity,
) {
    if !exact {
        push_key_case(out, name, &tag.key, severity);
    }
    if others {
        push_ignored_variants(out, tags, tag, name);
    }
}

fn push_key_case(out: &mut Vec<Finding>, name: &Arc<str>, found_key: &str, severity: Severity) {
    out.push(finding(
        ViolationType::KeyCaseMismatch,
        severity,
        name,
        Some(found_key),
        Expected::Canonical(name.clone()),
    ));
}

fn check_allowed(
    out: &mut Vec<Finding>,
    name: &Arc<str>,
    value: &str,
    allowed: &Arc<[String]>,
    wildcards: &[regex::Regex],
    ignore_case: bool,
    severity: Severity,
) {
    if allowed.iter().any(|a| a == value) || wildcards.iter().any(|w| w.is_match(value)) {
        return;
    }
    if ignore_case && let Some(canonical) = allowed.iter().find(|a| eq_ignore_case(a, value)) {
        out.push(finding(
            ViolationType::ValueCaseMismatch,
            Severity::Warning,
            name,
            Some(value),
            Expected::Canonical(Arc::from(canonical.as_str())),
        ));
        return;
    }
    out.push(finding(
        ViolationType::InvalidValue,
        severity,
        name,
        Some(value),
        Expected::AllowedValues(allowed.clone()),
    ));
}

/// Flags the case variants of `name` that were not judged: with two spellings on one resource,
/// only one is checked, and the other must not pass unnoticed.
fn push_ignored_variants(out: &mut Vec<Finding>, tags: &[Tag], judged: &Tag, name: &Arc<str>) {
    for tag in tags {
        if !std::ptr::eq(tag, judged) && eq_ignore_case(&tag.key, name) {
            push_key_case(out, name, &tag.key, Severity::Warning);
        }
    }
}

/// Empty or whitespace only; stops at the first visible character.
fn is_blank(text: &str) -> bool {
    text.chars().all(char::is_whitespace)
}

/// Keys AWS reserves for itself (`aws:cloudformation:stack-name`); users cannot change them.
pub fn is_reserved(key: &str) -> bool {
    key.len() >= 4 && key.as_bytes()[..4].eq_ignore_ascii_case(b"aws:")
}

/// Whether `text` is longer than `max` characters (bytes first: a cheap upper bound).
fn char_len_exceeds(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().count() > max
}

/// Bytes allowed in tags by every AWS service, for the ASCII fast path: letters, digits, space,
/// `_ . : / = + - @`. Non-ASCII bytes are `false` here and checked as Unicode characters.
const PORTABLE_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b' ' | b'_' | b'.' | b':' | b'/' | b'=' | b'+' | b'-' | b'@'
            );
        b += 1;
    }
    table
};

/// Whether every character is a letter, a digit, a space or one of `_ . : / = + - @`: the set
/// AWS documents as allowed in tags by every service.
pub fn is_portable(text: &str) -> bool {
    // No early exit: a branch-free pass over short strings is faster than stopping early.
    let mut all_portable = true;
    for &b in text.as_bytes() {
        all_portable &= PORTABLE_BYTES[b as usize];
    }
    if all_portable {
        return true;
    }
    if text.is_ascii() {
        return false;
    }
    text.chars().all(|c| {
        if c.is_ascii() {
            PORTABLE_BYTES[c as usize]
        } else {
            c.is_alphanumeric()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;

    const POLICY: &str = r#"{
        "version": "t",
        "required_tags": [
            {"name": "CostCenter", "allowed_values": ["Engineering", "Sales"]},
            {"name": "Owner", "validation_regex": "^[a-z]+@example\\.com$"},
            {"name": "Environment", "allowed_values": ["prod", "dev"], "applies_to": ["ec2:instance", "rds:db"]}
        ],
        "optional_tags": [{"name": "Tier", "allowed_values": ["gold", "silver"]}, {"name": "Project"}],
        "tag_naming_rules": {"case_sensitivity": false, "allow_special_characters": false,
                             "max_key_length": 20, "max_value_length": 30}
    }"#;

    fn policy(case_sensitive: bool) -> Policy {
        let text = POLICY.replace(
            "\"case_sensitivity\": false",
            &format!("\"case_sensitivity\": {case_sensitive}"),
        );
        parse_policy(&text, "test").unwrap()
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
    }

    fn kinds(findings: &[Finding]) -> Vec<(ViolationType, Severity, String)> {
        findings
            .iter()
            .map(|f| (f.violation_type, f.severity, f.tag_name.to_string()))
            .collect()
    }

    const GOOD: &[(&str, &str)] = &[
        ("CostCenter", "Engineering"),
        ("Owner", "ana@example.com"),
        ("Environment", "prod"),
    ];

    #[test]
    fn compliant_resource_has_no_findings() {
        for sensitive in [true, false] {
            assert!(
                policy(sensitive)
                    .validate(&ResourceType::Ec2Instance, &tags(GOOD))
                    .is_empty()
            );
        }
    }

    #[test]
    fn missing_invalid_and_format_errors_carry_detail() {
        let p = policy(true);
        let found = p.validate(
            &ResourceType::RdsDb,
            &tags(&[("CostCenter", "Marketing"), ("Owner", "Ana@example.com")]),
        );
        assert_eq!(
            kinds(&found),
            vec![
                (
                    ViolationType::InvalidValue,
                    Severity::Error,
                    "CostCenter".into()
                ),
                (
                    ViolationType::InvalidFormat,
                    Severity::Error,
                    "Owner".into()
                ),
                (
                    ViolationType::MissingRequiredTag,
                    Severity::Error,
                    "Environment".into()
                ),
            ]
        );
        assert_eq!(found[0].current_value.as_deref(), Some("Marketing"));
        assert!(matches!(&found[0].expected, Expected::AllowedValues(v) if v.len() == 2));
        assert!(matches!(&found[1].expected, Expected::Pattern(p) if p.contains("example")));
    }

    #[test]
    fn applies_to_scopes_rules() {
        let p = policy(true);
        let s3 = p.validate(
            &ResourceType::S3Bucket,
            &tags(&[("CostCenter", "Sales"), ("Owner", "bo@example.com")]),
        );
        assert!(
            s3.is_empty(),
            "Environment does not apply to buckets: {s3:?}"
        );
        let other = p.validate(&ResourceType::other("dynamodb:table"), &[]);
        assert_eq!(other.len(), 2, "rules without applies_to cover every type");
    }

    #[test]
    fn case_insensitive_policy_warns_on_case_only_differences() {
        let p = policy(false);
        let found = p.validate(
            &ResourceType::Ec2Instance,
            &tags(&[
                ("costcenter", "engineering"),
                ("Owner", "ana@example.com"),
                ("Environment", "PROD"),
            ]),
        );
        assert_eq!(
            kinds(&found),
            vec![
                (
                    ViolationType::KeyCaseMismatch,
                    Severity::Warning,
                    "CostCenter".into()
                ),
                (
                    ViolationType::ValueCaseMismatch,
                    Severity::Warning,
                    "CostCenter".into()
                ),
                (
                    ViolationType::ValueCaseMismatch,
                    Severity::Warning,
                    "Environment".into()
                ),
            ]
        );
        assert_eq!(found[0].current_value.as_deref(), Some("costcenter"));
        assert!(matches!(&found[1].expected, Expected::Canonical(c) if &**c == "Engineering"));
    }

    #[test]
    fn case_sensitive_policy_treats_other_case_as_absent_or_invalid() {
        let p = policy(true);
        let found = p.validate(
            &ResourceType::Ec2Instance,
            &tags(&[
                ("costcenter", "Engineering"),
                ("Owner", "ana@example.com"),
                ("Environment", "PROD"),
            ]),
        );
        assert_eq!(
            kinds(&found),
            vec![
                (
                    ViolationType::MissingRequiredTag,
                    Severity::Error,
                    "CostCenter".into()
                ),
                (
                    ViolationType::InvalidValue,
                    Severity::Error,
                    "Environment".into()
                ),
            ]
        );
    }

    #[test]
    fn exact_key_wins_over_case_variant_which_is_flagged() {
        let p = policy(false);
        let mut t = tags(GOOD);
        t.insert(0, Tag::new("costcenter", "nonsense"));
        let found = p.validate(&ResourceType::Ec2Instance, &t);
        assert_eq!(
            kinds(&found),
            vec![(
                ViolationType::KeyCaseMismatch,
                Severity::Warning,
                "CostCenter".into()
            )]
        );
        assert_eq!(found[0].current_value.as_deref(), Some("costcenter"));
    }

    #[test]
    fn every_case_variant_is_flagged_when_none_is_exact() {
        let p = policy(false);
        let mut t = tags(&GOOD[1..]);
        t.push(Tag::new("costcenter", "Sales"));
        t.push(Tag::new("COSTCENTER", "bogus"));
        let found = p.validate(&ResourceType::Ec2Instance, &t);
        let keys: Vec<_> = found
            .iter()
            .map(|f| (f.violation_type, f.current_value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            keys,
            vec![
                (ViolationType::KeyCaseMismatch, "costcenter"),
                (ViolationType::KeyCaseMismatch, "COSTCENTER"),
            ]
        );
    }

    #[test]
    fn optional_tags_warn_only_when_present_and_wrong() {
        let p = policy(true);
        let mut t = tags(GOOD);
        assert!(p.validate(&ResourceType::Ec2Instance, &t).is_empty());
        t.push(Tag::new("Tier", "bronze"));
        t.push(Tag::new("Project", "anything goes"));
        assert_eq!(
            kinds(&p.validate(&ResourceType::Ec2Instance, &t)),
            vec![(
                ViolationType::InvalidValue,
                Severity::Warning,
                "Tier".into()
            )]
        );
    }

    fn messages(findings: Vec<Finding>) -> Vec<String> {
        let resource = Arc::new(crate::domain::ResourceRef::from(crate::domain::Resource {
            arn: "arn:aws:ec2:us-east-1:123456789012:instance/i-1".into(),
            account_id: Arc::from("123456789012"),
            region: Arc::from("us-east-1"),
            resource_type: ResourceType::Ec2Instance,
            id: "i-1".into(),
            name: None,
            tags: Vec::new(),
            created_at: None,
            monthly_cost: None,
            cost_source: crate::domain::CostSource::Unknown,
            attributes: Default::default(),
        }));
        findings
            .into_iter()
            .map(|finding| {
                crate::domain::Violation {
                    resource: resource.clone(),
                    finding,
                }
                .message()
            })
            .collect()
    }

    #[test]
    fn a_missing_tag_names_the_key_that_looks_like_it() {
        let strict = policy(true);
        let found = messages(strict.validate(
            &ResourceType::Ec2Instance,
            &tags(&[
                ("cost center", "Sales"),
                ("owner", "x"),
                ("Environment", "prod"),
            ]),
        ));
        assert!(
            found.contains(&"required tag 'CostCenter' is missing; the resource has 'cost center', which differs in spaces or separators".to_string()),
            "{found:?}"
        );
        assert!(
            found.contains(&"required tag 'Owner' is missing; the resource has 'owner', which differs only in case (tag keys are case-sensitive)".to_string()),
            "{found:?}"
        );
        let found = messages(strict.validate(
            &ResourceType::Ec2Instance,
            &tags(&[
                ("CostCenter\u{200B}", "Sales"),
                ("Owner", "x"),
                ("Environment", "prod\u{200B}"),
            ]),
        ));
        assert!(
            found.iter().any(|m| m == "required tag 'CostCenter' is missing; the resource has 'CostCenter<U+200B>', which differs by U+200B (zero-width space)"),
            "{found:?}"
        );
        assert!(
            found.iter().any(|m| m.contains("has value 'prod<U+200B>'")
                && m.ends_with("(it contains U+200B (zero-width space))")),
            "{found:?}"
        );
        assert!(found.iter().all(|m| !m.contains('\u{200B}')), "{found:?}");
    }

    #[test]
    fn empty_value_is_an_error() {
        let p = policy(true);
        let mut t = tags(GOOD);
        t[0].value = "  ".into();
        assert_eq!(
            kinds(&p.validate(&ResourceType::Ec2Instance, &t)),
            vec![(
                ViolationType::EmptyValue,
                Severity::Error,
                "CostCenter".into()
            )]
        );
    }

    #[test]
    fn naming_rules_warn_and_skip_reserved_keys() {
        let p = policy(true);
        let mut t = tags(GOOD);
        t.push(Tag::new("aws:cloudformation:stack-name", "x".repeat(100)));
        t.push(Tag::new("AWS:Whatever#", "y"));
        assert!(p.validate(&ResourceType::Ec2Instance, &t).is_empty());
        t.push(Tag::new("a-very-long-key-indeed-yes", "ok"));
        t.push(Tag::new("Notes", "z".repeat(31)));
        t.push(Tag::new("team#id", "a,b"));
        assert_eq!(
            kinds(&p.validate(&ResourceType::Ec2Instance, &t)),
            vec![
                (
                    ViolationType::KeyTooLong,
                    Severity::Warning,
                    "a-very-long-key-indeed-yes".into()
                ),
                (
                    ViolationType::ValueTooLong,
                    Severity::Warning,
                    "Notes".into()
                ),
                (
                    ViolationType::InvalidCharacters,
                    Severity::Warning,
                    "team#id".into()
                ),
                (
                    ViolationType::InvalidCharacters,
                    Severity::Warning,
                    "team#id".into()
                ),
            ]
        );
    }

    #[test]
    fn portable_character_set() {
        assert!(is_portable("ana.b@example.com"));
        assert!(is_portable("Zürich 1/2 = x+y_z:w-v"));
        assert!(!is_portable("a#b"));
        assert!(!is_portable("a,b"));
        assert!(!is_portable("tab\there"));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(!char_len_exceeds("ééé", 3));
        assert!(char_len_exceeds("éééé", 3));
    }
}
