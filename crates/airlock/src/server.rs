//! The accept loop: HTTP/1.1 connections served by hyper, with a deadline for
//! a request's headers (slow or stalled clients are disconnected rather than
//! holding a connection forever), and a graceful stop.
//!
//! Hand-rolled rather than `axum::serve` because that one cannot bound how
//! long a client takes to send its headers.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tower::ServiceExt;

use airlock_domain::settings::{self, InvalidKey};

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a connection may wait for a request's headers (counted from
    /// the end of the previous response on a kept-alive connection): a
    /// client stalled mid-header, or idle that long, is disconnected.
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, closes idle connections and waits for the requests in flight
/// (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Responses are written whole; waiting to coalesce them
                    // only adds latency.
                    let _ = stream.set_nodelay(true);
                    let service = router.clone().map_request(move |mut request: Request<Incoming>| {
                        request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                        request
                    });
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(error = %error, %peer, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The longest `request_log_flush_ms`: request lines later than this would
/// no longer read as the request log of the moment.
const MAX_REQUEST_LOG_FLUSH_MS: u64 = 10_000;

/// The HTTP server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Requests one identity may have in flight at once; beyond, 429 with
    /// `Retry-After` (0: no cap).
    pub max_concurrent_per_identity: usize,
    /// Event streams (`/v1/events`, a job's events) one identity may hold
    /// open at once; beyond, 429 (0: no bound).
    pub max_streams_per_identity: usize,
    /// Seconds a client may take to send a request body (slow senders get 408).
    pub body_timeout_secs: u64,
    /// Seconds a connection may wait for a request's headers: a client that
    /// stalls mid-header, or a kept-alive connection idle this long, is
    /// closed.
    pub header_timeout_secs: u64,
    /// Seconds over which refusals of unidentified requests (bad
    /// credentials, a host gate, failed token exchanges) are counted: the
    /// first of each source address and reason is audited at once, the
    /// rest as one record with a count when the window closes.
    pub refusal_window_secs: u64,
    /// Refusals one source address (or client id, at the token endpoint)
    /// may cause per window; past it, its requests get 429 until the window
    /// closes, unless they carry a token that already verified (0: no
    /// throttle).
    pub refusals_per_address: u32,
    /// Milliseconds a request log line may wait to be written with the
    /// others of the same interval, in one write (0: each at once). Other
    /// log lines are always written at once.
    pub request_log_flush_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_concurrent_per_identity: 64,
            max_streams_per_identity: 8,
            body_timeout_secs: 10,
            header_timeout_secs: 30,
            refusal_window_secs: 60,
            refusals_per_address: 300,
            request_log_flush_ms: 100,
        }
    }
}

impl ServerConfig {
    /// Checks the timeouts; errors name the key.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        settings::at_least_one_sec("server.body_timeout_secs", self.body_timeout_secs)?;
        settings::at_least_one_sec("server.header_timeout_secs", self.header_timeout_secs)?;
        settings::at_least_one_sec("server.refusal_window_secs", self.refusal_window_secs)?;
        if self.request_log_flush_ms > MAX_REQUEST_LOG_FLUSH_MS {
            return Err(InvalidKey::new(
                "server.request_log_flush_ms",
                format!("at most {MAX_REQUEST_LOG_FLUSH_MS} (10 s); 0 writes each line at once"),
            ));
        }
        Ok(())
    }
}
