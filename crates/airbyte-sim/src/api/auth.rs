//! Authentication as Airbyte does it: client credentials exchanged at
//! `POST /applications/token` for an opaque bearer token that expires (in simulated
//! time), and a 401 with the web framework's body for anything else. The tokens
//! themselves live in the shared state's token store (the top-level `auth` module).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, framework_error, json_response};
use crate::clock::Millis;
use crate::state::{Shared, lock};

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware for every route that needs a token.
pub(crate) async fn require_bearer(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let ok = bearer(req.headers()).is_some_and(|t| lock(&shared.tokens).is_valid(t, shared.now()));
    if ok {
        next.run(req).await
    } else {
        // Inside a nested router the URI has lost its prefix; the original has it.
        let path = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().path().to_owned(), |u| u.path().to_owned());
        unauthorized(&path)
    }
}

/// The body Airbyte's web framework sends with a 401: not an Airbyte problem.
pub(crate) fn unauthorized(path: &str) -> Response {
    framework_error(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        path,
        &["Unauthorized"],
    )
}

#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
}

fn parse_token_request(headers: &HeaderMap, body: &[u8]) -> Option<TokenRequest> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let as_form = || {
        let mut req = TokenRequest {
            client_id: None,
            client_secret: None,
            grant_type: None,
        };
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "client_id" => req.client_id = Some(v.into_owned()),
                "client_secret" => req.client_secret = Some(v.into_owned()),
                "grant_type" | "grant-type" => req.grant_type = Some(v.into_owned()),
                _ => {}
            }
        }
        req
    };
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Some(as_form());
    }
    match serde_json::from_slice::<TokenRequest>(body) {
        Ok(req) => Some(req),
        Err(_) if !content_type.starts_with("application/json") => Some(as_form()),
        Err(_) => None,
    }
}

/// `POST /applications/token`: JSON or form, `grant_type` optional.
pub(crate) async fn issue_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_token_request(&headers, &body)
        .ok_or_else(|| ApiError::BadRequest("The request body could not be parsed".to_owned()))?;
    if let Some(grant) = &req.grant_type
        && grant != "client_credentials"
    {
        return Err(ApiError::BadRequest(format!(
            "Unsupported grant_type: {grant}"
        )));
    }
    let (Some(id), Some(secret)) = (&req.client_id, &req.client_secret) else {
        return Err(ApiError::BadRequest(
            "client_id and client_secret are required".to_owned(),
        ));
    };
    if *id != shared.config.client_id || *secret != shared.config.client_secret {
        return Err(ApiError::BadRequest(
            "Invalid client credentials".to_owned(),
        ));
    }
    let lifetime = shared.config.token_lifetime_secs;
    let lifetime_ms = Millis::try_from(lifetime.saturating_mul(1_000)).unwrap_or(Millis::MAX / 4);
    let token = lock(&shared.tokens).issue(shared.now(), lifetime_ms);
    lock(&shared.counters).tokens_issued += 1;
    Ok(json_response(
        StatusCode::OK,
        TokenResponse {
            access_token: token,
            token_type: "Bearer",
            expires_in: lifetime,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_is_case_insensitive_and_rejects_other_schemes() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }
}
