//! The front's own refusals, in Airbyte's error shape: `{"status", "type",
//! "title", "detail", "data"}` with content type `application/json`, so
//! that Airbyte clients parse them as they parse Airbyte's. The request id
//! is in `data.request_id` (and the `x-request-id` header).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::web::request_id::PassThrough;

const ERRORS: &str = "https://reference.airbyte.com/reference/errors";

/// What the front refuses or fails with by itself.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// No valid bearer token. Never says why: the reason is logged.
    #[error("unauthorized")]
    Unauthorized,
    /// The caller lacks the permission, or the route is not served.
    #[error("forbidden")]
    Forbidden,
    /// The action waits for another person's approval (four eyes), which
    /// an Airbyte client cannot wait for: the message names the request.
    #[error("approval required: {message}")]
    ApprovalRequired {
        message: String,
        approval_id: String,
        approval_url: String,
    },
    /// Not found, or out of the caller's scope (the two look the same).
    #[error("{resource_type} not found")]
    NotFound {
        resource_type: &'static str,
        id: String,
    },
    /// The request cannot be understood (or, on the token endpoint, the
    /// client credentials are wrong, as Airbyte answers it).
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("payload too large")]
    PayloadTooLarge,
    /// The route is served for other methods only: the ones in `Allow`.
    #[error("method not allowed; use {0}")]
    MethodNotAllowed(&'static str),
    /// Airbyte or the identity provider cannot be reached or answered
    /// something unusable; the cause is logged.
    #[error("{0} unavailable")]
    BadGateway(&'static str),
    /// Airbyte did not answer in time.
    #[error("{0} timed out")]
    GatewayTimeout(&'static str),
    /// Airbyte kept rate-limiting Airlock.
    #[error("rate limited")]
    RateLimited,
    /// The database is down.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// A bug or an unexpected failure: logged, never shown.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl FrontError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, Value) {
        match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "The request is missing a valid access token.",
                json!({}),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "The caller is not allowed to perform this request.",
                json!({}),
            ),
            Self::ApprovalRequired {
                message,
                approval_id,
                approval_url,
            } => (
                StatusCode::FORBIDDEN,
                "approval-required",
                "This action waits for another person's approval.",
                json!({"message": message, "approvalId": approval_id, "approvalUrl": approval_url}),
            ),
            Self::NotFound { resource_type, id } => (
                StatusCode::NOT_FOUND,
                "resource-not-found",
                "The requested resource could not be found.",
                json!({"resourceType": resource_type, "resourceId": id}),
            ),
            Self::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                "bad-request",
                "The request could not be understood by the server due to malformed syntax.",
                json!({"message": message}),
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is too large.",
                json!({}),
            ),
            Self::MethodNotAllowed(allow) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "The method is not allowed on this route.",
                json!({"message": format!("use {allow}")}),
            ),
            Self::BadGateway(what) => (
                StatusCode::BAD_GATEWAY,
                "bad-gateway",
                "An upstream service failed; retry later.",
                json!({"message": format!("{what} is unavailable")}),
            ),
            Self::GatewayTimeout(what) => (
                StatusCode::GATEWAY_TIMEOUT,
                "gateway-timeout",
                "An upstream service did not answer in time; retry later.",
                json!({"message": format!("{what} did not answer in time")}),
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "You are being rate limited.",
                json!({}),
            ),
            Self::Unavailable(what) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "The service is unavailable; retry later.",
                json!({"message": format!("{what} is unavailable")}),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-server-error",
                "An internal error occurred.",
                json!({}),
            ),
        }
    }

    /// The response for the request `request_id` to `path`.
    pub fn into_response_with(self, request_id: &str, path: &str) -> Response {
        if let Self::Internal(cause) = &self {
            tracing::error!(
                request_id,
                error = format!("{cause:#}"),
                "front request failed"
            );
        }
        let allow = match &self {
            Self::MethodNotAllowed(allow) => Some(*allow),
            _ => None,
        };
        let (status, title, detail, mut data) = self.parts();
        if let Some(object) = data.as_object_mut() {
            object.insert("request_id".to_owned(), request_id.into());
        }
        let body = if status == StatusCode::UNAUTHORIZED {
            // Airbyte refuses a missing or expired token in its web
            // framework, before its own error shape: so does the front.
            json!({
                "message": "Unauthorized",
                "_links": {"self": {"href": path, "templated": false}},
                "_embedded": {"errors": [{"message": "Unauthorized"}]},
            })
        } else {
            json!({
                "status": status.as_u16(),
                "type": format!("{ERRORS}#{title}"),
                "title": title,
                "detail": detail,
                "data": data,
            })
        };
        let mut response = json_response(status, body.to_string().into_bytes(), None);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(allow) = allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A response the request-id middleware must leave as it is (an Airbyte
/// answer passed through, or one in Airbyte's shape).
pub(crate) fn json_response(
    status: StatusCode,
    body: Vec<u8>,
    content_type: Option<&str>,
) -> Response {
    let mut response = (status, body).into_response();
    let content_type = content_type
        .and_then(|v| HeaderValue::from_str(v).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response.extensions_mut().insert(PassThrough);
    response
}

impl From<airlock_store::StoreError> for FrontError {
    fn from(error: airlock_store::StoreError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(error = %error, "database unavailable");
            Self::Unavailable("the database")
        } else {
            Self::Internal(anyhow::Error::new(error))
        }
    }
}

/// How a failed call to Airbyte is answered.
pub(crate) fn from_airbyte(error: &airbyte_client::Error, request_id: &str) -> FrontError {
    use airbyte_client::Error as E;
    match error {
        E::Timeout { .. } => {
            tracing::warn!(request_id, error = %error, "Airbyte timed out");
            FrontError::GatewayTimeout("Airbyte")
        }
        E::RateLimited { .. } => FrontError::RateLimited,
        E::InvalidInput(message) => FrontError::BadRequest(message.clone()),
        E::Auth { .. } => {
            tracing::error!(request_id, error = %error, "Airbyte refused Airlock's credentials");
            FrontError::BadGateway("Airbyte")
        }
        _ => {
            tracing::warn!(request_id, error = %error, "Airbyte call failed");
            FrontError::BadGateway("Airbyte")
        }
    }
}

/// The body of a 401 from the front, as Airbyte's web framework writes it
/// (not Airbyte's error shape).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "it only describes the document")]
pub(super) struct FrameworkUnauthorized {
    /// `Unauthorized`.
    message: String,
    /// `{"self": {"href": <the request's path>, "templated": false}}`.
    #[schema(rename = "_links", value_type = Object)]
    links: (),
    /// `{"errors": [{"message": "Unauthorized"}]}`.
    #[schema(rename = "_embedded", value_type = Object)]
    embedded: (),
}

/// The body [`FrontError::into_response_with`] writes (Airbyte's error shape).
impl utoipa::PartialSchema for FrontError {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let field = |kind: Type, description: &str| {
            ObjectBuilder::new()
                .schema_type(kind)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .description(Some(
                "A refusal of the compatible front, in Airbyte's error shape \
                 (`application/json`) so that Airbyte clients parse it.",
            ))
            .property("status", field(Type::Integer, "The HTTP status."))
            .property(
                "type",
                field(Type::String, "A link to Airbyte's error reference."),
            )
            .property(
                "title",
                field(
                    Type::String,
                    "`unauthorized`, `forbidden`, `resource-not-found`, `bad-request`, \
                     `bad-gateway`, `gateway-timeout`, `rate-limited`, ...",
                ),
            )
            .property("detail", field(Type::String, "A sentence."))
            .property(
                "data",
                field(
                    Type::Object,
                    "`request_id`, and `message` or `resourceType`/`resourceId` where useful.",
                ),
            )
            .required("status")
            .required("title")
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for FrontError {
    fn name() -> std::borrow::Cow<'static, str> {
        "AirbyteError".into()
    }
}
