//! The aggregator: one actor per scan that merges validated batches into the scan's
//! [`Tally`] (releasing each batch's permit once merged), keeps the completion bookkeeping of
//! shards, publishes progress, and answers the scan's ticket when every shard is done.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{oneshot, watch};

use super::{BatchOutcome, EngineError, ScanProgress, ShardEnded};
use crate::domain::{
    ScanId, ScanIssue, ScanIssueKind, ScanMeta, ScanResult, ScanScope, Tally, TallyOptions,
};
use crate::source::{ApiCallCounter, Shard, SourceError};

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
    BatchValidated(Box<BatchOutcome>),
    /// Problems that cost some resources of a shard but not the shard.
    Issues(Vec<ScanIssue>),
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
    /// What the tally lists and analyses.
    pub options: Arc<TallyOptions>,
    /// Where the result goes.
    pub reply: oneshot::Sender<Result<ScanResult, EngineError>>,
    /// Where progress goes.
    pub progress: watch::Sender<ScanProgress>,
    /// The scan's API calls, read at the end.
    pub calls: ApiCallCounter,
}

/// Per-shard bookkeeping: a shard is done once it has ended and all its batches are merged.
#[derive(Default)]
struct ShardTally {
    merged: u64,
    ended: Option<u64>,
    done: bool,
}

/// The aggregator's state: the tally under construction and the completion bookkeeping.
pub struct AggregatorState {
    args: Option<AggregatorArgs>,
    shards: Vec<Shard>,
    planned: bool,
    shard_tallies: HashMap<usize, ShardTally>,
    shards_done: u64,
    shards_failed: u64,
    tally: Tally,
    /// Issues met so far, added to the tally (and sorted) once, at the end.
    issues: Vec<ScanIssue>,
    notes: Vec<String>,
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
        Ok(AggregatorState {
            progress: ScanProgress::new(args.scan_id),
            tally: Tally::new(&args.options),
            args: Some(args),
            shards: Vec::new(),
            planned: false,
            shard_tallies: HashMap::new(),
            shards_done: 0,
            shards_failed: 0,
            issues: Vec::new(),
            notes: Vec::new(),
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
                mut notes,
            } => {
                // Sorted, as merged results keep them, so any split of a scan reads the same.
                notes.sort();
                notes.dedup();
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
            AggregatorMsg::BatchValidated(outcome) => state.merge(*outcome),
            AggregatorMsg::Issues(issues) => state.issues.extend(issues),
            // A shard ends once: its fetcher's own end may race the supervisor's (a deadline
            // that passed as the fetcher finished); the first wins.
            AggregatorMsg::ShardEnded(end)
                if state
                    .shard_tallies
                    .get(&end.shard)
                    .is_some_and(|t| t.ended.is_some()) => {}
            AggregatorMsg::ShardEnded(end) => {
                if let Some(issue) = end.issue {
                    state.shards_failed += 1;
                    state.issues.push(issue);
                }
                state.shard_tallies.entry(end.shard).or_default().ended = Some(end.batches_sent);
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
        let BatchOutcome {
            shard,
            tally,
            failure,
            permit,
        } = outcome;
        if let Some(failure) = failure {
            let error = SourceError::new(
                ScanIssueKind::Other,
                format!("validation of a batch failed: {failure}"),
            );
            self.issues.push(match self.shards.get(shard) {
                Some(s) => error.into_issue(s, 0),
                None => ScanIssue::unattributed(error.kind, error.message),
            });
        }
        for counts in tally.by_resource_type.values() {
            self.progress.resources_scanned += counts.total;
            self.progress.non_compliant += counts.non_compliant;
        }
        self.tally.merge(tally);
        // Merged: the batch no longer counts against the scan's in-flight bound.
        drop(permit);
        self.shard_tallies.entry(shard).or_default().merged += 1;
        self.check_shard(shard);
    }

    fn check_shard(&mut self, shard: usize) {
        let tally = self.shard_tallies.entry(shard).or_default();
        if !tally.done && tally.ended.is_some_and(|sent| tally.merged >= sent) {
            tally.done = true;
            self.shards_done += 1;
        }
    }

    fn publish(&mut self) {
        self.progress.shards_done = self.shards_done;
        self.progress.issues = (self.tally.issues.len() + self.issues.len()) as u64;
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
        let meta = ScanMeta {
            scan_id: args.scan_id,
            scan_timestamp: args.started_at,
            duration_ms: args.started.elapsed().as_millis() as u64,
            source: args.source.clone(),
            policy_version: args.policy_version.clone(),
            scope: args.scope.clone(),
            severity_filter: args.options.severity,
            shards_total: self.shards.len() as u64,
            shards_succeeded: self.shards.len() as u64 - self.shards_failed,
            api_calls: args.calls.snapshot(),
            throttled_calls: args.calls.throttled(),
            retried_calls: args.calls.retries(),
            notes: std::mem::take(&mut self.notes),
            cost_gap: None,
        };
        let mut tally = std::mem::take(&mut self.tally);
        tally.add_issues(std::mem::take(&mut self.issues));
        ScanResult::new(meta, tally)
    }
}
