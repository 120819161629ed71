//! The scan service: the one way a caller (the CLI, the MCP tools, a scheduled audit) gets a
//! scan. It runs the scan on the engine, reports progress, stops it on cancellation, answers
//! from the cache when the question allows, records the scan in the store when its
//! [`Origin`] is an audit of the estate, and runs identical questions asked at once as one
//! scan (single-flight).
//!
//! # Guarantees
//! - **Recorded before answered.** A recorded scan's answer is given only after its record
//!   is committed; a record that fails is said in the result's notes, and the answer stands.
//! - **Lookups are not audits.** Scans of [`Origin::Lookup`] (given ARNs, for one answer) are
//!   neither recorded nor cached, so they never move the history or evict its findings.
//! - **Single-flight.** Callers asking the same question (source, scope, policy, severity
//!   filter, analyses) while a scan of it runs wait for that scan instead of starting one. The
//!   scan is cancelled only when every caller waiting for it has cancelled.
//! - **Cached answers are fresh and complete.** An answer comes from the cache only when the
//!   cached scan is younger than the TTL, listed every violation, and made every analysis
//!   asked for.

mod cache;
mod lookup;

pub use lookup::lookup_scopes;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use futures::FutureExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use cache::{CacheInfo, ScanCache, cache_key};

use crate::cost::CostService;
use crate::cost::service::Pricing;
use crate::domain::{Origin, ScanId, ScanResult, ScanScope, SeverityFilter};
use crate::engine::{Analyses, EngineError, EngineHandle, ScanProgress, ScanRequest};
use crate::policy::Policy;
use crate::source::{ResourceSource, SourceError};
use crate::store::Store;

/// Receives a scan's progress: `progress` grows, `total` when known, and a short message.
pub trait ProgressSink: Send + Sync {
    /// Reports progress; a sink may drop updates that do not grow.
    fn report(&self, progress: f64, total: Option<f64>, message: String);
}

/// What a caller lends a scan: where progress goes and when to stop.
#[derive(Clone, Default)]
pub struct RunContext {
    /// Set when the caller wants progress.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Cancelled when the caller gives up (a client's cancel, a time limit, shutdown).
    pub cancel: CancellationToken,
}

/// Whether an answer may come from, and goes into, the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Answer from a fresh cached scan when there is one; cache a new scan.
    Use,
    /// Scan anew, and cache the result (a forced refresh).
    Refresh,
    /// Scan anew and cache nothing (a one-shot command line run).
    Bypass,
}

/// A question for the service.
#[derive(Debug, Clone)]
pub struct ScanQuestion {
    /// What to cover (with ARNs: a lookup of those resources).
    pub scope: ScanScope,
    /// Which violations to list.
    pub severity: SeverityFilter,
    /// Optional analyses.
    pub analyses: Analyses,
    /// Who asks: decides whether the scan is recorded.
    pub origin: Origin,
    /// Whether the cache may answer.
    pub cache: CachePolicy,
    /// Answer within this time, with what was read by then (`None`: the service's default,
    /// from `timeouts.scan_deadline_seconds`).
    pub deadline: Option<std::time::Duration>,
}

impl ScanQuestion {
    /// A question about `scope` from `origin`: every violation listed, no extra analysis,
    /// the cache used.
    pub fn new(scope: ScanScope, origin: Origin) -> ScanQuestion {
        ScanQuestion {
            scope,
            severity: SeverityFilter::All,
            analyses: Analyses::default(),
            origin,
            cache: CachePolicy::Use,
            deadline: None,
        }
    }

    /// Whether the answer may be cached and served again: a whole scope (not a lookup),
    /// every violation listed.
    fn cacheable(&self) -> bool {
        self.origin.is_recorded()
            && self.scope.arns.is_empty()
            && !self.analyses.resources
            && self.severity == SeverityFilter::All
            && self.cache != CachePolicy::Bypass
    }
}

/// An answer: the scan, and where it came from.
#[derive(Debug, Clone)]
pub struct ScanAnswer {
    /// The result (shared with the cache and with other callers of the same question).
    pub result: Arc<ScanResult>,
    /// Whether it came from the cache, and how old it is.
    pub cache: CacheInfo,
}

/// Why a question got no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScanError {
    /// The source could not plan the scan (no credentials, unreadable input, a crash while
    /// planning): the error keeps its kind and the permission missing, if any.
    #[error("cannot plan the scan: {0}")]
    Source(SourceError),
    /// The engine could not run the scan (stopped, or an actor failed to start).
    #[error("{0}")]
    Engine(String),
    /// The caller cancelled.
    #[error("the scan was cancelled")]
    Cancelled,
}

impl From<EngineError> for ScanError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Plan(error) => ScanError::Source(error),
            EngineError::Cancelled(_) => ScanError::Cancelled,
            other => ScanError::Engine(other.to_string()),
        }
    }
}

/// The engine's side of a flight: its scan once started, and whether every caller left
/// before it started (then it is cancelled as soon as it starts).
#[derive(Default)]
struct FlightScan {
    scan: Option<ScanId>,
    abandoned: bool,
}

/// One scan in flight, shared by the callers waiting for it.
struct Flight {
    /// Callers waiting.
    waiters: AtomicUsize,
    /// The scan, under a lock so that starting and abandoning cannot cross.
    scan: Mutex<FlightScan>,
    /// Its progress.
    progress: watch::Sender<Option<ScanProgress>>,
    /// Its answer, once there is one.
    answer: watch::Sender<Option<Result<Arc<ScanResult>, ScanError>>>,
}

/// The service. Cheap to share (`Arc`).
pub struct ScanService {
    engine: EngineHandle,
    policy: Arc<Policy>,
    source: Arc<dyn ResourceSource>,
    store: Option<Store>,
    cache: ScanCache,
    flights: DashMap<String, Arc<Flight>>,
    default_deadline: Option<std::time::Duration>,
    spool: Option<crate::store::Spool>,
    /// Billing, which prices the resources of scans that sum costs.
    costs: Option<Arc<CostService>>,
}

impl ScanService {
    /// A service scanning `source` against `policy` on `engine`; it records scans in `store`
    /// when there is one and caches answers for `cache_ttl` (zero: no cache).
    pub fn new(
        engine: EngineHandle,
        policy: Arc<Policy>,
        source: Arc<dyn ResourceSource>,
        store: Option<Store>,
        cache_ttl: std::time::Duration,
    ) -> ScanService {
        ScanService {
            cache: ScanCache::new(cache_ttl, store.clone()),
            engine,
            policy,
            source,
            store,
            flights: DashMap::new(),
            default_deadline: None,
            spool: None,
            costs: None,
        }
    }

    /// Scans that sum costs price their resources from `costs` (actual, allocated or
    /// unknown; see `docs/cost.md`).
    pub fn with_costs(mut self, costs: Option<Arc<CostService>>) -> ScanService {
        self.costs = costs;
        self
    }

    /// Scans are handed to the process that owns the store through `spool` when this
    /// service has no store of its own (another process owns it).
    pub fn with_spool(mut self, spool: Option<crate::store::Spool>) -> ScanService {
        self.spool = spool;
        self
    }

    /// Scans answer within `deadline`; a question may ask for a shorter one, never a longer.
    pub fn with_default_deadline(mut self, deadline: Option<std::time::Duration>) -> ScanService {
        self.default_deadline = deadline;
        self
    }

    /// The engine scans run on.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// The policy scans validate against.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Where resources come from.
    pub fn source(&self) -> &Arc<dyn ResourceSource> {
        &self.source
    }

    /// The store scans are recorded in, if any.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Forgets the cached answers: tags were written, so they may be wrong.
    pub async fn forget_cached(&self) {
        self.cache.forget_all().await;
    }

    /// Answers `question`: from the cache when it may, else by joining the same question's
    /// scan in flight, else by a new scan, recorded when its origin is an audit.
    pub async fn scan(
        self: &Arc<Self>,
        ctx: &RunContext,
        question: ScanQuestion,
    ) -> Result<ScanAnswer, ScanError> {
        let key = cache_key(&self.source.name(), &question.scope, self.policy.version());
        if question.cacheable()
            && question.cache == CachePolicy::Use
            && let Some((result, info)) = self.cache.get(&key, chrono::Utc::now()).await
            && Analyses::of(&result.tally).covers(question.analyses)
        {
            // A caller that asked for progress hears that the answer is ready, and why so soon.
            if let Some(sink) = &ctx.progress {
                let message = format!("answered from a scan of {} s ago", info.age_seconds);
                sink.report(1.0, Some(1.0), message);
            }
            return Ok(ScanAnswer {
                result,
                cache: info,
            });
        }
        // The same scan answers the same question: the key (source, the scope with its ARNs,
        // policy), what is listed, the analyses, and whether it is recorded.
        let flight_key = format!(
            "{key}|{}|{:?}|{}|{:?}",
            question.severity,
            question.analyses,
            question.origin.is_recorded(),
            question.deadline,
        );
        let flight = self.join_or_start(&flight_key, &question, &key);
        let answer = self.wait(ctx, &flight_key, &flight).await?;
        Ok(ScanAnswer {
            cache: CacheInfo::fresh(&answer),
            result: answer,
        })
    }

    /// The flight of `flight_key`, joined, or a new one started.
    fn join_or_start(
        self: &Arc<Self>,
        flight_key: &str,
        question: &ScanQuestion,
        cache_key: &str,
    ) -> Arc<Flight> {
        // Joining and leaving happen under the map's lock on the key, so a caller never joins
        // a flight its last caller is cancelling.
        match self.flights.entry(flight_key.to_string()) {
            Entry::Occupied(entry) => {
                entry.get().waiters.fetch_add(1, Ordering::SeqCst);
                entry.get().clone()
            }
            Entry::Vacant(entry) => {
                let flight = Arc::new(Flight {
                    waiters: AtomicUsize::new(1),
                    scan: Mutex::new(FlightScan::default()),
                    progress: watch::channel(None).0,
                    answer: watch::channel(None).0,
                });
                entry.insert(flight.clone());
                let service = self.clone();
                let (flight_key, cache_key) = (flight_key.to_string(), cache_key.to_string());
                let (question, running) = (question.clone(), flight.clone());
                tokio::spawn(async move {
                    // Whatever happens, the waiters get an answer.
                    let answer = AssertUnwindSafe(service.run(&question, &running, &cache_key))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| {
                            Err(ScanError::Engine(
                                "the scan failed unexpectedly".to_string(),
                            ))
                        });
                    service
                        .flights
                        .remove_if(&flight_key, |_, f| Arc::ptr_eq(f, &running));
                    running.answer.send_replace(Some(answer));
                });
                flight
            }
        }
    }

    /// Runs a flight's scan to its end, then records and caches it as its question says.
    async fn run(
        &self,
        question: &ScanQuestion,
        flight: &Arc<Flight>,
        cache_key: &str,
    ) -> Result<Arc<ScanResult>, ScanError> {
        // A caller's deadline may shorten the operator's, never lengthen it.
        let deadline = match (question.deadline, self.default_deadline) {
            (Some(asked), Some(cap)) => Some(asked.min(cap)),
            (asked, cap) => asked.or(cap),
        };
        let started = std::time::Instant::now();
        // Prices come first, so that every resource is validated with its cost (billing's
        // answers are cached for hours; pricing is bounded by cost.pricing_budget_seconds).
        let pricing = match &self.costs {
            Some(costs) if question.analyses.cost => {
                costs
                    // A quarter of the deadline at most: the scan is what was asked for.
                    .pricing(
                        &question.scope,
                        deadline.map(|d| d / 4),
                        &CancellationToken::new(),
                    )
                    .await
            }
            _ => Pricing::default(),
        };

        // The history keeps the gap of the scan's scope with it, for the gap's trend: asked
        // while the scan runs.
        let gap = match &self.costs {
            Some(costs)
                if question.origin.is_recorded()
                    && question.analyses.cost
                    && question.scope.arns.is_empty() =>
            {
                let (costs, scope) = (costs.clone(), question.scope.clone());
                let within = deadline.map(|d| {
                    d.saturating_sub(started.elapsed())
                        .max(std::time::Duration::from_millis(1))
                });
                Some(AbortOnDrop(tokio::spawn(async move {
                    costs.gap_record(&scope, within).await
                })))
            }
            _ => None,
        };
        let request = ScanRequest::new(self.source.clone(), self.policy.clone())
            .with_scope(question.scope.clone())
            .with_severity(question.severity)
            .with_analyses(question.analyses)
            .with_deadline(deadline)
            // The deadline covers pricing too: the scan has what is left of it.
            .with_deadline_start(started)
            .with_costs(pricing.pricer);
        let ticket = self.engine.start_scan(request).await?;
        {
            let mut state = lock(&flight.scan);
            state.scan = Some(ticket.id);
            if state.abandoned {
                self.engine.cancel(ticket.id);
            }
        }
        let mut progress = ticket.progress();
        let relayed = flight.clone();
        let _relay = AbortOnDrop(tokio::spawn(async move {
            while progress.changed().await.is_ok() {
                let latest = progress.borrow_and_update().clone();
                relayed.progress.send_replace(Some(latest));
            }
        }));
        let mut result = ticket.result().await?;
        result.meta.notes.extend(pricing.notes);
        if let Some(mut task) = gap {
            match (&mut task.0).await {
                Ok(Ok(gap)) => result.meta.cost_gap = gap,
                Ok(Err(reason)) => result.meta.notes.push(format!(
                    "the cost-attribution gap was not recorded with this scan: {reason}"
                )),
                Err(_) => result.meta.notes.push(
                    "the cost-attribution gap was not recorded with this scan: its task failed"
                        .to_string(),
                ),
            }
        }
        if question.origin.is_recorded() {
            let recorded = match (&self.store, &self.spool) {
                (Some(store), _) => store
                    .record_scan(&result, &question.origin)
                    .await
                    .map(|_| ()),
                (None, Some(spool)) => {
                    // Encoded here, where the result is borrowed; written off the runtime.
                    let bytes = crate::store::Spool::encode(&result, &question.origin);
                    let (spool, scan_id) = (spool.clone(), result.meta.scan_id.0);
                    let handed = tokio::task::spawn_blocking(move || spool.write(scan_id, &bytes))
                        .await
                        .unwrap_or_else(|e| Err(crate::store::StoreError::Io(e.to_string())));
                    handed.map(|_| {
                        result.meta.notes.push(
                            "another tagguard process owns the history: this scan was handed to it (the spool of the data directory) and is recorded there within seconds".to_string(),
                        );
                    })
                }
                (None, None) => Ok(()),
            };
            if let Err(error) = recorded {
                // History is a record, not the answer: the caller still gets the scan.
                tracing::warn!(%error, "scan not recorded");
                result.meta.notes.push(format!(
                    "this scan was not recorded in the history: {error}"
                ));
            }
        }
        let result = Arc::new(result);
        // A scan cut short by its deadline answers its own question only: a later question
        // must not get its gaps from the cache.
        let cut_short = deadline.is_some() && result.partial;
        if question.cacheable() && !cut_short {
            self.cache.put(cache_key.to_string(), result.clone()).await;
        }
        Ok(result)
    }

    /// Waits for a flight's answer, relaying its progress to the caller; a caller that
    /// cancels leaves, and the last to leave cancels the scan.
    async fn wait(
        &self,
        ctx: &RunContext,
        flight_key: &str,
        flight: &Arc<Flight>,
    ) -> Result<Arc<ScanResult>, ScanError> {
        let _reporter = ctx.progress.clone().map(|sink| {
            let mut progress = flight.progress.subscribe();
            AbortOnDrop(tokio::spawn(async move {
                sink.report(0.0, None, "planning the scan".to_string());
                while progress.changed().await.is_ok() {
                    let Some(p) = progress.borrow_and_update().clone() else {
                        continue;
                    };
                    // Shards are the unit of work whose total is known up front.
                    let message = format!(
                        "{} resources checked, {} non-compliant",
                        p.resources_scanned, p.non_compliant
                    );
                    match p.shards_total {
                        Some(total) => {
                            sink.report(p.shards_done as f64, Some(total as f64), message)
                        }
                        None => sink.report(0.0, None, message),
                    }
                }
            }))
        });
        let mut answer = flight.answer.subscribe();
        // However this wait ends (answered, cancelled, or its future dropped by a caller that
        // gave up), the caller leaves the flight; the last to leave stops its scan.
        let _leave = Leave {
            service: self,
            flight_key,
            flight,
        };
        tokio::select! {
            answered = answer.wait_for(Option::is_some) => match answered {
                Ok(answer) => answer.clone().expect("waited for Some"),
                Err(_) => Err(ScanError::Engine(EngineError::Stopped.to_string())),
            },
            () = ctx.cancel.cancelled() => Err(ScanError::Cancelled),
        }
    }

    /// A caller leaves a flight; the last one cancels its scan (a finished flight is out of
    /// the map already, and leaving it does nothing).
    fn leave(&self, flight_key: &str, flight: &Arc<Flight>) {
        let last = self
            .flights
            .remove_if(flight_key, |_, f| {
                Arc::ptr_eq(f, flight) && f.waiters.fetch_sub(1, Ordering::SeqCst) == 1
            })
            .is_some();
        if last {
            let mut state = lock(&flight.scan);
            match state.scan {
                Some(scan) => self.engine.cancel(scan),
                None => state.abandoned = true,
            }
        }
    }
}

/// Leaves a flight when dropped.
struct Leave<'a> {
    service: &'a ScanService,
    flight_key: &'a str,
    flight: &'a Arc<Flight>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.service.leave(self.flight_key, self.flight);
    }
}

/// A lock whose holder never panics while holding it; a poisoned one is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Aborts a task when dropped: a progress relay must end with its caller, however the call
/// ends (answered, failed, or dropped by a transport that gave up on it), or it would keep
/// the client's channel open.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
