//! Integration tests through the public API: one test binary, one module per area.

mod engine_ground_truth;
mod support;
