//! Engine settings and per-service rate limits, from `config/tagguard.toml` (embedded) or a file.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The default configuration shipped in `config/tagguard.toml`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/tagguard.toml");

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Engine sizing.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Rate limits by key (`ec2`, `s3`, ..., `default`, `local`).
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimit>,
    /// The MCP server (`tagguard serve`).
    #[serde(default)]
    pub server: ServerConfig,
    /// History, audit log and cache (`--data-dir` and `TAGGUARD_DATA_DIR` override the directory).
    #[serde(default)]
    pub store: StoreConfig,
    /// The scan-result cache of the tools.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Limits on tool calls per client session.
    #[serde(default)]
    pub guardrails: Guardrails,
    /// Retries of AWS calls: the SDK's own, then the fetcher's of a page.
    #[serde(default)]
    pub retries: RetryConfig,
    /// Timeouts of AWS calls, and the optional whole-scan deadline.
    #[serde(default)]
    pub timeouts: TimeoutConfig,
    /// How limiters slow down when AWS throttles, and recover.
    #[serde(default)]
    pub pacing: PacingConfig,
    /// Billing data: the allocation tags and how long answers are cached.
    #[serde(default)]
    pub cost: CostConfig,
}

/// How AWS calls are retried: first by the SDK (each call), then by the fetcher (a page whose
/// call failed past the SDK's attempts with an answer that says "try later").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// The SDK's retry mode: `standard` or `adaptive` (the SDK's own client-side rate limiter on
    /// top of tagguard's limiters).
    pub mode: RetryMode,
    /// Attempts the SDK makes of one call, the first included.
    pub max_attempts: u32,
    /// The SDK's first backoff, in milliseconds (then exponential, with jitter).
    pub initial_backoff_ms: u64,
    /// The SDK's longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// Retries of one call after the SDK gave up on it throttled or failed (5xx), and then of
    /// its page by the fetcher.
    pub page_retries: u32,
    /// The fetcher's first backoff before retrying a page, in milliseconds (doubling, full
    /// jitter).
    pub page_backoff_ms: u64,
    /// The fetcher's longest backoff, in milliseconds.
    pub page_max_backoff_ms: u64,
    /// Page retries one shard may spend in all (past it, the shard ends as an issue), and
    /// call retries the calls of one page may spend between them.
    pub shard_retry_budget: u32,
}

/// The SDK's retry modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryMode {
    /// Exponential backoff with jitter, and a retry quota.
    Standard,
    /// Standard, plus the SDK's client-side rate limiter.
    Adaptive,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            mode: RetryMode::Standard,
            max_attempts: 4,
            initial_backoff_ms: 200,
            max_backoff_ms: 5_000,
            page_retries: 6,
            page_backoff_ms: 500,
            page_max_backoff_ms: 15_000,
            shard_retry_budget: 100,
        }
    }
}

/// Timeouts of AWS calls. A call that hangs ends within `operation_seconds`, retries included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    /// Opening a connection, in milliseconds.
    pub connect_ms: u64,
    /// One attempt of a call, from sending to the whole answer, in seconds.
    pub attempt_seconds: u64,
    /// One call, every attempt and backoff included, in seconds.
    pub operation_seconds: u64,
    /// A whole scan, in seconds (0: no deadline). Shards not read by then end as `timeout`
    /// issues and the result is partial. `--deadline` overrides it; the tools'
    /// `deadline_seconds` can only shorten it.
    pub scan_deadline_seconds: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            connect_ms: 3_100,
            attempt_seconds: 10,
            operation_seconds: 30,
            scan_deadline_seconds: 0,
        }
    }
}

impl TimeoutConfig {
    /// The scan deadline, if any.
    pub fn scan_deadline(&self) -> Option<std::time::Duration> {
        (self.scan_deadline_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.scan_deadline_seconds))
    }
}

/// How a limiter reacts to throttling: its rate drops by `slow_down_factor` (at most once per
/// `1 / rate`, since calls already in flight report the same pressure), never below
/// `floor_fraction` of its quota, and climbs back linearly to the quota in `recovery_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    /// The rate after a throttle, as a fraction of the rate before (0 < f < 1).
    pub slow_down_factor: f64,
    /// The lowest rate, as a fraction of the quota (0 < f ≤ 1).
    pub floor_fraction: f64,
    /// Seconds from the floor back to the full quota without throttling.
    pub recovery_seconds: f64,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            slow_down_factor: 0.5,
            floor_fraction: 0.05,
            recovery_seconds: 20.0,
        }
    }
}

/// The scan-result cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Seconds a scan answers repeated questions about the same scope (0: no cache).
    pub ttl_seconds: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { ttl_seconds: 300 }
    }
}

/// Billing data (Cost Explorer, or the demo's billing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// The allocation tags of the attribution gap when a question names none (empty: the
    /// policy's required tags that apply to every resource type).
    pub allocation_tags: Vec<String>,
    /// Minutes a billing answer is reused (billing data changes a few times a day, and each
    /// Cost Explorer request costs $0.01).
    pub cache_ttl_minutes: u32,
    /// Price each scanned resource from billing (resource-level costs, allocation pools).
    pub resource_costs: bool,
    /// Seconds a scan waits for billing's prices before it goes on without them.
    pub pricing_budget_seconds: u64,
    /// Record the last full month's attribution gap with every scan recorded in the history
    /// (from the cache when fresh), for `get_violation_history`'s gap trend.
    pub record_gap: bool,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            allocation_tags: Vec::new(),
            cache_ttl_minutes: 360,
            resource_costs: true,
            pricing_budget_seconds: 20,
            record_gap: true,
        }
    }
}

/// Limits on what one client session may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guardrails {
    /// Tool calls one session may make (0: no limit).
    pub max_calls_per_session: u32,
    /// The same tool with the same arguments, within `identical_window_minutes`, more often
    /// than this is a loop (0: no limit).
    pub max_identical_calls: u32,
    /// The window of loop detection.
    pub identical_window_minutes: u64,
    /// A call running longer is stopped (its scan cancelled) with a `timeout` error.
    pub call_timeout_seconds: u64,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            max_calls_per_session: 500,
            max_identical_calls: 3,
            identical_window_minutes: 10,
            call_timeout_seconds: 900,
        }
    }
}

/// Where and how much tagguard remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The data directory; unset means the per-user default (`~/.local/share/tagguard`).
    pub data_dir: Option<std::path::PathBuf>,
    /// Scans whose per-resource findings are kept (for drift); older scans keep their summary.
    pub findings_scans: usize,
    /// Days scan summaries are kept; never fewer than 400.
    pub summary_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: None,
            findings_scans: 20,
            summary_days: 730,
        }
    }
}

/// Settings of the MCP server. Environment variables (`TAGGUARD_AUTH_TOKEN`, ...) override them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Bearer token HTTP clients must send. Required when the server binds to an address other
    /// than loopback; prefer `TAGGUARD_AUTH_TOKEN` to writing it in a file.
    pub auth_token: Option<String>,
    /// Browser origins allowed besides loopback ones (`https://console.example.com`); requests
    /// with any other `Origin` get 403 (DNS-rebinding protection).
    pub allowed_origins: Vec<String>,
    /// Largest HTTP request body or stdio line, in bytes.
    pub max_request_bytes: usize,
    /// HTTP sessions idle longer than this are forgotten (clients then get 404 and start over).
    pub session_idle_minutes: u64,
    /// Most HTTP sessions at once; beyond it, `initialize` is refused with 503.
    pub max_sessions: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth_token: None,
            allowed_origins: Vec::new(),
            max_request_bytes: 1024 * 1024,
            session_idle_minutes: 60,
            max_sessions: 1000,
        }
    }
}

/// Engine sizing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Fetcher actors running at once, across scans.
    pub max_concurrent_fetchers: usize,
    /// Fetcher slots kept for scans that have no fetcher running, so that a scan started
    /// while others hold every other slot (a lookup during organisation-wide scans) starts at
    /// once; the rest are shared round-robin. Never more than `max_concurrent_fetchers` − 1.
    pub reserved_fetchers: usize,
    /// Validator workers per scan; 0 means one per core.
    pub validator_workers: usize,
    /// Batches fetched but not yet merged into the scan's tally, per scan.
    pub max_in_flight_batches: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_fetchers: 32,
            reserved_fetchers: 8,
            validator_workers: 0,
            max_in_flight_batches: 64,
        }
    }
}

impl EngineConfig {
    /// Validator workers to start: the configured number, or one per core.
    pub fn effective_validator_workers(&self) -> usize {
        if self.validator_workers > 0 {
            self.validator_workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

/// A token bucket: a steady rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Steady rate.
    pub requests_per_second: NonZeroU32,
    /// Requests allowed at once after a quiet period.
    pub burst: NonZeroU32,
}

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config '{file}': {reason}")]
    Io {
        /// The file as named.
        file: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not valid configuration.
    #[error("error in config '{file}': {message}")]
    Invalid {
        /// The file as named.
        file: String,
        /// What is wrong, with line and column.
        message: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config::parse(DEFAULT_CONFIG_TOML, "built-in")
            .expect("the embedded config is checked by a unit test")
    }
}

impl Config {
    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            file: origin.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            file: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Values TOML's types admit but that make no sense.
    fn check(&self) -> Result<(), String> {
        let pacing = &self.pacing;
        if !(pacing.slow_down_factor > 0.0 && pacing.slow_down_factor < 1.0) {
            return Err("pacing.slow_down_factor must be between 0 and 1 (exclusive)".into());
        }
        if !(pacing.floor_fraction > 0.0 && pacing.floor_fraction <= 1.0) {
            return Err("pacing.floor_fraction must be above 0 and at most 1".into());
        }
        if !(pacing.recovery_seconds.is_finite() && pacing.recovery_seconds > 0.0) {
            return Err("pacing.recovery_seconds must be above 0".into());
        }
        if self.retries.max_attempts == 0 {
            return Err("retries.max_attempts must be at least 1 (the first attempt)".into());
        }
        let t = &self.timeouts;
        if t.connect_ms == 0 || t.attempt_seconds == 0 || t.operation_seconds == 0 {
            return Err(
                "timeouts.connect_ms, attempt_seconds and operation_seconds must be above 0".into(),
            );
        }
        if t.operation_seconds < t.attempt_seconds {
            return Err(
                "timeouts.operation_seconds must be at least timeouts.attempt_seconds".into(),
            );
        }
        Ok(())
    }

    /// Loads a file, or the embedded default when `path` is `None`, then applies the
    /// environment's overrides ([`Config::apply_env`]).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            None => Config::default(),
            Some(path) => {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
                    file: file.clone(),
                    reason: e.kind().to_string(),
                })?;
                Config::parse(&text, &file)?
            }
        };
        config.apply_env();
        Ok(config)
    }

    /// Applies the environment's overrides: `TAGGUARD_AUTH_TOKEN` (empty: none) and
    /// `TAGGUARD_ALLOWED_ORIGINS` (comma-separated) for the server, `TAGGUARD_DATA_DIR` for
    /// the store. Secrets belong in the environment rather than in a file.
    pub fn apply_env(&mut self) {
        self.apply_vars(|name| std::env::var(name).ok());
    }

    fn apply_vars(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(token) = var("TAGGUARD_AUTH_TOKEN") {
            self.server.auth_token = Some(token).filter(|t| !t.is_empty());
        }
        if let Some(origins) = var("TAGGUARD_ALLOWED_ORIGINS") {
            self.server.allowed_origins = origins
                .split(',')
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect();
        }
        if let Some(dir) = var("TAGGUARD_DATA_DIR").filter(|d| !d.is_empty()) {
            self.store.data_dir = Some(dir.into());
        }
    }

    /// The rate limit for a key, falling back to `default`, then to 5/s.
    pub fn rate_limit(&self, key: &str) -> RateLimit {
        self.rate_limits
            .get(key)
            .or_else(|| self.rate_limits.get("default"))
            .copied()
            .unwrap_or(RateLimit {
                requests_per_second: NonZeroU32::new(5).expect("5 is not zero"),
                burst: NonZeroU32::new(10).expect("10 is not zero"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_parses_with_aws_and_local_limits() {
        let config = Config::default();
        for key in [
            "ec2", "rds", "s3", "lambda", "ecs", "tagging", "default", "local",
        ] {
            assert!(config.rate_limits.contains_key(key), "{key}");
        }
        assert_eq!(config.rate_limit("dynamodb"), config.rate_limits["default"]);
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut config = Config::default();
        let vars = |name: &str| match name {
            "TAGGUARD_AUTH_TOKEN" => Some("s3cret".to_string()),
            "TAGGUARD_ALLOWED_ORIGINS" => Some(" https://a.example , ,https://b.example".into()),
            _ => None,
        };
        config.apply_vars(vars);
        assert_eq!(config.server.auth_token.as_deref(), Some("s3cret"));
        assert_eq!(
            config.server.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(config.store.data_dir, None);
        config.apply_vars(|name| (name == "TAGGUARD_AUTH_TOKEN").then(String::new));
        assert_eq!(config.server.auth_token, None, "empty means none");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::parse("[engine]\nmax_fetchers = 3\n", "c.toml").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_fetchers`"),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("error in config 'c.toml'"),
            "{err}"
        );
    }
}
