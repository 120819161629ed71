//! The demo estate's billing: line items consistent with its resources (each bills its monthly
//! cost by the day, with the tags it carries), the usage no resource carries (data transfer,
//! monitoring) and the charges outside usage (tax, support, credits), answered the way Cost
//! Explorer answers: filters and groupings evaluated per line item, tag keys matched exactly,
//! `Key$` where a tag is absent or empty, pages of a few hundred groups, the current month
//! `Estimated`, and no data before the current month and the 13 before.
//!
//! Its line items are public, so tests compare the gap with sums of their own over them.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{Months, NaiveDate, Utc};

use super::CostSource;
use super::gap::Activation;
use super::query::{
    CostGroup, CostPage, CostQuery, CostSlice, Dimension, Filter, GroupKey, HISTORY_MONTHS, Period,
    RESOURCE_DAYS, first_of_month,
};
use super::services::service_of_resource_type;
use crate::domain::costing::{monthly_of_days, normalization_quarters};
use crate::domain::{Resource, ResourceType, ScanIssueKind, ScanScope, Tag, Usd};
use crate::policy::Policy;
use crate::source::synthetic::{SyntheticSource, SyntheticSpec};
use crate::source::{ResourceSource, SourceError};

/// The largest demo estate whose gap is recorded with every scan (its bill is read about
/// seven times per gap: a second each per million resources).
const GAP_WITH_SCANS_UP_TO: u64 = 200_000;

/// Groups per page: small enough that the demo pages as Cost Explorer does.
const PAGE_GROUPS: usize = 500;

/// How a line item charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// This much every day from `from` on.
    Daily(Usd),
    /// This much on the first day of every month from `from` on (tax, support, credits).
    Monthly(Usd),
}

/// One line of the bill.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    /// `Usage`, `DiscountedUsage`, `SavingsPlanCoveredUsage`, `Tax`, `Credit`, `Support`.
    pub record_type: &'static str,
    /// The billing service name.
    pub service: &'static str,
    /// The region code, or `NoRegion`/`global`.
    pub region: Arc<str>,
    /// The member account.
    pub account: Arc<str>,
    /// The resource billed, when the line is a resource's.
    pub resource_arn: Option<String>,
    /// The tags billing records on the line (the resource's own).
    pub tags: Vec<Tag>,
    /// What it charges.
    pub charge: Charge,
    /// The first day it charges.
    pub from: NaiveDate,
    /// For an instance (EC2, RDS): its size's normalisation factor in quarters, which its
    /// normalised hours (`NormalizedUsageAmount`) count.
    pub normalization_quarters: Option<u32>,
}

impl LineItem {
    /// What the line charges over `period`.
    pub fn amount_in(&self, period: &Period) -> Usd {
        let start = period.start.max(self.from);
        if start >= period.end {
            return Usd::ZERO;
        }
        match self.charge {
            Charge::Daily(daily) => {
                let days = (period.end - start).num_days();
                Usd::from_micros(daily.micros().saturating_mul(days))
            }
            Charge::Monthly(amount) => {
                // First days of months in [start, end).
                let mut first = first_of_month(start);
                if first < start {
                    first = first + Months::new(1);
                }
                let mut count = 0i64;
                while first < period.end {
                    count += 1;
                    first = first + Months::new(1);
                }
                Usd::from_micros(amount.micros().saturating_mul(count))
            }
        }
    }

    /// The line's normalised hours over `period`, in millionths: 24 h a day × its factor.
    pub fn normalized_usage_in(&self, period: &Period) -> i64 {
        let (Some(quarters), Charge::Daily(_)) = (self.normalization_quarters, self.charge) else {
            return 0;
        };
        let days = (period.end - period.start.max(self.from)).num_days().max(0);
        days * 24 * i64::from(quarters) * 250_000
    }

    /// The line's value of a dimension.
    pub fn dimension(&self, dimension: Dimension) -> &str {
        match dimension {
            Dimension::RecordType => self.record_type,
            Dimension::Service => self.service,
            Dimension::Region => &self.region,
            Dimension::LinkedAccount => &self.account,
            Dimension::ResourceId => self.resource_arn.as_deref().unwrap_or("NoResourceId"),
        }
    }

    /// The value billing records for `key` (exact key: billing's keys are case-sensitive).
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }

    fn matches(&self, filter: &Filter) -> bool {
        match filter {
            Filter::And(parts) => parts.iter().all(|p| self.matches(p)),
            Filter::Dimension(dimension, values) => {
                let mine = self.dimension(*dimension);
                values.iter().any(|v| v == mine)
            }
            Filter::Tag(key, values) => self
                .tag(key)
                .is_some_and(|mine| values.iter().any(|v| v == mine)),
        }
    }

    fn group_key(&self, key: &GroupKey) -> String {
        match key {
            GroupKey::Dimension(dimension) => self.dimension(*dimension).to_string(),
            GroupKey::Tag(tag) => format!("{tag}${}", self.tag(tag).unwrap_or("")),
        }
    }
}

/// The synthetic billing of one demo estate. Cheap to clone: clones share the bill.
#[derive(Clone)]
pub struct SyntheticBilling {
    bill: Arc<Bill>,
}

/// The bill itself; its answers are computed on a blocking thread, stopping early when the
/// question is dropped (a large estate's bill takes seconds to read).
struct Bill {
    name: String,
    /// Resources of the estate.
    size: u64,
    estate: SyntheticSource,
    /// The lines of no resource (made at the first question, from one pass over the estate);
    /// resources' lines are made as each question reads them, so a large estate's bill is
    /// never held at once.
    shared_lines: std::sync::OnceLock<Vec<LineItem>>,
    /// Tag keys activated for cost allocation: the policy's.
    activated: Vec<String>,
    today: NaiveDate,
    /// The last answer computed, so that its pages do not each compute it again.
    last: std::sync::Mutex<Option<(String, Arc<Vec<CostSlice>>)>>,
}

/// A well-mixed hash of a text (FNV-1a then a finaliser), for deterministic amounts.
fn hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// A monthly cost as a daily charge: a year of days bills twelve months.
pub fn daily_of_monthly(monthly: Usd) -> Usd {
    let micros = i128::from(monthly.micros()) * 12;
    Usd::from_micros(((micros + 182) / 365) as i64)
}

/// What a resource of the estate bills a day: its monthly cost by the day; a resource whose
/// cost the estate does not know is still billed, an amount of its own.
pub fn daily_charge_of(resource: &Resource) -> Usd {
    let monthly = resource
        .monthly_cost
        .unwrap_or_else(|| Usd::from_cents(500 + (hash(&resource.arn) % 20_000) as i64));
    daily_of_monthly(monthly)
}

fn filters_on_resources(filter: Option<&Filter>) -> bool {
    match filter {
        None => false,
        Some(Filter::And(parts)) => parts.iter().any(|p| filters_on_resources(Some(p))),
        Some(Filter::Dimension(dimension, _)) => *dimension == Dimension::ResourceId,
        Some(Filter::Tag(..)) => false,
    }
}

impl SyntheticBilling {
    /// The billing of the estate `spec` generates against `policy`, as of today.
    pub fn new(spec: SyntheticSpec, policy: Arc<Policy>) -> Result<SyntheticBilling, SourceError> {
        let today = Utc::now().date_naive();
        Self::as_of(spec, policy, today)
    }

    /// The billing as of `today` (tests fix the day).
    pub fn as_of(
        spec: SyntheticSpec,
        policy: Arc<Policy>,
        today: NaiveDate,
    ) -> Result<SyntheticBilling, SourceError> {
        let estate = SyntheticSource::new(spec, policy.clone())?;
        let activated = policy
            .required_tags()
            .iter()
            .map(|r| r.name.to_string())
            .chain(policy.optional_tags().iter().map(|r| r.name.to_string()))
            .collect();
        // The estate is generated against the policy: another policy, another bill.
        let policy_text = serde_json::to_string(&policy.document).unwrap_or_default();
        Ok(SyntheticBilling {
            bill: Arc::new(Bill {
                name: format!("demo-billing:{}:{:016x}", estate.name(), hash(&policy_text)),
                size: spec.size,
                estate,
                shared_lines: std::sync::OnceLock::new(),
                activated,
                today,
                last: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Every line of the bill.
    pub fn lines(&self) -> Vec<LineItem> {
        let mut lines = Vec::new();
        self.each_line(|line| lines.push(line.clone()));
        lines
    }

    /// Every line of the bill, one at a time: the resources', then the rest.
    pub fn each_line(&self, visit: impl FnMut(&LineItem)) {
        self.bill.each_line(&AtomicBool::new(false), visit);
    }

    /// Runs `work` on the bill on a blocking thread; dropping the returned future (a
    /// cancelled or timed-out question) tells the work to stop at its next line.
    async fn off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Bill, &AtomicBool) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        struct StopOnDrop(Arc<AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let (bill, flag) = (self.bill.clone(), stop.0.clone());
        tokio::task::spawn_blocking(move || work(&bill, &flag))
            .await
            .unwrap_or_else(|e| {
                Err(SourceError::new(
                    ScanIssueKind::Other,
                    format!("the demo's billing failed: {e}"),
                ))
            })
    }
}

impl Bill {
    /// Every line of the bill, one at a time: the resources', then the rest; stops early
    /// once `stop` is set.
    fn each_line(&self, stop: &AtomicBool, mut visit: impl FnMut(&LineItem)) {
        let all = ScanScope::default();
        for (i, resource) in self.estate.resources_iter(&all).enumerate() {
            if i % 1024 == 0 && stop.load(Ordering::Relaxed) {
                return;
            }
            visit(&line_of(&resource));
        }
        let shared = self
            .shared_lines
            .get_or_init(|| shared_lines_of(self.estate.resources_iter(&all)));
        shared.iter().for_each(visit);
    }

    fn answer(
        &self,
        query: &CostQuery,
        with_resources: bool,
        stop: &AtomicBool,
    ) -> Result<Vec<CostSlice>, SourceError> {
        let oldest = first_of_month(self.today) - Months::new(HISTORY_MONTHS);
        let resource_level = query
            .group_by
            .contains(&GroupKey::Dimension(Dimension::ResourceId))
            || filters_on_resources(query.filter.as_ref());
        if resource_level && !with_resources {
            return Err(SourceError::new(
                ScanIssueKind::InvalidInput,
                "ce:GetCostAndUsage: RESOURCE_ID is a dimension of GetCostAndUsageWithResources only",
            ));
        }
        if with_resources && query.period.start < self.today - chrono::Duration::days(RESOURCE_DAYS)
        {
            return Err(SourceError::new(
                ScanIssueKind::InvalidInput,
                format!(
                    "ce:GetCostAndUsageWithResources: the start date cannot be earlier than {RESOURCE_DAYS} days ago"
                ),
            ));
        }
        if query.period.start > self.today {
            return Err(SourceError::new(
                ScanIssueKind::InvalidInput,
                format!(
                    "ce:GetCostAndUsage: the period starts on {}, after today",
                    query.period.start
                ),
            ));
        }
        if query.period.start < oldest {
            return Err(SourceError::new(
                ScanIssueKind::InvalidInput,
                format!(
                    "ce:GetCostAndUsage: BillExpirationException: billing data before {oldest} is not kept (the current month and the {HISTORY_MONTHS} before it)"
                ),
            ));
        }
        let periods = query.period.slices(query.granularity);
        let mut groups: Vec<BTreeMap<Vec<String>, (Usd, i64)>> =
            vec![BTreeMap::new(); periods.len()];
        self.each_line(stop, |line| {
            if query.filter.as_ref().is_some_and(|f| !line.matches(f)) {
                return;
            }
            let keys: Vec<String> = query.group_by.iter().map(|k| line.group_key(k)).collect();
            for (period, slice) in periods.iter().zip(groups.iter_mut()) {
                let amount = line.amount_in(period);
                if amount != Usd::ZERO {
                    let entry = slice.entry(keys.clone()).or_default();
                    entry.0 += amount;
                    entry.1 += line.normalized_usage_in(period);
                }
            }
        });
        let month = first_of_month(self.today);
        Ok(periods
            .into_iter()
            .zip(groups)
            .map(|(period, groups)| {
                let grouped = !query.group_by.is_empty();
                CostSlice {
                    period,
                    estimated: period.end > month,
                    total: (!grouped).then(|| groups.values().map(|(a, _)| *a).sum()),
                    groups: if grouped {
                        groups
                            .into_iter()
                            .map(|(keys, (amount, usage))| CostGroup {
                                keys,
                                amount,
                                usage: query.with_usage.then(|| Usd::from_micros(usage)),
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect())
    }
}

/// The day a resource starts billing: the day it was created.
fn first_day(resource: &Resource) -> NaiveDate {
    resource
        .created_at
        .map_or(NaiveDate::MIN, |t| t.date_naive())
}

/// A resource's line: its usage by the day, with its tags.
fn line_of(resource: &Resource) -> LineItem {
    let from = first_day(resource);
    let spread = hash(&resource.arn);
    let record_type = match resource.resource_type {
        ResourceType::Ec2Instance if spread.is_multiple_of(4) => "DiscountedUsage",
        ResourceType::LambdaFunction if spread.is_multiple_of(5) => "SavingsPlanCoveredUsage",
        _ => "Usage",
    };
    LineItem {
        record_type,
        service: service_of_resource_type(&resource.resource_type)
            .unwrap_or("AWS Resource Groups Tagging"),
        region: resource.region.clone(),
        account: resource.account_id.clone(),
        resource_arn: Some(resource.arn.clone()),
        tags: resource.tags.clone(),
        charge: Charge::Daily(daily_charge_of(resource)),
        from,
        normalization_quarters: match resource.resource_type {
            ResourceType::Ec2Instance | ResourceType::RdsDb => resource
                .attributes
                .instance_type
                .as_deref()
                .and_then(normalization_quarters),
            _ => None,
        },
    }
}

/// The lines of no resource: the usage of no resource in each account and region that has
/// resources (from its first resource's day), and each account's monthly charges outside
/// usage.
fn shared_lines_of(resources: impl Iterator<Item = Resource>) -> Vec<LineItem> {
    let mut lines = Vec::with_capacity(64);
    let mut places: BTreeMap<(Arc<str>, Arc<str>), NaiveDate> = BTreeMap::new();
    let mut accounts: BTreeMap<Arc<str>, NaiveDate> = BTreeMap::new();
    for resource in resources {
        let from = first_day(&resource);
        let place = places
            .entry((resource.account_id.clone(), resource.region.clone()))
            .or_insert(from);
        *place = (*place).min(from);
        let account = accounts.entry(resource.account_id.clone()).or_insert(from);
        *account = (*account).min(from);
    }
    for ((account, region), from) in places {
        let spread = hash(&format!("{account}/{region}"));
        // NAT gateways and data transfer: usage that carries no resource's tags.
        lines.push(LineItem {
            record_type: "Usage",
            service: "EC2 - Other",
            region,
            account,
            resource_arn: None,
            tags: Vec::new(),
            charge: Charge::Daily(Usd::from_cents(310 + (spread % 900) as i64)),
            from,
            normalization_quarters: None,
        });
    }
    for (i, (account, from)) in accounts.into_iter().enumerate() {
        let spread = hash(&account);
        let no_region: Arc<str> = Arc::from("NoRegion");
        lines.push(LineItem {
            record_type: "Usage",
            service: "AmazonCloudWatch",
            region: Arc::from("us-east-1"),
            account: account.clone(),
            resource_arn: None,
            tags: Vec::new(),
            charge: Charge::Daily(Usd::from_cents(125 + (spread % 300) as i64)),
            from,
            normalization_quarters: None,
        });
        lines.push(LineItem {
            record_type: "Tax",
            service: "Tax",
            region: no_region.clone(),
            account: account.clone(),
            resource_arn: None,
            tags: Vec::new(),
            charge: Charge::Monthly(Usd::from_cents(20_000 + (spread % 40_000) as i64)),
            from,
            normalization_quarters: None,
        });
        if i == 0 {
            lines.push(LineItem {
                record_type: "Support",
                service: "AWS Support (Business)",
                region: no_region.clone(),
                account: account.clone(),
                resource_arn: None,
                tags: Vec::new(),
                charge: Charge::Monthly(Usd::from_cents(29_900)),
                from,
                normalization_quarters: None,
            });
        }
        if i == 1 {
            lines.push(LineItem {
                record_type: "Credit",
                service: "Amazon Elastic Compute Cloud - Compute",
                region: Arc::from("us-east-1"),
                account,
                resource_arn: None,
                tags: Vec::new(),
                charge: Charge::Monthly(Usd::from_cents(-25_000)),
                from,
                normalization_quarters: None,
            });
        }
    }
    lines
}

#[async_trait]
impl CostSource for SyntheticBilling {
    fn kind(&self) -> &'static str {
        "demo_billing"
    }

    fn name(&self) -> String {
        self.bill.name.clone()
    }

    fn price_per_request(&self) -> Usd {
        Usd::ZERO
    }

    fn is_local(&self) -> bool {
        true
    }

    fn too_costly_for_every_scan(&self) -> Option<String> {
        let size = self.bill.size;
        (size > GAP_WITH_SCANS_UP_TO).then(|| {
            format!(
                "the demo's bill of {size} resources is read anew for each question, so its gap is recorded with scans of estates up to {GAP_WITH_SCANS_UP_TO} resources; tagguard cost and get_cost_attribution_gap compute it for any size"
            )
        })
    }

    fn today(&self) -> NaiveDate {
        self.bill.today
    }

    async fn cost_and_usage(
        &self,
        query: &CostQuery,
        token: Option<String>,
    ) -> Result<CostPage, SourceError> {
        let query = query.clone();
        self.off_thread(move |bill, stop| bill.page(&query, token, false, stop))
            .await
    }

    async fn cost_and_usage_with_resources(
        &self,
        query: &CostQuery,
        token: Option<String>,
    ) -> Result<CostPage, SourceError> {
        let query = query.clone();
        self.off_thread(move |bill, stop| bill.page(&query, token, true, stop))
            .await
    }

    fn price_locally(&self, resource: &mut Resource) -> bool {
        // The bill's own daily charge of the resource, as its resource-level data of the last
        // 14 days gives it (the same every day), scaled to 730 hours.
        match monthly_of_days(daily_charge_of(resource), 1) {
            Some(monthly) => {
                resource.monthly_cost = Some(monthly);
                resource.cost_source = crate::domain::CostSource::Actual;
                true
            }
            None => false,
        }
    }

    async fn allocation_tags(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Activation>, SourceError> {
        let keys = keys.to_vec();
        self.off_thread(move |bill, stop| {
            // The policy's tags are activated; a key is active once billing has seen it (one pass
            // over the bill for every key).
            let wanted: Vec<&String> = keys.iter().filter(|k| bill.activated.contains(k)).collect();
            let mut seen = vec![false; wanted.len()];
            if !wanted.is_empty() {
                bill.each_line(stop, |line| {
                    for (key, seen) in wanted.iter().zip(seen.iter_mut()) {
                        *seen |= line.tag(key).is_some();
                    }
                });
            }
            Ok(keys
                .iter()
                .map(|k| {
                    let active = wanted.iter().position(|w| *w == k).is_some_and(|i| seen[i]);
                    let state = if active {
                        Activation::Active
                    } else {
                        Activation::Inactive
                    };
                    (k.clone(), state)
                })
                .collect())
        })
        .await
    }
}

impl Bill {
    /// One page of an answer: pages cut the groups of every slice, in order; an ungrouped
    /// answer is one page.
    fn page(
        &self,
        query: &CostQuery,
        token: Option<String>,
        with_resources: bool,
        stop: &AtomicBool,
    ) -> Result<CostPage, SourceError> {
        let skip = match &token {
            None => 0,
            Some(token) => token
                .strip_prefix("groups:")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    SourceError::new(
                        ScanIssueKind::InvalidInput,
                        format!("ce:GetCostAndUsage: InvalidNextTokenException: '{token}'"),
                    )
                })?,
        };
        let key = format!(
            "{with_resources}|{}",
            serde_json::to_string(query).unwrap_or_default()
        );
        let remembered = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, slices)| slices.clone());
        let slices = match remembered {
            Some(slices) => slices,
            None => {
                let slices = Arc::new(self.answer(query, with_resources, stop)?);
                if stop.load(Ordering::Relaxed) {
                    return Err(SourceError::new(
                        ScanIssueKind::Other,
                        "the question was dropped",
                    ));
                }
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, slices.clone()));
                slices
            }
        };
        let total = total_groups(&slices);
        // Pages cut the groups of every slice, in order; an ungrouped answer is one page.
        let mut page = Vec::new();
        let mut seen = 0usize;
        let mut taken = 0usize;
        // Only what the page holds is copied out of the remembered answer.
        for slice in slices.iter() {
            if slice.groups.is_empty() {
                if skip == 0 {
                    page.push(slice.clone());
                }
                continue;
            }
            let len = slice.groups.len();
            if seen + len <= skip {
                seen += len;
                continue;
            }
            let from = skip.saturating_sub(seen);
            let room = PAGE_GROUPS - taken;
            let upto = (from + room).min(len);
            taken += upto - from;
            seen += len;
            page.push(CostSlice {
                period: slice.period,
                estimated: slice.estimated,
                total: slice.total,
                groups: slice.groups[from..upto].to_vec(),
            });
            if taken == PAGE_GROUPS {
                let next = skip + taken;
                return Ok(CostPage {
                    slices: page,
                    next_token: (next < total).then(|| format!("groups:{next}")),
                });
            }
        }
        Ok(CostPage {
            slices: page,
            next_token: None,
        })
    }
}

fn total_groups(slices: &[CostSlice]) -> usize {
    slices.iter().map(|s| s.groups.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::query::{Granularity, Metric, range};
    use crate::policy::default_policy;

    fn billing(size: u64) -> SyntheticBilling {
        let today = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        SyntheticBilling::as_of(
            SyntheticSpec { size, seed: 42 },
            Arc::new(default_policy()),
            today,
        )
        .unwrap()
    }

    fn query(group_by: Vec<GroupKey>) -> CostQuery {
        CostQuery {
            period: range("2026-11-01", "2026-12-01").unwrap(),
            granularity: Granularity::Daily,
            metric: Metric::AmortizedCost,
            filter: None,
            group_by,
            with_usage: false,
        }
    }

    async fn all_pages(billing: &SyntheticBilling, query: &CostQuery) -> (Vec<CostSlice>, usize) {
        let (mut slices, mut pages, mut token) = (Vec::new(), 0, None);
        loop {
            let page = billing.cost_and_usage(query, token).await.unwrap();
            pages += 1;
            slices.extend(page.slices);
            token = page.next_token;
            if token.is_none() {
                return (slices, pages);
            }
        }
    }

    #[tokio::test]
    async fn pages_hold_every_group_once_and_sum_to_the_ungrouped_total() {
        let billing = billing(600);
        let period = range("2026-11-01", "2026-12-01").unwrap();
        let truth: Usd = billing.lines().iter().map(|l| l.amount_in(&period)).sum();
        let (ungrouped, _) = all_pages(&billing, &query(vec![])).await;
        let total: Usd = ungrouped.iter().filter_map(|s| s.total).sum();
        assert_eq!(total, truth);
        let grouped = query(vec![
            GroupKey::Dimension(Dimension::Service),
            GroupKey::Tag("CostCenter".into()),
        ]);
        let (slices, pages) = all_pages(&billing, &grouped).await;
        assert!(
            pages > 1,
            "30 daily slices of many groups take several pages"
        );
        let sum: Usd = slices
            .iter()
            .flat_map(|s| &s.groups)
            .map(|g| g.amount)
            .sum();
        assert_eq!(sum, truth);
        assert!(slices.iter().all(|s| s.total.is_none()));
    }

    #[test]
    fn monthly_charges_fall_on_first_days_and_daily_ones_every_day() {
        let line = LineItem {
            record_type: "Tax",
            service: "Tax",
            region: Arc::from("NoRegion"),
            account: Arc::from("1"),
            resource_arn: None,
            tags: Vec::new(),
            charge: Charge::Monthly(Usd::from_cents(100)),
            from: NaiveDate::from_ymd_opt(2026, 10, 15).unwrap(),
            normalization_quarters: None,
        };
        assert_eq!(
            line.amount_in(&range("2026-10-01", "2026-12-01").unwrap()),
            Usd::from_cents(100)
        );
        assert_eq!(
            line.amount_in(&range("2026-11-02", "2026-12-01").unwrap()),
            Usd::ZERO
        );
        let daily = LineItem {
            charge: Charge::Daily(Usd::from_cents(3)),
            ..line
        };
        assert_eq!(
            daily.amount_in(&range("2026-10-01", "2026-11-01").unwrap()),
            Usd::from_cents(51)
        );
    }

    #[tokio::test]
    async fn tag_keys_match_exactly_and_absent_tags_group_as_key_dollar() {
        let billing = billing(300);
        let (slices, _) =
            all_pages(&billing, &query(vec![GroupKey::Tag("CostCenter".into())])).await;
        let keys: std::collections::BTreeSet<&str> = slices
            .iter()
            .flat_map(|s| &s.groups)
            .map(|g| g.keys[0].as_str())
            .collect();
        assert!(keys.contains("CostCenter$"));
        assert!(keys.iter().all(|k| k.starts_with("CostCenter$")));
        let with_lower_key = billing
            .lines()
            .iter()
            .filter(|l| l.tags.iter().any(|t| t.key == "costcenter"))
            .count();
        assert!(
            with_lower_key > 0,
            "the estate has case variants of the key"
        );
    }

    #[test]
    fn only_bills_of_smaller_estates_are_read_with_every_scan() {
        let policy = Arc::new(default_policy());
        let today = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let at =
            |size| SyntheticBilling::as_of(SyntheticSpec { size, seed: 1 }, policy.clone(), today);
        assert_eq!(
            at(GAP_WITH_SCANS_UP_TO)
                .unwrap()
                .too_costly_for_every_scan(),
            None
        );
        let reason = at(GAP_WITH_SCANS_UP_TO + 1)
            .unwrap()
            .too_costly_for_every_scan();
        assert!(reason.unwrap().contains("tagguard cost"));
    }

    #[tokio::test]
    async fn old_and_future_periods_are_refused_and_this_month_is_estimated() {
        let billing = billing(50);
        let mut q = query(vec![]);
        q.period = range("2025-01-01", "2025-02-01").unwrap();
        let error = billing.cost_and_usage(&q, None).await.unwrap_err();
        assert!(
            error.message.contains("BillExpiration"),
            "{}",
            error.message
        );
        q.period = range("2026-12-01", "2026-12-03").unwrap();
        let page = billing.cost_and_usage(&q, None).await.unwrap();
        assert!(page.slices.iter().all(|s| s.estimated));
        q.period = range("2026-11-01", "2026-12-01").unwrap();
        let page = billing.cost_and_usage(&q, None).await.unwrap();
        assert!(page.slices.iter().all(|s| !s.estimated));
    }
}
