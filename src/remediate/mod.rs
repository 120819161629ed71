//! Remediation: plans of tag changes that fix violations (add a missing tag, correct an
//! invalid value, respell a key), each change with where its value came from, and the AWS
//! command lines that apply them for teams that apply changes through their own pipeline.
//!
//! A plan never overwrites a valid value: it only touches tags that are missing or draw a
//! finding, and only with values the policy accepts. Its `before` records what each touched
//! key held when the plan was made, so that an apply can refuse a resource changed since.

pub mod apply;
pub mod plan;

pub use apply::{
    ResourceOutcome, ResourceStatus, WriteKind, WriteRecord, apply, keep_record, kept_apply, undo,
};
pub use plan::{
    ChangeAction, ChangeOrigin, Plan, PlanQuestion, PlanTotals, ResourceChanges, Skipped,
    TagChange, keep_plan, kept_plan, make_plan, plan_changes,
};
