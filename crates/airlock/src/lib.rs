//! Airlock: an identity-aware control plane for Airbyte.
//!
//! A tour of the modules, lowest layer first (ARCHITECTURE.md has the
//! table of which may use which; a test holds the code to it):
//! - below this crate: `airlock-domain` (time, secrets, the configuration
//!   error, host gates, the job model, identities, the audit record and the
//!   policy) and `airlock-store` (the only SQL, on SQLite or Postgres).
//!   Above them, `airlock-services`: the job queue's dispatcher and
//!   tracker, the connection catalog, webhooks, metrics and the Airbyte
//!   client's settings.
//! - foundation: [`server`] (the accept loop), [`telemetry`] (logs and
//!   traces).
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

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod devidp;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod mcp;
pub mod server;
pub mod service;

pub mod telemetry;
pub mod web;

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
