//! The cost layer: billing data behind one trait ([`CostSource`]: Cost Explorer, or the demo
//! estate's synthetic billing), the attribution gap computed from it ([`gap`]), and the
//! service every caller uses ([`CostService`]: the query plan, a cache in the store, request
//! counting and pacing).
//!
//! The definitions the figures follow (period, metric, what total spend counts, allocation
//! tags, attributable spend, the breakdown, what is not measurable) are in `docs/cost.md`.

pub mod explorer;
pub mod gap;
pub mod query;
pub mod service;
pub mod services;
pub mod synthetic;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};

pub use gap::{Activation, Breakdown, TagStatus};
pub use query::{CostQuery, Granularity, Metric, Period, PeriodSpec};
pub use service::{AttributionGap, CostHealth, CostService, GapQuestion};

use crate::config::Config;
use crate::domain::Usd;
use crate::policy::Policy;
use crate::source::{SourceError, SourceSpec};

/// The billing of a resource source: the demo estate's synthetic billing for `demo`, Cost
/// Explorer (same credentials, endpoint settings, retries and timeouts as the resource
/// listers) for `aws`, none for a snapshot file.
pub async fn open_billing(
    spec: &SourceSpec,
    policy: &Arc<Policy>,
    config: &Config,
) -> Result<Option<Arc<dyn CostSource>>, SourceError> {
    Ok(match spec {
        SourceSpec::Demo(estate) => Some(Arc::new(synthetic::SyntheticBilling::new(
            *estate,
            policy.clone(),
        )?)),
        SourceSpec::Aws(options) => Some(Arc::new(
            explorer::ExplorerSource::new(options, config.rate_limit("ce"), &config.pacing).await,
        )),
        SourceSpec::File(_) => None,
    })
}

/// Where billing data comes from.
#[async_trait]
pub trait CostSource: Send + Sync {
    /// What the figures are (`cost_explorer`, `demo_billing`): every answer says it.
    fn kind(&self) -> &'static str;

    /// Which billing this is, for cache keys (two demo estates have two bills).
    fn name(&self) -> String;

    /// Whose billing this is, for cache keys: the source and the identity asking (Cost
    /// Explorer answers what the caller's account may see, so two accounts never share
    /// answers). No secret is part of it.
    async fn billing_key(&self) -> Result<String, SourceError> {
        Ok(self.name())
    }

    /// What one request costs (Cost Explorer: $0.01, each page a request).
    fn price_per_request(&self) -> Usd;

    /// Whether billing is in this process (the demo's): always reachable, never probed.
    fn is_local(&self) -> bool {
        false
    }

    /// Why a gap should not be computed with every scan, if it should not: the demo's bill of
    /// a very large estate is read anew for each question (seconds each), so only
    /// `tagguard cost` and the tool ask it.
    fn too_costly_for_every_scan(&self) -> Option<String> {
        None
    }

    /// Today in billing's calendar (UTC).
    fn today(&self) -> NaiveDate {
        Utc::now().date_naive()
    }

    /// One page of the answer to `query`; `token` continues a previous page.
    async fn cost_and_usage(
        &self,
        query: &CostQuery,
        token: Option<String>,
    ) -> Result<query::CostPage, SourceError>;

    /// One page of the answer to a resource-level `query` (grouped or filtered by
    /// `RESOURCE_ID`; the last 14 days only). Cost Explorer's `GetCostAndUsageWithResources`
    /// needs the account's opt-in; sources without resource-level data say so.
    async fn cost_and_usage_with_resources(
        &self,
        _query: &CostQuery,
        _token: Option<String>,
    ) -> Result<query::CostPage, SourceError> {
        Err(SourceError::new(
            crate::domain::ScanIssueKind::InvalidInput,
            "this billing has no resource-level data",
        ))
    }

    /// For billing in this process: sets `resource`'s monthly cost from the bill itself and
    /// says whether it did. Other sources price resources through [`CostService`].
    fn price_locally(&self, _resource: &mut crate::domain::Resource) -> bool {
        false
    }

    /// Whether each of `keys` is activated as a cost allocation tag. A key billing has never
    /// seen is inactive. An error when this cannot be checked (only the management account
    /// may, and moto does not emulate it).
    async fn allocation_tags(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Activation>, SourceError>;
}
