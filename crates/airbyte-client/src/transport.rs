//! One HTTP exchange, and the one question the retry rules need answered about a
//! failure: could the request have reached Airbyte?

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::RequestBuilder;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use crate::error::Error;
use crate::retry::Idempotency;

/// A complete answer: status, content type and the whole body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
    /// A `Retry-After` in seconds, as Cloud may send with a 429 or 503.
    pub(crate) retry_after: Option<Duration>,
}

/// Why an exchange produced no complete answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request could not be built (bad header, bad URL): nothing was sent and
    /// sending again will not help.
    Invalid(reqwest::Error),
    /// Connecting failed (refused, DNS, TLS, connect timeout): nothing was sent.
    NotSent(reqwest::Error),
    /// The per-attempt timeout fired after the connection was made: the request may
    /// have been processed.
    TimedOut,
    /// The connection broke after the request may have been written.
    Lost(reqwest::Error),
}

impl Failure {
    fn classify(error: reqwest::Error) -> Self {
        let error = error.without_url();
        if error.is_builder() {
            Self::Invalid(error)
        } else if error.is_connect() {
            // Checked before timeouts: a connect timeout is a connect error, and
            // nothing was sent.
            Self::NotSent(error)
        } else if error.is_timeout() {
            Self::TimedOut
        } else {
            Self::Lost(error)
        }
    }

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
            (Self::Invalid(error), _) => Error::InvalidInput(describe(&error)),
            (Self::NotSent(error), _) => transport(error, attempts),
            (Self::TimedOut, Idempotency::Idempotent) => Error::Timeout {
                after: timeout,
                attempts,
            },
            (Self::TimedOut, Idempotency::NonIdempotent) => Error::Ambiguous {
                reason: format!("no answer within {timeout:?} after the request was sent"),
                status: None,
            },
            (Self::Lost(error), Idempotency::Idempotent) => transport(error, attempts),
            (Self::Lost(error), Idempotency::NonIdempotent) => Error::Ambiguous {
                reason: format!("connection lost after sending: {}", describe(&error)),
                status: None,
            },
        }
    }
}

fn transport(error: reqwest::Error, attempts: u32) -> Error {
    Error::Transport {
        message: describe(&error),
        attempts,
        source: Some(Arc::new(error)),
    }
}

/// The error and its causes on one line. reqwest's own message is vague ("error
/// sending request"); the causes say what happened. URLs were stripped already.
pub(crate) fn describe(error: &reqwest::Error) -> String {
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

/// Sends one request and reads the whole answer (the builder carries the timeout,
/// which covers the body too).
pub(crate) async fn send_once(builder: RequestBuilder) -> Result<Reply, Failure> {
    let response = builder.send().await.map_err(Failure::classify)?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.map_err(Failure::classify)?;
    Ok(Reply {
        status,
        content_type,
        body: body.to_vec(),
        retry_after,
    })
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
