//! Airlock: an identity-aware control plane for Airbyte.
//!
//! A tour of the modules:
//! - [`api`]: the HTTP server, its middleware (request ids) and error shape
//!   (problem+json).
//! - [`cli`]: the `airlock` command line; each subcommand is a thin call
//!   into the modules below.
//! - [`config`]: the TOML configuration, its `AIRLOCK_*` overrides and the
//!   secrets it names.
//! - [`console`]: the web console at `/console` (OIDC login with PKCE,
//!   server-side sessions); its pages call the API with a session cookie.
//! - [`front`]: the Airbyte-compatible front (`/api/public/v1`, Dagster's
//!   `/api/v1/connections/get`, the token exchange and service accounts):
//!   Airbyte's API, identity-checked, for unchanged Airbyte clients.
//! - [`identity`]: verifies bearer tokens against the configured issuers'
//!   keys and maps their claims to a `Principal`.
//! - [`policy`]: roles and grants; decides what a principal may do on which
//!   workspace or connection (deny by default).
//! - [`server`]: the accept loop (HTTP/1.1, header deadline, graceful stop).
//! - [`telemetry`]: logs, as text or JSON lines; OTLP traces when configured.
//! - [`mcp`]: the MCP server at `/mcp` (and the `airlock mcp` stdio bridge):
//!   tools for AI agents, each call made through the API as the agent.
//! - [`metrics`]: Prometheus counters and histograms (requests, decisions,
//!   Airbyte calls) and the `/metrics` exposition.
//! - [`webhooks`]: job events POSTed to receivers, signed, from a durable
//!   outbox fed by the job timeline.
//!
//! Airbyte itself is reached through the `airbyte-client` crate, and
//! `airlock sim` / `airlock demo` run the `airbyte-sim` crate, an Airbyte
//! simulator, so that everything works with no Airbyte at hand.

pub mod api;
pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod console;
pub mod devidp;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod jobs;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod webhooks;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
