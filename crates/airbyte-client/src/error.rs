//! What can go wrong when talking to Airbyte, typed so callers can act on it.
//!
//! The split that matters most is between errors that say *the request did not
//! take effect* (safe to send again) and [`Error::Ambiguous`] (it may have taken
//! effect: reconcile before sending again). Error messages never carry a secret,
//! a token, a URL or a request body.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call to Airbyte can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Airbyte rejected Airlock's own credentials (bad client credentials, or a 401
    /// that a fresh token did not cure). An operator must fix the configuration.
    #[error("Airbyte rejected Airlock's credentials: {reason}")]
    Auth {
        /// What was rejected; never the credential itself.
        reason: String,
    },

    /// The addressed object does not exist (404).
    #[error("not found in Airbyte{}", problem_suffix(.problem))]
    NotFound {
        /// Airbyte's problem body, when it sent one.
        problem: Option<Box<Problem>>,
    },

    /// The request conflicts with the object's state (409), such as a sync that is
    /// already running.
    #[error("conflict in Airbyte ({kind}){}", problem_suffix(.problem))]
    Conflict {
        /// Which conflict, recognised from the body.
        kind: ConflictKind,
        /// Airbyte's problem body, when it sent one.
        problem: Option<Box<Problem>>,
    },

    /// Airbyte kept answering 429 until the retry budget ran out. The request was
    /// not processed.
    #[error("rate limited by Airbyte ({attempts} attempts)")]
    RateLimited {
        /// Attempts made.
        attempts: u32,
    },

    /// Airbyte kept failing with a 5xx until the retry budget ran out (idempotent
    /// calls only; a non-idempotent call gets [`Error::Ambiguous`] instead).
    #[error("Airbyte answered {status} ({attempts} attempts){}", problem_suffix(.problem))]
    Upstream {
        /// The last HTTP status.
        status: u16,
        /// Airbyte's problem body, when it sent one.
        problem: Option<Box<Problem>>,
        /// Attempts made.
        attempts: u32,
    },

    /// A non-idempotent request (such as `POST /jobs`) may or may not have taken
    /// effect: it reached Airbyte, or may have, and no usable answer came back.
    /// Sending it again could start a second sync; reconcile first (list the
    /// connection's recent jobs).
    #[error("outcome unknown, reconcile before retrying: {reason}")]
    Ambiguous {
        /// Why the outcome is unknown (timeout, dropped connection, 5xx, unreadable 2xx).
        reason: String,
        /// The HTTP status, when one arrived.
        status: Option<u16>,
    },

    /// No answer within the per-attempt timeout, on every attempt.
    #[error("Airbyte did not answer within {after:?} ({attempts} attempts)")]
    Timeout {
        /// The per-attempt timeout.
        after: Duration,
        /// Attempts made.
        attempts: u32,
    },

    /// The connection to Airbyte failed (refused, reset, TLS, DNS) on every attempt.
    #[error("cannot reach Airbyte ({attempts} attempts): {message}")]
    Transport {
        /// What failed, without the URL.
        message: String,
        /// Attempts made.
        attempts: u32,
        /// The underlying error, without the URL.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },

    /// Airbyte answered something this client cannot read (wrong shape, a redirect,
    /// an unexpected status).
    #[error("unexpected answer from Airbyte: {0}")]
    InvalidResponse(String),

    /// Airbyte refused the request as invalid or forbidden (a 4xx other than 401,
    /// 404, 409 and 429), with its problem body parsed.
    #[error("Airbyte refused the request with {status}{}", problem_suffix(.problem))]
    BadRequest {
        /// The HTTP status (400, 403, 422, ...).
        status: u16,
        /// Airbyte's problem body, when it sent one.
        problem: Option<Box<Problem>>,
    },

    /// The caller handed the client something it will not send (a bad path, a URL
    /// with credentials in it). Nothing reached Airbyte.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// True when sending the same request again later may succeed and cannot do
    /// harm: the failure was transient and the request did not take effect.
    ///
    /// Conflicts are not retryable in this sense (the state must change first), and
    /// neither is [`Error::Ambiguous`] (reconcile first).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Upstream { .. }
                | Self::Timeout { .. }
                | Self::Transport { .. }
        )
    }

    /// True when the request may have taken effect although no answer said so.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Self::Ambiguous { .. })
    }

    /// The conflict kind, when this is a 409.
    pub fn conflict_kind(&self) -> Option<ConflictKind> {
        match self {
            Self::Conflict { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Airbyte's problem body, when the error carries one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::NotFound { problem }
            | Self::Conflict { problem, .. }
            | Self::Upstream { problem, .. }
            | Self::BadRequest { problem, .. } => problem.as_deref(),
            _ => None,
        }
    }

    /// Builds the error for a non-2xx status that retries did not cure.
    pub(crate) fn from_status(status: u16, body: &[u8], attempts: u32) -> Self {
        let problem = Problem::parse(body).map(Box::new);
        // Real servers answer 400, not 404, for an unknown id, with this body.
        let not_found = problem
            .as_deref()
            .is_some_and(|problem| problem.is("resource-not-found"));
        match status {
            404 => Self::NotFound { problem },
            400..=499 if not_found => Self::NotFound { problem },
            401 => Self::Auth {
                reason: "401 Unauthorized".to_owned(),
            },
            409 => Self::Conflict {
                kind: ConflictKind::recognise(problem.as_deref()),
                problem,
            },
            429 => Self::RateLimited { attempts },
            400..=499 => Self::BadRequest { status, problem },
            500..=599 => Self::Upstream {
                status,
                problem,
                attempts,
            },
            _ => Self::InvalidResponse(format!("unexpected status {status}")),
        }
    }
}

/// Formats " (title: detail)" for error messages, or nothing.
fn problem_suffix(problem: &Option<Box<Problem>>) -> String {
    match problem.as_deref().and_then(Problem::summary) {
        Some(summary) => format!(": {summary}"),
        None => String::new(),
    }
}

/// Which kind of 409 Airbyte answered, so callers can attach to a running sync or
/// treat a cancel of a finished job as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// `POST /jobs` while a sync already runs for the connection (`try-again-later`).
    SyncRunning,
    /// `DELETE /jobs/{id}` on a job that is not running (`state-conflict`).
    StateConflict,
    /// Any other 409.
    Other,
}

impl ConflictKind {
    /// Recognises the 409 bodies Airbyte sends (see the Airbyte README).
    pub fn recognise(problem: Option<&Problem>) -> Self {
        let Some(problem) = problem else {
            return Self::Other;
        };
        let message = problem.message().unwrap_or_default().to_ascii_lowercase();
        if problem.is("try-again-later") || message.contains("sync is already running") {
            Self::SyncRunning
        } else if problem.is("state-conflict") || message.contains("not currently running") {
            Self::StateConflict
        } else {
            Self::Other
        }
    }
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SyncRunning => "a sync is already running",
            Self::StateConflict => "the job is not in a state that allows this",
            Self::Other => "conflict",
        })
    }
}

/// Airbyte's error body `{status, type, title, detail, data}`, also reading the
/// `{"message": ...}` bodies of its 401 and 429 answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The HTTP status it repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A reference URL naming the error kind.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Short kind, such as `try-again-later`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Human sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extra data; Airbyte puts the precise message in `data.message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// The message of non-problem bodies (401, 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Problem {
    /// Parses a body, or `None` when it is not a JSON object.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        if !value.is_object() {
            return None;
        }
        serde_json::from_value(value).ok()
    }

    /// True when the title or the type names this error kind (`state-conflict`
    /// matches the title `state-conflict` and the type `...#409-state-conflict`).
    pub fn is(&self, kind: &str) -> bool {
        self.title.as_deref() == Some(kind)
            || self
                .type_
                .as_deref()
                .is_some_and(|type_| type_.ends_with(kind))
    }

    /// The most precise message present: `data.message`, then `detail`, then `message`.
    pub fn message(&self) -> Option<&str> {
        self.data
            .as_ref()
            .and_then(|data| data.get("message"))
            .and_then(serde_json::Value::as_str)
            .or(self.detail.as_deref())
            .or(self.message.as_deref())
    }

    /// "title: message" for error messages.
    fn summary(&self) -> Option<String> {
        match (self.title.as_deref(), self.message()) {
            (Some(title), Some(message)) => Some(format!("{title}: {message}")),
            (Some(only), None) | (None, Some(only)) => Some(only.to_owned()),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC_RUNNING: &str = r#"{"status":409,"type":"https://reference.airbyte.com/reference/errors#try-again-later","title":"try-again-later","detail":"Please try again later.","data":{"message":"A sync is already running for: 18dccc91-0ab1-4f72-9ed7-0b8fc27c5826"}}"#;
    const STATE_CONFLICT: &str = r#"{"status":409,"type":"https://reference.airbyte.com/reference/errors#409-state-conflict","title":"state-conflict","detail":"State conflict.","data":{"message":"Job is not currently running"}}"#;
    const UNAUTHORIZED: &str = r#"{"message":"Unauthorized","_links":{"self":{"href":"/api/public/v1/jobs","templated":false}},"_embedded":{"errors":[{"message":"Unauthorized"}]}}"#;

    #[test]
    fn recognises_a_running_sync() {
        let error = Error::from_status(409, SYNC_RUNNING.as_bytes(), 1);
        assert_eq!(error.conflict_kind(), Some(ConflictKind::SyncRunning));
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("A sync is already running"));
    }

    #[test]
    fn recognises_a_state_conflict() {
        let error = Error::from_status(409, STATE_CONFLICT.as_bytes(), 1);
        assert_eq!(error.conflict_kind(), Some(ConflictKind::StateConflict));
        let by_message = Problem {
            data: Some(serde_json::json!({"message": "Job is not currently running"})),
            ..Problem::default()
        };
        assert_eq!(
            ConflictKind::recognise(Some(&by_message)),
            ConflictKind::StateConflict
        );
    }

    #[test]
    fn a_400_resource_not_found_is_not_found() {
        let body = br#"{"status":400,"type":"https://reference.airbyte.com/reference/errors#resource-not-found","title":"resource-not-found","detail":"The requested resource could not be found.","data":{"resourceType":"job","resourceId":"7"}}"#;
        assert!(matches!(
            Error::from_status(400, body, 1),
            Error::NotFound { problem: Some(_) }
        ));
        assert!(matches!(
            Error::from_status(400, br#"{"title":"bad-request"}"#, 1),
            Error::BadRequest { status: 400, .. }
        ));
    }

    #[test]
    fn other_conflicts_and_bodiless_conflicts_are_other() {
        assert_eq!(
            Error::from_status(409, b"not json", 1).conflict_kind(),
            Some(ConflictKind::Other)
        );
        assert_eq!(
            Error::from_status(409, br#"{"title":"something-else"}"#, 1).conflict_kind(),
            Some(ConflictKind::Other)
        );
    }

    #[test]
    fn maps_statuses() {
        assert!(matches!(
            Error::from_status(401, UNAUTHORIZED.as_bytes(), 1),
            Error::Auth { .. }
        ));
        assert!(matches!(
            Error::from_status(404, b"", 1),
            Error::NotFound { problem: None }
        ));
        let rate = Error::from_status(429, br#"{"message":"You are being rate limited."}"#, 4);
        assert!(matches!(rate, Error::RateLimited { attempts: 4 }) && rate.is_retryable());
        let bad = Error::from_status(
            422,
            br#"{"status":422,"title":"invalid","detail":"Refreshes are not supported in the public API"}"#,
            1,
        );
        match &bad {
            Error::BadRequest {
                status: 422,
                problem: Some(problem),
            } => {
                assert_eq!(
                    problem.message(),
                    Some("Refreshes are not supported in the public API")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!bad.is_retryable());
        let upstream = Error::from_status(503, b"<html>", 3);
        assert!(matches!(
            upstream,
            Error::Upstream {
                status: 503,
                problem: None,
                attempts: 3
            }
        ));
        assert!(upstream.is_retryable());
    }

    #[test]
    fn ambiguous_is_not_retryable() {
        let error = Error::Ambiguous {
            reason: "timeout".into(),
            status: None,
        };
        assert!(error.is_ambiguous() && !error.is_retryable());
    }
}
