//! Airlock's own API under `/v1`: connections, triggers, jobs, their
//! events, four-eyes approvals, and the audit trail. Each handler parses its input, asks the
//! `Caller` (`crate::web::auth`) for a decision, and renders problem+json on
//! failure.

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod connections;
pub(crate) mod events;
pub(crate) mod jobs;
mod sse;
pub(crate) mod whoami;

use axum::Router;
use serde::Deserialize as _;

use crate::web::routes::{Routes, route};
use crate::web::{self, ApiError, AppState};

pub use audit::render as render_audit;

use crate::service::ServiceError;
use crate::web::problem::Invalid;

/// A service's refusal or failure, as the API answers it.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Refused(refusal) => refusal.into(),
            ServiceError::NotFound(what) => Self::NotFound(what),
            ServiceError::Invalid(message) => Self::Unprocessable(Invalid::whole(message)),
            ServiceError::Conflict(message) => Self::Conflict(message),
            ServiceError::Unprocessable(message) => Self::Unprocessable(Invalid::whole(message)),
            ServiceError::FourEyes(message) => Self::FourEyes(message),
            ServiceError::Unavailable(what) => Self::Unavailable(what),
            ServiceError::Store(error) => error.into(),
            ServiceError::Internal(error) => Self::Internal(error),
        }
    }
}

/// A JSON request body of `T`: the default when the body is empty or
/// `null` (both mean "no options").
pub(crate) fn json_body<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::web::params::json::<Option<T>>(body).map(Option::unwrap_or_default)
}

/// `max_attempts`: [`integral`], 1 to `JobsConfig::MAX_ATTEMPTS_CAP`.
pub(crate) fn attempts<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    use airlock_domain::jobs::JobsConfig;
    use serde::de::Error;
    match integral(deserializer)? {
        Some(n) if !(1..=JobsConfig::MAX_ATTEMPTS_CAP).contains(&n) => Err(D::Error::custom(
            format!("must be 1 to {}", JobsConfig::MAX_ATTEMPTS_CAP),
        )),
        attempts => Ok(attempts),
    }
}

/// A reason (`reason`, `bypass_reason`) as the service takes it
/// (`service::approvals::reason`), refused while parsing, so that the
/// refusal names the field it came in.
pub(crate) fn reason<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    let text = Option::<String>::deserialize(deserializer)?;
    crate::service::approvals::reason(text.as_deref())
        .map_err(|_| D::Error::custom(crate::service::approvals::REASON_RULE))
}

/// An optional `u32` that JSON may write as `9` or `9.0` (both integers to
/// JSON Schema), and a query string as `9`.
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    let number = match &value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.parse::<f64>().ok(),
        Some(_) => None,
    };
    match number {
        Some(n) if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) => {
            Ok(Some(n as u32))
        }
        _ => Err(D::Error::custom(format!(
            "expected a whole number, got {}",
            value.unwrap_or_default()
        ))),
    }
}

/// The routes of `/v1`, to be given the state and layered
/// (`crate::web::layered`).
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(route!(whoami::whoami))
        .route(route!(connections::list))
        .route(route!(connections::get))
        .route(route!(jobs::trigger_sync))
        .route(route!(jobs::trigger_reset))
        .route(route!(audit::list))
        .route(route!(jobs::list))
        .route(route!(jobs::get))
        .route(route!(jobs::events))
        .route(route!(jobs::cancel))
        .route(route!(jobs::retry))
        .route(route!(events::stream))
        .route(route!(approvals::list))
        .route(route!(approvals::request))
        .route(route!(approvals::get))
        .route(route!(approvals::approve))
        .route(route!(approvals::deny))
}

/// `/v1` alone, with the request layer: what the MCP server calls
/// in-process on a caller's behalf.
pub fn router(state: AppState) -> Router {
    web::layered(routes().with_state(state.clone()).into_router(), state)
}
