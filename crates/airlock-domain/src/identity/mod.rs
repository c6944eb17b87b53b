//! Identity: turns an `Authorization: Bearer` header into a verified
//! [`Principal`], or an [`AuthError`] whose [`code`](AuthError::code) goes
//! to the log and the audit trail (never to the caller).
//!
//! The flow in [`Authenticator::verify_token`]:
//! 1. refuse oversized tokens before parsing; answer from the verified-token
//!    cache when the token is known, alive and its key still current;
//! 2. take the JWS apart ([`token`]): strict base64url, strict JSON (no
//!    duplicate keys), an asymmetric `alg`, no `crit`, no nested JWT;
//! 3. pick the issuer by the (unverified) `iss` claim and check `alg`
//!    against *that* issuer's allow-list (without one: what its key can
//!    verify, among the algorithms its discovery advertises) and its
//!    required `typ`;
//! 4. find the key in *that* issuer's key set ([`keys`]), refetching on an
//!    unknown `kid` at most once per cooldown; keys in the token are ignored;
//! 5. verify the signature (`jsonwebtoken` with aws-lc), then `exp`, `nbf`,
//!    `iat` (with leeway, on the injected [`Clock`](crate::clock::Clock)) and `aud`;
//! 6. map the claims to a [`Principal`] with the issuer's preset.

mod cache;
mod claims;
mod config;
mod error;
mod keys;
mod overage;
mod principal;
mod token;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;

pub use cache::DEFAULT_CACHE_CAPACITY;
pub(crate) use claims::holds as claim_holds;
pub use claims::lookup as lookup_claim;
pub use config::check_url;
pub use config::{
    ClaimPaths, ClaimsConfig, DEFAULT_CONSOLE_SCOPE, DEFAULT_JWKS_REFRESH_SECS,
    DEFAULT_LEEWAY_SECS, DEFAULT_UNKNOWN_KID_COOLDOWN_SECS, IssuerConfig, KindRule, Preset,
    SigningAlgorithm, validate_issuers,
};
pub use error::{AuthError, IdentityError};
pub use keys::{
    Discovery, HttpKeySource, KeyFuture, KeySet, KeySetError, KeySource, KeySourceError, KeyStatus,
    StaticKeySource, VerifyingKey, discover,
};
pub use principal::{Principal, PrincipalKind};
pub use token::MAX_TOKEN_BYTES;

use crate::clock::Clock;
use cache::{TokenCache, token_hash};
use keys::{KeyCache, KeyLookup, Selection};
use overage::OverageWarnings;
use principal::ClaimMapping;

/// One configured issuer, ready to verify its tokens.
#[derive(Debug)]
struct Issuer {
    config: IssuerConfig,
    /// The configured allow-list; `None` lets the keys and discovery decide.
    algorithms: Option<Vec<Algorithm>>,
    mapping: ClaimMapping,
    keys: KeyCache,
}

impl Issuer {
    /// Whether `alg` (asymmetric: [`token::parse`] refuses the others) is
    /// in the configured allow-list; with none, the key decides (its JWK's
    /// `alg`, else its type) and then the advertised algorithms.
    fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms
            .as_ref()
            .is_none_or(|list| list.contains(&alg))
    }
}

/// Whether one issuer's keys are loaded, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerReadiness {
    /// The configured issuer.
    pub issuer: String,
    /// Its keys are loaded: its tokens can be verified.
    pub ready: bool,
    /// Details of its key cache.
    pub status: KeyStatus,
}

/// Verifies bearer tokens from the configured issuers. Built once from
/// configuration (rebuilt on reload) and shared by every request.
#[derive(Debug)]
pub struct Authenticator {
    issuers: Vec<Issuer>,
    /// `iss` value to index in `issuers` (Google's issuer has two spellings).
    by_iss: HashMap<String, usize>,
    cache: TokenCache,
    overage: OverageWarnings,
    clock: Arc<dyn Clock>,
}

/// The clock's time in whole Unix seconds, as JWT claims count.
fn unix_secs(clock: &dyn Clock) -> i64 {
    clock.now_ms().div_euclid(1000)
}

/// The `iss` values tokens from `config` may carry.
fn iss_values(config: &IssuerConfig) -> Vec<String> {
    let mut values = vec![config.issuer.clone()];
    if config.preset == Preset::Google {
        // Google ID tokens say either form.
        let bare = config.issuer.trim_start_matches("https://").to_owned();
        if bare == "accounts.google.com" {
            values.push(if config.issuer == bare {
                format!("https://{bare}")
            } else {
                bare
            });
        }
    }
    values
}

impl Authenticator {
    /// An authenticator for `issuers`, each with its key source (HTTP in
    /// production, [`StaticKeySource`] for the demo provider and tests).
    pub fn new(
        issuers: Vec<(IssuerConfig, Arc<dyn KeySource>)>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, IdentityError> {
        let configs: Vec<IssuerConfig> = issuers.iter().map(|(c, _)| c.clone()).collect();
        validate_issuers(&configs)?;
        let mut by_iss = HashMap::new();
        let issuers: Vec<Issuer> = issuers
            .into_iter()
            .enumerate()
            .map(|(index, (config, source))| {
                for iss in iss_values(&config) {
                    by_iss.entry(iss).or_insert(index);
                }
                Issuer {
                    algorithms: config
                        .algorithms
                        .as_ref()
                        .map(|list| list.iter().map(|a| a.to_jwt()).collect()),
                    mapping: ClaimMapping::for_issuer(&config),
                    keys: KeyCache::new(&config, source),
                    config,
                }
            })
            .collect();
        Ok(Self {
            issuers,
            by_iss,
            cache: TokenCache::new(DEFAULT_CACHE_CAPACITY),
            overage: OverageWarnings::default(),
            clock,
        })
    }

    /// An authenticator whose issuers' keys are fetched over HTTP (their
    /// `jwks_url`, or discovery).
    pub fn from_config(
        issuers: &[IssuerConfig],
        http: &reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, IdentityError> {
        let with_sources = issuers
            .iter()
            .map(|config| {
                let source: Arc<dyn KeySource> = Arc::new(HttpKeySource::new(http.clone(), config));
                (config.clone(), source)
            })
            .collect();
        Self::new(with_sources, clock)
    }

    /// Changes how many verified tokens are remembered (0 turns the cache off).
    #[must_use]
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = TokenCache::new(capacity);
        self
    }

    /// The configured issuers, in configuration order.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerConfig> {
        self.issuers.iter().map(|i| &i.config)
    }

    /// How many verified tokens are cached.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Authenticates a request from its `Authorization` header value.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Arc<Principal>, AuthError> {
        let token = token::bearer_token(authorization)?;
        self.verify_token(token).await
    }

    /// Whether the `Authorization` header value carries a token that
    /// verified before and is still cached (no verification is done).
    pub fn is_cached(&self, authorization: Option<&str>) -> bool {
        token::bearer_token(authorization).is_ok_and(|token| {
            self.cache
                .get(&token_hash(token), unix_secs(self.clock.as_ref()))
                .is_some()
        })
    }

    /// Verifies a bare token (`airlock policy explain --token`, MCP).
    pub async fn verify_token(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let hash = token_hash(token);
        if let Some((principal, index, generation)) =
            self.cache.get(&hash, unix_secs(self.clock.as_ref()))
            && let Some(issuer) = self.issuers.get(index)
        {
            // A cached token is only as good as the key that verified it.
            issuer
                .keys
                .refresh_if_stale_nowait(self.clock.as_ref())
                .await;
            if issuer.keys.generation() == generation {
                return Ok(principal);
            }
            self.cache.remove(&hash);
        }

        let parsed = token::parse(token)?;
        let iss = match parsed.claims.get("iss") {
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(AuthError::InvalidClaim("iss")),
            None => return Err(AuthError::MissingClaim("iss")),
        };
        let index = *self.by_iss.get(iss).ok_or(AuthError::UnknownIssuer)?;
        let issuer = self.issuers.get(index).ok_or(AuthError::UnknownIssuer)?;
        if !issuer.allows(parsed.alg) {
            return Err(AuthError::AlgNotAllowed);
        }
        if let Some(expected) = &issuer.config.token_type
            && !token::type_matches(parsed.typ.as_deref(), expected)
        {
            return Err(AuthError::WrongType);
        }
        let generation = self.verify_signature(issuer, &parsed).await?;

        let expires_at = token::check_claims(
            &parsed.claims,
            &issuer.config.audiences,
            issuer.config.leeway_secs,
            unix_secs(self.clock.as_ref()),
        )?;
        let principal = issuer
            .mapping
            .principal(&issuer.config.issuer, Value::Object(parsed.claims))
            .map_err(AuthError::from)?;
        self.overage.warn_once(&principal);
        let principal = Arc::new(principal);
        self.cache
            .insert(hash, Arc::clone(&principal), expires_at, index, generation);
        Ok(principal)
    }

    /// Verifies an OpenID Connect ID token that `issuer` issued to the
    /// console's `client_id` (its `aud`, and its `azp` when present), with
    /// that issuer's keys and algorithms, and maps it like an access token.
    ///
    /// Never cached and never accepted by [`Self::verify_token`] (its
    /// audience is a client, not Airlock): an ID token is proof of a login,
    /// not a credential for the API. The caller checks the `nonce`.
    pub async fn verify_id_token(
        &self,
        token: &str,
        issuer: &str,
        client_id: &str,
    ) -> Result<Principal, AuthError> {
        let parsed = token::parse(token)?;
        match parsed.claims.get("iss") {
            Some(Value::String(iss)) => {
                let index = *self.by_iss.get(iss).ok_or(AuthError::UnknownIssuer)?;
                if self.issuers.get(index).map(|i| i.config.issuer.as_str()) != Some(issuer) {
                    return Err(AuthError::UnknownIssuer);
                }
            }
            Some(_) => return Err(AuthError::InvalidClaim("iss")),
            None => return Err(AuthError::MissingClaim("iss")),
        }
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == issuer)
            .ok_or(AuthError::UnknownIssuer)?;
        if !issuer.allows(parsed.alg) {
            return Err(AuthError::AlgNotAllowed);
        }
        // An RFC 9068 access token is not an ID token, whatever its `aud`.
        if token::type_matches(parsed.typ.as_deref(), "at+jwt") {
            return Err(AuthError::WrongType);
        }
        self.verify_signature(issuer, &parsed).await?;
        token::check_claims(
            &parsed.claims,
            &[client_id.to_owned()],
            issuer.config.leeway_secs,
            unix_secs(self.clock.as_ref()),
        )?;
        // OpenID Connect Core 3.1.3.7: with several audiences, `azp` names
        // the client; when present it must be this one.
        let several = matches!(parsed.claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
        match parsed.claims.get("azp") {
            Some(Value::String(azp)) if azp == client_id => {}
            None if !several => {}
            Some(Value::String(_)) => return Err(AuthError::WrongAudience),
            None => return Err(AuthError::MissingClaim("azp")),
            Some(_) => return Err(AuthError::InvalidClaim("azp")),
        }
        issuer
            .mapping
            .principal(&issuer.config.issuer, Value::Object(parsed.claims))
            .map_err(AuthError::from)
    }

    /// Checks `parsed`'s signature with `issuer`'s keys (fetching them when
    /// the `kid` is unknown, within the cooldown); the key set's generation
    /// on success.
    async fn verify_signature(
        &self,
        issuer: &Issuer,
        parsed: &token::Unverified<'_>,
    ) -> Result<u64, AuthError> {
        let kid = parsed.kid.as_deref();
        let (keys, generation) = match issuer
            .keys
            .lookup(kid, parsed.alg, self.clock.as_ref())
            .await
        {
            KeyLookup::Found { keys, generation } => (keys, generation),
            KeyLookup::Incompatible => return Err(AuthError::AlgKeyMismatch),
            KeyLookup::Unknown => return Err(AuthError::UnknownKid),
            KeyLookup::Unavailable => return Err(AuthError::KeysUnavailable),
        };
        let Selection::Found(key) = keys.select(kid, parsed.alg) else {
            return Err(AuthError::UnknownKid);
        };
        // Without an allow-list, the issuer's own list (discovery) limits
        // what its keys may verify.
        if issuer.algorithms.is_none() && !keys.advertises(parsed.alg) {
            return Err(AuthError::AlgNotAllowed);
        }
        if !key.verify(
            parsed.signing_input.as_bytes(),
            parsed.signature,
            parsed.alg,
        ) {
            return Err(AuthError::BadSignature);
        }
        Ok(generation)
    }

    /// Fetches every issuer's keys now, whatever the cooldown: at start-up,
    /// so that `/readyz` turns green before the first request.
    pub async fn refresh_all(&self) -> Vec<(String, Result<usize, KeySourceError>)> {
        let mut outcomes = Vec::with_capacity(self.issuers.len());
        for issuer in &self.issuers {
            let outcome = issuer.keys.refresh(self.clock.as_ref()).await;
            outcomes.push((issuer.config.issuer.clone(), outcome));
        }
        outcomes
    }

    /// Fetches the keys of every issuer whose keys are older than its
    /// `jwks_refresh_secs` (and whose last attempt is past the cooldown).
    pub async fn refresh_stale(&self) {
        for issuer in &self.issuers {
            issuer.keys.refresh_if_stale(self.clock.as_ref()).await;
        }
    }

    /// Keeps keys fresh in the background until `shutdown` resolves, so
    /// that requests rarely wait for a fetch. Requests also refresh stale
    /// keys themselves, so this loop is an optimisation, not a requirement.
    pub async fn run_refresh(&self, shutdown: impl Future<Output = ()>) {
        let tick = Duration::from_secs(15);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(tick) => self.refresh_stale().await,
            }
        }
    }

    /// Whether each issuer's keys are loaded.
    pub fn readiness(&self) -> Vec<IssuerReadiness> {
        self.issuers
            .iter()
            .map(|issuer| {
                let status = issuer.keys.status();
                IssuerReadiness {
                    issuer: issuer.config.issuer.clone(),
                    ready: status.keys > 0,
                    status,
                }
            })
            .collect()
    }

    /// Whether every issuer's keys are loaded.
    pub fn is_ready(&self) -> bool {
        self.readiness().iter().all(|r| r.ready)
    }
}

/// Builds a principal from claims WITHOUT verifying anything: the issuer is
/// picked by the `iss` claim and its preset applied. Only for `airlock
/// policy explain --claims`, to see what a token would be allowed to do.
pub fn principal_from_unverified_claims(
    issuers: &[IssuerConfig],
    claims: Value,
) -> Result<Principal, AuthError> {
    let iss = match claims.get("iss") {
        Some(Value::String(iss)) => iss.clone(),
        Some(_) => return Err(AuthError::InvalidClaim("iss")),
        None => return Err(AuthError::MissingClaim("iss")),
    };
    let config = issuers
        .iter()
        .find(|config| iss_values(config).contains(&iss))
        .ok_or(AuthError::UnknownIssuer)?;
    let Some(object) = claims.as_object() else {
        return Err(AuthError::Malformed("the claims are not a JSON object"));
    };
    token::check_string_claims(object)?;
    ClaimMapping::for_issuer(config)
        .principal(&config.issuer, claims)
        .map_err(AuthError::from)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn google_issuer_has_two_spellings() {
        let mut config = IssuerConfig::new("https://accounts.google.com", &["x"]);
        config.preset = Preset::Google;
        assert_eq!(
            iss_values(&config),
            vec!["https://accounts.google.com", "accounts.google.com"]
        );
        config.preset = Preset::Generic;
        assert_eq!(iss_values(&config), vec!["https://accounts.google.com"]);
    }

    #[test]
    fn unverified_claims_map_with_the_issuers_preset() {
        let mut kc = IssuerConfig::new("https://kc.example.com/realms/data", &["airlock"]);
        kc.preset = Preset::Keycloak;
        let issuers = [IssuerConfig::new("https://other.example", &["airlock"]), kc];
        let p = principal_from_unverified_claims(
            &issuers,
            json!({"iss": "https://kc.example.com/realms/data", "sub": "u1", "realm_access": {"roles": ["airbyte-runner"]}}),
        )
        .expect("maps");
        assert_eq!(p.roles, vec!["airbyte-runner"]);
        assert_eq!(p.issuer, "https://kc.example.com/realms/data");
        assert_eq!(
            principal_from_unverified_claims(&issuers, json!({"iss": "https://evil", "sub": "u"})),
            Err(AuthError::UnknownIssuer)
        );
        assert_eq!(
            principal_from_unverified_claims(&issuers, json!({"sub": "u"})),
            Err(AuthError::MissingClaim("iss"))
        );
        assert_eq!(
            principal_from_unverified_claims(
                &issuers,
                json!({"iss": "https://other.example", "sub": 42})
            ),
            Err(AuthError::InvalidClaim("sub")),
            "explain refuses what the verifier refuses"
        );
    }
}
