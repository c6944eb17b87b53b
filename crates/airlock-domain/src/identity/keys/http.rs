//! Keys over HTTP: the discovery document and the JWKS endpoint of an
//! issuer ([`HttpKeySource`]).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::super::config::{IssuerConfig, SigningAlgorithm, check_url};
use super::{KeyFuture, KeySet, KeySource, KeySourceError};

/// The largest discovery document or key set read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// How long one fetch from a provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of an OpenID Provider's discovery document Airlock uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The issuer, as the document states it (checked equal to the
    /// configured one).
    pub issuer: String,
    /// Where its key set lives.
    pub jwks_uri: String,
    /// Where clients get tokens, for the token exchange.
    pub token_endpoint: Option<String>,
    /// Where browsers sign in (the console's login).
    pub authorization_endpoint: Option<String>,
    /// The asymmetric algorithms of `id_token_signing_alg_values_supported`
    /// (HMAC, `none` and unknown names left out); `None` when it lists none.
    pub signing_algorithms: Option<Vec<SigningAlgorithm>>,
}

/// The asymmetric algorithms a discovery document advertises, if any.
fn advertised_algorithms(document: &Value) -> Option<Vec<SigningAlgorithm>> {
    let names = document
        .get("id_token_signing_alg_values_supported")?
        .as_array()?;
    let algorithms: Vec<SigningAlgorithm> = names
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|name| SigningAlgorithm::try_from(name.to_owned()).ok())
        .collect();
    (!algorithms.is_empty()).then_some(algorithms)
}

/// Reads `{issuer}/.well-known/openid-configuration` and checks that it
/// describes `issuer` (OpenID Connect Discovery 1.0, section 4.3).
pub async fn discover(
    client: &reqwest::Client,
    issuer: &str,
    allow_insecure_http: bool,
) -> Result<Discovery, KeySourceError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let document = get_json(client, &url).await?;
    let invalid = |reason: &str| KeySourceError::Invalid {
        url: url.clone(),
        reason: reason.to_owned(),
    };
    let stated = document
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no issuer in the discovery document"))?;
    if stated != issuer {
        return Err(invalid("the discovery document names another issuer"));
    }
    let jwks_uri = document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no jwks_uri in the discovery document"))?;
    check_url(jwks_uri, allow_insecure_http).map_err(|m| invalid(&m))?;
    let token_endpoint = document
        .get("token_endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let authorization_endpoint = document
        .get("authorization_endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Discovery {
        issuer: stated.to_owned(),
        jwks_uri: jwks_uri.to_owned(),
        token_endpoint,
        authorization_endpoint,
        signing_algorithms: advertised_algorithms(&document),
    })
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, KeySourceError> {
    let unreachable = |e: reqwest::Error| KeySourceError::Unreachable {
        url: url.to_owned(),
        reason: e.without_url().to_string(),
    };
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(KeySourceError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let too_large = || KeySourceError::Invalid {
        url: url.to_owned(),
        reason: format!("larger than {MAX_DOCUMENT_BYTES} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| KeySourceError::Invalid {
        url: url.to_owned(),
        reason: "not JSON".to_owned(),
    })
}

/// An issuer's key set over HTTP: the configured `jwks_url`, or the
/// `jwks_uri` its discovery document names.
#[derive(Debug)]
pub struct HttpKeySource {
    client: reqwest::Client,
    issuer: String,
    jwks_url: Option<String>,
    allow_insecure_http: bool,
    /// The discovered `jwks_uri`, and the algorithms advertised with it.
    discovered: Mutex<Option<(String, Option<Vec<jsonwebtoken::Algorithm>>)>>,
}

impl HttpKeySource {
    /// The key source for one configured issuer.
    pub fn new(client: reqwest::Client, config: &IssuerConfig) -> Self {
        Self {
            client,
            issuer: config.issuer.clone(),
            jwks_url: config.jwks_url.clone(),
            allow_insecure_http: config.allow_insecure_http,
            discovered: Mutex::new(None),
        }
    }

    /// The key set's URL and the algorithms advertised with it: the
    /// configured `jwks_url` (nothing advertised), else discovery's (once).
    async fn jwks_location(
        &self,
    ) -> Result<(String, Option<Vec<jsonwebtoken::Algorithm>>), KeySourceError> {
        if let Some(url) = &self.jwks_url {
            return Ok((url.clone(), None));
        }
        let known = self
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(known) = known {
            return Ok(known);
        }
        let found = discover(&self.client, &self.issuer, self.allow_insecure_http).await?;
        let advertised = found
            .signing_algorithms
            .map(|list| list.into_iter().map(SigningAlgorithm::to_jwt).collect());
        let location = (found.jwks_uri, advertised);
        *self
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(location.clone());
        Ok(location)
    }

    async fn fetch_keys(&self) -> Result<KeySet, KeySourceError> {
        let (url, advertised) = self.jwks_location().await?;
        let result = match get_json(&self.client, &url).await {
            Ok(document) => KeySet::from_jwks(&document)
                .map(|keys| keys.with_advertised(advertised))
                .map_err(|e| KeySourceError::Invalid {
                    url: url.clone(),
                    reason: e.to_string(),
                }),
            Err(e) => Err(e),
        };
        if result.is_err() && self.jwks_url.is_none() {
            // The provider may have moved its key set: discover again next time.
            *self
                .discovered
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
        result
    }
}

impl KeySource for HttpKeySource {
    fn fetch(&self) -> KeyFuture<'_> {
        Box::pin(self.fetch_keys())
    }
}
