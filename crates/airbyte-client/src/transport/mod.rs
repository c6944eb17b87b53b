//! One HTTP exchange with Airbyte, and the one question the retry rules need
//! answered about a failure: could the request have reached Airbyte?
//!
//! The client is HTTP/1.1 on hyper's connection API ([`Site`]), not reqwest:
//! a request checks out an idle connection of its own [`Site`] (or opens one)
//! and drives it inside its own task until the answer's last byte, then puts
//! it back. reqwest runs every connection in a task of its own and hands each
//! request to it through channels, so one forwarded read woke two tasks,
//! often on two cores; its pool, retry layer and URL handling added the rest
//! (BENCHMARKS.md, "Eleventh session", has the profile and the measurement).
//! What this client keeps of reqwest's behaviour, and no more: a pool of
//! keep-alive connections per origin (idle for at most 90 s), a connect
//! timeout, TLS through rustls with the platform's verifier, no redirects,
//! and a request that provably never left is sent again on a fresh
//! connection when a reused one turns out closed. It reads no `HTTP_PROXY`.

mod conn;
mod pool;
mod site;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::error::Error;
use crate::retry::Idempotency;

pub(crate) use site::Site;

/// What went wrong underneath, without a URL in it.
pub(crate) type Cause = Box<dyn StdError + Send + Sync>;

/// A request of one attempt, complete but for the connection's own headers
/// (`host`, and `user-agent` unless it has one).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) method: Method,
    /// The path and query, starting with `/`.
    pub(crate) target: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A complete answer: status, content type and the whole body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
    /// A `Retry-After` in seconds, as Cloud may send with a 429 or 503.
    pub(crate) retry_after: Option<Duration>,
}

/// Why an exchange produced no complete answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request could not be built (a bad header or path): nothing was sent
    /// and sending again will not help.
    Invalid(String),
    /// Connecting failed (refused, DNS, TLS, connect timeout): nothing was sent.
    NotSent(Cause),
    /// The per-attempt timeout fired after the connection was made: the request may
    /// have been processed.
    TimedOut,
    /// The connection broke after the request may have been written.
    Lost(Cause),
}

impl Failure {
    /// True when the request provably did not reach Airbyte.
    pub(crate) fn not_sent(&self) -> bool {
        matches!(self, Self::NotSent(_))
    }

    /// A short name for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::NotSent(_) => "connect",
            Self::TimedOut => "timeout",
            Self::Lost(_) => "connection_lost",
        }
    }

    /// The typed error once retrying is over.
    pub(crate) fn into_error(
        self,
        idempotency: Idempotency,
        attempts: u32,
        timeout: Duration,
    ) -> Error {
        match (self, idempotency) {
            (Self::Invalid(message), _) => Error::InvalidInput(message),
            (Self::NotSent(cause), _) => transport(cause, attempts),
            (Self::TimedOut, Idempotency::Idempotent) => Error::Timeout {
                after: timeout,
                attempts,
            },
            (Self::TimedOut, Idempotency::NonIdempotent) => Error::Ambiguous {
                reason: format!("no answer within {timeout:?} after the request was sent"),
                status: None,
            },
            (Self::Lost(cause), Idempotency::Idempotent) => transport(cause, attempts),
            (Self::Lost(cause), Idempotency::NonIdempotent) => Error::Ambiguous {
                reason: format!("connection lost after sending: {}", describe(&*cause)),
                status: None,
            },
        }
    }
}

fn transport(cause: Cause, attempts: u32) -> Error {
    Error::Transport {
        message: describe(&*cause),
        attempts,
        source: Some(Arc::from(cause)),
    }
}

/// The error and its causes on one line: hyper's own message is vague
/// ("connection error"); the causes say what happened.
pub(crate) fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A step of an exchange that failed ("connect", "TLS handshake"), over its
/// cause.
#[derive(Debug)]
struct Step {
    step: &'static str,
    cause: Cause,
}

impl Step {
    fn cause(step: &'static str) -> impl FnOnce(Cause) -> Cause {
        move |cause| Box::new(Self { step, cause })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.step)
    }
}

impl StdError for Step {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.cause)
    }
}

/// The TLS settings of every https site: rustls with the platform's
/// verifier (as reqwest had them), HTTP/1.1 offered by ALPN.
pub(crate) fn tls_settings() -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut settings = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|error| format!("TLS cannot be set up: {error}"))?
        .with_no_client_auth();
    settings.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(settings))
}

/// What an attempt loop got to, for the span of the call.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) attempts: u32,
    pub(crate) status: Option<u16>,
}

impl Progress {
    /// Records the outcome on the call's span, once, when the call is over:
    /// in OpenTelemetry's HTTP client terms, an error is a 4xx or 5xx
    /// answer, or none. Numbers are recorded as `i64`, which trace
    /// exporters carry as integers (a `u64` becomes a string).
    pub(crate) fn record(&self, span: &tracing::Span, latency_ms: u64) {
        span.record("attempts", i64::from(self.attempts));
        if self.attempts > 1 {
            span.record("http.request.resend_count", i64::from(self.attempts - 1));
        }
        if let Some(status) = self.status {
            span.record("http.response.status_code", i64::from(status));
        }
        if self.status.is_none_or(|status| status >= 400) {
            span.record("otel.status_code", "error");
        }
        span.record("latency_ms", i64::try_from(latency_ms).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests;
