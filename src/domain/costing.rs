//! Per-resource monthly cost from billing: [`ResourcePricer`], which sets a resource's
//! `monthly_cost` and `cost_source` before it is validated, and [`CostBook`], the pricer of
//! Cost Explorer's answers: actual resource-level costs, and allocation pools that share a
//! service's spend in an account and region by AWS's size normalisation factors.
//!
//! Pure data and arithmetic: exact integers of micro-dollars, rounded once, halves away from
//! zero.

use std::collections::HashMap;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CostSource, Resource, ResourceType, Usd};

/// The cost-attribution gap of a period, as a scan's record keeps it: enough for its trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GapRecord {
    /// The period's first day.
    pub period_start: NaiveDate,
    /// The day after its last.
    pub period_end: NaiveDate,
    /// The cost metric (`AmortizedCost`).
    pub metric: String,
    /// Where the figures came from (`cost_explorer`, `demo_billing`).
    pub data_source: String,
    /// The allocation tags.
    pub allocation_tags: Vec<String>,
    /// The tags the attributable spend covers (those billing could measure): gaps of other
    /// tags are not compared in a trend.
    #[serde(default)]
    pub measured_tags: Vec<String>,
    /// Usage spend (USD).
    pub total_spend: Usd,
    /// Spend carrying every measured tag with a valid value (USD); null when unknown.
    pub attributable_spend: Option<Usd>,
    /// `total_spend − attributable_spend` (USD); null when unknown.
    pub gap: Option<Usd>,
    /// The gap's share of the total, in percent.
    pub gap_percent: Option<f64>,
    /// The period's bill was not final.
    pub estimated: bool,
}

/// Hours of a month, as AWS's pricing calculator counts them (365 × 24 / 12).
pub const HOURS_PER_MONTH: i64 = 730;

/// Sets resources' monthly cost from billing.
pub trait ResourcePricer: Send + Sync {
    /// Sets `resource`'s `monthly_cost` and `cost_source` when billing knows its cost;
    /// leaves them as the source set them otherwise.
    fn price(&self, resource: &mut Resource);
}

/// `numerator / denominator` rounded to the nearest integer, halves away from zero.
fn divide_rounded(numerator: i128, denominator: i128) -> i128 {
    let (n, d) = if denominator < 0 {
        (-numerator, -denominator)
    } else {
        (numerator, denominator)
    };
    if n >= 0 {
        (n + d / 2) / d
    } else {
        -((-n + d / 2) / d)
    }
}

/// A monthly figure from `sum` billed over `days` days: `sum ÷ days × 730 h ÷ 24`.
pub fn monthly_of_days(sum: Usd, days: i64) -> Option<Usd> {
    if days <= 0 {
        return None;
    }
    let micros = divide_rounded(
        i128::from(sum.micros()) * i128::from(HOURS_PER_MONTH),
        24 * i128::from(days),
    );
    i64::try_from(micros).ok().map(Usd::from_micros)
}

/// AWS's normalisation factor of an instance size (`m5.large`, `db.r6g.2xlarge`), in quarters
/// (nano 0.25 is 1, large 4 is 16): `None` for sizes without one (`metal`, unknown names).
/// docs.aws.amazon.com/AWSEC2/latest/UserGuide/apply_ri.html (size flexibility), the same table
/// for RDS.
pub fn normalization_quarters(instance_type: &str) -> Option<u32> {
    let size = instance_type.rsplit('.').next()?;
    let fixed = match size {
        "nano" => Some(1),
        "micro" => Some(2),
        "small" => Some(4),
        "medium" => Some(8),
        "large" => Some(16),
        "xlarge" => Some(32),
        _ => None,
    };
    fixed.or_else(|| {
        // `Nxlarge` is N × 8, in quarters N × 32.
        let n: u32 = size.strip_suffix("xlarge")?.parse().ok()?;
        (n > 0).then(|| n.saturating_mul(32))
    })
}

/// One allocation pool: a service's usage spend in one account and region over a period, and
/// its normalised instance hours (Cost Explorer's `NormalizedUsageAmount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocationPool {
    /// Usage spend.
    pub spend: Usd,
    /// Normalised hours, in millionths.
    pub normalized_micro_hours: i64,
}

/// Billing's costs of resources: actual monthly costs by the id billing records (ARN or
/// instance id), and allocation pools by (account, region, type).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostBook {
    actual: HashMap<String, Usd>,
    pools: HashMap<(String, String, ResourceType), AllocationPool>,
}

impl CostBook {
    /// An empty book: prices nothing.
    pub fn new() -> CostBook {
        CostBook::default()
    }

    /// Records the actual monthly cost of the resource billing calls `id`.
    pub fn add_actual(&mut self, id: impl Into<String>, monthly: Usd) {
        self.actual.insert(id.into(), monthly);
    }

    /// Records the pool of `resource_type` in `account` and `region`.
    pub fn add_pool(
        &mut self,
        account: impl Into<String>,
        region: impl Into<String>,
        resource_type: ResourceType,
        pool: AllocationPool,
    ) {
        self.pools
            .insert((account.into(), region.into(), resource_type), pool);
    }

    /// Resources with an actual cost.
    pub fn actual_count(&self) -> usize {
        self.actual.len()
    }

    /// Allocation pools.
    pub fn pool_count(&self) -> usize {
        self.pools.len()
    }

    /// The actual monthly cost of `resource`, by its ARN or its id.
    pub fn actual(&self, resource: &Resource) -> Option<Usd> {
        self.actual
            .get(&resource.arn)
            .or_else(|| self.actual.get(&resource.id))
            .copied()
    }

    /// `resource`'s share of its pool for a month of running: the pool's spend per normalised
    /// hour × its size's factor × 730 h. Sized types only (EC2 instances, RDS instances).
    pub fn allocated(&self, resource: &Resource) -> Option<Usd> {
        if !matches!(
            resource.resource_type,
            ResourceType::Ec2Instance | ResourceType::RdsDb
        ) {
            return None;
        }
        let quarters = normalization_quarters(resource.attributes.instance_type.as_deref()?)?;
        let pool = self.pools.get(&(
            resource.account_id.to_string(),
            resource.region.to_string(),
            resource.resource_type.clone(),
        ))?;
        if pool.normalized_micro_hours <= 0 {
            return None;
        }
        // spend × (quarters / 4 × 730 h) / (normalized µh / 10⁶)
        let micros = divide_rounded(
            i128::from(pool.spend.micros())
                * i128::from(quarters)
                * i128::from(HOURS_PER_MONTH)
                * 1_000_000,
            4 * i128::from(pool.normalized_micro_hours),
        );
        i64::try_from(micros).ok().map(Usd::from_micros)
    }
}

impl ResourcePricer for CostBook {
    fn price(&self, resource: &mut Resource) {
        let (cost, source) = match (self.actual(resource), self.allocated(resource)) {
            (Some(actual), _) => (actual, CostSource::Actual),
            (None, Some(share)) => (share, CostSource::Allocated),
            (None, None) => return,
        };
        resource.monthly_cost = Some(cost);
        resource.cost_source = source;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::ResourceAttributes;

    fn instance(id: &str, itype: &str) -> Resource {
        Resource {
            arn: format!("arn:aws:ec2:us-east-1:111111111111:instance/{id}"),
            account_id: Arc::from("111111111111"),
            region: Arc::from("us-east-1"),
            resource_type: ResourceType::Ec2Instance,
            id: id.to_string(),
            name: None,
            tags: Vec::new(),
            created_at: None,
            monthly_cost: None,
            cost_source: CostSource::Unknown,
            attributes: ResourceAttributes {
                instance_type: Some(itype.to_string()),
                ..ResourceAttributes::default()
            },
        }
    }

    #[test]
    fn normalization_factors_follow_aws_table() {
        let factor = |t| normalization_quarters(t).map(|q| f64::from(q) / 4.0);
        assert_eq!(factor("t3.nano"), Some(0.25));
        assert_eq!(factor("t3.micro"), Some(0.5));
        assert_eq!(factor("m5.large"), Some(4.0));
        assert_eq!(factor("m5.xlarge"), Some(8.0));
        assert_eq!(factor("c5.9xlarge"), Some(72.0));
        assert_eq!(factor("db.r6g.2xlarge"), Some(16.0));
        assert_eq!(factor("x1e.32xlarge"), Some(256.0));
        assert_eq!(factor("m5.metal"), None);
        assert_eq!(factor("weird"), None);
    }

    #[test]
    fn a_pool_is_shared_by_normalised_hours() {
        let mut book = CostBook::new();
        // 730 h of one large (4) and 730 h of one xlarge (8): 8,760 normalised hours, $876.
        book.add_pool(
            "111111111111",
            "us-east-1",
            ResourceType::Ec2Instance,
            AllocationPool {
                spend: Usd::from_cents(87_600),
                normalized_micro_hours: 8_760_000_000,
            },
        );
        let mut large = instance("i-1", "m5.large");
        let mut xlarge = instance("i-2", "m5.xlarge");
        book.price(&mut large);
        book.price(&mut xlarge);
        assert_eq!(large.monthly_cost, Some(Usd::from_cents(29_200)));
        assert_eq!(xlarge.monthly_cost, Some(Usd::from_cents(58_400)));
        assert_eq!(large.cost_source, CostSource::Allocated);
        // The shares of a month of running add up to the pool's spend.
        assert_eq!(
            large.monthly_cost.unwrap() + xlarge.monthly_cost.unwrap(),
            Usd::from_cents(87_600)
        );
        // An actual cost wins over a share; a size without a factor is left unknown.
        book.add_actual("i-1", Usd::from_cents(100));
        let mut again = instance("i-1", "m5.large");
        book.price(&mut again);
        assert_eq!(
            (again.monthly_cost, again.cost_source),
            (Some(Usd::from_cents(100)), CostSource::Actual)
        );
        let mut metal = instance("i-3", "m5.metal");
        book.price(&mut metal);
        assert_eq!(
            (metal.monthly_cost, metal.cost_source),
            (None, CostSource::Unknown)
        );
    }

    #[test]
    fn fourteen_days_scale_to_730_hours() {
        // $14 over 14 days is $1 a day: 730 / 24 days a month.
        assert_eq!(
            monthly_of_days(Usd::from_cents(1_400), 14),
            Some(Usd::from_micros(30_416_667))
        );
        assert_eq!(
            monthly_of_days(Usd::from_cents(-2_400), 24),
            Some(Usd::from_micros(-30_416_667))
        );
        assert_eq!(monthly_of_days(Usd::from_cents(1), 0), None);
    }
}
