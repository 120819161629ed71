//! The validator pool: ractor factory workers that validate batches of resources against the
//! policy and send each batch's counts and violations to the scan's aggregator.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ractor::factory::{
    Factory, FactoryMessage, Job, Worker, WorkerId, queues::DefaultQueue, routing::QueuerRouting,
};
use ractor::{ActorProcessingErr, ActorRef};
use tokio::sync::OwnedSemaphorePermit;

use super::aggregator::AggregatorMsg;
use crate::domain::{
    Finding, Offender, Resource, ResourceRef, ResourceType, Severity, SeverityFilter, TagCounts,
    TypeCounts, Violation, ViolationType,
};
use crate::policy::Policy;

/// How many offenders each batch (and the final result) keeps.
pub const OFFENDERS_KEPT: usize = 10;

/// A batch to validate: one page of one shard.
pub struct ValidateBatch {
    /// Index of the shard in the scan's plan.
    pub shard: usize,
    /// Page number within the shard, for ordering.
    pub sequence: u64,
    /// The resources.
    pub resources: Vec<Resource>,
    /// Held until the batch is validated: bounds the batches in flight.
    pub permit: OwnedSemaphorePermit,
}

/// What one batch contributed to the scan.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Index of the shard.
    pub shard: usize,
    /// Page number within the shard.
    pub sequence: u64,
    /// Counts per type.
    pub by_type: HashMap<ResourceType, TypeCounts>,
    /// Counts per tag.
    pub by_tag: HashMap<Arc<str>, TagCounts>,
    /// Violations admitted by the severity filter, in page order.
    pub violations: Vec<Violation>,
    /// The batch's worst offenders.
    pub offenders: Vec<Offender>,
    /// Set when validation panicked: the batch's resources are then not counted.
    pub failure: Option<String>,
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
    /// Which violations to keep.
    pub severity: SeverityFilter,
    /// Where outcomes go.
    pub aggregator: ActorRef<AggregatorMsg>,
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
            sequence,
            resources,
            permit,
        } = msg;
        // Validation is pure and should never panic; if it does, the aggregator must still
        // learn that this batch is done, or the scan would wait for it forever.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            validate_batch(
                &self.policy,
                self.severity,
                shard,
                sequence,
                resources,
                scratch,
            )
        }))
        .unwrap_or_else(|panic| BatchOutcome {
            shard,
            sequence,
            failure: Some(panic_text(&panic)),
            ..BatchOutcome::default()
        });
        drop(permit);
        // A stopped aggregator means the scan was cancelled; the outcome is not wanted.
        let _ = self
            .aggregator
            .send_message(AggregatorMsg::BatchValidated(outcome));
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

/// Validates every resource of a batch. Pure, so it is benchmarked and tested directly.
pub fn validate_batch(
    policy: &Policy,
    severity: SeverityFilter,
    shard: usize,
    sequence: u64,
    resources: Vec<Resource>,
    scratch: &mut Vec<Finding>,
) -> BatchOutcome {
    let mut outcome = BatchOutcome {
        shard,
        sequence,
        ..BatchOutcome::default()
    };
    let mut last_type: Option<(ResourceType, TypeCounts)> = None;
    for resource in resources {
        scratch.clear();
        policy.validate_into(&resource.resource_type, &resource.tags, scratch);
        let errors = scratch
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count() as u64;
        let warnings = scratch.len() as u64 - errors;

        // Batches are usually one type: keep its counts aside and touch the map on change.
        let counts = match &mut last_type {
            Some((t, counts)) if *t == resource.resource_type => counts,
            slot => {
                if let Some((t, counts)) = slot.take() {
                    outcome.by_type.entry(t).or_default().merge(&counts);
                }
                &mut slot
                    .insert((resource.resource_type.clone(), TypeCounts::default()))
                    .1
            }
        };
        counts.total += 1;
        counts.errors += errors;
        counts.warnings += warnings;
        if errors == 0 {
            counts.compliant += 1;
        } else {
            counts.non_compliant += 1;
        }
        if scratch.is_empty() {
            continue;
        }

        for finding in scratch.iter() {
            let tag = outcome.by_tag.entry(finding.tag_name.clone()).or_default();
            match (finding.violation_type, finding.severity) {
                (ViolationType::MissingRequiredTag, _) => tag.missing += 1,
                (_, Severity::Error) => tag.invalid += 1,
                (_, Severity::Warning) => tag.warnings += 1,
            }
        }
        let reference = Arc::new(ResourceRef {
            arn: resource.arn,
            id: resource.id,
            resource_type: resource.resource_type,
            region: resource.region,
            account_id: resource.account_id,
            name: resource.name,
            monthly_cost: resource.monthly_cost,
            created_at: resource.created_at,
            tag_count: u32::try_from(resource.tags.len()).unwrap_or(u32::MAX),
        });
        if errors > 0 {
            push_offender(
                &mut outcome.offenders,
                Offender {
                    resource: reference.clone(),
                    errors: errors as u32,
                    warnings: warnings as u32,
                },
            );
        }
        outcome.violations.extend(
            scratch
                .drain(..)
                .filter(|f| severity.admits(f.severity))
                .map(|finding| Violation {
                    resource: reference.clone(),
                    finding,
                }),
        );
    }
    if let Some((t, counts)) = last_type {
        outcome.by_type.entry(t).or_default().merge(&counts);
    }
    outcome
}

/// Inserts an offender, keeping the `OFFENDERS_KEPT` worst: most errors, then the highest
/// monthly cost (what a FinOps team fixes first), then most warnings, then ARN, so the choice
/// is deterministic.
pub fn push_offender(offenders: &mut Vec<Offender>, offender: Offender) {
    fn rank(o: &Offender) -> (Reverse<u32>, Reverse<i64>, Reverse<u32>, &str) {
        let cents = o
            .resource
            .monthly_cost
            .map_or(-1, |c| (c * 100.0).round() as i64);
        (
            Reverse(o.errors),
            Reverse(cents),
            Reverse(o.warnings),
            &o.resource.arn,
        )
    }
    if offenders.len() == OFFENDERS_KEPT {
        if rank(&offender) >= rank(&offenders[OFFENDERS_KEPT - 1]) {
            return;
        }
        offenders.pop();
    }
    let at = offenders.partition_point(|o| rank(o) < rank(&offender));
    offenders.insert(at, offender);
}
