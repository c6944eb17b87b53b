//! The console's side of OpenID Connect: the authorization code flow with
//! PKCE (RFC 7636, S256), `state` and `nonce`, against one configured
//! issuer's console client.
//!
//! The issuer's endpoints come from its discovery document (fetched on the
//! first login, then kept); the code is exchanged at its token endpoint
//! with the PKCE verifier. Verifying what comes back is the
//! `Authenticator`'s job (see `super::login`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use tokio::sync::Mutex;

use airlock_domain::identity::IssuerConfig;
use airlock_domain::secret::Secret;

/// What can go wrong talking to the identity provider. Messages name
/// endpoints, never codes, tokens or secrets.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot discover the issuer's endpoints: {0}")]
    Discovery(String),
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the token endpoint refused the code ({status}{})", .error.as_deref().map(|e| format!(", {e}")).unwrap_or_default())]
    Refused { status: u16, error: Option<String> },
    #[error("the token endpoint's answer is not a token response")]
    Malformed,
}

/// The S256 challenge of a PKCE verifier: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// The issuer's endpoints the console uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
}

/// One issuer's console client: its settings and, once discovered, its
/// endpoints.
pub struct Client {
    /// The configured issuer (its `iss`).
    pub issuer: String,
    /// What the login page shows: the issuer's host.
    pub label: String,
    pub client_id: String,
    secret: Option<Secret>,
    pub scope: String,
    pub resource: Option<String>,
    pub audience: Option<String>,
    token_endpoint: Option<String>,
    allow_insecure_http: bool,
    endpoints: Mutex<Option<Endpoints>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("confidential", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// The parameters of one authorization request.
#[derive(Debug)]
pub struct Authorize<'a> {
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_verifier: &'a str,
}

/// The token endpoint's answer (RFC 6749 5.1; OpenID Connect Core 3.1.3.3).
#[derive(Deserialize)]
pub struct Tokens {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Client {
    /// The console client of `issuer`, when it has one; `secret` is its
    /// resolved `console_client_secret`.
    pub fn of(issuer: &IssuerConfig, secret: Option<Secret>) -> Option<Self> {
        let client_id = issuer.console_client_id.clone()?;
        let label = issuer
            .issuer
            .split_once("://")
            .map_or(issuer.issuer.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .to_owned();
        Some(Self {
            issuer: issuer.issuer.clone(),
            label,
            client_id,
            secret,
            scope: issuer.console_scope().to_owned(),
            resource: issuer.console_resource.clone(),
            audience: issuer.console_audience.clone(),
            token_endpoint: issuer.token_endpoint.clone(),
            allow_insecure_http: issuer.allow_insecure_http,
            endpoints: Mutex::new(None),
        })
    }

    /// The authorization and token endpoints: discovered once, then kept
    /// (a failed discovery is tried again on the next login).
    pub async fn endpoints(&self, http: &reqwest::Client) -> Result<Endpoints, OidcError> {
        let mut known = self.endpoints.lock().await;
        if let Some(endpoints) = known.as_ref() {
            return Ok(endpoints.clone());
        }
        let found =
            airlock_domain::identity::discover(http, &self.issuer, self.allow_insecure_http)
                .await
                .map_err(|e| OidcError::Discovery(e.to_string()))?;
        let authorization = found.authorization_endpoint.ok_or_else(|| {
            OidcError::Discovery("the discovery document names no authorization_endpoint".into())
        })?;
        let token = self
            .token_endpoint
            .clone()
            .or(found.token_endpoint)
            .ok_or_else(|| {
                OidcError::Discovery("the discovery document names no token_endpoint".into())
            })?;
        for url in [&authorization, &token] {
            airlock_domain::identity::check_url(url, self.allow_insecure_http)
                .map_err(OidcError::Discovery)?;
        }
        let endpoints = Endpoints {
            authorization,
            token,
        };
        *known = Some(endpoints.clone());
        Ok(endpoints)
    }

    /// Where to send the browser: the authorization endpoint with the
    /// code flow's parameters, PKCE S256, `state` and `nonce`.
    pub fn authorization_url(&self, endpoint: &str, request: &Authorize<'_>) -> String {
        let challenge = pkce_challenge(request.code_verifier);
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", request.redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", request.state)
            .append_pair("nonce", request.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(resource) = &self.resource {
            query.append_pair("resource", resource);
        }
        if let Some(audience) = &self.audience {
            query.append_pair("audience", audience);
        }
        let separator = if endpoint.contains('?') { '&' } else { '?' };
        format!("{endpoint}{separator}{}", query.finish())
    }

    /// Exchanges `code` at the token endpoint, proving the login with the
    /// PKCE verifier; the client authenticates with its secret (HTTP basic)
    /// when it has one, or names itself (a public client).
    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        token_endpoint: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<Tokens, OidcError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        if let Some(resource) = &self.resource {
            form.push(("resource", resource));
        }
        let mut request = http
            .post(token_endpoint)
            .header("accept", "application/json");
        match &self.secret {
            Some(secret) => {
                // RFC 6749 2.3.1: both parts form-encoded before basic auth.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request =
                    request.basic_auth(encode(&self.client_id), Some(encode(secret.expose())));
            }
            None => form.push(("client_id", &self.client_id)),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| OidcError::Unreachable(e.without_url().to_string()))?;
        if !status.is_success() {
            // The `error` code only (RFC 6749 5.2): descriptions may echo input.
            let error = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(short_code));
            return Err(OidcError::Refused {
                status: status.as_u16(),
                error,
            });
        }
        serde_json::from_slice(&body).map_err(|_| OidcError::Malformed)
    }
}

/// An error code as far as it is a short identifier (log-safe).
fn short_code(code: &str) -> String {
    code.chars()
        .take(64)
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The HTTP client for identity providers: bounded time, no redirects
/// (a token endpoint answers itself).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    fn client() -> Client {
        let mut issuer = IssuerConfig::new("https://id.example.com/realms/x", &["airlock"]);
        issuer.console_client_id = Some("airlock console".into());
        issuer.console_resource = Some("urn:airlock".into());
        Client::of(&issuer, None).expect("a console client")
    }

    #[test]
    fn the_authorization_url_carries_pkce_state_and_nonce() {
        let c = client();
        assert_eq!(c.label, "id.example.com/realms/x");
        let url = c.authorization_url(
            "https://id.example.com/auth",
            &Authorize {
                redirect_uri: "https://airlock.example/console/callback",
                state: "st&te",
                nonce: "n0nce",
                code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            },
        );
        let (base, query) = url.split_once('?').expect("a query");
        assert_eq!(base, "https://id.example.com/auth");
        let pairs: std::collections::HashMap<String, String> =
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(pairs["response_type"], "code");
        assert_eq!(pairs["client_id"], "airlock console");
        assert_eq!(
            pairs["redirect_uri"],
            "https://airlock.example/console/callback"
        );
        assert_eq!(pairs["scope"], "openid profile email");
        assert_eq!(pairs["state"], "st&te", "encoded, not split");
        assert_eq!(pairs["nonce"], "n0nce");
        assert_eq!(
            pairs["code_challenge"],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["resource"], "urn:airlock");
        assert!(!pairs.contains_key("audience"));
        assert!(
            !query.contains("dBjftJeZ"),
            "the verifier never leaves Airlock"
        );

        let with_query = c.authorization_url(
            "https://id.example.com/auth?tenant=t",
            &Authorize {
                redirect_uri: "r",
                state: "s",
                nonce: "n",
                code_verifier: "v",
            },
        );
        assert!(with_query.starts_with("https://id.example.com/auth?tenant=t&response_type=code"));
    }

    #[test]
    fn only_issuers_with_a_console_client_are_offered() {
        let plain = IssuerConfig::new("https://a.example", &["airlock"]);
        assert!(Client::of(&plain, None).is_none());
        let mut console = IssuerConfig::new("https://b.example", &["airlock"]);
        console.console_client_id = Some("c".into());
        let client = Client::of(&console, Some(Secret::new("hunter2"))).expect("a client");
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
