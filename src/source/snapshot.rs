//! The snapshot source: the JSON that `aws resourcegroupstaggingapi get-resources` prints,
//! read from a file, for offline scans.
//!
//! Accepted: one object with `ResourceTagMappingList` (`ResourceARN` + `Tags`), or an array of
//! such objects (pages saved one by one). A resource with an empty or absent tag list counts as
//! untagged. Optional per-resource fields tagguard understands beyond AWS's own:
//! `Region` (for ARNs without one, such as S3 buckets), `AccountId` (likewise), `Name`,
//! `CreatedAt` (RFC 3339), `MonthlyCost` (USD, a number or a decimal string), `CostSource`
//! (`actual`, `allocated` or `estimated`, the default) and `InstanceType`. Other fields (AWS's
//! `ComplianceDetails`, say) are ignored. An entry whose ARN is malformed becomes an issue of
//! the scan, quoting the ARN; the other entries are scanned.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{FetchContext, Page, ResourceSource, Shard, ShardPlan, SourceError};
use crate::domain::{
    Arn, CostSource, Resource, ResourceAttributes, ScanIssue, ScanIssueKind, ScanScope, Tag, Usd,
};

/// Resources per page handed to the engine.
const PAGE_SIZE: usize = 1_000;

pub use crate::domain::GLOBAL_REGION;

/// Account label for resources whose ARN has no account and whose entry gives none.
pub const UNKNOWN_ACCOUNT: &str = "unknown";

#[derive(Deserialize)]
struct SnapshotPage {
    #[serde(rename = "ResourceTagMappingList")]
    mappings: Vec<Mapping>,
}

#[derive(Deserialize)]
struct Mapping {
    #[serde(rename = "ResourceARN")]
    arn: String,
    #[serde(rename = "Tags", default)]
    tags: Vec<SnapshotTag>,
    #[serde(rename = "Region")]
    region: Option<String>,
    #[serde(rename = "AccountId")]
    account_id: Option<String>,
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "CreatedAt")]
    created_at: Option<DateTime<Utc>>,
    #[serde(rename = "MonthlyCost")]
    monthly_cost: Option<Usd>,
    #[serde(rename = "CostSource")]
    cost_source: Option<CostSource>,
    #[serde(rename = "InstanceType")]
    instance_type: Option<String>,
}

#[derive(Deserialize)]
struct SnapshotTag {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: String,
}

/// A shard's identity in a snapshot: (account, region, service).
type ShardKey = (Arc<str>, Arc<str>, Arc<str>);

/// A snapshot loaded into memory, grouped into shards.
pub struct SnapshotSource {
    name: String,
    shards: BTreeMap<ShardKey, Vec<Resource>>,
    /// Where each ARN is: its shard and position, for lookups.
    by_arn: HashMap<String, (ShardKey, usize)>,
    /// Entries that could not be read (malformed ARNs), reported with every scan.
    rejected: Vec<ScanIssue>,
}

impl SnapshotSource {
    /// Reads and parses the snapshot at `path`.
    pub fn open(path: &Path) -> Result<SnapshotSource, SourceError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            SourceError::new(
                ScanIssueKind::InvalidInput,
                format!(
                    "cannot read snapshot '{shown}': {}",
                    crate::policy::io_reason(&e)
                ),
            )
        })?;
        SnapshotSource::parse(&text, &shown)
    }

    /// Parses snapshot text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<SnapshotSource, SourceError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Dispatch on the first character rather than an untagged enum, so that errors point at
        // the offending field instead of "did not match any variant".
        let invalid = |e: serde_path_to_error::Error<serde_json::Error>| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let field = if field == "." {
                String::new()
            } else {
                format!(", field '{field}'")
            };
            SourceError::new(
                ScanIssueKind::InvalidInput,
                format!(
                    "snapshot '{origin}' at line {}, column {}{field}: {}; expected the output of 'aws resourcegroupstaggingapi get-resources'",
                    inner.line(),
                    inner.column(),
                    crate::policy::humanize(
                        inner
                            .to_string()
                            .split(" at line ")
                            .next()
                            .unwrap_or_default()
                    )
                ),
            )
        };
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let pages: Vec<SnapshotPage> = if text.trim_start().starts_with('[') {
            serde_path_to_error::deserialize(&mut deserializer).map_err(invalid)?
        } else {
            vec![serde_path_to_error::deserialize(&mut deserializer).map_err(invalid)?]
        };
        let mut shards: BTreeMap<ShardKey, Vec<Resource>> = BTreeMap::new();
        let mut rejected = Vec::new();
        let mut interned: BTreeMap<String, Arc<str>> = BTreeMap::new();
        let mut intern = |s: &str| {
            interned
                .entry(s.to_string())
                .or_insert_with(|| Arc::from(s))
                .clone()
        };
        for (entry, mapping) in pages.into_iter().flat_map(|p| p.mappings).enumerate() {
            let arn = match Arn::parse(&mapping.arn) {
                Ok(arn) => arn,
                Err(e) => {
                    rejected.push(ScanIssue::unattributed(
                        ScanIssueKind::InvalidInput,
                        format!(
                            "snapshot '{origin}', entry {} of ResourceTagMappingList: {e}",
                            entry + 1
                        ),
                    ));
                    continue;
                }
            };
            let region = intern(match (arn.region(), &mapping.region) {
                ("", Some(r)) => r,
                ("", None) => GLOBAL_REGION,
                (r, _) => r,
            });
            let account = intern(match (arn.account_id(), &mapping.account_id) {
                ("", Some(a)) => a,
                ("", None) => UNKNOWN_ACCOUNT,
                (a, _) => a,
            });
            if let Some(cost) = mapping.monthly_cost.filter(|c| c.is_negative()) {
                rejected.push(ScanIssue::unattributed(
                    ScanIssueKind::InvalidInput,
                    format!(
                        "snapshot '{origin}', entry {}: MonthlyCost {cost} of '{}' is not a cost; the resource is scanned with its cost unknown",
                        entry + 1,
                        arn.as_str()
                    ),
                ));
            }
            let service = intern(arn.service());
            let resource = Resource {
                resource_type: arn.resource_type(),
                id: arn.resource_id().to_string(),
                arn: arn.as_str().to_string(),
                account_id: account.clone(),
                region: region.clone(),
                name: mapping.name,
                tags: mapping
                    .tags
                    .into_iter()
                    .map(|t| Tag::new(t.key, t.value))
                    .collect(),
                created_at: mapping.created_at,
                monthly_cost: mapping.monthly_cost.filter(|c| !c.is_negative()),
                cost_source: match mapping.monthly_cost.filter(|c| !c.is_negative()) {
                    Some(_) => mapping.cost_source.unwrap_or(CostSource::Estimated),
                    None => CostSource::Unknown,
                },
                attributes: ResourceAttributes {
                    instance_type: mapping.instance_type,
                    ..ResourceAttributes::default()
                },
            };
            shards
                .entry((account, region, service))
                .or_default()
                .push(resource);
        }
        let mut by_arn = HashMap::new();
        for (key, resources) in &shards {
            for (position, resource) in resources.iter().enumerate() {
                by_arn
                    .entry(resource.arn.clone())
                    .or_insert_with(|| (key.clone(), position));
            }
        }
        Ok(SnapshotSource {
            name: format!("file:{origin}"),
            shards,
            by_arn,
            rejected,
        })
    }

    /// The resource of an indexed ARN.
    fn resource(&self, arn: &str) -> &Resource {
        let (key, position) = &self.by_arn[arn];
        &self.shards[key][*position]
    }

    /// Number of resources loaded.
    pub fn len(&self) -> usize {
        self.shards.values().map(Vec::len).sum()
    }

    /// Whether the snapshot holds no resources.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ResourceSource for SnapshotSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn plan(
        &self,
        scope: &ScanScope,
        _cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        let mut shards = Vec::new();
        for ((account, region, service), resources) in &self.shards {
            if !scope.admits_account(account) || !scope.admits_region(region) {
                continue;
            }
            let mut types: Vec<_> = resources
                .iter()
                .map(|r| r.resource_type.clone())
                .filter(|t| scope.admits_type(t))
                .collect();
            types.sort();
            types.dedup();
            if !types.is_empty() {
                shards.push(Shard::new(
                    account.clone(),
                    region.clone(),
                    service.clone(),
                    types,
                ));
            }
        }
        Ok(ShardPlan {
            shards,
            issues: self.rejected.clone(),
            notes: Vec::new(),
        })
    }

    /// Only the shards holding the ARNs asked for, each reading just those.
    async fn plan_lookup(
        &self,
        scope: &ScanScope,
        _cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        let mut wanted: BTreeMap<&ShardKey, Vec<String>> = BTreeMap::new();
        for arn in &scope.arns {
            if let Some((key, position)) = self.by_arn.get(arn)
                && scope.admits(&self.shards[key][*position])
            {
                wanted.entry(key).or_default().push(arn.clone());
            }
        }
        let shards = wanted
            .into_iter()
            .map(|((account, region, service), arns)| {
                let mut shard = Shard::new(account.clone(), region.clone(), service.clone(), {
                    let mut types: Vec<_> = arns
                        .iter()
                        .map(|a| self.resource(a).resource_type.clone())
                        .collect();
                    types.sort();
                    types.dedup();
                    types
                });
                shard.arns = arns;
                shard
            })
            .collect();
        Ok(ShardPlan {
            shards,
            issues: self.rejected.clone(),
            notes: Vec::new(),
        })
    }

    async fn fetch_page(
        &self,
        shard: &Shard,
        token: Option<String>,
        cx: &FetchContext<'_>,
    ) -> Result<Page, SourceError> {
        // No API quota here; the `local` limiter only keeps a runaway scan polite.
        cx.pace(&shard.account_id, &shard.region, "local").await;
        if !shard.arns.is_empty() {
            let offset = super::page_offset(token)? as usize;
            let end = (offset + PAGE_SIZE).min(shard.arns.len());
            return Ok(Page {
                resources: shard.arns[offset.min(end)..end]
                    .iter()
                    .filter(|arn| self.by_arn.contains_key(*arn))
                    .map(|arn| self.resource(arn).clone())
                    .collect(),
                next: (end < shard.arns.len()).then(|| end.to_string()),
                issues: Vec::new(),
            });
        }
        let key = (
            shard.account_id.clone(),
            shard.region.clone(),
            shard.service.clone(),
        );
        let resources = self.shards.get(&key).ok_or_else(|| {
            SourceError::new(
                ScanIssueKind::InvalidInput,
                format!("shard '{shard}' is not in the snapshot"),
            )
        })?;
        let offset = super::page_offset(token)? as usize;
        let end = (offset + PAGE_SIZE).min(resources.len());
        Ok(Page {
            resources: resources[offset.min(end)..end]
                .iter()
                .filter(|r| shard.resource_types.contains(&r.resource_type))
                .cloned()
                .collect(),
            next: (end < resources.len()).then(|| end.to_string()),
            issues: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "PaginationToken": "",
      "ResourceTagMappingList": [
        {"ResourceARN": "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
         "Tags": [{"Key": "CostCenter", "Value": "Sales"}]},
        {"ResourceARN": "arn:aws:s3:::logs-bucket", "Tags": [], "Region": "eu-west-1",
         "AccountId": "123456789012", "MonthlyCost": 12.5},
        {"ResourceARN": "arn:aws:s3:::other-bucket"},
        {"ResourceARN": "not-an-arn", "Tags": []},
        {"ResourceARN": "arn:aws:rds:us-east-1:123456789012:db:orders", "Tags": [],
         "ComplianceDetails": {"NoncompliantKeys": [], "ComplianceStatus": true}}
      ]
    }"#;

    fn scan(source: &SnapshotSource, scope: &ScanScope) -> Vec<Resource> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let calls = crate::source::ApiCallCounter::default();
            let cx = FetchContext::new(&crate::source::Unthrottled, &calls);
            let plan = if scope.arns.is_empty() {
                source.plan(scope, &cx).await.unwrap()
            } else {
                source.plan_lookup(scope, &cx).await.unwrap()
            };
            let mut all = Vec::new();
            for shard in &plan.shards {
                let mut token = None;
                loop {
                    let page = source.fetch_page(shard, token, &cx).await.unwrap();
                    all.extend(page.resources);
                    token = page.next;
                    if token.is_none() {
                        break;
                    }
                }
            }
            all
        })
    }

    #[test]
    fn reads_aws_cli_output_with_extras() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        assert_eq!(source.len(), 4);
        let all = scan(&source, &ScanScope::default());
        let bucket = all.iter().find(|r| r.id == "logs-bucket").unwrap();
        assert_eq!(
            (&*bucket.region, &*bucket.account_id),
            ("eu-west-1", "123456789012")
        );
        assert_eq!(bucket.monthly_cost, Some(Usd::from_cents(1250)));
        assert_eq!(bucket.cost_source, CostSource::Estimated);
        let other = all.iter().find(|r| r.id == "other-bucket").unwrap();
        assert_eq!(
            (&*other.region, &*other.account_id),
            (GLOBAL_REGION, UNKNOWN_ACCOUNT)
        );
        assert!(other.tags.is_empty());
    }

    #[test]
    fn malformed_arn_becomes_an_issue_not_a_failure() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let calls = crate::source::ApiCallCounter::default();
        let cx = FetchContext::new(&crate::source::Unthrottled, &calls);
        let plan = runtime
            .block_on(source.plan(&ScanScope::default(), &cx))
            .unwrap();
        assert_eq!(plan.issues.len(), 1);
        assert!(
            plan.issues[0]
                .message
                .contains("entry 4 of ResourceTagMappingList: 'not-an-arn' is not an ARN")
        );
    }

    #[test]
    fn scope_filters_shards() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        let scope = ScanScope {
            regions: ["us-east-1".to_string()].into(),
            resource_types: [crate::domain::ResourceType::RdsDb].into(),
            ..ScanScope::default()
        };
        let all = scan(&source, &scope);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, "orders");
    }

    #[test]
    fn lookups_read_only_the_arns_asked_for() {
        let source = SnapshotSource::parse(SAMPLE, "s.json").unwrap();
        let scope = ScanScope {
            arns: [
                "arn:aws:rds:us-east-1:123456789012:db:orders".to_string(),
                "arn:aws:s3:::logs-bucket".to_string(),
                "arn:aws:s3:::absent".to_string(),
            ]
            .into(),
            ..ScanScope::default()
        };
        let mut ids: Vec<String> = scan(&source, &scope).into_iter().map(|r| r.id).collect();
        ids.sort();
        assert_eq!(ids, ["logs-bucket", "orders"]);
    }

    #[test]
    fn bad_fields_are_named() {
        let text = r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b", "CreatedAt": "yesterday"}]}"#;
        let err = SnapshotSource::parse(text, "s.json").err().unwrap();
        assert!(
            err.message
                .contains("field 'ResourceTagMappingList[0].CreatedAt'"),
            "{}",
            err.message
        );
        let text = r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b", "MonthlyCost": "twelve"}]}"#;
        let err = SnapshotSource::parse(text, "s.json").err().unwrap();
        assert!(
            err.message
                .contains("field 'ResourceTagMappingList[0].MonthlyCost'")
                && err.message.contains("'twelve' is not an amount of USD"),
            "{}",
            err.message
        );
        let text = r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b", "MonthlyCost": "12.345678", "CostSource": "actual"}]}"#;
        let source = SnapshotSource::parse(text, "s.json").unwrap();
        let all = scan(&source, &ScanScope::default());
        assert_eq!(all[0].monthly_cost, Some(Usd::from_micros(12_345_678)));
        assert_eq!(all[0].cost_source, CostSource::Actual);
        let err = SnapshotSource::parse("{}", "s.json").err().unwrap();
        assert!(
            err.message
                .contains("missing field `ResourceTagMappingList`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn negative_cost_is_an_issue_and_unknown() {
        let text =
            r#"{"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b", "MonthlyCost": -3}]}"#;
        let source = SnapshotSource::parse(text, "s.json").unwrap();
        assert_eq!(source.rejected.len(), 1);
        let all = scan(&source, &ScanScope::default());
        assert_eq!(all[0].monthly_cost, None);
    }

    #[test]
    fn bad_json_names_file_line_and_column() {
        let err = SnapshotSource::parse(
            "{\n \"ResourceTagMappingList\": [ {\"Tags\": []} ]\n}",
            "s.json",
        )
        .err()
        .unwrap();
        assert!(
            err.message.starts_with("snapshot 's.json' at line"),
            "{}",
            err.message
        );
    }
}
