//! The fetcher: one actor per shard that pulls pages from the source, pacing every API call the
//! source makes with the governor limiter of (account, region, API) and counting it for its
//! scan, and sends each page to the validator pool as a batch.
//!
//! One message per page (`FetchPage(token)`), so the actor stays responsive between pages and
//! a killed fetcher stops at a page boundary at the latest.
//!
//! A page whose call failed with an answer that means "try later" (throttled, 5xx: the
//! source marks such errors retryable) is fetched again after a backoff with full jitter,
//! doubling from `page_backoff_ms` up to `page_max_backoff_ms`, at most `page_retries` times,
//! and at most `shard_retry_budget` times for the whole shard; each retry is paced again by the
//! limiters, which have slowed down meanwhile. Past that, the shard ends as an issue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ractor::factory::FactoryRef;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::Semaphore;

use super::ShardEnded;
use super::aggregator::AggregatorMsg;
use super::validator::ValidateBatch;
use crate::config::RetryConfig;
use crate::domain::{RunKey, ScanIssueKind, ScanScope};
use crate::source::backoff::retrying;
use crate::source::{ApiCallCounter, FetchContext, ResourceSource, Shard, SourceError};

/// The fetcher actor (no configuration of its own).
pub struct Fetcher;

/// Counters a fetcher shares with the supervisor, so that a fetcher that panics can still be
/// accounted for: the aggregator must know how many of its batches to wait for.
#[derive(Debug, Default)]
pub struct FetchCounters {
    /// Batches sent to the validator pool.
    pub batches_sent: AtomicU64,
    /// Resources sent to the validator pool.
    pub resources: AtomicU64,
}

/// Messages to a fetcher.
pub enum FetcherMsg {
    /// Fetch the page with this token (`None`: the first) and schedule the next.
    FetchPage(Option<String>),
}

/// Everything a fetcher needs: its shard and where to send what it reads.
pub struct FetcherArgs {
    /// Index of the shard in the scan's plan.
    pub shard_index: usize,
    /// The shard.
    pub shard: Shard,
    /// Its id, which keys its batches' place in the result.
    pub shard_id: Arc<str>,
    /// The source to read.
    pub source: Arc<dyn ResourceSource>,
    /// Paces every call.
    pub throttle: Arc<dyn crate::source::Throttle>,
    /// Counts every call for the scan.
    pub calls: ApiCallCounter,
    /// The scan's validator pool.
    pub validators: FactoryRef<(), ValidateBatch>,
    /// The scan's aggregator.
    pub aggregator: ActorRef<AggregatorMsg>,
    /// The scan's scope: anything outside is dropped here.
    pub scope: Arc<ScanScope>,
    /// Permits for batches fetched and not yet merged.
    pub permits: Arc<Semaphore>,
    /// Counters shared with the supervisor.
    pub counters: Arc<FetchCounters>,
    /// How failed pages are retried.
    pub retries: RetryConfig,
    /// Page retries the shard may still spend (from `shard_retry_budget`).
    pub retry_budget: AtomicU32,
}

impl Actor for Fetcher {
    type Msg = FetcherMsg;
    type State = FetcherArgs;
    type Arguments = FetcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: FetcherArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_message(FetcherMsg::FetchPage(None))?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        FetcherMsg::FetchPage(token): FetcherMsg,
        state: &mut FetcherArgs,
    ) -> Result<(), ActorProcessingErr> {
        let cx = FetchContext::new(&state.throttle, &state.calls);
        let left_before = state.retry_budget.load(Ordering::Acquire);
        let fetched = retrying(
            &state.retries,
            &state.calls,
            Some(&state.retry_budget),
            || state.source.fetch_page(&state.shard, token.clone(), &cx),
        )
        .await;
        let page = match fetched {
            Ok(page) => page,
            Err(mut error) => {
                if error.retryable {
                    let left = state.retry_budget.load(Ordering::Acquire);
                    let budget = state.retries.shard_retry_budget;
                    error.message = format!(
                        "{} (the page was retried {} times; the shard spent {} of its {budget} retries)",
                        error.message,
                        left_before - left,
                        budget - left
                    );
                }
                state.end(Some(error));
                myself.stop(None);
                return Ok(());
            }
        };
        if !page.issues.is_empty() {
            // A stopped aggregator means the scan was cancelled.
            let _ = state
                .aggregator
                .send_message(AggregatorMsg::Issues(page.issues));
        }
        let resources: Vec<_> = page
            .resources
            .into_iter()
            .filter(|r| state.scope.admits(r))
            .collect();
        if !resources.is_empty() {
            let Ok(permit) = state.permits.clone().acquire_owned().await else {
                // Permits are closed when the scan is cancelled.
                myself.stop(None);
                return Ok(());
            };
            let sequence = state.counters.batches_sent.load(Ordering::Acquire);
            let count = resources.len() as u64;
            let batch = ValidateBatch {
                shard: state.shard_index,
                run: RunKey {
                    shard: state.shard_id.clone(),
                    page: sequence,
                },
                resources,
                permit,
            };
            // Counted before it is sent: the supervisor may read the counters at any moment (a
            // deadline), and must never count fewer batches than the aggregator will merge.
            state.counters.resources.fetch_add(count, Ordering::AcqRel);
            state.counters.batches_sent.fetch_add(1, Ordering::AcqRel);
            if state.validators.dispatch((), batch).is_err() {
                // The pool is gone: the scan was cancelled or the engine is stopping.
                myself.stop(None);
                return Ok(());
            }
        }
        match page.next {
            Some(next) if Some(&next) == token.as_ref() => {
                state.end(Some(SourceError::new(
                    ScanIssueKind::Other,
                    format!("the API returned the same pagination token '{next}' twice; stopped to avoid a loop"),
                )));
                myself.stop(None);
            }
            Some(next) => myself.send_message(FetcherMsg::FetchPage(Some(next)))?,
            None => {
                state.end(None);
                myself.stop(None);
            }
        }
        Ok(())
    }
}

impl FetcherArgs {
    /// Tells the aggregator the shard has ended, failed or not.
    fn end(&self, error: Option<SourceError>) {
        let resources = self.counters.resources.load(Ordering::Acquire);
        let end = ShardEnded {
            shard: self.shard_index,
            batches_sent: self.counters.batches_sent.load(Ordering::Acquire),
            issue: error.map(|e| e.into_issue(&self.shard, resources)),
        };
        // A stopped aggregator means the scan was cancelled.
        let _ = self.aggregator.send_message(AggregatorMsg::ShardEnded(end));
    }
}
