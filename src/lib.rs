//! tagguard: tag compliance for AWS estates, as a library, a CLI and an MCP server.
//!
//! # Layout
//! Dependencies point down only: `engine → source/policy → domain`.
//! - [`domain`]: resources, ARNs, resource types, tags, scan scope and results (pure data).
//! - [`policy`]: the tagging policy, its loading with located errors, and validation (pure).
//! - [`source`]: where resources come from, behind one trait: the synthetic demo estate and
//!   snapshot files of `aws resourcegroupstaggingapi get-resources`.
//! - [`config`]: engine settings and per-service rate limits (`config/tagguard.toml`).
//! - [`engine`]: the actor pipeline (supervisor, fetchers, validator pool, aggregator) and
//!   [`engine::EngineHandle`], the typed API for embedding.
//! - [`report`]: the result rendered as a table summary, JSON, CSV or Markdown.

pub mod config;
pub mod domain;
pub mod engine;
pub mod policy;
pub mod report;
pub mod source;
