//! Request ids: the caller's `x-request-id` when it is well-formed, a fresh
//! one otherwise; echoed in every response and inside every error body.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::problem::{PROBLEM_JSON, Problem};

/// The header carrying the id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// Takes the caller's id when it is 1 to 128 characters of `[A-Za-z0-9._:-]`;
    /// anything else could inject into logs, so it is replaced.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 128
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
            })
            .map_or_else(Self::generate, |s| Self(s.to_owned()))
    }

    fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

/// Middleware: assigns the id, renders problem bodies, sets the header.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_header(request.headers().get(&X_REQUEST_ID));
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        response = problem.into_response_with(&id.0);
    } else if response.status().is_client_error() || response.status().is_server_error() {
        // Errors produced by the framework itself (unknown route, bad method,
        // body too large) get the same short shape.
        let is_problem = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
        if !is_problem {
            response = framework_problem(response.status()).into_response_with(&id.0);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

fn framework_problem(status: axum::http::StatusCode) -> Problem {
    use axum::http::StatusCode;
    let (code, title) = match status {
        StatusCode::NOT_FOUND => ("not_found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "Payload too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("unprocessable", "Unprocessable request"),
        StatusCode::BAD_REQUEST => ("bad_request", "Bad request"),
        s if s.is_server_error() => ("internal", "Internal server error"),
        _ => ("error", "Request failed"),
    };
    Problem {
        status,
        title,
        code,
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_well_formed_ids_and_replaces_others() {
        let keep = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::from_header(Some(&keep)).0, "abc-123_x.y:z");
        for bad in ["", "has space", "new\tline", &"x".repeat(129)] {
            let value = HeaderValue::from_str(bad).ok();
            let id = RequestId::from_header(value.as_ref());
            assert_ne!(id.0, bad);
            assert_eq!(id.0.len(), 32, "a fresh uuid");
        }
    }
}
