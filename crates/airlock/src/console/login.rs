//! Signing in: `GET /console/login` starts the authorization code flow,
//! `GET /console/callback` finishes it with a session.
//!
//! Which token makes the session's principal: the access token when it
//! verifies as an ordinary bearer token for Airlock (its issuer, audience,
//! algorithms: exactly what the API would accept from that person), else
//! the ID token, verified for the console client. The ID token is checked
//! in both cases: its `nonce` ties the answer to this login. The session
//! ends when that token expires, or after `[console] session_ttl_secs`,
//! whichever comes first.

use std::sync::Arc;

use crate::web::params::Query;
use axum::Extension;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::oidc::{self, Authorize};
use super::{Console, cookies, enabled};
use crate::web::auth::{Unidentified, origin_of};
use crate::web::problem::responses::{NotFound, TooManyRequests, Unavailable, Unprocessable};
use crate::web::refusals;
use crate::web::session::{self, hash_of, new_secret};
use crate::web::{ApiError, AppState, RequestId};
use airlock_domain::audit;
use airlock_domain::identity::Principal;
use airlock_store::sessions::{LoginRow, SessionRow};

/// Where the console lands when a login names no (valid) view.
const HOME: &str = "/connections";

/// The query of `/console/login`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LoginQuery {
    /// Which issuer (`id` from `/console/session`); optional with one.
    issuer: Option<usize>,
    /// The console view to open after signing in, e.g. `/board`.
    return_to: Option<String>,
}

/// A view path of the console (`/board`, `/jobs/01J...`), or [`HOME`]:
/// the only places a login returns to (never another site).
fn view_path(requested: Option<&str>) -> String {
    requested
        .map(|p| p.trim_start_matches('#'))
        .filter(|p| {
            p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 200
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.=&?%".contains(&b))
        })
        .map_or_else(|| HOME.to_owned(), str::to_owned)
}

/// A 303 to `location`, with cookies, never cached.
fn see_other(location: &str, set_cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in set_cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// How often ended logins and sessions are purged (at a login's start).
const PURGE_EVERY_MS: i64 = 60_000;

/// A login's start writes a row: one address may start
/// `[server] refusals_per_address` of them per window, like the refusals
/// of unidentified requests; past it, 429 (audited, counted per window).
async fn throttle(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map_or_else(String::new, |id| id.0.clone());
    let origin = origin_of(parts, &request_id);
    let key = format!(
        "login:{}",
        refusals::address_key(origin.source_ip.as_deref())
    );
    if state.spend(&key).await {
        return Ok(());
    }
    let entry = Unidentified {
        channel: "console",
        action: "console.login",
        reason: "throttled",
        status: "429",
        detail: json!({}),
    }
    .entry(origin);
    state.refused(entry, None, &[]).await;
    Err(ApiError::TooManyRequests)
}

/// `GET /console/login`: to the identity provider.
#[utoipa::path(
    get,
    path = "/console/login",
    operation_id = "console_login",
    tag = "console",
    summary = "Sign in: redirects to the identity provider",
    description = "Starts the authorization code flow with PKCE (S256), `state` and `nonce` \
        against the chosen issuer's console client (`console_client_id`). With several such \
        issuers and none chosen, redirects to the console's login page.",
    params(LoginQuery),
    responses(
        (status = 303, description = "To the issuer's authorization endpoint"),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn start(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Query(query): Query<LoginQuery>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let headers = &parts.headers;
    enabled(&console)?;
    throttle(&state, &parts).await?;
    let return_to = view_path(query.return_to.as_deref());
    let client = match (query.issuer, console.clients.as_slice()) {
        (_, []) => {
            return Err(ApiError::NotFound(
                "console login (no issuer has a console_client_id)",
            ));
        }
        (Some(id), clients) => clients.get(id).ok_or(ApiError::NotFound("issuer"))?,
        (None, [only]) => only,
        (None, _) => return Ok(see_other("/console#/login", &[])),
    };
    let endpoints = client.endpoints(&console.http).await.map_err(|error| {
        tracing::warn!(issuer = %client.issuer, error = %error, "console login cannot reach the issuer");
        ApiError::Unavailable("the identity provider")
    })?;
    let now = state.now_ms();
    // Logins that never came back, and sessions that ended, go now and then.
    let last = console.purged_at.load(std::sync::atomic::Ordering::Relaxed);
    if now - last >= PURGE_EVERY_MS
        && console
            .purged_at
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
        && let Err(error) = state.store().purge_console(now).await
    {
        tracing::warn!(error = %error, "cannot purge ended console sessions");
    }
    let login_state = new_secret();
    let nonce = new_secret();
    let code_verifier = new_secret();
    let redirect_uri = format!(
        "{}{}",
        session::own_origin(state.site(), headers),
        cookies::CALLBACK_PATH
    );
    let row = LoginRow {
        state_hash: hash_of(&login_state),
        issuer: client.issuer.clone(),
        code_verifier: code_verifier.clone(),
        nonce: nonce.clone(),
        redirect_uri: redirect_uri.clone(),
        return_to,
        created_at: now,
        expires_at: now + cookies::LOGIN_TTL_SECS * 1000,
    };
    state.store().insert_login(&row).await?;
    let location = client.authorization_url(
        &endpoints.authorization,
        &Authorize {
            redirect_uri: &redirect_uri,
            state: &login_state,
            nonce: &nonce,
            code_verifier: &code_verifier,
        },
    );
    let secure = session::cookie_is_secure(state.site(), headers);
    Ok(see_other(
        &location,
        &[cookies::login(&login_state, secure)],
    ))
}

/// The query the identity provider sends the browser back with.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The login's `state`, as sent.
    state: Option<String>,
    /// The provider's error code (`access_denied`, ...), instead of a code.
    error: Option<String>,
}

/// Why a login failed: a short code for the page (`?error=`), the log and
/// the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No login cookie, or its `state` differs from the query's.
    StateMismatch,
    /// The login is unknown, used or older than ten minutes.
    LoginExpired,
    /// The provider answered with an error (the user cancelled, ...).
    Refused,
    /// The code could not be exchanged.
    Exchange,
    /// No token verifies, or the ID token's nonce is not this login's.
    Token,
    /// The issuer of the login is no longer configured.
    UnknownIssuer,
}

impl Failure {
    fn code(self) -> &'static str {
        match self {
            Self::StateMismatch => "state_mismatch",
            Self::LoginExpired => "login_expired",
            Self::Refused => "refused",
            Self::Exchange => "exchange_failed",
            Self::Token => "token_invalid",
            Self::UnknownIssuer => "unknown_issuer",
        }
    }
}

/// `GET /console/callback`: from the identity provider, with a code.
#[utoipa::path(
    get,
    path = "/console/callback",
    operation_id = "console_callback",
    tag = "console",
    summary = "Sign in, continued: the identity provider's redirect",
    description = "Checks `state` against the login cookie, exchanges the code (with the PKCE \
        verifier), verifies the tokens (the ID token's `nonce` included), stores the session and \
        sets its cookie (`airlock_session`, or `__Host-airlock_session` when Secure per \
        `[console] cookie_secure`: HttpOnly, SameSite=Lax). Audited as `console.login`. A failed login redirects to the \
        console with `?error=CODE`.",
    params(CallbackQuery),
    responses(
        (status = 303, description = "To the console: signed in, or `?error=CODE`"),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn callback(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Query(query): Query<CallbackQuery>,
    parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    enabled(&console)?;
    let headers = &parts.headers;
    let secure = session::cookie_is_secure(state.site(), headers);
    let request_id = parts
        .extensions
        .get::<crate::web::RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let origin = crate::web::auth::origin_of(&parts, &request_id);
    match finish(&state, &console, &query, headers).await {
        Ok((id, row, principal, return_to)) => {
            let entry = audit::Entry {
                origin,
                actor: audit::Actor::of(&principal),
                channel: crate::web::auth::CONSOLE.to_owned(),
                action: "console.login".to_owned(),
                decision: "allow".to_owned(),
                outcome: Some("session_created".to_owned()),
                detail: Some(json!({
                    "expires_at": airlock_domain::jobs::view::rfc3339(row.expires_at),
                })),
                ..audit::Entry::default()
            };
            state.store().insert_session(&row, &entry).await?;
            tracing::info!(subject = %principal.subject, issuer = %principal.issuer, "console session started");
            let max_age = (row.expires_at - row.created_at) / 1000;
            Ok(see_other(
                &format!("/console#{return_to}"),
                &[
                    cookies::session(&id, max_age, secure),
                    cookies::clear_login(secure),
                ],
            ))
        }
        Err(Err(error)) => Err(error),
        Err(Ok((failure, issuer))) => {
            tracing::info!(reason = failure.code(), "console login failed");
            let entry = audit::Entry {
                origin,
                actor: audit::Actor {
                    issuer,
                    ..audit::Actor::default()
                },
                channel: crate::web::auth::CONSOLE.to_owned(),
                action: "console.login".to_owned(),
                decision: "deny".to_owned(),
                reason: Some(failure.code().to_owned()),
                outcome: Some("401".to_owned()),
                ..audit::Entry::default()
            };
            state.audit(&entry).await;
            Ok(see_other(
                &format!("/console?error={}", failure.code()),
                &[cookies::clear_login(secure)],
            ))
        }
    }
}

/// A failed login (with the issuer, once known), or an error of Airlock's
/// own (the database is down).
type Failed = Result<(Failure, Option<String>), ApiError>;

/// The callback's checks, in order; the new session's cookie id, row,
/// principal and view on success.
async fn finish(
    state: &AppState,
    console: &Console,
    query: &CallbackQuery,
    headers: &HeaderMap,
) -> Result<(String, SessionRow, Principal, String), Failed> {
    let now = state.now_ms();
    let (login, code) = take_login(state, query, headers, now).await?;
    let issuer = Some(login.issuer.as_str());
    let Some(client) = console.clients.iter().find(|c| c.issuer == login.issuer) else {
        return fail(Failure::UnknownIssuer, issuer);
    };
    let tokens = exchange_code(console, client, &login, code).await?;
    let principal = principal_of(state, client, &login, &tokens).await?;
    let ttl_ms = console.config.session_ttl_ms();
    let (id, row) = new_session(&principal, now, ttl_ms, issuer)?;
    Ok((id, row, principal, login.return_to))
}

/// A failed login, naming the issuer once it is known.
fn fail<T>(failure: Failure, issuer: Option<&str>) -> Result<T, Failed> {
    Err(Ok((failure, issuer.map(str::to_owned))))
}

/// The login this browser started (its `state` matches the cookie's; one
/// use, ten minutes), and the authorization code the provider sent.
async fn take_login<'q>(
    state: &AppState,
    query: &'q CallbackQuery,
    headers: &HeaderMap,
    now: i64,
) -> Result<(LoginRow, &'q str), Failed> {
    // The state in the query must be the one this browser was given.
    let secure = session::cookie_is_secure(state.site(), headers);
    let (Some(sent), Some(kept)) = (
        query.state.as_deref(),
        cookies::login_state(headers, secure),
    ) else {
        return fail(Failure::StateMismatch, None);
    };
    if !same_secret(Some(sent), kept) {
        return fail(Failure::StateMismatch, None);
    }
    let Some(login) = state
        .store()
        .take_login(&hash_of(sent), now)
        .await
        .map_err(|e| Err(ApiError::from(e)))?
    else {
        return fail(Failure::LoginExpired, None);
    };
    let issuer = Some(login.issuer.as_str());
    if let Some(error) = &query.error {
        tracing::info!(provider_error = %error.chars().take(64).filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>(), "the identity provider refused the login");
        return fail(Failure::Refused, issuer);
    }
    let Some(code) = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return fail(Failure::Refused, issuer);
    };
    Ok((login, code))
}

/// The provider's tokens for the code (with the login's PKCE verifier).
async fn exchange_code(
    console: &Console,
    client: &oidc::Client,
    login: &LoginRow,
    code: &str,
) -> Result<oidc::Tokens, Failed> {
    let issuer = Some(login.issuer.as_str());
    let endpoints = match client.endpoints(&console.http).await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            tracing::warn!(issuer = %client.issuer, error = %error, "console login cannot reach the issuer");
            return fail(Failure::Exchange, issuer);
        }
    };
    match client
        .exchange(
            &console.http,
            &endpoints.token,
            code,
            &login.redirect_uri,
            &login.code_verifier,
        )
        .await
    {
        Ok(tokens) => Ok(tokens),
        Err(error) => {
            tracing::warn!(issuer = %client.issuer, error = %error, "console login: code exchange failed");
            fail(Failure::Exchange, issuer)
        }
    }
}

/// Who signed in: the ID token must verify for the console client and carry
/// this login's nonce; the principal is the access token's when it verifies
/// as an ordinary bearer token of the same issuer (what the API computes for
/// that person), else the ID token's.
async fn principal_of(
    state: &AppState,
    client: &oidc::Client,
    login: &LoginRow,
    tokens: &oidc::Tokens,
) -> Result<Principal, Failed> {
    let issuer = Some(login.issuer.as_str());
    let authenticator = state.authenticator();
    // The ID token proves this login (its nonce) whatever makes the principal.
    let Some(id_token) = tokens.id_token.as_deref() else {
        tracing::info!(issuer = %client.issuer, "console login: no ID token in the answer");
        return fail(Failure::Token, issuer);
    };
    let from_id_token = match authenticator
        .verify_id_token(id_token, &client.issuer, &client.client_id)
        .await
    {
        Ok(principal) => principal,
        Err(error) => {
            tracing::info!(issuer = %client.issuer, reason = error.code(), "console login: the ID token does not verify");
            return fail(Failure::Token, issuer);
        }
    };
    let nonce = from_id_token
        .claims
        .get("nonce")
        .and_then(serde_json::Value::as_str);
    if !same_secret(nonce, &login.nonce) {
        tracing::info!(issuer = %client.issuer, "console login: the ID token's nonce is not this login's");
        return fail(Failure::Token, issuer);
    }
    Ok(match tokens.access_token.as_deref() {
        Some(access) if access.split('.').count() == 3 => {
            match authenticator.verify_token(access).await {
                Ok(principal) if principal.issuer == client.issuer => {
                    with_display_name(std::sync::Arc::unwrap_or_clone(principal), &from_id_token)
                }
                Ok(_) => from_id_token,
                Err(error) => {
                    tracing::debug!(
                        reason = error.code(),
                        "console login: the access token is not for Airlock; using the ID token"
                    );
                    from_id_token
                }
            }
        }
        _ => from_id_token,
    })
}

/// A new session of `principal`: its cookie id and its row, living until
/// the token's `exp` or `ttl_ms` (`[console] session_ttl_secs`), whichever
/// comes first.
fn new_session(
    principal: &Principal,
    now: i64,
    ttl_ms: i64,
    issuer: Option<&str>,
) -> Result<(String, SessionRow), Failed> {
    let token_end = principal
        .claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .map_or(i64::MAX, |exp| exp.saturating_mul(1000));
    let expires_at = token_end.min(now.saturating_add(ttl_ms));
    if expires_at <= now {
        return fail(Failure::Token, issuer);
    }
    let id = new_secret();
    let row = SessionRow {
        id_hash: hash_of(&id),
        issuer: principal.issuer.clone(),
        subject: principal.subject.clone(),
        principal: serde_json::to_string(principal)
            .map_err(|e| Err(ApiError::Internal(anyhow::Error::new(e))))?,
        csrf_token: new_secret(),
        created_at: now,
        expires_at,
    };
    Ok((id, row))
}

/// A value sent back (`state`, `nonce`) equals the one kept, compared in
/// constant time; an absent or empty one never does.
fn same_secret(sent: Option<&str>, kept: &str) -> bool {
    sent.is_some_and(|sent| {
        !kept.is_empty()
            && aws_lc_rs::constant_time::verify_slices_are_equal(sent.as_bytes(), kept.as_bytes())
                .is_ok()
    })
}

/// Access tokens often carry no name (`oidc-provider`, Entra): the display
/// name then falls back to the client id or the subject. The ID token's
/// name replaces such a fallback, for people to read in the console and
/// `whoami`; no grant matches a display name, so what the person may do is
/// unchanged.
fn with_display_name(mut principal: Principal, from_id_token: &Principal) -> Principal {
    let fell_back = principal.display_name == principal.subject
        || principal.client_id.as_deref() == Some(principal.display_name.as_str());
    let named = from_id_token.display_name != from_id_token.subject
        && from_id_token.client_id.as_deref() != Some(from_id_token.display_name.as_str());
    if fell_back && named {
        principal
            .display_name
            .clone_from(&from_id_token.display_name);
    }
    principal
}

#[cfg(test)]
mod tests;
