//! The web console's HTTP flows, without a browser: signing in through the
//! development identity provider (authorization code with PKCE), the
//! session cookie on Airlock's API (same identity as a bearer token, CSRF
//! on every state change), logout, the login's one-time binding to the
//! browser, session expiry, and the caller-scoped event stream.
//!
//! The browser itself (Chromium driven by Playwright, with the real npm
//! `oidc-provider`) is in `browser.rs`.

use std::collections::HashMap;
use std::time::Duration;

use airbyte_sim::SimConfig;
use airlock::config::Config;
use airlock::web::session::{Sessions, hash_of, new_secret};
use airlock_store::sessions::SessionRow;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::harness::{Harness, IdpServer, Stack};
use crate::support::Db;

/// A client that never follows redirects: each hop is checked.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Jobs the simulator finishes in well under a second.
pub(crate) fn fast_sim() -> SimConfig {
    SimConfig {
        time_scale: 0.01,
        ..SimConfig::default()
    }
}

/// `name=value` of the `Set-Cookie` headers of `response`, with their
/// attributes, by name.
pub(crate) fn set_cookies(response: &reqwest::Response) -> HashMap<String, String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (name, _) = v.split_once('=')?;
            Some((name.to_owned(), v.to_owned()))
        })
        .collect()
}

pub(crate) fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION]
        .to_str()
        .expect("a location")
        .to_owned()
}

/// A browser's view of a signed-in session.
struct Signed {
    /// `airlock_session=...`, as a `Cookie` header.
    cookie: String,
    /// The session cookie's `Set-Cookie`, with its attributes.
    set_cookie: String,
    csrf: String,
    session: Value,
}

/// The steps of a login up to the identity provider's redirect back:
/// the callback URL (code and state) and the login cookie.
pub(crate) async fn to_callback(stack: &Stack, user: &str) -> (String, String) {
    let http = browser();
    let start = http
        .get(stack.url("/console/login?return_to=/board"))
        .send()
        .await
        .expect("login starts");
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let mut login_cookies = set_cookies(&start);
    let login_cookie = login_cookies
        .remove("airlock_login")
        .or_else(|| login_cookies.remove("__Secure-airlock_login"))
        .expect("a login cookie");
    assert!(
        login_cookie.contains("HttpOnly")
            && login_cookie.contains("SameSite=Lax")
            && login_cookie.contains("Path=/console/callback"),
        "{login_cookie}"
    );
    let authorize = location(&start);
    assert!(
        authorize.starts_with(&format!("{}/authorize?", stack.idp.issuer())),
        "{authorize}"
    );
    let query: HashMap<String, String> =
        form_urlencoded::parse(authorize.split_once('?').expect("a query").1.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert_eq!(query["client_id"], "airlock-console");
    assert_eq!(query["redirect_uri"], stack.url("/console/callback"));
    assert!(query["scope"].split(' ').any(|s| s == "openid"));
    assert_eq!(query["state"], cookie_value(&login_cookie));
    assert!(!query["nonce"].is_empty());

    // The login page lists a person per role; pick one.
    let page = http.get(&authorize).send().await.expect("login page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    for person in ["Rosa Reader", "Rene Runner", "Otto Auditor"] {
        assert!(html.contains(person), "the login page offers {person}");
    }
    let mut form: Vec<(String, String)> = query.into_iter().collect();
    form.push(("user".into(), user.into()));
    let picked = http
        .post(format!("{}/authorize", stack.idp.issuer()))
        .form(&form)
        .send()
        .await
        .expect("the provider answers");
    assert_eq!(picked.status(), StatusCode::SEE_OTHER);
    (location(&picked), cookie_value(&login_cookie))
}

/// Signs `user` in (a demo person: rosa, rene, edda, ada, otto).
async fn sign_in(stack: &Stack, user: &str) -> Signed {
    let (callback, login_state) = to_callback(stack, user).await;
    assert!(callback.starts_with(&stack.url("/console/callback?code=")));
    let http = browser();
    let back = http
        .get(&callback)
        .header(COOKIE, format!("airlock_login={login_state}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&back), "/console#/board", "back to the asked view");
    let mut cookies = set_cookies(&back);
    let set_cookie = cookies.remove("airlock_session").expect("a session cookie");
    assert!(
        cookies["airlock_login"].contains("Max-Age=0"),
        "the login cookie is cleared"
    );
    let cookie = format!("airlock_session={}", cookie_value(&set_cookie));
    let session: Value = http
        .get(stack.url("/console/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("JSON");
    assert_eq!(session["signed_in"], true, "{session}");
    Signed {
        cookie,
        set_cookie,
        csrf: session["csrf_token"]
            .as_str()
            .expect("a CSRF token")
            .to_owned(),
        session,
    }
}

impl Signed {
    fn get(&self, stack: &Stack, path: &str) -> reqwest::RequestBuilder {
        browser().get(stack.url(path)).header(COOKIE, &self.cookie)
    }

    fn post(&self, stack: &Stack, path: &str) -> reqwest::RequestBuilder {
        browser().post(stack.url(path)).header(COOKIE, &self.cookie)
    }
}

pub(crate) async fn json(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("Airlock answers");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The slug of the first connection of `workspace`, as an admin sees it.
async fn slug_in(stack: &Stack, workspace: &str) -> String {
    let (_, page) = json(
        stack
            .http
            .get(stack.url("/v1/connections"))
            .bearer_auth(stack.token("admin")),
    )
    .await;
    page["data"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| c["workspace_name"] == workspace)
        .and_then(|c| c["slug"].as_str())
        .expect("a connection in the workspace")
        .to_owned()
}

pub(crate) async fn audit(stack: &Stack, query: &str) -> Vec<Value> {
    let (status, page) = json(
        stack
            .http
            .get(stack.url(&format!("/v1/audit?{query}")))
            .bearer_auth(stack.token("admin")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

async fn job_count(stack: &Stack) -> usize {
    let (_, page) = json(
        stack
            .http
            .get(stack.url("/v1/jobs?limit=200"))
            .bearer_auth(stack.token("admin")),
    )
    .await;
    page["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_person_signs_in_and_the_api_sees_what_their_token_would_show() {
    let stack = Harness::new(Db::Sqlite).sim(fast_sim()).start().await;
    let rene = sign_in(&stack, "rene").await;

    // The cookie: HttpOnly, Lax, the whole site, not Secure over plain HTTP.
    let attributes: Vec<&str> = rene.set_cookie.split("; ").skip(1).collect();
    assert_eq!(attributes[0], "Path=/");
    assert!(attributes.contains(&"HttpOnly") && attributes.contains(&"SameSite=Lax"));
    assert!(!attributes.contains(&"Secure"), "{attributes:?}");
    let max_age: i64 = attributes[1]
        .strip_prefix("Max-Age=")
        .and_then(|v| v.parse().ok())
        .expect("Max-Age");
    assert!(
        (3500..=3600).contains(&max_age),
        "the token's hour: {max_age}"
    );

    // The session page: who, the views a runner may open (no audit).
    assert_eq!(rene.session["subject"], "rene");
    assert_eq!(rene.session["display_name"], "Rene Runner");
    assert_eq!(
        rene.session["views"],
        serde_json::json!(["connections", "board", "jobs", "whoami"])
    );
    assert_eq!(rene.csrf.len(), 43);

    // The API computes the same identity from the cookie as from the
    // person's own token.
    let (status, by_cookie) = json(rene.get(&stack, "/v1/whoami")).await;
    assert_eq!(status, StatusCode::OK, "{by_cookie}");
    let (access, _) = stack.idp.user_tokens("rene", None).expect("tokens");
    let (_, by_token) = json(stack.http.get(stack.url("/v1/whoami")).bearer_auth(access)).await;
    assert_eq!(by_cookie, by_token);
    assert_eq!(by_cookie["roles"], serde_json::json!(["runner"]));
    assert_eq!(by_cookie["kind"], "user");

    // An auditor's session opens the audit view.
    let otto = sign_in(&stack, "otto").await;
    assert!(
        otto.session["views"]
            .as_array()
            .expect("views")
            .contains(&"audit".into())
    );
    let (status, _) = json(otto.get(&stack, "/v1/audit?limit=5")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json(rene.get(&stack, "/v1/audit?limit=5")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The login is audited (no secret in it), under the console channel.
    let logins = audit(&stack, "action=console.login&actor=rene").await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["decision"], "allow");
    assert_eq!(logins[0]["channel"], "console");
    let text = serde_json::to_string(&logins).expect("JSON");
    assert!(!text.contains(&rene.csrf) && !text.contains(cookie_value(&rene.set_cookie).as_str()));

    // Only hashes are stored.
    let store = stack.store().await;
    let id = cookie_value(&rene.set_cookie);
    assert!(
        store
            .get_session(&id, airlock_store::now_ms())
            .await
            .expect("query")
            .is_none(),
        "the raw id is no key"
    );
    assert!(
        store
            .get_session(&hash_of(&id), airlock_store::now_ms())
            .await
            .expect("query")
            .is_some()
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_forged_post_without_the_csrf_token_is_refused_and_changes_nothing_sqlite() {
    a_forged_post_without_the_csrf_token_is_refused_and_changes_nothing(Db::Sqlite).await;
}

#[tokio::test]
async fn a_forged_post_without_the_csrf_token_is_refused_and_changes_nothing_postgres() {
    a_forged_post_without_the_csrf_token_is_refused_and_changes_nothing(Db::Postgres).await;
}

async fn a_forged_post_without_the_csrf_token_is_refused_and_changes_nothing(db: Db) {
    let stack = Harness::new(db).sim(fast_sim()).start().await;
    let rene = sign_in(&stack, "rene").await;
    let slug = slug_in(&stack, "analytics").await;
    let sync = format!("/v1/connections/{slug}/sync");
    let before = job_count(&stack).await;

    for (label, request) in [
        ("no token", rene.post(&stack, &sync)),
        (
            "a wrong token",
            rene.post(&stack, &sync)
                .header("x-csrf-token", new_secret()),
        ),
        (
            "another origin",
            rene.post(&stack, &sync)
                .header("x-csrf-token", &rene.csrf)
                .header("origin", "https://evil.example"),
        ),
    ] {
        let (status, problem) = json(request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {problem}");
        assert_eq!(problem["code"], "csrf_rejected", "{label}: {problem}");
        assert!(problem["detail"].is_string() && problem["request_id"].is_string());
    }
    assert_eq!(job_count(&stack).await, before, "no job was created");
    let refusals = audit(&stack, "action=csrf&decision=deny").await;
    let reasons: Vec<&str> = refusals
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    for reason in [
        "csrf_token_missing",
        "csrf_token_mismatch",
        "origin_mismatch",
    ] {
        assert!(reasons.contains(&reason), "{reasons:?}");
    }
    assert!(
        refusals
            .iter()
            .all(|r| r["principal"]["subject"] == "rene" && r["channel"] == "console")
    );

    // The console's own request: the token, from its own origin.
    let (status, job) = json(
        rene.post(&stack, &sync)
            .header("x-csrf-token", &rene.csrf)
            .header("origin", &stack.base),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["channel"], "console");
    assert_eq!(job["requested_by"], "rene");
    let syncs = audit(&stack, "action=jobs.sync&actor=rene").await;
    assert_eq!(syncs.len(), 1);
    assert_eq!(syncs[0]["channel"], "console");

    // Reads need no token; the connection list names its newest job.
    let (status, _) = json(rene.get(
        &stack,
        &format!("/v1/jobs/{}", job["id"].as_str().expect("id")),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = json(rene.get(&stack, "/v1/connections?include=last_job")).await;
    assert_eq!(status, StatusCode::OK);
    let listed = page["data"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| c["slug"] == slug.as_str())
        .expect("the synced connection");
    assert_eq!(listed["last_job"]["id"], job["id"], "{listed}");
    assert!(listed.get("permissions").is_none(), "only when asked");
    let (status, problem) = json(rene.get(&stack, "/v1/connections?include=everything")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["pointer"], "include", "{problem}");
    stack.stop().await;
}

#[tokio::test]
async fn a_reader_sees_no_sync_permission_and_cannot_sync() {
    let stack = Harness::new(Db::Sqlite).sim(fast_sim()).start().await;
    let rosa = sign_in(&stack, "rosa").await;
    let (status, page) =
        json(rosa.get(&stack, "/v1/connections?include=last_job,permissions")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let connections = page["data"].as_array().expect("connections");
    assert!(!connections.is_empty());
    for connection in connections {
        assert_eq!(
            connection["permissions"],
            serde_json::json!(["connections:read", "jobs:read"]),
            "{connection}"
        );
    }
    let slug = connections[0]["slug"].as_str().expect("slug");
    let (status, problem) = json(
        rosa.post(&stack, &format!("/v1/connections/{slug}/sync"))
            .header("x-csrf-token", &rosa.csrf),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["code"], "forbidden");
    stack.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_everywhere_it_is_used_sqlite() {
    logout_ends_the_session_everywhere_it_is_used(Db::Sqlite).await;
}

#[tokio::test]
async fn logout_ends_the_session_everywhere_it_is_used_postgres() {
    logout_ends_the_session_everywhere_it_is_used(Db::Postgres).await;
}

async fn logout_ends_the_session_everywhere_it_is_used(db: Db) {
    let stack = Harness::new(db).sim(fast_sim()).start().await;
    let rene = sign_in(&stack, "rene").await;
    let (status, _) = json(rene.get(&stack, "/v1/whoami")).await;
    assert_eq!(status, StatusCode::OK);

    // Logging out is a state change: the CSRF token is needed.
    let (status, problem) = json(rene.post(&stack, "/console/logout")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, _) = json(rene.get(&stack, "/v1/whoami")).await;
    assert_eq!(status, StatusCode::OK, "a forged logout ends nothing");

    let out = rene
        .post(&stack, "/console/logout")
        .header("x-csrf-token", &rene.csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&out)
        .remove("airlock_session")
        .expect("cleared");
    assert!(cleared.starts_with("airlock_session=;") && cleared.contains("Max-Age=0"));

    let (status, problem) = json(rene.get(&stack, "/v1/whoami")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    let (_, session) = json(rene.get(&stack, "/console/session")).await;
    assert_eq!(session["signed_in"], false);
    assert!(session.get("csrf_token").is_none());
    let (status, _) = json(
        rene.post(&stack, "/console/logout")
            .header("x-csrf-token", &rene.csrf),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session is gone");
    let logouts = audit(&stack, "action=console.logout").await;
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0]["principal"]["subject"], "rene");
    let denials = audit(&stack, "action=authenticate&decision=deny").await;
    assert!(denials.iter().any(|r| r["reason"] == "no_session"));
    stack.stop().await;
}

#[tokio::test]
async fn a_bearer_token_wins_over_a_session_cookie() {
    let stack = Harness::new(Db::Sqlite).sim(fast_sim()).start().await;
    let rosa = sign_in(&stack, "rosa").await;
    let slug = slug_in(&stack, "analytics").await;
    // Rosa's cookie rides along, but the runner's token decides (and is
    // not subject to the cookie's CSRF check).
    let (status, job) = json(
        rosa.post(&stack, &format!("/v1/connections/{slug}/sync"))
            .bearer_auth(stack.token("runner")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["requested_by"], "runner");
    assert_eq!(job["channel"], "api");
    let (status, me) = json(
        rosa.get(&stack, "/v1/whoami")
            .bearer_auth(stack.token("admin")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["subject"], "admin");
    stack.stop().await;
}

#[tokio::test]
async fn a_login_is_bound_to_its_browser_and_serves_once_sqlite() {
    a_login_is_bound_to_its_browser_and_serves_once(Db::Sqlite).await;
}

#[tokio::test]
async fn a_login_is_bound_to_its_browser_and_serves_once_postgres() {
    a_login_is_bound_to_its_browser_and_serves_once(Db::Postgres).await;
}

async fn a_login_is_bound_to_its_browser_and_serves_once(db: Db) {
    let stack = Harness::new(db).sim(fast_sim()).start().await;
    let http = browser();
    let error_of = |response: &reqwest::Response| {
        let location = location(response);
        location
            .strip_prefix("/console?error=")
            .unwrap_or_else(|| panic!("not a failed login: {location}"))
            .to_owned()
    };

    // A callback without the login cookie (another browser, or a forged
    // link carrying the attacker's code) is refused.
    let (callback, state) = to_callback(&stack, "rene").await;
    let response = http.get(&callback).send().await.expect("callback");
    assert_eq!(error_of(&response), "state_mismatch");
    assert!(!set_cookies(&response).contains_key("airlock_session"));
    let response = http
        .get(&callback)
        .header(COOKIE, format!("airlock_login={}", new_secret()))
        .send()
        .await
        .expect("callback");
    assert_eq!(error_of(&response), "state_mismatch");

    // The right browser: signed in once; the same callback again fails.
    let first = http
        .get(&callback)
        .header(COOKIE, format!("airlock_login={state}"))
        .send()
        .await
        .expect("callback");
    assert!(set_cookies(&first).contains_key("airlock_session"));
    let again = http
        .get(&callback)
        .header(COOKIE, format!("airlock_login={state}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(error_of(&again), "login_expired");

    // The provider's refusal (the person cancelled) is a failed login.
    let (callback, state) = to_callback(&stack, "rene").await;
    let refused = callback.replace("code=", "error=access_denied&x=");
    let response = http
        .get(&refused)
        .header(COOKIE, format!("airlock_login={state}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(error_of(&response), "refused");

    // A code whose PKCE verifier Airlock does not hold cannot be redeemed
    // at the provider by someone else.
    let (callback, _) = to_callback(&stack, "rene").await;
    let code = callback
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("a code");
    let stolen = http
        .post(format!("{}/token", stack.idp.issuer()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "airlock-console"),
            ("code", code),
            ("redirect_uri", &stack.url("/console/callback")),
            ("code_verifier", &new_secret()),
        ])
        .send()
        .await
        .expect("token endpoint");
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);

    let failures = audit(&stack, "action=console.login&decision=deny").await;
    let reasons: Vec<&str> = failures
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"state_mismatch")
            && reasons.contains(&"login_expired")
            && reasons.contains(&"refused"),
        "{reasons:?}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_session_ends_with_its_ttl_and_expired_sessions_are_not_found_sqlite() {
    a_session_ends_with_its_ttl_and_expired_sessions_are_not_found(Db::Sqlite).await;
}

#[tokio::test]
async fn a_session_ends_with_its_ttl_and_expired_sessions_are_not_found_postgres() {
    a_session_ends_with_its_ttl_and_expired_sessions_are_not_found(Db::Postgres).await;
}

async fn a_session_ends_with_its_ttl_and_expired_sessions_are_not_found(db: Db) {
    let stack = Harness::new(db)
        .sim(fast_sim())
        .extra("[console]\nsession_ttl_secs = 120\n")
        .start()
        .await;
    let rene = sign_in(&stack, "rene").await;
    // min(token exp = 1 h, ttl = 2 min).
    assert!(
        rene.set_cookie.contains("Max-Age=120"),
        "{}",
        rene.set_cookie
    );
    let ends = time::OffsetDateTime::parse(
        rene.session["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let left = ends - time::OffsetDateTime::now_utc();
    assert!(
        left.whole_seconds() <= 120 && left.whole_seconds() > 100,
        "{left}"
    );

    // The store and its cache: found while alive, gone once expired.
    let store = stack.store().await;
    let sessions = Sessions::new(store.clone());
    let id = new_secret();
    let now = airlock_store::now_ms();
    let principal = serde_json::json!({
        "issuer": stack.idp.issuer(), "subject": "ttl", "kind": "user", "client_id": null,
        "display_name": "ttl", "roles": [], "groups": [], "scopes": [], "email": null, "claims": {}
    });
    store
        .insert_session(
            &SessionRow {
                id_hash: hash_of(&id),
                issuer: stack.idp.issuer().to_owned(),
                subject: "ttl".into(),
                principal: principal.to_string(),
                csrf_token: new_secret(),
                created_at: now,
                expires_at: now + 1_000,
            },
            &airlock_domain::audit::Entry {
                channel: "console".into(),
                action: "console.login".into(),
                decision: "allow".into(),
                ..airlock_domain::audit::Entry::default()
            },
        )
        .await
        .expect("stored");
    assert!(sessions.find(&id, now).await.expect("query").is_some());
    assert!(
        sessions
            .find(&id, now + 999)
            .await
            .expect("query")
            .is_some(),
        "cached and alive"
    );
    assert!(
        sessions
            .find(&id, now + 1_000)
            .await
            .expect("query")
            .is_none(),
        "the cache does not outlive the session"
    );
    assert!(
        store
            .get_session(&hash_of(&id), now + 1_001)
            .await
            .expect("query")
            .is_none()
    );
    assert!(store.purge_console(now + 1_001).await.expect("purge") >= 1);
    stack.stop().await;
}

/// Reads an event stream for `within`; the `job` events' data.
async fn job_events(mut response: reqwest::Response, within: Duration) -> (Vec<Value>, bool) {
    let mut text = String::new();
    let ended = tokio::time::timeout(within, async {
        while let Ok(Some(chunk)) = response.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .is_ok();
    let events = text
        .split("\n\n")
        .filter(|block| block.lines().any(|l| l == "event: job"))
        .filter_map(|block| {
            block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| serde_json::from_str(d).ok())
        })
        .collect();
    (events, ended)
}

#[tokio::test]
async fn the_event_stream_carries_only_the_jobs_the_caller_may_read() {
    let stack = Harness::new(Db::Sqlite).sim(fast_sim()).start().await;
    // Readers see marketing only (the other roles as in the demo).
    let mut scoped = stack.config.clone();
    scoped
        .grant_mut("reader")
        .insert("workspaces".to_owned(), vec!["marketing"].into());
    let config = Config::from_toml("scoped", &scoped.text(), &[]).expect("config");
    stack
        .state
        .set_policy(config.policy().expect("policy"))
        .await;
    let analytics = slug_in(&stack, "analytics").await;
    let marketing = slug_in(&stack, "marketing").await;

    let rosa = sign_in(&stack, "rosa").await;
    let opened = rosa
        .get(&stack, "/v1/events")
        .send()
        .await
        .expect("stream opens");
    assert_eq!(opened.status(), StatusCode::OK);
    assert!(
        opened.headers()["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/event-stream"))
    );
    let reading = tokio::spawn(job_events(opened, Duration::from_secs(15)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = HashMap::new();
    for slug in [&analytics, &marketing] {
        let (status, job) = json(
            stack
                .http
                .post(stack.url(&format!("/v1/connections/{slug}/sync")))
                .bearer_auth(stack.token("admin")),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        ids.insert(slug.clone(), job["id"].as_str().expect("id").to_owned());
    }
    // Rosa signs out while her stream is open: the stream ends.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = rosa
        .post(&stack, "/console/logout")
        .header("x-csrf-token", &rosa.csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let (events, ended) = reading.await.expect("reader");
    assert!(ended, "the stream ends once its session is gone");
    assert!(!events.is_empty(), "the marketing job's changes arrived");
    for event in &events {
        assert_eq!(event["job_id"], ids[&marketing], "{event}");
        assert_eq!(event["job"]["id"], event["job_id"]);
        assert!(event["seq"].is_i64() && event["state"].is_string());
    }
    let states: Vec<&str> = events.iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states.first(), Some(&"queued"), "{states:?}");

    // Without jobs:read anywhere, no stream.
    let (status, _) = json(stack.http.get(stack.url("/v1/events"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    stack.stop().await;
}

#[tokio::test]
async fn the_console_page_is_self_contained_and_locked_down() {
    let stack = Harness::new(Db::Sqlite).sim(fast_sim()).start().await;
    let page = browser()
        .get(stack.url("/console"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().expect("CSP");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let etag = headers["etag"].clone();
    let html = page.text().await.expect("html");
    assert!(html.contains("/console/assets/app.js"));
    let again = browser()
        .get(stack.url("/console"))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("page");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let mut total = 0;
    for asset in airlock::console::ASSETS {
        let path = if asset.name == "index.html" {
            "/console".to_owned()
        } else {
            format!("/console/assets/{}", asset.name)
        };
        let response = browser().get(stack.url(&path)).send().await.expect("asset");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            asset.content_type,
            "{path}"
        );
        total += response.bytes().await.expect("body").len();
    }
    assert!(total < 100 * 1024, "{total} bytes");
    let (status, problem) = json(browser().get(stack.url("/console/assets/../Cargo.toml"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    stack.stop().await;
}

#[tokio::test]
async fn a_disabled_console_is_not_served() {
    let stack = Harness::new(Db::Sqlite)
        .sim(fast_sim())
        .extra("[console]\nenabled = false\n")
        .start()
        .await;
    for path in [
        "/console",
        "/console/assets/app.js",
        "/console/login",
        "/console/session",
    ] {
        let (status, _) = json(browser().get(stack.url(path))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn several_issuers_are_offered_and_the_chosen_one_is_used() {
    // A second provider on its own port, with its own console client.
    let other = IdpServer::start().await;
    let stack = Harness::new(Db::Sqlite)
        .sim(fast_sim())
        .issuer(other.issuer().with("console_client_id", "airlock-console"))
        .start()
        .await;
    let (_, session) = json(browser().get(stack.url("/console/session"))).await;
    assert_eq!(session["signed_in"], false);
    let issuers = session["issuers"].as_array().expect("issuers");
    assert_eq!(issuers.len(), 2, "{session}");
    assert!(
        issuers
            .iter()
            .all(|i| i["id"].is_u64() && i["name"].is_string())
    );

    // Without a choice, the login page asks; with one, that issuer.
    let unchosen = browser()
        .get(stack.url("/console/login"))
        .send()
        .await
        .expect("login");
    assert_eq!(location(&unchosen), "/console#/login");
    let (status, problem) = json(browser().get(stack.url("/console/login?issuer=7"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let chosen = browser()
        .get(stack.url("/console/login?issuer=0"))
        .send()
        .await
        .expect("login");
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&chosen).starts_with(&format!("{}/authorize?", other.idp.issuer())),
        "issuer 0 is the configured one: {}",
        location(&chosen)
    );
    stack.stop().await;
}

#[tokio::test]
async fn id_tokens_prove_a_login_but_never_open_the_api() {
    use std::sync::Arc;

    use airlock_domain::clock::SystemClock;
    use airlock_domain::identity::{AuthError, Authenticator, KeySource, StaticKeySource};

    let idp = airlock::devidp::DevIdp::new("http://127.0.0.1:9").expect("idp");
    let source: Arc<dyn KeySource> = Arc::new(StaticKeySource::new(idp.key_set()));
    let auth = Authenticator::new(vec![(idp.issuer_config(), source)], Arc::new(SystemClock))
        .expect("authenticator");
    let (access, id) = idp.user_tokens("rene", Some("n0nce")).expect("tokens");

    let person = auth
        .verify_id_token(&id, idp.issuer(), "airlock-console")
        .await
        .expect("the ID token verifies for the console client");
    assert_eq!(person.subject, "rene");
    assert_eq!(person.claims["nonce"], "n0nce");
    assert_eq!(
        auth.verify_id_token(&id, idp.issuer(), "another-client")
            .await
            .err(),
        Some(AuthError::WrongAudience)
    );
    assert_eq!(
        auth.verify_id_token(&id, "http://127.0.0.1:9/other", "airlock-console")
            .await
            .err(),
        Some(AuthError::UnknownIssuer),
        "only the login's own issuer"
    );
    // An ID token is not a bearer token for the API...
    assert_eq!(
        auth.verify_token(&id).await.err(),
        Some(AuthError::WrongAudience)
    );
    // ...and an access token is not an ID token.
    assert_eq!(
        auth.verify_id_token(&access, idp.issuer(), "airlock-console")
            .await
            .err(),
        Some(AuthError::WrongAudience)
    );
    let forged = {
        let (rest, signature) = id.rsplit_once('.').expect("a JWS");
        let (header, _) = rest.split_once('.').expect("a JWS");
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"{}","sub":"ada","aud":"airlock-console","exp":9999999999,"nonce":"n0nce"}}"#,
            idp.issuer()
        ));
        format!("{header}.{claims}.{signature}")
    };
    assert_eq!(
        auth.verify_id_token(&forged, idp.issuer(), "airlock-console")
            .await
            .err(),
        Some(AuthError::BadSignature)
    );
    assert_eq!(auth.cached_tokens(), 0, "ID tokens are never cached");
}
