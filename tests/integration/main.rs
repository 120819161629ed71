//! Integration tests through the public API: one test binary, one module per area.

mod arn_formats;
mod audit;
mod aws_faults;
mod aws_moto;
mod cli;
mod cost;
mod cost_moto;
mod custodian;
mod engine_faults;
mod engine_ground_truth;
mod engine_sharing;
mod mcp_clients;
mod mcp_fuzz;
mod organizations;
mod properties;
mod remediate;
mod report;
mod scans;
mod store;
mod suggest;
mod support;
mod tools;
