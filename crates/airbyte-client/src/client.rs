//! [`AirbyteClient`]: the typed calls, the pagers and the raw passthrough, all
//! running through one attempt loop that applies auth, timeouts, the 401 refresh
//! and the retry rules of [`crate::retry`].

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{self, ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tracing::{Instrument, field};
use uuid::Uuid;

use crate::auth::token::{TokenManager, TokenSettings};
use crate::auth::{Auth, Authenticator};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConflictKind, Error, Result};
use crate::models::{
    Connection, Destination, Job, JobCreate, JobFilter, JobStatus, JobType, ListParams, Page,
    Source, Workspace,
};
use crate::observe::{self, CallObserver, Observer};
use crate::retry::{Idempotency, RetryPolicy, retryable_status};
use crate::transport::{self, Failure, Progress, Reply};

/// Largest page Airbyte serves; the pagers ask for it unless told otherwise.
const MAX_PAGE_SIZE: u32 = 100;
/// A pager that has read this many pages assumes the server ignores `offset`.
const MAX_PAGES: u32 = 10_000;

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

/// The answer of [`AirbyteClient::send_raw`], whatever its status (except 401,
/// which is Airlock's own problem and becomes [`Error::Auth`]).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Airbyte's status.
    pub status: StatusCode,
    /// Airbyte's content type, if any.
    pub content_type: Option<String>,
    /// The body, unchanged.
    pub body: Vec<u8>,
}

/// A resilient client for Airbyte's public API. Cheap to clone: clones share the
/// connection pool and the token.
#[derive(Clone)]
pub struct AirbyteClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The public API root, without a trailing slash.
    base: String,
    /// The Configuration API root, without a trailing slash.
    config_base: Option<String>,
    auth: Authenticator,
    timeout: Duration,
    retry: RetryPolicy,
    observer: Observer,
}

impl fmt::Debug for AirbyteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AirbyteClient")
            .field("base", &self.inner.base)
            .field("config_base", &self.inner.config_base)
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
    url: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
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
        let base = trimmed(&config.base_url);
        let config_base = match &config.config_api_url {
            Some(url) => Some(trimmed(url)),
            None => base
                .strip_suffix("/api/public/v1")
                .map(|root| format!("{root}/api/v1")),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            // An API does not redirect; following one could move a request (and
            // its credential) somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "airlock-airbyte-client/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|error| Error::InvalidInput(transport::describe(&error)))?;
        let auth = match config.auth {
            Auth::None => Authenticator::None,
            Auth::Bearer(token) => Authenticator::Bearer(token),
            Auth::Basic { username, password } => Authenticator::Basic { username, password },
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => Authenticator::Tokens(Box::new(TokenManager::new(
                http.clone(),
                TokenSettings {
                    token_url: format!("{base}/applications/token"),
                    client_id,
                    client_secret,
                    timeout: config.timeout,
                    retry: config.retry,
                    clock: config.clock,
                    observer: config.observer.clone(),
                },
            ))),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                config_base,
                auth,
                timeout: config.timeout,
                retry: config.retry,
                observer: config.observer,
            }),
        })
    }

    /// The public API root this client talks to (no credentials in it).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The Configuration API root, when known.
    pub fn config_api_url(&self) -> Option<&str> {
        self.inner.config_base.as_deref()
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

    /// One page of workspaces (`GET /workspaces`).
    pub async fn list_workspaces(&self, params: &ListParams) -> Result<Page<Workspace>> {
        self.list_page(
            "GET /workspaces",
            "/workspaces",
            params.filter_query(false),
            params.limit,
            params.offset,
        )
        .await
    }

    /// One workspace (`GET /workspaces/{workspaceId}`).
    pub async fn get_workspace(&self, workspace_id: Uuid) -> Result<Workspace> {
        let call = self.call(
            Method::GET,
            "GET /workspaces/{workspaceId}",
            format!("/workspaces/{workspace_id}"),
        );
        self.call_json(call).await
    }

    /// One page of connections (`GET /connections`), filtered by workspaces and tags.
    pub async fn list_connections(&self, params: &ListParams) -> Result<Page<Connection>> {
        self.list_page(
            "GET /connections",
            "/connections",
            params.filter_query(true),
            params.limit,
            params.offset,
        )
        .await
    }

    /// Every connection matching `params`, following pages from `params.offset`.
    pub async fn list_all_connections(&self, params: &ListParams) -> Result<Vec<Connection>> {
        self.connection_pages(params).collect_all().await
    }

    /// A pager over connections, for callers that may stop early.
    pub fn connection_pages(&self, params: &ListParams) -> Pages<Connection> {
        Pages::new(
            self.clone(),
            "GET /connections",
            "/connections",
            params.filter_query(true),
            params.limit,
            params.offset,
        )
    }

    /// One connection (`GET /connections/{connectionId}`).
    pub async fn get_connection(&self, connection_id: Uuid) -> Result<Connection> {
        let call = self.call(
            Method::GET,
            "GET /connections/{connectionId}",
            format!("/connections/{connection_id}"),
        );
        self.call_json(call).await
    }

    /// One page of sources (`GET /sources`), to name where connections read from.
    pub async fn list_sources(&self, params: &ListParams) -> Result<Page<Source>> {
        self.list_page(
            "GET /sources",
            "/sources",
            params.filter_query(false),
            params.limit,
            params.offset,
        )
        .await
    }

    /// One page of destinations (`GET /destinations`), to name where connections write.
    pub async fn list_destinations(&self, params: &ListParams) -> Result<Page<Destination>> {
        self.list_page(
            "GET /destinations",
            "/destinations",
            params.filter_query(false),
            params.limit,
            params.offset,
        )
        .await
    }

    /// Starts a job (`POST /jobs`). Never retried once it may have reached Airbyte:
    /// a timeout, a dropped connection, a 5xx or an unreadable 2xx give
    /// [`Error::Ambiguous`], and the caller reconciles by listing the connection's
    /// recent jobs. Connect errors, 401 and 429 (nothing was processed) are retried.
    /// A sync already running gives [`Error::Conflict`] with
    /// [`ConflictKind::SyncRunning`].
    pub async fn create_job(&self, connection_id: Uuid, job_type: JobType) -> Result<Job> {
        let body = serde_json::to_vec(&JobCreate {
            connection_id,
            job_type: &job_type,
        })
        .map_err(|error| Error::InvalidInput(error.to_string()))?;
        let mut call = self.call(Method::POST, "POST /jobs", "/jobs".to_owned());
        call.body = Some(body);
        call.idempotency = Idempotency::NonIdempotent;
        self.call_json(call).await
    }

    /// One job (`GET /jobs/{jobId}`), what pollers call.
    pub async fn get_job(&self, job_id: i64) -> Result<Job> {
        let call = self.call(Method::GET, "GET /jobs/{jobId}", format!("/jobs/{job_id}"));
        self.call_json(call).await
    }

    /// One page of jobs (`GET /jobs`).
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Page<Job>> {
        self.list_page(
            "GET /jobs",
            "/jobs",
            filter.filter_query(),
            filter.limit,
            filter.offset,
        )
        .await
    }

    /// A pager over jobs, for callers that may stop early (such as "is a sync of
    /// this connection running?").
    pub fn list_jobs_pages(&self, filter: &JobFilter) -> Pages<Job> {
        Pages::new(
            self.clone(),
            "GET /jobs",
            "/jobs",
            filter.filter_query(),
            filter.limit,
            filter.offset,
        )
    }

    /// Every job matching `filter`, following pages.
    pub async fn list_all_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        self.list_jobs_pages(filter).collect_all().await
    }

    /// Cancels a job (`DELETE /jobs/{jobId}`).
    ///
    /// Treated as idempotent, because the goal ("the job is not running") is the
    /// same however often it is asked: transient failures are retried. When a retry
    /// then meets a 409 `state-conflict`, an earlier attempt may have done the
    /// cancelling, so the job is read back: if it is cancelled, that is success.
    pub async fn cancel_job(&self, job_id: i64) -> Result<Job> {
        let call = self.call(
            Method::DELETE,
            "DELETE /jobs/{jobId}",
            format!("/jobs/{job_id}"),
        );
        let outcome = self.execute(&call).await?;
        let attempts = outcome.attempts;
        match decode::<Job>(&call, outcome) {
            Err(Error::Conflict {
                kind: ConflictKind::StateConflict,
                problem,
            }) if attempts > 1 => {
                let job = self.get_job(job_id).await?;
                if job.status == JobStatus::Cancelled {
                    tracing::debug!(job_id, "cancel retried into a 409; the job is cancelled");
                    Ok(job)
                } else {
                    Err(Error::Conflict {
                        kind: ConflictKind::StateConflict,
                        problem,
                    })
                }
            }
            other => other,
        }
    }

    /// Reads a connection through the Configuration API (`POST /connections/get`),
    /// the one internal route Dagster needs; the body is returned as Airbyte sent it.
    /// A read, so retried like one although it is a POST.
    pub async fn get_connection_config(&self, connection_id: Uuid) -> Result<serde_json::Value> {
        let Some(config_base) = &self.inner.config_base else {
            return Err(Error::InvalidInput(
                "no Configuration API URL is configured".to_owned(),
            ));
        };
        let body = serde_json::to_vec(&serde_json::json!({ "connectionId": connection_id }))
            .map_err(|error| Error::InvalidInput(error.to_string()))?;
        let mut call = self.call(Method::POST, "POST /api/v1/connections/get", String::new());
        call.url = format!("{config_base}/connections/get");
        call.body = Some(body);
        self.call_json(call).await
    }

    /// Sends a request as it comes, with Airlock's credential, and returns Airbyte's
    /// answer as it comes: for the Airbyte-compatible front.
    ///
    /// `path_and_query` is relative to the public API root (`/jobs?limit=5`). The
    /// caller's `authorization`, cookies, `accept-encoding` and hop-by-hop headers
    /// are dropped. A 401
    /// refreshes the token and is sent once more; a 401 after that is
    /// [`Error::Auth`], never passed through. Safe methods (GET, HEAD, OPTIONS) are
    /// retried like typed reads; every other method only when nothing was sent or on
    /// 429, and a failure after sending is [`Error::Ambiguous`]. Other statuses,
    /// including 5xx, come back as a [`RawResponse`].
    pub async fn send_raw(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<RawResponse> {
        check_raw_path(path_and_query)?;
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _)| path);
        let idempotency = if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Idempotency::Idempotent
        } else {
            Idempotency::NonIdempotent
        };
        let forwarded = forwardable_headers(headers);
        let mut call = self.call(
            method.clone(),
            raw_route(&method, path),
            path_and_query.to_owned(),
        );
        call.headers = Some(&forwarded);
        call.body = (!body.is_empty()).then_some(body);
        call.idempotency = idempotency;
        let outcome = self.execute(&call).await?;
        let status = StatusCode::from_u16(outcome.reply.status)
            .map_err(|_| Error::InvalidResponse("invalid status code".to_owned()))?;
        Ok(RawResponse {
            status,
            content_type: outcome.reply.content_type,
            body: outcome.reply.body,
        })
    }

    /// A call with the defaults: authenticated, idempotent, the configured retries.
    fn call<'a>(
        &self,
        method: Method,
        route: impl Into<Cow<'static, str>>,
        path: String,
    ) -> Call<'a> {
        Call {
            method,
            route: route.into(),
            url: format!("{}{path}", self.inner.base),
            query: Vec::new(),
            body: None,
            headers: None,
            auth: true,
            idempotency: Idempotency::Idempotent,
            retries: self.inner.retry.max_retries,
        }
    }

    async fn list_page<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: &'static str,
        mut query: Vec<(&'static str, String)>,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Result<Page<T>> {
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = offset {
            query.push(("offset", offset.to_string()));
        }
        let mut call = self.call(Method::GET, route, path.to_owned());
        call.query = query;
        self.call_json(call).await
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
            method = %call.method,
            route = %call.route,
            status = field::Empty,
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
            let mut builder = self
                .inner
                .http
                .request(call.method.clone(), &call.url)
                .timeout(self.inner.timeout)
                .header(ACCEPT, HeaderValue::from_static("application/json"));
            if let Some(headers) = call.headers {
                builder = builder.headers(headers.clone());
            }
            if !call.query.is_empty() {
                builder = builder.query(&call.query);
            }
            if let Some(body) = &call.body {
                if call
                    .headers
                    .is_none_or(|headers| !headers.contains_key(CONTENT_TYPE))
                {
                    builder = builder.header(CONTENT_TYPE, "application/json");
                }
                builder = builder.body(body.clone());
            }
            let generation = if call.auth {
                let (authorized, generation) = self.inner.auth.authorize(builder).await?;
                builder = authorized;
                generation
            } else {
                None
            };
            let sent_at = Instant::now();
            let result = transport::send_once(builder).await;
            let elapsed = sent_at.elapsed();
            let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            let status = result.as_ref().ok().map(|reply| reply.status);
            observe::call(&self.inner.observer, &call.route, status, elapsed, attempts);
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

/// The route template of a raw call: the method and the path with every id
/// segment (a UUID or a number) replaced by `{id}`, so that logs and metrics
/// name a handful of routes rather than one per resource.
fn raw_route(method: &Method, path: &str) -> String {
    let template: Vec<&str> = path
        .split('/')
        .map(|segment| {
            let numeric = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
            if numeric || Uuid::parse_str(segment).is_ok() {
                "{id}"
            } else {
                segment
            }
        })
        .collect();
    format!("{method} {}", template.join("/"))
}

/// A URL as a string without the trailing slash, so paths can be appended.
fn trimmed(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// Refuses raw paths that could leave the public API root or smuggle a request.
fn check_raw_path(path_and_query: &str) -> Result<()> {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(path, _)| path);
    let bad = !path.starts_with('/')
        || path.starts_with("//")
        || path_and_query.contains('#')
        || path_and_query
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        || path.split('/').any(|segment| {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            decoded == ".." || decoded == "."
        })
        || path.to_ascii_lowercase().contains("%2f");
    if bad {
        return Err(Error::InvalidInput(
            "the raw path must be an absolute path under the public API root".to_owned(),
        ));
    }
    Ok(())
}

/// The caller's headers minus credentials, hop-by-hop headers and
/// `accept-encoding` (the answer goes back without its content encoding, so it
/// must come uncompressed).
fn forwardable_headers(headers: &HeaderMap) -> HeaderMap {
    const DROPPED: [header::HeaderName; 12] = [
        header::ACCEPT_ENCODING,
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::COOKIE,
        header::HOST,
        header::CONTENT_LENGTH,
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::EXPECT,
    ];
    let mut forwarded = headers.clone();
    for name in &DROPPED {
        forwarded.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        forwarded.remove(name);
    }
    forwarded
}

/// Follows the pages of a list. Stops after an empty page or one shorter than the
/// page size, whatever `next` says (Airbyte sends `next` even on a short last page).
pub struct Pages<T> {
    client: AirbyteClient,
    route: &'static str,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    limit: u32,
    offset: u32,
    pages: u32,
    done: bool,
    _items: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Pages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("route", &self.route)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Pages<T> {
    fn new(
        client: AirbyteClient,
        route: &'static str,
        path: &'static str,
        query: Vec<(&'static str, String)>,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Self {
        Self {
            client,
            route,
            path,
            query,
            limit: limit.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
            offset: offset.unwrap_or(0),
            pages: 0,
            done: false,
            _items: PhantomData,
        }
    }

    /// The next page's items, or `None` when the list is exhausted.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>> {
        if self.done {
            return Ok(None);
        }
        if self.pages >= MAX_PAGES {
            self.done = true;
            return Err(Error::InvalidResponse(format!(
                "{}: more than {MAX_PAGES} pages; is the server ignoring offset?",
                self.route
            )));
        }
        let page: Page<T> = self
            .client
            .list_page(
                self.route,
                self.path,
                self.query.clone(),
                Some(self.limit),
                Some(self.offset),
            )
            .await?;
        self.pages += 1;
        let count = u32::try_from(page.data.len()).unwrap_or(u32::MAX);
        if count < self.limit {
            self.done = true;
        }
        if count == 0 {
            return Ok(None);
        }
        self.offset = self.offset.saturating_add(count);
        Ok(Some(page.data))
    }

    /// All remaining items.
    pub async fn collect_all(mut self) -> Result<Vec<T>> {
        let mut items = Vec::new();
        while let Some(page) = self.next_page().await? {
            items.extend(page);
        }
        Ok(items)
    }
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

    #[test]
    fn raw_paths_stay_under_the_root() {
        for good in ["/jobs", "/jobs?limit=5&workspaceIds=a", "/connections/abc"] {
            assert!(check_raw_path(good).is_ok(), "{good}");
        }
        for bad in [
            "jobs",
            "//evil.example/jobs",
            "/../v1/x",
            "/a/%2e%2E/b",
            "/a%2Fb",
            "/jobs#x",
            "/jobs HTTP/1.1\r\nX: y",
        ] {
            assert!(check_raw_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_routes_are_templates() {
        let id = "7d5e8b1c-7f0e-4f8a-9a43-1f1c2b3d4e5f";
        assert_eq!(
            raw_route(&Method::GET, &format!("/connections/{id}")),
            "GET /connections/{id}"
        );
        assert_eq!(raw_route(&Method::DELETE, "/jobs/42"), "DELETE /jobs/{id}");
        assert_eq!(raw_route(&Method::GET, "/jobs"), "GET /jobs");
        assert_eq!(
            raw_route(&Method::PATCH, &format!("/workspaces/{id}/x")),
            "PATCH /workspaces/{id}/x"
        );
    }

    #[test]
    fn raw_headers_lose_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer caller"),
        );
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let forwarded = forwardable_headers(&headers);
        assert_eq!(forwarded.len(), 1);
        assert!(forwarded.contains_key(header::CONTENT_TYPE));
    }
}
