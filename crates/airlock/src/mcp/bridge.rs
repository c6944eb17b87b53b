//! `airlock mcp`: the stdio transport, for agents that launch their tools as
//! processes. It holds no policy of its own: it serves MCP on standard
//! input and output and forwards `tools/list` and `tools/call` to a running
//! Airlock's `/mcp` with the agent's token, so that the server decides,
//! executes and audits every call (channel `mcp`) exactly as over HTTP.

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ContentBlock, Implementation, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig,
};
use rmcp::serve_server;
use rmcp::service::{ClientLifecycleMode, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{
    ClientServiceExt, ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceError,
};
use secrecy::{ExposeSecret, SecretString};

use super::McpError;

/// A connection to a remote Airlock's `/mcp`, as one agent.
#[derive(Debug)]
pub struct Remote {
    url: String,
    service: RunningService<RoleClient, ClientConfig>,
}

/// `/mcp` under `base` (Airlock's root URL, as in `AIRLOCK_URL`); a URL
/// that already names `/mcp` is kept.
pub fn endpoint(base: &str) -> Result<String, McpError> {
    let base = base.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(McpError::Setup(format!(
            "AIRLOCK_URL `{base}` is not an http(s) URL such as http://127.0.0.1:8080"
        )));
    }
    if base.ends_with(super::PATH) {
        Ok(base.to_owned())
    } else {
        Ok(format!("{base}{}", super::PATH))
    }
}

impl Remote {
    /// Connects to Airlock at `base` with `token`; fails when Airlock cannot
    /// be reached or refuses the token.
    pub async fn connect(base: &str, token: &SecretString) -> Result<Self, McpError> {
        let url = endpoint(base)?;
        if token.expose_secret().trim().is_empty() {
            return Err(McpError::Setup(
                "AIRLOCK_TOKEN is empty: set it to a token of your identity provider".to_owned(),
            ));
        }
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url.clone())
                .auth_header(token.expose_secret().trim()),
        );
        let client = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("airlock-mcp-bridge", env!("CARGO_PKG_VERSION")),
        );
        let lifecycle = ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        };
        let service = tokio::time::timeout(
            Duration::from_secs(30),
            client.serve_with_lifecycle(transport, lifecycle),
        )
        .await
        .map_err(|_| McpError::Connect {
            url: url.clone(),
            message: "no answer within 30 seconds".to_owned(),
        })?
        .map_err(|error| McpError::Connect {
            url: url.clone(),
            message: match error.auth_challenge() {
                Some(_) => "the token was refused (401): check AIRLOCK_TOKEN".to_owned(),
                None => error.to_string(),
            },
        })?;
        Ok(Self { url, service })
    }

    /// The tools the remote lists for this agent.
    pub async fn list_tools(&self) -> Result<ListToolsResult, ServiceError> {
        self.service.list_tools(None).await
    }

    /// Serves MCP on standard input and output until the agent closes them.
    pub async fn serve_stdio(self) -> Result<(), McpError> {
        let forward = Forward {
            url: self.url.clone(),
            remote: self.service.peer().clone(),
        };
        let server = serve_server(forward, rmcp::transport::stdio())
            .await
            .map_err(|e| McpError::Stdio(e.to_string()))?;
        let quit = server.waiting().await;
        tracing::debug!(reason = ?quit, "stdio closed");
        if let Err(error) = self.service.cancel().await {
            tracing::debug!(error = %error, "closing the connection to Airlock");
        }
        Ok(())
    }
}

/// The stdio server: every request is the remote's business.
#[derive(Debug, Clone)]
struct Forward {
    url: String,
    remote: Peer<RoleClient>,
}

impl Forward {
    fn unreachable(&self, error: &ServiceError) -> String {
        match error.auth_challenge() {
            Some(_) => format!("Airlock at {} refused the token (401)", self.url),
            None => format!("cannot reach Airlock at {}: {error}", self.url),
        }
    }
}

impl ServerHandler for Forward {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(super::server::INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        match self.remote.list_tools(params).await {
            Ok(result) => Ok(result),
            Err(ServiceError::McpError(error)) => Err(error),
            Err(error) => {
                let message = self.unreachable(&error);
                tracing::warn!(error = %error, "tools/list not forwarded");
                Err(ErrorData::internal_error(message, None))
            }
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut params = CallToolRequestParams::new(request.name);
        if let Some(arguments) = request.arguments {
            params = params.with_arguments(arguments);
        }
        match self.remote.call_tool_once(params).await {
            Ok(response) => Ok(response),
            Err(ServiceError::McpError(error)) => Err(error),
            Err(error) => {
                tracing::warn!(error = %error, "tools/call not forwarded");
                Ok(CallToolResponse::Complete(CallToolResult::error(vec![
                    ContentBlock::text(self.unreachable(&error)),
                ])))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_end_in_mcp() {
        for (base, url) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/mcp"),
            (
                "https://airlock.example.com/mcp",
                "https://airlock.example.com/mcp",
            ),
        ] {
            assert_eq!(endpoint(base).expect("valid"), url);
        }
        assert!(endpoint("airlock.example.com").is_err());
    }
}
