//! Watching every AWS API call: an SDK interceptor on every client that counts each attempt
//! into the [`ApiCallCounter`] of the scan that made it (retries included, as AWS counts them
//! against quotas), counts the attempts AWS throttled and the retries, and tells the limiter of
//! the call's (account, region, API) about each throttle, so that every scan in the process
//! slows down.

use std::sync::Arc;

use aws_config::Region;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::errors::is_throttle;
use crate::source::{ApiCallCounter, FetchContext, Throttle};

/// The interceptor: counts into one scan's counter and reports throttles to the engine's
/// limiters, for calls made in one account.
#[derive(Clone)]
pub struct CountCalls {
    calls: ApiCallCounter,
    throttle: Arc<dyn Throttle>,
    account: Arc<str>,
}

impl std::fmt::Debug for CountCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountCalls")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl CountCalls {
    /// Watches calls made in `account` (empty before the caller's account is known) for the
    /// scan of `cx`.
    pub fn new(cx: &FetchContext<'_>, account: &str) -> CountCalls {
        CountCalls {
            calls: cx.calls().clone(),
            throttle: cx.throttle(),
            account: Arc::from(account),
        }
    }

    /// The operation's name, keyed like IAM actions, and its limiter's key.
    fn names(cfg: &ConfigBag) -> Option<(String, String)> {
        let metadata = cfg.load::<Metadata>()?;
        let (prefix, key) = service_names(metadata.service());
        Some((format!("{prefix}:{}", metadata.name()), key))
    }
}

/// A service's IAM prefix and rate-limit key from the SDK's service name: counts read like the
/// actions in the IAM policy (`tag:GetResources`, not `Resource Groups Tagging
/// API:GetResources`), and throttles reach the limiter the calls were paced with (`tagging`
/// for the tagging API, else the lower-case name).
fn service_names(service: &str) -> (String, String) {
    match service.to_ascii_lowercase().as_str() {
        "resource groups tagging api" => ("tag".to_string(), super::tagging::SERVICE.to_string()),
        other => {
            let name = other.replace(' ', "");
            (name.clone(), name)
        }
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
        if let Some((operation, _)) = CountCalls::names(cfg) {
            self.calls.record(&operation);
            if cfg
                .load::<RequestAttempts>()
                .is_some_and(|a| a.attempts() > 1)
            {
                self.calls.record_retry(&operation);
            }
        }
        Ok(())
    }

    /// After each attempt: a throttled answer is counted, and slows the call's limiter down.
    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(response) = context.response() else {
            return Ok(());
        };
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(());
        }
        let body = response.body().bytes().unwrap_or_default();
        if !is_throttle(status, response.headers().get("x-amzn-errortype"), body) {
            return Ok(());
        }
        if let Some((operation, key)) = CountCalls::names(cfg) {
            self.calls.record_throttled(&operation);
            let region = cfg.load::<Region>().map(|r| r.as_ref().to_string());
            self.throttle
                .throttled(&self.account, region.as_deref().unwrap_or(""), &key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_keyed_like_iam_actions_and_limiters() {
        let names = |s: &str| service_names(s);
        assert_eq!(names("Resource Groups Tagging API").0, "tag");
        assert_eq!(names("Resource Groups Tagging API").1, "tagging");
        assert_eq!(names("EC2").0, "ec2");
        assert_eq!(names("ECS").1, "ecs");
    }
}
