//! Bearer tokens from client credentials: fetched once, shared by every call,
//! refreshed ahead of expiry by exactly one caller, and dropped on a 401.
//!
//! Freshness of the current token, judged against the injected [`Clock`]:
//! - **fresh** until 80 % of its lifetime or 60 s before expiry, whichever comes
//!   first (never before half of it): calls use it;
//! - **aging** from then until shortly before expiry: one call refreshes while the
//!   others keep using the still-valid token; a failed early refresh is not an error;
//! - **stale** (none yet, expired or invalidated by a 401): calls wait for a single
//!   refresh in flight and all take its result, success or error. A thousand
//!   concurrent calls cause one token request.
//!
//! The lifetime is read from `expires_in` on every token; when a server omits it,
//! the token is kept until Airbyte answers 401.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard};
use tracing::{Instrument, field};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::observe::{self, Observer, Tracing};
use crate::retry::{Idempotency, RetryPolicy, retryable_status};
use crate::transport::{Failure, Outgoing, Progress, Site};

/// The route template of the token endpoint, in spans and for the observer.
const TOKEN_ROUTE: &str = "POST /applications/token";

/// A bearer token and when to stop trusting it.
pub(crate) struct Token {
    pub(crate) secret: SecretString,
    /// Increases with every token fetched, so a 401 can name the token it saw.
    pub(crate) generation: u64,
    /// When to start refreshing; `None` when the server gave no lifetime.
    refresh_at: Option<Instant>,
    /// When to stop using it; `None` when the server gave no lifetime.
    usable_until: Option<Instant>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"[redacted]")
            .field("generation", &self.generation)
            .field("refresh_at", &self.refresh_at)
            .field("usable_until", &self.usable_until)
            .finish()
    }
}

/// The result of the last refresh, handed to the callers that waited for it.
#[derive(Debug, Default)]
struct Flight {
    /// Refreshes completed so far.
    done: u64,
    last: Option<Result<Arc<Token>>>,
}

enum Freshness {
    Fresh(Arc<Token>),
    Aging(Arc<Token>),
    Stale,
}

/// The body of `POST /applications/token`.
#[derive(Serialize)]
struct TokenRequest<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    grant_type: &'static str,
}

/// The answer of `POST /applications/token`; `Debug` of the token is redacted.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: SecretString,
    /// Seconds; a number, or a numeric string on odd servers.
    #[serde(default)]
    pub(crate) expires_in: Option<serde_json::Value>,
}

impl TokenResponse {
    /// Parses the answer without ever quoting it: a parse error could otherwise
    /// carry the token into a log line.
    pub(crate) fn parse(body: &[u8]) -> Result<Self> {
        serde_json::from_slice(body).map_err(|error| {
            Error::InvalidResponse(format!(
                "token response is not the expected JSON ({:?} error at line {}, column {})",
                error.classify(),
                error.line(),
                error.column()
            ))
        })
    }

    /// The lifetime the server announced, if it announced a usable one.
    pub(crate) fn lifetime(&self) -> Option<Duration> {
        let seconds = match self.expires_in.as_ref()? {
            serde_json::Value::Number(number) => number.as_f64()?,
            serde_json::Value::String(text) => text.trim().parse().ok()?,
            _ => return None,
        };
        (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
    }
}

/// When to refresh and when to stop using a token of this lifetime:
/// refresh at 80 % or 60 s before expiry, whichever is earlier, but not before
/// half the lifetime; stop using it 10 % (at most 10 s) before expiry.
pub(crate) fn schedule(lifetime: Duration) -> (Duration, Duration) {
    let at_eighty_percent = lifetime.mul_f64(0.8);
    let minute_before = lifetime
        .saturating_sub(Duration::from_secs(60))
        .max(lifetime / 2);
    let margin = (lifetime / 10).min(Duration::from_secs(10));
    (at_eighty_percent.min(minute_before), lifetime - margin)
}

/// Fetches, caches and refreshes tokens for one set of client credentials.
pub(crate) struct TokenManager {
    /// The public API's site; the token endpoint is under it.
    site: Arc<Site>,
    token_target: String,
    client_id: String,
    client_secret: SecretString,
    timeout: Duration,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    observer: Observer,
    tracing: Tracing,
    current: RwLock<Option<Arc<Token>>>,
    flight: Mutex<Flight>,
    /// Mirror of `Flight::done`, readable without waiting for the lock.
    flights_done: AtomicU64,
    generations: AtomicU64,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a [`TokenManager`] needs besides the site it asks.
pub(crate) struct TokenSettings {
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Observer,
    pub(crate) tracing: Tracing,
}

impl TokenManager {
    pub(crate) fn new(site: Arc<Site>, settings: TokenSettings) -> Self {
        Self {
            token_target: site.target("/applications/token"),
            site,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            timeout: settings.timeout,
            retry: settings.retry,
            clock: settings.clock,
            observer: settings.observer,
            tracing: settings.tracing,
            current: RwLock::new(None),
            flight: Mutex::new(Flight::default()),
            flights_done: AtomicU64::new(0),
            generations: AtomicU64::new(0),
        }
    }

    /// A token to put on the next request, refreshing first if needed.
    pub(crate) async fn token(&self) -> Result<Arc<Token>> {
        // A refresh (about once an hour) is awaited boxed: its future is
        // large, and every request's would carry it otherwise.
        match self.freshness() {
            Freshness::Fresh(token) => Ok(token),
            Freshness::Aging(old) => {
                // One caller refreshes; everyone else keeps the still-valid token.
                let Ok(flight) = self.flight.try_lock() else {
                    return Ok(old);
                };
                match Box::pin(self.refresh(flight, None)).await {
                    Ok(token) => Ok(token),
                    Err(error) => {
                        tracing::warn!(%error, "early token refresh failed; the current token is still valid");
                        Ok(old)
                    }
                }
            }
            Freshness::Stale => {
                let seen = self.flights_done.load(Ordering::Acquire);
                let flight = self.flight.lock().await;
                Box::pin(self.refresh(flight, Some(seen))).await
            }
        }
    }

    /// Drops the token of this generation after Airbyte answered 401 to it, unless a
    /// newer token replaced it already.
    pub(crate) fn invalidate(&self, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_some_and(|token| token.generation == generation)
        {
            *current = None;
            tracing::debug!(generation, "token invalidated after a 401");
        }
    }

    fn freshness(&self) -> Freshness {
        let now = self.clock.now();
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(token) = current else {
            return Freshness::Stale;
        };
        match (token.refresh_at, token.usable_until) {
            (None, _) => Freshness::Fresh(token),
            (Some(refresh_at), _) if now < refresh_at => Freshness::Fresh(token),
            (_, Some(usable_until)) if now < usable_until => Freshness::Aging(token),
            _ => Freshness::Stale,
        }
    }

    /// Refreshes under the single-flight lock. `seen` is the number of completed
    /// refreshes when the caller started waiting: if one completed meanwhile, the
    /// caller takes its result instead of asking again.
    async fn refresh(
        &self,
        mut flight: MutexGuard<'_, Flight>,
        seen: Option<u64>,
    ) -> Result<Arc<Token>> {
        if let Freshness::Fresh(token) = self.freshness() {
            return Ok(token);
        }
        if let Some(seen) = seen
            && flight.done != seen
            && let Some(last) = &flight.last
        {
            return last.clone();
        }
        let result = self.fetch().await.map(Arc::new);
        if let Ok(token) = &result {
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(token));
        }
        flight.done += 1;
        flight.last = Some(result.clone());
        self.flights_done.store(flight.done, Ordering::Release);
        result
    }

    /// Asks the token endpoint, retrying transient failures (asking twice is harmless).
    async fn fetch(&self) -> Result<Token> {
        let span = tracing::debug_span!(
            "airbyte.token",
            otel.kind = "client",
            http.request.method = "POST",
            route = TOKEN_ROUTE,
            http.response.status_code = field::Empty,
            http.request.resend_count = field::Empty,
            otel.status_code = field::Empty,
            attempts = field::Empty,
            latency_ms = field::Empty,
        );
        let started = Instant::now();
        let mut progress = Progress::default();
        let result = self
            .fetch_with_retries(&mut progress)
            .instrument(span.clone())
            .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        progress.record(&span, latency_ms);
        if let Some(observer) = &self.observer {
            observer.on_token_refresh(result.is_ok());
        }
        match &result {
            Ok(token) => {
                tracing::debug!(parent: &span, generation = token.generation, "token refreshed")
            }
            Err(error) => tracing::debug!(parent: &span, %error, "token refresh failed"),
        }
        result
    }

    async fn fetch_with_retries(&self, progress: &mut Progress) -> Result<Token> {
        let body = serde_json::to_vec(&TokenRequest {
            client_id: &self.client_id,
            client_secret: self.client_secret.expose_secret(),
            grant_type: "client_credentials",
        })
        .map(Bytes::from)
        .map_err(|_| Error::InvalidInput("client credentials cannot be encoded".to_owned()))?;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            progress.attempts = attempts;
            let issued_at = self.clock.now();
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            observe::trace_context(&self.tracing, &mut headers);
            let outgoing = Outgoing {
                method: Method::POST,
                target: self.token_target.clone(),
                headers,
                body: body.clone(),
            };
            let retries_left = attempts <= self.retry.max_retries;
            let sent_at = Instant::now();
            let result = self.site.send(outgoing, self.timeout).await;
            let status = result.as_ref().ok().map(|reply| reply.status);
            observe::call(
                &self.observer,
                TOKEN_ROUTE,
                status,
                sent_at.elapsed(),
                attempts,
            );
            match result {
                Ok(reply) => {
                    progress.status = Some(reply.status);
                    if (200..300).contains(&reply.status) {
                        return Ok(self.install(TokenResponse::parse(&reply.body)?, issued_at));
                    }
                    if retries_left && retryable_status(reply.status, Idempotency::Idempotent) {
                        self.pause(attempts, reply.status.to_string(), reply.retry_after)
                            .await;
                        continue;
                    }
                    return Err(match reply.status {
                        400 | 401 | 403 => Error::Auth {
                            reason: format!(
                                "the token endpoint refused the client credentials ({})",
                                reply.status
                            ),
                        },
                        status => Error::from_status(status, &reply.body, attempts),
                    });
                }
                Err(failure) => {
                    if retries_left && !matches!(failure, Failure::Invalid(_)) {
                        self.pause(attempts, failure.kind().to_owned(), None).await;
                        continue;
                    }
                    return Err(failure.into_error(
                        Idempotency::Idempotent,
                        attempts,
                        self.timeout,
                    ));
                }
            }
        }
    }

    async fn pause(&self, retry: u32, cause: String, retry_after: Option<Duration>) {
        let wait = self.retry.wait(retry, retry_after);
        tracing::debug!(
            retry,
            cause,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "retrying the token request"
        );
        tokio::time::sleep(wait).await;
    }

    fn install(&self, response: TokenResponse, issued_at: Instant) -> Token {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let lifetime = response.lifetime();
        if lifetime.is_none() {
            tracing::debug!(
                generation,
                "token without a usable expires_in; kept until Airbyte answers 401"
            );
        }
        let (refresh_at, usable_until) = match lifetime {
            Some(lifetime) => {
                let (refresh_after, usable_for) = schedule(lifetime);
                (
                    Some(issued_at + refresh_after),
                    Some(issued_at + usable_for),
                )
            }
            None => (None, None),
        };
        Token {
            secret: response.access_token,
            generation,
            refresh_at,
            usable_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_token_response_and_reads_expires_in() {
        let response = TokenResponse::parse(
            br#"{"access_token":"abc.def","token_type":"Bearer","expires_in":900}"#,
        )
        .unwrap();
        assert_eq!(response.access_token.expose_secret(), "abc.def");
        assert_eq!(response.lifetime(), Some(Duration::from_secs(900)));
        assert!(!format!("{response:?}").contains("abc.def"));

        let as_text = TokenResponse::parse(br#"{"access_token":"x","expires_in":"180"}"#).unwrap();
        assert_eq!(as_text.lifetime(), Some(Duration::from_secs(180)));
        let missing = TokenResponse::parse(br#"{"access_token":"x"}"#).unwrap();
        assert_eq!(missing.lifetime(), None);
        let negative = TokenResponse::parse(br#"{"access_token":"x","expires_in":-5}"#).unwrap();
        assert_eq!(negative.lifetime(), None);
    }

    #[test]
    fn a_bad_token_response_is_not_quoted_in_the_error() {
        let error = TokenResponse::parse(br#"{"access_token":"secret-token-value","expires_in":}"#)
            .unwrap_err();
        assert!(matches!(error, Error::InvalidResponse(_)));
        assert!(!error.to_string().contains("secret-token-value"));
        let wrong_type =
            TokenResponse::parse(br#"{"access_token":["secret-token-value"]}"#).unwrap_err();
        assert!(!wrong_type.to_string().contains("secret-token-value"));
    }

    #[test]
    fn refresh_schedule() {
        let secs = Duration::from_secs;
        // 900 s: 80 % (720 s) comes before 60 s ahead of expiry (840 s).
        assert_eq!(schedule(secs(900)), (secs(720), secs(890)));
        // 180 s: 60 s ahead (120 s) comes before 80 % (144 s).
        assert_eq!(schedule(secs(180)), (secs(120), secs(170)));
        // Short lifetimes: never before half of it.
        assert_eq!(schedule(secs(10)), (secs(5), secs(9)));
        assert_eq!(schedule(Duration::ZERO), (Duration::ZERO, Duration::ZERO));
    }
}
