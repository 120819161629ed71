//! The questions tagguard asks of billing data and the answers, in Cost Explorer's own terms
//! (`GetCostAndUsage`): a period (end exclusive), a granularity, one metric, a filter, up to
//! two groupings; answers are time slices of groups with exact amounts.
//!
//! These are plain data with serde both ways: the AWS source translates them to the SDK, the
//! synthetic billing evaluates them over its line items, and the store caches answers.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Duration, Months, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::Usd;

/// The record types of usage: what "total spend" counts. Everything else on the bill (tax,
/// credits, refunds, support, fees, discounts) is another charge, reported apart.
pub const USAGE_RECORD_TYPES: [&str; 3] = ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"];

/// Days of billing data Cost Explorer keeps at daily and monthly granularity: the current
/// month and the 13 before it (multi-year data, 38 months, must be enabled).
pub const HISTORY_MONTHS: u32 = 13;

/// Days of resource-level data Cost Explorer keeps (`GetCostAndUsageWithResources`).
pub const RESOURCE_DAYS: i64 = 14;

/// A span of whole days, `start` included, `end` excluded (as Cost Explorer reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    /// The first day.
    pub start: NaiveDate,
    /// The day after the last.
    pub end: NaiveDate,
}

impl Period {
    /// `[start, end)`; `None` unless `start < end`.
    pub fn new(start: NaiveDate, end: NaiveDate) -> Option<Period> {
        (start < end).then_some(Period { start, end })
    }

    /// Days covered.
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days()
    }

    /// The days this period shares with `other`.
    pub fn overlap(&self, other: &Period) -> i64 {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (end - start).num_days().max(0)
    }

    /// The slices of `granularity`: each day, or each calendar month's part of the period.
    pub fn slices(&self, granularity: Granularity) -> Vec<Period> {
        let mut out = Vec::new();
        let mut start = self.start;
        while start < self.end {
            let next = match granularity {
                Granularity::Daily => start + Duration::days(1),
                Granularity::Monthly => first_of_month(start) + Months::new(1),
            };
            let end = next.min(self.end);
            out.push(Period { start, end });
            start = end;
        }
        out
    }
}

impl fmt::Display for Period {
    /// `2026-11-01..2026-12-01` (end exclusive).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// The first day of `day`'s month.
pub fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("every month has a first day")
}

/// A period as a caller names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeriodSpec {
    /// The last full calendar month.
    #[default]
    LastMonth,
    /// The 30 full days before today.
    Last30Days,
    /// From the first of this month through today (not final: Cost Explorer says
    /// `Estimated`).
    MonthToDate,
    /// Explicit dates, end exclusive.
    Range(Period),
}

impl PeriodSpec {
    /// The period meant on `today` (UTC). An explicit range may not start after today nor end
    /// after tomorrow (billing has no data for the future).
    pub fn resolve(&self, today: NaiveDate) -> Result<Period, String> {
        let this_month = first_of_month(today);
        let tomorrow = today + Duration::days(1);
        match self {
            PeriodSpec::LastMonth => Ok(Period {
                start: this_month - Months::new(1),
                end: this_month,
            }),
            PeriodSpec::Last30Days => Ok(Period {
                start: today - Duration::days(30),
                end: today,
            }),
            PeriodSpec::MonthToDate => Ok(Period {
                start: this_month,
                end: tomorrow,
            }),
            PeriodSpec::Range(period) => {
                if period.start > today {
                    Err(format!(
                        "the period starts on {}, after today ({today}): billing has no data for the future",
                        period.start
                    ))
                } else if period.end > tomorrow {
                    Err(format!(
                        "the period ends on {} (exclusive), after tomorrow ({tomorrow}): to include today, end it on {tomorrow}",
                        period.end
                    ))
                } else {
                    Ok(*period)
                }
            }
        }
    }
}

impl FromStr for PeriodSpec {
    type Err = String;
    /// `last_month`, `last_30_days`, `month_to_date`, or `START..END` (`2026-10-01..2026-11-01`,
    /// end exclusive).
    fn from_str(text: &str) -> Result<PeriodSpec, String> {
        match text.trim() {
            "last_month" => Ok(PeriodSpec::LastMonth),
            "last_30_days" => Ok(PeriodSpec::Last30Days),
            "month_to_date" => Ok(PeriodSpec::MonthToDate),
            other => {
                let (start, end) = other.split_once("..").ok_or_else(|| {
                    format!(
                        "'{other}' is not a period: use last_month, last_30_days, month_to_date or START..END (dates, end exclusive)"
                    )
                })?;
                range(start.trim(), end.trim()).map(PeriodSpec::Range)
            }
        }
    }
}

/// The period `[start, end)` from two `YYYY-MM-DD` dates.
pub fn range(start: &str, end: &str) -> Result<Period, String> {
    let date = |text: &str, which: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| format!("the {which} date '{text}' is not a date like 2026-11-01"))
    };
    let (start, end) = (date(start, "start")?, date(end, "end")?);
    Period::new(start, end).ok_or_else(|| {
        format!("the period {start}..{end} is empty: the end date is exclusive and must come after the start")
    })
}

/// How a period is cut into slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One slice per calendar month (the parts of months at the period's ends).
    #[default]
    Monthly,
    /// One slice per day.
    Daily,
}

impl Granularity {
    /// Cost Explorer's name.
    pub fn ce_name(self) -> &'static str {
        match self {
            Granularity::Monthly => "MONTHLY",
            Granularity::Daily => "DAILY",
        }
    }
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(text: &str) -> Result<Granularity, String> {
        match text.to_ascii_lowercase().as_str() {
            "monthly" => Ok(Granularity::Monthly),
            "daily" => Ok(Granularity::Daily),
            _ => Err(format!(
                "'{text}' is not a granularity: use monthly or daily"
            )),
        }
    }
}

/// What a cost figure measures (Cost Explorer's metrics of money).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum Metric {
    /// Reservation and Savings Plans fees spread over the usage they cover, so they follow
    /// that usage's tags: the metric for allocation.
    #[default]
    AmortizedCost,
    /// Charges as billed when they occur (upfront fees land untagged on their day).
    UnblendedCost,
    /// Amortized, after discounts (EDP, private rates).
    NetAmortizedCost,
    /// Unblended, after discounts.
    NetUnblendedCost,
    /// Consolidated billing's averaged rates.
    BlendedCost,
}

impl Metric {
    /// Every metric, default first.
    pub const ALL: [Metric; 5] = [
        Metric::AmortizedCost,
        Metric::UnblendedCost,
        Metric::NetAmortizedCost,
        Metric::NetUnblendedCost,
        Metric::BlendedCost,
    ];

    /// The name Cost Explorer's `Metrics` takes and its answers are keyed by.
    pub fn ce_name(self) -> &'static str {
        match self {
            Metric::AmortizedCost => "AmortizedCost",
            Metric::UnblendedCost => "UnblendedCost",
            Metric::NetAmortizedCost => "NetAmortizedCost",
            Metric::NetUnblendedCost => "NetUnblendedCost",
            Metric::BlendedCost => "BlendedCost",
        }
    }
}

impl FromStr for Metric {
    type Err = String;
    /// A metric's name, any case, with or without underscores (`amortized_cost`).
    fn from_str(text: &str) -> Result<Metric, String> {
        let wanted = text.replace('_', "").to_ascii_lowercase();
        Metric::ALL
            .into_iter()
            .find(|m| m.ce_name().to_ascii_lowercase() == wanted)
            .ok_or_else(|| {
                format!(
                    "'{text}' is not a cost metric: use one of {}",
                    Metric::ALL.map(Metric::ce_name).join(", ")
                )
            })
    }
}

/// A dimension of billing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dimension {
    /// The charge type: `Usage`, `Tax`, `Credit`, ….
    RecordType,
    /// The service's display name (`Amazon Elastic Compute Cloud - Compute`).
    Service,
    /// The region code (`us-east-1`), or `global`/`NoRegion` for charges of no region.
    Region,
    /// The member account's 12-digit id.
    LinkedAccount,
    /// The resource billed (an instance id, an ARN, a name): resource-level data only.
    ResourceId,
}

impl Dimension {
    /// Cost Explorer's key.
    pub fn ce_name(self) -> &'static str {
        match self {
            Dimension::RecordType => "RECORD_TYPE",
            Dimension::Service => "SERVICE",
            Dimension::Region => "REGION",
            Dimension::LinkedAccount => "LINKED_ACCOUNT",
            Dimension::ResourceId => "RESOURCE_ID",
        }
    }
}

/// One grouping of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupKey {
    /// By a dimension's values.
    Dimension(Dimension),
    /// By a tag's values; group keys are `Key$value`, `Key$` where the tag is absent or empty.
    Tag(String),
}

/// Which line items a question covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Filter {
    /// Line items matching every part.
    And(Vec<Filter>),
    /// Line items whose dimension has one of the values.
    Dimension(Dimension, Vec<String>),
    /// Line items carrying the tag with one of the values, exactly (case-sensitive). Never
    /// with no values: Cost Explorer reads that as "the tag is absent".
    Tag(String, Vec<String>),
}

/// One `GetCostAndUsage` question (all its pages).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CostQuery {
    /// The days covered.
    pub period: Period,
    /// How they are sliced.
    pub granularity: Granularity,
    /// What is measured.
    pub metric: Metric,
    /// Which line items count; `None`: all.
    pub filter: Option<Filter>,
    /// At most two groupings (Cost Explorer's limit).
    pub group_by: Vec<GroupKey>,
    /// Also ask each group's normalised instance hours (`NormalizedUsageAmount`), which
    /// allocation shares a service's spend by.
    #[serde(default)]
    pub with_usage: bool,
}

/// The name of the usage metric of [`CostQuery::with_usage`].
pub const NORMALIZED_USAGE: &str = "NormalizedUsageAmount";

/// One page of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CostPage {
    /// The slices on this page (a slice's groups may continue on the next page).
    pub slices: Vec<CostSlice>,
    /// Present when there is another page.
    pub next_token: Option<String>,
}

/// One time slice of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostSlice {
    /// The days it covers.
    pub period: Period,
    /// The bill for these days is not final yet.
    pub estimated: bool,
    /// The slice's total when the question had no grouping (Cost Explorer leaves it empty
    /// when grouping).
    pub total: Option<Usd>,
    /// The groups: keys in grouping order, and their amount.
    pub groups: Vec<CostGroup>,
}

/// One group of a slice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostGroup {
    /// One key per grouping, in the question's order.
    pub keys: Vec<String>,
    /// The exact amount (USD; may be negative: credits, refunds).
    pub amount: Usd,
    /// With [`CostQuery::with_usage`]: normalised hours, in millionths (the money type
    /// carries them exactly; they are not dollars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usd>,
}

/// A tag group key `Key$value` split at its first `$` (values may hold `$` themselves):
/// `Some("")` for `Key$` (the tag absent or empty), `None` when the key is not of `tag`.
pub fn tag_value_of<'a>(group_key: &'a str, tag: &str) -> Option<&'a str> {
    let (key, value) = group_key.split_once('$')?;
    (key == tag).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn named_periods_resolve_with_an_exclusive_end() {
        let today = day("2026-12-02");
        let last_month = PeriodSpec::LastMonth.resolve(today).unwrap();
        assert_eq!(
            (last_month.start, last_month.end),
            (day("2026-11-01"), day("2026-12-01"))
        );
        assert_eq!(last_month.days(), 30);
        let last_30 = PeriodSpec::Last30Days.resolve(today).unwrap();
        assert_eq!(
            (last_30.start, last_30.end),
            (day("2026-11-02"), day("2026-12-02"))
        );
        assert_eq!(last_30.days(), 30);
        let to_date = PeriodSpec::MonthToDate.resolve(today).unwrap();
        assert_eq!(
            (to_date.start, to_date.end),
            (day("2026-12-01"), day("2026-12-03"))
        );
        // January's last month is December of the year before.
        let january = PeriodSpec::LastMonth.resolve(day("2027-01-15")).unwrap();
        assert_eq!(
            (january.start, january.end),
            (day("2026-12-01"), day("2027-01-01"))
        );
    }

    #[test]
    fn explicit_ranges_are_checked() {
        let today = day("2026-12-02");
        let spec: PeriodSpec = "2026-10-01..2026-11-01".parse().unwrap();
        assert_eq!(spec.resolve(today).unwrap().days(), 31);
        assert!(
            "2026-11-01..2026-11-01"
                .parse::<PeriodSpec>()
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            "2026-13-01..2026-12-01"
                .parse::<PeriodSpec>()
                .unwrap_err()
                .contains("2026-13-01")
        );
        assert!(
            "yesterday"
                .parse::<PeriodSpec>()
                .unwrap_err()
                .contains("last_month")
        );
        let future: PeriodSpec = "2026-12-03..2026-12-04".parse().unwrap();
        assert!(future.resolve(today).unwrap_err().contains("future"));
        let through_today: PeriodSpec = "2026-12-01..2026-12-03".parse().unwrap();
        assert!(through_today.resolve(today).is_ok());
        let past_tomorrow: PeriodSpec = "2026-12-01..2026-12-04".parse().unwrap();
        assert!(
            past_tomorrow
                .resolve(today)
                .unwrap_err()
                .contains("2026-12-03")
        );
    }

    #[test]
    fn slices_follow_calendar_months_and_days() {
        let period = range("2026-10-15", "2026-12-03").unwrap();
        let months: Vec<String> = period
            .slices(Granularity::Monthly)
            .iter()
            .map(Period::to_string)
            .collect();
        assert_eq!(
            months,
            [
                "2026-10-15..2026-11-01",
                "2026-11-01..2026-12-01",
                "2026-12-01..2026-12-03"
            ]
        );
        assert_eq!(
            period.slices(Granularity::Daily).len() as i64,
            period.days()
        );
    }

    #[test]
    fn tag_group_keys_split_at_the_first_dollar() {
        assert_eq!(tag_value_of("CostCenter$cc-1", "CostCenter"), Some("cc-1"));
        assert_eq!(tag_value_of("CostCenter$", "CostCenter"), Some(""));
        assert_eq!(tag_value_of("CostCenter$a$b", "CostCenter"), Some("a$b"));
        assert_eq!(tag_value_of("Owner$x", "CostCenter"), None);
        assert_eq!(tag_value_of("no-dollar", "CostCenter"), None);
    }

    #[test]
    fn metrics_parse_in_any_spelling() {
        assert_eq!(
            "amortized_cost".parse::<Metric>(),
            Ok(Metric::AmortizedCost)
        );
        assert_eq!("UnblendedCost".parse::<Metric>(), Ok(Metric::UnblendedCost));
        assert!(
            "usage_quantity"
                .parse::<Metric>()
                .unwrap_err()
                .contains("AmortizedCost")
        );
    }
}
