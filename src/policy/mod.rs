//! The tagging policy: model, loading with located errors, validation, and the import of AWS
//! Organizations tag policies. Pure: no I/O beyond reading the file, no async runtime, no AWS
//! types.

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
