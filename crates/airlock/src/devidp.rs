//! The development identity provider of `airlock demo`: discovery, a JWKS
//! and a client-credentials token endpoint, with one client per built-in
//! role and an `agent` client. It signs real ES256 tokens with a key made at
//! start-up, so the demo exercises the same verification as production.
//!
//! It exists only in demo mode: `serve` never mounts it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::identity::{IssuerConfig, KeySet};

/// Where the provider is mounted on Airlock's own listener.
pub const MOUNT: &str = "/demo-idp";

/// The audience of its tokens (Airlock's).
pub const AUDIENCE: &str = "airlock";

/// How long its tokens live.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The demo clients: client id (= secret prefix) and the IdP role it carries.
pub const CLIENTS: [(&str, &str); 6] = [
    ("reader", "reader"),
    ("runner", "runner"),
    ("editor", "editor"),
    ("admin", "admin"),
    ("auditor", "auditor"),
    // An AI agent: may read and sync, nothing destructive.
    ("agent", "runner"),
];

/// The provider: its signing key and its published key set.
#[derive(Clone)]
pub struct DevIdp {
    issuer: String,
    kid: String,
    key: Arc<EncodingKey>,
    jwks: Value,
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

    /// How Airlock trusts it: ES256 only, audience [`AUDIENCE`].
    pub fn issuer_config(&self) -> IssuerConfig {
        let mut config = IssuerConfig::new(self.issuer.clone(), &[AUDIENCE]);
        config.algorithms = vec![crate::identity::SigningAlgorithm::Es256];
        config.allow_insecure_http = true;
        config
    }

    /// A signed access token for a demo client.
    pub fn token_for(&self, client_id: &str) -> Option<String> {
        let (_, role) = CLIENTS.iter().find(|(id, _)| *id == client_id)?;
        let now = crate::store::now_ms() / 1000;
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
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).ok()
    }

    /// Its routes, to nest under [`MOUNT`].
    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .with_state(self.clone())
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
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
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
