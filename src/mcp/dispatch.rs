//! The one path every tool call takes: gate on dependency health (startup, a dependency down), run the tool,
//! compute one [`CallOutcome`], and let every observer read that outcome — the `nexus_mcp_tool_calls_total`
//! label, the log line, the audit line — and render the answer (`structuredContent` plus text, a tool error with
//! its class leading the text, or a confirmation request).
//!
//! Calls that never reach a tool (arguments that do not deserialize, an unknown tool) get their outcome here too,
//! from the answer rmcp's router gave.
//!
//! (Over 400 lines: about 100 are unit tests of the outcome of every error.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::Value;
use tracing::Instrument as _;

use super::confirm;
use super::guard::Rejected;
use super::metrics::NO_TARGET;
use super::render::Output;
use super::server::NexusServer;
use super::targets::{CONNECTION_ID, Target};
use super::tools::{Effect, ToolContext, ToolError};
use crate::audit::{self, AuditRecord, RequestMeta};
use crate::error::ErrorClass;
use crate::mongo::MongoError;

/// How long a tool call made during startup waits for readiness before answering "starting".
const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// How one tool call ended: computed once in [`NexusServer::call`], read by the metrics label and the audit line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// Ended with a confirmation question (stateless MRTR); the retry carries the answer.
    InputRequired,
    /// A dependency is down or startup has not finished.
    Unavailable {
        class: ErrorClass,
    },
    /// Refused before reaching MongoDB: a guard, a bad argument, or a declined confirmation.
    Rejected {
        class: ErrorClass,
    },
    /// MongoDB (or the path to it) failed the call.
    Failed {
        class: ErrorClass,
    },
}

tokio::task_local! {
    /// The target a call resolved to (set by [`NexusServer::dispatch`] for the call's lifetime).
    static TARGET: Target;
}

/// The name of the target of the call in progress, when the configuration names targets (confirmations are bound
/// to it).
pub(super) fn target_name() -> Option<Arc<str>> {
    TARGET
        .try_with(|t| t.named.then(|| t.name.clone()))
        .ok()
        .flatten()
}

tokio::task_local! {
    /// Where `call` leaves the outcome for `dispatch` (the rmcp router sits between them).
    static OUTCOME: Arc<std::sync::Mutex<Option<CallOutcome>>>;
}

impl CallOutcome {
    pub const LABELS: [&'static str; 5] =
        ["ok", "input_required", "unavailable", "rejected", "failed"];

    fn of(result: &Result<Output, ToolError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(ToolError::InputRequired(_)) => Self::InputRequired,
            Err(e @ (ToolError::Unavailable(_) | ToolError::Mongo(MongoError::Unreachable(_)))) => {
                Self::Unavailable { class: e.class() }
            }
            Err(
                e @ (ToolError::Rejected(_)
                | ToolError::BadArgument(_)
                | ToolError::NotConfirmed(_)),
            ) => Self::Rejected { class: e.class() },
            Err(e) => Self::Failed { class: e.class() },
        }
    }

    /// The metrics label and the audit `outcome`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::InputRequired => "input_required",
            Self::Unavailable { .. } => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::Failed { .. } => "failed",
        }
    }

    /// The error class for the audit line.
    pub fn class(self) -> Option<ErrorClass> {
        match self {
            Self::Ok | Self::InputRequired => None,
            Self::Unavailable { class } | Self::Rejected { class } | Self::Failed { class } => {
                Some(class)
            }
        }
    }

    fn report(self) {
        let _ =
            OUTCOME.try_with(|slot| *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(self));
    }
}

impl NexusServer {
    /// Runs one tool call: gate on dependency health, run, count, log, render. `binding` is what a stateless
    /// confirmation of this call is sealed over (destructive tools only).
    pub(super) async fn call<F, Fut>(
        &self,
        tool: &'static str,
        effect: Effect,
        binding: Option<String>,
        run: F,
    ) -> Result<CallToolResponse, ErrorData>
    where
        F: FnOnce(ToolContext) -> Fut,
        Fut: Future<Output = Result<Output, ToolError>>,
    {
        let started = Instant::now();
        let target = TARGET
            .try_with(Target::clone)
            .unwrap_or_else(|_| self.targets.first().clone());
        let result = self.gate(&target, tool, effect).await;
        let result = match result {
            Err(e) => Err(e),
            Ok(()) => run(target.ctx.clone()).await,
        };
        let outcome = CallOutcome::of(&result);
        CallOutcome::report(outcome);
        self.metrics
            .tool_call(tool, outcome.label(), &target.name)
            .inc();
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        let label = outcome.label();
        match &result {
            Ok(_) => tracing::debug!(tool, outcome = label, duration_ms, "tool call"),
            Err(e) => {
                tracing::info!(tool, outcome = label, class = %e.class(), cause = %e, duration_ms, "tool call failed")
            }
        }
        Ok(match result {
            Ok(output) => {
                let mut r = CallToolResult::success(vec![ContentBlock::text(output.text())]);
                r.structured_content = Some(output.structured);
                r.into()
            }
            Err(ToolError::InputRequired(question)) => confirm::confirmation_request(
                &self.codec,
                binding.as_deref().unwrap_or_default(),
                question,
            )
            .into(),
            // No structuredContent on errors: it would have to match the tool's output schema, and the TypeScript
            // SDK validates it even when isError is set (replacing our message with a schema error). The class
            // leads the text, where every client shows it.
            Err(e) => {
                CallToolResult::error(vec![ContentBlock::text(format!("{}: {e}", e.class()))])
                    .into()
            }
        })
    }

    /// Whether `target` can take a call of `tool` now: startup done (waiting for it only while its first attempts
    /// are under way: a stage that is already failing is answered at once, with its reason), its dependencies
    /// healthy, and writes allowed there.
    async fn gate(&self, target: &Target, tool: &str, effect: Effect) -> Result<(), ToolError> {
        let health = &target.health;
        let on = if self.targets.named() {
            format!("connection {}: ", target.name)
        } else {
            String::new()
        };
        let ready = health.is_started()
            || (health.wait_started_unless_failing(STARTUP_WAIT).await && health.is_started());
        if !ready {
            return Err(ToolError::Unavailable(format!("{on}{}", health.starting())));
        }
        if let Some(why) = health.unavailable() {
            return Err(ToolError::Unavailable(format!("{on}{why}")));
        }
        if effect != Effect::Read && target.ctx.guard.read_only() {
            return Err(Rejected {
                rule: "mcp.read_only",
                message: format!(
                    "{tool} writes, and connection {} is read-only (targets.{}.mcp.read_only)",
                    target.name, target.name
                ),
            }
            .into());
        }
        Ok(())
    }

    /// Answers `tools/call`: routes the call, takes its outcome (or derives it from rmcp's answer when the call
    /// never reached a tool) and writes the audit line.
    pub(super) async fn dispatch(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let meta = request_meta(&context);
        let started = Instant::now();
        let tool = request.name.to_string();
        if let Some(class) = super::scopes::tool_class(&tool)
            && !meta.grants.allows(class)
        {
            // The HTTP edge answers 403 first; this holds for any path around it.
            return Err(ErrorData::invalid_request(
                format!("the access token's scopes do not cover tool {tool}"),
                None,
            ));
        }
        let arguments = request
            .arguments
            .as_ref()
            .map(|a| audit::shape(&Value::Object(a.clone())));
        let field = |key: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|a| a.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (database, collection) = (field("database"), field("collection"));
        let span =
            tracing::info_span!("tool", request_id = %meta.id, caller = %meta.caller, tool = %tool);
        let slot = Arc::new(std::sync::Mutex::new(None));
        // Without named targets, `connectionId` is accepted and ignored, as it always was (the official server's
        // clients send the id of their own `connect`).
        let target = if tool == super::connections::NAME {
            Ok(None)
        } else if !self.targets.named() {
            Ok(Some(self.targets.first()))
        } else {
            self.targets
                .resolve(field(CONNECTION_ID).as_deref())
                .map(Some)
        };
        // The audit line names only configured targets: an unknown `connectionId` is the caller's text.
        let target_label = match &target {
            Ok(Some(t)) if t.named => Some(t.name.to_string()),
            _ => self.targets.named().then(|| NO_TARGET.to_string()),
        };
        let resolved = match &target {
            Ok(Some(t)) => Some(t.name.clone()),
            _ => None,
        };
        let response = match target {
            Ok(target) => {
                let routed = self
                    .tool_router
                    .call(ToolCallContext::new(self, request, context))
                    .instrument(span);
                let target = target.unwrap_or_else(|| self.targets.first()).clone();
                OUTCOME
                    .scope(slot.clone(), TARGET.scope(target, routed))
                    .await
            }
            Err(e) => {
                // No such target: answered like any refused call (its outcome counted and audited).
                let outcome = CallOutcome::Rejected { class: e.class() };
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                if self.tool_router.has_route(&tool) {
                    self.metrics
                        .tool_call(&tool, outcome.label(), NO_TARGET)
                        .inc();
                }
                Ok(
                    CallToolResult::error(vec![ContentBlock::text(format!("{}: {e}", e.class()))])
                        .into(),
                )
            }
        };
        let reported = *slot.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = reported.unwrap_or_else(|| {
            let outcome = outcome_without_call(&response);
            if self.tool_router.has_route(&tool) {
                let target = resolved.as_deref().unwrap_or(NO_TARGET);
                self.metrics.tool_call(&tool, outcome.label(), target).inc();
            }
            outcome
        });
        self.audit.record(&audit_record(
            meta,
            target_label,
            tool,
            database,
            collection,
            arguments.unwrap_or(Value::Null),
            started.elapsed(),
            outcome,
            &response,
        ));
        response
    }
}

/// The caller and request id the HTTP edge attached, or a stdio caller.
pub(super) fn request_meta(context: &RequestContext<RoleServer>) -> RequestMeta {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<RequestMeta>())
        .cloned()
        .unwrap_or_else(|| RequestMeta {
            id: RequestMeta::new_id(),
            caller: "stdio".into(),
            grants: crate::access::Grants::ALL,
        })
}

/// The audit line of one call: its outcome (as `call` computed it) and the documents and bytes returned.
#[allow(clippy::too_many_arguments)]
fn audit_record(
    meta: RequestMeta,
    target: Option<String>,
    tool: String,
    database: Option<String>,
    collection: Option<String>,
    arguments: Value,
    took: Duration,
    outcome: CallOutcome,
    response: &Result<CallToolResponse, ErrorData>,
) -> AuditRecord {
    let (documents, bytes) = match response {
        Ok(CallToolResponse::Complete(r)) => {
            let documents = r
                .structured_content
                .as_ref()
                .and_then(|s| s.get("count").or_else(|| s.get("total")))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let bytes = r
                .content
                .iter()
                .filter_map(|c| c.as_text())
                .map(|t| t.text.len() as u64)
                .sum();
            (documents, bytes)
        }
        _ => (0, 0),
    };
    AuditRecord {
        timestamp: crate::rfc3339::now(),
        request_id: meta.id,
        caller: meta.caller,
        target,
        tool,
        database,
        collection,
        outcome: outcome.label().into(),
        error_class: outcome.class().map(|c| c.as_str().to_string()),
        duration_ms: (took.as_secs_f64() * 1e6).round() / 1e3,
        documents,
        bytes,
        arguments,
    }
}

/// The outcome of a call that never reached [`NexusServer::call`]: rmcp answered it (arguments that do not
/// deserialize come back as a tool error; an unknown tool as a JSON-RPC error).
fn outcome_without_call(response: &Result<CallToolResponse, ErrorData>) -> CallOutcome {
    match response {
        Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => CallOutcome::Rejected {
            class: ErrorClass::QueryRejected,
        },
        Ok(CallToolResponse::Complete(_)) => CallOutcome::Ok,
        Ok(_) => CallOutcome::InputRequired,
        Err(_) => CallOutcome::Rejected {
            class: ErrorClass::QueryRejected,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outcome_per_error_feeds_the_metric_label_and_the_audit_line() {
        use crate::mcp::guard::Rejected;
        let rejected = Rejected {
            rule: "mcp.read_only",
            message: "no".into(),
        };
        let cases: Vec<(Result<Output, ToolError>, &str, Option<&str>)> = vec![
            (
                Err(ToolError::Unavailable("down".into())),
                "unavailable",
                Some("MONGO_UNREACHABLE"),
            ),
            (
                Err(ToolError::Mongo(MongoError::Unreachable("x".into()))),
                "unavailable",
                Some("MONGO_UNREACHABLE"),
            ),
            (
                Err(ToolError::Mongo(MongoError::Timeout("x".into()))),
                "failed",
                Some("MONGO_TIMEOUT"),
            ),
            (
                Err(ToolError::Mongo(MongoError::AuthFailed("x".into()))),
                "failed",
                Some("MONGO_AUTH_FAILED"),
            ),
            (
                Err(ToolError::Mongo(MongoError::Command("x".into()))),
                "failed",
                Some("QUERY_FAILED"),
            ),
            (
                Err(ToolError::Rejected(rejected)),
                "rejected",
                Some("QUERY_REJECTED"),
            ),
            (
                Err(ToolError::BadArgument("x".into())),
                "rejected",
                Some("QUERY_REJECTED"),
            ),
            (
                Err(ToolError::NotConfirmed("x".into())),
                "rejected",
                Some("QUERY_REJECTED"),
            ),
            (
                Err(ToolError::AmbiguousWrite("x".into())),
                "failed",
                Some("QUERY_FAILED"),
            ),
            (
                Err(ToolError::NotFound("x".into())),
                "failed",
                Some("QUERY_FAILED"),
            ),
            (
                Err(ToolError::InputRequired("x".into())),
                "input_required",
                None,
            ),
        ];
        for (result, label, class) in cases {
            let outcome = CallOutcome::of(&result);
            assert_eq!(outcome.label(), label, "{result:?}");
            assert!(
                CallOutcome::LABELS.contains(&label),
                "{label} is pre-created"
            );
            assert_eq!(outcome.class().map(ErrorClass::as_str), class, "{result:?}");
            let meta = RequestMeta {
                id: "r".into(),
                caller: "c".into(),
                grants: crate::access::Grants::ALL,
            };
            let record = audit_record(
                meta,
                None,
                "find".into(),
                None,
                None,
                Value::Null,
                Duration::ZERO,
                outcome,
                &Err(ErrorData::internal_error("x", None)),
            );
            assert_eq!(
                (record.outcome.as_str(), record.error_class.as_deref()),
                (label, class)
            );
        }
    }
}
