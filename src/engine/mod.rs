//! The scanning engine: an actor pipeline on ractor + tokio, and [`EngineHandle`], its typed API.
//!
//! ```text
//! EngineHandle ──StartScan──▶ Supervisor ──spawns (linked)──▶ Planner (source.plan)
//!                                 │  ──spawns (linked)──▶ Fetcher per shard
//!                                 │                      (account × region × service,
//!                                 │                       governor-throttled, paginated)
//!                                 │                              │ batches of Resource
//!                                 │                              ▼
//!                                 ├──spawns──▶ Validator pool (ractor factory workers)
//!                                 │             observe every resource into a batch Tally
//!                                 │                              │ BatchValidated
//!                                 └──spawns──▶ Aggregator ◀──────┘ merges tallies ──▶ ScanResult
//! ```
//!
//! # Guarantees
//! - **Exactness.** Every resource a source returns for a shard in scope is validated exactly
//!   once and counted exactly once. Resources outside the scope are dropped by the fetcher
//!   even if a source returns them, so results never contain anything outside the filters.
//! - **Completion.** A scan completes when every planned shard has ended (read to its last
//!   page, or failed) *and* every batch its fetcher sent has been merged: a shard's end is
//!   counted only once the aggregator has merged as many batches as the fetcher sent.
//! - **Failures are data.** A shard whose source fails (access denied, throttled past its
//!   retries, endpoint down, malformed input) or whose fetcher panics becomes a [`ScanIssue`]
//!   naming account, region, service and the error class; the resources it had already
//!   delivered stay in the result, the rest of the scan goes on, and the result says
//!   `partial: true`. Planning runs in a supervised actor: a source that cannot plan at all,
//!   or whose planning panics, fails the scan with [`EngineError::Plan`], never hangs it.
//! - **Order.** Violations are listed in source order: by shard id (`account/region/service`),
//!   then page, then position in the page. The order does not depend on timing or on how a
//!   plan was split, so the same source and policy give the same result, byte for byte apart
//!   from ids, timestamps and durations, and the merge of a split scan equals the whole.
//! - **Bounded memory.** At most `max_in_flight_batches` batches per scan are fetched and not
//!   yet merged: a fetcher waits for a permit before it sends, and the permit is released only
//!   when the aggregator has merged the batch. Compliant resources are dropped once observed;
//!   only violations (with a shared reference to their resource) are kept.
//! - **Fair sharing.** Fetcher slots are handed out round-robin between scans, and the last
//!   `reserved_fetchers` of the `max_concurrent_fetchers` go only to scans that have no fetcher
//!   running: a scan started while others hold every other slot (a lookup during
//!   organisation-wide scans) starts at once. A slot freed by a cancelled scan goes to the
//!   scans waiting at once.
//! - **Rate limits.** Every API call a source makes first takes a token from the governor
//!   limiter of its (account, region, API), through the [`FetchContext`](crate::source::FetchContext) the engine hands the
//!   source; limiters are shared by concurrent scans, as AWS quotas are. Calls are counted per
//!   scan: a result's `api_calls` are its own.
//! - **Cancellation.** [`EngineHandle::cancel`] kills the scan's planner and fetchers, closes
//!   its permits and resolves the scan with [`EngineError::Cancelled`]; batches still in the
//!   pool are dropped. Nothing of a cancelled scan is reported as a result.
//! - **Shutdown.** [`EngineHandle::shutdown`] stops the supervisor and, through the links, every
//!   actor it spawned; scans in flight resolve with [`EngineError::Stopped`].
//! - **Persistence.** The engine keeps nothing on disk; results go to the caller, and the scan
//!   service ([`crate::scans`]) records them in [`crate::store`] (a scan is acknowledged to a
//!   client only after its record is committed).

mod aggregator;
mod fetcher;
mod limits;
mod pacing;
mod planner;
mod supervisor;
mod validator;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef, ActorStatus};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, oneshot, watch};

use crate::config::Config;
use crate::domain::{ScanId, ScanIssue, ScanResult, ScanScope, SeverityFilter, Tally};
use crate::policy::Policy;
use crate::source::{ResourceSource, ShardPlan, SourceError};

pub use limits::{LimiterKey, LimiterRegistry, quota};
pub use pacing::{AdaptiveLimiter, PacingRule};
use supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
pub use validator::validate_batch;

/// Optional analyses a scan makes besides compliance; they ride on the same pass over the
/// resources, in the tally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Analyses {
    /// Monthly cost sums per resource type and per tag.
    pub cost: bool,
    /// Tag values per group of related resources (VPC, stack, name…), for suggestions.
    pub tag_stats: bool,
    /// Every resource seen, whole (lookups of given ARNs, evaluations); never cached.
    pub resources: bool,
}

impl Analyses {
    /// The analyses a tally holds.
    pub fn of(tally: &Tally) -> Analyses {
        Analyses {
            cost: tally.cost.is_some(),
            tag_stats: tally.tag_stats.is_some(),
            resources: !tally.resources.is_empty(),
        }
    }

    /// Whether these analyses include every one of `wanted`.
    pub fn covers(self, wanted: Analyses) -> bool {
        (self.cost || !wanted.cost)
            && (self.tag_stats || !wanted.tag_stats)
            && (self.resources || !wanted.resources)
    }
}

/// What to scan, against which policy.
#[derive(Clone)]
pub struct ScanRequest {
    /// Where the resources come from.
    pub source: Arc<dyn ResourceSource>,
    /// The policy to validate against.
    pub policy: Arc<Policy>,
    /// Types, regions and accounts to cover (and ARNs, for a lookup).
    pub scope: ScanScope,
    /// Which violations the result lists (counts always cover all).
    pub severity: SeverityFilter,
    /// Optional analyses.
    pub analyses: Analyses,
    /// Shards planned elsewhere (one part of a split plan): fetched as they are, without
    /// planning. `None`: the source plans the scope.
    pub plan: Option<ShardPlan>,
    /// When set, the scan answers within this time: shards not read by then end as
    /// `timeout` issues (their resources read so far stay), and a scan still planning fails.
    pub deadline: Option<Duration>,
    /// Prices each resource from billing before it is validated (Cost Explorer's resource-level
    /// costs and allocation pools, or the demo's bill); `None`: the source's own costs.
    pub costs: Option<Arc<dyn crate::domain::costing::ResourcePricer>>,
    /// When the deadline started counting (the question's arrival, before its pricing):
    /// `None`, when the engine starts the scan.
    pub deadline_start: Option<std::time::Instant>,
}

impl ScanRequest {
    /// A request covering everything the source has, listing every violation.
    pub fn new(source: Arc<dyn ResourceSource>, policy: Arc<Policy>) -> ScanRequest {
        ScanRequest {
            source,
            policy,
            scope: ScanScope::default(),
            severity: SeverityFilter::All,
            analyses: Analyses::default(),
            plan: None,
            deadline: None,
            costs: None,
            deadline_start: None,
        }
    }

    /// Answers within `deadline` (see [`ScanRequest::deadline`]).
    pub fn with_deadline(mut self, deadline: Option<Duration>) -> ScanRequest {
        self.deadline = deadline;
        self
    }

    /// Counts the deadline from `start` (what came before the scan counts against it).
    pub fn with_deadline_start(mut self, start: std::time::Instant) -> ScanRequest {
        self.deadline_start = Some(start);
        self
    }

    /// Prices each resource from billing before it is validated.
    pub fn with_costs(
        mut self,
        costs: Option<Arc<dyn crate::domain::costing::ResourcePricer>>,
    ) -> ScanRequest {
        self.costs = costs;
        self
    }

    /// Restricts the scan to `scope`.
    pub fn with_scope(mut self, scope: ScanScope) -> ScanRequest {
        self.scope = scope;
        self
    }

    /// Lists only the violations `severity` admits.
    pub fn with_severity(mut self, severity: SeverityFilter) -> ScanRequest {
        self.severity = severity;
        self
    }

    /// Makes the optional `analyses` too.
    pub fn with_analyses(mut self, analyses: Analyses) -> ScanRequest {
        self.analyses = analyses;
        self
    }

    /// Fetches the shards of `plan` (planned elsewhere) instead of planning.
    pub fn with_plan(mut self, plan: ShardPlan) -> ScanRequest {
        self.plan = Some(plan);
        self
    }
}

/// What the engine is doing, for health checks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineStatus {
    /// Whether the supervisor is alive and answering.
    pub running: bool,
    /// Scans in flight.
    pub scans: usize,
    /// Fetchers running.
    pub fetchers: usize,
    /// Shards planned and waiting for a fetcher.
    pub shards_waiting: usize,
}

/// Progress of a running scan, published after every merged batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanProgress {
    /// The scan.
    pub scan_id: ScanId,
    /// Shards planned; `None` until planning is done.
    pub shards_total: Option<u64>,
    /// Shards ended (read or failed).
    pub shards_done: u64,
    /// Resources validated so far.
    pub resources_scanned: u64,
    /// Of which non-compliant.
    pub non_compliant: u64,
    /// Shards that failed so far.
    pub issues: u64,
    /// True once the result is ready.
    pub finished: bool,
}

impl ScanProgress {
    /// The progress of a scan that has not started.
    pub fn new(scan_id: ScanId) -> ScanProgress {
        ScanProgress {
            scan_id,
            shards_total: None,
            shards_done: 0,
            resources_scanned: 0,
            non_compliant: 0,
            issues: 0,
            finished: false,
        }
    }
}

/// Why a scan produced no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The engine was shut down (or its supervisor died) before the scan ended.
    #[error("the scan engine has stopped")]
    Stopped,
    /// The scan was cancelled.
    #[error("scan {0} was cancelled")]
    Cancelled(ScanId),
    /// The source could not even plan the scan (unreadable input, no credentials at all), or
    /// its planning crashed.
    #[error("cannot plan the scan: {0}")]
    Plan(SourceError),
    /// An actor could not be started.
    #[error("cannot start the scan: {0}")]
    Spawn(String),
}

/// A scan in flight: its id, its progress, and its result to await.
pub struct ScanTicket {
    /// The scan's id, for [`EngineHandle::cancel`].
    pub id: ScanId,
    progress: watch::Receiver<ScanProgress>,
    result: oneshot::Receiver<Result<ScanResult, EngineError>>,
}

impl ScanTicket {
    /// A receiver of progress updates (the latest value; no backlog).
    pub fn progress(&self) -> watch::Receiver<ScanProgress> {
        self.progress.clone()
    }

    /// Waits for the result.
    pub async fn result(self) -> Result<ScanResult, EngineError> {
        self.result.await.unwrap_or(Err(EngineError::Stopped))
    }
}

/// The engine's typed API: start scans, watch them, cancel them, shut down. Cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    supervisor: ActorRef<SupervisorMsg>,
    limiters: Arc<LimiterRegistry>,
}

impl EngineHandle {
    /// Starts the engine's supervisor on the current tokio runtime.
    pub async fn start(config: Config) -> Result<EngineHandle, EngineError> {
        let config = Arc::new(config);
        let limiters = Arc::new(LimiterRegistry::new(config.clone()));
        let args = SupervisorArgs {
            engine: config.engine.clone(),
            limiters: limiters.clone(),
            retries: config.retries,
        };
        let (supervisor, _join) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|e| EngineError::Spawn(e.to_string()))?;
        Ok(EngineHandle {
            supervisor,
            limiters,
        })
    }

    /// Starts a scan and returns at once with its ticket.
    pub async fn start_scan(&self, request: ScanRequest) -> Result<ScanTicket, EngineError> {
        ractor::call!(self.supervisor, SupervisorMsg::StartScan, request)
            .map_err(|_| EngineError::Stopped)?
    }

    /// Runs a scan to its end.
    pub async fn scan(&self, request: ScanRequest) -> Result<ScanResult, EngineError> {
        self.start_scan(request).await?.result().await
    }

    /// Cancels a scan; its ticket resolves with [`EngineError::Cancelled`]. Unknown or finished
    /// scans are ignored.
    pub fn cancel(&self, scan: ScanId) {
        // A stopped supervisor has no scans left to cancel.
        let _ = self.supervisor.send_message(SupervisorMsg::Cancel(scan));
    }

    /// The engine's pacing, for calls made outside a scan (the network objects suggestions
    /// read, the tag writes of a fix): the same limiters scans use.
    pub fn throttle(&self) -> Arc<dyn crate::source::Throttle> {
        Arc::new(EngineThrottle {
            limiters: self.limiters.clone(),
        })
    }

    /// The rate limiters in use (shared across scans).
    pub fn limiters(&self) -> &LimiterRegistry {
        &self.limiters
    }

    /// What the engine is doing. A supervisor that died, or that does not answer within a
    /// second, is reported as not running.
    pub async fn status(&self) -> EngineStatus {
        if !matches!(self.supervisor.get_status(), ActorStatus::Running) {
            return EngineStatus::default();
        }
        ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Status,
            STATUS_DEADLINE.as_millis() as u64
        )
        .unwrap_or_default()
    }

    /// Stops the supervisor and every actor it spawned, and waits for them.
    pub async fn shutdown(&self) {
        // An error means the supervisor is already gone, which is what we want.
        let _ = self
            .supervisor
            .stop_and_wait(Some("engine shutdown".into()), None)
            .await;
    }
}

/// The pacing the engine lends sources: the process's limiters, by (account, region, API).
pub(crate) struct EngineThrottle {
    limiters: Arc<LimiterRegistry>,
}

impl EngineThrottle {
    fn limiter(&self, account: &str, region: &str, api: &str) -> Arc<AdaptiveLimiter> {
        self.limiters.get(LimiterKey {
            account_id: Arc::from(account),
            region: Arc::from(region),
            quota_key: api.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl crate::source::Throttle for EngineThrottle {
    async fn until_ready(&self, account: &str, region: &str, api: &str) {
        self.limiter(account, region, api).until_ready().await;
    }

    fn throttled(&self, account: &str, region: &str, api: &str) {
        self.limiter(account, region, api).throttled();
    }
}

/// How long [`EngineHandle::status`] waits for the supervisor.
pub const STATUS_DEADLINE: Duration = Duration::from_secs(1);

/// What one batch contributed to the scan, on its way to the aggregator.
pub(crate) struct BatchOutcome {
    /// Index of the shard.
    pub shard: usize,
    /// The batch's tally.
    pub tally: Tally,
    /// Set when validation panicked: the batch's resources are then not counted.
    pub failure: Option<String>,
    /// Released when the aggregator has merged the tally.
    pub permit: OwnedSemaphorePermit,
}

/// Messages from fetchers and the supervisor to a scan's aggregator about a shard's end.
pub(crate) struct ShardEnded {
    /// Index of the shard in the scan's plan.
    pub shard: usize,
    /// Batches the fetcher sent to the validator pool.
    pub batches_sent: u64,
    /// `Some` when the shard failed.
    pub issue: Option<ScanIssue>,
}
