//! The planner: one short-lived actor per scan that asks the source for the scan's shards,
//! linked to the supervisor, so that planning is supervised like fetching: a panic while
//! planning reaches the supervisor as a failure and ends the scan with an error, instead of
//! leaving it waiting for a plan that never comes. Planning that fails with an answer that
//! means "try later" (throttled, 5xx) is retried like a page (see [`super::fetcher`]).

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::domain::ScanScope;
use crate::source::backoff::retrying;
use crate::source::{ApiCallCounter, FetchContext, ResourceSource, ShardPlan, SourceError};

/// Where a planner's plan goes (to its supervisor, as a message of the supervisor's own).
pub type Deliver = Box<dyn FnOnce(Result<ShardPlan, SourceError>) + Send>;

/// The planner actor (no configuration of its own).
pub struct Planner;

/// What a planner needs.
pub struct PlannerArgs {
    /// The source to ask.
    pub source: Arc<dyn ResourceSource>,
    /// The scope to plan (with ARNs: a lookup).
    pub scope: ScanScope,
    /// Paces planning calls.
    pub throttle: Arc<dyn crate::source::Throttle>,
    /// Counts them for the scan.
    pub calls: ApiCallCounter,
    /// Where the plan goes; taken when it is sent.
    pub deliver: Option<Deliver>,
    /// How failed planning is retried.
    pub retries: crate::config::RetryConfig,
}

/// Messages to a planner.
pub enum PlannerMsg {
    /// Plan the scan, deliver the plan, and stop.
    Plan,
}

impl Actor for Planner {
    type Msg = PlannerMsg;
    type State = PlannerArgs;
    type Arguments = PlannerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PlannerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Planning may call remote APIs: in a message, not in `pre_start`, so the spawn
        // returns at once and the supervisor's mailbox stays free.
        myself.send_message(PlannerMsg::Plan)?;
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        PlannerMsg::Plan: PlannerMsg,
        state: &mut PlannerArgs,
    ) -> Result<(), ActorProcessingErr> {
        let cx = FetchContext::new(&state.throttle, &state.calls);
        let (source, scope) = (&state.source, &state.scope);
        let plan = retrying(&state.retries, &state.calls, None, || async {
            if scope.arns.is_empty() {
                source.plan(scope, &cx).await
            } else {
                source.plan_lookup(scope, &cx).await
            }
        })
        .await;
        if let Some(deliver) = state.deliver.take() {
            deliver(plan);
        }
        myself.stop(None);
        Ok(())
    }
}
