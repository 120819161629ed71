//! The tagging policy: model, loading with located errors, validation, the import of AWS
//! Organizations tag policies and the export to Cloud Custodian. Pure: no I/O beyond reading the file, no async runtime, no AWS
//! types.

pub mod export;
pub mod import;
mod load;
mod model;
mod validate;

pub use load::{
    DEFAULT_POLICY_JSON, LoadOptions, PolicyError, default_policy, humanize, io_reason,
    load_policy, load_policy_with, parse_policy, parse_policy_with, strip_position,
};
pub use model::{
    CompiledOptional, CompiledRequired, ExemptionRule, NamingRules, OptionalTagRule, Policy,
    PolicyDocument, RequiredTagRule, TypeSet,
};
pub use validate::{eq_ignore_case, is_portable, is_reserved};
