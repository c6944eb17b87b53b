//! The web console at `/console`: a window for runners, readers and
//! auditors who do not get Airbyte's admin UI.
//!
//! The pages are hand-written HTML, CSS and JavaScript modules built into
//! the binary ([`assets`]); they call Airlock's own API (`/v1/...`) with a
//! session cookie, so everything they show or do passes the `Caller`
//! extractor, the policy and the audit trail like any bearer-token call
//! (channel `console`). This module only adds what a browser needs:
//!
//! 1. `GET /console/login` sends the browser to the chosen issuer's
//!    authorization endpoint (code flow, PKCE S256, `state`, `nonce`;
//!    [`oidc`]); the login waits in the store, bound to the browser by a
//!    cookie ([`cookies`]).
//! 2. `GET /console/callback` exchanges the code, verifies the tokens with
//!    the `Authenticator` (the access token when it is a JWT for Airlock,
//!    else the ID token for the console client; the ID token's `nonce`
//!    always), and stores a session ([`login`]).
//! 3. `GET /console/session` tells the page who is signed in, its CSRF
//!    token and which views it may open; `POST /console/logout` ends the
//!    session (CSRF-checked like every state-changing call).

mod assets;
mod config;
mod cookies;
mod login;
mod oidc;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::web::problem::Invalid;
use crate::web::problem::responses::{
    BadRequest, Forbidden, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use crate::web::routes::{Routes, route};
use crate::web::session::{self, Session};
use crate::web::{ApiError, AppState, Caller};
use airlock_domain::audit;
use airlock_domain::identity::IssuerConfig;
use airlock_domain::policy::{Permission, Resource};
use airlock_domain::secret::SecretSource;

pub use assets::{ASSETS, Asset, CONTENT_SECURITY_POLICY};
pub use config::ConsoleConfig;
pub use oidc::pkce_challenge;

/// What can go wrong building the console from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A `console_client_secret` cannot be read.
    #[error("issuers[{index}].console_client_secret: {message}")]
    Secret { index: usize, message: String },
    /// The HTTP client for identity providers cannot be built.
    #[error("cannot build the HTTP client for identity providers: {0}")]
    Http(#[from] reqwest::Error),
}

/// The console's own state: one client per issuer that has a
/// `console_client_id`, and the HTTP client that talks to them.
#[derive(Debug)]
pub struct Console {
    clients: Vec<Arc<oidc::Client>>,
    http: reqwest::Client,
    /// `[console]`.
    config: ConsoleConfig,
    /// Unix ms of the last purge of ended logins and sessions.
    purged_at: std::sync::atomic::AtomicI64,
}

impl Console {
    /// The console `config` describes, for `issuers` (the configured ones
    /// and any the demo adds), reading each `console_client_secret` with
    /// `lookup_env`.
    pub fn new<'a>(
        config: ConsoleConfig,
        issuers: impl Iterator<Item = &'a IssuerConfig>,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConsoleError> {
        let mut clients = Vec::new();
        for (index, issuer) in issuers.enumerate() {
            let secret = issuer
                .console_client_secret
                .as_ref()
                .map(|source: &SecretSource| source.resolve(lookup_env))
                .transpose()
                .map_err(|message| ConsoleError::Secret { index, message })?;
            if let Some(client) = oidc::Client::of(issuer, secret) {
                clients.push(Arc::new(client));
            }
        }
        Ok(Self {
            clients,
            http: oidc::http_client()?,
            config,
            purged_at: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// How many issuers people can sign in with.
    pub fn issuers(&self) -> usize {
        self.clients.len()
    }
}

/// `/console` and its routes, behind the API's request layer (request id,
/// log line, problem bodies). Mounted by the composition root next to the
/// API; `serve` and `demo` alike.
pub fn routes(state: AppState, console: Arc<Console>) -> Routes {
    Routes::<AppState>::new()
        .route(route!(index))
        .route(route!(asset))
        .route(route!(login::start))
        .route(route!(login::callback))
        .route(route!(session_view))
        .route(route!(logout))
        .wrap(|router| {
            router
                .layer(Extension(console))
                .with_state(state.clone())
                .layer(axum::middleware::from_fn_with_state(
                    state,
                    crate::web::request_id::layer,
                ))
        })
}

/// 404 unless `[console] enabled`.
fn enabled(console: &Console) -> Result<(), ApiError> {
    if console.config.enabled {
        Ok(())
    } else {
        Err(ApiError::NotFound("page"))
    }
}

/// `GET /console`: the page (its views are routed in the browser, by the
/// URL's fragment).
#[utoipa::path(
    get,
    path = "/console",
    operation_id = "console_page",
    tag = "console",
    summary = "The web console (HTML)",
    description = "A single page (views: `#/connections`, `#/board`, `#/jobs/{id}`, `#/audit`, \
        `#/whoami`) that calls this API with a session cookie. Strict Content-Security-Policy; \
        revalidated with `ETag`.",
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 304, description = "The browser's copy is current"),
        (status = 404, response = NotFound),
    )
)]
async fn index(
    Extension(console): Extension<Arc<Console>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    enabled(&console)?;
    let page = assets::find("index.html").ok_or(ApiError::NotFound("page"))?;
    Ok(assets::serve(page, &headers))
}

/// `GET /console/assets/{file}`.
#[utoipa::path(
    get,
    path = "/console/assets/{*file}",
    operation_id = "console_asset",
    tag = "console",
    summary = "A file of the web console (CSS, JavaScript, icon)",
    params(("file" = String, Path, description = "e.g. `app.js`, `views/board.js`")),
    responses(
        (status = 200, description = "The file", body = String),
        (status = 304, description = "The browser's copy is current"),
        (status = 404, response = NotFound),
    )
)]
async fn asset(
    Extension(console): Extension<Arc<Console>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    enabled(&console)?;
    let asset = assets::find(&file)
        .filter(|a| a.name != "index.html")
        .ok_or(ApiError::NotFound("file"))?;
    Ok(assets::serve(asset, &headers))
}

/// An issuer people can sign in with.
#[derive(Debug, Serialize, ToSchema)]
struct IssuerChoice {
    /// Pass as `issuer` to `/console/login`.
    id: usize,
    /// The issuer's host (and path).
    name: String,
}

/// The console's view of its own session.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConsoleSession)]
struct SessionView {
    signed_in: bool,
    /// The issuers offered on the login page.
    issuers: Vec<IssuerChoice>,
    /// The rest is present only when signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    /// Send it back as `X-CSRF-Token` on every state-changing request.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
    /// RFC 3339: when the session ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    /// The views the caller's grants open: `connections`, `board`, `jobs`,
    /// `audit`, `whoami`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    views: Vec<&'static str>,
}

/// The views `session`'s principal may open.
fn views_of(state: &AppState, session: &Session) -> Vec<&'static str> {
    let policy = state.policy();
    let p = &session.principal;
    let mut views = Vec::new();
    if policy.can_anywhere(p, Permission::ConnectionsRead) {
        views.push("connections");
    }
    if policy.can_anywhere(p, Permission::JobsRead) {
        views.push("board");
        views.push("jobs");
    }
    if policy.allows(p, Permission::AuditRead, &Resource::Global) {
        views.push("audit");
    }
    // `approvals`: the inbox of those who may decide, and the requests of
    // those whose actions wait for a second person.
    let waits = &state.approvals_config().require;
    if policy.can_anywhere(p, Permission::ApprovalsDecide)
        || waits
            .iter()
            .any(|permission| policy.can_anywhere(p, *permission))
    {
        views.push("approvals");
    }
    views.push("whoami");
    views
}

/// `GET /console/session`.
#[utoipa::path(
    get,
    path = "/console/session",
    operation_id = "console_session",
    tag = "console",
    summary = "The console's session: who is signed in, its CSRF token, its views",
    description = "Without a live session cookie: `signed_in: false` and the issuers to sign in \
        with. The CSRF token is shown to the session's own browser only (the cookie is HttpOnly \
        and SameSite=Lax; the answer is `no-store`). A request carrying the session cookie twice \
        is refused (400, audited).",
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 400, response = BadRequest),
    )
)]
async fn session_view(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    enabled(&console)?;
    let issuers = console
        .clients
        .iter()
        .enumerate()
        .map(|(id, client)| IssuerChoice {
            id,
            name: client.label.clone(),
        })
        .collect();
    let cookie =
        crate::web::auth::session_cookie(&parts, &state, crate::web::auth::CONSOLE).await?;
    let session = match cookie {
        Some(id) => state
            .sessions()
            .find(id, state.now_ms())
            .await
            .map_err(|e| {
                if e.is_unavailable() {
                    ApiError::Unavailable("the database")
                } else {
                    ApiError::Internal(anyhow::Error::new(e))
                }
            })?,
        None => None,
    };
    let view = match session {
        Some(session) => SessionView {
            signed_in: true,
            issuers,
            subject: Some(session.principal.subject.clone()),
            display_name: Some(session.principal.display_name.clone()),
            issuer: Some(session.principal.issuer.clone()),
            csrf_token: Some(session.csrf_token().to_owned()),
            expires_at: Some(airlock_domain::jobs::view::rfc3339(session.expires_at)),
            views: views_of(&state, &session),
        },
        None => SessionView {
            signed_in: false,
            issuers,
            subject: None,
            display_name: None,
            issuer: None,
            csrf_token: None,
            expires_at: None,
            views: Vec::new(),
        },
    };
    let mut response = Json(view).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /console/logout`.
#[utoipa::path(
    post,
    path = "/console/logout",
    operation_id = "console_logout",
    tag = "console",
    summary = "End the console session",
    description = "Deletes the session (on every replica within seconds) and clears its cookie. \
        Needs the session cookie and its `X-CSRF-Token`. Audited as `console.logout`.",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Some(session) = caller.session.clone() else {
        return Err(ApiError::Unprocessable(Invalid::whole(
            "there is no console session to end (a bearer token was sent)",
        )));
    };
    let entry = audit::Entry {
        origin: caller.origin.clone(),
        actor: audit::Actor::of(&caller.principal),
        channel: caller.channel.to_owned(),
        action: "console.logout".to_owned(),
        decision: "allow".to_owned(),
        outcome: Some("session_ended".to_owned()),
        ..audit::Entry::default()
    };
    state
        .store()
        .delete_session(&session.id_hash, state.now_ms(), Some(&entry))
        .await
        .map_err(|e| {
            if e.is_unavailable() {
                ApiError::Unavailable("the database")
            } else {
                ApiError::Internal(anyhow::Error::new(e))
            }
        })?;
    state.sessions().forget(&session.id_hash);
    tracing::info!(request_id = %caller.request_id.0, subject = %caller.principal.subject, "console session ended");
    let secure = session::cookie_is_secure(state.site(), &headers);
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookies::clear_session(secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
