//! The identity provider's token endpoint: where the front exchanges the
//! client credentials of callers that are not service accounts
//! (`[front] token_issuer`, or the only issuer). The secret goes only to an
//! https endpoint (or http on loopback); it is never logged.

use std::sync::Mutex;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::config::{FrontSetup, TokenAuthMethod};
use super::error::FrontError;
use super::token::{Credentials, INVALID_CREDENTIALS};
use airlock_domain::identity::IssuerConfig;

/// Where callers' credentials are exchanged: one configured issuer.
#[derive(Debug)]
pub(crate) struct Exchange {
    issuer: IssuerConfig,
    audience: Option<String>,
    scope: Option<String>,
    method: TokenAuthMethod,
    /// The discovered token endpoint, once known.
    discovered: Mutex<Option<String>>,
}

impl Exchange {
    /// The exchange `setup` asks for: `[front] token_issuer`, or the only
    /// issuer. `None` when there is no issuer to forward to.
    pub(crate) fn from_config(setup: &FrontSetup<'_>) -> Option<Self> {
        let front = setup.front;
        let issuer = match &front.token_issuer {
            Some(name) => setup.issuers.iter().find(|i| &i.issuer == name)?,
            None => match setup.issuers {
                [only] => only,
                [] => return None,
                _ => {
                    tracing::warn!(
                        "several [[issuers]] and no [front] token_issuer: client credentials of non-service accounts are refused"
                    );
                    return None;
                }
            },
        };
        Some(Self {
            audience: front
                .token_audience
                .clone()
                .or_else(|| issuer.audiences.first().cloned()),
            scope: front.token_scope.clone(),
            method: front.token_auth_method,
            issuer: issuer.clone(),
            discovered: Mutex::new(None),
        })
    }

    async fn endpoint(&self, http: &reqwest::Client) -> Result<String, FrontError> {
        if let Some(url) = &self.issuer.token_endpoint {
            return Ok(url.clone());
        }
        if let Some(url) = self
            .discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(url);
        }
        let found = airlock_domain::identity::discover(
            http,
            &self.issuer.issuer,
            self.issuer.allow_insecure_http,
        )
        .await
        .map_err(|error| {
            tracing::warn!(error = %error, issuer = %self.issuer.issuer, "cannot discover the token endpoint");
            FrontError::BadGateway("the identity provider")
        })?;
        let Some(url) = found.token_endpoint else {
            tracing::warn!(issuer = %self.issuer.issuer, "the discovery document names no token_endpoint");
            return Err(FrontError::BadGateway("the identity provider"));
        };
        if !secure_enough(&url, self.issuer.allow_insecure_http) {
            tracing::warn!(issuer = %self.issuer.issuer, "the discovered token_endpoint is not https");
            return Err(FrontError::BadGateway("the identity provider"));
        }
        *self
            .discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(url.clone());
        Ok(url)
    }

    /// Asks the identity provider for a token with the caller's
    /// credentials; returns the token and its lifetime in seconds.
    pub(crate) async fn exchange(
        &self,
        http: &reqwest::Client,
        credentials: &Credentials,
        now_ms: i64,
    ) -> Result<(SecretString, u64), FrontError> {
        let endpoint = self.endpoint(http).await?;
        let mut form = self.token_form();
        let request = http
            .post(&endpoint)
            .header(reqwest::header::ACCEPT, "application/json");
        let request = self.authenticate(request, &mut form, credentials);
        let (status, body) = self.send(request, &form).await?;
        self.check_status(status, &body, credentials)?;
        self.issued_token(&body, now_ms)
    }

    /// The token request's form, without the client's credentials.
    fn token_form(&self) -> Vec<(&str, &str)> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(audience) = &self.audience {
            form.push(("audience", audience));
            // RFC 8707 wants an absolute URI; a bare name would be refused.
            if audience.contains(':') {
                form.push(("resource", audience));
            }
        }
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        form
    }

    /// Adds the caller's credentials the way the provider wants them: as
    /// HTTP Basic on `request`, or in `form`.
    fn authenticate<'a>(
        &self,
        mut request: reqwest::RequestBuilder,
        form: &mut Vec<(&'a str, &'a str)>,
        credentials: &'a Credentials,
    ) -> reqwest::RequestBuilder {
        let secret = credentials.client_secret.expose_secret();
        match self.method {
            TokenAuthMethod::ClientSecretBasic => {
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", encode(&credentials.client_id), encode(secret));
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            TokenAuthMethod::ClientSecretPost => {
                form.push(("client_id", &credentials.client_id));
                form.push(("client_secret", secret));
            }
        }
        request
    }

    /// Sends the token request with `form`; the answer's status and its
    /// JSON body (`null` when it is not JSON).
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        form: &[(&str, &str)],
    ) -> Result<(StatusCode, Value), FrontError> {
        let response = request.form(form).send().await.map_err(|error| {
            tracing::warn!(error = %error.without_url(), issuer = %self.issuer.issuer, "token endpoint unreachable");
            FrontError::BadGateway("the identity provider")
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            tracing::warn!(error = %error.without_url(), "token endpoint answer lost");
            FrontError::BadGateway("the identity provider")
        })?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Refuses the exchange unless the provider answered with success: a
    /// 400 or 401 refused the caller's credentials, anything else is the
    /// provider's failure.
    fn check_status(
        &self,
        status: StatusCode,
        body: &Value,
        credentials: &Credentials,
    ) -> Result<(), FrontError> {
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
            // The provider's error code says why (invalid_client,
            // invalid_target, ...); the caller only learns it failed.
            let code: String = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            tracing::info!(
                client_id = %credentials.client_id,
                status = status.as_u16(),
                error = %code,
                "the identity provider refused the client credentials"
            );
            return Err(FrontError::BadRequest(INVALID_CREDENTIALS.to_owned()));
        }
        if !status.is_success() {
            tracing::warn!(status = status.as_u16(), issuer = %self.issuer.issuer, "token endpoint failed");
            return Err(FrontError::BadGateway("the identity provider"));
        }
        Ok(())
    }

    /// The bearer token of a successful answer and its lifetime in seconds
    /// (`expires_in`, else the token's own `exp`, else 300).
    fn issued_token(&self, body: &Value, now_ms: i64) -> Result<(SecretString, u64), FrontError> {
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                tracing::warn!(issuer = %self.issuer.issuer, "the token endpoint answered no access_token");
                FrontError::BadGateway("the identity provider")
            })?;
        if let Some(kind) = body.get("token_type").and_then(Value::as_str)
            && !kind.eq_ignore_ascii_case("bearer")
        {
            tracing::warn!(
                token_type = kind,
                "the identity provider issued a non-bearer token"
            );
            return Err(FrontError::BadGateway("the identity provider"));
        }
        let expires_in = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .or_else(|| lifetime_from_jwt(token, now_ms))
        .unwrap_or(300);
        Ok((SecretString::from(token.to_owned()), expires_in))
    }
}

/// Whether client secrets may be sent to `url`: https, or http on a
/// loopback host (or anywhere, when the issuer allows insecure http).
fn secure_enough(url: &str, allow_insecure_http: bool) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    allow_insecure_http || matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// `exp` minus now, from a JWT's (unverified) payload, for providers that
/// leave `expires_in` out.
fn lifetime_from_jwt(token: &str, now_ms: i64) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    u64::try_from(exp - now_ms.div_euclid(1000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_lifetime_is_read_when_expires_in_is_missing() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1300}"#);
        assert_eq!(
            lifetime_from_jwt(&format!("h.{payload}.s"), 1_000_000),
            Some(300)
        );
        assert_eq!(lifetime_from_jwt("opaque", 0), None);
    }

    #[test]
    fn secrets_go_only_to_https_or_loopback() {
        assert!(secure_enough("https://idp.example/token", false));
        assert!(secure_enough("http://127.0.0.1:8080/token", false));
        assert!(!secure_enough("http://idp.example/token", false));
        assert!(secure_enough("http://idp.example/token", true));
        assert!(!secure_enough("ftp://idp.example/token", true));
    }
}
