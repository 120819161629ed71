//! Counting AWS API calls per operation, retries included: an SDK interceptor on every client,
//! counting into the [`ApiCallCounter`] of the scan that made the call.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::source::ApiCallCounter;

/// The interceptor: counts each attempt into one scan's counter, keyed like IAM actions.
#[derive(Debug, Clone)]
pub struct CountCalls(ApiCallCounter);

impl CountCalls {
    /// Counts into `calls` (clones share the counts).
    pub fn new(calls: &ApiCallCounter) -> CountCalls {
        CountCalls(calls.clone())
    }

    fn record(&self, service: &str, operation: &str) {
        self.0
            .record(&format!("{}:{operation}", iam_prefix(service)));
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

impl Intercept for CountCalls {
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
        let counter = ApiCallCounter::default();
        let calls = CountCalls::new(&counter);
        calls.record("Resource Groups Tagging API", "GetResources");
        calls.record("Resource Groups Tagging API", "GetResources");
        calls.record("EC2", "DescribeInstances");
        let snapshot = counter.snapshot();
        assert_eq!(snapshot["tag:GetResources"], 2);
        assert_eq!(snapshot["ec2:DescribeInstances"], 1);
    }
}
