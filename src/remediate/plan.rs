//! Building a remediation plan: the non-compliant resources of a scope (or given ARNs), the
//! suggestions for their missing and invalid tags, the values a person set, and the AWS
//! command lines that apply the result.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{Arn, Origin, Resource, ResourceType, ScanScope, find_tag, keys_are_ascii};
use crate::policy::Policy;
use crate::scans::{RunContext, ScanQuestion, ScanService};
use crate::store::{Store, StoreError};
use crate::suggest::service::{
    MAX_ARNS, SuggestError, asked_tags, gather_evidence, lookup_resources, places_of,
    suggestions_for,
};
use crate::suggest::{Problem, TagSuggestion, tag_accepts};

/// The most ARNs one `tag-resources` call takes.
pub const ARNS_PER_TAG_CALL: usize = 20;

/// Most resources a plan covers unless asked for more.
pub const DEFAULT_LIMIT: usize = 500;

/// What a change does to a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// Adds a tag the resource lacks.
    Add,
    /// Replaces a value the policy rejects (or a blank one).
    Correct,
    /// Writes the value under the policy's spelling of the key and removes the other
    /// spelling.
    RenameKey,
}

/// Where a change's value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeOrigin {
    /// A suggestion (`suggest_tags`) at or above the plan's minimum confidence.
    Suggestion {
        /// Its confidence.
        confidence: f64,
        /// Its reasoning.
        reasoning: String,
    },
    /// A value the person making the plan set (`--set Key=Value`).
    UserSet,
    /// The resource's own value, under the key's spelling the policy uses.
    Respelled,
}

/// One tag change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TagChange {
    /// The tag, as the policy spells it (the key written).
    pub tag: String,
    /// What the change does.
    pub action: ChangeAction,
    /// The key the resource carries now when it is spelled otherwise (removed by the apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_key: Option<String>,
    /// The value it holds now, if any.
    pub from_value: Option<String>,
    /// The value written.
    pub to_value: String,
    /// Where that value comes from.
    pub origin: ChangeOrigin,
}

/// The changes to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceChanges {
    /// The resource.
    pub resource_arn: String,
    /// Its type.
    pub resource_type: ResourceType,
    /// Its account.
    pub account_id: String,
    /// Its region.
    pub region: String,
    /// Every key the changes touch, with the value it held when the plan was made (null:
    /// absent): an apply refuses the resource when any differs.
    pub before: BTreeMap<String, Option<String>>,
    /// The changes.
    pub changes: Vec<TagChange>,
}

/// A tag the plan leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Skipped {
    /// The resource.
    pub resource_arn: String,
    /// The tag (empty when the whole resource is skipped).
    pub tag: String,
    /// Why.
    pub reason: String,
}

/// The counts of a plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanTotals {
    /// Resources with changes.
    pub resources: u64,
    /// Tag changes.
    pub changes: u64,
    /// Of them, from suggestions.
    pub from_suggestions: u64,
    /// Of them, set by the person.
    pub user_set: u64,
    /// Of them, keys respelled.
    pub respelled: u64,
    /// Tags left alone.
    pub skipped: u64,
}

/// A remediation plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Its id (`tagguard fix --apply`, `--undo`, and the MCP apply tool name it).
    pub plan_id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The source it was made against (`aws`, `demo`).
    pub source: String,
    /// The policy version it fixes towards.
    pub policy_version: String,
    /// Suggestions below this confidence were left out.
    pub min_confidence: f64,
    /// The counts.
    pub totals: PlanTotals,
    /// The changes, per resource.
    pub resources: Vec<ResourceChanges>,
    /// What was left alone, and why.
    pub skipped: Vec<Skipped>,
    /// The same changes as AWS CLI commands (`aws resourcegroupstaggingapi …`), per account.
    pub commands: Vec<String>,
    /// How to read it.
    pub notes: Vec<String>,
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanQuestion {
    /// The scope whose non-compliant resources are fixed.
    pub scope: ScanScope,
    /// Given ARNs instead of the scope's non-compliant resources.
    pub arns: Vec<String>,
    /// Values set by the person, by tag (they win over suggestions).
    pub sets: Vec<(String, String)>,
    /// Suggestions below this confidence are left out.
    pub min_confidence: f64,
    /// Most resources covered.
    pub limit: usize,
    /// Who asks (a tool's name, `cli`).
    pub asked_by: String,
    /// The origin of the scans (a tool's are recorded and cached).
    pub origin: Origin,
}

/// The changes that fix `resource`'s `suggestions` (its missing and invalid tags), with the
/// values in `sets` first and suggestions at or above `min_confidence` next; what cannot be
/// fixed so is skipped with a reason. Touches nothing valid.
pub fn plan_changes(
    policy: &Policy,
    resource: &Resource,
    suggestions: &[TagSuggestion],
    sets: &[(Arc<str>, String)],
    min_confidence: f64,
) -> (Option<ResourceChanges>, Vec<Skipped>) {
    let ignore_case = !policy.naming().case_sensitivity;
    let ascii = keys_are_ascii(&resource.tags);
    let mut changes = Vec::new();
    let mut skipped = Vec::new();
    let mut before = BTreeMap::new();
    let skip = |tag: &str, reason: String| Skipped {
        resource_arn: resource.arn.clone(),
        tag: tag.to_string(),
        reason,
    };
    for s in suggestions {
        if s.problem == Problem::Requested {
            continue; // valid: never overwritten
        }
        let found = find_tag(&resource.tags, &s.tag, ignore_case, ascii).map(|f| f.tag.clone());
        let accepts = |v: &str| tag_accepts(policy, Some(&resource.resource_type), &s.tag, v);
        let set = sets.iter().find(|(tag, _)| **tag == *s.tag);
        let chosen = if let Some((_, value)) = set {
            if !accepts(value) {
                skipped.push(skip(
                    &s.tag,
                    format!(
                        "the value set, '{value}', is rejected by the policy for {}",
                        resource.resource_type
                    ),
                ));
                continue;
            }
            (value.clone(), ChangeOrigin::UserSet)
        } else if s.problem == Problem::KeyCase
            && let Some(found) = &found
            && accepts(&found.value)
        {
            (found.value.clone(), ChangeOrigin::Respelled)
        } else {
            match s.candidates.first() {
                Some(top) if top.confidence >= min_confidence => (
                    top.value.clone(),
                    ChangeOrigin::Suggestion {
                        confidence: top.confidence,
                        reasoning: top.reasoning.clone(),
                    },
                ),
                Some(top) => {
                    skipped.push(skip(
                        &s.tag,
                        format!(
                            "the best candidate, '{}', has a confidence of {:.3}, below the plan's minimum of {min_confidence}",
                            top.value, top.confidence
                        ),
                    ));
                    continue;
                }
                None => {
                    skipped.push(skip(
                        &s.tag,
                        s.no_suggestion
                            .clone()
                            .unwrap_or_else(|| "no candidate".to_string()),
                    ));
                    continue;
                }
            }
        };
        let (to_value, origin) = chosen;
        let from_key = found
            .as_ref()
            .filter(|f| f.key != s.tag)
            .map(|f| f.key.clone());
        let action = match (&found, &from_key) {
            (Some(_), Some(_)) => ChangeAction::RenameKey,
            (Some(_), None) => ChangeAction::Correct,
            (None, _) => ChangeAction::Add,
        };
        let exact = resource
            .tags
            .iter()
            .find(|t| t.key == s.tag)
            .map(|t| t.value.clone());
        before.insert(s.tag.clone(), exact);
        if let (Some(key), Some(found)) = (&from_key, &found) {
            before.insert(key.clone(), Some(found.value.clone()));
        }
        changes.push(TagChange {
            tag: s.tag.clone(),
            action,
            from_key,
            from_value: found.map(|f| f.value),
            to_value,
            origin,
        });
    }
    let planned = (!changes.is_empty()).then(|| ResourceChanges {
        resource_arn: resource.arn.clone(),
        resource_type: resource.resource_type.clone(),
        account_id: resource.account_id.to_string(),
        region: resource.region.to_string(),
        before,
        changes,
    });
    (planned, skipped)
}

/// A word for a shell: bare when it has nothing a shell reads, else in single quotes.
fn quote(word: &str) -> String {
    let bare = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@,+%".contains(c));
    if bare {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The region a resource's tagging calls go to (resources of no region: the partition's
/// home).
fn call_region(resource: &ResourceChanges) -> &str {
    match resource.region.as_str() {
        "" | "global" => "us-east-1",
        region => region,
    }
}

/// The AWS CLI commands that make `resources`' changes: per account, `tag-resources` for
/// each region and set of tags (20 ARNs a call, as the API allows), then `untag-resources`
/// for keys respelled.
pub fn commands(resources: &[ResourceChanges]) -> Vec<String> {
    type Key = (String, String, Vec<(String, String)>);
    let mut tag_groups: BTreeMap<Key, Vec<&str>> = BTreeMap::new();
    let mut untag_groups: BTreeMap<(String, String, String), Vec<&str>> = BTreeMap::new();
    for r in resources {
        let tags: Vec<(String, String)> = r
            .changes
            .iter()
            .map(|c| (c.tag.clone(), c.to_value.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        tag_groups
            .entry((r.account_id.clone(), call_region(r).to_string(), tags))
            .or_default()
            .push(&r.resource_arn);
        for c in &r.changes {
            if let Some(old) = &c.from_key {
                untag_groups
                    .entry((
                        r.account_id.clone(),
                        call_region(r).to_string(),
                        old.clone(),
                    ))
                    .or_default()
                    .push(&r.resource_arn);
            }
        }
    }
    let mut out = Vec::new();
    let accounts: BTreeSet<&String> = tag_groups.keys().map(|k| &k.0).collect();
    for account in accounts {
        out.push(format!(
            "# account {account}: run with credentials of this account"
        ));
        for ((_, region, tags), arns) in tag_groups.iter().filter(|(k, _)| &k.0 == account) {
            let json: serde_json::Map<String, serde_json::Value> = tags
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let json = serde_json::Value::Object(json).to_string();
            for chunk in arns.chunks(ARNS_PER_TAG_CALL) {
                let mut line = format!(
                    "aws resourcegroupstaggingapi tag-resources --region {} --resource-arn-list",
                    quote(region)
                );
                for arn in chunk {
                    let _ = write!(line, " {}", quote(arn));
                }
                let _ = write!(line, " --tags {}", quote(&json));
                out.push(line);
            }
        }
        for ((_, region, key), arns) in untag_groups.iter().filter(|(k, _)| &k.0 == account) {
            for chunk in arns.chunks(ARNS_PER_TAG_CALL) {
                let mut line = format!(
                    "aws resourcegroupstaggingapi untag-resources --region {} --resource-arn-list",
                    quote(region)
                );
                for arn in chunk {
                    let _ = write!(line, " {}", quote(arn));
                }
                let _ = write!(line, " --tag-keys {}", quote(key));
                out.push(line);
            }
        }
    }
    out
}

/// A plan's id: the time it was made and a digest of its changes.
fn plan_id(created_at: DateTime<Utc>, resources: &[ResourceChanges]) -> String {
    let text = serde_json::to_string(resources).unwrap_or_default();
    let digest = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "plan-{:x}-{:08x}",
        created_at.timestamp_micros().max(0),
        digest as u32
    )
}

/// Makes the plan `question` asks for.
pub async fn make_plan(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    question: PlanQuestion,
) -> Result<Plan, SuggestError> {
    let policy = scans.policy().clone();
    if !(0.0..=1.0).contains(&question.min_confidence) {
        return Err(SuggestError::InvalidInput(format!(
            "min_confidence {} is not between 0 and 1",
            question.min_confidence
        )));
    }
    let set_tags = asked_tags(
        &policy,
        &question
            .sets
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>(),
    )?;
    let sets: Vec<(Arc<str>, String)> = set_tags
        .into_iter()
        .zip(question.sets.iter().map(|(_, v)| v.clone()))
        .collect();
    for (tag, value) in &sets {
        if !tag_accepts(&policy, None, tag, value) {
            return Err(SuggestError::InvalidInput(format!(
                "--set {tag}={value}: the policy rejects '{value}' for {tag}"
            )));
        }
    }
    let mut notes = Vec::new();
    // Which resources: the given ones, or the scope's with a finding on a policy tag.
    let arns: Vec<String> = if !question.arns.is_empty() {
        question.arns.clone()
    } else {
        let mut q = ScanQuestion::new(question.scope.clone(), question.origin.clone());
        q.analyses.cost = true;
        let answer = scans.scan(ctx, q).await?;
        let names: BTreeSet<&str> = policy.required_tags().iter().map(|r| &*r.name).collect();
        let mut seen = BTreeSet::new();
        let mut arns = Vec::new();
        for v in answer.result.violations() {
            if names.contains(&*v.finding.tag_name) && seen.insert(v.resource.arn.clone()) {
                arns.push(v.resource.arn.clone());
            }
        }
        if arns.len() > question.limit {
            notes.push(format!(
                "{} resources have violations of required tags; the plan covers the first {} (raise the limit for more)",
                arns.len(),
                question.limit
            ));
            arns.truncate(question.limit);
        }
        arns
    };
    let parsed: Vec<Arn> = arns.iter().filter_map(|a| Arn::parse(a).ok()).collect();
    let mut skipped: Vec<Skipped> = arns
        .iter()
        .filter(|a| Arn::parse(a).is_err())
        .map(|a| Skipped {
            resource_arn: a.clone(),
            tag: String::new(),
            reason: "not an ARN".to_string(),
        })
        .collect();
    let mut resources = Vec::new();
    for chunk in parsed.chunks(MAX_ARNS) {
        let refs: Vec<&Arn> = chunk.iter().collect();
        let (found, _) =
            lookup_resources(scans, ctx, &refs, &question.scope, &question.asked_by).await?;
        let found_arns: BTreeSet<&str> = found.iter().map(|r| r.arn.as_str()).collect();
        for arn in chunk {
            if !found_arns.contains(arn.as_str()) {
                skipped.push(Skipped {
                    resource_arn: arn.as_str().to_string(),
                    tag: String::new(),
                    reason: "not found where the source looks".to_string(),
                });
            }
        }
        resources.extend(found);
    }
    let places = places_of(resources.iter());
    let gathered = gather_evidence(scans, ctx, &places, question.origin.clone(), false).await?;
    notes.extend(gathered.notes);
    let mut planned = Vec::new();
    for resource in &resources {
        let suggestions = suggestions_for(&policy, &gathered.evidence, resource, None);
        let (changes, skips) = plan_changes(
            &policy,
            resource,
            &suggestions,
            &sets,
            question.min_confidence,
        );
        planned.extend(changes);
        skipped.extend(skips);
    }
    let mut totals = PlanTotals {
        resources: planned.len() as u64,
        skipped: skipped.len() as u64,
        ..PlanTotals::default()
    };
    for c in planned.iter().flat_map(|r| &r.changes) {
        totals.changes += 1;
        match c.origin {
            ChangeOrigin::Suggestion { .. } => totals.from_suggestions += 1,
            ChangeOrigin::UserSet => totals.user_set += 1,
            ChangeOrigin::Respelled => totals.respelled += 1,
        }
    }
    notes.push(
        "a plan only adds missing tags, corrects values the policy rejects and respells keys; it never overwrites a valid value, and an apply refuses a resource whose tags changed since the plan"
            .to_string(),
    );
    let created_at = Utc::now();
    Ok(Plan {
        plan_id: plan_id(created_at, &planned),
        created_at,
        source: scans.source().name(),
        policy_version: policy.version().to_string(),
        min_confidence: question.min_confidence,
        totals,
        commands: commands(&planned),
        resources: planned,
        skipped,
        notes,
    })
}

/// The store key of plan `id`.
fn plan_key(id: &str) -> String {
    format!("plan|{id}")
}

/// Keeps `plan` in the store, for an apply by id.
pub async fn keep_plan(store: &Store, plan: &Plan) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(plan).expect("a plan is plain data and always serialises");
    store.put_remediation(plan_key(&plan.plan_id), bytes).await
}

/// The plan kept under `id`, if any (an unreadable record is none).
pub async fn kept_plan(store: &Store, id: &str) -> Result<Option<Plan>, StoreError> {
    Ok(store
        .remediation(&plan_key(id))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(quote("arn:aws:s3:::b-1"), "arn:aws:s3:::b-1");
        assert_eq!(quote("{\"A\":\"b c\"}"), "'{\"A\":\"b c\"}'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    fn changes(
        arn: &str,
        region: &str,
        tags: &[(&str, &str)],
        rename: Option<&str>,
    ) -> ResourceChanges {
        ResourceChanges {
            resource_arn: arn.to_string(),
            resource_type: ResourceType::Ec2Instance,
            account_id: "123456789012".to_string(),
            region: region.to_string(),
            before: BTreeMap::new(),
            changes: tags
                .iter()
                .map(|(k, v)| TagChange {
                    tag: k.to_string(),
                    action: if rename.is_some() {
                        ChangeAction::RenameKey
                    } else {
                        ChangeAction::Add
                    },
                    from_key: rename.map(str::to_string),
                    from_value: None,
                    to_value: v.to_string(),
                    origin: ChangeOrigin::UserSet,
                })
                .collect(),
        }
    }

    #[test]
    fn commands_batch_twenty_arns_per_region_and_tag_set() {
        let mut resources: Vec<ResourceChanges> = (0..45)
            .map(|i| {
                changes(
                    &format!("arn:aws:ec2:us-east-1:123456789012:instance/i-{i}"),
                    "us-east-1",
                    &[("CostCenter", "Finance")],
                    None,
                )
            })
            .collect();
        resources.push(changes(
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-x",
            "eu-west-1",
            &[("CostCenter", "Finance")],
            None,
        ));
        resources.push(changes(
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-y",
            "eu-west-1",
            &[("CostCenter", "O'Brien & Co")],
            Some("costcenter"),
        ));
        let lines = commands(&resources);
        assert_eq!(
            lines[0],
            "# account 123456789012: run with credentials of this account"
        );
        let tagging: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("tag-resources --region us-east-1"))
            .collect();
        assert_eq!(tagging.len(), 3, "45 ARNs in calls of 20");
        assert!(
            tagging
                .iter()
                .all(|l| l.matches("arn:aws:ec2").count() <= 20)
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains(r#"--tags '{"CostCenter":"O'\''Brien & Co"}'"#)),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("untag-resources --region eu-west-1")
                    && l.ends_with("--tag-keys costcenter"))
        );
    }
}
