//! The validator pool: ractor factory workers that price resources from billing when the scan
//! has it, validate batches of resources against the policy, observing every resource into the
//! batch's [`Tally`], and send the tally to the scan's aggregator with the batch's permit
//! (released once merged).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ractor::factory::{
    Factory, FactoryMessage, Job, Worker, WorkerId, queues::DefaultQueue, routing::QueuerRouting,
};
use ractor::{ActorProcessingErr, ActorRef};
use tokio::sync::OwnedSemaphorePermit;

use super::BatchOutcome;
use super::aggregator::AggregatorMsg;
use crate::domain::costing::ResourcePricer;
use crate::domain::{
    ExemptResource, ExemptionStatus, Finding, Resource, RunKey, Tally, TallyOptions,
};
use crate::policy::Policy;

/// A batch to validate: one page of one shard.
pub struct ValidateBatch {
    /// Index of the shard in the scan's plan.
    pub shard: usize,
    /// Where the page sits in source order.
    pub run: RunKey,
    /// The resources.
    pub resources: Vec<Resource>,
    /// Held until the batch is merged: bounds the batches in flight.
    pub permit: OwnedSemaphorePermit,
}

/// The validator pool's type.
pub type ValidatorFactory = Factory<
    (),
    ValidateBatch,
    (),
    ValidatorWorker,
    QueuerRouting<(), ValidateBatch>,
    DefaultQueue<(), ValidateBatch>,
>;

/// One worker of the pool. Read-only configuration; the state is a reusable findings buffer.
pub struct ValidatorWorker {
    /// The scan's policy.
    pub policy: Arc<Policy>,
    /// What the scan's tallies list and analyse.
    pub options: Arc<TallyOptions>,
    /// Where outcomes go.
    pub aggregator: ActorRef<AggregatorMsg>,
    /// Prices each resource from billing before it is validated, when the scan has billing.
    pub costs: Option<Arc<dyn ResourcePricer>>,
}

impl Worker for ValidatorWorker {
    type Key = ();
    type Message = ValidateBatch;
    type Arguments = ();
    type State = Vec<Finding>;

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), ValidateBatch>>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Vec::with_capacity(16))
    }

    async fn handle(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), ValidateBatch>>,
        Job { msg, key, .. }: Job<(), ValidateBatch>,
        scratch: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let ValidateBatch {
            shard,
            run,
            mut resources,
            permit,
        } = msg;
        if let Some(costs) = &self.costs {
            resources.iter_mut().for_each(|r| costs.price(r));
        }
        // Validation is pure and should never panic; if it does, the aggregator must still
        // learn that this batch is done, or the scan would wait for it forever.
        let (tally, failure) = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            validate_batch(&self.policy, &self.options, &run, resources, scratch)
        })) {
            Ok(tally) => (tally, None),
            Err(panic) => (Tally::new(&self.options), Some(panic_text(&panic))),
        };
        let outcome = BatchOutcome {
            shard,
            tally,
            failure,
            permit,
        };
        // A stopped aggregator means the scan was cancelled; the outcome is not wanted.
        let _ = self
            .aggregator
            .send_message(AggregatorMsg::BatchValidated(Box::new(outcome)));
        Ok(key)
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "validation panicked".to_string())
}

/// Validates every resource of a batch at `run` and observes it into a new tally: the hot
/// loop of a scan. Pure (no I/O, no actors): benchmarked in `benches/validation.rs` and
/// tested below. `scratch` is a findings buffer reused across batches.
pub fn validate_batch(
    policy: &Policy,
    options: &TallyOptions,
    run: &RunKey,
    resources: Vec<Resource>,
    scratch: &mut Vec<Finding>,
) -> Tally {
    let mut tally = Tally::new(options);
    // Exemptions are judged by the day the batch is validated (UTC).
    let today = policy
        .has_exemptions()
        .then(|| chrono::Utc::now().date_naive());
    for resource in resources {
        scratch.clear();
        if let Some(today) = today
            && let Some(hit) = policy.exemption_for(&resource.arn, &resource.tags, today)
        {
            let record = ExemptResource {
                resource_arn: resource.arn.clone(),
                resource_type: resource.resource_type.clone(),
                account_id: resource.account_id.to_string(),
                region: resource.region.to_string(),
                resource_name: resource.name.clone(),
                monthly_cost: resource.monthly_cost,
                cost_source: resource.cost_source,
                status: hit.status,
                exempted_by: hit.exempted_by,
                reason: hit.reason,
                expires: hit.expires,
            };
            if hit.status == ExemptionStatus::Active {
                tally.observe_exempt(&resource, record);
                continue;
            }
            tally.note_exemption(record);
        }
        let applicable = policy.validate_into(&resource.resource_type, &resource.tags, scratch);
        tally.observe(options, run, resource, applicable, scratch);
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        CostSource, ResourceAttributes, ResourceType, Severity, SeverityFilter, Tag,
    };
    use crate::policy::default_policy;

    fn resource(i: usize, tags: &[(&str, &str)]) -> Resource {
        Resource {
            arn: format!("arn:aws:ec2:us-east-1:123456789012:instance/i-{i}"),
            account_id: Arc::from("123456789012"),
            region: Arc::from("us-east-1"),
            resource_type: ResourceType::Ec2Instance,
            id: format!("i-{i}"),
            name: None,
            tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
            created_at: None,
            monthly_cost: None,
            cost_source: CostSource::Unknown,
            attributes: ResourceAttributes::default(),
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("CostCenter", "Engineering"),
        ("Owner", "ana@example.com"),
        ("Environment", "production"),
        ("Application", "checkout"),
    ];

    #[test]
    fn a_batch_agrees_with_validating_each_resource() {
        let policy = default_policy();
        let batch: Vec<Resource> = (0..30)
            .map(|i| match i % 3 {
                0 => resource(i, GOOD),
                1 => resource(i, &[]),
                _ => resource(i, &GOOD[..2]),
            })
            .collect();
        let expected: Vec<_> = batch
            .iter()
            .flat_map(|r| {
                policy
                    .validate(&r.resource_type, &r.tags)
                    .into_iter()
                    .map(|f| (r.arn.clone(), f))
                    .collect::<Vec<_>>()
            })
            .collect();
        let options = TallyOptions {
            severity: SeverityFilter::ErrorsOnly,
            ..TallyOptions::default()
        };
        let run = RunKey::default();
        let tally = validate_batch(&policy, &options, &run, batch, &mut Vec::new());
        let listed: Vec<_> = tally
            .violations
            .iter()
            .map(|v| (v.resource.arn.clone(), v.finding.clone()))
            .collect();
        let errors: Vec<_> = expected
            .iter()
            .filter(|(_, f)| f.severity == Severity::Error)
            .cloned()
            .collect();
        assert_eq!(listed, errors, "errors only, in page order");
        let totals = tally.totals();
        assert_eq!(totals.total_resources, 30);
        assert_eq!(totals.compliant_resources, 10);
        assert_eq!(
            totals.error_count + totals.warning_count,
            expected.len() as u64,
            "counts cover what the filter leaves out"
        );
        // Ten untagged (four missing each) and ten with two missing: the worst are untagged,
        // ties broken by ARN.
        let worst: Vec<&str> = tally
            .worst_offenders
            .as_slice()
            .iter()
            .map(|o| o.resource.id.as_str())
            .collect();
        let mut untagged: Vec<String> = (0..30)
            .filter(|i| i % 3 == 1)
            .map(|i| format!("i-{i}"))
            .collect();
        untagged.sort_by(|a, b| {
            format!("arn:aws:ec2:us-east-1:123456789012:instance/{a}")
                .cmp(&format!("arn:aws:ec2:us-east-1:123456789012:instance/{b}"))
        });
        assert_eq!(worst, untagged);
    }
}
