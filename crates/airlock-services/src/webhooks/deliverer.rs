//! The deliverer: a background loop that turns new job events and approval
//! events into deliveries (durably, each timeline with its cursor) and
//! sends the deliveries that are due, retrying with jittered exponential
//! backoff. The approvals' timeline is `approvals`.

mod approvals;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use tokio::sync::Notify;

use super::{WebhookConfig, WebhookError, WebhookEvent, payload, signature};
use crate::connections::Catalog;
use airlock_domain::clock::SharedClock;
use airlock_domain::jobs::{Job, JobId, JobState};
use airlock_domain::secret::Secret;
use airlock_store::Store;
use airlock_store::webhooks::{
    self as outbox, After, Attempt, Delivery, NewDelivery, RawEvent, Timeline,
};

/// How often the loop looks for new events and due deliveries.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Events read per batch.
const EVENT_BATCH: i64 = 500;

/// Deliveries sent per pass (concurrently).
const SEND_BATCH: i64 = 16;

/// A hole in `job_events.seq` (or `approval_events.seq`) is waited for this long (a transaction may
/// still commit it) before it is taken for a rolled-back one and skipped.
const GAP_GRACE_MS: i64 = 10_000;

/// Extra time a claimed delivery is held beyond its attempt's timeout.
const LEASE_MARGIN_MS: i64 = 30_000;

/// First retry delay; doubles with each attempt, with jitter.
const BACKOFF_BASE_MS: i64 = 30_000;

/// Longest retry delay.
const BACKOFF_MAX_MS: i64 = 60 * 60 * 1000;

/// Names the filters of `[[webhooks]]` may use for a job's connection and
/// workspace (the connection catalog; a stub in tests).
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// The slug of a connection, when known.
    fn connection_slug(&self, connection_id: &str) -> Option<String>;
    /// The name of a workspace, when known.
    fn workspace_name(&self, workspace_id: &str) -> Option<String>;
    /// The workspace of a connection, when known (an approval request
    /// names only its connection).
    fn connection_workspace(&self, _connection_id: &str) -> Option<String> {
        None
    }
}

impl Directory for Catalog {
    fn connection_slug(&self, connection_id: &str) -> Option<String> {
        self.snapshot()
            .resolve(connection_id)
            .map(|connection| connection.slug.clone())
    }

    fn workspace_name(&self, workspace_id: &str) -> Option<String> {
        self.snapshot()
            .workspace_name(workspace_id)
            .map(str::to_owned)
    }

    fn connection_workspace(&self, connection_id: &str) -> Option<String> {
        self.snapshot()
            .resolve(connection_id)
            .map(|connection| connection.workspace_id.clone())
    }
}

/// A directory that knows no names: filters match ids only.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdsOnly;

impl Directory for IdsOnly {
    fn connection_slug(&self, _connection_id: &str) -> Option<String> {
        None
    }

    fn workspace_name(&self, _workspace_id: &str) -> Option<String> {
        None
    }
}

/// A webhook ready to use: URL parsed, secret read.
struct Webhook {
    id: String,
    index: usize,
    url: Url,
    secret: Secret,
    events: Vec<WebhookEvent>,
    connections: Option<Vec<String>>,
    workspaces: Option<Vec<String>>,
    timeout: Duration,
    max_attempts: u32,
}

impl std::fmt::Debug for Webhook {
    /// Neither the secret nor the URL (its path or query may be a token).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("index", &self.index)
            .field("host", &self.url.host_str())
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// A stable id for a webhook: the first 16 hex digits of its URL's SHA-256.
/// Stored on deliveries instead of the URL, and used to find the webhook
/// again after a restart.
pub fn webhook_id(url: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, url.as_bytes());
    hex::encode(&digest.as_ref()[..8])
}

impl Webhook {
    fn from_config(
        index: usize,
        config: &WebhookConfig,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, WebhookError> {
        let url = Url::parse(&config.url).map_err(|e| WebhookError::Config {
            key: format!("webhooks[{index}].url"),
            message: format!("not a URL: {e}"),
        })?;
        let secret = config
            .secret
            .resolve(lookup_env)
            .map_err(|message| WebhookError::Config {
                key: format!("webhooks[{index}].secret"),
                message,
            })?;
        Ok(Self {
            id: webhook_id(&config.url),
            index,
            url,
            secret,
            events: config.events.clone(),
            connections: config.connections.clone(),
            workspaces: config.workspaces.clone(),
            timeout: config.timeout(),
            max_attempts: config.max_attempts,
        })
    }

    /// True when this webhook wants `event` of `job`.
    fn wants(&self, event: WebhookEvent, job: &Job, directory: &dyn Directory) -> bool {
        self.wants_on(
            event,
            &job.connection_id,
            Some(&job.workspace_id),
            directory,
        )
    }

    /// True when this webhook wants `event` on `connection_id`, in
    /// `workspace_id` (`None`: not known, which no workspace filter matches).
    fn wants_on(
        &self,
        event: WebhookEvent,
        connection_id: &str,
        workspace_id: Option<&str>,
        directory: &dyn Directory,
    ) -> bool {
        if !self.events.contains(&event) {
            return false;
        }
        let connection_ok = self.connections.as_ref().is_none_or(|wanted| {
            let slug = directory.connection_slug(connection_id);
            wanted.iter().any(|w| {
                w.eq_ignore_ascii_case(connection_id) || slug.as_deref() == Some(w.as_str())
            })
        });
        let workspace_ok = self.workspaces.as_ref().is_none_or(|wanted| {
            let Some(workspace_id) = workspace_id else {
                return false;
            };
            let name = directory.workspace_name(workspace_id);
            wanted.iter().any(|w| {
                w.eq_ignore_ascii_case(workspace_id) || name.as_deref() == Some(w.as_str())
            })
        });
        connection_ok && workspace_ok
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Deliveries created from new events.
    pub enqueued: usize,
    /// Deliveries that got a 2xx.
    pub delivered: usize,
    /// Attempts that failed and will be retried.
    pub retrying: usize,
    /// Deliveries given up on.
    pub given_up: usize,
}

impl PassReport {
    /// Nothing happened.
    pub fn is_idle(&self) -> bool {
        *self == Self::default()
    }
}

/// Reads job and approval events into deliveries and sends them.
#[derive(Debug)]
pub struct Deliverer {
    store: Store,
    webhooks: Vec<Webhook>,
    clock: SharedClock,
    directory: Arc<dyn Directory>,
    http: reqwest::Client,
    /// The first missing `seq` after the job events' cursor, and when it
    /// was first seen.
    gap: Option<(i64, i64)>,
    /// The same for the approval events' cursor.
    approval_gap: Option<(i64, i64)>,
}

impl Deliverer {
    /// Builds the deliverer from `[[webhooks]]`, reading their secrets now so
    /// that a missing one stops start-up with the key's name.
    pub fn new(
        configs: &[WebhookConfig],
        lookup_env: &dyn Fn(&str) -> Option<String>,
        store: Store,
        clock: SharedClock,
        directory: Arc<dyn Directory>,
    ) -> Result<Self, WebhookError> {
        let webhooks = configs
            .iter()
            .enumerate()
            .map(|(index, config)| Webhook::from_config(index, config, lookup_env))
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            // A redirect could send the signed body somewhere unintended.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(WebhookError::Client)?;
        Ok(Self {
            store,
            webhooks,
            clock,
            directory,
            http,
            gap: None,
            approval_gap: None,
        })
    }

    /// Runs a pass every second until `stop` is notified. A pass cut short
    /// by the stop loses nothing: an open transaction rolls back, and a
    /// claimed delivery is retried when its claim runs out.
    pub async fn run(mut self, stop: Arc<Notify>) {
        let stopped = stop.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        loop {
            tokio::select! {
                () = &mut stopped => return,
                result = self.pass() => match result {
                    Ok(report) if !report.is_idle() => tracing::debug!(?report, "webhook pass"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(error = %error, "webhook pass failed"),
                },
            }
            tokio::select! {
                () = &mut stopped => return,
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// Enqueues deliveries for new events, then sends those that are due.
    pub async fn pass(&mut self) -> Result<PassReport, WebhookError> {
        let enqueued = self.enqueue().await?;
        let mut report = self.send_due().await?;
        report.enqueued = enqueued;
        Ok(report)
    }

    /// Turns the events after each timeline's cursor into deliveries,
    /// moving the cursor in the same transaction. Returns how many
    /// deliveries were created.
    pub async fn enqueue(&mut self) -> Result<usize, WebhookError> {
        Ok(self.enqueue_jobs().await? + self.enqueue_approvals().await?)
    }

    /// [`Self::enqueue`] for the job events.
    async fn enqueue_jobs(&mut self) -> Result<usize, WebhookError> {
        let mut created = 0;
        loop {
            let from = outbox::cursor(&self.store, Timeline::Jobs).await?;
            let events = outbox::events_after(&self.store, from, EVENT_BATCH).await?;
            let read = events.len();
            let now = self.clock.now_ms();
            let events = contiguous(&mut self.gap, from, events, |e| e.seq, now);
            let Some(to) = events.last().map(|e| e.seq) else {
                return Ok(created);
            };
            let deliveries = self.deliveries_for(&events).await?;
            if !outbox::commit_batch(&self.store, Timeline::Jobs, from, to, &deliveries, now)
                .await?
            {
                // Another replica moved the cursor: its deliveries stand.
                return Ok(created);
            }
            created += deliveries.len();
            if read < usize::try_from(EVENT_BATCH).unwrap_or(usize::MAX) || events.len() < read {
                return Ok(created);
            }
        }
    }

    /// The deliveries `events` raise, webhook by webhook.
    async fn deliveries_for(&self, events: &[RawEvent]) -> Result<Vec<NewDelivery>, WebhookError> {
        let mut deliveries = Vec::new();
        let mut jobs: HashMap<String, Option<Job>> = HashMap::new();
        for event in events {
            let Ok(state) = event.state.parse::<JobState>() else {
                tracing::warn!(seq = event.seq, "job event with an unknown state; skipped");
                continue;
            };
            let Some(kind) = WebhookEvent::for_state(state) else {
                continue;
            };
            if !self.webhooks.iter().any(|w| w.events.contains(&kind)) {
                continue;
            }
            if kind == WebhookEvent::Started
                && outbox::started_before(&self.store, &event.job_id, event.seq).await?
            {
                continue;
            }
            if !jobs.contains_key(&event.job_id) {
                let job = match event.job_id.parse::<JobId>() {
                    Ok(id) => self.store.get_job(&id).await?,
                    Err(_) => None,
                };
                jobs.insert(event.job_id.clone(), job);
            }
            let Some(Some(job)) = jobs.get(&event.job_id) else {
                tracing::warn!(seq = event.seq, job_id = %event.job_id, "job event of an unknown job; skipped");
                continue;
            };
            let mut body = None;
            for webhook in &self.webhooks {
                if !webhook.wants(kind, job, self.directory.as_ref()) {
                    continue;
                }
                let body = body.get_or_insert_with(|| {
                    payload::body(kind, job, event.at, event.detail.as_deref()).to_string()
                });
                deliveries.push(NewDelivery {
                    id: uuid::Uuid::now_v7().to_string(),
                    webhook_id: webhook.id.clone(),
                    job_id: event.job_id.clone(),
                    approval_id: None,
                    event_seq: event.seq,
                    event: kind.name(),
                    payload: body.clone(),
                });
            }
        }
        Ok(deliveries)
    }

    /// Sends the deliveries that are due, concurrently, and records each attempt.
    async fn send_due(&self) -> Result<PassReport, WebhookError> {
        let now = self.clock.now_ms();
        let due = outbox::due(&self.store, now, SEND_BATCH).await?;
        let mut report = PassReport::default();
        let mut sends = Vec::new();
        for delivery in due {
            let Some(webhook) = self.webhooks.iter().find(|w| w.id == delivery.webhook_id) else {
                outbox::give_up(
                    &self.store,
                    &delivery.id,
                    "the webhook is no longer configured",
                    now,
                )
                .await?;
                report.given_up += 1;
                continue;
            };
            if delivery.attempts >= i64::from(webhook.max_attempts) {
                outbox::give_up(&self.store, &delivery.id, "attempts exhausted", now).await?;
                report.given_up += 1;
                continue;
            }
            let Some(seen) = delivery.next_attempt_at else {
                continue;
            };
            let lease_until = now + duration_ms(webhook.timeout) + LEASE_MARGIN_MS;
            if outbox::claim(&self.store, &delivery.id, seen, lease_until).await? {
                sends.push(self.attempt(webhook, delivery));
            }
        }
        for result in futures_util::future::join_all(sends).await {
            match result? {
                Some(After::Delivered) => report.delivered += 1,
                Some(After::RetryAt(_)) => report.retrying += 1,
                Some(After::GiveUp) => report.given_up += 1,
                None => {}
            }
        }
        Ok(report)
    }

    /// One attempt: signs, sends, records. `None` when the attempt had
    /// already been recorded by another replica.
    async fn attempt(
        &self,
        webhook: &Webhook,
        delivery: Delivery,
    ) -> Result<Option<After>, WebhookError> {
        let number = delivery.attempts + 1;
        let at = self.clock.now_ms();
        let body = with_sent_at(&delivery.payload, at);
        let signature = signature::sign(
            webhook.secret.expose().as_bytes(),
            at.div_euclid(1000),
            &body,
        );
        let started = tokio::time::Instant::now();
        let sent = self
            .http
            .post(webhook.url.clone())
            .timeout(webhook.timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(
                USER_AGENT,
                concat!("airlock-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("Airlock-Event", &delivery.event)
            .header("Airlock-Delivery", &delivery.id)
            .header(signature::HEADER, signature)
            .body(body)
            .send()
            .await;
        let duration_ms = duration_ms(started.elapsed());
        let (status, error) = match sent {
            Ok(response) if response.status().is_success() => {
                (Some(i64::from(response.status().as_u16())), None)
            }
            Ok(response) => (
                Some(i64::from(response.status().as_u16())),
                Some(format!("the receiver answered {}", response.status())),
            ),
            Err(error) => (None, Some(describe(error))),
        };
        let after = match (&error, number >= i64::from(webhook.max_attempts)) {
            (None, _) => After::Delivered,
            (Some(_), true) => After::GiveUp,
            (Some(_), false) => After::RetryAt(self.clock.now_ms() + backoff_ms(number)),
        };
        match after {
            After::Delivered => tracing::debug!(
                webhook = %webhook.id, delivery_id = %delivery.id, event = %delivery.event, attempt = number,
                "webhook delivered"
            ),
            After::RetryAt(_) => tracing::info!(
                webhook = %webhook.id, host = webhook.url.host_str().unwrap_or(""), delivery_id = %delivery.id,
                attempt = number, status, error = error.as_deref().unwrap_or(""), "webhook attempt failed; will retry"
            ),
            After::GiveUp => tracing::warn!(
                webhook = %webhook.id, host = webhook.url.host_str().unwrap_or(""), delivery_id = %delivery.id,
                attempt = number, status, error = error.as_deref().unwrap_or(""), "webhook delivery given up"
            ),
        }
        let record = Attempt {
            delivery_id: delivery.id,
            attempt: number,
            at,
            status,
            error,
            duration_ms,
        };
        let recorded = outbox::record_attempt(&self.store, &record, after).await?;
        Ok(recorded.then_some(after))
    }
}

/// The events that follow `from` without a hole (`seq` reads an event's
/// number; `gap` is the timeline's first hole and when it was seen). A hole
/// is a transaction that took a `seq` and has not committed yet (Postgres
/// hands out numbers before commit), or one that rolled back: it is waited
/// for [`GAP_GRACE_MS`], then skipped.
fn contiguous<E>(
    gap: &mut Option<(i64, i64)>,
    from: i64,
    events: Vec<E>,
    seq_of: impl Fn(&E) -> i64,
    now: i64,
) -> Vec<E> {
    let mut expected = from + 1;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let seq = seq_of(&event);
        if seq != expected {
            match *gap {
                Some((missing, since)) if missing == expected && now - since >= GAP_GRACE_MS => {
                    tracing::warn!(
                        missing_from = expected,
                        next = seq,
                        "event numbers skipped (a rolled-back transaction); moving on"
                    );
                    *gap = None;
                }
                Some((missing, _)) if missing == expected => break,
                _ => {
                    *gap = Some((expected, now));
                    break;
                }
            }
        }
        expected = seq + 1;
        out.push(event);
    }
    out
}

/// The stored payload with `sent_at` added.
fn with_sent_at(stored: &str, at: i64) -> Vec<u8> {
    let mut body: serde_json::Value =
        serde_json::from_str(stored).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(object) = body.as_object_mut() {
        object.insert(
            "sent_at".to_owned(),
            airlock_domain::jobs::view::rfc3339(at).into(),
        );
    }
    body.to_string().into_bytes()
}

/// A short reason for a failed send, without the URL (it may hold a token).
fn describe(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let prefix = if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&error);
    let mut last = None;
    while let Some(inner) = cause {
        last = Some(inner.to_string());
        cause = inner.source();
    }
    match last {
        Some(reason) => format!("{prefix}: {reason}"),
        None => prefix.to_owned(),
    }
}

/// The delay after failed attempt `attempt` (1-based): 30 s, 1 min, 2 min,
/// ... up to an hour, then up to 25% off so that retries spread out.
fn backoff_ms(attempt: i64) -> i64 {
    let exponent = u32::try_from((attempt - 1).clamp(0, 20)).unwrap_or(20);
    let delay = BACKOFF_BASE_MS
        .saturating_mul(1_i64 << exponent)
        .min(BACKOFF_MAX_MS);
    delay - rand::random_range(0..=delay / 4)
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
