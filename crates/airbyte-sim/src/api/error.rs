//! Errors as Airbyte sends them.
//!
//! Two shapes: Airbyte's problems (`{"status","type","title","detail","data"}`,
//! content type `application/json`) for what the application decides, and the web
//! framework's body (`{"message","_links","_embedded"}`) for what is refused before
//! the application runs: a missing token, a malformed parameter, an unknown route.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

const ERRORS: &str = "https://reference.airbyte.com/reference/errors";

/// What a handler can refuse, each mapped to the body the real server sends.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// `resource-not-found`, with the configured status (404 by default).
    NotFound {
        status: StatusCode,
        resource_type: &'static str,
        id: String,
    },
    /// `bad-request` problem.
    BadRequest(String),
    /// `unprocessable-entity` problem (e.g. `refresh` jobs).
    Unprocessable(String),
    /// `try-again-later`: a sync is already running for the connection.
    SyncRunning(Uuid),
    /// `state-conflict`: cancelling a job that is not running.
    NotRunning,
    /// Refused by the framework while binding the request (bad parameter, bad JSON).
    Binding { path: String, message: String },
}

/// An Airbyte problem body, fields in the order the real server writes them.
#[derive(Serialize)]
struct Problem<'a> {
    status: u16,
    #[serde(rename = "type")]
    type_url: &'a str,
    title: &'a str,
    detail: &'a str,
    data: Value,
}

/// The web framework's error body.
#[derive(Serialize)]
struct FrameworkError<'a> {
    message: &'a str,
    #[serde(rename = "_links")]
    links: Value,
    #[serde(rename = "_embedded")]
    embedded: Value,
}

/// An Airbyte problem response.
pub(crate) fn problem(
    status: StatusCode,
    type_url: &str,
    title: &str,
    detail: &str,
    data: Value,
) -> Response {
    let body = Problem {
        status: status.as_u16(),
        type_url,
        title,
        detail,
        data,
    };
    json_response(status, body)
}

/// The web framework's error response; `href` is the request path.
pub(crate) fn framework_error(
    status: StatusCode,
    message: &str,
    path: &str,
    errors: &[&str],
) -> Response {
    let errors: Vec<Value> = errors.iter().map(|m| json!({"message": m})).collect();
    let body = FrameworkError {
        message,
        links: json!({"self": {"href": path, "templated": false}}),
        embedded: json!({"errors": errors}),
    };
    json_response(status, body)
}

pub(crate) fn json_response(status: StatusCode, body: impl Serialize) -> Response {
    let text = serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound {
                status,
                resource_type,
                id,
            } => problem(
                status,
                &format!("{ERRORS}#resource-not-found"),
                "resource-not-found",
                "The requested resource could not be found.",
                json!({"resourceType": resource_type, "resourceId": id}),
            ),
            ApiError::BadRequest(message) => problem(
                StatusCode::BAD_REQUEST,
                &format!("{ERRORS}#bad-request"),
                "bad-request",
                "The request could not be understood by the server due to malformed syntax.",
                json!({"message": message}),
            ),
            ApiError::Unprocessable(message) => problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{ERRORS}#unprocessable-entity"),
                "unprocessable-entity",
                "The body of the request was not understood",
                json!({"message": message}),
            ),
            ApiError::SyncRunning(connection_id) => problem(
                StatusCode::CONFLICT,
                &format!("{ERRORS}#try-again-later"),
                "try-again-later",
                "Please try again later.",
                json!({"message": format!("A sync is already running for: {connection_id}")}),
            ),
            ApiError::NotRunning => problem(
                StatusCode::CONFLICT,
                &format!("{ERRORS}#409-state-conflict"),
                "state-conflict",
                "State conflict",
                json!({"message": "Job is not currently running"}),
            ),
            ApiError::Binding { path, message } => {
                framework_error(StatusCode::BAD_REQUEST, "Bad Request", &path, &[&message])
            }
        }
    }
}
