//! Every tool call passes here: a correlation id, the guardrails (a per-session budget, loop
//! detection, a time limit), the call itself, and one audit record with how it ended.
//!
//! Guardrails answer with a tool error that explains the limit (the model can act on it); they
//! never crash the call or turn into a protocol error.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::Utc;
use dashmap::DashMap;
use serde_json::{Value, json};

use super::{CallContext, Content, Tool, ToolEnv, ToolError, ToolRegistry};
pub use crate::config::Guardrails;
use crate::store::{AuditRecord, AuditStatus, audit::redact, audit::redact_text};

/// What one session has used.
#[derive(Default)]
struct SessionUse {
    calls: u32,
    /// (tool and canonical arguments, when) of recent calls, oldest first.
    recent: VecDeque<(String, Instant)>,
}

/// Per-session counters (hot state, in memory).
pub struct CallGate {
    limits: Guardrails,
    sessions: DashMap<String, SessionUse>,
}

/// Why the gate refused a call.
struct Refusal {
    status: AuditStatus,
    message: String,
    details: Value,
}

impl CallGate {
    /// A gate enforcing `limits`.
    pub fn new(limits: Guardrails) -> CallGate {
        CallGate {
            limits,
            sessions: DashMap::new(),
        }
    }

    /// Counts a call against its session, or refuses it. Refused calls are not counted, so a
    /// model that changes course is served again.
    fn admit(
        &self,
        session: &str,
        tool: &str,
        arguments: &Value,
        now: Instant,
    ) -> Result<(), Refusal> {
        let limits = self.limits;
        let mut usage = self.sessions.entry(session.to_string()).or_default();
        if limits.max_calls_per_session > 0 && usage.calls >= limits.max_calls_per_session {
            return Err(Refusal {
                status: AuditStatus::BudgetExceeded,
                message: format!(
                    "this session has made {} tool calls, its budget (guardrails.max_calls_per_session): start a new session to go on, and prefer fewer, broader calls",
                    usage.calls
                ),
                details: json!({ "limit": limits.max_calls_per_session, "calls": usage.calls }),
            });
        }
        // serde_json's maps are ordered, so equal arguments print equal.
        let signature = format!("{tool} {arguments}");
        let window = Duration::from_secs(limits.identical_window_minutes.saturating_mul(60));
        while usage
            .recent
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > window)
        {
            usage.recent.pop_front();
        }
        let repeats = usage.recent.iter().filter(|(s, _)| *s == signature).count() as u32;
        if limits.max_identical_calls > 0 && repeats >= limits.max_identical_calls {
            return Err(Refusal {
                status: AuditStatus::LoopDetected,
                message: format!(
                    "'{tool}' was called {repeats} times in {} minutes with these same arguments; the answer will not change: use the previous result, or change the arguments",
                    limits.identical_window_minutes
                ),
                details: json!({ "limit": limits.max_identical_calls, "repeats": repeats, "window_minutes": limits.identical_window_minutes }),
            });
        }
        usage.calls += 1;
        usage.recent.push_back((signature, now));
        Ok(())
    }

    /// Forgets a session (it ended).
    pub fn end_session(&self, session: &str) {
        self.sessions.remove(session);
    }
}

/// The outcome of one call, ready for the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    /// The correlation id (also in logs and the audit record).
    pub correlation_id: String,
    /// How it ended.
    pub status: AuditStatus,
    /// The structured result, on success.
    pub structured: Option<Value>,
    /// The result's `content`: the tool's blocks on success, the message otherwise.
    pub content: Vec<Content>,
    /// `_meta` for the result: correlation id, cache state, guardrail details, error kind.
    pub meta: Value,
}

impl CallOutcome {
    /// The text of the result's text blocks, joined: the JSON on success (by default), the
    /// message otherwise.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// How a call ended, before it is audited.
struct Ended {
    status: AuditStatus,
    structured: Option<Value>,
    content: Vec<Content>,
    /// The message, for everything but success.
    error: Option<String>,
}

impl Ended {
    fn failed(status: AuditStatus, message: String) -> Ended {
        Ended {
            status,
            structured: None,
            content: vec![Content::text(message.clone())],
            error: Some(message),
        }
    }
}

impl ToolRegistry {
    /// Calls `tool` for `session` through the gate, records the audit entry, and returns the
    /// outcome. `None` when no tool has that name (a protocol error for the caller; it is
    /// audited too).
    pub async fn invoke(
        &self,
        env: &ToolEnv,
        session: &str,
        tool_name: &str,
        arguments: Value,
        ctx: &CallContext,
    ) -> Option<CallOutcome> {
        let correlation_id = uuid::Uuid::new_v4().simple().to_string();
        let started = Instant::now();
        // What every record of this call shares; how it ended is filled in below.
        let base = AuditRecord {
            key: 0,
            at: Utc::now(),
            correlation_id: correlation_id.clone(),
            session: session.to_string(),
            tool: tool_name.to_string(),
            parameters: redact(&arguments),
            status: AuditStatus::UnknownTool,
            error: None,
            error_kind: None,
            duration_ms: 0,
            result_bytes: 0,
            cached: false,
        };
        let Some(tool) = self.get(tool_name) else {
            let error = Some(format!("unknown tool '{tool_name}'"));
            record(env, AuditRecord { error, ..base }).await;
            return None;
        };
        let mut meta = json!({ "correlation_id": correlation_id });
        let ended = match env.gate.admit(session, tool_name, &arguments, started) {
            Err(refusal) => {
                meta["guardrail"] =
                    json!({ "kind": refusal.status.as_str(), "details": refusal.details });
                Ended::failed(refusal.status, refusal.message)
            }
            Ok(()) => run_with_deadline(env, tool.as_ref(), ctx, arguments, &mut meta).await,
        };
        let cached = ctx.cache_note().is_some_and(|c| c.from_cache);
        if let Some(info) = ctx.cache_note() {
            meta["cache"] = json!(info);
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        let bytes = match &ended.structured {
            Some(value) => value.to_string().len() as u64,
            None => ended.error.as_ref().map_or(0, |e| e.len() as u64),
        };
        let message = match ended.status {
            AuditStatus::Success => "tool call succeeded",
            AuditStatus::Cancelled => "tool call cancelled",
            _ => "tool call failed",
        };
        tracing::info!(
            correlation_id = %correlation_id,
            tool = tool_name,
            session,
            status = ended.status.as_str(),
            duration_ms,
            bytes,
            cached,
            "{message}"
        );
        let finished = AuditRecord {
            status: ended.status,
            // Messages quote the arguments; what is secret in those stays out of the log.
            error: ended.error.as_deref().map(redact_text),
            error_kind: meta["error_kind"].as_str().map(str::to_string),
            duration_ms,
            result_bytes: bytes,
            cached,
            ..base
        };
        record(env, finished).await;
        Some(CallOutcome {
            correlation_id,
            status: ended.status,
            structured: ended.structured,
            content: ended.content,
            meta,
        })
    }
}

/// Runs an admitted call under its time limit. The limit cancels the call's own token (a
/// child of the request's), so the tool stops its scan in the engine and returns, and the
/// answer is still sent: a timeout is the server's decision, not the client's cancel.
async fn run_with_deadline(
    env: &ToolEnv,
    tool: &dyn Tool,
    ctx: &CallContext,
    arguments: Value,
    meta: &mut Value,
) -> Ended {
    let limit = Duration::from_secs(env.gate.limits.call_timeout_seconds.max(1));
    let call_ctx = ctx.with_cancel(ctx.cancel.child_token());
    let deadline = call_ctx.cancel.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        deadline.cancel();
    });
    let outcome = tool.call(env, &call_ctx, arguments).await;
    timer.abort();
    let timed_out = call_ctx.cancel.is_cancelled() && !ctx.cancel.is_cancelled();
    match outcome {
        Ok(output) => Ended {
            status: AuditStatus::Success,
            structured: Some(output.structured),
            content: output.content,
            error: None,
        },
        Err(ToolError::Cancelled) if timed_out => {
            meta["guardrail"] = json!({
                "kind": AuditStatus::Timeout.as_str(),
                "details": { "limit_seconds": limit.as_secs() },
            });
            Ended::failed(
                AuditStatus::Timeout,
                format!(
                    "the call ran past its limit of {} s and was stopped: narrow it (resource_types, regions) and try again",
                    limit.as_secs()
                ),
            )
        }
        Err(ToolError::Cancelled) => {
            Ended::failed(AuditStatus::Cancelled, "the call was cancelled".to_string())
        }
        Err(error) => {
            meta["error_kind"] = json!(error.kind());
            if let Some(permission) = error.missing_permission() {
                meta["missing_permission"] = json!(permission);
            }
            let status = match error {
                ToolError::InvalidInput(_) => AuditStatus::InvalidInput,
                _ => AuditStatus::ToolError,
            };
            Ended::failed(status, error.to_string())
        }
    }
}

/// Writes an audit record; a store that fails is logged, and the call's answer stands.
async fn record(env: &ToolEnv, record: AuditRecord) {
    let Some(store) = env.store() else {
        return;
    };
    if let Err(error) = store.record_audit(record).await {
        tracing::warn!(%error, "audit record not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fourth_identical_call_is_a_loop_and_others_pass() {
        let gate = CallGate::new(Guardrails::default());
        let now = Instant::now();
        let args = json!({ "limit": 5 });
        for _ in 0..3 {
            assert!(gate.admit("s", "check_tag_compliance", &args, now).is_ok());
        }
        let refusal = gate
            .admit("s", "check_tag_compliance", &args, now)
            .err()
            .unwrap();
        assert_eq!(refusal.status, AuditStatus::LoopDetected);
        assert!(
            gate.admit("s", "check_tag_compliance", &json!({ "limit": 6 }), now)
                .is_ok()
        );
        assert!(
            gate.admit("other", "check_tag_compliance", &args, now)
                .is_ok()
        );
        // Outside the window, the same call is fine again.
        let later = now + Duration::from_secs(11 * 60);
        assert!(
            gate.admit("s", "check_tag_compliance", &args, later)
                .is_ok()
        );
    }

    #[test]
    fn a_session_over_budget_is_refused() {
        let gate = CallGate::new(Guardrails {
            max_calls_per_session: 2,
            ..Guardrails::default()
        });
        let now = Instant::now();
        assert!(gate.admit("s", "a", &json!(1), now).is_ok());
        assert!(gate.admit("s", "b", &json!(2), now).is_ok());
        let refusal = gate.admit("s", "c", &json!(3), now).err().unwrap();
        assert_eq!(refusal.status, AuditStatus::BudgetExceeded);
        gate.end_session("s");
        assert!(gate.admit("s", "c", &json!(3), now).is_ok());
    }
}
