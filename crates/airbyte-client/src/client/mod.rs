//! [`AirbyteClient`]: the typed calls, the pagers and the raw passthrough, all
//! running through one attempt loop that applies auth, timeouts, the 401 refresh
//! and the retry rules of [`crate::retry`].
//!
//! This file holds the client itself: its configuration, its construction and the
//! plumbing every call shares (the attempt loop and the decoding of answers). The
//! calls are grouped by what they reach: `resources` (workspaces, connections,
//! sources, destinations and the Configuration API's connection read), `jobs`,
//! `raw` ([`AirbyteClient::send_raw`] and its guards) and `pages` (one page of a
//! list, and the [`Pages`] pager).

mod jobs;
mod pages;
mod raw;
mod resources;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use tracing::{Instrument, field};
use url::Url;

use crate::auth::token::{TokenManager, TokenSettings};
use crate::auth::{Auth, Authenticator};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::observe::{self, CallObserver, Observer, TraceContext, Tracing};
use crate::retry::{Idempotency, RetryPolicy, retryable_status};
use crate::transport::{self, Failure, Outgoing, Progress, Reply, Site};

pub use pages::Pages;
pub use raw::RawResponse;

/// Everything needed to build an [`AirbyteClient`].
#[derive(Clone)]
pub struct ClientConfig {
    /// The public API root, such as `http://localhost:8000/api/public/v1` or
    /// `https://api.airbyte.com/v1`. Must not carry credentials.
    pub base_url: Url,
    /// The Configuration API root (Dagster's `POST /connections/get`). `None` derives
    /// it from `base_url` when that ends in `/api/public/v1` (sibling `/api/v1`).
    pub config_api_url: Option<Url>,
    /// Airlock's credential for Airbyte.
    pub auth: Auth,
    /// Limit on each HTTP attempt, from connecting to the end of the body.
    pub timeout: Duration,
    /// Retry budget and backoff for calls that are safe to retry.
    pub retry: RetryPolicy,
    /// The clock token freshness is judged by (tests inject a [`crate::ManualClock`]).
    pub clock: Arc<dyn Clock>,
    /// Told about every exchange and token refresh, for metrics. `None` by default.
    pub observer: Option<Arc<dyn CallObserver>>,
    /// Adds the trace context to every request. `None` by default.
    pub trace_context: Option<Arc<dyn TraceContext>>,
}

impl ClientConfig {
    /// A config with the defaults: 30 s per attempt, [`RetryPolicy::default`], the
    /// system clock and the derived Configuration API URL.
    pub fn new(base_url: Url, auth: Auth) -> Self {
        Self {
            base_url,
            config_api_url: None,
            auth,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
            observer: None,
            trace_context: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &redacted_url(&self.base_url))
            .field(
                "config_api_url",
                &self.config_api_url.as_ref().map(redacted_url),
            )
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("clock", &self.clock)
            .field("observer", &self.observer.is_some())
            .field("trace_context", &self.trace_context.is_some())
            .finish()
    }
}

/// A URL for display: without user info, query or fragment.
fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// A resilient client for Airbyte's public API. Cheap to clone: clones share the
/// connection pool and the token.
#[derive(Clone)]
pub struct AirbyteClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The public API root and its connections.
    api: Arc<Site>,
    /// The Configuration API root and its connections.
    config: Option<Site>,
    auth: Authenticator,
    timeout: Duration,
    retry: RetryPolicy,
    observer: Observer,
    tracing: Tracing,
}

impl fmt::Debug for AirbyteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AirbyteClient")
            .field("base", &self.inner.api.root())
            .field("config_base", &self.inner.config.as_ref().map(Site::root))
            .field("auth", &self.inner.auth)
            .field("timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// One logical call, before attempts.
struct Call<'a> {
    method: Method,
    /// Route template for logs and spans, such as `GET /jobs/{jobId}`.
    route: Cow<'static, str>,
    /// The site the call goes to.
    site: &'a Site,
    /// The path and query on that site, its root included.
    target: String,
    query: Vec<(&'static str, String)>,
    body: Option<Bytes>,
    headers: Option<&'a HeaderMap>,
    auth: bool,
    idempotency: Idempotency,
    retries: u32,
}

/// A reply and how many attempts it took.
struct Outcome {
    reply: Reply,
    attempts: u32,
}

impl AirbyteClient {
    /// Builds a client. Fails on a base URL with credentials in it (use
    /// [`Auth::Basic`]) or one that cannot carry paths.
    pub fn new(config: ClientConfig) -> Result<Self> {
        for url in std::iter::once(&config.base_url).chain(config.config_api_url.as_ref()) {
            if !url.username().is_empty() || url.password().is_some() {
                return Err(Error::InvalidInput(
                    "the Airbyte URL must not carry credentials; configure them as auth".into(),
                ));
            }
            if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
                return Err(Error::InvalidInput(format!(
                    "the Airbyte URL must be http or https: {}",
                    redacted_url(url)
                )));
            }
        }
        let connect_timeout = config.timeout.min(Duration::from_secs(10));
        let mut tls = None;
        let mut site = |url: &Url| {
            Site::new(url, connect_timeout, || {
                tls.get_or_insert_with(transport::tls_settings).clone()
            })
            .map_err(Error::InvalidInput)
        };
        let api = Arc::new(site(&config.base_url)?);
        let config_url = match &config.config_api_url {
            Some(url) => Some(url.clone()),
            None => api
                .root()
                .strip_suffix("/api/public/v1")
                .map(|root| format!("{root}/api/v1"))
                .map(|root| {
                    root.parse::<Url>()
                        .map_err(|error| Error::InvalidInput(error.to_string()))
                })
                .transpose()?,
        };
        let config_site = config_url.as_ref().map(&mut site).transpose()?;
        let auth = match config.auth {
            Auth::None => Authenticator::None,
            Auth::Bearer(token) => Authenticator::Bearer(token),
            Auth::Basic { username, password } => Authenticator::Basic { username, password },
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => Authenticator::Tokens(Box::new(TokenManager::new(
                Arc::clone(&api),
                TokenSettings {
                    client_id,
                    client_secret,
                    timeout: config.timeout,
                    retry: config.retry,
                    clock: config.clock,
                    observer: config.observer.clone(),
                    tracing: config.trace_context.clone(),
                },
            ))),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                api,
                config: config_site,
                auth,
                timeout: config.timeout,
                retry: config.retry,
                observer: config.observer,
                tracing: config.trace_context,
            }),
        })
    }

    /// The public API root this client talks to (no credentials in it).
    pub fn base_url(&self) -> &str {
        self.inner.api.root()
    }

    /// The Configuration API root, when known.
    pub fn config_api_url(&self) -> Option<&str> {
        self.inner.config.as_ref().map(Site::root)
    }

    /// `GET /health`, unauthenticated and tried once: a readiness probe should see
    /// Airbyte as it is, not as retries make it look.
    pub async fn health(&self) -> Result<()> {
        let mut call = self.call(Method::GET, "GET /health", "/health".to_owned());
        call.auth = false;
        call.retries = 0;
        let outcome = self.execute(&call).await?;
        if (200..300).contains(&outcome.reply.status) {
            Ok(())
        } else {
            Err(Error::from_status(
                outcome.reply.status,
                &outcome.reply.body,
                outcome.attempts,
            ))
        }
    }

    /// A call with the defaults: authenticated, idempotent, the configured retries.
    fn call<'a>(
        &'a self,
        method: Method,
        route: impl Into<Cow<'static, str>>,
        path: String,
    ) -> Call<'a> {
        Call {
            method,
            route: route.into(),
            site: &self.inner.api,
            target: self.inner.api.target(&path),
            query: Vec::new(),
            body: None,
            headers: None,
            auth: true,
            idempotency: Idempotency::Idempotent,
            retries: self.inner.retry.max_retries,
        }
    }

    async fn call_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let outcome = self.execute(&call).await?;
        decode(&call, outcome)
    }

    /// The attempt loop inside one span per call; the span records the last status,
    /// the number of attempts and the latency once the call is over.
    async fn execute(&self, call: &Call<'_>) -> Result<Outcome> {
        let span = tracing::debug_span!(
            "airbyte.call",
            otel.kind = "client",
            http.request.method = %call.method,
            route = %call.route,
            http.response.status_code = field::Empty,
            http.request.resend_count = field::Empty,
            otel.status_code = field::Empty,
            attempts = field::Empty,
            latency_ms = field::Empty,
        );
        let started = Instant::now();
        let mut progress = Progress::default();
        let result = self
            .attempts(call, &mut progress)
            .instrument(span.clone())
            .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        progress.record(&span, latency_ms);
        match &result {
            Ok(_) => tracing::debug!(parent: &span, "airbyte call finished"),
            Err(error) => tracing::debug!(parent: &span, %error, "airbyte call failed"),
        }
        result
    }

    async fn attempts(&self, call: &Call<'_>, progress: &mut Progress) -> Result<Outcome> {
        let mut attempts = 0u32;
        let mut retries = 0u32;
        let mut refreshed = false;
        loop {
            attempts += 1;
            progress.attempts = attempts;
            let mut outgoing = self.request(call);
            let generation = self.authorize(call, &mut outgoing.headers).await?;
            let (result, elapsed_ms) = self.send(call, outgoing, attempts).await;
            let may_retry = retries < call.retries;
            match result {
                Ok(reply) => {
                    progress.status = Some(reply.status);
                    tracing::trace!(
                        attempt = attempts,
                        status = reply.status,
                        elapsed_ms,
                        "attempt answered"
                    );
                    if reply.status == 401 && call.auth {
                        if !refreshed && self.inner.auth.invalidate(generation) {
                            refreshed = true;
                            tracing::debug!("401: refreshing the token and sending once more");
                            continue;
                        }
                        return Err(Error::Auth {
                            reason: if refreshed {
                                "401 Unauthorized with a freshly issued token".to_owned()
                            } else {
                                "401 Unauthorized".to_owned()
                            },
                        });
                    }
                    if may_retry && retryable_status(reply.status, call.idempotency) {
                        retries += 1;
                        self.pause(retries, reply.status.to_string(), reply.retry_after)
                            .await;
                        continue;
                    }
                    return Ok(Outcome { reply, attempts });
                }
                Err(failure) => {
                    tracing::trace!(
                        attempt = attempts,
                        kind = failure.kind(),
                        elapsed_ms,
                        "attempt failed"
                    );
                    let safe = failure.not_sent() || call.idempotency == Idempotency::Idempotent;
                    if may_retry && safe && !matches!(failure, Failure::Invalid(_)) {
                        retries += 1;
                        self.pause(retries, failure.kind().to_owned(), None).await;
                        continue;
                    }
                    return Err(failure.into_error(call.idempotency, attempts, self.inner.timeout));
                }
            }
        }
    }

    /// The request of one attempt, before its credential: method, target and
    /// query, `accept`, the caller's headers, the trace context and the body.
    fn request(&self, call: &Call<'_>) -> Outgoing {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(own) = call.headers {
            for name in own.keys() {
                headers.remove(name);
                for value in own.get_all(name) {
                    headers.append(name, value.clone());
                }
            }
        }
        let mut target = call.target.clone();
        if !call.query.is_empty() {
            target.push(if target.contains('?') { '&' } else { '?' });
            let start = target.len();
            form_urlencoded::Serializer::for_suffix(&mut target, start).extend_pairs(&call.query);
        }
        let body = match &call.body {
            Some(body) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                body.clone()
            }
            None => Bytes::new(),
        };
        observe::trace_context(&self.inner.tracing, &mut headers);
        Outgoing {
            method: call.method.clone(),
            target,
            headers,
            body,
        }
    }

    /// Puts the credential on an attempt of an authenticated call. Returns the
    /// generation of the token used, if any, so a 401 can invalidate exactly it.
    async fn authorize(&self, call: &Call<'_>, headers: &mut HeaderMap) -> Result<Option<u64>> {
        if call.auth {
            self.inner.auth.authorize(headers).await
        } else {
            Ok(None)
        }
    }

    /// Sends one attempt and tells the observer about it. Returns the reply or the
    /// failure, and how long the attempt took in milliseconds.
    async fn send(
        &self,
        call: &Call<'_>,
        outgoing: Outgoing,
        attempt: u32,
    ) -> (Result<Reply, Failure>, u64) {
        let sent_at = Instant::now();
        let result = call.site.send(outgoing, self.inner.timeout).await;
        let elapsed = sent_at.elapsed();
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let status = result.as_ref().ok().map(|reply| reply.status);
        observe::call(&self.inner.observer, &call.route, status, elapsed, attempt);
        (result, elapsed_ms)
    }

    async fn pause(&self, retry: u32, cause: String, retry_after: Option<Duration>) {
        let wait = self.inner.retry.wait(retry, retry_after);
        tracing::debug!(
            retry,
            cause,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "retrying"
        );
        tokio::time::sleep(wait).await;
    }
}

/// Turns a reply into the typed answer or the typed error.
fn decode<T: DeserializeOwned>(call: &Call<'_>, outcome: Outcome) -> Result<T> {
    let Outcome { reply, attempts } = outcome;
    let status = reply.status;
    let non_idempotent = call.idempotency == Idempotency::NonIdempotent;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&reply.body).map_err(|error| {
            if non_idempotent {
                Error::Ambiguous {
                    reason: format!("{status} with an unreadable body ({error}); it was accepted"),
                    status: Some(status),
                }
            } else {
                Error::InvalidResponse(format!("{}: {error}", call.route))
            }
        });
    }
    if non_idempotent && (500..600).contains(&status) {
        return Err(Error::Ambiguous {
            reason: format!("Airbyte answered {status}; the request may have been processed"),
            status: Some(status),
        });
    }
    Err(Error::from_status(status, &reply.body, attempts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> ClientConfig {
        ClientConfig::new(url.parse().unwrap(), Auth::None)
    }

    #[test]
    fn derives_the_configuration_api_url() {
        let client = AirbyteClient::new(config("http://airbyte:8000/api/public/v1/")).unwrap();
        assert_eq!(client.base_url(), "http://airbyte:8000/api/public/v1");
        assert_eq!(client.config_api_url(), Some("http://airbyte:8000/api/v1"));
        let cloud = AirbyteClient::new(config("https://api.airbyte.com/v1")).unwrap();
        assert_eq!(cloud.config_api_url(), None);
    }

    #[test]
    fn refuses_urls_with_credentials() {
        let error = AirbyteClient::new(config("http://airbyte:hunter2@airbyte:8000/api/public/v1"))
            .unwrap_err();
        assert!(matches!(error, Error::InvalidInput(_)));
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut cfg = config("http://airbyte:8000/api/public/v1");
        cfg.auth = Auth::ClientCredentials {
            client_id: "airlock".into(),
            client_secret: "hunter2".into(),
        };
        let client = AirbyteClient::new(cfg.clone()).unwrap();
        for shown in [format!("{cfg:?}"), format!("{client:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("airlock"), "{shown}");
        }
        let basic = Auth::Basic {
            username: "airbyte".into(),
            password: "password123".into(),
        };
        assert!(!format!("{basic:?}").contains("password123"));
        assert!(!format!("{:?}", Auth::Bearer("tok-123".into())).contains("tok-123"));
    }
}
