//! Airlock: an identity-aware control plane for Airbyte.
//!
//! A tour of the modules, lowest layer first (ARCHITECTURE.md has the
//! table of which may use which; a test holds the code to it):
//! - foundation: [`clock`] (injected time), [`secret`] (secrets in
//!   configuration, PBKDF2 hashes of stored ones), [`settings`] (the error
//!   every section's check returns), [`airbyte`] (`[airbyte]`: Airlock's
//!   Airbyte client settings), [`host_gate`] (which `Host`/`Origin` values
//!   a door answers), [`server`] (the accept loop), [`telemetry`] (logs and
//!   traces).
//! - domain: [`jobs`] (the job model and its shape for users),
//!   [`identity`] (verified tokens to a `Principal`), [`audit`] (the hash
//!   chain's records), [`policy`] (roles and grants; deny by default).
//! - [`store`]: the only SQL (SQLite or Postgres).
//! - services: [`metrics`], [`queue`] (the dispatcher and the tracker),
//!   [`connections`] (the catalog), [`webhooks`].
//! - [`web`]: what every HTTP door shares (state, request layer, errors,
//!   sessions, the `Caller`).
//! - [`service`]: what a caller may do with connections and jobs, one
//!   function each, for every door.
//! - the doors: [`api`] (`/v1`), [`front`] (Airbyte's API for unchanged
//!   clients, the token exchange and service accounts), [`console`],
//!   [`devidp`] (the demo's identity provider), [`mcp`] (tools for AI
//!   agents, each call made through the API as the agent).
//! - [`config`] composes the sections the modules own, and hands each
//!   consumer its part.
//! - [`http`] assembles the doors; [`app`] is the composition root; [`cli`]
//!   the command line.
//!
//! Airbyte itself is reached through the `airbyte-client` crate, and
//! `airlock sim` / `airlock demo` run the `airbyte-sim` crate, an Airbyte
//! simulator, so that everything works with no Airbyte at hand.

pub mod airbyte;
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
pub mod host_gate;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod queue;
pub mod secret;
pub mod server;
pub mod service;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod web;
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
