//! The aggregator: one actor per scan that merges validated batches and shard ends into the
//! scan's result, publishes progress, and answers the scan's ticket when every shard is done.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{oneshot, watch};

use super::validator::{BatchOutcome, push_offender};
use super::{EngineError, ScanProgress, ShardEnded};
use crate::domain::{
    Offender, ResourceType, ScanId, ScanIssue, ScanIssueKind, ScanResult, ScanScope,
    SeverityFilter, TagCounts, TypeCounts, Violation,
};
use crate::source::{ResourceSource, Shard, SourceError};

/// The aggregator actor (no configuration of its own).
pub struct Aggregator;

/// Messages to the aggregator.
pub enum AggregatorMsg {
    /// The source planned these shards (in this order) and found these issues.
    Planned {
        /// Shards, indexed as fetchers name them.
        shards: Vec<Shard>,
        /// Problems met while planning.
        issues: Vec<ScanIssue>,
        /// Limits of the source to state in the result.
        notes: Vec<String>,
    },
    /// The source could not plan the scan at all.
    PlanFailed(SourceError),
    /// A batch was validated.
    BatchValidated(BatchOutcome),
    /// Problems that cost some resources of a shard but not the shard.
    Issues(Vec<ScanIssue>),
    /// ARNs a fetcher admitted under the scope's ARN filter (sent only with one).
    Matched(Vec<String>),
    /// A shard's fetcher ended (read everything, or failed).
    ShardEnded(ShardEnded),
    /// The scan ends without a result (cancelled, or its pool died).
    Abort(EngineError),
}

/// What the aggregator needs to know of its scan.
pub struct AggregatorArgs {
    /// The scan.
    pub scan_id: ScanId,
    /// Wall-clock start, reported as `scan_timestamp`.
    pub started_at: DateTime<Utc>,
    /// Monotonic start, for the duration.
    pub started: Instant,
    /// The source's name.
    pub source: String,
    /// The policy's version.
    pub policy_version: String,
    /// The scope.
    pub scope: ScanScope,
    /// Which violations are listed.
    pub severity: SeverityFilter,
    /// Where the result goes.
    pub reply: oneshot::Sender<Result<ScanResult, EngineError>>,
    /// Where progress goes.
    pub progress: watch::Sender<ScanProgress>,
    /// The source, to read its API call counters at the end.
    pub source_handle: Arc<dyn ResourceSource>,
    /// The source's API call counters when the scan started.
    pub api_calls_before: BTreeMap<String, u64>,
}

/// Per-shard bookkeeping: a shard is done once it has ended and all its batches are validated.
#[derive(Default)]
struct ShardTally {
    validated: u64,
    ended: Option<u64>,
    done: bool,
}

/// The aggregator's state: the result under construction.
pub struct AggregatorState {
    args: Option<AggregatorArgs>,
    shards: Vec<Shard>,
    planned: bool,
    tallies: HashMap<usize, ShardTally>,
    shards_done: u64,
    shards_failed: u64,
    by_type: BTreeMap<ResourceType, TypeCounts>,
    by_tag: BTreeMap<String, TagCounts>,
    /// Violations per (shard, page), sorted at the end into source order.
    batches: Vec<((usize, u64), Vec<Violation>)>,
    offenders: Vec<Offender>,
    issues: Vec<ScanIssue>,
    notes: Vec<String>,
    matched_arns: Vec<String>,
    progress: ScanProgress,
}

impl Actor for Aggregator {
    type Msg = AggregatorMsg;
    type State = AggregatorState;
    type Arguments = AggregatorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: AggregatorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let progress = ScanProgress {
            scan_id: Some(args.scan_id),
            ..ScanProgress::default()
        };
        Ok(AggregatorState {
            args: Some(args),
            shards: Vec::new(),
            planned: false,
            tallies: HashMap::new(),
            shards_done: 0,
            shards_failed: 0,
            by_type: BTreeMap::new(),
            by_tag: BTreeMap::new(),
            batches: Vec::new(),
            offenders: Vec::new(),
            issues: Vec::new(),
            notes: Vec::new(),
            matched_arns: Vec::new(),
            progress,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: AggregatorMsg,
        state: &mut AggregatorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AggregatorMsg::Planned {
                shards,
                issues,
                notes,
            } => {
                state.notes = notes;
                state.progress.shards_total = Some(shards.len() as u64);
                state.shards = shards;
                state.planned = true;
                state.issues.extend(issues);
            }
            AggregatorMsg::PlanFailed(error) => {
                state.answer(Err(EngineError::Plan(error)));
                myself.stop(None);
                return Ok(());
            }
            AggregatorMsg::Abort(error) => {
                state.answer(Err(error));
                myself.stop(None);
                return Ok(());
            }
            AggregatorMsg::BatchValidated(outcome) => state.merge(outcome),
            AggregatorMsg::Issues(issues) => state.issues.extend(issues),
            AggregatorMsg::Matched(arns) => state.matched_arns.extend(arns),
            AggregatorMsg::ShardEnded(end) => {
                if let Some(issue) = end.issue {
                    state.shards_failed += 1;
                    state.issues.push(issue);
                }
                state.tallies.entry(end.shard).or_default().ended = Some(end.batches_sent);
                state.check_shard(end.shard);
            }
        }
        state.publish();
        if state.planned && state.shards_done == state.shards.len() as u64 {
            let result = state.finish();
            state.answer(Ok(result));
            myself.stop(None);
        }
        Ok(())
    }
}

impl AggregatorState {
    fn merge(&mut self, outcome: BatchOutcome) {
        let shard = outcome.shard;
        if let Some(failure) = outcome.failure {
            let error = SourceError::new(
                ScanIssueKind::Other,
                format!("validation of a batch failed: {failure}"),
            );
            self.issues.push(match self.shards.get(shard) {
                Some(s) => error.into_issue(s, 0),
                None => ScanIssue::unattributed(error.kind, error.message),
            });
        }
        for (resource_type, counts) in outcome.by_type {
            self.progress.resources_scanned += counts.total;
            self.progress.non_compliant += counts.non_compliant;
            self.by_type
                .entry(resource_type)
                .or_default()
                .merge(&counts);
        }
        for (tag, counts) in outcome.by_tag {
            let entry = self.by_tag.entry(tag.to_string()).or_default();
            entry.missing += counts.missing;
            entry.invalid += counts.invalid;
            entry.warnings += counts.warnings;
        }
        for offender in outcome.offenders {
            push_offender(&mut self.offenders, offender);
        }
        if !outcome.violations.is_empty() {
            self.batches
                .push(((shard, outcome.sequence), outcome.violations));
        }
        self.tallies.entry(shard).or_default().validated += 1;
        self.check_shard(shard);
    }

    fn check_shard(&mut self, shard: usize) {
        let tally = self.tallies.entry(shard).or_default();
        if !tally.done && tally.ended == Some(tally.validated) {
            tally.done = true;
            self.shards_done += 1;
        }
    }

    fn publish(&mut self) {
        self.progress.shards_done = self.shards_done;
        self.progress.issues = self.issues.len() as u64;
        if let Some(args) = &self.args {
            args.progress.send_replace(self.progress.clone());
        }
    }

    fn answer(&mut self, result: Result<ScanResult, EngineError>) {
        if let Some(args) = self.args.take() {
            let mut progress = self.progress.clone();
            progress.finished = true;
            args.progress.send_replace(progress);
            // The caller may have dropped its ticket; the scan's result is then unwanted.
            let _ = args.reply.send(result);
        }
    }

    fn finish(&mut self) -> ScanResult {
        let args = self
            .args
            .as_ref()
            .expect("finish runs once, before answer takes the args");
        let mut totals = TypeCounts::default();
        for counts in self.by_type.values() {
            totals.merge(counts);
        }
        let mut batches = std::mem::take(&mut self.batches);
        batches.sort_unstable_by_key(|(key, _)| *key);
        let count = batches.iter().map(|(_, v)| v.len()).sum();
        let mut violations = Vec::with_capacity(count);
        for (_, batch) in batches {
            violations.extend(batch);
        }
        ScanResult {
            scan_id: args.scan_id,
            compliance_score: ScanResult::score(totals.compliant, totals.total),
            total_resources: totals.total,
            compliant_resources: totals.compliant,
            non_compliant_resources: totals.non_compliant,
            error_count: totals.errors,
            warning_count: totals.warnings,
            violations,
            partial: !self.issues.is_empty(),
            notes: std::mem::take(&mut self.notes),
            api_calls: calls_since(&args.api_calls_before, args.source_handle.api_calls()),
            issues: std::mem::take(&mut self.issues),
            scan_timestamp: args.started_at,
            duration_ms: args.started.elapsed().as_millis() as u64,
            source: args.source.clone(),
            policy_version: args.policy_version.clone(),
            scope: args.scope.clone(),
            severity_filter: args.severity,
            by_resource_type: std::mem::take(&mut self.by_type),
            by_tag: std::mem::take(&mut self.by_tag),
            worst_offenders: std::mem::take(&mut self.offenders),
            shards_total: self.shards.len() as u64,
            shards_succeeded: self.shards.len() as u64 - self.shards_failed,
            matched_arns: std::mem::take(&mut self.matched_arns),
        }
    }
}

/// Calls made between two snapshots of a source's counters.
fn calls_since(
    before: &BTreeMap<String, u64>,
    after: BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .into_iter()
        .map(|(op, n)| {
            let delta = n - before.get(&op).copied().unwrap_or(0);
            (op, delta)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}
