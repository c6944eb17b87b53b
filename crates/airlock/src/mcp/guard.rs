//! The door of `/mcp`: `Host` and `Origin` checks (DNS-rebinding
//! protection, 403), then the same bearer-token authentication as the API
//! (401). The verified [`Caller`] rides in the request's extensions to the
//! tool handlers.

use std::sync::Arc;

use axum::extract::{Request, State};

use axum::http::HeaderValue;
use axum::http::header::{ACCEPT, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use crate::web::auth::{Door, Unidentified};
use crate::web::request_id::{PassThrough, X_REQUEST_ID};
use crate::web::{ApiError, AppState, Caller, RequestId};
use airlock_domain::host_gate::Gate;

/// What the middleware needs.
#[derive(Debug, Clone)]
pub(super) struct GuardState {
    pub state: AppState,
    pub gate: Arc<Gate>,
}

/// Middleware of `/mcp`, inside the API's request layer (request id,
/// request log, metrics, problem bodies): gate, then authentication.
pub(super) async fn layer(
    State(guard): State<GuardState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let request_id = match parts.extensions.get::<RequestId>() {
        Some(id) => id.clone(),
        None => {
            let id = RequestId::from_header(parts.headers.get(&X_REQUEST_ID));
            parts.extensions.insert(id.clone());
            id
        }
    };
    if let Err(reason) = guard.gate.check(&parts) {
        refuse(&guard.state, &parts, &request_id, reason).await;
        return ApiError::Forbidden
            .problem()
            .into_response_with(&request_id.0);
    }
    // Logged and audited by the guard, as on the API; the request takes
    // its place under the per-identity cap, which the tools' in-process
    // calls share.
    match Caller::authenticate(&parts, &guard.state, Door::MCP).await {
        Err(refusal) => ApiError::from(refusal)
            .problem()
            .into_response_with(&request_id.0),
        Ok(caller) => {
            parts.extensions.insert(caller);
            accept_anything_means_both(&mut parts);
            let mut response = next.run(Request::from_parts(parts, body)).await;
            // The transport's own errors are JSON-RPC or plain text that
            // MCP clients read: not to be rewritten as problem+json.
            response.extensions_mut().insert(PassThrough);
            response
        }
    }
}

/// Logs and audits a request refused by the gate.
async fn refuse(state: &AppState, parts: &Parts, request_id: &RequestId, reason: &'static str) {
    let shown = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect::<String>())
    };
    let (host, origin) = (shown(HOST), shown(ORIGIN));
    tracing::warn!(
        request_id = %request_id.0,
        reason,
        host = host.as_deref().unwrap_or(""),
        origin = origin.as_deref().unwrap_or(""),
        "MCP request refused: host or origin not allowed (see [mcp] in the configuration)"
    );
    let refusal = Unidentified {
        channel: "mcp",
        action: "mcp.connect",
        reason,
        status: "403",
        detail: serde_json::json!({"host": host, "origin": origin}),
    };
    refusal
        .record(state, crate::web::auth::origin_of(parts, &request_id.0))
        .await;
}

/// A request with no `Accept`, or `*/*`, takes any media type (RFC 9110,
/// 12.5.1), JSON and event streams included: said so for the transport,
/// which answers 406 unless both are named.
fn accept_anything_means_both(parts: &mut Parts) {
    let anything = parts
        .headers
        .get(ACCEPT)
        .is_none_or(|value| value.as_bytes().trim_ascii() == b"*/*");
    if anything {
        parts.headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
    }
}
