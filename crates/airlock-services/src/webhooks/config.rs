//! `[[webhooks]]`: where job and approval events are sent, signed with
//! which secret, and which events and connections each receiver wants.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use airlock_domain::jobs::JobState;
use airlock_domain::secret::SecretSource;
use airlock_domain::settings::InvalidKey;

/// One receiver, as written in the configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed (http or https).
    pub url: String,
    /// The key of the `Airlock-Signature` HMAC; the receiver holds it too.
    pub secret: SecretSource,
    /// Which events to send; by default the ends of jobs. Approvals'
    /// events (`approval.requested`, ...) are sent only when named: a
    /// receiver written for job payloads does not get another shape unasked.
    #[serde(default = "default_events")]
    pub events: Vec<WebhookEvent>,
    /// Only jobs and approval requests of these connections (Airbyte ids or
    /// slugs); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<String>>,
    /// Only jobs and approval requests of these workspaces (ids or names);
    /// all when absent. A request's workspace is its connection's in the
    /// catalog: one of a connection the catalog does not know is not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<Vec<String>>,
    /// How long one attempt may take, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Attempts per delivery before giving up (backoff doubles in between).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_events() -> Vec<WebhookEvent> {
    vec![
        WebhookEvent::Succeeded,
        WebhookEvent::Failed,
        WebhookEvent::Cancelled,
    ]
}

fn default_timeout_secs() -> u64 {
    10
}

fn default_max_attempts() -> u32 {
    8
}

/// Longest attempt timeout accepted, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 120;

/// Most attempts accepted per delivery.
pub const MAX_ATTEMPTS_CAP: u32 = 20;

impl WebhookConfig {
    /// The attempt timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Checks every webhook; the error names the key (`webhooks[0].url`).
    pub fn validate_all(webhooks: &[Self]) -> Result<(), InvalidKey> {
        for (i, webhook) in webhooks.iter().enumerate() {
            let invalid = |field: &str, message: String| {
                InvalidKey::new(format!("webhooks[{i}].{field}"), message)
            };
            let url =
                Url::parse(&webhook.url).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid("url", "must be an http(s) URL".to_owned()));
            }
            if let Some(j) = webhooks[..i].iter().position(|w| w.url == webhook.url) {
                return Err(invalid("url", format!("the same URL as webhooks[{j}]")));
            }
            if let SecretSource::Inline(value) = &webhook.secret
                && value.is_empty()
            {
                return Err(invalid("secret", "the secret is empty".to_owned()));
            }
            if webhook.events.is_empty() {
                return Err(invalid("events", "name at least one event".to_owned()));
            }
            for (field, list) in [
                ("connections", &webhook.connections),
                ("workspaces", &webhook.workspaces),
            ] {
                if list.as_ref().is_some_and(Vec::is_empty) {
                    return Err(invalid(
                        field,
                        "an empty list matches nothing; leave it out to match all".to_owned(),
                    ));
                }
            }
            if webhook.timeout_secs == 0 || webhook.timeout_secs > MAX_TIMEOUT_SECS {
                return Err(invalid(
                    "timeout_secs",
                    format!("must be 1 to {MAX_TIMEOUT_SECS}"),
                ));
            }
            if webhook.max_attempts == 0 || webhook.max_attempts > MAX_ATTEMPTS_CAP {
                return Err(invalid(
                    "max_attempts",
                    format!("must be 1 to {MAX_ATTEMPTS_CAP}"),
                ));
            }
        }
        Ok(())
    }
}

/// What a receiver can subscribe to: a job's changes (written bare,
/// `succeeded`, or in full, `job.succeeded`) and an approval request's
/// (always in full, `approval.requested`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum WebhookEvent {
    /// A job was queued: a trigger, or a failed attempt waiting for its retry.
    Queued,
    /// Airbyte has the job: the first `pending` or `running` of a job.
    Started,
    Succeeded,
    Failed,
    Cancelled,
    /// The job's approval was denied; it never reached Airbyte.
    Rejected,
    /// Nobody decided the job's approval in time; it never reached Airbyte.
    Expired,
    /// An action waits for four-eyes approval: a new request.
    ApprovalRequested,
    /// Enough people approved a request (its job, if any, is queued).
    ApprovalApproved,
    /// Someone denied a request.
    ApprovalDenied,
    /// A request expired: undecided in time, or approved and not used in time.
    ApprovalExpired,
}

impl WebhookEvent {
    /// Every event.
    pub const ALL: [Self; 11] = [
        Self::Queued,
        Self::Started,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Rejected,
        Self::Expired,
        Self::ApprovalRequested,
        Self::ApprovalApproved,
        Self::ApprovalDenied,
        Self::ApprovalExpired,
    ];

    /// The name in payloads and the `Airlock-Event` header: `job.succeeded`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "job.queued",
            Self::Started => "job.started",
            Self::Succeeded => "job.succeeded",
            Self::Failed => "job.failed",
            Self::Cancelled => "job.cancelled",
            Self::Rejected => "job.rejected",
            Self::Expired => "job.expired",
            Self::ApprovalRequested => "approval.requested",
            Self::ApprovalApproved => "approval.approved",
            Self::ApprovalDenied => "approval.denied",
            Self::ApprovalExpired => "approval.expired",
        }
    }

    /// Whether it is an approval request's event (read from
    /// `approval_events`) rather than a job's.
    pub fn is_approval(self) -> bool {
        matches!(
            self,
            Self::ApprovalRequested
                | Self::ApprovalApproved
                | Self::ApprovalDenied
                | Self::ApprovalExpired
        )
    }

    /// The webhook event of an entry of the approvals' timeline, if it is
    /// one (`withdrawn` and `used` are not: the job's own events tell them).
    pub fn for_approval(event: &str) -> Option<Self> {
        match event {
            "requested" => Some(Self::ApprovalRequested),
            "approved" => Some(Self::ApprovalApproved),
            "denied" => Some(Self::ApprovalDenied),
            "expired" => Some(Self::ApprovalExpired),
            _ => None,
        }
    }

    /// As written in the configuration: a job's bare (`succeeded`, as it
    /// always was), an approval's in full.
    fn config_name(self) -> &'static str {
        let name = self.name();
        name.strip_prefix("job.").unwrap_or(name)
    }

    /// The event a job state may raise. `pending` and `running` raise
    /// `started` only the first time (the caller checks); `starting` is an
    /// internal step and raises nothing, and so does `awaiting_approval`
    /// (its request is an approval's event).
    pub fn for_state(state: JobState) -> Option<Self> {
        match state {
            JobState::Queued => Some(Self::Queued),
            JobState::Starting | JobState::AwaitingApproval => None,
            JobState::Pending | JobState::Running => Some(Self::Started),
            JobState::Succeeded => Some(Self::Succeeded),
            JobState::Failed => Some(Self::Failed),
            JobState::Cancelled => Some(Self::Cancelled),
            JobState::Rejected => Some(Self::Rejected),
            JobState::Expired => Some(Self::Expired),
        }
    }
}

impl FromStr for WebhookEvent {
    type Err = String;

    /// Accepts `succeeded` and `job.succeeded` alike, and
    /// `approval.requested` (an approval's only in full).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|event| event.name() == s || event.config_name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown webhook event `{s}` (expected queued, started, succeeded, failed, cancelled, \
                     rejected, expired, approval.requested, approval.approved, approval.denied or \
                     approval.expired)"
                )
            })
    }
}

impl Serialize for WebhookEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.config_name())
    }
}

impl TryFrom<String> for WebhookEvent {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        webhooks: Vec<WebhookConfig>,
    }

    fn parse(text: &str) -> Result<Vec<WebhookConfig>, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        WebhookConfig::validate_all(&file.webhooks).map_err(|e| e.to_string())?;
        Ok(file.webhooks)
    }

    #[test]
    fn defaults_are_the_ends_of_jobs() {
        let hooks = parse("[[webhooks]]\nurl = \"https://hooks.example.com/x\"\nsecret = \"s\"\n")
            .expect("valid");
        assert_eq!(
            hooks[0].events,
            [
                WebhookEvent::Succeeded,
                WebhookEvent::Failed,
                WebhookEvent::Cancelled
            ]
        );
        assert_eq!(hooks[0].max_attempts, 8);
        assert_eq!(hooks[0].timeout_secs, 10);
        assert!(hooks[0].connections.is_none());
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("url = \"ftp://x\"\nsecret = \"s\"", "webhooks[0].url"),
            ("url = \"nope\"\nsecret = \"s\"", "webhooks[0].url"),
            ("url = \"http://x\"\nsecret = \"\"", "webhooks[0].secret"),
            (
                "url = \"http://x\"\nsecret = \"s\"\nevents = []",
                "webhooks[0].events",
            ),
            (
                "url = \"http://x\"\nsecret = \"s\"\nmax_attempts = 0",
                "webhooks[0].max_attempts",
            ),
            (
                "url = \"http://x\"\nsecret = \"s\"\ntimeout_secs = 0",
                "webhooks[0].timeout_secs",
            ),
            (
                "url = \"http://x\"\nsecret = \"s\"\nconnections = []",
                "webhooks[0].connections",
            ),
        ] {
            let err = parse(&format!("[[webhooks]]\n{text}\n")).expect_err(text);
            assert!(err.contains(key), "{key}: {err}");
        }
        let err =
            parse("[[webhooks]]\nurl = \"http://x\"\nsecret = \"s\"\nevents = [\"finished\"]\n")
                .expect_err("unknown event");
        assert!(err.contains("finished"), "{err}");
        let err = parse(
            "[[webhooks]]\nurl = \"http://x/\"\nsecret = \"s\"\n[[webhooks]]\nurl = \"http://x/\"\nsecret = \"t\"\n",
        )
        .expect_err("duplicate");
        assert!(err.contains("webhooks[1].url"), "{err}");
    }

    #[test]
    fn event_names_round_trip() {
        for event in WebhookEvent::ALL {
            assert_eq!(event.name().parse::<WebhookEvent>(), Ok(event));
            assert_eq!(event.config_name().parse::<WebhookEvent>(), Ok(event));
        }
        // An approval's event only in full: bare `expired` is the job's.
        assert_eq!("expired".parse(), Ok(WebhookEvent::Expired));
        assert!("requested".parse::<WebhookEvent>().is_err());
        assert!("job.approval.requested".parse::<WebhookEvent>().is_err());
        let hooks = parse(
            "[[webhooks]]\nurl = \"http://x\"\nsecret = \"s\"\nevents = [\"approval.requested\", \"succeeded\"]\n",
        )
        .expect("valid");
        assert_eq!(
            hooks[0].events,
            [WebhookEvent::ApprovalRequested, WebhookEvent::Succeeded]
        );
        let written = toml::to_string(&hooks[0]).expect("toml");
        assert!(
            written.contains(r#"events = ["approval.requested", "succeeded"]"#),
            "{written}"
        );
        assert_eq!(
            WebhookEvent::for_approval("approved"),
            Some(WebhookEvent::ApprovalApproved)
        );
        assert_eq!(WebhookEvent::for_approval("withdrawn"), None);
        assert_eq!(
            WebhookEvent::for_state(JobState::Running),
            Some(WebhookEvent::Started)
        );
        assert_eq!(WebhookEvent::for_state(JobState::Starting), None);
    }
}
