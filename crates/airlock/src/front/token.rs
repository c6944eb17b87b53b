//! `POST /applications/token` (also under `/v1` and `/api/public/v1`):
//! Airbyte's client-credentials exchange, answered with Airbyte's token
//! shape. Service accounts are checked first and get a token Airlock signs;
//! anyone else's credentials go to the identity provider's token endpoint.
//! Neither the secret nor the token is ever logged.

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::FrontState;
use super::error::{FrontError, json_response};
use super::secrets::Busy;
use crate::web::auth::{Unidentified, origin_of};
use crate::web::refusals;
use airlock_domain::audit;

/// What the message of a refused exchange says (Airbyte's words).
pub(super) const INVALID_CREDENTIALS: &str = "Invalid client credentials";

/// Client credentials as a caller presented them.
pub(crate) struct Credentials {
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A token request (JSON or form-urlencoded; the credentials may come as
/// HTTP Basic instead).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TokenRequest)]
pub(super) struct Fields {
    #[schema(nullable = false)]
    client_id: Option<String>,
    #[schema(nullable = false)]
    client_secret: Option<String>,
    #[schema(value_type = Option<GrantType>, nullable = false)]
    grant_type: Option<String>,
}

/// The only grant the token endpoints take (optional: Dagster sends none).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "it only describes the document")]
enum GrantType {
    #[schema(rename = "client_credentials")]
    ClientCredentials,
}

/// Reads a token request: JSON (Dagster) or a form (the SDK, Airflow),
/// with or without `grant_type`; credentials may also come as HTTP Basic.
pub(crate) fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<Credentials, FrontError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let as_form = || {
        let mut fields = Fields {
            client_id: None,
            client_secret: None,
            grant_type: None,
        };
        for (key, value) in form_urlencoded::parse(body) {
            match key.as_ref() {
                "client_id" => fields.client_id = Some(value.into_owned()),
                "client_secret" => fields.client_secret = Some(value.into_owned()),
                "grant_type" => fields.grant_type = Some(value.into_owned()),
                _ => {}
            }
        }
        fields
    };
    let unreadable = || FrontError::BadRequest("The request body could not be parsed".to_owned());
    let mut fields = if content_type.starts_with("application/x-www-form-urlencoded") {
        as_form()
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice::<Fields>(body).map_err(|_| unreadable())?
    } else {
        serde_json::from_slice::<Fields>(body).unwrap_or_else(|_| as_form())
    };
    if let Some(grant) = &fields.grant_type
        && grant != "client_credentials"
    {
        return Err(FrontError::BadRequest(
            "Unsupported grant_type: only client_credentials".to_owned(),
        ));
    }
    if fields.client_id.is_none()
        && fields.client_secret.is_none()
        && let Some((id, secret)) = basic_credentials(headers)
    {
        fields.client_id = Some(id);
        fields.client_secret = Some(secret);
    }
    match (fields.client_id, fields.client_secret) {
        (Some(client_id), Some(secret)) if !client_id.is_empty() && !secret.is_empty() => {
            Ok(Credentials {
                client_id,
                client_secret: SecretString::from(secret),
            })
        }
        _ => Err(FrontError::BadRequest(
            "client_id and client_secret are required".to_owned(),
        )),
    }
}

/// `Authorization: Basic` credentials (RFC 6749, section 2.3.1: each part
/// form-urlencoded before base64).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// A token, in Airbyte's shape.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = TokenResponse)]
pub(super) struct Issued<'a> {
    access_token: &'a str,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds.
    expires_in: u64,
}

/// Why a token request was refused, as the log and the audit trail say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// A service account's client id with the wrong secret.
    WrongSecret,
    /// Neither a service account nor an identity provider to ask.
    UnknownClient,
    /// The identity provider refused the credentials.
    RefusedByProvider,
    /// The address or the client id failed too often this window.
    Throttled,
    /// No turn to check the secret came in time.
    Busy,
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Self::WrongSecret => "wrong_secret",
            Self::UnknownClient => "unknown_client",
            Self::RefusedByProvider => "refused_by_provider",
            Self::Throttled => "throttled",
            Self::Busy => "busy",
        }
    }

    /// Counts towards the address's and the client id's throttle: the
    /// caller's own failures, not Airlock's refusals to try.
    fn charged(self) -> bool {
        matches!(
            self,
            Self::WrongSecret | Self::UnknownClient | Self::RefusedByProvider
        )
    }
}

/// One token request, for its refusals.
struct Attempt<'a> {
    state: &'a FrontState,
    origin: audit::Origin,
    client_id: &'a str,
    address: String,
    client: String,
}

impl<'a> Attempt<'a> {
    fn new(state: &'a FrontState, parts: &Parts, request_id: &str, client_id: &'a str) -> Self {
        let origin = origin_of(parts, request_id);
        Self {
            address: refusals::address_key(origin.source_ip.as_deref()),
            client: format!("client:{}", refusals::bounded(client_id)),
            state,
            origin,
            client_id,
        }
    }

    /// Whether the address or the client id failed too often this window.
    fn throttled(&self) -> bool {
        self.state.throttled(&self.address) || self.state.throttled(&self.client)
    }

    /// Logs and audits the refusal (counted per window); the caller's
    /// answer.
    async fn refuse(self, failure: Failure) -> FrontError {
        let reason = failure.reason();
        tracing::info!(
            request_id = self.origin.request_id.as_deref().unwrap_or(""),
            client_id = ?self.client_id,
            reason,
            "token request refused"
        );
        let status = if failure.charged() { "400" } else { "429" };
        let entry = Unidentified {
            channel: "front",
            action: "token",
            reason,
            status,
            detail: serde_json::json!({"client_id": refusals::bounded(self.client_id)}),
        }
        .entry(self.origin);
        let charged = [self.address.as_str(), self.client.as_str()];
        let charged: &[&str] = if failure.charged() { &charged } else { &[] };
        self.state
            .refused(entry, Some(self.client_id), charged)
            .await;
        if failure.charged() {
            FrontError::BadRequest(INVALID_CREDENTIALS.to_owned())
        } else {
            FrontError::RateLimited
        }
    }
}

/// The token endpoint. A service account's client id is Airlock's alone:
/// its secret is checked here (a secret that verified before is answered
/// without the hash), never tried at the identity provider; anyone else's
/// credentials go to the provider. An address or a client id that failed
/// too often this window is refused before any work; every refusal is
/// audited, counted per window.
pub(crate) async fn exchange(
    state: &FrontState,
    parts: &Parts,
    body: &Bytes,
    request_id: &str,
) -> Result<Response, FrontError> {
    let credentials = parse_request(&parts.headers, body)?;
    let client_id = credentials.client_id.as_str();
    let attempt = Attempt::new(state, parts, request_id, client_id);
    let front = state.front();
    let now = state.now_ms();
    let account = front.accounts().and_then(|a| a.get(client_id));
    let remembered = account.is_some()
        && front
            .secret_checks()
            .remembered(client_id, &credentials.client_secret);
    if !remembered && attempt.throttled() {
        return Err(attempt.refuse(Failure::Throttled).await);
    }
    let (token, expires_in) = if let Some(account) = account {
        if !remembered {
            let checked = front
                .secret_checks()
                .check(client_id, &account.hash, &credentials.client_secret)
                .await;
            match checked {
                Ok(true) => {}
                Ok(false) => return Err(attempt.refuse(Failure::WrongSecret).await),
                Err(Busy) => return Err(attempt.refuse(Failure::Busy).await),
            }
        }
        let accounts = front
            .accounts()
            .ok_or_else(|| anyhow::anyhow!("accounts vanished"))?;
        let (token, lifetime) = accounts
            .token_for(account, now)
            .ok_or_else(|| anyhow::anyhow!("cannot sign a service account token"))?;
        tracing::info!(request_id, client_id = ?client_id, "service account token issued");
        (SecretString::from(token), lifetime)
    } else if let Some(exchange) = front.exchange() {
        match exchange.exchange(front.http(), &credentials, now).await {
            Ok(issued) => {
                tracing::info!(request_id, client_id = ?client_id, "token exchanged at the identity provider");
                issued
            }
            Err(FrontError::BadRequest(_)) => {
                return Err(attempt.refuse(Failure::RefusedByProvider).await);
            }
            Err(error) => return Err(error),
        }
    } else {
        return Err(attempt.refuse(Failure::UnknownClient).await);
    };
    let body = Issued {
        access_token: token.expose_secret(),
        token_type: "Bearer",
        expires_in,
    };
    let body = serde_json::to_vec(&body).map_err(|e| FrontError::Internal(e.into()))?;
    let mut response = json_response(StatusCode::OK, body, None);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn form_json_and_basic_requests_are_read() {
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let c = parse_request(
            &form,
            b"grant_type=client_credentials&client_id=ci&client_secret=a%26b",
        )
        .expect("form");
        assert_eq!(c.client_id, "ci");
        assert_eq!(c.client_secret.expose_secret(), "a&b");

        let json_ct = headers(&[("content-type", "application/json")]);
        let c = parse_request(&json_ct, br#"{"client_id":"ci","client_secret":"s"}"#)
            .expect("json without grant_type");
        assert_eq!(c.client_id, "ci");

        let none = headers(&[]);
        assert!(parse_request(&none, br#"{"client_id":"ci","client_secret":"s"}"#).is_ok());
        assert!(parse_request(&none, b"client_id=ci&client_secret=s").is_ok());

        let basic = headers(&[(
            "authorization",
            &format!("Basic {}", STANDARD.encode("c%3Ai:s%3As")),
        )]);
        let c = parse_request(&basic, b"grant_type=client_credentials").expect("basic");
        assert_eq!(c.client_id, "c:i");
        assert_eq!(c.client_secret.expose_secret(), "s:s");
        assert!(!format!("{c:?}").contains("s:s"));
    }

    #[test]
    fn bad_requests_are_400s() {
        let json_ct = headers(&[("content-type", "application/json")]);
        for body in [
            &b"not json"[..],
            br#"{"client_id":"ci"}"#,
            br#"{"client_id":"","client_secret":"s"}"#,
            br#"{"client_id":"ci","client_secret":"s","grant_type":"password"}"#,
        ] {
            assert!(
                matches!(
                    parse_request(&json_ct, body),
                    Err(FrontError::BadRequest(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
