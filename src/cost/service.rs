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
    CostPage, CostQuery, CostSlice, Dimension, Filter, Granularity, Metric, Period, PeriodSpec,
};
use crate::config::CostConfig;
use crate::domain::{ScanIssueKind, ScanScope, Usd, ViolationType};
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

/// A cached page of an answer.
#[derive(Serialize, Deserialize)]
struct CachedPage {
    fetched_at: DateTime<Utc>,
    page: CostPage,
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
    requests: CostRequests,
    oldest: Option<u64>,
    asked: u32,
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
        };
        let mut ledger = Ledger::default();
        let _ = self
            .ask(&query, false, &mut ledger, &CancellationToken::new())
            .await;
        self.health()
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
            Err(error) => {
                health.state = "unreachable".to_string();
                health.detail = Some(error.message.clone());
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

    /// The attribution gap.
    pub async fn attribution_gap(
        &self,
        question: &GapQuestion,
        cancel: &CancellationToken,
    ) -> Result<AttributionGap, CostError> {
        let (tags, tags_from) = self.allocation_tags(question)?;
        let today = self.source.today();
        let period = question
            .period
            .resolve(today)
            .map_err(CostError::InvalidInput)?;
        let mut scope = Vec::new();
        if !question.scope.accounts.is_empty() {
            scope.push(Filter::Dimension(
                Dimension::LinkedAccount,
                question.scope.accounts.iter().cloned().collect(),
            ));
        }
        if !question.scope.regions.is_empty() {
            scope.push(Filter::Dimension(
                Dimension::Region,
                question.scope.regions.iter().cloned().collect(),
            ));
        }
        let plan = GapPlan {
            period,
            granularity: question.granularity,
            metric: question.metric,
            breakdown: question.group_by,
            tags: tags.clone(),
            scope,
        };
        let refresh = question.force_refresh;
        let mut ledger = Ledger::default();
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
            state: match (self.store.is_some(), requests.from_cache, ledger.asked) {
                (false, _, _) => CacheState::Off,
                (true, 0, _) => CacheState::Fresh,
                (true, _, 0) => CacheState::Cached,
                _ => CacheState::Mixed,
            },
            oldest_answer_seconds: ledger.oldest,
            ttl_seconds: self.ttl().as_secs(),
        };
        Ok(AttributionGap {
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
        })
    }

    fn cache_key(&self, what: &str) -> String {
        format!("cost|v1|{}|{what}", self.source.name())
    }

    /// Whether each tag is activated, from the cache when fresh.
    async fn activation(
        &self,
        tags: &[String],
        refresh: bool,
        ledger: &mut Ledger,
    ) -> Result<BTreeMap<String, Activation>, SourceError> {
        let key = self.cache_key(&format!("activation|{}", tags.join("\u{1f}")));
        if !refresh
            && let Some(cached) = self.cached::<CachedActivation>(&key).await
            && let Some(age) = self.fresh(cached.fetched_at)
        {
            ledger.requests.from_cache += 1;
            ledger.oldest = ledger.oldest.max(Some(age));
            return Ok(cached.tags);
        }
        ledger.asked += 1;
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
        let question = serde_json::to_string(query).expect("queries serialise: plain data");
        let mut slices = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            if cancel.is_cancelled() {
                return Err(AskError::Cancelled);
            }
            let key = self.cache_key(&format!(
                "page|{question}|{}",
                token.as_deref().unwrap_or("")
            ));
            let cached = if refresh {
                None
            } else {
                self.cached::<CachedPage>(&key)
                    .await
                    .and_then(|c| self.fresh(c.fetched_at).map(|age| (c.page, age)))
            };
            let page = match cached {
                Some((page, age)) => {
                    ledger.requests.from_cache += 1;
                    ledger.oldest = ledger.oldest.max(Some(age));
                    page
                }
                None => {
                    ledger.asked += 1;
                    let answer = tokio::select! {
                        answer = self.source.cost_and_usage(query, token.clone()) => answer,
                        _ = cancel.cancelled() => return Err(AskError::Cancelled),
                    };
                    match answer {
                        Ok(page) => {
                            self.note_health(Ok(()));
                            self.count_made(ledger);
                            self.put(
                                key,
                                &CachedPage {
                                    fetched_at: Utc::now(),
                                    page: page.clone(),
                                },
                            )
                            .await;
                            page
                        }
                        Err(error) => {
                            self.note_health(Err(&error));
                            ledger.requests.failed += 1;
                            return Err(AskError::Source(error));
                        }
                    }
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
                None => return Ok(slices),
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

/// Why [`CostService::ask`] has no answer.
#[derive(Debug)]
enum AskError {
    Source(SourceError),
    Cancelled,
}
