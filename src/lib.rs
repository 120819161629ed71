//! tagguard: tag compliance for AWS estates, as a library, a CLI and an MCP server.
//!
//! # Layout
//! Dependencies point down only: `mcp → tools → scans/cost/report → engine → store →
//! source/policy → domain/config`.
//! - [`domain`]: resources, ARNs, resource types, tags, money, scan scope, the mergeable
//!   tally and the scan result (pure data).
//! - [`policy`]: the tagging policy, its loading with located errors, and validation (pure).
//! - [`source`]: where resources come from, behind one trait: AWS itself, the synthetic demo
//!   estate, and snapshot files of `aws resourcegroupstaggingapi get-resources`.
//! - [`config`]: engine settings and per-service rate limits (`config/tagguard.toml`).
//! - [`engine`]: the actor pipeline (supervisor, planner, fetchers, validator pool,
//!   aggregator) and [`engine::EngineHandle`], the typed API for embedding.
//! - [`store`]: redb persistence: scan summaries, recent findings, history and drift, audit
//!   records, cached results.
//! - [`scans`]: the scan service every caller uses: run → cache → record, single-flight.
//! - [`cost`]: billing data (Cost Explorer, the demo's synthetic billing) and the
//!   cost-attribution gap, with its query plan, cache and request counting.
//! - [`report`]: results, history and the audit log rendered for people and files.
//! - [`mcp`]: the MCP front: protocol over a jsonrpsee `RpcModule`, stdio and Streamable HTTP
//!   transports, `/health`.
//! - [`tools`]: the MCP tools, one file each, over [`scans::ScanService`], and their registry.
//!
//! # Example
//! Validate one resource's tags against the built-in policy:
//! ```
//! use tagguard::domain::{ResourceType, Severity, Tag, ViolationType};
//!
//! let policy = tagguard::policy::default_policy();
//! let tags = [
//!     Tag::new("CostCenter", "Marketing"),
//!     Tag::new("Owner", "not-an-email"),
//!     Tag::new("environment", "production"),
//! ];
//! let findings = policy.validate(&ResourceType::Ec2Instance, &tags);
//! let errors: Vec<_> = findings
//!     .iter()
//!     .filter(|f| f.severity == Severity::Error)
//!     .map(|f| (f.violation_type, &*f.tag_name))
//!     .collect();
//! assert_eq!(
//!     errors,
//!     [
//!         (ViolationType::InvalidFormat, "Owner"),
//!         (ViolationType::MissingRequiredTag, "Application"),
//!     ]
//! );
//! // `environment` matches `Environment` ignoring case: a warning, not an error.
//! assert!(findings.iter().any(|f| f.violation_type == ViolationType::KeyCaseMismatch));
//! ```

pub mod config;
pub mod cost;
pub mod domain;
pub mod engine;
pub mod mcp;
pub mod policy;
pub mod remediate;
pub mod report;
pub mod scans;
pub mod source;
pub mod store;
pub mod suggest;
pub mod tools;
