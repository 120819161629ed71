//! MCP prompts (what a client offers in its slash menu: an account audit, a cost-gap review, a
//! fix plan) and `completion/complete` for their arguments and for the resource templates'
//! variables: values the server knows (the policy's tags, the resource types, the accounts and
//! regions of the scans it holds, scan and report ids).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::ToolEnv;
use crate::domain::known_resource_types;

/// Why a prompt or a completion could not be given (JSON-RPC -32602).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PromptError(pub String);

/// One argument of a prompt.
struct Argument {
    name: &'static str,
    description: &'static str,
    required: bool,
}

/// One prompt.
struct Prompt {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    arguments: &'static [Argument],
}

const PROMPTS: &[Prompt] = &[
    Prompt {
        name: "account_audit",
        title: "Audit an account's tagging",
        description: "A tagging audit of one account: score, what is missing or invalid and what it costs, the resources to fix first, and a report to share.",
        arguments: &[
            Argument {
                name: "account_id",
                description: "The 12-digit account to audit",
                required: true,
            },
            Argument {
                name: "region",
                description: "Only this region (default: every region the server covers)",
                required: false,
            },
            Argument {
                name: "resource_type",
                description: "Only this resource type, as service:type (default: every type)",
                required: false,
            },
        ],
    },
    Prompt {
        name: "cost_gap_review",
        title: "Review the cost-attribution gap",
        description: "How much spend the allocation tags cannot attribute, which tags and services cause it, and the untagged resources behind it.",
        arguments: &[
            Argument {
                name: "period",
                description: "last_month (default), last_30_days or month_to_date",
                required: false,
            },
            Argument {
                name: "group_by",
                description: "service (default), region, account or resource_type",
                required: false,
            },
            Argument {
                name: "tag",
                description: "Only this allocation tag (default: the configured ones)",
                required: false,
            },
        ],
    },
    Prompt {
        name: "fix_plan",
        title: "Plan tag fixes",
        description: "A reviewed plan of tag changes from confident suggestions, for a tag or a resource type, with what stays for a person to decide.",
        arguments: &[
            Argument {
                name: "tag",
                description: "The tag to fix (default: every tag of the policy)",
                required: false,
            },
            Argument {
                name: "resource_type",
                description: "Only this resource type, as service:type",
                required: false,
            },
            Argument {
                name: "min_confidence",
                description: "The least confidence a suggested value needs (default 0.9)",
                required: false,
            },
        ],
    },
];

/// `prompts/list`'s `prompts`.
pub fn list() -> Vec<Value> {
    PROMPTS
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "title": p.title,
                "description": p.description,
                "arguments": p.arguments.iter().map(|a| json!({
                    "name": a.name,
                    "description": a.description,
                    "required": a.required,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn find(name: &str) -> Result<&'static Prompt, PromptError> {
    PROMPTS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = PROMPTS.iter().map(|p| p.name).collect();
        PromptError(format!(
            "unknown prompt '{name}'; the prompts are: {}",
            names.join(", ")
        ))
    })
}

/// `prompts/get`: the prompt's messages with `arguments` filled in, each checked.
pub fn get(
    env: &ToolEnv,
    name: &str,
    arguments: &serde_json::Map<String, Value>,
) -> Result<Value, PromptError> {
    let prompt = find(name)?;
    for key in arguments.keys() {
        if !prompt.arguments.iter().any(|a| a.name == key) {
            return Err(PromptError(format!(
                "'{key}' is not an argument of '{name}'"
            )));
        }
    }
    let arg = |key: &str| -> Result<Option<String>, PromptError> {
        match arguments.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(other) => Err(PromptError(format!(
                "argument '{key}' must be a string, not {other}"
            ))),
        }
    };
    for a in prompt.arguments.iter().filter(|a| a.required) {
        if arg(a.name)?.is_none() {
            return Err(PromptError(format!(
                "'{name}' needs the argument '{}' ({})",
                a.name, a.description
            )));
        }
    }
    let one_of = |key: &str, choices: &[&str]| -> Result<Option<String>, PromptError> {
        match arg(key)? {
            Some(v) if !choices.contains(&v.as_str()) => Err(PromptError(format!(
                "'{v}' is not a {key}: use {}",
                choices.join(", ")
            ))),
            other => Ok(other),
        }
    };
    let resource_type = match arg("resource_type")? {
        Some(t) if !known_resource_types().contains(&t) => {
            return Err(PromptError(format!(
                "'{t}' is not a resource type tagguard knows: complete the argument to see them"
            )));
        }
        other => other,
    };
    let tag = match arg("tag")? {
        Some(t) if !policy_tags(env).contains(&t) => {
            return Err(PromptError(format!(
                "'{t}' is not a tag of the policy: use {}",
                policy_tags(env).into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        other => other,
    };
    let text = match prompt.name {
        "account_audit" => {
            let account = arg("account_id")?.expect("required");
            if !crate::domain::is_account_id(&account) {
                return Err(PromptError(format!(
                    "'{account}' is not an account id (12 digits)"
                )));
            }
            let region = arg("region")?;
            let mut filters = json!({ "account_ids": [account] });
            let mut untagged = json!({});
            if let Some(region) = &region {
                filters["regions"] = json!([region]);
                untagged["regions"] = json!([region]);
            }
            let types = resource_type.map_or(json!([]), |t| json!([t]));
            untagged["resource_types"] = types.clone();
            format!(
                "Audit the tagging of AWS account {account}.\n\
                 1. Call check_tag_compliance with {{\"filters\": {filters}, \"resource_types\": {types}}} and give the score, the non-compliant resources and their monthly cost.\n\
                 2. Call find_untagged_resources with {untagged} and name the ten costliest resources of account {account} missing tags (its answer covers every account: keep those whose account_id is {account}), with the tags each misses.\n\
                 3. Call generate_compliance_report with the same filters and format \"markdown\"; list its recommendations in order, each with the resources and spend it covers.\n\
                 Say which figures are actual, allocated or unknown, and say so if the scan was partial."
            )
        }
        "cost_gap_review" => {
            let period = one_of("period", &["last_month", "last_30_days", "month_to_date"])?
                .unwrap_or_else(|| "last_month".to_string());
            let group_by = one_of(
                "group_by",
                &["service", "region", "account", "resource_type"],
            )?
            .unwrap_or_else(|| "service".to_string());
            let mut args = json!({ "time_period": period, "group_by": group_by });
            if let Some(tag) = &tag {
                args["tags"] = json!([tag]);
            }
            format!(
                "Review the cost-attribution gap.\n\
                 1. Call get_cost_attribution_gap with {args}: give the total usage spend, the gap and its percentage, the tags that cause most of it (missing or invalid) and the three {group_by} rows with the widest gap.\n\
                 2. Call find_untagged_resources and name the costliest resources behind the gap.\n\
                 Keep tax, credits and support apart from the gap, and report a tag that is not activated for cost allocation as not measurable, not as untagged."
            )
        }
        _ => {
            let confidence = match arg("min_confidence")? {
                None => 0.9,
                Some(text) => match text.parse::<f64>() {
                    Ok(c) if (0.0..=1.0).contains(&c) => c,
                    _ => {
                        return Err(PromptError(format!(
                            "min_confidence '{text}' is not a number from 0 to 1"
                        )));
                    }
                },
            };
            let mut args = json!({ "min_confidence": confidence });
            if let Some(t) = &resource_type {
                args["resource_types"] = json!([t]);
            }
            let only = tag
                .as_ref()
                .map_or(String::new(), |t| format!(" Keep only the changes to {t}."));
            format!(
                "Plan tag fixes{}{}.\n\
                 1. Call plan_tag_remediation with {args}.{only}\n\
                 2. Show the changes grouped by tag, each with the suggested value, its confidence and its evidence, and list what was skipped and why.\n\
                 3. Do not apply anything: a person reviews the plan (its plan_id) first.",
                tag.as_ref().map_or(String::new(), |t| format!(" for {t}")),
                resource_type
                    .as_ref()
                    .map_or(String::new(), |t| format!(" on {t}"))
            )
        }
    };
    Ok(json!({
        "description": prompt.description,
        "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
    }))
}

fn policy_tags(env: &ToolEnv) -> BTreeSet<String> {
    crate::suggest::policy_tags(env.policy())
        .iter()
        .map(|t| t.to_string())
        .collect()
}

/// Regions tagguard offers when none were seen.
const COMMON_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
];

/// The most values one completion returns (MCP's limit).
const MAX_VALUES: usize = 100;

/// Values an argument can take, before filtering by what was typed.
fn candidates(env: &ToolEnv, argument: &str) -> Vec<String> {
    let scans = env.shelf.scans();
    match argument {
        "account_id" => {
            let mut accounts: BTreeSet<String> = env.default_scope.accounts.clone();
            for scan in &scans {
                accounts.extend(scan.tally.by_account.keys().map(|a| a.to_string()));
            }
            accounts.into_iter().collect()
        }
        "region" => {
            let mut regions: BTreeSet<String> = env.default_scope.regions.clone();
            for scan in &scans {
                regions.extend(scan.tally.by_region.keys().map(|r| r.to_string()));
            }
            if regions.is_empty() {
                regions.extend(COMMON_REGIONS.iter().map(|r| r.to_string()));
            }
            regions.into_iter().collect()
        }
        "resource_type" => known_resource_types().to_vec(),
        "tag" => policy_tags(env).into_iter().collect(),
        "period" => ["last_month", "last_30_days", "month_to_date"]
            .map(String::from)
            .to_vec(),
        "group_by" => ["service", "region", "account", "resource_type"]
            .map(String::from)
            .to_vec(),
        "min_confidence" => ["0.95", "0.9", "0.8", "0.7"].map(String::from).to_vec(),
        "scan_id" => scans.iter().map(|s| s.meta.scan_id.to_string()).collect(),
        "report_id" => env.shelf.reports().iter().map(|r| r.id.clone()).collect(),
        _ => Vec::new(),
    }
}

/// `completion/complete`: values for `argument` of the prompt or resource template `reference`
/// names, starting with `value` (ignoring case).
pub fn complete(
    env: &ToolEnv,
    reference: &Value,
    argument: &str,
    value: &str,
) -> Result<Value, PromptError> {
    match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = reference
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| PromptError("a ref/prompt needs a 'name'".to_string()))?;
            let prompt = find(name)?;
            if !prompt.arguments.iter().any(|a| a.name == argument) {
                return Err(PromptError(format!(
                    "'{argument}' is not an argument of '{name}'"
                )));
            }
        }
        Some("ref/resource") => {
            let uri = reference
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| PromptError("a ref/resource needs a 'uri'".to_string()))?;
            let known = super::resources::templates()
                .iter()
                .any(|t| t["uriTemplate"].as_str() == Some(uri));
            if !known || !uri.contains(&format!("{{{argument}}}")) {
                return Err(PromptError(format!(
                    "'{argument}' is not a variable of a resource template '{uri}'"
                )));
            }
        }
        _ => {
            return Err(PromptError(
                "'ref' must be {\"type\": \"ref/prompt\", \"name\": …} or {\"type\": \"ref/resource\", \"uri\": …}".to_string(),
            ));
        }
    }
    let typed = value.to_lowercase();
    let matching: Vec<String> = candidates(env, argument)
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&typed))
        .collect();
    let total = matching.len();
    let values: Vec<String> = matching.into_iter().take(MAX_VALUES).collect();
    Ok(json!({
        "completion": {
            "values": values,
            "total": total,
            "hasMore": total > MAX_VALUES,
        }
    }))
}
