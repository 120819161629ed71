//! The suggestion service: looks up the given resources, gathers the evidence of their
//! accounts and regions (one scan with tag statistics, cached like every scope scan, and the
//! VPCs and subnets there), and suggests values for their missing and invalid tags.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;

use super::evaluate::{Evaluation, evaluate};
use super::{
    CONFIDENT, Evidence, Subject, TagSuggestion, policy_tags, suggest_tag, tags_to_suggest,
};
use crate::domain::{
    Arn, NetworkObject, Origin, Resource, ResourceType, ScanIssue, ScanResult, ScanScope, Tag,
    TagStats, eq_ignore_case,
};
use crate::scans::{CachePolicy, RunContext, ScanError, ScanQuestion, ScanService, lookup_scopes};
use crate::source::{ApiCallCounter, FetchContext};

/// Most ARNs per question: each becomes an item of the answer.
pub const MAX_ARNS: usize = 100;

/// Why a question got no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SuggestError {
    /// The question itself is wrong (no ARN, too many, a tag the policy does not have).
    #[error("{0}")]
    InvalidInput(String),
    /// A scan it needed failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// A question: which resources, which tags (default: every required tag missing or invalid).
#[derive(Debug, Clone)]
pub struct SuggestQuestion {
    /// ARNs, 1 to 100.
    pub arns: Vec<String>,
    /// Tags asked about; `None`: the missing and invalid required tags of each resource.
    pub tags: Option<Vec<String>>,
    /// Where the server looks for ARNs that name no region or account.
    pub server_scope: ScanScope,
    /// Who asks (the tool's name, `cli`): names the lookups.
    pub asked_by: String,
    /// The origin of the evidence scan: a tool's is recorded and cached like every scope
    /// scan of that tool; a lookup's is neither.
    pub evidence_origin: Origin,
    /// Scan the evidence anew rather than from the cache.
    pub refresh: bool,
}

/// What became of one ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    /// Found; its tags are in `tags`.
    Found,
    /// Not where the server looks.
    NotFound,
    /// Could not be looked for: part of the estate could not be read.
    Unknown,
    /// Not an ARN.
    InvalidArn,
}

/// The suggestions for one resource.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ResourceSuggestions {
    /// The ARN as given.
    pub resource_arn: String,
    /// Whether it was found.
    pub status: ResourceStatus,
    /// Its type, when found.
    pub resource_type: Option<ResourceType>,
    /// Its name, when known.
    pub name: Option<String>,
    /// One entry per tag missing or invalid (or asked about); empty when every required tag
    /// is valid.
    pub tags: Vec<TagSuggestion>,
    /// For an ARN not found, or a resource with nothing to suggest: why.
    pub message: Option<String>,
}

/// Where the evidence came from.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EvidenceInfo {
    /// The scan whose groups were read (its id).
    pub scan_id: Option<String>,
    /// Resources in that scan.
    pub resources_scanned: u64,
    /// Groups of related resources it counted.
    pub groups: u64,
    /// VPCs and subnets read.
    pub network_objects: u64,
    /// Whether the evidence scan came from the cache, and how old it was.
    pub cached_seconds_ago: Option<u64>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SuggestReport {
    /// One entry per ARN given, in order (duplicates answered once).
    pub results: Vec<ResourceSuggestions>,
    /// Tags with at least one candidate.
    pub tags_with_candidates: u64,
    /// Tags whose top candidate has a confidence of 0.8 or more.
    pub confident: u64,
    /// Tags with no candidate (each says why).
    pub without_candidate: u64,
    /// Where the evidence came from.
    pub evidence: EvidenceInfo,
    /// True when part of the estate could not be read: the evidence may be thinner.
    pub partial: bool,
    /// What could not be read.
    pub issues: Vec<ScanIssue>,
    /// How to read the figures.
    pub notes: Vec<String>,
}

/// The policy's spelling of each asked tag, or an error naming the unknown one.
pub fn asked_tags(
    policy: &crate::policy::Policy,
    tags: &[String],
) -> Result<Vec<Arc<str>>, SuggestError> {
    let names = policy_tags(policy);
    let mut asked = Vec::new();
    for tag in tags {
        let Some(name) = names.iter().find(|n| eq_ignore_case(n, tag.trim())) else {
            let known: Vec<&str> = names.iter().map(|n| &**n).collect();
            return Err(SuggestError::InvalidInput(format!(
                "'{tag}' is not a tag of the policy: use {}",
                known.join(", ")
            )));
        };
        if !asked.contains(name) {
            asked.push(name.clone());
        }
    }
    Ok(asked)
}

/// Reads the VPCs and subnets of each (account, region); a place that cannot be read becomes
/// a note, and the suggestions go on without its network.
async fn network_of(
    scans: &ScanService,
    places: &BTreeSet<(String, String)>,
    notes: &mut Vec<String>,
) -> Vec<NetworkObject> {
    let throttle = scans.engine().throttle();
    let calls = ApiCallCounter::default();
    let cx = FetchContext::new(&throttle, &calls);
    let mut objects = Vec::new();
    for (account, region) in places {
        match scans.source().network(account, region, &cx).await {
            Ok(found) => objects.extend(found),
            Err(error) => notes.push(format!(
                "the VPCs and subnets of account {account} in {region} could not be read ({}): suggestions there go without them",
                error.kind
            )),
        }
    }
    objects
}

/// The accounts and regions of resources.
pub fn places_of<'r>(resources: impl Iterator<Item = &'r Resource>) -> BTreeSet<(String, String)> {
    resources
        .map(|r| (r.account_id.to_string(), r.region.to_string()))
        .collect()
}

/// The scope covering every type in `places`.
fn scope_of(places: &BTreeSet<(String, String)>) -> ScanScope {
    ScanScope {
        accounts: places.iter().map(|(a, _)| a.clone()).collect(),
        regions: places.iter().map(|(_, r)| r.clone()).collect(),
        ..ScanScope::default()
    }
}

/// The resources `arns` name, read whole (lookups, not recorded), and the merged lookup.
pub async fn lookup_resources(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    arns: &[&Arn],
    server_scope: &ScanScope,
    asked_by: &str,
) -> Result<(Vec<Resource>, Option<ScanResult>), SuggestError> {
    let mut lookup: Option<ScanResult> = None;
    for scope in lookup_scopes(arns, server_scope) {
        let mut q = ScanQuestion::new(scope, Origin::Lookup(asked_by.to_string()));
        q.analyses.resources = true;
        let answer = scans.scan(ctx, q).await?;
        let part = ScanResult::clone(&answer.result);
        match &mut lookup {
            None => lookup = Some(part),
            Some(all) => all
                .merge(part)
                .map_err(|e| SuggestError::Scan(ScanError::Engine(e.to_string())))?,
        }
    }
    let resources = lookup
        .as_mut()
        .map(|r| std::mem::take(&mut r.tally.resources))
        .unwrap_or_default();
    Ok((resources, lookup))
}

/// The evidence of some accounts and regions, and where it came from.
pub struct Gathered {
    /// The evidence.
    pub evidence: Evidence,
    /// Its origin, for the answer.
    pub info: EvidenceInfo,
    /// What could not be read.
    pub issues: Vec<ScanIssue>,
    /// Notes (a network that could not be read).
    pub notes: Vec<String>,
    /// Whether the evidence scan was partial.
    pub partial: bool,
}

/// Gathers the evidence of `places`: one scan with tag statistics (from the cache when
/// `origin` is a tool's and `refresh` is false) and their VPCs and subnets.
pub async fn gather_evidence(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    places: &BTreeSet<(String, String)>,
    origin: Origin,
    refresh: bool,
) -> Result<Gathered, SuggestError> {
    let policy = scans.policy();
    let mut gathered = Gathered {
        evidence: Evidence::new(TagStats::default(), Vec::new(), policy),
        info: EvidenceInfo {
            scan_id: None,
            resources_scanned: 0,
            groups: 0,
            network_objects: 0,
            cached_seconds_ago: None,
        },
        issues: Vec::new(),
        notes: Vec::new(),
        partial: false,
    };
    if places.is_empty() {
        return Ok(gathered);
    }
    let mut q = ScanQuestion::new(scope_of(places), origin);
    q.analyses.tag_stats = true;
    // Costs too: then the evidence scan is the one every tool's scope question reuses.
    q.analyses.cost = true;
    if refresh {
        q.cache = CachePolicy::Refresh;
    }
    let answer = scans.scan(ctx, q).await?;
    let result = &answer.result;
    gathered.info.scan_id = Some(result.meta.scan_id.to_string());
    gathered.info.resources_scanned = result.totals.total_resources;
    gathered.info.cached_seconds_ago = answer.cache.from_cache.then_some(answer.cache.age_seconds);
    gathered.partial = result.partial;
    gathered.issues = result.tally.issues.clone();
    let network = network_of(scans, places, &mut gathered.notes).await;
    gathered.info.network_objects = network.len() as u64;
    let stats = result.tally.tag_stats.clone().unwrap_or_default();
    gathered.evidence = Evidence::new(stats, network, policy);
    gathered.info.groups = gathered.evidence.groups() as u64;
    Ok(gathered)
}

/// The suggestions for one resource: for `asked` tags, or its missing and invalid ones.
pub fn suggestions_for(
    policy: &crate::policy::Policy,
    evidence: &Evidence,
    resource: &Resource,
    asked: Option<&[Arc<str>]>,
) -> Vec<TagSuggestion> {
    let findings = policy.validate(&resource.resource_type, &resource.tags);
    let subject = Subject {
        resource,
        findings: &findings,
        hidden: None,
    };
    tags_to_suggest(policy, resource, &findings, asked)
        .into_iter()
        .map(|(tag, problem, current)| {
            suggest_tag(
                policy,
                evidence,
                &subject,
                &tag,
                problem,
                current.as_deref(),
            )
        })
        .collect()
}

/// Suggests tag values for the resources `question` names.
pub async fn suggest(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    question: SuggestQuestion,
) -> Result<SuggestReport, SuggestError> {
    let policy = scans.policy().clone();
    let asked = question
        .tags
        .as_deref()
        .map(|t| asked_tags(&policy, t))
        .transpose()?;
    let mut given: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for arn in &question.arns {
        let arn = arn.trim().to_string();
        if seen.insert(arn.clone()) {
            given.push(arn);
        }
    }
    if given.is_empty() {
        return Err(SuggestError::InvalidInput(
            "'resource_arns' is empty; give at least one ARN".to_string(),
        ));
    }
    if given.len() > MAX_ARNS {
        return Err(SuggestError::InvalidInput(format!(
            "'resource_arns' has {} ARNs; the most per call is {MAX_ARNS}: split the list",
            given.len()
        )));
    }
    let parsed: HashMap<&str, Result<Arn, String>> = given
        .iter()
        .map(|t| (t.as_str(), Arn::parse(t).map_err(|e| e.to_string())))
        .collect();
    let valid: Vec<&Arn> = parsed.values().filter_map(|p| p.as_ref().ok()).collect();

    let (resources, lookup) = lookup_resources(
        scans,
        ctx,
        &valid,
        &question.server_scope,
        &question.asked_by,
    )
    .await?;
    let found: BTreeMap<&str, &Resource> = resources.iter().map(|r| (r.arn.as_str(), r)).collect();
    let lookup_partial = lookup.as_ref().is_some_and(|r| r.partial);
    let places = places_of(resources.iter());
    let gathered = gather_evidence(
        scans,
        ctx,
        &places,
        question.evidence_origin.clone(),
        question.refresh,
    )
    .await?;
    let mut issues: Vec<ScanIssue> = lookup
        .as_ref()
        .map(|r| r.tally.issues.clone())
        .unwrap_or_default();
    issues.extend(gathered.issues);
    issues.sort();
    issues.dedup();
    let (evidence, info, notes) = (gathered.evidence, gathered.info, gathered.notes);
    let partial = lookup_partial || gathered.partial;

    let mut report = SuggestReport {
        results: Vec::with_capacity(given.len()),
        tags_with_candidates: 0,
        confident: 0,
        without_candidate: 0,
        evidence: info,
        partial,
        issues,
        notes,
    };
    for text in &given {
        let mut item = ResourceSuggestions {
            resource_arn: text.clone(),
            status: ResourceStatus::NotFound,
            resource_type: None,
            name: None,
            tags: Vec::new(),
            message: None,
        };
        match (&parsed[text.as_str()], found.get(text.as_str())) {
            (Err(error), _) => {
                item.status = ResourceStatus::InvalidArn;
                item.message = Some(format!(
                    "{error}; an ARN looks like arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"
                ));
            }
            (Ok(_), Some(resource)) => {
                item.status = ResourceStatus::Found;
                item.resource_type = Some(resource.resource_type.clone());
                item.name = resource.name.clone();
                for s in suggestions_for(&policy, &evidence, resource, asked.as_deref()) {
                    match s.candidates.first() {
                        Some(top) => {
                            report.tags_with_candidates += 1;
                            report.confident += u64::from(top.confidence >= CONFIDENT);
                        }
                        None => report.without_candidate += 1,
                    }
                    item.tags.push(s);
                }
                if item.tags.is_empty() {
                    item.message = Some(
                        "every required tag that applies to it is present and valid: nothing to suggest"
                            .to_string(),
                    );
                }
            }
            (Ok(_), None) if lookup_partial => {
                item.status = ResourceStatus::Unknown;
                item.message = Some(
                    "not found, but part of the estate could not be read (see issues): it may be there"
                        .to_string(),
                );
            }
            (Ok(_), None) => {
                item.message = Some(format!(
                    "no such resource in the accounts and regions '{}' covers: check the account, region and id",
                    scans.source().name()
                ));
            }
        }
        report.results.push(item);
    }
    report.notes.push(
        "confidence is measured on this estate: the share of resources with the same evidence that carry the value (0.8 or more: right at least nine times in ten in the evaluations)"
            .to_string(),
    );
    Ok(report)
}

/// Evaluates suggestions over `scope`: every resource is read whole (mind the memory of a
/// large estate), its known tags hidden one at a time and predicted. `intended`: the demo's
/// record of the values broken resources were meant to carry.
pub async fn evaluate_scope(
    scans: &Arc<ScanService>,
    ctx: &RunContext,
    scope: ScanScope,
    intended: Option<&BTreeMap<String, Vec<Tag>>>,
) -> Result<(Evaluation, Vec<String>), SuggestError> {
    let mut q = ScanQuestion::new(scope, Origin::Lookup("evaluate".to_string()));
    q.analyses.tag_stats = true;
    q.analyses.resources = true;
    q.cache = CachePolicy::Bypass;
    let answer = scans.scan(ctx, q).await?;
    let result = &answer.result;
    let mut notes = Vec::new();
    if result.partial {
        notes.push(format!(
            "part of the estate could not be read ({} issues): the evidence is thinner than the estate's",
            result.tally.issues.len()
        ));
    }
    let places = places_of(result.tally.resources.iter());
    let network = network_of(scans, &places, &mut notes).await;
    let stats = result.tally.tag_stats.clone().unwrap_or_default();
    let evidence = Evidence::new(stats, network, scans.policy());
    Ok((
        evaluate(scans.policy(), &evidence, &result.tally.resources, intended),
        notes,
    ))
}
