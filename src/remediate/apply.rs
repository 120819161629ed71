//! Applying a plan and undoing an apply: re-read the resources, refuse those whose tags
//! changed since (the plan's `before`), write through the source's tag writer in batches,
//! re-read to verify, and record before and after in the store so that an undo restores the
//! exact previous values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::plan::{ARNS_PER_TAG_CALL, Plan, TagChange};
use crate::domain::{Arn, Resource, ScanScope};
use crate::scans::{RunContext, ScanService};
use crate::source::{ApiCallCounter, FetchContext};
use crate::store::{Store, StoreError};
use crate::suggest::service::{MAX_ARNS, SuggestError, lookup_resources};

/// What became of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    /// Every change was written and read back.
    Applied,
    /// A write failed, or what was read back is not what was written.
    Failed,
    /// Its tags changed since the plan (or the apply): nothing was written.
    Refused,
    /// Not found any more: nothing was written.
    Skipped,
}

/// One resource's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceOutcome {
    /// The resource.
    pub resource_arn: String,
    /// Its account.
    pub account_id: String,
    /// Its region.
    pub region: String,
    /// What became of it.
    pub status: ResourceStatus,
    /// Why, when it was not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Every key touched, with its value before the write (null: absent).
    pub before: BTreeMap<String, Option<String>>,
    /// The same keys as read back after the write.
    pub after: BTreeMap<String, Option<String>>,
}

/// Whether a record is of an apply or of an undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// `tagguard fix --apply`.
    Apply,
    /// `tagguard fix --undo`.
    Undo,
}

/// What an apply or an undo did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WriteRecord {
    /// The plan.
    pub plan_id: String,
    /// Apply or undo.
    pub kind: WriteKind,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// The source written to.
    pub source: String,
    /// Resources applied (read back as written).
    pub applied: u64,
    /// Resources failed.
    pub failed: u64,
    /// Resources refused (changed since).
    pub refused: u64,
    /// Resources skipped (gone).
    pub skipped: u64,
    /// Tagging API calls made (writes and re-reads).
    pub api_calls: u64,
    /// Per resource.
    pub results: Vec<ResourceOutcome>,
}

/// One resource's target: what its touched keys must hold now, and what they must become.
struct Target {
    arn: String,
    account: String,
    region: String,
    expected: BTreeMap<String, Option<String>>,
    desired: BTreeMap<String, Option<String>>,
}

/// The value of exactly `key` (tags are written under exact keys).
fn value_of(resource: &Resource, key: &str) -> Option<String> {
    resource
        .tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.clone())
}

fn state_of(
    resource: &Resource,
    keys: &BTreeMap<String, Option<String>>,
) -> BTreeMap<String, Option<String>> {
    keys.keys()
        .map(|k| (k.clone(), value_of(resource, k)))
        .collect()
}

/// Where a resource's writes go (resources of no region: the partition's home).
fn call_region(region: &str) -> &str {
    match region {
        "" | "global" => "us-east-1",
        region => region,
    }
}

fn shown(value: &Option<String>) -> String {
    value
        .as_deref()
        .map_or_else(|| "absent".to_string(), |v| format!("'{v}'"))
}

/// Reads the targets' resources whole, by ARN.
async fn read(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    arns: &[&str],
    server_scope: &ScanScope,
) -> Result<BTreeMap<String, Resource>, SuggestError> {
    let parsed: Vec<Arn> = arns.iter().filter_map(|a| Arn::parse(a).ok()).collect();
    let mut found = BTreeMap::new();
    for chunk in parsed.chunks(MAX_ARNS) {
        let refs: Vec<&Arn> = chunk.iter().collect();
        let (resources, _) = lookup_resources(scans, ctx, &refs, server_scope, "fix").await?;
        found.extend(resources.into_iter().map(|r| (r.arn.clone(), r)));
    }
    Ok(found)
}

/// Brings each target to its desired state, refusing those not in their expected one.
async fn converge(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    plan_id: &str,
    kind: WriteKind,
    targets: Vec<Target>,
    server_scope: &ScanScope,
) -> Result<WriteRecord, SuggestError> {
    let arns: Vec<&str> = targets.iter().map(|t| t.arn.as_str()).collect();
    let now = read(scans, ctx, &arns, server_scope).await?;
    let mut outcomes: BTreeMap<String, ResourceOutcome> = BTreeMap::new();
    let mut writable = Vec::new();
    for target in &targets {
        let mut outcome = ResourceOutcome {
            resource_arn: target.arn.clone(),
            account_id: target.account.clone(),
            region: target.region.clone(),
            status: ResourceStatus::Applied,
            message: None,
            before: BTreeMap::new(),
            after: BTreeMap::new(),
        };
        match now.get(&target.arn) {
            None => {
                outcome.status = ResourceStatus::Skipped;
                outcome.message = Some("not found any more: nothing written".to_string());
            }
            Some(resource) => {
                outcome.before = state_of(resource, &target.desired);
                let changed: Vec<String> = target
                    .expected
                    .iter()
                    .filter(|(key, value)| value_of(resource, key) != **value)
                    .map(|(key, value)| {
                        format!(
                            "{key} is {} now, {} when planned",
                            shown(&value_of(resource, key)),
                            shown(value)
                        )
                    })
                    .collect();
                if changed.is_empty() {
                    writable.push(target);
                } else {
                    outcome.status = ResourceStatus::Refused;
                    outcome.message = Some(format!(
                        "its tags changed since: {}; make a new plan",
                        changed.join(", ")
                    ));
                }
            }
        }
        outcomes.insert(target.arn.clone(), outcome);
    }

    // Writes, batched by account, region and change, as the API allows.
    let throttle = scans.engine().throttle();
    let calls = ApiCallCounter::default();
    let cx = FetchContext::new(&throttle, &calls);
    let source = scans.source();
    type Batch = (String, String, Vec<(String, String)>);
    let mut sets: BTreeMap<Batch, Vec<String>> = BTreeMap::new();
    let mut removals: BTreeMap<(String, String, Vec<String>), Vec<String>> = BTreeMap::new();
    for target in &writable {
        let region = call_region(&target.region).to_string();
        let set: Vec<(String, String)> = target
            .desired
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        let removed: Vec<String> = target
            .desired
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if !set.is_empty() {
            sets.entry((target.account.clone(), region.clone(), set))
                .or_default()
                .push(target.arn.clone());
        }
        if !removed.is_empty() {
            removals
                .entry((target.account.clone(), region, removed))
                .or_default()
                .push(target.arn.clone());
        }
    }
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    for ((account, region, set), arns) in &sets {
        let tags: BTreeMap<String, String> = set.iter().cloned().collect();
        for chunk in arns.chunks(ARNS_PER_TAG_CALL) {
            match source
                .tag_resources(account, region, chunk, &tags, &cx)
                .await
            {
                Ok(failed) => failures.extend(failed),
                Err(error) => {
                    for arn in chunk {
                        failures.insert(arn.clone(), format!("{}: {}", error.kind, error.message));
                    }
                }
            }
        }
    }
    for ((account, region, keys), arns) in &removals {
        let arns: Vec<String> = arns
            .iter()
            .filter(|a| !failures.contains_key(*a))
            .cloned()
            .collect();
        for chunk in arns.chunks(ARNS_PER_TAG_CALL) {
            match source
                .untag_resources(account, region, chunk, keys, &cx)
                .await
            {
                Ok(failed) => failures.extend(failed),
                Err(error) => {
                    for arn in chunk {
                        failures.insert(arn.clone(), format!("{}: {}", error.kind, error.message));
                    }
                }
            }
        }
    }
    if !writable.is_empty() {
        scans.forget_cached().await;
    }

    // Read back what was written.
    let written: Vec<&str> = writable.iter().map(|t| t.arn.as_str()).collect();
    let back = read(scans, ctx, &written, server_scope).await?;
    for target in &writable {
        let outcome = outcomes
            .get_mut(&target.arn)
            .expect("every target has an outcome");
        if let Some(reason) = failures.get(&target.arn) {
            outcome.status = ResourceStatus::Failed;
            outcome.message = Some(format!("the write failed: {reason}"));
        }
        match back.get(&target.arn) {
            Some(resource) => {
                outcome.after = state_of(resource, &target.desired);
                let wrong: Vec<String> = target
                    .desired
                    .iter()
                    .filter(|(k, v)| outcome.after.get(*k) != Some(*v))
                    .map(|(k, v)| {
                        format!(
                            "{k} reads {} instead of {}",
                            shown(&outcome.after[k]),
                            shown(v)
                        )
                    })
                    .collect();
                if outcome.status == ResourceStatus::Applied && !wrong.is_empty() {
                    outcome.status = ResourceStatus::Failed;
                    outcome.message = Some(format!("read back wrong: {}", wrong.join(", ")));
                }
            }
            None if outcome.status == ResourceStatus::Applied => {
                outcome.status = ResourceStatus::Failed;
                outcome.message = Some("not found when read back".to_string());
            }
            None => {}
        }
    }
    let results: Vec<ResourceOutcome> = targets
        .iter()
        .map(|t| {
            outcomes
                .remove(&t.arn)
                .expect("every target has an outcome")
        })
        .collect();
    let count = |s: ResourceStatus| results.iter().filter(|r| r.status == s).count() as u64;
    Ok(WriteRecord {
        plan_id: plan_id.to_string(),
        kind,
        at: Utc::now(),
        source: source.name(),
        applied: count(ResourceStatus::Applied),
        failed: count(ResourceStatus::Failed),
        refused: count(ResourceStatus::Refused),
        skipped: count(ResourceStatus::Skipped),
        api_calls: calls.snapshot().values().sum(),
        results,
    })
}

/// What a change leaves under each key: the policy's key set, the other spelling removed.
fn desired_of(changes: &[TagChange]) -> BTreeMap<String, Option<String>> {
    let mut desired = BTreeMap::new();
    for c in changes {
        if let Some(old) = &c.from_key {
            desired.insert(old.clone(), None);
        }
        desired.insert(c.tag.clone(), Some(c.to_value.clone()));
    }
    desired
}

/// Applies `plan`.
pub async fn apply(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    plan: &Plan,
    server_scope: &ScanScope,
) -> Result<WriteRecord, SuggestError> {
    let targets = plan
        .resources
        .iter()
        .map(|r| Target {
            arn: r.resource_arn.clone(),
            account: r.account_id.clone(),
            region: r.region.clone(),
            expected: r.before.clone(),
            desired: desired_of(&r.changes),
        })
        .collect();
    converge(
        scans,
        ctx,
        &plan.plan_id,
        WriteKind::Apply,
        targets,
        server_scope,
    )
    .await
}

/// Undoes `applied` (an apply's record): every resource it applied gets back the values its
/// touched keys held before, unless they changed since the apply.
pub async fn undo(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    applied: &WriteRecord,
    server_scope: &ScanScope,
) -> Result<WriteRecord, SuggestError> {
    let targets = applied
        .results
        .iter()
        .filter(|r| matches!(r.status, ResourceStatus::Applied | ResourceStatus::Failed))
        .map(|r| Target {
            arn: r.resource_arn.clone(),
            account: r.account_id.clone(),
            region: r.region.clone(),
            expected: r.after.clone(),
            desired: r.before.clone(),
        })
        .collect();
    converge(
        scans,
        ctx,
        &applied.plan_id,
        WriteKind::Undo,
        targets,
        server_scope,
    )
    .await
}

/// The store key of a write record.
fn record_key(kind: WriteKind, plan_id: &str) -> String {
    match kind {
        WriteKind::Apply => format!("apply|{plan_id}"),
        WriteKind::Undo => format!("undo|{plan_id}"),
    }
}

/// Keeps `record` (the latest apply or undo of its plan).
pub async fn keep_record(store: &Store, record: &WriteRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(record).expect("a record is plain data and always serialises");
    store
        .put_remediation(record_key(record.kind, &record.plan_id), bytes)
        .await
}

/// The apply of `plan_id` kept in the store, if any.
pub async fn kept_apply(store: &Store, plan_id: &str) -> Result<Option<WriteRecord>, StoreError> {
    Ok(store
        .remediation(&record_key(WriteKind::Apply, plan_id))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// The accounts and regions a plan writes to (for the confirmation prompt).
pub fn places(plan: &Plan) -> BTreeSet<(String, String)> {
    plan.resources
        .iter()
        .map(|r| (r.account_id.clone(), r.region.clone()))
        .collect()
}
