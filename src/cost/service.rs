//! The cost service: answers "how much of our spend can we not attribute, and why?" with the
//! fixed query plan of [`super::gap`], asking billing one request at a time in a fixed order
//! (Cost Explorer bills each request and page), caching every answer in the store for hours
//! (billing data changes a few times a day), and counting what it asked and what that cost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::CostSource;
use super::gap::{
    self, Activation, AttributableAnswer, Bounds, Breakdown, GapPlan, GroupGap, OtherCharge,
    TagAnswer, TagGap, TagSplit, TimeGap,
};
use super::query::{
    CostQuery, CostSlice, Dimension, Filter, Granularity, Metric, Period, PeriodSpec, RESOURCE_DAYS,
};
use super::services::SERVICE_TYPES;
use crate::config::CostConfig;
use crate::domain::costing::{
    AllocationPool, CostBook, GapRecord, ResourcePricer, monthly_of_days,
};
use crate::domain::{ResourceType, ScanIssueKind, ScanScope, Usd, ViolationType};
use crate::policy::Policy;
use crate::source::SourceError;
use crate::store::Store;

/// Allocation tags one question may ask about (each is a billed request).
pub const MAX_TAGS: usize = 10;

/// Pages one question may read before the answer is refused as runaway.
const MAX_PAGES: usize = 200;

/// A question about the attribution gap.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GapQuestion {
    /// The period.
    pub period: PeriodSpec,
    /// How the time series is sliced.
    pub granularity: Granularity,
    /// What is measured.
    pub metric: Metric,
    /// The breakdown.
    pub group_by: Breakdown,
    /// The allocation tags; `None`: the config's, else the policy's required tags that apply
    /// to every resource type.
    pub tags: Option<Vec<String>>,
    /// Accounts and regions (the rest of the scope does not apply to billing).
    pub scope: ScanScope,
    /// Ask billing again even where a cached answer is fresh.
    pub force_refresh: bool,
}

/// Why a gap could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// The question is wrong; the message says what to change.
    #[error("{0}")]
    InvalidInput(String),
    /// Billing could not be read (its kind and missing permission kept).
    #[error("cost data unavailable: {}", .0.message)]
    Source(SourceError),
    /// The caller gave up.
    #[error("the cost question was cancelled")]
    Cancelled,
}

/// The requests a question made of billing, and their price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CostRequests {
    /// Requests billing answered (each page is one; each is billed).
    pub made: u32,
    /// Requests that failed (not billed).
    pub failed: u32,
    /// Answers taken from the cache instead (free).
    pub from_cache: u32,
    /// What one request costs (USD; $0.01 on Cost Explorer, nothing for the demo's billing).
    pub price_per_request: Usd,
    /// What the requests made cost (USD).
    pub price: Usd,
}

/// Where a question's answers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheState {
    /// Every answer was asked now.
    Fresh,
    /// Every answer came from the cache.
    Cached,
    /// Some of each.
    Mixed,
    /// There is no store to cache in.
    Off,
}

/// The cache's part in an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CostCache {
    /// Where the answers came from.
    pub state: CacheState,
    /// Age of the oldest cached answer used, in seconds.
    pub oldest_answer_seconds: Option<u64>,
    /// How long answers are kept, in seconds.
    pub ttl_seconds: u64,
}

/// Something of the answer billing could not give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CostIssue {
    /// Which question failed (`record types`, `tag CostCenter`, …).
    pub question: String,
    /// The class of failure (`access_denied`, `throttled`, …).
    pub kind: String,
    /// The IAM action missing, for access denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_permission: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// The attribution gap of a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttributionGap {
    /// Where the figures come from: `cost_explorer` (AWS billing) or `demo_billing`.
    pub data_source: String,
    /// First day.
    pub period_start: chrono::NaiveDate,
    /// Day after the last (the end is exclusive).
    pub period_end: chrono::NaiveDate,
    /// How `by_time` is sliced.
    pub granularity: Granularity,
    /// The metric of every amount.
    pub metric: Metric,
    /// What `breakdown` groups by.
    pub group_by: Breakdown,
    /// The allocation tags asked about.
    pub allocation_tags: Vec<String>,
    /// Where they came from: `argument`, `config` or `policy`.
    pub tags_from: String,
    /// The tags `attributable_spend` covers (those measured).
    pub measured_tags: Vec<String>,
    /// Usage spend in scope (USD): record types Usage, DiscountedUsage,
    /// SavingsPlanCoveredUsage.
    pub total_spend: Usd,
    /// Usage spend carrying every measured tag with a valid value (USD); null when unknown.
    pub attributable_spend: Option<Usd>,
    /// `total_spend − attributable_spend` (USD); null when unknown.
    pub gap: Option<Usd>,
    /// The gap's share of the total, in percent; null when unknown or the total is 0.
    pub gap_percent: Option<f64>,
    /// When the attributable spend could not be asked exactly: its bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributable_bounds: Option<Bounds>,
    /// Per allocation tag: missing, invalid and valid spend (each row sums to the total).
    pub by_tag: Vec<TagGap>,
    /// The breakdown, costliest first (rows sum to the totals).
    pub breakdown: Vec<GroupGap>,
    /// The time series.
    pub by_time: Vec<TimeGap>,
    /// Charges outside usage, per record type (never part of the gap); null when unknown.
    pub other_charges: Option<Vec<OtherCharge>>,
    /// Their sum (USD); null when unknown.
    pub other_charges_total: Option<Usd>,
    /// `total_spend + other_charges_total` (USD); null when unknown.
    pub invoice_total: Option<Usd>,
    /// Some of the period's bill is not final (Cost Explorer's `Estimated`).
    pub estimated: bool,
    /// The requests made of billing.
    pub ce_requests: CostRequests,
    /// The cache's part.
    pub cache: CostCache,
    /// Some question failed: see `issues`.
    pub partial: bool,
    /// The questions that failed.
    pub issues: Vec<CostIssue>,
    /// What a reader must know to trust the figures.
    pub caveats: Vec<String>,
}

/// Whether cost data is reachable, as `/health` says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CostHealth {
    /// `cost_explorer`, `demo_billing`.
    pub source: String,
    /// `reachable`, `unreachable` or `not_checked`.
    pub state: String,
    /// When billing last answered or failed.
    pub checked_at: Option<DateTime<Utc>>,
    /// Why it is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A cached answer: every page of one question.
#[derive(Serialize, Deserialize)]
struct CachedAnswer {
    fetched_at: DateTime<Utc>,
    /// Requests it took.
    pages: u32,
    slices: Vec<CostSlice>,
}

/// What a scan's resources cost, from billing.
#[derive(Default)]
pub struct Pricing {
    /// Sets each resource's cost; `None` when billing gave nothing.
    pub pricer: Option<Arc<dyn ResourcePricer>>,
    /// What the prices rest on, and what could not be read.
    pub notes: Vec<String>,
    /// The requests pricing made.
    pub requests: CostRequests,
}

/// Prices resources from billing in this process (the demo's).
struct LocalPricer(Arc<dyn CostSource>);

impl ResourcePricer for LocalPricer {
    fn price(&self, resource: &mut crate::domain::Resource) {
        self.0.price_locally(resource);
    }
}

/// A cached failure: resource-level data is not asked again while it is fresh.
#[derive(Serialize, Deserialize)]
struct CachedFailure {
    fetched_at: DateTime<Utc>,
    message: String,
}

/// A cached activation check.
#[derive(Serialize, Deserialize)]
struct CachedActivation {
    fetched_at: DateTime<Utc>,
    tags: BTreeMap<String, Activation>,
}

/// What one question has asked so far.
#[derive(Default)]
struct Ledger {
    /// Whose billing is asked (the source and the caller's account): keys the cache, so that
    /// two identities never share answers.
    billing: String,
    requests: CostRequests,
    oldest: Option<u64>,
    /// Questions (not the activation check) answered from the cache, and asked anew: a plan
    /// of both is asked again whole, so that its figures are of one moment.
    answers_cached: u32,
    answers_asked: u32,
}

impl Ledger {
    fn of(billing: String) -> Ledger {
        Ledger {
            billing,
            ..Ledger::default()
        }
    }
}

/// The cost service.
pub struct CostService {
    source: Arc<dyn CostSource>,
    policy: Arc<Policy>,
    store: Option<Store>,
    settings: CostConfig,
    /// Billing is asked one request at a time, in each question's fixed order: concurrent
    /// questions neither race for the rate limit nor interleave their pages.
    serial: tokio::sync::Mutex<()>,
    health: Mutex<CostHealth>,
}

impl CostService {
    /// A service over `source`, judging tag values by `policy`, caching in `store`.
    pub fn new(
        source: Arc<dyn CostSource>,
        policy: Arc<Policy>,
        store: Option<Store>,
        settings: CostConfig,
    ) -> CostService {
        let health = CostHealth {
            source: source.kind().to_string(),
            state: if source.is_local() {
                "reachable"
            } else {
                "not_checked"
            }
            .to_string(),
            checked_at: None,
            detail: None,
        };
        CostService {
            source,
            policy,
            store,
            settings,
            serial: tokio::sync::Mutex::new(()),
            health: Mutex::new(health),
        }
    }

    /// The billing source.
    pub fn source(&self) -> &Arc<dyn CostSource> {
        &self.source
    }

    /// Whether cost data was reachable when last asked.
    pub fn health(&self) -> CostHealth {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks billing one small question (yesterday's spend, ungrouped; from the cache when
    /// fresh), so that `/health` can say whether cost data is reachable. Billing in this
    /// process is not asked: it is always reachable.
    pub async fn probe(&self) -> CostHealth {
        if self.source.is_local() {
            return self.health();
        }
        let today = self.source.today();
        let period = Period::new(today - chrono::Duration::days(1), today)
            .expect("yesterday comes before today");
        let query = CostQuery {
            period,
            granularity: Granularity::Daily,
            metric: Metric::default(),
            filter: None,
            group_by: Vec::new(),
            with_usage: false,
        };
        match self.source.billing_key().await {
            Ok(billing) => {
                let mut ledger = Ledger::of(billing);
                let _ = self
                    .ask(&query, false, &mut ledger, &CancellationToken::new())
                    .await;
            }
            Err(error) => self.note_health(Err(&error)),
        }
        self.health()
    }

    /// How long a scan waits for billing: `cost.pricing_budget_seconds`, or less when the
    /// caller must answer sooner (a scan's deadline).
    fn budget(&self, within: Option<Duration>) -> Duration {
        let configured = Duration::from_secs(self.settings.pricing_budget_seconds.max(1));
        within.map_or(configured, |w| w.min(configured))
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.cache_ttl_minutes) * 60)
    }

    fn note_health(&self, outcome: Result<(), &SourceError>) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        health.checked_at = Some(Utc::now());
        match outcome {
            Ok(()) => {
                health.state = "reachable".to_string();
                health.detail = None;
            }
            // A bad question says nothing of whether billing is reachable.
            Err(error) if error.kind == ScanIssueKind::InvalidInput => {}
            // The kind and the permission missing only: /health answers without a token, and
            // billing's messages name the caller's role and account.
            Err(error) => {
                health.state = "unreachable".to_string();
                health.detail = Some(match &error.missing_permission {
                    Some(permission) => format!("{} ({permission})", error.kind.as_str()),
                    None => error.kind.as_str().to_string(),
                });
            }
        }
    }

    /// The allocation tags of a question and where they came from.
    fn allocation_tags(&self, question: &GapQuestion) -> Result<(Vec<String>, String), CostError> {
        let (tags, from) = match &question.tags {
            Some(tags) if !tags.is_empty() => (tags.clone(), "argument"),
            _ if !self.settings.allocation_tags.is_empty() => {
                (self.settings.allocation_tags.clone(), "config")
            }
            _ => (
                self.policy
                    .required_tags()
                    .iter()
                    .filter(|r| r.applies_to.holds_every_type())
                    .map(|r| r.name.to_string())
                    .collect(),
                "policy",
            ),
        };
        if tags.is_empty() {
            return Err(CostError::InvalidInput(
                "no allocation tags: the policy has no required tag that applies to every resource type; pass tags (e.g. [\"CostCenter\"]) or set cost.allocation_tags in the config".to_string(),
            ));
        }
        let mut unique: Vec<String> = Vec::with_capacity(tags.len());
        for tag in tags {
            let tag = tag.trim().to_string();
            if tag.is_empty() || tag.contains('$') {
                return Err(CostError::InvalidInput(format!(
                    "'{tag}' is not a tag key billing can group by (empty, or holding '$')"
                )));
            }
            if !unique.contains(&tag) {
                unique.push(tag);
            }
        }
        if unique.len() > MAX_TAGS {
            return Err(CostError::InvalidInput(format!(
                "{} allocation tags asked; the most is {MAX_TAGS} (each is a billed request)",
                unique.len()
            )));
        }
        Ok((unique, from.to_string()))
    }

    /// Why the policy rejects `value` of `tag`: the required tag's rule as for resources; a
    /// tag the policy does not require accepts any value that is not blank.
    fn rejects(&self, tag: &str, value: &str) -> Option<ViolationType> {
        match self.policy.required_tags().iter().find(|r| &*r.name == tag) {
            Some(rule) => self.policy.rejects_value(rule, value),
            None => value.trim().is_empty().then_some(ViolationType::EmptyValue),
        }
    }

    /// The attribution gap. Its figures are of one moment of billing: when some of its
    /// questions come from the cache and others must be asked (the tags changed, or part of
    /// the cache expired), every question is asked again.
    pub async fn attribution_gap(
        &self,
        question: &GapQuestion,
        cancel: &CancellationToken,
    ) -> Result<AttributionGap, CostError> {
        let (first, mixed) = self
            .gap_once(question, question.force_refresh, cancel)
            .await?;
        if !mixed {
            return Ok(first);
        }
        let (mut again, _) = self.gap_once(question, true, cancel).await?;
        // What the first pass asked was asked (and billed) too.
        let (before, after) = (first.ce_requests, &mut again.ce_requests);
        after.made += before.made;
        after.failed += before.failed;
        after.from_cache += before.from_cache;
        after.price += before.price;
        Ok(again)
    }

    /// One pass of the plan; `true` when its answers were partly cached and partly asked.
    async fn gap_once(
        &self,
        question: &GapQuestion,
        refresh: bool,
        cancel: &CancellationToken,
    ) -> Result<(AttributionGap, bool), CostError> {
        let (tags, tags_from) = self.allocation_tags(question)?;
        let today = self.source.today();
        let period = question
            .period
            .resolve(today)
            .map_err(CostError::InvalidInput)?;
        let scope = gap::scope_filters(&question.scope);
        let plan = GapPlan {
            period,
            granularity: question.granularity,
            metric: question.metric,
            breakdown: question.group_by,
            tags: tags.clone(),
            scope,
        };
        let billing = self.source.billing_key().await.map_err(|error| {
            self.note_health(Err(&error));
            CostError::Source(error)
        })?;
        let mut ledger = Ledger::of(billing);
        let mut issues = Vec::new();
        let mut caveats = Vec::new();
        let issue = |question: String, error: &SourceError| CostIssue {
            question,
            kind: error.kind.as_str().to_string(),
            missing_permission: error.missing_permission.clone(),
            message: error.message.clone(),
        };

        let _turn = self.serial.lock().await;
        let activation = self.activation(&tags, refresh, &mut ledger).await;
        let activation = match activation {
            Ok(map) => map,
            Err(error) => {
                caveats.push(format!(
                    "whether the tags are activated for cost allocation is unknown ({}): a tag that is not activated shows all its spend as missing",
                    error.message
                ));
                tags.iter()
                    .map(|t| (t.clone(), Activation::Unknown))
                    .collect()
            }
        };

        // 1. Other charges: every record type in scope.
        let record_types = self
            .ask(&plan.record_types_query(), refresh, &mut ledger, cancel)
            .await;
        // 2. Usage in scope: without it there is no answer.
        let in_scope = match self
            .ask(&plan.in_scope_query(), refresh, &mut ledger, cancel)
            .await
        {
            Ok(slices) => slices,
            Err(AskError::Cancelled) => return Err(CostError::Cancelled),
            Err(AskError::Source(error)) => return Err(CostError::Source(error)),
        };
        // 3. Each tag's split.
        let mut splits: Vec<TagSplit> = Vec::with_capacity(tags.len());
        for tag in &tags {
            let state = activation.get(tag).copied().unwrap_or(Activation::Unknown);
            let answer = if state == Activation::Inactive {
                TagAnswer::NotMeasurable(format!(
                    "'{tag}' is not activated as a cost allocation tag, so billing does not record it; activate it in the management account (Billing › Cost allocation tags; it applies from then on, or backfill up to 12 months)"
                ))
            } else {
                match self
                    .ask(&plan.tag_query(tag), refresh, &mut ledger, cancel)
                    .await
                {
                    Ok(slices) => TagAnswer::Measured(slices),
                    Err(AskError::Cancelled) => return Err(CostError::Cancelled),
                    Err(AskError::Source(error)) => {
                        issues.push(issue(format!("tag {tag}"), &error));
                        TagAnswer::Failed(error.message)
                    }
                }
            };
            let split = gap::split_tag(tag, state, &answer, &|v| self.rejects(tag, v));
            if state == Activation::Unknown
                && split.row.total.is_some_and(|t| t != Usd::ZERO)
                && split.row.missing == split.row.total
            {
                caveats.push(format!(
                    "no spend carries '{tag}': it may not be activated as a cost allocation tag (its activation could not be checked), in which case its gap is not measurable rather than 100 %"
                ));
            }
            splits.push(split);
        }
        // 4. Attributable spend, on the tags measured.
        let measured: Vec<&TagSplit> = splits
            .iter()
            .filter(|s| s.row.status == gap::TagStatus::Measured)
            .collect();
        let failed = splits
            .iter()
            .any(|s| s.row.status == gap::TagStatus::Unknown);
        let attributable = if failed {
            AttributableAnswer::Unknown("a tag's spend could not be asked".to_string())
        } else if measured.is_empty() {
            AttributableAnswer::Unknown("no allocation tag could be measured".to_string())
        } else {
            let valid: Vec<(String, Vec<String>)> = measured
                .iter()
                .map(|s| (s.row.tag.clone(), s.valid_values.clone()))
                .collect();
            if valid.iter().any(|(_, v)| v.is_empty()) {
                AttributableAnswer::NothingValid
            } else {
                match plan.attributable_query(&valid) {
                    None => AttributableAnswer::TooManyValues,
                    Some(query) => match self.ask(&query, refresh, &mut ledger, cancel).await {
                        Ok(slices) => AttributableAnswer::Measured(slices),
                        Err(AskError::Cancelled) => return Err(CostError::Cancelled),
                        Err(AskError::Source(error)) => {
                            issues.push(issue("attributable spend".to_string(), &error));
                            AttributableAnswer::Unknown(error.message)
                        }
                    },
                }
            }
        };
        drop(_turn);

        let figures = gap::figures(&plan, &in_scope, &splits, &attributable);
        let (other_charges, other_total) = match &record_types {
            Ok(slices) => {
                let (charges, total) = gap::other_charges(slices);
                (Some(charges), Some(total))
            }
            Err(AskError::Cancelled) => return Err(CostError::Cancelled),
            Err(AskError::Source(error)) => {
                issues.push(issue("record types (other charges)".to_string(), error));
                (None, None)
            }
        };
        let measured_tags: Vec<String> = measured.iter().map(|s| s.row.tag.clone()).collect();
        if !measured_tags.is_empty() && measured_tags.len() < tags.len() {
            caveats.push(format!(
                "the attributable spend covers {} only: the other tags could not be measured",
                crate::domain::all_of(
                    &measured_tags.iter().map(String::as_str).collect::<Vec<_>>()
                )
            ));
        }
        caveats.extend(figures.caveats.iter().cloned());
        if in_scope.iter().all(|slice| slice.groups.is_empty()) {
            caveats.push(
                "billing has no usage for this period and scope: there was none, or Cost Explorer has not processed it (new accounts take up to 24 hours), or a filter names accounts or regions billing does not know".to_string(),
            );
        }
        if figures.estimated {
            caveats.push(
                "part of the period is not final (Cost Explorer's Estimated): its figures will still change".to_string(),
            );
        }
        caveats.push(
            "billing records tags as they were when the usage happened: tags fixed today do not change this period's gap, so it can differ from today's scan".to_string(),
        );
        if self.policy.naming().case_sensitivity {
            // Nothing to add: billing and the policy both match keys and values exactly.
        } else {
            caveats.push(
                "billing matches tag keys exactly: a resource tagged 'costcenter' counts as missing 'CostCenter' here, though the policy accepts its key".to_string(),
            );
        }
        let gap = figures.attributable.map(|a| figures.total - a);
        let requests = ledger.requests;
        let cache = CostCache {
            state: match (
                self.store.is_some(),
                ledger.answers_cached,
                ledger.answers_asked,
            ) {
                (false, _, _) => CacheState::Off,
                (true, 0, _) => CacheState::Fresh,
                (true, _, 0) => CacheState::Cached,
                _ => CacheState::Mixed,
            },
            oldest_answer_seconds: ledger.oldest,
            ttl_seconds: self.ttl().as_secs(),
        };
        let mixed = cache.state == CacheState::Mixed;
        let gap = AttributionGap {
            data_source: self.source.kind().to_string(),
            period_start: period.start,
            period_end: period.end,
            granularity: question.granularity,
            metric: question.metric,
            group_by: question.group_by,
            allocation_tags: tags,
            tags_from,
            measured_tags,
            total_spend: figures.total,
            attributable_spend: figures.attributable,
            gap,
            gap_percent: gap.and_then(|g| gap::percent(g, figures.total)),
            attributable_bounds: figures.bounds,
            by_tag: figures.by_tag,
            breakdown: figures.breakdown,
            by_time: figures.by_time,
            invoice_total: other_total.map(|o| figures.total + o),
            other_charges,
            other_charges_total: other_total,
            estimated: figures.estimated,
            ce_requests: requests,
            cache,
            partial: !issues.is_empty(),
            issues,
            caveats,
        };
        Ok((gap, mixed))
    }

    /// How a scan of `scope` prices its resources from billing: the demo's bill prices each
    /// resource itself; Cost Explorer's answers make a [`CostBook`] (actual costs from
    /// resource-level data of the last 14 days, where the account opted in; allocation pools
    /// of EC2 and RDS from the last full month). Failures and what the prices rest on are
    /// notes; no pricer when billing gave nothing.
    pub async fn pricing(
        &self,
        scope: &ScanScope,
        within: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Pricing {
        if !self.settings.resource_costs {
            return Pricing::default();
        }
        if self.source.is_local() {
            return Pricing {
                pricer: Some(Arc::new(LocalPricer(self.source.clone()))),
                notes: vec![
                    "monthly_cost is actual: each resource's charge in the demo's billing over the last 14 days, scaled to 730 hours".to_string(),
                ],
                requests: CostRequests::default(),
            };
        }
        let budget = self.budget(within);
        let started = std::time::Instant::now();
        let mut notes = Vec::new();
        let billing = match tokio::time::timeout(budget, self.source.billing_key()).await {
            Ok(Ok(billing)) => billing,
            failed => {
                let reason = match failed {
                    Ok(Err(error)) => format!("billing could not be asked ({})", error.message),
                    _ => format!(
                        "billing did not answer within {:.1} s (cost.pricing_budget_seconds, or the scan's deadline)",
                        budget.as_secs_f64()
                    ),
                };
                return Pricing {
                    notes: vec![format!("{reason}: the resources' monthly_cost is unknown")],
                    ..Pricing::default()
                };
            }
        };
        let mut ledger = Ledger::of(billing);
        let left = budget.saturating_sub(started.elapsed());
        let book =
            tokio::time::timeout(left, self.book(scope, &mut ledger, &mut notes, cancel)).await;
        let book = match book {
            Ok(book) => book,
            Err(_) => {
                notes.push(format!(
                    "billing did not price the resources within {:.1} s (cost.pricing_budget_seconds, or the scan's deadline): their monthly_cost is unknown",
                    budget.as_secs_f64()
                ));
                None
            }
        };
        let requests = ledger.requests;
        if requests.made + requests.failed > 0 {
            notes.push(format!(
                "pricing asked Cost Explorer {} request(s) ({}), {} answered from the cache",
                requests.made,
                requests.price.display(),
                requests.from_cache
            ));
        }
        Pricing {
            pricer: book.map(|b| Arc::new(b) as Arc<dyn ResourcePricer>),
            notes,
            requests,
        }
    }

    async fn book(
        &self,
        scope: &ScanScope,
        ledger: &mut Ledger,
        notes: &mut Vec<String>,
        cancel: &CancellationToken,
    ) -> Option<CostBook> {
        let today = self.source.today();
        let usage = |service: &str| {
            let mut parts = vec![
                Filter::Dimension(Dimension::Service, vec![service.to_string()]),
                gap::usage_filter(),
            ];
            parts.extend(gap::scope_filters(scope));
            gap::all_of(parts)
        };
        let mut book = CostBook::new();
        let _turn = self.serial.lock().await;

        // Actual costs: resource-level data of the last 14 full days, one question per service.
        let window = Period::new(today - chrono::Duration::days(RESOURCE_DAYS), today)
            .expect("fourteen days before today come before today");
        let unavailable_key = self.cache_key(
            ledger,
            &format!(
                "resource-level-unavailable|{:?}|{:?}",
                scope.accounts, scope.regions
            ),
        );
        let known_unavailable = self
            .cached::<CachedFailure>(&unavailable_key)
            .await
            .filter(|f| self.fresh(f.fetched_at).is_some());
        let mut days_of: BTreeMap<String, (Usd, std::collections::BTreeSet<Period>)> =
            BTreeMap::new();
        match known_unavailable {
            Some(failure) => notes.push(format!(
                "resource-level cost data is unavailable ({}; checked in the last {} minutes): costs are allocated where they can be",
                failure.message, self.settings.cache_ttl_minutes
            )),
            None => {
                for (i, (service, _)) in SERVICE_TYPES.iter().enumerate() {
                    let query = CostQuery {
                        period: window,
                        granularity: Granularity::Daily,
                        metric: Metric::default(),
                        filter: usage(service),
                        group_by: vec![super::query::GroupKey::Dimension(Dimension::ResourceId)],
                        with_usage: false,
                    };
                    match self
                        .ask_of(Api::WithResources, &query, false, ledger, cancel)
                        .await
                    {
                        Ok(slices) => {
                            for slice in slices {
                                for group in slice.groups {
                                    let Some(id) = group.keys.into_iter().next() else {
                                        continue;
                                    };
                                    if id.is_empty() || id == "NoResourceId" {
                                        continue;
                                    }
                                    let entry = days_of.entry(id).or_default();
                                    entry.0 += group.amount;
                                    entry.1.insert(slice.period);
                                }
                            }
                        }
                        Err(AskError::Cancelled) => return None,
                        Err(AskError::Source(error)) => {
                            if i == 0 {
                                // The first service failing means the account has no
                                // resource-level data (not opted in, not allowed): not asked
                                // again until the cache's time is up, unless the failure may
                                // pass (throttled, timed out, unreachable, a 5xx).
                                notes.push(format!(
                                    "resource-level cost data is unavailable ({}): costs are allocated where they can be",
                                    error.message
                                ));
                                if lasting(&error) {
                                    self.put(
                                        unavailable_key.clone(),
                                        &CachedFailure {
                                            fetched_at: Utc::now(),
                                            message: error.message,
                                        },
                                    )
                                    .await;
                                }
                                break;
                            }
                            notes.push(format!(
                                "resource-level cost data of {service} is unavailable: {}",
                                error.message
                            ));
                        }
                    }
                }
            }
        }
        for (id, (sum, days)) in days_of {
            if let Some(monthly) = monthly_of_days(sum, days.len() as i64) {
                book.add_actual(id, monthly);
            }
        }
        if book.actual_count() > 0 {
            notes.push(format!(
                "monthly_cost is actual for {} resource(s): their resource-level billing of {window}, scaled to 730 hours",
                book.actual_count()
            ));
        }

        // Allocation pools: the last full month of EC2 and RDS, by account and region, with
        // normalised hours.
        let month = PeriodSpec::LastMonth
            .resolve(today)
            .expect("the last month always resolves");
        for (service, resource_type) in [
            (SERVICE_TYPES[0].0, ResourceType::Ec2Instance),
            (SERVICE_TYPES[1].0, ResourceType::RdsDb),
        ] {
            let query = CostQuery {
                period: month,
                granularity: Granularity::Monthly,
                metric: Metric::default(),
                filter: usage(service),
                group_by: vec![
                    super::query::GroupKey::Dimension(Dimension::LinkedAccount),
                    super::query::GroupKey::Dimension(Dimension::Region),
                ],
                with_usage: true,
            };
            match self.ask(&query, false, ledger, cancel).await {
                Ok(slices) => {
                    let mut pools: BTreeMap<(String, String), AllocationPool> = BTreeMap::new();
                    for group in slices.into_iter().flat_map(|s| s.groups) {
                        let Ok([account, region]) = <[String; 2]>::try_from(group.keys) else {
                            continue;
                        };
                        let pool = pools.entry((account, region)).or_insert(AllocationPool {
                            spend: Usd::ZERO,
                            normalized_micro_hours: 0,
                        });
                        pool.spend += group.amount;
                        pool.normalized_micro_hours += group.usage.map_or(0, Usd::micros);
                    }
                    for ((account, region), pool) in pools {
                        book.add_pool(account, region, resource_type.clone(), pool);
                    }
                }
                Err(AskError::Cancelled) => return None,
                Err(AskError::Source(error)) => notes.push(format!(
                    "{service}'s spend could not be read to allocate it ({}): its resources' monthly_cost is unknown",
                    error.message
                )),
            }
        }
        if book.pool_count() > 0 {
            notes.push(format!(
                "monthly_cost is allocated for EC2 and RDS instances without actual costs: their size's share (AWS's normalisation factors) of the service's usage spend in their account and region over {month}, by normalised hours, for a month of running"
            ));
        }
        (book.actual_count() + book.pool_count() > 0).then_some(book)
    }

    /// The last full month's gap of `scope` with the default tags, for a scan's record (from
    /// the cache when fresh), within `cost.pricing_budget_seconds`; `Err` with a note when it
    /// cannot be had, `Ok(None)` when the config does not record gaps.
    pub async fn gap_record(
        &self,
        scope: &ScanScope,
        within: Option<Duration>,
    ) -> Result<Option<GapRecord>, String> {
        if !self.settings.record_gap {
            return Ok(None);
        }
        if let Some(reason) = self.source.too_costly_for_every_scan() {
            return Err(reason);
        }
        let question = GapQuestion {
            scope: ScanScope {
                accounts: scope.accounts.clone(),
                regions: scope.regions.clone(),
                ..ScanScope::default()
            },
            ..GapQuestion::default()
        };
        let budget = self.budget(within);
        let gap = tokio::time::timeout(
            budget,
            self.attribution_gap(&question, &CancellationToken::new()),
        )
        .await
        .map_err(|_| {
            format!(
                "billing did not answer within {:.1} s",
                budget.as_secs_f64()
            )
        })?
        .map_err(|e| e.to_string())?;
        Ok(Some(GapRecord {
            period_start: gap.period_start,
            period_end: gap.period_end,
            metric: gap.metric.ce_name().to_string(),
            data_source: gap.data_source,
            allocation_tags: gap.allocation_tags,
            measured_tags: gap.measured_tags,
            total_spend: gap.total_spend,
            attributable_spend: gap.attributable_spend,
            gap: gap.gap,
            gap_percent: gap.gap_percent,
            estimated: gap.estimated,
        }))
    }

    fn cache_key(&self, ledger: &Ledger, what: &str) -> String {
        format!("cost|v2|{}|{what}", ledger.billing)
    }

    /// Whether each tag is activated, from the cache when fresh.
    async fn activation(
        &self,
        tags: &[String],
        refresh: bool,
        ledger: &mut Ledger,
    ) -> Result<BTreeMap<String, Activation>, SourceError> {
        let key = self.cache_key(ledger, &format!("activation|{}", tags.join("\u{1f}")));
        if !refresh
            && let Some(cached) = self.cached::<CachedActivation>(&key).await
            && let Some(age) = self.fresh(cached.fetched_at)
        {
            ledger.requests.from_cache += 1;
            ledger.oldest = ledger.oldest.max(Some(age));
            return Ok(cached.tags);
        }
        // A check that failed is not made again while fresh: only the management account may
        // make it, and a member account would fail every question the same way.
        let failed_key = format!("{key}|failed");
        if !refresh
            && let Some(failure) = self.cached::<CachedFailure>(&failed_key).await
            && self.fresh(failure.fetched_at).is_some()
        {
            return Err(SourceError::new(
                ScanIssueKind::Other,
                format!(
                    "{} (when last checked, in the last {} minutes)",
                    failure.message, self.settings.cache_ttl_minutes
                ),
            ));
        }
        match self.source.allocation_tags(tags).await {
            Ok(map) => {
                self.count_made(ledger);
                self.put(
                    key,
                    &CachedActivation {
                        fetched_at: Utc::now(),
                        tags: map.clone(),
                    },
                )
                .await;
                Ok(map)
            }
            Err(error) => {
                ledger.requests.failed += 1;
                if lasting(&error) {
                    self.put(
                        failed_key,
                        &CachedFailure {
                            fetched_at: Utc::now(),
                            message: error.message.clone(),
                        },
                    )
                    .await;
                }
                Err(error)
            }
        }
    }

    fn count_made(&self, ledger: &mut Ledger) {
        ledger.requests.made += 1;
        ledger.requests.price_per_request = self.source.price_per_request();
        ledger.requests.price = Usd::from_micros(
            self.source
                .price_per_request()
                .micros()
                .saturating_mul(i64::from(ledger.requests.made)),
        );
    }

    /// The age in seconds of an answer fetched at `at`, when it is within the TTL.
    fn fresh(&self, at: DateTime<Utc>) -> Option<u64> {
        let age = (Utc::now() - at).num_seconds().max(0) as u64;
        (age < self.ttl().as_secs()).then_some(age)
    }

    async fn cached<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Option<T> {
        let store = self.store.as_ref()?;
        let bytes = store.cached_bytes(key).await.ok().flatten()?;
        serde_json::from_slice(&bytes).ok()
    }

    async fn put<T: Serialize>(&self, key: String, value: &T) {
        if let Some(store) = &self.store {
            let bytes = serde_json::to_vec(value).expect("cost answers serialise: plain data");
            if let Err(error) = store.cache_bytes(key, bytes).await {
                tracing::warn!(%error, "cannot cache a cost answer");
            }
        }
    }

    /// Every page of the answer to `query`, each from the cache when fresh.
    async fn ask(
        &self,
        query: &CostQuery,
        refresh: bool,
        ledger: &mut Ledger,
        cancel: &CancellationToken,
    ) -> Result<Vec<CostSlice>, AskError> {
        self.ask_of(Api::CostAndUsage, query, refresh, ledger, cancel)
            .await
    }

    /// Every page of the answer to `query` from `api`, each from the cache when fresh.
    async fn ask_of(
        &self,
        api: Api,
        query: &CostQuery,
        refresh: bool,
        ledger: &mut Ledger,
        cancel: &CancellationToken,
    ) -> Result<Vec<CostSlice>, AskError> {
        let question = serde_json::to_string(query).expect("queries serialise: plain data");
        // A whole answer is one cache entry, written after its last page: an answer is never
        // stitched from pages of different moments, nor continued with an old page token.
        let key = self.cache_key(ledger, &format!("{}|{question}", api.cache_name()));
        if !refresh
            && let Some(cached) = self.cached::<CachedAnswer>(&key).await
            && let Some(age) = self.fresh(cached.fetched_at)
        {
            ledger.requests.from_cache += cached.pages;
            ledger.answers_cached += 1;
            ledger.oldest = ledger.oldest.max(Some(age));
            return Ok(cached.slices);
        }
        ledger.answers_asked += 1;
        let fetched_at = Utc::now();
        let mut slices = Vec::new();
        let mut token: Option<String> = None;
        for pages in 1..=MAX_PAGES as u32 {
            if cancel.is_cancelled() {
                return Err(AskError::Cancelled);
            }
            let call = async {
                match api {
                    Api::CostAndUsage => self.source.cost_and_usage(query, token.clone()).await,
                    Api::WithResources => {
                        self.source
                            .cost_and_usage_with_resources(query, token.clone())
                            .await
                    }
                }
            };
            let answer = tokio::select! {
                answer = call => answer,
                _ = cancel.cancelled() => return Err(AskError::Cancelled),
            };
            let page = match answer {
                Ok(page) => {
                    self.note_health(Ok(()));
                    self.count_made(ledger);
                    page
                }
                Err(error) => {
                    self.note_health(Err(&error));
                    ledger.requests.failed += 1;
                    return Err(AskError::Source(error));
                }
            };
            slices.extend(page.slices);
            match page.next_token {
                Some(next) if Some(&next) == token.as_ref() => {
                    return Err(AskError::Source(SourceError::new(
                        ScanIssueKind::Other,
                        format!(
                            "ce:GetCostAndUsage: billing gave the same page token '{next}' twice"
                        ),
                    )));
                }
                Some(next) => token = Some(next),
                None => {
                    self.put(
                        key,
                        &CachedAnswer {
                            fetched_at,
                            pages,
                            slices: slices.clone(),
                        },
                    )
                    .await;
                    return Ok(slices);
                }
            }
        }
        Err(AskError::Source(SourceError::new(
            ScanIssueKind::Other,
            format!(
                "ce:GetCostAndUsage: more than {MAX_PAGES} pages for one question; narrow the period or the scope"
            ),
        )))
    }
}

/// The billing call a question goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `GetCostAndUsage`.
    CostAndUsage,
    /// `GetCostAndUsageWithResources`.
    WithResources,
}

impl Api {
    fn cache_name(self) -> &'static str {
        match self {
            Api::CostAndUsage => "page",
            Api::WithResources => "resource-page",
        }
    }
}

/// Whether a failure will fail the same way for hours (access denied, not opted in, an
/// invalid question) rather than pass (throttled, timed out, unreachable, a 5xx).
fn lasting(error: &SourceError) -> bool {
    !error.retryable
        && !matches!(
            error.kind,
            ScanIssueKind::Timeout | ScanIssueKind::Throttled | ScanIssueKind::EndpointUnavailable
        )
}

/// Why [`CostService::ask`] has no answer.
#[derive(Debug)]
enum AskError {
    Source(SourceError),
    Cancelled,
}
