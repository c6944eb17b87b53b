//! The development identity provider of `airlock demo`: discovery, a JWKS
//! and a token endpoint, with one client per built-in role and an `agent`
//! client (client credentials), and a login page for the web console that
//! lists one demo person per role (authorization code with PKCE S256). It
//! signs real ES256 tokens with a key made at start-up, so the demo
//! exercises the same verification as production.
//!
//! It exists only in demo mode: `serve` never mounts it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};

use airlock_domain::identity::{IssuerConfig, KeySet};

/// Where the provider is mounted on Airlock's own listener.
pub const MOUNT: &str = "/demo-idp";

/// The audience of its tokens (Airlock's).
pub const AUDIENCE: &str = "airlock";

/// How long its tokens live.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The demo clients: client id (= secret prefix) and the IdP role it carries.
pub const CLIENTS: [(&str, &str); 7] = [
    ("reader", "reader"),
    ("runner", "runner"),
    ("editor", "editor"),
    ("admin", "admin"),
    ("auditor", "auditor"),
    // The second pair of eyes: decides others' resets.
    ("approver", "approver"),
    // An AI agent: may read and sync, nothing destructive.
    ("agent", "runner"),
];

/// The web console's client at this provider (public: PKCE, no secret).
pub const CONSOLE_CLIENT_ID: &str = "airlock-console";

/// The people of the console's login page: subject, the IdP role they
/// carry, and their name.
pub const USERS: [(&str, &str, &str); 6] = [
    ("rosa", "reader", "Rosa Reader"),
    ("rene", "runner", "Rene Runner"),
    ("edda", "editor", "Edda Editor"),
    ("ada", "admin", "Ada Admin"),
    ("otto", "auditor", "Otto Auditor"),
    ("april", "approver", "April Approver"),
];

/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME_MS: i64 = 60_000;

/// An authorization code waiting for its exchange.
#[derive(Debug, Clone)]
struct PendingCode {
    user: &'static str,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: String,
    expires_at: i64,
}

/// The provider: its signing key and its published key set.
#[derive(Clone)]
pub struct DevIdp {
    issuer: String,
    kid: String,
    key: Arc<EncodingKey>,
    jwks: Value,
    /// Authorization codes not yet exchanged (one use each).
    codes: Arc<Mutex<HashMap<String, PendingCode>>>,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What can go wrong making the provider's key.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the demo signing key: {0}")]
pub struct DevIdpError(String);

impl DevIdp {
    /// A provider whose issuer is `base_url` + [`MOUNT`], with a fresh key.
    pub fn new(base_url: &str) -> Result<Self, DevIdpError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| DevIdpError(e.to_string()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|e| DevIdpError(e.to_string()))?;
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(DevIdpError("unexpected public key size".into()));
        }
        let kid = format!("demo-{}", &URL_SAFE_NO_PAD.encode(&point[1..9]));
        let jwks = json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }]});
        Ok(Self {
            issuer: format!("{}{MOUNT}", base_url.trim_end_matches('/')),
            kid,
            key: Arc::new(EncodingKey::from_ec_der(pkcs8.as_ref())),
            jwks,
            codes: Arc::default(),
        })
    }

    /// The issuer URL its tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Its public keys, for Airlock's verifier (no HTTP round trip needed).
    pub fn key_set(&self) -> KeySet {
        // The document is built above from a valid key: it always parses.
        KeySet::from_jwks(&self.jwks).unwrap_or_default()
    }

    /// How Airlock trusts it: ES256 only, audience [`AUDIENCE`]; the
    /// console signs in with [`CONSOLE_CLIENT_ID`].
    pub fn issuer_config(&self) -> IssuerConfig {
        let mut config = IssuerConfig::new(self.issuer.clone(), &[AUDIENCE]);
        config.algorithms = Some(vec![airlock_domain::identity::SigningAlgorithm::Es256]);
        config.allow_insecure_http = true;
        config.console_client_id = Some(CONSOLE_CLIENT_ID.to_owned());
        config
    }

    fn sign(&self, claims: &Value) -> Option<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).ok()
    }

    /// A person's access token (for Airlock) and ID token (for the
    /// console), as the code exchange returns them.
    pub fn user_tokens(&self, user: &str, nonce: Option<&str>) -> Option<(String, String)> {
        let (sub, role, name) = USERS.iter().find(|(sub, _, _)| *sub == user)?;
        let now = airlock_store::now_ms() / 1000;
        let lifetime = i64::try_from(TOKEN_LIFETIME.as_secs()).unwrap_or(3600);
        let email = format!("{sub}@demo.airlock.example");
        let access = json!({
            "iss": self.issuer, "sub": sub, "aud": AUDIENCE,
            "iat": now, "nbf": now, "exp": now + lifetime,
            "client_id": CONSOLE_CLIENT_ID, "scope": "openid profile email",
            "roles": [role], "name": name, "email": email,
        });
        let mut id = json!({
            "iss": self.issuer, "sub": sub, "aud": CONSOLE_CLIENT_ID, "azp": CONSOLE_CLIENT_ID,
            "iat": now, "exp": now + lifetime, "auth_time": now,
            "roles": [role], "name": name, "email": email,
        });
        if let Some(nonce) = nonce {
            id["nonce"] = json!(nonce);
        }
        Some((self.sign(&access)?, self.sign(&id)?))
    }

    /// A signed access token for a demo client.
    pub fn token_for(&self, client_id: &str) -> Option<String> {
        let (_, role) = CLIENTS.iter().find(|(id, _)| *id == client_id)?;
        let now = airlock_store::now_ms() / 1000;
        let lifetime = i64::try_from(TOKEN_LIFETIME.as_secs()).unwrap_or(3600);
        let claims = json!({
            "iss": self.issuer,
            "sub": client_id,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "client_id": client_id,
            "roles": [role],
            "name": format!("demo {client_id}"),
        });
        self.sign(&claims)
    }

    /// Its routes, to nest under [`MOUNT`].
    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/authorize", get(login_page).post(authorize))
            .with_state(self.clone())
    }

    fn codes(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingCode>> {
        self.codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where codes may be sent: a console callback on this provider's host
    /// or on loopback.
    fn redirect_allowed(&self, redirect_uri: &str) -> bool {
        let host_of = |url: &str| {
            url.split_once("://")
                .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
                .map(|authority| {
                    authority
                        .rsplit_once(':')
                        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                        .map_or(authority, |(host, _)| host)
                        .to_owned()
                })
        };
        let Some(host) = host_of(redirect_uri) else {
            return false;
        };
        let path_ok = redirect_uri
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            == Some("/console/callback");
        let scheme_ok = redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://");
        scheme_ok
            && path_ok
            && (["127.0.0.1", "localhost", "[::1]"].contains(&host.as_str())
                || host_of(&self.issuer).as_deref() == Some(host.as_str()))
    }
}

/// The secret of a demo client: `<client>-secret`. Printed in the banner.
pub fn secret_of(client_id: &str) -> String {
    format!("{client_id}-secret")
}

async fn discovery(State(idp): State<DevIdp>) -> Json<Value> {
    Json(json!({
        "issuer": idp.issuer,
        "jwks_uri": format!("{}/jwks", idp.issuer),
        "token_endpoint": format!("{}/token", idp.issuer),
        "authorization_endpoint": format!("{}/authorize", idp.issuer),
        "grant_types_supported": ["client_credentials", "authorization_code"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email"],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

/// The parameters of an authorization request (the page's hidden fields,
/// posted back with the chosen person).
#[derive(Debug, Deserialize)]
struct AuthorizeRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    /// The chosen person (the form's button).
    user: Option<String>,
}

impl AuthorizeRequest {
    /// The checks of an authorization request; the reason it fails.
    fn check(&self, idp: &DevIdp) -> Result<(), &'static str> {
        if self.response_type.as_deref() != Some("code") {
            return Err("response_type must be code");
        }
        if self.client_id.as_deref() != Some(CONSOLE_CLIENT_ID) {
            return Err("unknown client_id");
        }
        if !self
            .redirect_uri
            .as_deref()
            .is_some_and(|r| idp.redirect_allowed(r))
        {
            return Err("redirect_uri is not a console callback");
        }
        if self.code_challenge_method.as_deref() != Some("S256")
            || self.code_challenge.as_deref().is_none_or(str::is_empty)
        {
            return Err("PKCE with S256 is required");
        }
        Ok(())
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A page of this provider, with a CSP of its own (one inline stylesheet).
fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Demo identity provider</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1e24}\
main{max-width:28rem;margin:3rem auto;padding:1.5rem;background:#fff;border-radius:8px;\
box-shadow:0 1px 3px #0002}h1{font-size:1.3rem;margin:0 0 .5rem}p{margin:0 0 1rem;color:#3d4350}\
ul{list-style:none;padding:0;margin:0}li{margin:.5rem 0}button{width:100%;text-align:left;\
font:inherit;padding:.7rem 1rem;border:1px solid #8a93a3;border-radius:6px;background:#fff;\
color:#1b1e24;cursor:pointer}button:hover{background:#eef1f6}button:focus-visible{outline:3px solid \
#1f5fbf;outline-offset:2px}.role{float:right;color:#3d4350}";

/// `GET /authorize`: the login page, one button per demo person.
async fn login_page(
    State(idp): State<DevIdp>,
    Query(request): Query<AuthorizeRequest>,
) -> Response {
    if let Err(reason) = request.check(&idp) {
        return page(
            StatusCode::BAD_REQUEST,
            &format!("<h1>Cannot sign in</h1><p>{}</p>", escape(reason)),
        );
    }
    let hidden: String = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("state", &request.state),
        ("nonce", &request.nonce),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
        ("scope", &request.scope),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value.as_ref().map(|v| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(v)
            )
        })
    })
    .collect();
    let buttons: String = USERS
        .iter()
        .map(|(sub, role, name)| {
            format!(
                "<li><button type=\"submit\" name=\"user\" value=\"{sub}\">{name} \
                 <span class=\"role\">{role}</span></button></li>"
            )
        })
        .collect();
    page(
        StatusCode::OK,
        &format!(
            "<h1>Demo identity provider</h1><p>Sign in to Airlock's console as one of the demo \
             people (one per role).</p><form method=\"post\" action=\"{}/authorize\">{hidden}\
             <ul>{buttons}</ul></form>",
            escape(&idp.issuer)
        ),
    )
}

/// `POST /authorize`: the chosen person; back to the console with a code.
async fn authorize(State(idp): State<DevIdp>, body: axum::body::Bytes) -> Response {
    let pairs: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| pairs.get(name).cloned();
    let request = AuthorizeRequest {
        response_type: field("response_type"),
        client_id: field("client_id"),
        redirect_uri: field("redirect_uri"),
        state: field("state"),
        nonce: field("nonce"),
        code_challenge: field("code_challenge"),
        code_challenge_method: field("code_challenge_method"),
        scope: field("scope"),
        user: field("user"),
    };
    if let Err(reason) = request.check(&idp) {
        return page(
            StatusCode::BAD_REQUEST,
            &format!("<h1>Cannot sign in</h1><p>{}</p>", escape(reason)),
        );
    }
    let Some(user) = USERS
        .iter()
        .map(|(sub, _, _)| *sub)
        .find(|sub| request.user.as_deref() == Some(*sub))
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "<h1>Cannot sign in</h1><p>Pick one of the demo people.</p>",
        );
    };
    let redirect_uri = request.redirect_uri.unwrap_or_default();
    let code = crate::web::session::new_secret();
    let now = airlock_store::now_ms();
    {
        let mut codes = idp.codes();
        codes.retain(|_, pending| pending.expires_at > now);
        codes.insert(
            code.clone(),
            PendingCode {
                user,
                redirect_uri: redirect_uri.clone(),
                nonce: request.nonce,
                challenge: request.code_challenge.unwrap_or_default(),
                expires_at: now + CODE_LIFETIME_MS,
            },
        );
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("code", &code);
    if let Some(state) = &request.state {
        query.append_pair("state", state);
    }
    let location = format!("{redirect_uri}?{}", query.finish());
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The code exchange: the code (one use, a minute), its redirect URI and
/// the PKCE verifier whose S256 hash the login carried.
fn exchange_code(idp: &DevIdp, pairs: &BTreeMap<String, String>) -> Response {
    let error =
        |status: StatusCode, code: &str| (status, Json(json!({"error": code}))).into_response();
    if pairs.get("client_id").map(String::as_str) != Some(CONSOLE_CLIENT_ID) {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(pending) = pairs.get("code").and_then(|code| idp.codes().remove(code)) else {
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = pairs.get("code_verifier").map_or("", String::as_str);
    let challenge = URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    if pending.expires_at <= airlock_store::now_ms()
        || pairs.get("redirect_uri") != Some(&pending.redirect_uri)
        || challenge != pending.challenge
    {
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    match idp.user_tokens(pending.user, pending.nonce.as_deref()) {
        Some((access, id)) => Json(json!({
            "access_token": access,
            "id_token": id,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
            "scope": "openid profile email",
        }))
        .into_response(),
        None => error(StatusCode::BAD_REQUEST, "invalid_grant"),
    }
}

async fn jwks(State(idp): State<DevIdp>) -> Json<Value> {
    Json(idp.jwks.clone())
}

/// A token request, as a form or JSON.
#[derive(Debug, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(
    State(idp): State<DevIdp>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Option<TokenRequest> = if is_json {
        serde_json::from_slice(&body).ok()
    } else {
        let pairs: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
        if pairs.get("grant_type").map(String::as_str) == Some("authorization_code") {
            return exchange_code(&idp, &pairs);
        }
        Some(TokenRequest {
            grant_type: pairs.get("grant_type").cloned(),
            client_id: pairs.get("client_id").cloned(),
            client_secret: pairs.get("client_secret").cloned(),
        })
    };
    let error =
        |status: StatusCode, code: &str| (status, Json(json!({"error": code}))).into_response();
    let Some(request) = parsed else {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if request
        .grant_type
        .as_deref()
        .is_some_and(|g| g != "client_credentials")
    {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let (Some(id), Some(secret)) = (request.client_id, request.client_secret) else {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    if secret != secret_of(&id) {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match idp.token_for(&id) {
        Some(token) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
        }))
        .into_response(),
        None => error(StatusCode::UNAUTHORIZED, "invalid_client"),
    }
}
