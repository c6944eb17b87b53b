//! The MCP handler of `/mcp`: lists the tools the caller may use, and
//! carries out each call as one request to Airlock's own API, in-process,
//! with the caller's token and channel `mcp`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use tower::ServiceExt;

use super::tools::{ApiCall, ToolName};
use crate::web::request_id::X_REQUEST_ID;
use crate::web::{AppState, Caller, ChannelTag};

/// The largest API answer a tool returns (a page of 200 jobs is far less).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// What agents are told when they connect.
pub(super) const INSTRUCTIONS: &str = "Airlock runs Airbyte syncs on your behalf, within \
    your own permissions: you only see the tools your identity may use. Find a connection \
    with list_connections, start it with trigger_sync (pass wait_seconds to wait for the end, \
    and an idempotency_key to make retries safe), and follow the job with get_job. Every call \
    is recorded in Airlock's audit trail; errors carry a request_id to quote.";

/// The server of one `/mcp` request (rmcp builds one per request).
#[derive(Debug, Clone)]
pub(super) struct AirlockMcp {
    state: AppState,
    /// Airlock's own API, called in-process.
    api: Router,
}

impl AirlockMcp {
    pub(super) fn new(state: AppState, api: Router) -> Self {
        Self { state, api }
    }

    /// Carries out `call` through the API as `caller`; the answer as a
    /// tool result.
    async fn execute(
        &self,
        tool: ToolName,
        call: ApiCall,
        caller: &Caller,
        parts: &Parts,
    ) -> CallToolResult {
        let request_id = &caller.request_id.0;
        let mut request = Request::builder()
            .method(call.method)
            .uri(&call.path_and_query);
        for name in [AUTHORIZATION, USER_AGENT] {
            if let Some(value) = parts.headers.get(&name) {
                request = request.header(name, value);
            }
        }
        request = request.header(&X_REQUEST_ID, request_id.as_str());
        if let Some(key) = &call.idempotency_key {
            request = request.header("idempotency-key", key.as_str());
        }
        request = request.extension(ChannelTag("mcp"));
        if let Some(connect) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            request = request.extension(*connect);
        }
        let request = match request.body(Body::empty()) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(request_id, error = %error, "cannot build the API request");
                return failure(format!("internal error (request_id {request_id})"));
            }
        };
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        };
        let status = response.status();
        tracing::info!(
            request_id,
            subject = %caller.principal.subject,
            tool = tool.as_str(),
            status = status.as_u16(),
            "MCP tool call"
        );
        let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        if status.is_success() {
            match body {
                Some(value) => CallToolResult::structured(value),
                None => failure(format!(
                    "unreadable answer from the API (request_id {request_id})"
                )),
            }
        } else {
            failure(problem_message(status.as_u16(), body.as_ref(), request_id))
        }
    }
}

/// A tool error, with a short message for the agent.
fn failure(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// `Forbidden (forbidden, 403, request_id …)` or, with a detail,
/// `Not found: no such connection (not_found, 404, request_id …)`.
fn problem_message(status: u16, problem: Option<&Value>, request_id: &str) -> String {
    let text = |key| problem.and_then(|p| p.get(key)).and_then(Value::as_str);
    let title = text("title").unwrap_or("Request failed");
    let code = text("code").unwrap_or("error");
    let request_id = text("request_id").unwrap_or(request_id);
    match text("detail") {
        Some(detail) => format!("{title}: {detail} ({code}, {status}, request_id {request_id})"),
        None => format!("{title} ({code}, {status}, request_id {request_id})"),
    }
}

/// The HTTP request that carried this MCP request, and its verified caller
/// (set by the guard).
fn caller_of(context: &RequestContext<RoleServer>) -> Result<(&Parts, &Caller), ErrorData> {
    let parts = context.extensions.get::<Parts>();
    parts
        .and_then(|parts| {
            parts
                .extensions
                .get::<Caller>()
                .map(|caller| (parts, caller))
        })
        .ok_or_else(|| {
            tracing::error!("an MCP request reached the handler without a verified caller");
            ErrorData::internal_error("internal error", None)
        })
}

impl ServerHandler for AirlockMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    /// The tools whose permission some grant gives the caller; the list
    /// depends on who asks, so clients may not share it.
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (_, caller) = caller_of(&context)?;
        let policy = self.state.policy();
        let tools = ToolName::ALL
            .into_iter()
            .filter(|tool| policy.can_anywhere(&caller.principal, tool.permission()))
            .map(ToolName::definition)
            .collect();
        Ok(ListToolsResult::with_all_items(tools)
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    /// Every call of a known tool goes to the API, listed or not: a call
    /// outside the caller's permissions is refused there, and audited.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (parts, caller) = caller_of(&context)?;
        let tool: ToolName = match request.name.parse() {
            Ok(tool) => tool,
            Err(error) => return Err(ErrorData::invalid_params(error.to_string(), None)),
        };
        let result = match tool.request(request.arguments.unwrap_or_default()) {
            Ok(call) => self.execute(tool, call, caller, parts).await,
            Err(error) => failure(format!("{error} (request_id {})", caller.request_id.0)),
        };
        Ok(CallToolResponse::Complete(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_become_short_messages() {
        let problem = serde_json::json!({
            "status": 404, "title": "Not found", "code": "not_found",
            "detail": "no such connection", "request_id": "r1",
        });
        assert_eq!(
            problem_message(404, Some(&problem), "r0"),
            "Not found: no such connection (not_found, 404, request_id r1)"
        );
        let forbidden = serde_json::json!({"title": "Forbidden", "code": "forbidden"});
        assert_eq!(
            problem_message(403, Some(&forbidden), "r2"),
            "Forbidden (forbidden, 403, request_id r2)"
        );
        assert_eq!(
            problem_message(502, None, "r3"),
            "Request failed (error, 502, request_id r3)"
        );
    }
}
