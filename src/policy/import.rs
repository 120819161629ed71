//! Import of AWS Organizations tag policies: the effective policy of a chain of policies (root,
//! OUs, account, in that order) computed with AWS's inheritance operators, then translated into
//! a tagguard policy with the same meaning, and everything that cannot be expressed reported.
//!
//! Semantics (AWS Organizations, "Tag policy syntax" and "Understanding management policy
//! inheritance"):
//! - the policy key (`costcenter`) names a tag, ignoring case; `tag_key` fixes the key's
//!   capitalisation (without it, the key in lowercase is the compliant one);
//! - `tag_value` lists the values allowed, where `*` is a wildcard; without it any value is;
//! - `report_required_tag_for` makes the tag required for the types it names;
//! - a tag the policy names is checked wherever it is present: a key in another
//!   capitalisation or a value outside `tag_value` makes the resource non-compliant, required
//!   or not;
//! - `enforced_for` only blocks non-compliant tagging operations on those types in AWS; it
//!   makes nothing required, and a scan has nothing to enforce;
//! - `@@assign` replaces what is inherited, `@@append` adds to it, `@@remove` takes values
//!   (or, with no list to take from, the whole field) away; `@@operators_allowed_for_child_
//!   policies` restricts which of them policies further down may use, and a use it forbids is
//!   ignored, as AWS ignores it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::model::{NamingRules, OptionalTagRule, PolicyDocument, RequiredTagRule};

/// The fields of a tag entry.
const FIELDS: [&str; 4] = [
    "tag_key",
    "tag_value",
    "enforced_for",
    "report_required_tag_for",
];
const ALLOWED: &str = "@@operators_allowed_for_child_policies";
const OPERATORS: [&str; 3] = ["@@assign", "@@append", "@@remove"];

/// One tag of the effective policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectiveTag {
    /// The key with its capitalisation (`tag_key`, else the policy key in lowercase).
    pub key: String,
    /// Values allowed (`tag_value`), `*` a wildcard; `None`: any value.
    pub values: Option<Vec<String>>,
    /// Types whose tagging operations AWS blocks when non-compliant.
    pub enforced_for: Vec<String>,
    /// Types the tag is required for.
    pub required_for: Vec<String>,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The tagguard policy.
    pub policy: PolicyDocument,
    /// The effective tag policy, as AWS would compute it.
    pub effective: BTreeMap<String, EffectiveTag>,
    /// What the import could not express or chose to leave out, and why.
    pub notes: Vec<String>,
}

/// Which operators a field still admits, by field path.
#[derive(Default, Clone)]
struct Admitted(BTreeMap<String, Vec<String>>);

impl Admitted {
    fn allows(&self, path: &str, operator: &str) -> bool {
        // The closest restriction on the path or above it.
        let mut at = path;
        loop {
            if let Some(ops) = self.0.get(at) {
                return ops.iter().any(|o| o == "@@all" || o == operator);
            }
            match at.rfind('.') {
                Some(i) => at = &at[..i],
                None => return true,
            }
        }
    }

    fn restrict(&mut self, path: &str, ops: Vec<String>) {
        // A child cannot loosen what a parent restricted.
        let merged = match self.0.get(path) {
            Some(existing) if !existing.iter().any(|o| o == "@@all") => ops
                .into_iter()
                .filter(|o| existing.contains(o) || o == "@@none")
                .collect(),
            _ => ops,
        };
        self.0.insert(path.to_string(), merged);
    }
}

/// The policies of a file: one tag policy document, a list of them (root first), or what
/// `aws organizations describe-policy` or `describe-effective-policy` print (whose content is
/// a JSON string). Names each for messages.
pub fn documents_of(text: &str, origin: &str) -> Result<Vec<(String, Value)>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "'{origin}' is not JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        )
    })?;
    let one = |v: Value, name: String| -> Result<(String, Value), String> {
        if let Some(content) = v
            .pointer("/Policy/Content")
            .or_else(|| v.pointer("/EffectivePolicy/PolicyContent"))
        {
            let content = content
                .as_str()
                .ok_or_else(|| format!("{name}: the policy content is not a JSON string"))?;
            let parsed: Value = serde_json::from_str(content)
                .map_err(|e| format!("{name}: the policy content is not JSON: {e}"))?;
            let id = v
                .pointer("/Policy/PolicySummary/Name")
                .or_else(|| v.pointer("/EffectivePolicy/TargetId"))
                .and_then(Value::as_str)
                .map_or(name, |n| n.to_string());
            return Ok((id, parsed));
        }
        if v.get("tags").is_some() {
            return Ok((name, v));
        }
        Err(format!(
            "{name} is not a tag policy: it has no \"tags\" (an AWS Organizations tag policy starts with {{\"tags\": {{…}}}})"
        ))
    };
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| one(v, format!("{origin}[{i}]")))
            .collect(),
        other => Ok(vec![one(other, origin.to_string())?]),
    }
}

/// The effective policy of `chain` (root first), with notes on what was ignored.
pub fn effective_policy(
    chain: &[(String, Value)],
) -> Result<(BTreeMap<String, EffectiveTag>, Vec<String>), String> {
    // policy key (lowercase) → field → value as resolved so far.
    let mut state: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut admitted = Admitted::default();
    let mut notes = Vec::new();
    for (name, document) in chain {
        let Some(Value::Object(root)) = document.get("tags") else {
            return Err(format!("{name}: \"tags\" must be an object"));
        };
        for (key, value) in document.as_object().into_iter().flatten() {
            if key != "tags" {
                notes.push(format!(
                    "{name}: '{key}' is not part of a tag policy and is left out"
                ));
            }
            let _ = value;
        }
        let mut next_admitted = admitted.clone();
        if let Some(ops) = root.get(ALLOWED) {
            next_admitted.restrict("tags", operators_list(ops, name, "tags")?);
        }
        for (policy_key, entry) in root {
            if policy_key == ALLOWED {
                continue;
            }
            let Value::Object(entry) = entry else {
                return Err(format!("{name}: tags.{policy_key} must be an object"));
            };
            let id = policy_key.to_lowercase();
            let path = format!("tags.{id}");
            if let Some(ops) = entry.get(ALLOWED) {
                next_admitted.restrict(&path, operators_list(ops, name, &path)?);
            }
            for (field, value) in entry {
                if field == ALLOWED {
                    continue;
                }
                if !FIELDS.contains(&field.as_str()) {
                    notes.push(format!(
                        "{name}: tags.{policy_key}.{field} is not a tag policy field tagguard knows; left out"
                    ));
                    continue;
                }
                let field_path = format!("{path}.{field}");
                let (operator, operand) = operation(value, name, &field_path, &mut next_admitted)?;
                if !admitted.allows(&field_path, operator) {
                    notes.push(format!(
                        "{name}: {operator} on {field_path} is not allowed by a parent policy ({ALLOWED}) and is ignored, as AWS ignores it"
                    ));
                    continue;
                }
                let fields = state.entry(id.clone()).or_default();
                apply(fields, field, operator, operand);
            }
        }
        admitted = next_admitted;
    }
    let mut effective = BTreeMap::new();
    for (id, fields) in state {
        let strings = |field: &str| -> Vec<String> {
            match fields.get(field) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            }
        };
        let key = match fields.get("tag_key") {
            Some(Value::String(k)) => k.clone(),
            _ => id.clone(),
        };
        if !key.eq_ignore_ascii_case(&id) {
            notes.push(format!(
                "tags.{id}: tag_key '{key}' differs from the policy key '{id}' by more than case; AWS requires them to match, and '{key}' is used"
            ));
        }
        let values = fields.get("tag_value").map(|_| strings("tag_value"));
        effective.insert(
            id,
            EffectiveTag {
                key,
                values,
                enforced_for: strings("enforced_for"),
                required_for: strings("report_required_tag_for"),
            },
        );
    }
    Ok((effective, notes))
}

fn operators_list(value: &Value, name: &str, path: &str) -> Result<Vec<String>, String> {
    let list = match value {
        Value::Array(items) => items,
        _ => return Err(format!("{name}: {path}.{ALLOWED} must be a list")),
    };
    list.iter()
        .map(|v| match v.as_str() {
            Some(op @ ("@@all" | "@@none" | "@@assign" | "@@append" | "@@remove")) => {
                Ok(op.to_string())
            }
            _ => Err(format!(
                "{name}: {path}.{ALLOWED} holds {v}, which is not an operator"
            )),
        })
        .collect()
}

/// The operator and operand of a field: `{"@@assign": v}` and the like, or a plain value
/// (an effective policy's, which is an assignment).
fn operation<'a>(
    value: &'a Value,
    name: &str,
    path: &str,
    admitted: &mut Admitted,
) -> Result<(&'static str, &'a Value), String> {
    let Value::Object(map) = value else {
        return Ok(("@@assign", value));
    };
    if let Some(ops) = map.get(ALLOWED) {
        admitted.restrict(path, operators_list(ops, name, path)?);
    }
    let found: Vec<(&'static str, &Value)> = OPERATORS
        .iter()
        .filter_map(|op| map.get(*op).map(|v| (*op, v)))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "{name}: {path} has no operator (@@assign, @@append or @@remove)"
        )),
        _ => Err(format!("{name}: {path} has more than one operator")),
    }
}

fn apply(fields: &mut BTreeMap<String, Value>, field: &str, operator: &str, operand: &Value) {
    let as_list = |v: &Value| -> Vec<Value> {
        match v {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        }
    };
    match operator {
        "@@assign" => {
            fields.insert(field.to_string(), operand.clone());
        }
        "@@append" => {
            let mut list = fields.get(field).map(as_list).unwrap_or_default();
            for v in as_list(operand) {
                if !list.contains(&v) {
                    list.push(v);
                }
            }
            fields.insert(field.to_string(), Value::Array(list));
        }
        _ => match fields.get(field) {
            Some(Value::Array(list)) => {
                let taken = as_list(operand);
                let rest: Vec<Value> = list
                    .iter()
                    .filter(|v| !taken.contains(v))
                    .cloned()
                    .collect();
                fields.insert(field.to_string(), Value::Array(rest));
            }
            _ => {
                fields.remove(field);
            }
        },
    }
}

/// The tagguard policy of an effective tag policy: required tags for those with
/// `report_required_tag_for` (checked where present on every other type too), optional tags
/// checked as errors for the rest; case exact, `*` a wildcard.
pub fn translate(
    effective: &BTreeMap<String, EffectiveTag>,
    version: &str,
    mut notes: Vec<String>,
) -> Imported {
    let mut required = Vec::new();
    let mut optional = Vec::new();
    for (id, tag) in effective {
        let values = tag.values.clone().filter(|v| !v.is_empty());
        if tag.values.as_ref().is_some_and(|v| v.is_empty()) {
            notes.push(format!(
                "tags.{id}: tag_value is an empty list; read as no restriction on the value"
            ));
        }
        let wildcard = values.iter().flatten().any(|v| v.contains('*'));
        if !tag.enforced_for.is_empty() {
            notes.push(format!(
                "tags.{id}: enforced_for ({}) blocks non-compliant tagging operations in AWS; it makes nothing required, and a scan has nothing to enforce, so it is not part of the tagguard policy",
                tag.enforced_for.join(", ")
            ));
        }
        let description = Some(format!("Imported from the AWS tag policy key '{id}'"));
        if tag.required_for.is_empty() {
            optional.push(OptionalTagRule {
                name: tag.key.clone(),
                description,
                allowed_values: values,
                aliases: Vec::new(),
                severity: Some(crate::domain::Severity::Error),
                exact_case: true,
                wildcard_values: wildcard,
            });
        } else {
            if values.is_none() {
                notes.push(format!(
                    "tags.{id}: required with any value; tagguard counts a blank value of a required tag as an error, where AWS accepts it"
                ));
            }
            required.push(RequiredTagRule {
                name: tag.key.clone(),
                description,
                allowed_values: values,
                validation_regex: None,
                applies_to: tag.required_for.clone(),
                aliases: Vec::new(),
                exact_case: true,
                wildcard_values: wildcard,
                checked_everywhere: true,
            });
        }
    }
    if required.is_empty() {
        notes.push(
            "no tag has report_required_tag_for, so nothing is required: the policy only checks tags where they are present".to_string(),
        );
    }
    Imported {
        policy: PolicyDocument {
            version: version.to_string(),
            last_updated: Some(chrono::Utc::now().date_naive().to_string()),
            required_tags: required,
            optional_tags: optional,
            tag_naming_rules: NamingRules {
                // Keys in another case are found, and then judged by each rule's exact case.
                case_sensitivity: false,
                ..NamingRules::default()
            },
            exemptions: Vec::new(),
            exemption_tag: None,
        },
        effective: effective.clone(),
        notes,
    }
}

/// Imports the policies of `text` (see [`documents_of`]) and loads the result as any policy
/// is loaded, so that what is returned is known to load: the import, and the warnings the
/// tagguard policy loads with.
pub fn import_checked(text: &str, origin: &str) -> Result<(Imported, Vec<String>), String> {
    let chain = documents_of(text, origin)?;
    import_chain_checked(&chain, Vec::new())
}

/// Imports a chain of tag policies (root first) and loads the result as any policy is
/// loaded: the import, whose notes begin with `notes` (what the caller learned while reading
/// the policies), and the warnings the tagguard policy loads with.
pub fn import_chain_checked(
    chain: &[(String, Value)],
    mut notes: Vec<String>,
) -> Result<(Imported, Vec<String>), String> {
    let mut imported = import_chain(chain)?;
    notes.append(&mut imported.notes);
    imported.notes = notes;
    let json = serde_json::to_string_pretty(&imported.policy).map_err(|e| e.to_string())?;
    let loaded = super::parse_policy(&json, "the imported policy")
        .map_err(|e| format!("the imported policy does not load: {e}"))?;
    Ok((imported, loaded.warnings))
}

/// Imports a chain of tag policies, root first.
pub fn import_chain(chain: &[(String, Value)]) -> Result<Imported, String> {
    let (effective, notes) = effective_policy(chain)?;
    if effective.is_empty() {
        return Err("the tag policies name no tag".to_string());
    }
    let names: Vec<&str> = chain.iter().map(|(n, _)| n.as_str()).collect();
    let version = format!("aws-tag-policy:{}", names.join("+"));
    Ok(translate(&effective, &version, notes))
}

/// The effective policy as JSON (AWS's form: plain values, no operators).
pub fn effective_json(effective: &BTreeMap<String, EffectiveTag>) -> Value {
    let mut tags = Map::new();
    for (id, tag) in effective {
        let mut entry = Map::new();
        entry.insert("tag_key".into(), Value::from(tag.key.clone()));
        if let Some(values) = &tag.values {
            entry.insert("tag_value".into(), Value::from(values.clone()));
        }
        if !tag.enforced_for.is_empty() {
            entry.insert("enforced_for".into(), Value::from(tag.enforced_for.clone()));
        }
        if !tag.required_for.is_empty() {
            entry.insert(
                "report_required_tag_for".into(),
                Value::from(tag.required_for.clone()),
            );
        }
        tags.insert(id.clone(), Value::Object(entry));
    }
    serde_json::json!({ "tags": tags })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(docs: Vec<Value>) -> Vec<(String, Value)> {
        docs.into_iter()
            .enumerate()
            .map(|(i, d)| (format!("p{i}"), d))
            .collect()
    }

    #[test]
    fn operators_resolve_down_the_tree() {
        let root = json!({"tags": {"costcenter": {
            "tag_key": {"@@assign": "CostCenter"},
            "tag_value": {"@@assign": ["100", "200"]},
            "report_required_tag_for": {"@@assign": ["ec2:instance"]}
        }}});
        let ou = json!({"tags": {"CostCenter": {
            "tag_value": {"@@append": ["300*"]},
            "report_required_tag_for": {"@@append": ["rds:db"]}
        }}});
        let account = json!({"tags": {"costcenter": {"tag_value": {"@@remove": ["100"]}}}});
        let (effective, notes) = effective_policy(&chain(vec![root, ou, account])).unwrap();
        let tag = &effective["costcenter"];
        assert_eq!(tag.key, "CostCenter");
        assert_eq!(
            tag.values.as_deref(),
            Some(&["200".to_string(), "300*".to_string()][..])
        );
        assert_eq!(tag.required_for, ["ec2:instance", "rds:db"]);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_child_may_not_use_what_a_parent_forbids() {
        let root = json!({"tags": {"costcenter": {
            "tag_key": {"@@assign": "CostCenter", "@@operators_allowed_for_child_policies": ["@@none"]},
            "tag_value": {"@@assign": ["100"], "@@operators_allowed_for_child_policies": ["@@append"]}
        }}});
        let child = json!({"tags": {"costcenter": {
            "tag_key": {"@@assign": "costCenter"},
            "tag_value": {"@@assign": ["999"]}
        }}});
        let grandchild = json!({"tags": {"costcenter": {"tag_value": {"@@append": ["200"]}}}});
        let (effective, notes) = effective_policy(&chain(vec![root, child, grandchild])).unwrap();
        let tag = &effective["costcenter"];
        assert_eq!(tag.key, "CostCenter");
        assert_eq!(
            tag.values.as_deref(),
            Some(&["100".to_string(), "200".to_string()][..])
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[test]
    fn without_tag_key_the_key_is_lowercase_and_unknown_fields_are_reported() {
        let doc = json!({"tags": {"Project": {"tag_value": {"@@assign": ["a"]}, "colour": {"@@assign": "x"}}}});
        let imported = import_chain(&chain(vec![doc])).unwrap();
        assert_eq!(imported.policy.optional_tags[0].name, "project");
        assert!(imported.notes.iter().any(|n| n.contains("colour")));
        assert!(
            imported
                .notes
                .iter()
                .any(|n| n.contains("nothing is required"))
        );
    }
}
