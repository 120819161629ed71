//! The supervisor: receives scan requests, plans them, spawns and links each scan's aggregator,
//! validator pool and fetchers, caps the fetchers running at once, and turns a fetcher that
//! crashes into a shard issue. Restart decisions live only in `handle_supervisor_evt`: a crashed
//! fetcher is not restarted (its shard is reported, not retried, so a poison page cannot loop).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::Utc;
use ractor::factory::{FactoryArguments, worker_builder};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::{Semaphore, oneshot, watch};

use super::aggregator::{Aggregator, AggregatorArgs, AggregatorMsg};
use super::fetcher::{FetchCounters, Fetcher, FetcherArgs};
use super::limits::LimiterRegistry;
use super::validator::{ValidateBatch, ValidatorFactory, ValidatorWorker};
use super::{EngineError, ScanProgress, ScanRequest, ScanTicket, ShardEnded};
use crate::config::EngineConfig;
use crate::domain::{ScanId, ScanIssueKind};
use crate::source::{Shard, ShardPlan, SourceError};

/// The supervisor actor (configuration comes in its arguments).
pub struct Supervisor;

/// Arguments of the supervisor.
pub struct SupervisorArgs {
    /// Engine sizing.
    pub engine: EngineConfig,
    /// Rate limiters, shared with the handle.
    pub limiters: Arc<LimiterRegistry>,
}

/// Messages to the supervisor.
pub enum SupervisorMsg {
    /// Start a scan; replies with its ticket.
    StartScan(ScanRequest, RpcReplyPort<Result<ScanTicket, EngineError>>),
    /// The planning task of a scan finished.
    Planned(ScanId, Result<ShardPlan, SourceError>),
    /// Cancel a scan.
    Cancel(ScanId),
}

/// One scan in flight.
struct RunningScan {
    request: ScanRequest,
    scope: Arc<crate::domain::ScanScope>,
    aggregator: ActorRef<AggregatorMsg>,
    validators: ActorRef<ractor::factory::FactoryMessage<(), ValidateBatch>>,
    permits: Arc<Semaphore>,
    /// Shards planned but not yet given a fetcher.
    pending: VecDeque<(usize, Shard)>,
}

/// What a scan-level actor is to its scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanRole {
    Aggregator,
    Validators,
}

/// A live fetcher, by actor id.
struct FetcherEntry {
    scan: ScanId,
    shard_index: usize,
    shard: Shard,
    counters: Arc<FetchCounters>,
    cell: ActorCell,
}

/// The supervisor's state.
pub struct SupervisorState {
    engine: EngineConfig,
    limiters: Arc<LimiterRegistry>,
    next_scan: u64,
    scans: HashMap<ScanId, RunningScan>,
    fetchers: HashMap<ActorId, FetcherEntry>,
    /// Aggregators and validator pools by actor id, to know which scan an ending concerns.
    scan_actors: HashMap<ActorId, (ScanId, ScanRole)>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Scan ids start from the clock so they stay ordered across restarts of the process.
        let next_scan = Utc::now().timestamp_micros().max(1) as u64;
        Ok(SupervisorState {
            engine: args.engine,
            limiters: args.limiters,
            next_scan,
            scans: HashMap::new(),
            fetchers: HashMap::new(),
            scan_actors: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartScan(request, reply) => {
                let ticket = state.start_scan(&myself, request).await;
                // The caller may have gone away; the scan then runs to no one, harmlessly.
                let _ = reply.send(ticket);
            }
            SupervisorMsg::Planned(scan, plan) => state.planned(&myself, scan, plan).await,
            SupervisorMsg::Cancel(scan) => state.end_scan(scan, Some(EngineError::Cancelled(scan))),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            SupervisionEvent::ActorFailed(cell, error) => (cell, Some(error.to_string())),
            _ => return Ok(()),
        };
        let id = cell.get_id();
        if let Some(entry) = state.fetchers.remove(&id) {
            if let (Some(failure), Some(scan)) = (failure, state.scans.get(&entry.scan)) {
                tracing::warn!(shard = %entry.shard, %failure, "fetcher crashed; shard reported as an issue");
                let resources = entry.counters.resources.load(Ordering::Acquire);
                let error = SourceError::new(
                    ScanIssueKind::FetcherCrashed,
                    format!("the fetcher of this shard crashed: {failure}"),
                );
                let end = ShardEnded {
                    shard: entry.shard_index,
                    batches_sent: entry.counters.batches_sent.load(Ordering::Acquire),
                    issue: Some(error.into_issue(&entry.shard, resources)),
                };
                // A stopped aggregator means the scan already ended.
                let _ = scan.aggregator.send_message(AggregatorMsg::ShardEnded(end));
            }
            state.launch_fetchers(&myself).await;
        } else if let Some((scan, role)) = state.scan_actors.remove(&id) {
            // The aggregator stops once it has answered the scan (or panicked, which drops the
            // ticket's sender: the caller sees `Stopped`). A pool that ends while its scan runs
            // leaves the scan unable to finish, so the scan is ended with an error.
            let error = match role {
                ScanRole::Aggregator => None,
                ScanRole::Validators => Some(match failure {
                    Some(f) => EngineError::Spawn(format!("the validator pool failed: {f}")),
                    None => EngineError::Stopped,
                }),
            };
            state.end_scan(scan, error);
            state.launch_fetchers(&myself).await;
        }
        Ok(())
    }
}

impl SupervisorState {
    async fn start_scan(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        request: ScanRequest,
    ) -> Result<ScanTicket, EngineError> {
        let scan_id = ScanId(self.next_scan);
        self.next_scan += 1;
        let (reply, result) = oneshot::channel();
        let (progress_tx, progress) = watch::channel(ScanProgress {
            scan_id: Some(scan_id),
            ..ScanProgress::default()
        });
        let args = AggregatorArgs {
            scan_id,
            started_at: Utc::now(),
            started: Instant::now(),
            source: request.source.name(),
            policy_version: request.policy.version().to_string(),
            scope: request.scope.clone(),
            severity: request.severity,
            reply,
            progress: progress_tx,
            api_calls_before: request.source.api_calls(),
            source_handle: request.source.clone(),
        };
        let (aggregator, _) = Actor::spawn_linked(None, Aggregator, args, myself.get_cell())
            .await
            .map_err(|e| EngineError::Spawn(e.to_string()))?;

        let policy = request.policy.clone();
        let severity = request.severity;
        let sink = aggregator.clone();
        let pool = FactoryArguments::builder()
            .worker_builder(Box::new(worker_builder(move |_wid| {
                let worker = ValidatorWorker {
                    policy: policy.clone(),
                    severity,
                    aggregator: sink.clone(),
                };
                (worker, ())
            })))
            .queue(Default::default())
            .router(Default::default())
            .num_initial_workers(self.engine.effective_validator_workers())
            .build();
        let validators =
            match Actor::spawn_linked(None, ValidatorFactory::default(), pool, myself.get_cell())
                .await
            {
                Ok((validators, _)) => validators,
                Err(e) => {
                    aggregator.stop(None);
                    return Err(EngineError::Spawn(e.to_string()));
                }
            };
        self.scan_actors
            .insert(aggregator.get_id(), (scan_id, ScanRole::Aggregator));
        self.scan_actors
            .insert(validators.get_id(), (scan_id, ScanRole::Validators));

        // Planning may call remote APIs: run it off the supervisor's mailbox.
        let source = request.source.clone();
        let scope = request.scope.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let plan = source.plan(&scope).await;
            // A stopped supervisor has no use for the plan.
            let _ = me.send_message(SupervisorMsg::Planned(scan_id, plan));
        });

        self.scans.insert(
            scan_id,
            RunningScan {
                scope: Arc::new(request.scope.clone()),
                request,
                aggregator,
                validators,
                permits: Arc::new(Semaphore::new(self.engine.max_in_flight_batches.max(1))),
                pending: VecDeque::new(),
            },
        );
        tracing::info!(scan = %scan_id, "scan started");
        Ok(ScanTicket {
            id: scan_id,
            progress,
            result,
        })
    }

    async fn planned(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        scan_id: ScanId,
        plan: Result<ShardPlan, SourceError>,
    ) {
        let Some(scan) = self.scans.get_mut(&scan_id) else {
            return; // cancelled while planning
        };
        match plan {
            Err(error) => {
                // The caller gets the error itself; the log only records it.
                tracing::info!(scan = %scan_id, %error, "scan could not be planned");
                let _ = scan
                    .aggregator
                    .send_message(AggregatorMsg::PlanFailed(error));
            }
            Ok(plan) => {
                tracing::info!(scan = %scan_id, shards = plan.shards.len(), issues = plan.issues.len(), "scan planned");
                scan.pending = plan.shards.iter().cloned().enumerate().collect();
                let _ = scan.aggregator.send_message(AggregatorMsg::Planned {
                    shards: plan.shards,
                    issues: plan.issues,
                    notes: plan.notes,
                });
                self.launch_fetchers(myself).await;
            }
        }
    }

    /// Starts pending fetchers, oldest scan first, up to the concurrency cap.
    async fn launch_fetchers(&mut self, myself: &ActorRef<SupervisorMsg>) {
        let mut order: Vec<ScanId> = self.scans.keys().copied().collect();
        order.sort();
        for scan_id in order {
            while self.fetchers.len() < self.engine.max_concurrent_fetchers.max(1) {
                let Some(scan) = self.scans.get_mut(&scan_id) else {
                    break;
                };
                let Some((shard_index, shard)) = scan.pending.pop_front() else {
                    break;
                };
                let counters = Arc::new(FetchCounters::default());
                let args = FetcherArgs {
                    shard_index,
                    shard: shard.clone(),
                    source: scan.request.source.clone(),
                    limiters: self.limiters.clone(),
                    validators: scan.validators.clone(),
                    aggregator: scan.aggregator.clone(),
                    scope: scan.scope.clone(),
                    permits: scan.permits.clone(),
                    counters: counters.clone(),
                };
                let aggregator = scan.aggregator.clone();
                match Actor::spawn_linked(None, Fetcher, args, myself.get_cell()).await {
                    Ok((fetcher, _)) => {
                        self.fetchers.insert(
                            fetcher.get_id(),
                            FetcherEntry {
                                scan: scan_id,
                                shard_index,
                                shard,
                                counters,
                                cell: fetcher.get_cell(),
                            },
                        );
                    }
                    Err(e) => {
                        let error = SourceError::new(
                            ScanIssueKind::FetcherCrashed,
                            format!("the fetcher of this shard could not start: {e}"),
                        );
                        let _ = aggregator.send_message(AggregatorMsg::ShardEnded(ShardEnded {
                            shard: shard_index,
                            batches_sent: 0,
                            issue: Some(error.into_issue(&shard, 0)),
                        }));
                    }
                }
            }
        }
    }

    /// Ends a scan: kills its fetchers and pool; tells the aggregator why when there is a why.
    fn end_scan(&mut self, scan_id: ScanId, error: Option<EngineError>) {
        let Some(scan) = self.scans.remove(&scan_id) else {
            return;
        };
        scan.permits.close();
        let doomed: Vec<ActorId> = self
            .fetchers
            .iter()
            .filter(|(_, f)| f.scan == scan_id)
            .map(|(id, _)| *id)
            .collect();
        for id in doomed {
            if let Some(entry) = self.fetchers.remove(&id) {
                entry.cell.kill();
            }
        }
        if let Some(error) = error {
            tracing::info!(scan = %scan_id, %error, "scan ended early");
            let _ = scan.aggregator.send_message(AggregatorMsg::Abort(error));
        }
        scan.validators.stop(None);
        self.scan_actors.retain(|_, (s, _)| *s != scan_id);
    }
}
