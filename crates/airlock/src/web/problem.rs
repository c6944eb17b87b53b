//! Errors as short `application/problem+json` bodies.
//!
//! Handlers return [`ApiError`]; its response carries a [`Problem`] in the
//! response extensions, and the request-id middleware renders the body, so
//! that every error names the request it belongs to without each handler
//! threading the id through.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What a client learns about a failure: a status, a stable machine code and
/// a short title; the detail only where it helps the client fix its request.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(serialize_with = "serialize_status")]
    pub status: StatusCode,
    pub title: &'static str,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The fields to blame, for a request refused for what it holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One thing wrong with a request, and where: a JSON Pointer into the body
/// (`/max_attempts`, `""` for the whole body), or the name of the query
/// parameter or header (`limit`, `Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

/// Why a request was refused for what it holds: the field to blame when
/// one is, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub pointer: Option<String>,
    pub detail: String,
}

impl Invalid {
    /// `detail` about the field at `pointer`.
    pub fn at(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: Some(pointer.into()),
            detail: detail.into(),
        }
    }

    /// `detail` about the request as a whole.
    pub fn whole(detail: impl Into<String>) -> Self {
        Self {
            pointer: None,
            detail: detail.into(),
        }
    }

    /// The `errors` array of the problem.
    fn errors(&self) -> Vec<FieldError> {
        self.pointer
            .iter()
            .map(|pointer| FieldError {
                pointer: pointer.clone(),
                detail: self.detail.clone(),
            })
            .collect()
    }
}

impl std::fmt::Display for Invalid {
    /// `pointer: detail`, the problem's one-line `detail`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pointer.as_deref() {
            Some("") => write!(f, "body: {}", self.detail),
            Some(pointer) => write!(f, "{pointer}: {}", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

fn serialize_status<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    /// The body for `request_id`.
    pub fn to_body(&self, request_id: &str) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("request_id".to_owned(), request_id.into());
        }
        value
    }

    /// A full response with the body rendered, for places that know the id.
    pub fn into_response_with(self, request_id: &str) -> Response {
        let status = self.status;
        let body = self.to_body(request_id).to_string();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl IntoResponse for Problem {
    /// The body is rendered later by the request-id middleware.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Everything a handler of Airlock's own API can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid identity. Never says why: the reason is logged.
    #[error("unauthenticated")]
    Unauthorized,
    /// A valid identity without the permission. Never says why.
    #[error("forbidden")]
    Forbidden,
    /// A state-changing request authenticated by the console's session
    /// cookie without its CSRF token, or from another origin. Says which:
    /// the reason is about the request's form, not the caller's rights.
    #[error("csrf check failed: {0}")]
    CsrfRejected(&'static str),
    /// The four-eyes rules refuse it: says which (the requester deciding
    /// their own request, or a door that decides nothing), as that is about
    /// the request, not the caller's rights.
    #[error("four eyes: {0}")]
    FourEyes(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Malformed syntax: a body that is not JSON, a value that cannot be
    /// read at all (400).
    #[error("bad request: {0}")]
    BadRequest(Invalid),
    /// A well-formed request that breaks a rule: a value out of range, not
    /// one of its enum, of the wrong type, missing or unknown (422).
    #[error("unprocessable: {0}")]
    Unprocessable(Invalid),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The client did not send its body in time.
    #[error("request timeout")]
    RequestTimeout,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("too many requests")]
    TooManyRequests,
    /// A dependency (database, Airbyte) is down; the client may retry.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// A bug or an unexpected failure: logged with its cause, never shown.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// Malformed syntax at `pointer` (400).
    pub fn malformed(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadRequest(Invalid::at(pointer, detail))
    }

    /// A value at `pointer` that breaks a rule (422).
    pub fn invalid(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Unprocessable(Invalid::at(pointer, detail))
    }

    /// The problem a client sees for this error.
    pub fn problem(&self) -> Problem {
        use StatusCode as S;
        let (status, code, title) = match self {
            Self::Unauthorized => (S::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden => (S::FORBIDDEN, "forbidden", "Forbidden"),
            Self::CsrfRejected(_) => (S::FORBIDDEN, "csrf_rejected", "Forbidden"),
            Self::FourEyes(_) => (S::FORBIDDEN, "four_eyes", "Forbidden"),
            Self::NotFound(_) => (S::NOT_FOUND, "not_found", "Not found"),
            Self::BadRequest(_) => (S::BAD_REQUEST, "bad_request", "Bad request"),
            Self::Unprocessable(_) => (
                S::UNPROCESSABLE_ENTITY,
                "unprocessable",
                "Unprocessable request",
            ),
            Self::Conflict(_) => (S::CONFLICT, "conflict", "Conflict"),
            Self::RequestTimeout => (S::REQUEST_TIMEOUT, "request_timeout", "Request timeout"),
            Self::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            Self::TooManyRequests => (
                S::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests",
            ),
            Self::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            Self::Internal(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        };
        let detail = match self {
            Self::CsrfRejected(reason) => Some((*reason).to_owned()),
            Self::FourEyes(detail) | Self::Conflict(detail) => Some(detail.clone()),
            Self::BadRequest(invalid) | Self::Unprocessable(invalid) => Some(invalid.to_string()),
            Self::NotFound(what) => Some(format!("no such {what}")),
            Self::RequestTimeout => Some("the request body did not arrive in time".to_owned()),
            Self::Unavailable(what) => Some(format!("{what} is unavailable; retry later")),
            Self::Unauthorized
            | Self::Forbidden
            | Self::PayloadTooLarge
            | Self::TooManyRequests
            | Self::Internal(_) => None,
        };
        let errors = match self {
            Self::BadRequest(invalid) | Self::Unprocessable(invalid) => invalid.errors(),
            _ => Vec::new(),
        };
        Problem {
            status,
            title,
            code,
            detail,
            errors,
        }
    }
}

/// A storage failure as the client sees it: 503 when the database is down
/// (retry later), 500 otherwise.
impl From<airlock_store::StoreError> for ApiError {
    fn from(error: airlock_store::StoreError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(error = %error, "database unavailable");
            Self::Unavailable("the database")
        } else {
            Self::Internal(anyhow::Error::new(error))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        self.problem().into_response()
    }
}

/// The body as the request-id middleware renders it ([`Problem::to_body`]).
impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let field = |kind: Type, description: &str| {
            ObjectBuilder::new()
                .schema_type(kind)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .description(Some(
                "An error, as `application/problem+json`. A 401 or 403 never says why: \
                 the reason is in the audit trail and the log under `request_id`.",
            ))
            .property("status", field(Type::Integer, "The HTTP status."))
            .property("title", field(Type::String, "A short human title."))
            .property(
                "code",
                field(
                    Type::String,
                    "A stable machine code: `bad_request`, `unauthorized`, `forbidden`, \
                     `csrf_rejected`, `not_found`, `conflict`, `unprocessable`, `payload_too_large`, \
                     `too_many_requests`, `unavailable`, `internal`, ...",
                ),
            )
            .property(
                "detail",
                field(
                    Type::String,
                    "What to fix, where it helps the client (absent otherwise).",
                ),
            )
            .property(
                "errors",
                utoipa::openapi::schema::ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .property(
                                "pointer",
                                field(
                                    Type::String,
                                    "Where: a JSON Pointer into the body (`/max_attempts`; `\"\"` \
                                     for the whole body), or the query parameter's or header's \
                                     name (`limit`, `Idempotency-Key`).",
                                ),
                            )
                            .property("detail", field(Type::String, "What is wrong there."))
                            .required("pointer")
                            .required("detail"),
                    )
                    .description(Some(
                        "For a 400 or 422 about the request's content: the field to blame \
                         (absent when the request as a whole is).",
                    )),
            )
            .property(
                "request_id",
                field(
                    Type::String,
                    "The request's id (also the `x-request-id` header).",
                ),
            )
            .required("status")
            .required("title")
            .required("code")
            .required("request_id")
            .into()
    }
}

impl utoipa::ToSchema for Problem {}

/// Reusable OpenAPI responses for the errors of Airlock's own API, each a
/// [`Problem`] body; handlers list the ones they can answer.
pub mod responses {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response};

    fn problem(description: &str) -> RefOr<Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                super::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .into()
    }

    macro_rules! problem_responses {
        ($($name:ident: $description:literal;)*) => {$(
            #[doc = $description]
            #[derive(Debug)]
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), problem($description))
                }
            }
        )*};
    }

    problem_responses! {
        BadRequest: "Malformed syntax (`bad_request`): a body that is not JSON; `errors` says where and `detail` what to fix.";
        Unauthorized: "No valid bearer token (`unauthorized`, with `WWW-Authenticate: Bearer`).";
        Forbidden: "The caller lacks the permission (`forbidden`); the reason is audited, not shown. A console session's state-changing request without its `X-CSRF-Token`, or from another origin, is refused too (`csrf_rejected`, with a `detail`), and so is a decision the four-eyes rules forbid: the requester deciding their own approval request, or a decision through `/mcp` (`four_eyes`, with a `detail`).";
        NotFound: "No such resource, or one outside the caller's scope (`not_found`).";
        Conflict: "The resource's state forbids it (`conflict`).";
        Unprocessable: "Well formed but breaking a rule (`unprocessable`): a value out of its range, enum or pattern, of the wrong type, missing or unknown (`errors` names the field: a JSON Pointer into the body, or the query parameter's or header's name), or a reused Idempotency-Key.";
        Unavailable: "A dependency (the database, Airbyte) is down (`unavailable`); retry later.";
        TooManyRequests: "Too many requests of this identity in flight, or too many refused requests from this address in the window (`too_many_requests`); retry after `Retry-After` seconds.";
    }
}
