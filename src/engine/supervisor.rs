//! The supervisor: receives scan requests, spawns and links each scan's planner, aggregator,
//! validator pool and fetchers, shares the fetcher slots fairly between scans, and turns a
//! planner or fetcher that crashes into an error or a shard issue. Restart decisions live only
//! in `handle_supervisor_evt`: a crashed fetcher is not restarted (its shard is reported, not
//! retried, so a poison page cannot loop).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use ractor::factory::{FactoryArguments, worker_builder};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::{Semaphore, oneshot, watch};

use super::aggregator::{Aggregator, AggregatorArgs, AggregatorMsg};
use super::fetcher::{FetchCounters, Fetcher, FetcherArgs};
use super::limits::LimiterRegistry;
use super::planner::{Planner, PlannerArgs};
use super::validator::{ValidateBatch, ValidatorFactory, ValidatorWorker};
use super::{
    EngineError, EngineStatus, EngineThrottle, ScanProgress, ScanRequest, ScanTicket, ShardEnded,
};
use crate::config::{EngineConfig, RetryConfig};
use crate::domain::{ScanId, ScanIssueKind, TagStatsSpec, TallyOptions};
use crate::source::{ApiCallCounter, Shard, ShardPlan, SourceError};

/// The supervisor actor (configuration comes in its arguments).
pub struct Supervisor;

/// Arguments of the supervisor.
pub struct SupervisorArgs {
    /// Engine sizing.
    pub engine: EngineConfig,
    /// Rate limiters, shared with the handle.
    pub limiters: Arc<LimiterRegistry>,
    /// How fetchers retry failed pages.
    pub retries: RetryConfig,
}

/// Messages to the supervisor.
pub enum SupervisorMsg {
    /// Start a scan; replies with its ticket.
    StartScan(ScanRequest, RpcReplyPort<Result<ScanTicket, EngineError>>),
    /// The planner of a scan finished.
    Planned(ScanId, Result<ShardPlan, SourceError>),
    /// Cancel a scan.
    Cancel(ScanId),
    /// Report what the engine is doing.
    Status(RpcReplyPort<EngineStatus>),
    /// A scan's deadline has passed.
    Deadline(ScanId),
}

/// One scan in flight.
struct RunningScan {
    request: ScanRequest,
    scope: Arc<crate::domain::ScanScope>,
    aggregator: ActorRef<AggregatorMsg>,
    validators: ActorRef<ractor::factory::FactoryMessage<(), ValidateBatch>>,
    planner: Option<ActorCell>,
    permits: Arc<Semaphore>,
    /// The scan's own API call counter, shared by its planner and fetchers.
    calls: ApiCallCounter,
    /// Shards planned but not yet given a fetcher.
    pending: VecDeque<(usize, Shard)>,
    /// Fetchers of this scan running now.
    running: usize,
    /// Whether the plan has reached the supervisor: until then a deadline fails the scan.
    plan_received: bool,
}

/// Why a deadline ended a shard (what was read stays in the result).
fn past_deadline(deadline: Duration, started: bool) -> SourceError {
    let what = if started {
        "before this shard was read to the end"
    } else {
        "before this shard could start"
    };
    SourceError::new(
        ScanIssueKind::Timeout,
        format!(
            "the scan's deadline of {} s passed {what}",
            deadline.as_secs_f64()
        ),
    )
}

/// What a scan-level actor is to its scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanRole {
    Planner,
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

impl FetcherEntry {
    /// The end of this fetcher's shard with `error`, as far as it had got: the batches it sent
    /// (the aggregator waits for them) and the resources they held.
    fn ended(&self, error: SourceError) -> ShardEnded {
        let resources = self.counters.resources.load(Ordering::Acquire);
        ShardEnded {
            shard: self.shard_index,
            batches_sent: self.counters.batches_sent.load(Ordering::Acquire),
            issue: Some(error.into_issue(&self.shard, resources)),
        }
    }
}

/// The supervisor's state.
pub struct SupervisorState {
    engine: EngineConfig,
    retries: RetryConfig,
    throttle: Arc<dyn crate::source::Throttle>,
    next_scan: u64,
    scans: HashMap<ScanId, RunningScan>,
    fetchers: HashMap<ActorId, FetcherEntry>,
    /// Planners, aggregators and validator pools by actor id, to know which scan an ending
    /// concerns.
    scan_actors: HashMap<ActorId, (ScanId, ScanRole)>,
    /// The scan served last, so the next round of fetcher slots starts after it.
    last_served: Option<ScanId>,
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
            retries: args.retries,
            throttle: Arc::new(EngineThrottle {
                limiters: args.limiters,
            }),
            next_scan,
            scans: HashMap::new(),
            fetchers: HashMap::new(),
            scan_actors: HashMap::new(),
            last_served: None,
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
            SupervisorMsg::Cancel(scan) => {
                state.end_scan(scan, Some(EngineError::Cancelled(scan)));
                // Its slots go to the scans waiting for one.
                state.launch_fetchers(&myself).await;
            }
            SupervisorMsg::Status(reply) => {
                let _ = reply.send(EngineStatus {
                    running: true,
                    scans: state.scans.len(),
                    fetchers: state.fetchers.len(),
                    shards_waiting: state.scans.values().map(|s| s.pending.len()).sum(),
                });
            }
            SupervisorMsg::Deadline(scan) => {
                state.deadline_passed(scan);
                state.launch_fetchers(&myself).await;
            }
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
            if let Some(scan) = state.scans.get_mut(&entry.scan) {
                scan.running = scan.running.saturating_sub(1);
                if let Some(failure) = failure {
                    tracing::warn!(shard = %entry.shard, %failure, "fetcher crashed; shard reported as an issue");
                    let end = entry.ended(SourceError::new(
                        ScanIssueKind::FetcherCrashed,
                        format!("the fetcher of this shard crashed: {failure}"),
                    ));
                    // A stopped aggregator means the scan already ended.
                    let _ = scan.aggregator.send_message(AggregatorMsg::ShardEnded(end));
                }
            }
            state.launch_fetchers(&myself).await;
        } else if let Some((scan, role)) = state.scan_actors.remove(&id) {
            match role {
                // A planner that ends has sent its plan; one that fails never will.
                ScanRole::Planner => {
                    if let Some(running) = state.scans.get_mut(&scan) {
                        running.planner = None;
                    }
                    if let Some(failure) = failure {
                        let error = SourceError::new(
                            ScanIssueKind::FetcherCrashed,
                            format!("planning crashed: {failure}"),
                        );
                        state.planned(&myself, scan, Err(error)).await;
                    }
                }
                // The aggregator stops once it has answered the scan (or panicked, which
                // drops the ticket's sender: the caller sees `Stopped`).
                ScanRole::Aggregator => state.end_scan(scan, None),
                // A pool that ends while its scan runs leaves the scan unable to finish, so
                // the scan is ended with an error.
                ScanRole::Validators => {
                    let error = match failure {
                        Some(f) => EngineError::Spawn(format!("the validator pool failed: {f}")),
                        None => EngineError::Stopped,
                    };
                    state.end_scan(scan, Some(error));
                }
            }
            state.launch_fetchers(&myself).await;
        }
        Ok(())
    }
}

/// The tally options a request asks for.
fn tally_options(request: &ScanRequest) -> TallyOptions {
    let policy = &request.policy;
    TallyOptions {
        severity: request.severity,
        match_arns: !request.scope.arns.is_empty(),
        cost: request.analyses.cost,
        tag_stats: request.analyses.tag_stats.then(|| {
            Arc::new(TagStatsSpec {
                names: policy
                    .required_tags()
                    .iter()
                    .map(|r| r.name.clone())
                    .chain(policy.optional_tags().iter().map(|r| r.name.clone()))
                    .collect(),
                ignore_case: !policy.naming().case_sensitivity,
            })
        }),
        keep_resources: request.analyses.resources,
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
        let calls = ApiCallCounter::default();
        let (aggregator, validators, progress, result) = self
            .spawn_scan_actors(myself, scan_id, &request, &calls)
            .await?;
        let planner = match request.plan.clone() {
            // Planned elsewhere: the shards go straight to fetchers.
            Some(plan) => {
                let _ = myself.send_message(SupervisorMsg::Planned(scan_id, Ok(plan)));
                None
            }
            None => match self.spawn_planner(myself, scan_id, &request, &calls).await {
                Ok(planner) => Some(planner),
                Err(e) => {
                    aggregator.stop(None);
                    validators.stop(None);
                    return Err(e);
                }
            },
        };
        if let Some(deadline) = request.deadline {
            let left = request
                .deadline_start
                .map_or(deadline, |start| deadline.saturating_sub(start.elapsed()));
            myself.send_after(left, move || SupervisorMsg::Deadline(scan_id));
        }
        self.scans.insert(
            scan_id,
            RunningScan {
                scope: Arc::new(request.scope.clone()),
                request,
                aggregator,
                validators,
                planner,
                permits: Arc::new(Semaphore::new(self.engine.max_in_flight_batches.max(1))),
                calls,
                pending: VecDeque::new(),
                running: 0,
                plan_received: false,
            },
        );
        tracing::info!(scan = %scan_id, "scan started");
        Ok(ScanTicket {
            id: scan_id,
            progress,
            result,
        })
    }

    /// The aggregator and the validator pool of a new scan, linked to the supervisor.
    #[allow(clippy::type_complexity)]
    async fn spawn_scan_actors(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        scan_id: ScanId,
        request: &ScanRequest,
        calls: &ApiCallCounter,
    ) -> Result<
        (
            ActorRef<AggregatorMsg>,
            ActorRef<ractor::factory::FactoryMessage<(), ValidateBatch>>,
            watch::Receiver<ScanProgress>,
            oneshot::Receiver<Result<crate::domain::ScanResult, EngineError>>,
        ),
        EngineError,
    > {
        let (reply, result) = oneshot::channel();
        let (progress_tx, progress) = watch::channel(ScanProgress::new(scan_id));
        let options = Arc::new(tally_options(request));
        let args = AggregatorArgs {
            scan_id,
            started_at: Utc::now(),
            started: Instant::now(),
            source: request.source.name(),
            policy_version: request.policy.version().to_string(),
            scope: request.scope.clone(),
            options: options.clone(),
            reply,
            progress: progress_tx,
            calls: calls.clone(),
        };
        let (aggregator, _) = Actor::spawn_linked(None, Aggregator, args, myself.get_cell())
            .await
            .map_err(|e| EngineError::Spawn(e.to_string()))?;

        let policy = request.policy.clone();
        let costs = request.costs.clone();
        let sink = aggregator.clone();
        let pool = FactoryArguments::builder()
            .worker_builder(Box::new(worker_builder(move |_wid| {
                let worker = ValidatorWorker {
                    policy: policy.clone(),
                    options: options.clone(),
                    aggregator: sink.clone(),
                    costs: costs.clone(),
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
        Ok((aggregator, validators, progress, result))
    }

    /// The scan's planner, linked, so a panic while planning reaches the supervisor.
    async fn spawn_planner(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        scan_id: ScanId,
        request: &ScanRequest,
        calls: &ApiCallCounter,
    ) -> Result<ActorCell, EngineError> {
        let supervisor = myself.clone();
        let args = PlannerArgs {
            source: request.source.clone(),
            scope: request.scope.clone(),
            throttle: self.throttle.clone(),
            calls: calls.clone(),
            retries: self.retries,
            deliver: Some(Box::new(move |plan| {
                // A stopped supervisor has no use for the plan.
                let _ = supervisor.send_message(SupervisorMsg::Planned(scan_id, plan));
            })),
        };
        let (planner, _) = Actor::spawn_linked(None, Planner, args, myself.get_cell())
            .await
            .map_err(|e| EngineError::Spawn(e.to_string()))?;
        self.scan_actors
            .insert(planner.get_id(), (scan_id, ScanRole::Planner));
        Ok(planner.get_cell())
    }

    async fn planned(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        scan_id: ScanId,
        plan: Result<ShardPlan, SourceError>,
    ) {
        let Some(scan) = self.scans.get_mut(&scan_id) else {
            return; // cancelled, or past its deadline, while planning
        };
        scan.plan_received = true;
        match plan {
            Err(error) => {
                // The caller gets the error itself; the log only records it.
                tracing::info!(scan = %scan_id, %error, "scan could not be planned");
                let _ = scan
                    .aggregator
                    .send_message(AggregatorMsg::PlanFailed(error));
            }
            Ok(plan) => {
                if let Some(duplicate) = duplicate_shard(&plan.shards) {
                    let error = SourceError::new(
                        ScanIssueKind::Other,
                        format!("the source planned shard '{duplicate}' twice"),
                    );
                    let _ = scan
                        .aggregator
                        .send_message(AggregatorMsg::PlanFailed(error));
                    return;
                }
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

    /// Starts pending fetchers, one scan at a time in turn (round-robin from the scan after
    /// the last one served), up to the cap. The last `reserved_fetchers` slots go only to
    /// scans that have no fetcher running, so a new scan starts at once however many others
    /// hold the rest.
    async fn launch_fetchers(&mut self, myself: &ActorRef<SupervisorMsg>) {
        let cap = self.engine.max_concurrent_fetchers.max(1);
        let shared = cap - self.engine.reserved_fetchers.min(cap - 1);
        let mut order: Vec<ScanId> = self.scans.keys().copied().collect();
        order.sort();
        if let Some(last) = self.last_served {
            let start = order.partition_point(|id| *id <= last);
            order.rotate_left(start);
        }
        loop {
            let mut launched = false;
            for &scan_id in &order {
                let running = self.fetchers.len();
                if running >= cap {
                    return;
                }
                let Some(scan) = self.scans.get_mut(&scan_id) else {
                    continue;
                };
                if scan.running > 0 && running >= shared {
                    continue;
                }
                let Some((shard_index, shard)) = scan.pending.pop_front() else {
                    continue;
                };
                self.last_served = Some(scan_id);
                self.spawn_fetcher(myself, scan_id, shard_index, shard)
                    .await;
                launched = true;
            }
            if !launched {
                return;
            }
        }
    }

    async fn spawn_fetcher(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        scan_id: ScanId,
        shard_index: usize,
        shard: Shard,
    ) {
        let Some(scan) = self.scans.get_mut(&scan_id) else {
            return;
        };
        let counters = Arc::new(FetchCounters::default());
        let args = FetcherArgs {
            shard_index,
            shard_id: Arc::from(shard.id()),
            shard: shard.clone(),
            source: scan.request.source.clone(),
            throttle: self.throttle.clone(),
            calls: scan.calls.clone(),
            validators: scan.validators.clone(),
            aggregator: scan.aggregator.clone(),
            scope: scan.scope.clone(),
            permits: scan.permits.clone(),
            counters: counters.clone(),
            retries: self.retries,
            retry_budget: AtomicU32::new(self.retries.shard_retry_budget),
        };
        let aggregator = scan.aggregator.clone();
        match Actor::spawn_linked(None, Fetcher, args, myself.get_cell()).await {
            Ok((fetcher, _)) => {
                scan.running += 1;
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

    /// A scan's deadline passed: a scan still planning fails (no shard is known); otherwise
    /// its running fetchers are stopped and every shard not read to the end, running or
    /// waiting, ends as a `timeout` issue, so the scan answers at once with what was read.
    fn deadline_passed(&mut self, scan_id: ScanId) {
        let Some(scan) = self.scans.get_mut(&scan_id) else {
            return; // already ended
        };
        let Some(deadline) = scan.request.deadline else {
            return;
        };
        if !scan.plan_received {
            // Still planning: the scan fails, and a plan that comes later finds it gone.
            let error = SourceError::new(
                ScanIssueKind::Timeout,
                format!(
                    "the scan's deadline of {} s passed while planning",
                    deadline.as_secs_f64()
                ),
            );
            let _ = scan
                .aggregator
                .send_message(AggregatorMsg::PlanFailed(error));
            self.end_scan(scan_id, None);
            return;
        }
        tracing::info!(scan = %scan_id, "deadline passed; unread shards end as issues");
        for entry in take_fetchers(&mut self.fetchers, scan_id) {
            let end = entry.ended(past_deadline(deadline, true));
            let _ = scan.aggregator.send_message(AggregatorMsg::ShardEnded(end));
        }
        for (shard_index, shard) in scan.pending.drain(..) {
            let end = ShardEnded {
                shard: shard_index,
                batches_sent: 0,
                issue: Some(past_deadline(deadline, false).into_issue(&shard, 0)),
            };
            let _ = scan.aggregator.send_message(AggregatorMsg::ShardEnded(end));
        }
        scan.running = 0;
    }

    /// Ends a scan: kills its planner, fetchers and pool; tells the aggregator why when there
    /// is a why.
    fn end_scan(&mut self, scan_id: ScanId, error: Option<EngineError>) {
        let Some(scan) = self.scans.remove(&scan_id) else {
            return;
        };
        scan.permits.close();
        if let Some(planner) = &scan.planner {
            planner.kill();
        }
        take_fetchers(&mut self.fetchers, scan_id);
        if let Some(error) = error {
            tracing::info!(scan = %scan_id, %error, "scan ended early");
            let _ = scan.aggregator.send_message(AggregatorMsg::Abort(error));
        }
        scan.validators.stop(None);
        self.scan_actors.retain(|_, (s, _)| *s != scan_id);
    }
}

/// Kills the fetchers of `scan` and takes them out of `fetchers` (their ends, when they come,
/// are then ignored).
fn take_fetchers(fetchers: &mut HashMap<ActorId, FetcherEntry>, scan: ScanId) -> Vec<FetcherEntry> {
    let ids: Vec<ActorId> = fetchers
        .iter()
        .filter(|(_, f)| f.scan == scan)
        .map(|(id, _)| *id)
        .collect();
    ids.into_iter()
        .filter_map(|id| fetchers.remove(&id))
        .inspect(|entry| entry.cell.kill())
        .collect()
}

/// The id of a shard planned twice, if any: shard ids key the order of violations, so a
/// plan must not repeat one.
fn duplicate_shard(shards: &[Shard]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    shards
        .iter()
        .map(Shard::id)
        .find(|id| !seen.insert(id.clone()))
}
