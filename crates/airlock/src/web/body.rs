//! Request bodies, read before the handler runs and only when it is worth
//! it. A body is read (within `[server] body_timeout_secs` and
//! [`MAX_BODY_BYTES`]: a slow sender gets 408, a large one 413) only for a
//! request whose credential verifies, or for the token exchange, which
//! takes its credentials in the body. Anyone else's body is never kept in
//! memory: the handler, which refuses such a request first, gets an empty
//! one, and what the client sends is read and thrown away after the answer.
//!
//! That throwing away (a lingering close, as nginx does) also follows a
//! 413: clients that write their whole body before reading the answer
//! (Python's urllib and requests) then read the answer instead of meeting
//! a closed connection.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::{ApiError, AppState, MAX_BODY_BYTES, refusals, session};

/// How much of an unread body is thrown away before the connection is
/// closed.
const DISCARD_AT_MOST: usize = 8 * 1024 * 1024;

/// How long an unread body is read and thrown away.
const DISCARD_FOR: Duration = Duration::from_secs(5);

/// The request layer's body reader (see the module's documentation).
pub async fn read_in_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let has_body =
        parts.headers.contains_key(CONTENT_LENGTH) || parts.headers.contains_key(TRANSFER_ENCODING);
    if !has_body {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let declared: Option<usize> = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        discard(body);
        return ApiError::PayloadTooLarge.into_response();
    }
    if !worth_reading(&state, &parts).await {
        let response = next.run(Request::from_parts(parts, Body::empty())).await;
        discard(body);
        return response;
    }
    match tokio::time::timeout(
        state.body_timeout(),
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        // Chunked past the limit, or the client went away mid-body.
        Ok(Err(_)) if declared.is_none() => ApiError::PayloadTooLarge.into_response(),
        Ok(Err(_)) => ApiError::malformed("", "the request body could not be read").into_response(),
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}

/// Whether the body is read before the handler: for the token exchange,
/// and for a bearer token or console session that is valid (a token that
/// verifies here is cached, so the handler's own check costs nothing more).
async fn worth_reading(state: &AppState, parts: &Parts) -> bool {
    if parts.uri.path().ends_with("/applications/token") {
        return true;
    }
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let header = value.to_str().ok();
        let authenticator = state.authenticator();
        if authenticator.is_cached(header) {
            return true;
        }
        // A throttled address's new tokens are refused unverified.
        if state.any_throttled() {
            let source = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string());
            if state.throttled(&refusals::address_key(source.as_deref())) {
                return false;
            }
        }
        return authenticator.authenticate(header).await.is_ok();
    }
    let secure = session::cookie_is_secure(state.site(), &parts.headers);
    match session::cookie_id(&parts.headers, secure) {
        Ok(Some(id)) => matches!(state.sessions().find(id, state.now_ms()).await, Ok(Some(_))),
        // No session, or a doubled cookie the handler refuses.
        Ok(None) | Err(_) => false,
    }
}

/// Reads what the client still sends and throws it away, for a while and
/// up to a bound, so that the answer reaches a client that writes its
/// whole body first; then the connection closes.
fn discard(body: Body) {
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut seen = 0usize;
        let _ = tokio::time::timeout(DISCARD_FOR, async {
            while let Some(Ok(chunk)) = stream.next().await {
                seen = seen.saturating_add(chunk.len());
                if seen > DISCARD_AT_MOST {
                    break;
                }
            }
        })
        .await;
    });
}
