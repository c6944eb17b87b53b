//! The MCP server: Airlock's jobs and connections as tools for AI agents,
//! productive but not privileged.
//!
//! `/mcp` speaks MCP's streamable HTTP transport (through the `rmcp` SDK,
//! stateless, so replicas need no shared session store). A request flows:
//!
//! 1. The API's request layer gives the request its id, log line and
//!    metrics; `guard` refuses a disallowed `Host` or `Origin` with 403
//!    (DNS rebinding, audited), then authenticates the bearer token exactly
//!    as the API does (401 with `WWW-Authenticate`, audited on channel
//!    `mcp`).
//! 2. `server` answers `tools/list` with the tools the caller's
//!    permissions can use somewhere, and executes `tools/call` by calling
//!    Airlock's own API in-process with the caller's token, tagged with
//!    channel `mcp`: authorization, the job queue and the audit trail are the
//!    API's, not a second implementation of them.
//! 3. `tools` maps each tool's arguments to one API request; `server` turns
//!    the API's answer into a tool result (a 4xx or 5xx is a tool error
//!    carrying the request id, never a protocol failure).
//!
//! `airlock mcp` ([`bridge`]) serves the same tools over stdio for agents
//! that launch tools as processes, by forwarding to a running Airlock's
//! `/mcp` with `AIRLOCK_TOKEN`, so the server applies the same policy.

pub mod bridge;
mod guard;
mod server;
mod tools;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{HttpMethod, Operation};

use crate::web::AppState;
use crate::web::routes::{Route, Routes};
use airlock_domain::host_gate::{self, Gate};
use airlock_domain::settings::InvalidKey;

pub use tools::ToolName;

/// Where the MCP server is mounted.
pub const PATH: &str = "/mcp";

/// What can go wrong in the MCP adapter and the stdio bridge.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The tool's arguments do not fit its input schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// No tool has this name.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// `AIRLOCK_URL` or `AIRLOCK_TOKEN` is missing or malformed.
    #[error("{0}")]
    Setup(String),
    /// The remote Airlock could not be reached, or refused the token.
    #[error("cannot connect to Airlock's MCP server at {url}: {message}")]
    Connect { url: String, message: String },
    /// The stdio side of the bridge failed.
    #[error("the stdio transport failed: {0}")]
    Stdio(String),
}

/// `/mcp` (POST only), behind its guard, answering the hosts and origins
/// `mcp` allows. Mounted next to the API by the composition root; each
/// tool call goes through [`crate::api::router`] in-process.
pub fn routes(state: AppState, mcp: &McpConfig) -> Routes {
    let gate = Arc::new(Gate::new(&mcp.allowed_hosts, &mcp.allowed_origins));
    let api = crate::api::router(state.clone());
    let handler_state = state.clone();
    let service = StreamableHttpService::new(
        move || Ok(server::AirlockMcp::new(handler_state.clone(), api.clone())),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            // Stateless: every POST carries its own identity, and any
            // replica can answer it.
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_max_request_body_bytes(crate::web::MAX_BODY_BYTES)
            // The guard in front checks Host and Origin (with `"*"` and
            // the port rules documented on `McpConfig`), before the token.
            .disable_allowed_hosts()
            .disable_allowed_origins(),
    );
    Routes::new()
        .service(Route::described(
            PATH,
            HttpMethod::Post,
            operation(),
            service,
        ))
        .wrap(|router| {
            router
                .layer(axum::middleware::from_fn_with_state(
                    guard::GuardState {
                        state: state.clone(),
                        gate,
                    },
                    guard::layer,
                ))
                // Outermost: the request id, log line and metrics every
                // route has.
                .layer(axum::middleware::from_fn_with_state(
                    state,
                    crate::web::request_id::layer,
                ))
        })
}

/// `POST /mcp` in the OpenAPI document: one JSON-RPC operation (the tools
/// themselves are listed by MCP's `tools/list`, per caller).
fn operation() -> Operation {
    use utoipa::openapi::path::OperationBuilder;
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Type};

    let json_rpc = || {
        ContentBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .description(Some("A JSON-RPC 2.0 message")),
            ))
            .build()
    };
    OperationBuilder::new()
        .tag("mcp")
        .operation_id(Some("mcp"))
        .summary(Some("The MCP server (streamable HTTP, stateless)"))
        .description(Some(
            "JSON-RPC messages of the Model Context Protocol: `initialize`, `tools/list` \
             (the tools the caller's permissions can use) and `tools/call` (each runs one \
             request of Airlock's own API as the caller). `Host` and `Origin` must be allowed \
             by `[mcp]`.",
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(client_message().unwrap_or_else(|error| {
                            tracing::error!(%error, "the MCP messages' schema does not build");
                            utoipa::openapi::ObjectBuilder::new().into()
                        })))
                        .build(),
                )
                .required(Some(utoipa::openapi::Required::True))
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The JSON-RPC answer (a failed tool call is a result with `isError`)")
                .content("application/json", json_rpc()),
        )
        .response(
            "202",
            ResponseBuilder::new().description("A notification was accepted"),
        )
        .response("401", RefOr::Ref(Ref::from_response_name("Unauthorized")))
        .response("403", RefOr::Ref(Ref::from_response_name("Forbidden")))
        .response(
            "415",
            ResponseBuilder::new().description(
                "The body is not JSON (`Content-Type: application/json`), or not a \
                 JSON-RPC message of MCP",
            ),
        )
        .response(
            "406",
            ResponseBuilder::new().description(
                "The request's `Accept` names media types but not both `application/json` \
                 and `text/event-stream`, as MCP's streamable HTTP requires (no `Accept`, or \
                 `*/*`, takes both)",
            ),
        )
        .response(
            "429",
            RefOr::Ref(Ref::from_response_name("TooManyRequests")),
        )
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
        .build()
}

/// The JSON-RPC messages `/mcp` takes from a client. Any method is a
/// well-formed message (an unknown request is answered with JSON-RPC's
/// "method not found", an unknown notification is accepted); the `params`
/// of MCP's own methods are MCP's schema's to describe.
fn client_message() -> Result<utoipa::openapi::RefOr<utoipa::openapi::Schema>, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "type": "object",
        "description": "A JSON-RPC 2.0 message of the Model Context Protocol: a request \
            (with an `id`) such as `initialize`, `tools/list` or `tools/call`, or a \
            notification (without) such as `notifications/initialized`",
        "required": ["jsonrpc", "method"],
        "properties": {
            "jsonrpc": {"type": "string", "enum": ["2.0"]},
            "id": {"type": ["integer", "string"], "minimum": i64::MIN, "maximum": i64::MAX},
            "method": {"type": "string"},
            "params": {"type": ["object", "null"]},
        },
    }))
}

/// `[mcp]`: the MCP server at `/mcp`. Its tools act with the caller's own
/// token and policy; these keys only say which `Host` and `Origin` headers
/// it answers, so that a web page cannot reach a local Airlock through DNS
/// rebinding (refused with 403).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// `Host` values served: `name` (any port) or `name:port`; `"*"` serves
    /// any host (only behind a proxy that checks it). Loopback by default.
    pub allowed_hosts: Vec<String>,
    /// Browser origins served, `scheme://host:port` (`:*` for any port);
    /// `"*"` serves any. Requests without an `Origin` header (agents that
    /// are not browsers) are always served. Loopback pages by default.
    pub allowed_origins: Vec<String>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: host_gate::LOOPBACK_HOSTS.map(str::to_owned).to_vec(),
            allowed_origins: host_gate::LOOPBACK_ORIGINS.map(str::to_owned).to_vec(),
        }
    }
}

impl McpConfig {
    /// Checks every host and origin entry; errors name the key
    /// (`mcp.allowed_hosts[1]`).
    pub fn validate(&self) -> Result<(), InvalidKey> {
        airlock_domain::host_gate::validate("mcp", &self.allowed_hosts, &self.allowed_origins)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_messages_schema_builds_with_what_a_message_needs() {
        let schema = super::client_message().expect("the schema builds");
        let value = serde_json::to_value(&schema).expect("serializes");
        assert_eq!(value["required"], serde_json::json!(["jsonrpc", "method"]));
        assert_eq!(
            value["properties"]["jsonrpc"]["enum"],
            serde_json::json!(["2.0"])
        );
        assert_eq!(value["properties"]["method"]["type"], "string");
        assert_eq!(value["properties"]["id"]["maximum"], i64::MAX);
        assert_eq!(
            value["properties"]["params"]["type"],
            serde_json::json!(["object", "null"])
        );
    }
}
