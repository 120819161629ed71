//! Cost Explorer through the official SDK (`aws-sdk-costexplorer`): `GetCostAndUsage` pages
//! and `ListCostAllocationTags`, with the AWS source's credentials, endpoint settings
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_COST_EXPLORER`), retries and timeouts, paced by a
//! limiter of its own (`rate_limits.ce`) that slows down when Cost Explorer throttles.
//!
//! Amounts arrive as decimal strings and are parsed exactly; an amount in another currency
//! than USD, or a group without the metric asked for, is an error rather than a guess.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use aws_sdk_costexplorer as ce;
use ce::types::{
    DateInterval, DimensionValues, Expression, GroupDefinition, GroupDefinitionType, TagValues,
};
use chrono::NaiveDate;

use super::CostSource;
use super::gap::Activation;
use super::query::{
    CostGroup, CostPage, CostQuery, CostSlice, Dimension, Filter, GroupKey, NORMALIZED_USAGE,
    Period,
};
use crate::config::{PacingConfig, RateLimit, RetryConfig};
use crate::domain::{ScanIssueKind, Usd};
use crate::engine::AdaptiveLimiter;
use crate::source::aws::{AwsOptions, classify};
use crate::source::{ApiCallCounter, SourceError};

/// What one Cost Explorer request costs (each page is one).
pub const PRICE_PER_REQUEST: Usd = Usd::from_cents(1);

/// Keys `ListCostAllocationTags` takes at once.
const TAG_KEYS_PER_CALL: usize = 100;

/// Pages of `ListCostAllocationTags` one check reads at most (100 keys fit one page).
const MAX_TAG_PAGES: usize = 20;

/// Cost Explorer.
pub struct ExplorerSource {
    client: ce::Client,
    /// For the caller's identity (STS), once.
    config: SdkConfig,
    identity: tokio::sync::OnceCell<String>,
    limiter: AdaptiveLimiter,
    retries: RetryConfig,
    calls: ApiCallCounter,
    name: String,
}

impl ExplorerSource {
    /// Cost Explorer with the standard chain's credentials and the options' retries and
    /// timeouts.
    pub async fn new(
        options: &AwsOptions,
        limit: RateLimit,
        pacing: &PacingConfig,
    ) -> ExplorerSource {
        ExplorerSource::with_config(options.sdk_config().await, options.retries, limit, pacing)
    }

    /// Cost Explorer on an explicit SDK configuration. Any region of the partition resolves
    /// to its one endpoint, but one must be set: the chain's, else `us-east-1`.
    pub fn with_config(
        config: SdkConfig,
        retries: RetryConfig,
        limit: RateLimit,
        pacing: &PacingConfig,
    ) -> ExplorerSource {
        let config = if config.region().is_none() {
            config.to_builder().region(Region::new("us-east-1")).build()
        } else {
            config
        };
        // The endpoint without any user or password it may carry: the name keys the cache.
        let endpoint = config.endpoint_url().map_or_else(
            || "aws".to_string(),
            |url| match url.split_once("://") {
                Some((scheme, rest)) => {
                    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                    format!("{scheme}://{host}")
                }
                None => url.to_string(),
            },
        );
        let name = format!("cost-explorer:{endpoint}");
        ExplorerSource {
            client: ce::Client::new(&config),
            config,
            identity: tokio::sync::OnceCell::new(),
            limiter: AdaptiveLimiter::new(limit, pacing),
            retries,
            calls: ApiCallCounter::default(),
            name,
        }
    }

    /// Makes a call paced by the limiter; a call failing past the SDK's retries with "try
    /// later" is made again after a backoff (throttling also slows the limiter).
    async fn paced<T, F, Fut>(&self, call: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        self.paced_with(&self.retries, call).await
    }

    /// As [`ExplorerSource::paced`], with the SDK's retries only: for resource-level data,
    /// whose failures (an account not opted in) do not pass with time, and which a scan
    /// waits for.
    async fn paced_once<T, F, Fut>(&self, call: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        let once = RetryConfig {
            page_retries: 0,
            ..self.retries
        };
        self.paced_with(&once, call).await
    }

    async fn paced_with<T, F, Fut>(
        &self,
        retries: &RetryConfig,
        mut call: F,
    ) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        crate::source::backoff::retrying(retries, &self.calls, None, || {
            let attempt = call();
            async move {
                self.limiter.until_ready().await;
                let outcome = attempt.await;
                if let Err(error) = &outcome
                    && error.kind == ScanIssueKind::Throttled
                {
                    self.limiter.throttled();
                }
                outcome
            }
        })
        .await
    }
}

fn dimension(dimension: Dimension) -> ce::types::Dimension {
    match dimension {
        Dimension::RecordType => ce::types::Dimension::RecordType,
        Dimension::Service => ce::types::Dimension::Service,
        Dimension::Region => ce::types::Dimension::Region,
        Dimension::LinkedAccount => ce::types::Dimension::LinkedAccount,
        Dimension::ResourceId => ce::types::Dimension::ResourceId,
    }
}

/// The SDK expression of a filter.
pub fn expression(filter: &Filter) -> Expression {
    match filter {
        Filter::And(parts) => Expression::builder()
            .set_and(Some(parts.iter().map(expression).collect()))
            .build(),
        Filter::Dimension(key, values) => Expression::builder()
            .dimensions(
                DimensionValues::builder()
                    .key(dimension(*key))
                    .set_values(Some(values.clone()))
                    .build(),
            )
            .build(),
        Filter::Tag(key, values) => Expression::builder()
            .tags(
                TagValues::builder()
                    .key(key)
                    .set_values(Some(values.clone()))
                    .build(),
            )
            .build(),
    }
}

/// What a `GetCostAndUsage`-shaped request is made of, built once for all its attempts.
struct Parts {
    period: DateInterval,
    granularity: ce::types::Granularity,
    filter: Option<Expression>,
    group_by: Option<Vec<GroupDefinition>>,
    metrics: Vec<String>,
}

impl Parts {
    fn of(query: &CostQuery) -> Result<Parts, SourceError> {
        Ok(Parts {
            period: DateInterval::builder()
                .start(query.period.start.to_string())
                .end(query.period.end.to_string())
                .build()
                .map_err(|e| bad_answer(e.to_string()))?,
            granularity: match query.granularity {
                super::Granularity::Monthly => ce::types::Granularity::Monthly,
                super::Granularity::Daily => ce::types::Granularity::Daily,
            },
            filter: query.filter.as_ref().map(expression),
            group_by: (!query.group_by.is_empty())
                .then(|| query.group_by.iter().map(group_definition).collect()),
            metrics: metrics_of(query),
        })
    }
}

/// Sets `parts` and the page `token` on a request builder of either operation (their
/// builders are different types with the same setters).
macro_rules! with_parts {
    ($builder:expr, $parts:expr, $token:expr) => {
        $builder
            .time_period($parts.period.clone())
            .granularity($parts.granularity.clone())
            .set_filter($parts.filter.clone())
            // Metrics take the CamelCase names (the `Metric` enum is for forecasts).
            .set_metrics(Some($parts.metrics.clone()))
            .set_group_by($parts.group_by.clone())
            .set_next_page_token($token.clone())
    };
}

/// The metrics a query asks: its money metric, and normalised usage when it wants it.
fn metrics_of(query: &CostQuery) -> Vec<String> {
    let mut metrics = vec![query.metric.ce_name().to_string()];
    if query.with_usage {
        metrics.push(NORMALIZED_USAGE.to_string());
    }
    metrics
}

fn group_definition(key: &GroupKey) -> GroupDefinition {
    match key {
        GroupKey::Dimension(d) => GroupDefinition::builder()
            .r#type(GroupDefinitionType::Dimension)
            .key(d.ce_name())
            .build(),
        GroupKey::Tag(tag) => GroupDefinition::builder()
            .r#type(GroupDefinitionType::Tag)
            .key(tag)
            .build(),
    }
}

fn bad_answer(message: String) -> SourceError {
    SourceError::new(
        ScanIssueKind::Other,
        format!("ce:GetCostAndUsage: {message}"),
    )
}

/// An amount of `metric` in `metrics`, exactly; `None` when the map is empty.
fn amount(
    metrics: Option<&std::collections::HashMap<String, ce::types::MetricValue>>,
    metric: &str,
    what: &str,
) -> Result<Option<Usd>, SourceError> {
    let Some(metrics) = metrics.filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    let value = metrics.get(metric).ok_or_else(|| {
        bad_answer(format!("{what} has no {metric} amount (it has {:?})", {
            let mut names: Vec<&String> = metrics.keys().collect();
            names.sort();
            names
        }))
    })?;
    if let Some(unit) = value.unit()
        && !unit.eq_ignore_ascii_case("USD")
    {
        return Err(bad_answer(format!(
            "{what} is in {unit}; tagguard sums USD only"
        )));
    }
    let text = value
        .amount()
        .ok_or_else(|| bad_answer(format!("{what} has no {metric} amount")))?;
    text.parse::<Usd>()
        .map(Some)
        .map_err(|e| bad_answer(format!("{what}: {e}")))
}

fn date(text: &str) -> Result<NaiveDate, SourceError> {
    NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d")
        .map_err(|_| bad_answer(format!("'{text}' is not a date")))
}

/// The page an SDK answer holds, for `query`.
pub fn page_of(
    out: &ce::operation::get_cost_and_usage::GetCostAndUsageOutput,
    query: &CostQuery,
) -> Result<CostPage, SourceError> {
    page_from(out.results_by_time(), out.next_page_token(), query)
}

/// The page of a resource-level answer, for `query`.
pub fn resource_page_of(
    out: &ce::operation::get_cost_and_usage_with_resources::GetCostAndUsageWithResourcesOutput,
    query: &CostQuery,
) -> Result<CostPage, SourceError> {
    page_from(out.results_by_time(), out.next_page_token(), query)
}

fn page_from(
    results: &[ce::types::ResultByTime],
    next_page_token: Option<&str>,
    query: &CostQuery,
) -> Result<CostPage, SourceError> {
    let metric = query.metric.ce_name();
    let mut slices = Vec::with_capacity(results.len());
    for result in results {
        let period = match result.time_period() {
            Some(p) => Period::new(date(p.start())?, date(p.end())?).ok_or_else(|| {
                bad_answer(format!("empty time period {}..{}", p.start(), p.end()))
            })?,
            None => query.period,
        };
        let mut groups = Vec::with_capacity(result.groups().len());
        for group in result.groups() {
            let keys: Vec<String> = group.keys().to_vec();
            if keys.len() != query.group_by.len() {
                return Err(bad_answer(format!(
                    "a group has {} keys for {} groupings: {keys:?}",
                    keys.len(),
                    query.group_by.len()
                )));
            }
            let value = amount(group.metrics(), metric, &format!("group {keys:?}"))?
                .ok_or_else(|| bad_answer(format!("group {keys:?} has no amounts")))?;
            let usage = if query.with_usage {
                // A quantity, not money: no unit to check; missing means none was used.
                let value = group
                    .metrics()
                    .and_then(|m| m.get(NORMALIZED_USAGE))
                    .and_then(|v| v.amount())
                    .unwrap_or("0");
                Some(value.parse::<Usd>().map_err(|e| {
                    bad_answer(format!("the {NORMALIZED_USAGE} of group {keys:?}: {e}"))
                })?)
            } else {
                None
            };
            groups.push(CostGroup {
                keys,
                amount: value,
                usage,
            });
        }
        slices.push(CostSlice {
            period,
            estimated: result.estimated(),
            total: amount(result.total(), metric, &format!("the total of {period}"))?,
            groups,
        });
    }
    Ok(CostPage {
        slices,
        next_token: next_page_token
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    })
}

#[async_trait]
impl CostSource for ExplorerSource {
    fn kind(&self) -> &'static str {
        "cost_explorer"
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn price_per_request(&self) -> Usd {
        PRICE_PER_REQUEST
    }

    async fn billing_key(&self) -> Result<String, SourceError> {
        self.identity
            .get_or_try_init(|| async {
                let out = self
                    .paced_once(|| {
                        let request = aws_sdk_sts::Client::new(&self.config).get_caller_identity();
                        async move {
                            request
                                .send()
                                .await
                                .map_err(|e| classify("sts:GetCallerIdentity", e))
                        }
                    })
                    .await?;
                Ok(format!("{}|{}", self.name, out.account().unwrap_or("")))
            })
            .await
            .cloned()
    }

    async fn cost_and_usage(
        &self,
        query: &CostQuery,
        token: Option<String>,
    ) -> Result<CostPage, SourceError> {
        let parts = Parts::of(query)?;
        let out = self
            .paced(|| {
                let request = with_parts!(self.client.get_cost_and_usage(), parts, token);
                async move {
                    request
                        .send()
                        .await
                        .map_err(|e| classify("ce:GetCostAndUsage", e))
                }
            })
            .await?;
        page_of(&out, query)
    }

    async fn cost_and_usage_with_resources(
        &self,
        query: &CostQuery,
        token: Option<String>,
    ) -> Result<CostPage, SourceError> {
        let parts = Parts::of(query)?;
        let out = self
            .paced_once(|| {
                let request = with_parts!(
                    self.client.get_cost_and_usage_with_resources(),
                    parts,
                    token
                );
                async move {
                    request
                        .send()
                        .await
                        .map_err(|e| classify("ce:GetCostAndUsageWithResources", e))
                }
            })
            .await?;
        resource_page_of(&out, query)
    }

    async fn allocation_tags(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, Activation>, SourceError> {
        // Keys billing has never seen are not listed: inactive.
        let mut status: BTreeMap<String, Activation> = keys
            .iter()
            .map(|k| (k.clone(), Activation::Inactive))
            .collect();
        for chunk in keys.chunks(TAG_KEYS_PER_CALL) {
            let mut token: Option<String> = None;
            let mut pages = 0usize;
            loop {
                let out = self
                    .paced_once(|| {
                        let request = self
                            .client
                            .list_cost_allocation_tags()
                            .set_tag_keys(Some(chunk.to_vec()))
                            .r#type(ce::types::CostAllocationTagType::UserDefined)
                            .max_results(1000)
                            .set_next_token(token.clone());
                        async move {
                            request
                                .send()
                                .await
                                .map_err(|e| classify("ce:ListCostAllocationTags", e))
                        }
                    })
                    .await?;
                for tag in out.cost_allocation_tags() {
                    // Keys are case-sensitive: only the exact key counts.
                    if let Some(entry) = status.get_mut(tag.tag_key()) {
                        *entry = match tag.status() {
                            ce::types::CostAllocationTagStatus::Active => Activation::Active,
                            _ => Activation::Inactive,
                        };
                    }
                }
                let next = out
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                pages += 1;
                if next.is_some() && (next == token || pages >= MAX_TAG_PAGES) {
                    return Err(bad_answer(format!(
                        "ce:ListCostAllocationTags gave a repeated page token or more than {MAX_TAG_PAGES} pages"
                    )));
                }
                token = next;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::query::{Granularity, Metric, range};
    use ce::operation::get_cost_and_usage::GetCostAndUsageOutput;
    use ce::types::{Group, MetricValue, ResultByTime};

    fn query(group_by: Vec<GroupKey>) -> CostQuery {
        CostQuery {
            period: range("2026-11-01", "2026-12-01").unwrap(),
            granularity: Granularity::Monthly,
            metric: Metric::AmortizedCost,
            filter: None,
            group_by,
            with_usage: false,
        }
    }

    fn value(amount: &str, unit: &str) -> MetricValue {
        MetricValue::builder().amount(amount).unit(unit).build()
    }

    fn result(groups: Vec<Group>) -> ResultByTime {
        ResultByTime::builder()
            .time_period(
                DateInterval::builder()
                    .start("2026-11-01")
                    .end("2026-12-01")
                    .build()
                    .unwrap(),
            )
            .set_groups(Some(groups))
            .estimated(false)
            .build()
    }

    #[test]
    fn amounts_parse_exactly_and_keys_keep_their_dollars() {
        let out = GetCostAndUsageOutput::builder()
            .results_by_time(result(vec![
                Group::builder()
                    .keys("AWS Lambda")
                    .keys("CostCenter$a$b")
                    .metrics("AmortizedCost", value("0.1000000001", "USD"))
                    .build(),
                Group::builder()
                    .keys("Tax")
                    .keys("CostCenter$")
                    .metrics("AmortizedCost", value("-12.345678", "USD"))
                    .build(),
            ]))
            .next_page_token("p2")
            .build();
        let q = query(vec![
            GroupKey::Dimension(Dimension::Service),
            GroupKey::Tag("CostCenter".into()),
        ]);
        let page = page_of(&out, &q).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("p2"));
        let groups = &page.slices[0].groups;
        assert_eq!(groups[0].amount, Usd::from_micros(100_000));
        assert_eq!(groups[0].keys[1], "CostCenter$a$b");
        assert_eq!(groups[1].amount, Usd::from_micros(-12_345_678));
        assert_eq!(page.slices[0].total, None);
    }

    #[test]
    fn an_ungrouped_answer_has_its_total_and_no_groups() {
        let out = GetCostAndUsageOutput::builder()
            .results_by_time(
                ResultByTime::builder()
                    .time_period(
                        DateInterval::builder()
                            .start("2026-12-01")
                            .end("2026-12-02")
                            .build()
                            .unwrap(),
                    )
                    .total("AmortizedCost", value("12.5", "USD"))
                    .estimated(true)
                    .build(),
            )
            .build();
        let page = page_of(&out, &query(vec![])).unwrap();
        let slice = &page.slices[0];
        assert_eq!(slice.total, Some(Usd::from_cents(1_250)));
        assert!(slice.groups.is_empty() && slice.estimated);
        assert_eq!(page.next_token, None);
        // A total without its amount is an error, not $0.
        let blank = GetCostAndUsageOutput::builder()
            .results_by_time(
                ResultByTime::builder()
                    .total("AmortizedCost", MetricValue::builder().unit("USD").build())
                    .build(),
            )
            .build();
        assert!(
            page_of(&blank, &query(vec![]))
                .unwrap_err()
                .message
                .contains("no AmortizedCost amount")
        );
    }

    #[test]
    fn another_currency_or_metric_is_an_error_not_a_number() {
        let q = query(vec![GroupKey::Dimension(Dimension::Service)]);
        let euros = GetCostAndUsageOutput::builder()
            .results_by_time(result(vec![
                Group::builder()
                    .keys("AWS Lambda")
                    .metrics("AmortizedCost", value("1", "EUR"))
                    .build(),
            ]))
            .build();
        assert!(page_of(&euros, &q).unwrap_err().message.contains("EUR"));
        let other_metric = GetCostAndUsageOutput::builder()
            .results_by_time(result(vec![
                Group::builder()
                    .keys("AWS Lambda")
                    .metrics("UnblendedCost", value("1", "USD"))
                    .build(),
            ]))
            .build();
        assert!(
            page_of(&other_metric, &q)
                .unwrap_err()
                .message
                .contains("no AmortizedCost")
        );
    }

    #[test]
    fn filters_become_one_expression_each() {
        let filter = Filter::And(vec![
            Filter::Dimension(Dimension::RecordType, vec!["Usage".into()]),
            Filter::Tag("CostCenter".into(), vec!["cc-1".into(), "cc-2".into()]),
        ]);
        let e = expression(&filter);
        assert_eq!(e.and().len(), 2);
        assert!(e.dimensions().is_none() && e.tags().is_none());
        assert_eq!(e.and()[1].tags().unwrap().values(), ["cc-1", "cc-2"]);
        assert_eq!(
            e.and()[0].dimensions().unwrap().key(),
            Some(&ce::types::Dimension::RecordType)
        );
    }
}
