//! The synthetic estate: a deterministic, realistic AWS estate generated against a policy, which
//! records what it injected so tests can compare a scan with ground truth.
//!
//! Every resource is a pure function of `(seed, index)`, so shards generate their slices
//! independently and in parallel, and the same `--size N --seed S` always gives the same estate.
//! The mix: about half compliant; the rest untagged, missing or blank required tags, values
//! outside the allowed list, values of the wrong format, case-only differences in keys or
//! values, bad optional values, and tags that break the naming rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use regex::Regex;

use super::{FetchContext, Page, ResourceSource, Shard, ShardPlan, SourceError};
use crate::domain::{
    CostSource, GroupKind, NetworkObject, Resource, ResourceAttributes, ResourceType,
    ScanIssueKind, ScanScope, Severity, Tag, Usd, ViolationType,
};
use crate::policy::{Policy, eq_ignore_case, is_portable, is_reserved};

/// Size and seed of a synthetic estate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Number of resources.
    pub size: u64,
    /// Seed: the same seed gives the same estate.
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            size: 2_000,
            seed: 42,
        }
    }
}

/// Resources per page, as a generous AWS API would page.
const PAGE_SIZE: u64 = 1_000;

/// Accounts of the demo organisation and their share of resources.
const ACCOUNTS: [(&str, u64); 3] = [
    ("123456789012", 50),
    ("234567890123", 30),
    ("345678901234", 20),
];

/// Regions and their share of resources.
const REGIONS: [(&str, u64); 3] = [("us-east-1", 55), ("us-west-2", 30), ("eu-west-1", 15)];

/// Resource types and their share of resources.
const TYPES: [(ResourceType, u64); 5] = [
    (ResourceType::Ec2Instance, 35),
    (ResourceType::RdsDb, 10),
    (ResourceType::S3Bucket, 15),
    (ResourceType::LambdaFunction, 25),
    (ResourceType::EcsService, 15),
];

const APPS: [&str; 10] = [
    "checkout",
    "payments",
    "search",
    "inventory",
    "analytics",
    "auth",
    "notifications",
    "reporting",
    "catalog",
    "shipping",
];

/// Teams of the demo organisation. Each application belongs to one (`APP_TEAMS`), and the
/// tags a team decides (cost centre, owner) follow it, with the noise of real estates: some
/// resources carry another team's values (shared infrastructure, a transfer nobody retagged).
const TEAMS: [&str; 6] = [
    "retail",
    "payments-team",
    "growth",
    "data-eng",
    "security",
    "platform",
];

/// The team of each of `APPS`.
const APP_TEAMS: [usize; 10] = [0, 1, 2, 0, 3, 4, 5, 3, 0, 5];

/// Deployment stages: the canonical name and the short form names and stacks use.
const STAGES: [(&str, &str); 4] = [
    ("production", "prod"),
    ("staging", "stg"),
    ("development", "dev"),
    ("test", "test"),
];

/// Per account: the percentage of its resources in each of `STAGES` (accounts are mostly one
/// stage, as organisations split them, but not only).
const ACCOUNT_STAGES: [[u64; 4]; 3] = [[82, 18, 0, 0], [0, 55, 0, 45], [0, 0, 85, 15]];

/// Subnets per VPC; they are shared by every team of the VPC.
const SUBNETS_PER_VPC: u64 = 3;

/// Percentage of resources carrying another team's values.
const OTHER_TEAM_PERCENT: u64 = 8;

/// Percentage of required tags set to a random valid value (a person's slip).
const SLIP_PERCENT: u64 = 3;

/// Candidate values for tags whose policy has a regex but no allowed list; those matching the
/// regex become the tag's valid values.
const VALUE_CANDIDATES: [&str; 16] = [
    "ana.silva@example.com",
    "platform-team@example.com",
    "j.doe@example.com",
    "data-eng@example.com",
    "finops@example.com",
    "checkout",
    "payments-api",
    "search",
    "inventory-sync",
    "analytics",
    "CC-1001",
    "CC-2040",
    "Engineering",
    "team-alpha",
    "2024",
    "web",
];

/// Values that are wrong for most allowed lists (checked against each list at construction).
const NOT_ALLOWED_CANDIDATES: [&str; 6] = ["unknown", "tbd", "legacy", "misc", "default", "temp"];

/// Values that fail most format rules (checked against each regex at construction).
const BAD_FORMAT_CANDIDATES: [&str; 6] =
    ["nobody", "john.smith", "Team Alpha", "x", "TBD", "CC_99"];

/// Instance types and their monthly on-demand cost in cents (us-east-1, Linux).
const INSTANCE_TYPES: [(&str, i64); 6] = [
    ("t3.micro", 759),
    ("t3.medium", 3_037),
    ("m5.large", 7_008),
    ("m5.xlarge", 14_016),
    ("c5.2xlarge", 24_820),
    ("r5.large", 9_198),
];

/// DB instance classes and their monthly cost in cents.
const DB_CLASSES: [(&str, i64); 4] = [
    ("db.t3.micro", 1_241),
    ("db.t3.medium", 4_964),
    ("db.m5.large", 12_483),
    ("db.r6g.xlarge", 34_748),
];

/// One violation the generator injected (or knows will follow from what it generated).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpectedViolation {
    /// The resource.
    pub resource_arn: String,
    /// What is wrong.
    pub violation_type: ViolationType,
    /// The tag (policy spelling; the resource's key for naming rules).
    pub tag_name: String,
    /// Its severity.
    pub severity: Severity,
}

/// What the estate holds, as the generator intended it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroundTruth {
    /// Per type: resources and compliant resources.
    pub by_type: BTreeMap<ResourceType, (u64, u64)>,
    /// Every violation, sorted.
    pub violations: Vec<ExpectedViolation>,
}

/// A compiled plan for one required tag of the policy.
struct RulePlan {
    name: Arc<str>,
    applies_to: crate::policy::TypeSet,
    allowed: Option<Arc<[String]>>,
    regex: Option<Regex>,
    /// Without case sensitivity, the regex as written (see `CompiledRequired`).
    regex_exact_case: Option<Regex>,
    valid: Vec<String>,
    not_allowed: Vec<String>,
    bad_format: Vec<String>,
    /// What decides the tag's value in this estate.
    driver: Driver,
}

/// What decides a required tag's value: the stage, the application, or the team (guessed
/// from the tag's name, so any policy gets a structured estate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Stage,
    Application,
    Team,
}

impl Driver {
    fn of(tag: &str) -> Driver {
        let name = tag.to_lowercase();
        if ["env", "stage", "tier"].iter().any(|w| name.contains(w)) {
            Driver::Stage
        } else if ["app", "service", "workload", "product", "project", "system"]
            .iter()
            .any(|w| name.contains(w))
        {
            Driver::Application
        } else {
            Driver::Team
        }
    }
}

/// Where a resource sits in the organisation: what its tags, names, stack and network follow.
struct Placement {
    app: usize,
    team: usize,
    stage: usize,
    vpc: String,
}

impl RulePlan {
    fn applies(&self, resource_type: &ResourceType) -> bool {
        self.applies_to.contains(resource_type)
    }
}

/// A compiled plan for one optional tag.
struct OptionalPlan {
    name: Arc<str>,
    allowed: Option<Arc<[String]>>,
    not_allowed: Vec<String>,
}

/// The contiguous range of resource indices one shard generates.
#[derive(Debug, Clone)]
struct Slice {
    shard: Shard,
    resource_type: ResourceType,
    start: u64,
    count: u64,
}

/// The synthetic source.
pub struct SyntheticSource {
    spec: SyntheticSpec,
    slices: Vec<Slice>,
    generator: Generator,
}

struct Generator {
    seed: u64,
    required: Vec<RulePlan>,
    optional: Vec<OptionalPlan>,
    ignore_case: bool,
    max_key_length: usize,
    max_value_length: usize,
    allow_special: bool,
    /// Extra keys the generator adds, unless they collide with a policy tag name.
    name_key: Option<&'static str>,
    notes_key: Option<&'static str>,
    special_key: Option<&'static str>,
    /// Every policy tag name, to avoid generating a key variant that is another tag.
    policy_names: Vec<Arc<str>>,
}

/// Where the generated creation times count back from, so the estate is the same every day.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("a valid fixed date")
}

impl SyntheticSource {
    /// An estate of `spec.size` resources generated against `policy`.
    pub fn new(spec: SyntheticSpec, policy: Arc<Policy>) -> Result<SyntheticSource, SourceError> {
        let generator = Generator::new(spec.seed, &policy)?;
        Ok(SyntheticSource {
            spec,
            slices: plan_slices(spec.size),
            generator,
        })
    }

    /// Every resource in scope, generated straight from the estate's definition (not through
    /// a scan): what tests compare a scan's analyses with.
    pub fn resources(&self, scope: &ScanScope) -> Vec<Resource> {
        self.resources_iter(scope).collect()
    }

    /// Every resource in scope, one at a time, in the estate's order: for consumers that must
    /// not hold a large estate at once (the demo's billing).
    pub fn resources_iter<'a>(
        &'a self,
        scope: &'a ScanScope,
    ) -> impl Iterator<Item = Resource> + 'a {
        self.slices
            .iter()
            .filter(move |s| slice_in_scope(s, scope))
            .flat_map(move |slice| {
                (slice.start..slice.start + slice.count)
                    .map(move |index| self.generator.generate(index, slice, None))
            })
    }

    /// Every resource in scope, with what the generator injected into each.
    pub fn ground_truth(&self, scope: &ScanScope) -> GroundTruth {
        let mut truth = GroundTruth::default();
        let mut expected = Vec::new();
        for slice in self.slices.iter().filter(|s| slice_in_scope(s, scope)) {
            for index in slice.start..slice.start + slice.count {
                expected.clear();
                let resource = self.generator.generate(index, slice, Some(&mut expected));
                let counts = truth
                    .by_type
                    .entry(resource.resource_type.clone())
                    .or_default();
                counts.0 += 1;
                if !expected.iter().any(|e| e.1 == Severity::Error) {
                    counts.1 += 1;
                }
                for (violation_type, severity, tag_name) in expected.drain(..) {
                    truth.violations.push(ExpectedViolation {
                        resource_arn: resource.arn.clone(),
                        violation_type,
                        tag_name,
                        severity,
                    });
                }
            }
        }
        truth.violations.sort();
        truth
    }

    /// Every resource in scope with the tags it carried before the generator injected its
    /// violations: the values a missing or broken tag was meant to have (what suggestions
    /// are judged against).
    pub fn intended_tags(&self, scope: &ScanScope) -> BTreeMap<String, Vec<Tag>> {
        let mut intended = BTreeMap::new();
        for slice in self.slices.iter().filter(|s| slice_in_scope(s, scope)) {
            for index in slice.start..slice.start + slice.count {
                let mut tags = Vec::new();
                let resource = self
                    .generator
                    .generate_with(index, slice, None, Some(&mut tags));
                intended.insert(resource.arn, tags);
            }
        }
        intended
    }

    fn slice_of(&self, shard: &Shard) -> Option<&Slice> {
        self.slices.iter().find(|s| &s.shard == shard)
    }
}

fn slice_in_scope(slice: &Slice, scope: &ScanScope) -> bool {
    scope.admits_type(&slice.resource_type)
        && scope.admits_region(&slice.shard.region)
        && scope.admits_account(&slice.shard.account_id)
}

/// Splits `size` resources over account × region × type by weight (largest remainder), so the
/// slices are contiguous index ranges that add up to `size` exactly.
fn plan_slices(size: u64) -> Vec<Slice> {
    let mut cells = Vec::new();
    for (account, aw) in ACCOUNTS {
        for (region, rw) in REGIONS {
            for (resource_type, tw) in TYPES.iter() {
                cells.push((account, region, resource_type.clone(), aw * rw * tw));
            }
        }
    }
    let total_weight: u64 = cells.iter().map(|c| c.3).sum();
    let mut counts: Vec<u64> = cells.iter().map(|c| size * c.3 / total_weight).collect();
    let assigned: u64 = counts.iter().sum();
    let mut remainders: Vec<(u64, usize)> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| ((size * c.3) % total_weight, i))
        .collect();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.iter().take((size - assigned) as usize) {
        counts[*i] += 1;
    }
    let mut start = 0;
    let mut slices = Vec::with_capacity(cells.len());
    for ((account, region, resource_type, _), count) in cells.into_iter().zip(counts) {
        slices.push(Slice {
            shard: Shard::new(
                account,
                region,
                resource_type.service(),
                vec![resource_type.clone()],
            ),
            resource_type,
            start,
            count,
        });
        start += count;
    }
    slices
}

#[async_trait]
impl ResourceSource for SyntheticSource {
    /// `demo` for the default estate; other sizes and seeds are other estates, and their
    /// history and cache must not mix with it: `demo:size=300,seed=7`.
    fn name(&self) -> String {
        if self.spec == SyntheticSpec::default() {
            "demo".to_string()
        } else {
            format!("demo:size={},seed={}", self.spec.size, self.spec.seed)
        }
    }

    async fn plan(
        &self,
        scope: &ScanScope,
        _cx: &FetchContext<'_>,
    ) -> Result<ShardPlan, SourceError> {
        Ok(ShardPlan {
            shards: self
                .slices
                .iter()
                .filter(|s| slice_in_scope(s, scope))
                .map(|s| s.shard.clone())
                .collect(),
            issues: Vec::new(),
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
        let slice = self.slice_of(shard).ok_or_else(|| {
            SourceError::new(
                ScanIssueKind::InvalidInput,
                format!("shard '{shard}' is not part of the demo estate"),
            )
        })?;
        let offset = super::page_offset(token)?;
        let end = (offset + PAGE_SIZE).min(slice.count);
        let resources = (offset..end)
            .map(|i| self.generator.generate(slice.start + i, slice, None))
            .collect();
        Ok(Page {
            resources,
            next: (end < slice.count).then(|| end.to_string()),
            issues: Vec::new(),
        })
    }

    /// One VPC per stage the account runs, named after it (`prod-vpc`), six in ten of them
    /// tagged with the stage's tags; three subnets in each (`prod-private-a`).
    async fn network(
        &self,
        account: &str,
        region: &str,
        _cx: &FetchContext<'_>,
    ) -> Result<Vec<NetworkObject>, SourceError> {
        let Some(account_index) = ACCOUNTS.iter().position(|(a, _)| *a == account) else {
            return Ok(Vec::new());
        };
        if !REGIONS.iter().any(|(r, _)| *r == region) {
            return Ok(Vec::new());
        }
        let mut objects = Vec::new();
        for (stage, share) in ACCOUNT_STAGES[account_index].iter().enumerate() {
            if *share == 0 {
                continue;
            }
            let short = STAGES[stage].1;
            let vpc = vpc_of(account, region, stage);
            let mut tags = vec![Tag::new("Name", format!("{short}-vpc"))];
            if hash_str(&vpc) % 10 < 6 {
                for rule in self.generator.required.iter() {
                    if rule.driver == Driver::Stage {
                        tags.push(Tag::new(&*rule.name, stage_value(rule, stage)));
                    }
                }
            }
            for k in 0..SUBNETS_PER_VPC {
                let name = format!("{short}-private-{}", ["a", "b", "c"][k as usize % 3]);
                objects.push(NetworkObject {
                    kind: GroupKind::Subnet,
                    account_id: account.into(),
                    region: region.into(),
                    id: subnet_of(&vpc, k),
                    name: Some(name.clone()),
                    tags: vec![Tag::new("Name", name)],
                });
            }
            objects.push(NetworkObject {
                kind: GroupKind::Vpc,
                account_id: account.into(),
                region: region.into(),
                id: vpc,
                name: Some(format!("{short}-vpc")),
                tags,
            });
        }
        Ok(objects)
    }
}

/// Expectations collected while generating: (type, severity, tag name).
type Expectations = Vec<(ViolationType, Severity, String)>;

impl Generator {
    fn new(seed: u64, policy: &Policy) -> Result<Generator, SourceError> {
        let naming = policy.naming();
        let ignore_case = !naming.case_sensitivity;
        let mut required = Vec::new();
        for rule in policy.required_tags() {
            let regex = rule.regex.as_ref().map(|(r, _)| r.clone());
            let regex_exact_case = rule.regex_exact_case.clone();
            // Valid values pass the regex as written, case included.
            let matches = |v: &str| {
                regex_exact_case
                    .as_ref()
                    .or(regex.as_ref())
                    .is_none_or(|r| r.is_match(v))
            };
            let valid: Vec<String> = match &rule.allowed_values {
                Some(values) => values.to_vec(),
                None => VALUE_CANDIDATES
                    .iter()
                    .filter(|v| matches(v))
                    .map(|v| v.to_string())
                    .collect(),
            };
            if valid.is_empty() {
                return Err(SourceError::new(
                    ScanIssueKind::InvalidInput,
                    format!(
                        "the demo estate cannot make valid values for tag '{}': none of its sample values match '{}'; give the tag allowed_values",
                        rule.name,
                        rule.regex.as_ref().map_or("", |(_, p)| &**p)
                    ),
                ));
            }
            let not_allowed = match &rule.allowed_values {
                Some(values) => not_in(values),
                None => Vec::new(),
            };
            let bad_format = match &regex {
                Some(r) => BAD_FORMAT_CANDIDATES
                    .iter()
                    .filter(|v| !r.is_match(v))
                    .map(|v| v.to_string())
                    .collect(),
                None => Vec::new(),
            };
            required.push(RulePlan {
                driver: Driver::of(&rule.name),
                name: rule.name.clone(),
                applies_to: rule.applies_to.clone(),
                allowed: rule.allowed_values.clone(),
                regex,
                regex_exact_case,
                valid,
                not_allowed,
                bad_format,
            });
        }
        let optional = policy
            .optional_tags()
            .iter()
            .map(|rule| OptionalPlan {
                name: rule.name.clone(),
                allowed: rule.allowed_values.clone(),
                not_allowed: rule
                    .allowed_values
                    .as_ref()
                    .map(|v| not_in(v))
                    .unwrap_or_default(),
            })
            .collect();
        let policy_names: Vec<Arc<str>> = policy
            .required_tags()
            .iter()
            .map(|r| r.name.clone())
            .chain(policy.optional_tags().iter().map(|r| r.name.clone()))
            .collect();
        let free = |key: &'static str| {
            (!policy_names.iter().any(|n| eq_ignore_case(n, key))).then_some(key)
        };
        Ok(Generator {
            seed,
            required,
            optional,
            ignore_case,
            max_key_length: naming.max_key_length,
            max_value_length: naming.max_value_length,
            allow_special: naming.allow_special_characters,
            name_key: free("Name"),
            notes_key: free("Notes"),
            special_key: free("legacy#owner"),
            policy_names,
        })
    }

    /// Resource `index` of `slice`; pushes what it injected to `expect` when given.
    fn generate(&self, index: u64, slice: &Slice, expect: Option<&mut Expectations>) -> Resource {
        self.generate_with(index, slice, expect, None)
    }

    /// Resource `index` of `slice`; pushes what it injected to `expect`, and writes to
    /// `intended` the tags it carried before any violation was injected.
    fn generate_with(
        &self,
        index: u64,
        slice: &Slice,
        mut expect: Option<&mut Expectations>,
        intended: Option<&mut Vec<Tag>>,
    ) -> Resource {
        // Two streams: `rng` draws what the compliance mix depends on, `layout` where the
        // resource sits (stage, team, names), so the structure can change without changing
        // which resources are compliant.
        let mut rng = Rng::new(self.seed, index);
        let mut layout = Rng::new(self.seed ^ LAYOUT_STREAM, index);
        let account = &slice.shard.account_id;
        let region = &slice.shard.region;
        let resource_type = &slice.resource_type;
        let app_index = rng.below(APPS.len() as u64) as usize;
        let app = APPS[app_index];
        let place = place(&mut layout, app_index, account, region);
        let stage = STAGES[place.stage].1;
        let mut attributes = ResourceAttributes::default();
        let vpc = place.vpc.clone();
        let mut monthly_cost;
        let (arn, id, name) = match resource_type {
            ResourceType::Ec2Instance => {
                let id = format!("i-{:08x}{:09x}", rng.next() as u32, index);
                let (itype, cost) = INSTANCE_TYPES[rng.below(INSTANCE_TYPES.len() as u64) as usize];
                attributes.instance_type = Some(itype.to_string());
                rng.next(); // the subnet's draw of earlier estates, kept for their mix
                attributes.subnet_id = Some(subnet_of(&vpc, layout.below(SUBNETS_PER_VPC)));
                attributes.vpc_id = Some(vpc);
                if rng.chance(20) {
                    attributes.autoscaling_group = Some(format!("{app}-{stage}-asg"));
                }
                monthly_cost = Some(Usd::from_cents(cost));
                (
                    format!("arn:aws:ec2:{region}:{account}:instance/{id}"),
                    id,
                    None,
                )
            }
            ResourceType::RdsDb => {
                let id = if layout.chance(80) {
                    format!("{app}-{stage}-db-{index}")
                } else {
                    format!("db-{index}")
                };
                let (class, cost) = DB_CLASSES[rng.below(DB_CLASSES.len() as u64) as usize];
                attributes.instance_type = Some(class.to_string());
                attributes.subnet_id = Some(subnet_of(&vpc, layout.below(SUBNETS_PER_VPC)));
                attributes.vpc_id = Some(vpc);
                monthly_cost = Some(Usd::from_cents(cost));
                (
                    format!("arn:aws:rds:{region}:{account}:db:{id}"),
                    id.clone(),
                    Some(id),
                )
            }
            ResourceType::S3Bucket => {
                let suffix = rng.next() as u16;
                let id = match layout.below(10) {
                    0..7 => format!("{app}-{stage}-data-{index}-{suffix:04x}"),
                    7..9 => format!("{}-logs-{index}-{suffix:04x}", TEAMS[place.team]),
                    _ => format!("bucket-{index}-{suffix:04x}"),
                };
                monthly_cost = Some(cents_between(&mut rng, 100, 40_100));
                (format!("arn:aws:s3:::{id}"), id.clone(), Some(id))
            }
            ResourceType::LambdaFunction => {
                let id = match layout.below(10) {
                    0..8 => format!("{app}-{stage}-handler-{index}"),
                    8 => format!("{app}-handler-{index}"),
                    _ => format!("fn-{index}"),
                };
                monthly_cost = Some(cents_between(&mut rng, 20, 4_020));
                (
                    format!("arn:aws:lambda:{region}:{account}:function:{id}"),
                    id.clone(),
                    Some(id),
                )
            }
            ResourceType::EcsService | ResourceType::Other(_) => {
                let cluster = match rng.below(3) {
                    2 => format!("batch-{stage}"),
                    _ => format!("{stage}-cluster"),
                };
                let service = format!("{app}-svc-{index}");
                let id = format!("{cluster}/{service}");
                monthly_cost = Some(cents_between(&mut rng, 2_000, 40_000));
                attributes.vpc_id = Some(vpc);
                (
                    format!("arn:aws:ecs:{region}:{account}:service/{id}"),
                    id,
                    Some(service),
                )
            }
        };
        if rng.chance(10) {
            monthly_cost = None; // cost data is not always known
        }
        let age_seconds = rng.below(1_200 * 86_400) as i64;
        let created_at = epoch() - Duration::seconds(age_seconds);

        let tags = self.tags(
            &mut rng,
            &mut layout,
            &place,
            resource_type,
            index,
            &mut expect,
            intended,
        );
        if let Some(stack) = tags
            .iter()
            .find(|t| t.key == "aws:cloudformation:stack-name")
        {
            attributes.cloudformation_stack = Some(stack.value.clone());
        }
        let name = name.or_else(|| {
            self.name_key
                .and_then(|k| tags.iter().find(|t| t.key == k).map(|t| t.value.clone()))
        });
        Resource {
            arn,
            account_id: account.clone(),
            region: region.clone(),
            resource_type: resource_type.clone(),
            id,
            name,
            tags,
            created_at: Some(created_at),
            // List prices of the configuration: an estimate, not billing.
            cost_source: if monthly_cost.is_some() {
                CostSource::Estimated
            } else {
                CostSource::Unknown
            },
            monthly_cost,
            attributes,
        }
    }

    #[allow(clippy::too_many_arguments)] // one resource's streams, place and records
    fn tags(
        &self,
        rng: &mut Rng,
        layout: &mut Rng,
        place: &Placement,
        resource_type: &ResourceType,
        index: u64,
        expect: &mut Option<&mut Expectations>,
        intended: Option<&mut Vec<Tag>>,
    ) -> Vec<Tag> {
        let app = APPS[place.app];
        let stage = STAGES[place.stage].1;
        let mut note = |violation: ViolationType, severity: Severity, tag: &str| {
            if let Some(e) = expect.as_deref_mut() {
                e.push((violation, severity, tag.to_string()));
            }
        };
        let applicable: Vec<&RulePlan> = self
            .required
            .iter()
            .filter(|r| r.applies(resource_type))
            .collect();
        let mut tags: Vec<Tag> = Vec::with_capacity(applicable.len() + 4);
        for rule in &applicable {
            rng.next(); // the value's draw of earlier estates, kept for their mix
            tags.push(Tag::new(&*rule.name, value_for(rule, place, layout)));
        }
        if let Some(key) = self.name_key
            && *resource_type == ResourceType::Ec2Instance
        {
            let name = match layout.below(20) {
                0..14 => {
                    let role = ["web", "worker", "api"][layout.below(3) as usize];
                    format!("{app}-{stage}-{role}-{index}")
                }
                14..17 => format!("{app}-{index}"),
                _ => format!("ip-10-{}-{}-{}", index % 250, layout.below(250), index % 7),
            };
            tags.push(Tag::new(key, name));
        }
        if rng.chance(30) {
            tags.push(Tag::new(
                "aws:cloudformation:stack-name",
                format!("{app}-{stage}-stack"),
            ));
        }
        for optional in &self.optional {
            if rng.chance(30) {
                let value = match &optional.allowed {
                    Some(values) => values[rng.below(values.len() as u64) as usize].clone(),
                    None => format!("{app}-initiative"),
                };
                tags.push(Tag::new(&*optional.name, value));
            }
        }

        if let Some(intended) = intended {
            intended.clone_from(&tags);
        }

        let pick = |rng: &mut Rng, candidates: &[&RulePlan]| -> Option<usize> {
            (!candidates.is_empty()).then(|| rng.below(candidates.len() as u64) as usize)
        };
        let position = |tags: &[Tag], name: &str| tags.iter().position(|t| t.key == name);
        let roll = rng.below(100);
        match roll {
            // Compliant: nothing more to do.
            0..52 => {}
            // Untagged: no tags at all.
            52..62 => {
                tags.clear();
                for rule in &applicable {
                    note(
                        ViolationType::MissingRequiredTag,
                        Severity::Error,
                        &rule.name,
                    );
                }
            }
            // One or two required tags missing.
            62..72 => {
                let mut candidates = applicable.clone();
                let drop = 1 + rng.below(2);
                for _ in 0..drop {
                    if let Some(i) = pick(rng, &candidates) {
                        let rule = candidates.swap_remove(i);
                        if let Some(p) = position(&tags, &rule.name) {
                            tags.remove(p);
                        }
                        note(
                            ViolationType::MissingRequiredTag,
                            Severity::Error,
                            &rule.name,
                        );
                    }
                }
            }
            // A required tag with a blank value.
            72..74 => {
                if let Some(i) = pick(rng, &applicable) {
                    let rule = applicable[i];
                    if let Some(p) = position(&tags, &rule.name) {
                        tags[p].value = String::new();
                        note(ViolationType::EmptyValue, Severity::Error, &rule.name);
                    }
                }
            }
            // A value outside the allowed list.
            74..82 => {
                let candidates: Vec<&RulePlan> = applicable
                    .iter()
                    .copied()
                    .filter(|r| !r.not_allowed.is_empty())
                    .collect();
                if let Some(i) = pick(rng, &candidates) {
                    let rule = candidates[i];
                    let value =
                        rule.not_allowed[rng.below(rule.not_allowed.len() as u64) as usize].clone();
                    self.expect_value(rule, &value, &mut note);
                    if let Some(p) = position(&tags, &rule.name) {
                        tags[p].value = value;
                    }
                }
            }
            // A value of the wrong format.
            82..87 => {
                let candidates: Vec<&RulePlan> = applicable
                    .iter()
                    .copied()
                    .filter(|r| !r.bad_format.is_empty())
                    .collect();
                if let Some(i) = pick(rng, &candidates) {
                    let rule = candidates[i];
                    let value =
                        rule.bad_format[rng.below(rule.bad_format.len() as u64) as usize].clone();
                    self.expect_value(rule, &value, &mut note);
                    if let Some(p) = position(&tags, &rule.name) {
                        tags[p].value = value;
                    }
                }
            }
            // A key or a value that differs from the policy only in case.
            87..93 => {
                if let Some(i) = pick(rng, &applicable) {
                    let rule = applicable[i];
                    let p = position(&tags, &rule.name).expect("applicable tags were all added");
                    let key_variant = flip_case(&rule.name);
                    let key_is_free = key_variant != *rule.name
                        && !self.policy_names.iter().any(|n| **n == key_variant);
                    if rng.chance(50) && key_is_free {
                        tags[p].key = key_variant;
                        if self.ignore_case {
                            note(
                                ViolationType::KeyCaseMismatch,
                                Severity::Warning,
                                &rule.name,
                            );
                            let value = tags[p].value.clone();
                            self.expect_value(rule, &value, &mut note);
                        } else {
                            note(
                                ViolationType::MissingRequiredTag,
                                Severity::Error,
                                &rule.name,
                            );
                        }
                    } else {
                        let value = flip_case(&tags[p].value);
                        self.expect_value(rule, &value, &mut note);
                        tags[p].value = value;
                    }
                }
            }
            // An optional tag with a value outside its list.
            93..96 => {
                let candidates: Vec<&OptionalPlan> = self
                    .optional
                    .iter()
                    .filter(|o| !o.not_allowed.is_empty())
                    .collect();
                if !candidates.is_empty() {
                    let rule = candidates[rng.below(candidates.len() as u64) as usize];
                    let value =
                        rule.not_allowed[rng.below(rule.not_allowed.len() as u64) as usize].clone();
                    if let Some(p) = position(&tags, &rule.name) {
                        tags.remove(p);
                    }
                    note(ViolationType::InvalidValue, Severity::Warning, &rule.name);
                    tags.push(Tag::new(&*rule.name, value));
                }
            }
            // A key with characters outside the portable set.
            96..98 => {
                if let Some(key) = self.special_key {
                    tags.push(Tag::new(key, "ops"));
                }
            }
            // A value longer than the naming rules allow.
            _ => {
                if let Some(key) = self.notes_key {
                    tags.push(Tag::new(key, "n".repeat(self.max_value_length + 5)));
                }
            }
        }

        // Naming rules apply to every tag the resource ends up with.
        for tag in &tags {
            if is_reserved(&tag.key) {
                continue;
            }
            if tag.key.chars().count() > self.max_key_length {
                note(ViolationType::KeyTooLong, Severity::Warning, &tag.key);
            }
            if tag.value.chars().count() > self.max_value_length {
                note(ViolationType::ValueTooLong, Severity::Warning, &tag.key);
            }
            if !self.allow_special {
                for part in [&tag.key, &tag.value] {
                    if !is_portable(part) {
                        note(
                            ViolationType::InvalidCharacters,
                            Severity::Warning,
                            &tag.key,
                        );
                    }
                }
            }
        }
        tags
    }

    /// What a required tag's value `value` (non-blank) will be found to break.
    fn expect_value(
        &self,
        rule: &RulePlan,
        value: &str,
        note: &mut impl FnMut(ViolationType, Severity, &str),
    ) {
        if let Some(allowed) = &rule.allowed
            && !allowed.iter().any(|a| a == value)
        {
            if self.ignore_case && allowed.iter().any(|a| eq_ignore_case(a, value)) {
                note(
                    ViolationType::ValueCaseMismatch,
                    Severity::Warning,
                    &rule.name,
                );
            } else {
                note(ViolationType::InvalidValue, Severity::Error, &rule.name);
            }
        }
        if let Some(regex) = &rule.regex {
            if !regex.is_match(value) {
                note(ViolationType::InvalidFormat, Severity::Error, &rule.name);
            } else if rule.allowed.is_none()
                && rule
                    .regex_exact_case
                    .as_ref()
                    .is_some_and(|exact| !exact.is_match(value))
            {
                note(
                    ViolationType::ValueCaseMismatch,
                    Severity::Warning,
                    &rule.name,
                );
            }
        }
    }
}

/// Seeds the layout stream apart from the compliance stream.
const LAYOUT_STREAM: u64 = 0x7e57_ab1e_5eed_0001;

/// Where resource of application `app` in `account` and `region` sits.
fn place(layout: &mut Rng, app: usize, account: &str, region: &str) -> Placement {
    let account_index = ACCOUNTS
        .iter()
        .position(|(a, _)| *a == account)
        .unwrap_or(0);
    let mut roll = layout.below(100);
    let mut stage = 0;
    for (i, share) in ACCOUNT_STAGES[account_index].iter().enumerate() {
        if roll < *share {
            stage = i;
            break;
        }
        roll -= share;
    }
    let team = if layout.chance(OTHER_TEAM_PERCENT) {
        layout.below(TEAMS.len() as u64) as usize
    } else if APPS[app] == "reporting" && layout.chance(50) {
        2 // reporting is run by two teams, and each tags it its own way
    } else {
        APP_TEAMS[app]
    };
    let vpc = vpc_of(account, region, stage);
    Placement {
        app,
        team,
        stage,
        vpc,
    }
}

/// Subnet `k` of `vpc`.
fn subnet_of(vpc: &str, k: u64) -> String {
    format!(
        "subnet-{:08x}",
        (hash_str(vpc) ^ k.wrapping_mul(0x9E37)) as u32
    )
}

/// Whether `value`, a name the estate uses (an application, a team's address), is valid for a
/// tag with no allowed list.
fn fits(rule: &RulePlan, value: &str) -> bool {
    rule.allowed.is_none()
        && rule
            .regex_exact_case
            .as_ref()
            .or(rule.regex.as_ref())
            .is_none_or(|r| r.is_match(value))
}

/// The value of `rule`'s tag (of the stage driver) for stage `stage`.
fn stage_value(rule: &RulePlan, stage: usize) -> String {
    let (canonical, short) = STAGES[stage];
    let listed = |name: &str| rule.valid.iter().find(|v| eq_ignore_case(v, name)).cloned();
    listed(canonical)
        .or_else(|| listed(short))
        .or_else(|| fits(rule, canonical).then(|| canonical.to_string()))
        .unwrap_or_else(|| rule.valid[stage % rule.valid.len()].clone())
}

/// The VPC of `stage` in `account` and `region`.
fn vpc_of(account: &str, region: &str, stage: usize) -> String {
    format!(
        "vpc-{:08x}",
        (hash_str(account) ^ hash_str(region) ^ hash_str(STAGES[stage].0).rotate_left(7)) as u32
    )
}

/// The value `rule`'s tag has for a resource placed at `place`: its stage, application or
/// team mapped onto the tag's valid values, or (a slip) any valid value.
fn value_for(rule: &RulePlan, place: &Placement, layout: &mut Rng) -> String {
    let n = rule.valid.len();
    if layout.chance(SLIP_PERCENT) {
        return rule.valid[layout.below(n as u64) as usize].clone();
    }
    let listed = |name: &str| rule.valid.iter().find(|v| eq_ignore_case(v, name)).cloned();
    match rule.driver {
        Driver::Stage => stage_value(rule, place.stage),
        Driver::Application => {
            let app = APPS[place.app];
            listed(app)
                .or_else(|| fits(rule, app).then(|| app.to_string()))
                .unwrap_or_else(|| rule.valid[hash_str(app) as usize % n].clone())
        }
        Driver::Team => {
            let team = TEAMS[place.team];
            let address = format!("{team}@example.com");
            if fits(rule, &address) {
                address
            } else if fits(rule, team) {
                team.to_string()
            } else {
                listed(team).unwrap_or_else(|| {
                    rule.valid[(place.team + hash_str(&rule.name) as usize) % n].clone()
                })
            }
        }
    }
}

/// Candidates that are not in `allowed`, even ignoring case.
fn not_in(allowed: &[String]) -> Vec<String> {
    NOT_ALLOWED_CANDIDATES
        .iter()
        .filter(|c| !allowed.iter().any(|a| eq_ignore_case(a, c)))
        .map(|c| c.to_string())
        .collect()
}

/// Lowercase text becomes Capitalised; anything else becomes lowercase.
fn flip_case(text: &str) -> String {
    let lower = text.to_lowercase();
    if lower != text {
        return lower;
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A cost of `low` to `high` cents (exclusive), drawn from `rng`.
fn cents_between(rng: &mut Rng, low: i64, high: i64) -> Usd {
    Usd::from_cents(low + rng.below((high - low) as u64) as i64)
}

fn hash_str(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// SplitMix64: tiny, fast, and good enough for a reproducible estate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, index: u64) -> Rng {
        let mut rng = Rng(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::default_policy;

    fn source(size: u64, seed: u64) -> SyntheticSource {
        SyntheticSource::new(SyntheticSpec { size, seed }, Arc::new(default_policy())).unwrap()
    }

    #[test]
    fn slices_cover_exactly_size() {
        for size in [0, 1, 7, 45, 999, 10_001] {
            let slices = plan_slices(size);
            assert_eq!(slices.iter().map(|s| s.count).sum::<u64>(), size);
            let mut next = 0;
            for s in &slices {
                assert_eq!(s.start, next);
                next += s.count;
            }
        }
    }

    #[test]
    fn same_seed_same_estate_and_arns_unique() {
        let a = source(3_000, 7);
        let b = source(3_000, 7);
        let scope = ScanScope::default();
        assert_eq!(a.ground_truth(&scope), b.ground_truth(&scope));
        let mut arns = std::collections::HashSet::new();
        for slice in &a.slices {
            for i in slice.start..slice.start + slice.count {
                let r = a.generator.generate(i, slice, None);
                assert_eq!(
                    crate::domain::Arn::parse(&r.arn).unwrap().resource_type(),
                    r.resource_type
                );
                assert!(arns.insert(r.arn), "duplicate ARN");
            }
        }
        assert_ne!(
            a.ground_truth(&scope),
            source(3_000, 8).ground_truth(&scope)
        );
    }

    #[test]
    fn mix_is_realistic() {
        let truth = source(10_000, 1).ground_truth(&ScanScope::default());
        let total: u64 = truth.by_type.values().map(|c| c.0).sum();
        let compliant: u64 = truth.by_type.values().map(|c| c.1).sum();
        assert_eq!(total, 10_000);
        let share = compliant as f64 / total as f64;
        assert!((0.5..0.75).contains(&share), "compliant share {share}");
        for kind in [
            ViolationType::MissingRequiredTag,
            ViolationType::EmptyValue,
            ViolationType::InvalidValue,
            ViolationType::InvalidFormat,
            ViolationType::KeyCaseMismatch,
            ViolationType::ValueCaseMismatch,
            ViolationType::ValueTooLong,
            ViolationType::InvalidCharacters,
        ] {
            assert!(
                truth.violations.iter().any(|v| v.violation_type == kind),
                "{kind} never injected"
            );
        }
    }

    #[test]
    fn flip_case_always_differs_for_letters() {
        assert_eq!(flip_case("production"), "Production");
        assert_eq!(flip_case("Engineering"), "engineering");
        assert_eq!(flip_case("CostCenter"), "costcenter");
    }
}
