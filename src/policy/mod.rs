//! The tagging policy: model, loading with located errors, and validation. Pure: no I/O beyond
//! reading the file, no async runtime, no AWS types.

mod load;
mod model;
mod validate;

pub use load::{
    DEFAULT_POLICY_JSON, PolicyError, default_policy, humanize, io_reason, load_policy,
    parse_policy,
};
pub use model::{
    CompiledOptional, CompiledRequired, NamingRules, OptionalTagRule, Policy, PolicyDocument,
    RequiredTagRule,
};
pub use validate::{eq_ignore_case, is_portable, is_reserved};
