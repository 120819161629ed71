//! The cost-attribution gap: the fixed query plan (3 + N questions for N allocation tags) and
//! the figures computed from its answers. Pure: no I/O, so every rule of `docs/cost.md` is
//! tested here and by property tests.
//!
//! The plan, each question on usage record types only and within the scope:
//! 1. spend by record type, unfiltered by record type: the other charges (tax, credits, …);
//! 2. usage spend by the breakdown's dimension: the total and each group's;
//! 3. for each measurable tag, usage spend by (dimension, tag value): missing (`Key$`),
//!    invalid (the policy rejects the value) and valid, and the valid values seen;
//! 4. usage spend by dimension of line items carrying *every* tag with a valid value seen
//!    (an `And` of tag filters, evaluated per line item): the attributable spend.
//!
//! Gap = total − attributable.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::query::{
    CostQuery, CostSlice, Dimension, Filter, Granularity, GroupKey, Metric, Period,
    USAGE_RECORD_TYPES, tag_value_of,
};
use super::services::resource_type_of_service;
use crate::domain::{Usd, ViolationType};

/// How many values, over all tags, the attributable question may filter on. Past it the plan
/// gives bounds instead of the exact figure (Cost Explorer caps the values of a filter).
pub const MAX_FILTER_VALUES: usize = 1_000;

/// Invalid values listed per tag, the costliest first.
pub const TOP_INVALID_VALUES: usize = 10;

/// What the breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    /// Cost Explorer's service names.
    #[default]
    Service,
    /// Region codes (`global`, `NoRegion` for charges of no region).
    Region,
    /// Member accounts.
    Account,
    /// tagguard resource types, from the services (an explicit `other` row for the rest).
    ResourceType,
}

impl Breakdown {
    /// The dimension asked of billing.
    pub fn dimension(self) -> Dimension {
        match self {
            Breakdown::Service | Breakdown::ResourceType => Dimension::Service,
            Breakdown::Region => Dimension::Region,
            Breakdown::Account => Dimension::LinkedAccount,
        }
    }

    /// The row a group of billing data falls in.
    fn row_key(self, value: &str) -> String {
        match self {
            Breakdown::ResourceType => {
                resource_type_of_service(value).map_or_else(|| "other".to_string(), str::to_string)
            }
            _ => value.to_string(),
        }
    }
}

impl std::str::FromStr for Breakdown {
    type Err = String;
    fn from_str(text: &str) -> Result<Breakdown, String> {
        match text.to_ascii_lowercase().replace('-', "_").as_str() {
            "service" => Ok(Breakdown::Service),
            "region" => Ok(Breakdown::Region),
            "account" => Ok(Breakdown::Account),
            "resource_type" => Ok(Breakdown::ResourceType),
            _ => Err(format!(
                "'{text}' is not a breakdown: use service, region, account or resource_type"
            )),
        }
    }
}

/// The questions of one gap, before their answers.
#[derive(Debug, Clone, PartialEq)]
pub struct GapPlan {
    /// The days covered.
    pub period: Period,
    /// How the time series is sliced.
    pub granularity: Granularity,
    /// What is measured.
    pub metric: Metric,
    /// The breakdown's grouping.
    pub breakdown: Breakdown,
    /// The allocation tags, in the order they are asked.
    pub tags: Vec<String>,
    /// The scope's filters (accounts, regions); empty: everything billing shows.
    pub scope: Vec<Filter>,
}

/// Line items of usage record types only (what total spend counts).
pub fn usage_filter() -> Filter {
    Filter::Dimension(
        Dimension::RecordType,
        USAGE_RECORD_TYPES.iter().map(|t| t.to_string()).collect(),
    )
}

/// A scope's accounts and regions as billing filters (none for "everything billing shows").
pub fn scope_filters(scope: &crate::domain::ScanScope) -> Vec<Filter> {
    let mut filters = Vec::new();
    if !scope.accounts.is_empty() {
        filters.push(Filter::Dimension(
            Dimension::LinkedAccount,
            scope.accounts.iter().cloned().collect(),
        ));
    }
    if !scope.regions.is_empty() {
        filters.push(Filter::Dimension(
            Dimension::Region,
            scope.regions.iter().cloned().collect(),
        ));
    }
    filters
}

/// `parts` joined: one part alone, several in an `And` (Cost Explorer refuses an `And` of one).
pub fn all_of(mut parts: Vec<Filter>) -> Option<Filter> {
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Filter::And(parts)),
    }
}

impl GapPlan {
    fn query(&self, filter: Option<Filter>, group_by: Vec<GroupKey>) -> CostQuery {
        CostQuery {
            period: self.period,
            granularity: self.granularity,
            metric: self.metric,
            filter,
            group_by,
            with_usage: false,
        }
    }

    fn usage_and_scope(&self) -> Vec<Filter> {
        let mut parts = vec![usage_filter()];
        parts.extend(self.scope.iter().cloned());
        parts
    }

    /// Question 1: everything in scope by record type.
    pub fn record_types_query(&self) -> CostQuery {
        self.query(
            all_of(self.scope.clone()),
            vec![GroupKey::Dimension(Dimension::RecordType)],
        )
    }

    /// Question 2: usage in scope by the breakdown's dimension.
    pub fn in_scope_query(&self) -> CostQuery {
        self.query(
            all_of(self.usage_and_scope()),
            vec![GroupKey::Dimension(self.breakdown.dimension())],
        )
    }

    /// Question 3 for `tag`: usage by dimension and the tag's values.
    pub fn tag_query(&self, tag: &str) -> CostQuery {
        self.query(
            all_of(self.usage_and_scope()),
            vec![
                GroupKey::Dimension(self.breakdown.dimension()),
                GroupKey::Tag(tag.to_string()),
            ],
        )
    }

    /// Question 4: usage carrying every tag with one of its valid values seen. `None` when a
    /// tag has no valid value seen (nothing is attributable, and an empty value list would
    /// mean "the tag is absent" to Cost Explorer) or the values are too many for one filter.
    pub fn attributable_query(&self, valid: &[(String, Vec<String>)]) -> Option<CostQuery> {
        if valid.iter().any(|(_, values)| values.is_empty())
            || valid.iter().map(|(_, v)| v.len()).sum::<usize>() > MAX_FILTER_VALUES
            || valid.is_empty()
        {
            return None;
        }
        let mut parts = self.usage_and_scope();
        parts.extend(
            valid
                .iter()
                .map(|(tag, values)| Filter::Tag(tag.clone(), values.clone())),
        );
        Some(self.query(
            all_of(parts),
            vec![GroupKey::Dimension(self.breakdown.dimension())],
        ))
    }
}

/// Whether an allocation tag's spend could be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TagStatus {
    /// Missing, invalid and valid spend are known.
    Measured,
    /// The tag is not activated for cost allocation: billing does not record it, so its
    /// spend cannot be split (it is *not* 100 % untagged).
    NotMeasurable,
    /// Billing could not be asked (the request failed).
    Unknown,
}

/// Whether a tag is activated as a cost allocation tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Active: billing records it from its activation on.
    Active,
    /// Inactive, or never seen in billing data.
    Inactive,
    /// Could not be checked (the call is not allowed from this account, or failed).
    Unknown,
}

/// Spend of one value of a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValueSpend {
    /// The value as billing recorded it.
    pub value: String,
    /// Why the policy rejects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ViolationType>,
    /// Its usage spend (USD).
    pub spend: Usd,
}

/// One allocation tag's split of the total: each measured row sums to the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TagGap {
    /// The tag key (case-sensitive in billing).
    pub tag: String,
    /// Whether its spend was measured.
    pub status: TagStatus,
    /// Whether it is activated for cost allocation.
    pub activation: Activation,
    /// Why it was not measured, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Usage spend of line items without the tag, or with it empty (USD); null unless measured.
    pub missing: Option<Usd>,
    /// Usage spend whose value the policy rejects (USD); null unless measured.
    pub invalid: Option<Usd>,
    /// Usage spend whose value the policy accepts (USD); null unless measured.
    pub valid: Option<Usd>,
    /// `missing + invalid + valid` (USD); null unless measured.
    pub total: Option<Usd>,
    /// Share of the total missing or invalid, in percent.
    pub gap_percent: Option<f64>,
    /// The costliest invalid values.
    pub top_invalid_values: Vec<ValueSpend>,
    /// Distinct valid values seen in billing.
    pub valid_values_seen: usize,
}

/// One row of the breakdown: the groups sum to the totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupGap {
    /// The group: a service name, region, account id, resource type or `other`.
    pub key: String,
    /// Usage spend (USD).
    pub total: Usd,
    /// Spend carrying every allocation tag with a valid value (USD); null when unknown.
    pub attributable: Option<Usd>,
    /// `total − attributable` (USD); null when unknown.
    pub gap: Option<Usd>,
    /// The gap's share of the row's total, in percent.
    pub gap_percent: Option<f64>,
    /// With `resource_type`: the services counted in the row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// One time slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimeGap {
    /// First day.
    pub start: chrono::NaiveDate,
    /// Day after the last (exclusive).
    pub end: chrono::NaiveDate,
    /// The bill for these days is not final.
    pub estimated: bool,
    /// Usage spend (USD).
    pub total: Usd,
    /// Attributable spend (USD); null when unknown.
    pub attributable: Option<Usd>,
    /// Gap (USD); null when unknown.
    pub gap: Option<Usd>,
}

/// Spend of one record type outside usage (tax, credits, refunds, support, fees, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OtherCharge {
    /// The record type, as billing names it.
    pub record_type: String,
    /// Its amount (USD; credits and refunds are negative).
    pub amount: Usd,
}

/// Bounds of the attributable spend when it cannot be asked exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Bounds {
    /// At least this much (USD).
    pub low: Usd,
    /// At most this much (USD).
    pub high: Usd,
}

/// The answer to one tag's question.
#[derive(Debug, Clone, PartialEq)]
pub enum TagAnswer {
    /// Its slices, grouped by (dimension, `Key$value`).
    Measured(Vec<CostSlice>),
    /// Not asked: the reason (the tag is not activated).
    NotMeasurable(String),
    /// Asked and failed: the reason.
    Failed(String),
}

/// The answer to the attributable question.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributableAnswer {
    /// Its slices, grouped by dimension.
    Measured(Vec<CostSlice>),
    /// Not asked: some tag has no valid value seen, so nothing is attributable.
    NothingValid,
    /// Not asked: too many valid values for one filter.
    TooManyValues,
    /// Not asked or failed: the reason.
    Unknown(String),
}

/// The figures of a gap, from the plan's answers.
#[derive(Debug, Clone, PartialEq)]
pub struct GapFigures {
    /// Usage spend in scope.
    pub total: Usd,
    /// Attributable spend, when known exactly.
    pub attributable: Option<Usd>,
    /// Bounds of the attributable spend, when only those are known.
    pub bounds: Option<Bounds>,
    /// One row per allocation tag, in the plan's order.
    pub by_tag: Vec<TagGap>,
    /// The breakdown, costliest first.
    pub breakdown: Vec<GroupGap>,
    /// The time series.
    pub by_time: Vec<TimeGap>,
    /// Some slice is not final.
    pub estimated: bool,
    /// Things a reader must know to trust the figures.
    pub caveats: Vec<String>,
}

/// A tag's split of spend, with the valid values seen (for the attributable question).
pub struct TagSplit {
    /// The row.
    pub row: TagGap,
    /// The valid values seen, sorted.
    pub valid_values: Vec<String>,
}

/// Splits one tag's answer into missing, invalid and valid, judging each value with
/// `rejects` (the policy, as for resources).
pub fn split_tag(
    tag: &str,
    activation: Activation,
    answer: &TagAnswer,
    rejects: &dyn Fn(&str) -> Option<ViolationType>,
) -> TagSplit {
    let slices = match answer {
        TagAnswer::Measured(slices) => slices,
        TagAnswer::NotMeasurable(reason) | TagAnswer::Failed(reason) => {
            return TagSplit {
                row: TagGap {
                    tag: tag.to_string(),
                    status: if matches!(answer, TagAnswer::NotMeasurable(_)) {
                        TagStatus::NotMeasurable
                    } else {
                        TagStatus::Unknown
                    },
                    activation,
                    reason: Some(reason.clone()),
                    missing: None,
                    invalid: None,
                    valid: None,
                    total: None,
                    gap_percent: None,
                    top_invalid_values: Vec::new(),
                    valid_values_seen: 0,
                },
                valid_values: Vec::new(),
            };
        }
    };
    let (mut missing, mut invalid, mut valid) = (Usd::ZERO, Usd::ZERO, Usd::ZERO);
    let mut invalid_values: BTreeMap<String, (Usd, Option<ViolationType>)> = BTreeMap::new();
    let mut valid_values: BTreeMap<String, ()> = BTreeMap::new();
    let mut foreign = 0usize;
    for group in slices.iter().flat_map(|s| &s.groups) {
        let value = group.keys.get(1).and_then(|k| tag_value_of(k, tag));
        match value {
            // `Key$`: absent or empty (billing does not tell which).
            Some("") => missing += group.amount,
            Some(value) => match rejects(value) {
                Some(reason) => {
                    let entry = invalid_values
                        .entry(value.to_string())
                        .or_insert((Usd::ZERO, Some(reason)));
                    entry.0 += group.amount;
                    invalid += group.amount;
                }
                None => {
                    valid_values.insert(value.to_string(), ());
                    valid += group.amount;
                }
            },
            // A key not of this tag: billing answered another question; counted as missing,
            // and said.
            None => {
                foreign += 1;
                missing += group.amount;
            }
        }
    }
    let total = missing + invalid + valid;
    let mut top: Vec<ValueSpend> = invalid_values
        .into_iter()
        .map(|(value, (spend, reason))| ValueSpend {
            value,
            reason,
            spend,
        })
        .collect();
    top.sort_by(|a, b| b.spend.cmp(&a.spend).then_with(|| a.value.cmp(&b.value)));
    top.truncate(TOP_INVALID_VALUES);
    let valid_values: Vec<String> = valid_values.into_keys().collect();
    let mut reason = None;
    if foreign > 0 {
        reason = Some(format!(
            "{foreign} group(s) of billing's answer had no '{tag}$' key; they count as missing"
        ));
    }
    TagSplit {
        row: TagGap {
            tag: tag.to_string(),
            status: TagStatus::Measured,
            activation,
            reason,
            missing: Some(missing),
            invalid: Some(invalid),
            valid: Some(valid),
            total: Some(total),
            gap_percent: percent(missing + invalid, total),
            top_invalid_values: top,
            valid_values_seen: valid_values.len(),
        },
        valid_values,
    }
}

/// `part / whole` in percent, to two decimals; `None` for a zero whole.
pub fn percent(part: Usd, whole: Usd) -> Option<f64> {
    if whole == Usd::ZERO {
        return None;
    }
    let exact = part.micros() as f64 / whole.micros() as f64 * 100.0;
    Some((exact * 100.0).round() / 100.0)
}

/// Sums an answer's groups by the breakdown's row, over every slice.
fn by_row(slices: &[CostSlice], breakdown: Breakdown) -> BTreeMap<String, (Usd, Vec<String>)> {
    let mut rows: BTreeMap<String, (Usd, Vec<String>)> = BTreeMap::new();
    for group in slices.iter().flat_map(|s| &s.groups) {
        let value = group.keys.first().map_or("", String::as_str);
        let row = rows.entry(breakdown.row_key(value)).or_default();
        row.0 += group.amount;
        if breakdown == Breakdown::ResourceType && !row.1.iter().any(|s| s == value) {
            row.1.push(value.to_string());
        }
    }
    rows
}

/// A slice's amount: its groups' sum (its total when ungrouped).
fn slice_amount(slice: &CostSlice) -> Usd {
    if slice.groups.is_empty() {
        slice.total.unwrap_or(Usd::ZERO)
    } else {
        slice.groups.iter().map(|g| g.amount).sum()
    }
}

/// Sums slices by period (pages may repeat a slice to continue its groups).
fn by_period(slices: &[CostSlice]) -> BTreeMap<Period, (Usd, bool)> {
    let mut out: BTreeMap<Period, (Usd, bool)> = BTreeMap::new();
    for slice in slices {
        let entry = out.entry(slice.period).or_default();
        entry.0 += slice_amount(slice);
        entry.1 |= slice.estimated;
    }
    out
}

/// The figures of a gap from its answers: `in_scope` (question 2), each tag's split (from
/// question 3) and the attributable answer (question 4).
pub fn figures(
    plan: &GapPlan,
    in_scope: &[CostSlice],
    splits: &[TagSplit],
    attributable: &AttributableAnswer,
) -> GapFigures {
    let mut caveats = Vec::new();
    let rows = by_row(in_scope, plan.breakdown);
    let total: Usd = rows.values().map(|(amount, _)| *amount).sum();
    let measured: Vec<&TagSplit> = splits
        .iter()
        .filter(|s| s.row.status == TagStatus::Measured)
        .collect();

    let (attributable_rows, attributable_total, bounds) = match attributable {
        AttributableAnswer::Measured(slices) => {
            let rows = by_row(slices, plan.breakdown);
            let sum = rows.values().map(|(a, _)| *a).sum();
            (Some(rows), Some(sum), None)
        }
        AttributableAnswer::NothingValid => (Some(BTreeMap::new()), Some(Usd::ZERO), None),
        AttributableAnswer::TooManyValues => {
            // Attributable spend is valid on every tag: at most the least valid tag's spend,
            // at least what remains once every tag's missing and invalid spend is removed.
            let high = measured
                .iter()
                .filter_map(|s| s.row.valid)
                .min()
                .unwrap_or(total);
            let off: Usd = measured
                .iter()
                .filter_map(|s| s.row.missing.zip(s.row.invalid).map(|(m, i)| m + i))
                .sum();
            let low = (total - off).max(Usd::ZERO).min(high);
            caveats.push(format!(
                "more than {MAX_FILTER_VALUES} valid tag values were seen: the attributable spend is given as bounds, not asked exactly"
            ));
            (None, None, Some(Bounds { low, high }))
        }
        AttributableAnswer::Unknown(reason) => {
            caveats.push(format!("the attributable spend is unknown: {reason}"));
            (None, None, None)
        }
    };

    for split in &measured {
        if let Some(tag_total) = split.row.total
            && tag_total != total
        {
            caveats.push(format!(
                "billing's split of '{}' sums to {}, not the total {}: the data changed between requests, or grouping by the tag drops some line items",
                split.row.tag,
                tag_total.display(),
                total.display()
            ));
        }
    }

    let mut keys: Vec<&String> = rows.keys().collect();
    if let Some(extra) = &attributable_rows {
        keys.extend(extra.keys().filter(|k| !rows.contains_key(*k)));
    }
    let mut breakdown: Vec<GroupGap> = keys
        .into_iter()
        .map(|key| {
            let (row_total, services) = rows.get(key).cloned().unwrap_or_default();
            let row_attributable = attributable_rows
                .as_ref()
                .map(|r| r.get(key).map_or(Usd::ZERO, |(a, _)| *a));
            let gap = row_attributable.map(|a| row_total - a);
            GroupGap {
                key: key.clone(),
                total: row_total,
                attributable: row_attributable,
                gap,
                gap_percent: gap.and_then(|g| percent(g, row_total)),
                services,
            }
        })
        .collect();
    breakdown.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.key.cmp(&b.key)));

    let attributable_by_period = match attributable {
        AttributableAnswer::Measured(slices) => Some(by_period(slices)),
        AttributableAnswer::NothingValid => Some(BTreeMap::new()),
        _ => None,
    };
    let mut estimated = false;
    let by_time = by_period(in_scope)
        .into_iter()
        .map(|(period, (amount, slice_estimated))| {
            estimated |= slice_estimated;
            let attributable = attributable_by_period
                .as_ref()
                .map(|p| p.get(&period).map_or(Usd::ZERO, |(a, _)| *a));
            TimeGap {
                start: period.start,
                end: period.end,
                estimated: slice_estimated,
                total: amount,
                attributable,
                gap: attributable.map(|a| amount - a),
            }
        })
        .collect();

    GapFigures {
        total,
        attributable: attributable_total,
        bounds,
        by_tag: splits.iter().map(|s| s.row.clone()).collect(),
        breakdown,
        by_time,
        estimated,
        caveats,
    }
}

/// The other charges from question 1's answer: every record type outside usage, costliest
/// first by magnitude, and their sum.
pub fn other_charges(slices: &[CostSlice]) -> (Vec<OtherCharge>, Usd) {
    let mut by_type: BTreeMap<String, Usd> = BTreeMap::new();
    for group in slices.iter().flat_map(|s| &s.groups) {
        let record_type = group.keys.first().cloned().unwrap_or_default();
        if !USAGE_RECORD_TYPES.contains(&record_type.as_str()) {
            *by_type.entry(record_type).or_default() += group.amount;
        }
    }
    let sum = by_type.values().copied().sum();
    let mut charges: Vec<OtherCharge> = by_type
        .into_iter()
        .map(|(record_type, amount)| OtherCharge {
            record_type,
            amount,
        })
        .collect();
    charges.sort_by(|a, b| {
        b.amount
            .micros()
            .unsigned_abs()
            .cmp(&a.amount.micros().unsigned_abs())
            .then_with(|| a.record_type.cmp(&b.record_type))
    });
    (charges, sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::query::{CostGroup, range};

    fn plan(tags: &[&str]) -> GapPlan {
        GapPlan {
            period: range("2026-11-01", "2026-12-01").unwrap(),
            granularity: Granularity::Monthly,
            metric: Metric::AmortizedCost,
            breakdown: Breakdown::Service,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            scope: Vec::new(),
        }
    }

    fn slice(groups: &[(&[&str], i64)]) -> CostSlice {
        CostSlice {
            period: range("2026-11-01", "2026-12-01").unwrap(),
            estimated: false,
            total: None,
            groups: groups
                .iter()
                .map(|(keys, cents)| CostGroup {
                    keys: keys.iter().map(|k| k.to_string()).collect(),
                    amount: Usd::from_cents(*cents),
                    usage: None,
                })
                .collect(),
        }
    }

    fn cc_rule(value: &str) -> Option<ViolationType> {
        (!["cc-1", "cc-2", "a$b"].contains(&value)).then_some(ViolationType::InvalidValue)
    }

    #[test]
    fn a_tag_splits_into_missing_invalid_and_valid() {
        let answer = TagAnswer::Measured(vec![slice(&[
            (&["EC2", "CostCenter$cc-1"], 81_240),
            (&["EC2", "CostCenter$"], 14_310),
            (&["RDS", "CostCenter$CC-1"], 22_000),
            (&["RDS", "CostCenter$a$b"], 100),
            (&["S3", "CostCenter$nope"], 50),
        ])]);
        let split = split_tag("CostCenter", Activation::Active, &answer, &cc_rule);
        let row = &split.row;
        assert_eq!(row.missing, Some(Usd::from_cents(14_310)));
        assert_eq!(row.invalid, Some(Usd::from_cents(22_050)));
        assert_eq!(row.valid, Some(Usd::from_cents(81_340)));
        assert_eq!(row.total, Some(Usd::from_cents(117_700)));
        assert_eq!(split.valid_values, ["a$b", "cc-1"]);
        assert_eq!(row.top_invalid_values[0].value, "CC-1");
        assert_eq!(row.top_invalid_values[1].value, "nope");
    }

    #[test]
    fn the_attributable_question_needs_a_valid_value_of_every_tag() {
        let plan = plan(&["CostCenter", "Owner"]);
        let valid = vec![
            ("CostCenter".to_string(), vec!["cc-1".to_string()]),
            ("Owner".to_string(), vec![]),
        ];
        assert_eq!(plan.attributable_query(&valid), None);
        let valid = vec![
            ("CostCenter".to_string(), vec!["cc-1".to_string()]),
            ("Owner".to_string(), vec!["a@b.c".to_string()]),
        ];
        let query = plan.attributable_query(&valid).unwrap();
        let Some(Filter::And(parts)) = &query.filter else {
            panic!("an And of the usage and tag filters")
        };
        assert_eq!(parts.len(), 3);
        assert!(parts.contains(&Filter::Tag("Owner".into(), vec!["a@b.c".into()])));
        // One filter alone is not wrapped in an And.
        assert!(plan.record_types_query().filter.is_none());
        assert!(matches!(
            plan.in_scope_query().filter,
            Some(Filter::Dimension(Dimension::RecordType, _))
        ));
    }

    #[test]
    fn the_gap_is_total_less_attributable_per_row() {
        let plan = plan(&["CostCenter"]);
        let in_scope = vec![slice(&[(&["EC2"], 95_550), (&["RDS"], 22_100)])];
        let split = split_tag(
            "CostCenter",
            Activation::Active,
            &TagAnswer::Measured(vec![slice(&[
                (&["EC2", "CostCenter$cc-1"], 81_240),
                (&["EC2", "CostCenter$"], 14_310),
                (&["RDS", "CostCenter$CC-1"], 22_100),
            ])]),
            &cc_rule,
        );
        let attributable = AttributableAnswer::Measured(vec![slice(&[(&["EC2"], 81_240)])]);
        let figures = figures(&plan, &in_scope, &[split], &attributable);
        assert_eq!(figures.total, Usd::from_cents(117_650));
        assert_eq!(figures.attributable, Some(Usd::from_cents(81_240)));
        let rds = figures.breakdown.iter().find(|r| r.key == "RDS").unwrap();
        assert_eq!(rds.attributable, Some(Usd::ZERO));
        assert_eq!(rds.gap, Some(Usd::from_cents(22_100)));
        assert_eq!(rds.gap_percent, Some(100.0));
        assert!(figures.caveats.is_empty(), "{:?}", figures.caveats);
        assert_eq!(figures.by_time[0].gap, Some(Usd::from_cents(36_410)));
    }

    #[test]
    fn an_unmeasurable_tag_has_no_figures() {
        let split = split_tag(
            "Team",
            Activation::Inactive,
            &TagAnswer::NotMeasurable("not activated".into()),
            &cc_rule,
        );
        assert_eq!(split.row.status, TagStatus::NotMeasurable);
        assert_eq!((split.row.missing, split.row.total), (None, None));
    }

    #[test]
    fn other_charges_are_every_record_type_but_usage() {
        let (charges, sum) = other_charges(&[slice(&[
            (&["Usage"], 100_000),
            (&["Tax"], 8_000),
            (&["Credit"], -12_000),
            (&["DiscountedUsage"], 5_000),
        ])]);
        assert_eq!(sum, Usd::from_cents(-4_000));
        assert_eq!(charges[0].record_type, "Credit");
        assert_eq!(charges.len(), 2);
    }

    #[test]
    fn resource_type_rows_name_their_services() {
        let mut plan = plan(&["CostCenter"]);
        plan.breakdown = Breakdown::ResourceType;
        let in_scope = vec![slice(&[
            (&["Amazon Elastic Compute Cloud - Compute"], 100),
            (&["Tax"], 5),
            (&["AmazonCloudWatch"], 7),
        ])];
        let figures = figures(&plan, &in_scope, &[], &AttributableAnswer::NothingValid);
        let keys: Vec<&str> = figures.breakdown.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["ec2:instance", "other"]);
        assert_eq!(figures.breakdown[1].services, ["Tax", "AmazonCloudWatch"]);
        assert_eq!(figures.breakdown[1].total, Usd::from_cents(12));
    }
}
