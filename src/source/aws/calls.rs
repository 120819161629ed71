//! Counting AWS API calls per operation, retries included: an SDK interceptor on every client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use dashmap::DashMap;

/// Calls per `service:Operation`, shared by every client of a source.
#[derive(Debug, Clone, Default)]
pub struct ApiCalls {
    counts: Arc<DashMap<String, AtomicU64>>,
}

impl ApiCalls {
    /// A snapshot of the counts.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect()
    }

    fn record(&self, service: &str, operation: &str) {
        let key = format!("{}:{operation}", iam_prefix(service));
        if let Some(count) = self.counts.get(&key) {
            count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counts
            .entry(key)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// The IAM prefix of a service from the SDK's service name, so counts read like the actions in
/// the IAM policy (`tag:GetResources`, not `Resource Groups Tagging API:GetResources`).
fn iam_prefix(service: &str) -> String {
    match service.to_ascii_lowercase().as_str() {
        "resource groups tagging api" => "tag".to_string(),
        other => other.replace(' ', ""),
    }
}

impl Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "TagguardApiCallCounter"
    }

    /// Once per attempt: a retried call is counted again, as AWS counts it against quotas.
    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.record(metadata.service(), metadata.name());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_keyed_like_iam_actions() {
        let calls = ApiCalls::default();
        calls.record("Resource Groups Tagging API", "GetResources");
        calls.record("Resource Groups Tagging API", "GetResources");
        calls.record("EC2", "DescribeInstances");
        let snapshot = calls.snapshot();
        assert_eq!(snapshot["tag:GetResources"], 2);
        assert_eq!(snapshot["ec2:DescribeInstances"], 1);
    }
}
