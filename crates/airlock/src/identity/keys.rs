//! Issuers' public keys: where they come from ([`KeySource`]), what a usable
//! key is ([`KeySet`]), and the per-issuer cache that refreshes them.
//!
//! Keys come only from the configured issuer's key set, never from a URL or
//! key inside a token (`jku`, `x5u`, `jwk`, `x5c` are ignored). A token
//! naming an unknown `kid` makes the cache fetch again at most once per
//! cooldown; when the provider is unreachable the last good keys stay.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::config::{IssuerConfig, check_url};
use crate::clock::Clock;

/// The most keys kept from one key set.
const MAX_KEYS: usize = 64;
/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The largest discovery document or key set read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// How long one fetch from a provider may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a key is, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    fn verifies(self, alg: Algorithm) -> bool {
        use Algorithm as A;
        match self {
            Self::Rsa => matches!(
                alg,
                A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
            ),
            Self::EcP256 => alg == A::ES256,
            Self::EcP384 => alg == A::ES384,
            Self::Ed25519 => alg == A::EdDSA,
        }
    }
}

/// One public key of an issuer, ready to verify signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's own `alg`, when it pins one.
    alg: Option<Algorithm>,
    key: DecodingKey,
    /// The key's public material, to tell whether a refetch changed it.
    material: Vec<u8>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// The key id, if the key set gave one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn verifies(&self, alg: Algorithm) -> bool {
        self.kind.verifies(alg) && self.alg.is_none_or(|pinned| pinned == alg)
    }

    /// Checks `signature` (base64url) over `message` with algorithm `alg`.
    pub(crate) fn verify(&self, message: &[u8], signature: &str, alg: Algorithm) -> bool {
        self.verifies(alg)
            && matches!(
                jsonwebtoken::crypto::verify(signature, message, &self.key, alg),
                Ok(true)
            )
    }

    fn from_jwk(jwk: &serde_json::Map<String, Value>) -> Result<Self, &'static str> {
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, &'static str> {
            let value = text(name).ok_or("missing key material")?;
            URL_SAFE_NO_PAD
                .decode(value.trim_end_matches('='))
                .map_err(|_| "key material is not base64url")
        };
        if let Some(usage) = jwk.get("use")
            && usage.as_str() != Some("sig")
        {
            return Err("not a signature key");
        }
        if let Some(ops) = jwk.get("key_ops")
            && !ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")))
        {
            return Err("key_ops does not allow verify");
        }
        let alg = match jwk.get("alg") {
            None => None,
            Some(value) => {
                let name = value.as_str().ok_or("alg is not a string")?;
                let alg = Algorithm::from_str(name).map_err(|_| "unsupported alg")?;
                if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                    return Err("symmetric key");
                }
                Some(alg)
            }
        };
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err("kid is not a string"),
        };
        let (kind, key, material) = match text("kty") {
            Some("RSA") => {
                let n = bytes("n")?;
                let e = bytes("e")?;
                let significant = n.iter().skip_while(|b| **b == 0).count();
                if significant * 8 < MIN_RSA_BITS {
                    return Err("RSA key shorter than 2048 bits");
                }
                if e.is_empty() {
                    return Err("RSA exponent is empty");
                }
                let key = DecodingKey::from_rsa_raw_components(&n, &e);
                (KeyKind::Rsa, key, [n, e].concat())
            }
            Some("EC") => {
                let (kind, size) = match text("crv") {
                    Some("P-256") => (KeyKind::EcP256, 32),
                    Some("P-384") => (KeyKind::EcP384, 48),
                    _ => return Err("unsupported curve"),
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != size || y.len() != size {
                    return Err("EC coordinates have the wrong length");
                }
                let point = [&[0x04][..], &x, &y].concat();
                (kind, DecodingKey::from_ec_der(&point), point)
            }
            Some("OKP") => {
                if text("crv") != Some("Ed25519") {
                    return Err("unsupported curve");
                }
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err("Ed25519 key has the wrong length");
                }
                (KeyKind::Ed25519, DecodingKey::from_ed_der(&x), x)
            }
            Some("oct") => return Err("symmetric key"),
            _ => return Err("unsupported key type"),
        };
        if let Some(alg) = alg
            && !kind.verifies(alg)
        {
            return Err("alg does not fit the key type");
        }
        Ok(Self {
            kid,
            kind,
            alg,
            key,
            material,
        })
    }

    fn same_key(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.kind == other.kind
            && self.alg == other.alg
            && self.material == other.material
    }
}

/// The usable public keys of one issuer, parsed from a JWKS document.
/// Keys that are symmetric, for encryption, too weak or of an unsupported
/// type are left out.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// What a key set holds for a token's `kid` and `alg`.
#[derive(Debug)]
pub(crate) enum Selection<'a> {
    /// The key to verify with.
    Found(&'a VerifyingKey),
    /// The `kid` exists, but not for this algorithm.
    Incompatible,
    /// No such key.
    Unknown,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub fn from_jwks(document: &Value) -> Result<Self, KeySetError> {
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeySetError::NotAKeySet)?;
        let mut keys = Vec::new();
        for entry in entries {
            let parsed = entry
                .as_object()
                .ok_or("not a JSON object")
                .and_then(VerifyingKey::from_jwk);
            match parsed {
                Ok(key) if keys.len() < MAX_KEYS => keys.push(key),
                Ok(_) => tracing::warn!(
                    max = MAX_KEYS,
                    "key set holds too many keys; extra keys ignored"
                ),
                Err(reason) => {
                    let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("-");
                    tracing::debug!(kid, reason, "key left out of the key set");
                }
            }
        }
        if keys.is_empty() {
            return Err(KeySetError::NoUsableKeys);
        }
        Ok(Self { keys })
    }

    /// Parses a JWKS document from its JSON text.
    pub fn from_jwks_json(text: &[u8]) -> Result<Self, KeySetError> {
        let document: Value = serde_json::from_slice(text).map_err(|_| KeySetError::NotAKeySet)?;
        Self::from_jwks(&document)
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, in order.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(VerifyingKey::kid).collect()
    }

    /// The key for a token's `kid` and `alg`. Without a `kid`, only a set
    /// with exactly one key able to verify `alg` answers.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection<'_> {
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Selection::Unknown;
                }
                named
                    .find(|k| k.verifies(alg))
                    .map_or(Selection::Incompatible, Selection::Found)
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.verifies(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Selection::Found(key),
                    _ => Selection::Unknown,
                }
            }
        }
    }

    fn same_keys(&self, other: &Self) -> bool {
        self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.same_key(b))
    }
}

/// Why a JWKS document gave no key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// The document is not `{"keys": [...]}`.
    #[error("not a JWKS document")]
    NotAKeySet,
    /// No key in it can verify signatures.
    #[error("no usable signature key in the key set")]
    NoUsableKeys,
}

/// A boxed future, so that [`KeySource`] works behind `dyn`.
pub type KeyFuture<'a> = Pin<Box<dyn Future<Output = Result<KeySet, KeySourceError>> + Send + 'a>>;

/// Where an issuer's keys come from: its JWKS endpoint in production, a
/// fixed set for the demo identity provider and tests.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// Fetches the current key set.
    fn fetch(&self) -> KeyFuture<'_>;
}

/// Why fetching a key set failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySourceError {
    /// The provider could not be reached or did not answer in time.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was fetched.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The provider answered with an error status.
    #[error("{url} answered {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer was not what was asked for.
    #[error("{url}: {reason}")]
    Invalid {
        /// What was fetched.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A key set that never changes: the demo identity provider's, or a test's.
#[derive(Debug, Clone)]
pub struct StaticKeySource {
    keys: KeySet,
}

impl StaticKeySource {
    /// Serves `keys` on every fetch.
    pub fn new(keys: KeySet) -> Self {
        Self { keys }
    }
}

impl KeySource for StaticKeySource {
    fn fetch(&self) -> KeyFuture<'_> {
        let keys = self.keys.clone();
        Box::pin(async move { Ok(keys) })
    }
}

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
    discovered: Mutex<Option<String>>,
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

    async fn fetch_keys(&self) -> Result<KeySet, KeySourceError> {
        let known = self.jwks_url.clone().or_else(|| {
            self.discovered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        });
        let url = match known {
            Some(url) => url,
            None => {
                let found = discover(&self.client, &self.issuer, self.allow_insecure_http).await?;
                *self
                    .discovered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(found.jwks_uri.clone());
                found.jwks_uri
            }
        };
        let result = match get_json(&self.client, &url).await {
            Ok(document) => KeySet::from_jwks(&document).map_err(|e| KeySourceError::Invalid {
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

/// The state of one issuer's keys, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// How many usable keys are loaded (0 before the first good fetch).
    pub keys: usize,
    /// When the current keys were fetched, in Unix milliseconds.
    pub loaded_at_ms: Option<i64>,
    /// Why the latest fetch failed, when it did.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct KeyState {
    keys: Option<Arc<KeySet>>,
    /// Bumped whenever the keys really change.
    generation: u64,
    /// Unix milliseconds of the last good fetch and of the last attempt.
    loaded_at: Option<i64>,
    attempted_at: Option<i64>,
    last_error: Option<String>,
}

/// What the cache answers for a token's `kid` and `alg`.
#[derive(Debug)]
pub(crate) enum KeyLookup {
    Found { keys: Arc<KeySet>, generation: u64 },
    Incompatible,
    Unknown,
    Unavailable,
}

/// One issuer's keys, refreshed every `refresh_every`, refetched on an
/// unknown `kid` at most once per `cooldown`.
#[derive(Debug)]
pub(crate) struct KeyCache {
    issuer: String,
    source: Arc<dyn KeySource>,
    refresh_every: Duration,
    cooldown: Duration,
    state: RwLock<KeyState>,
    fetching: tokio::sync::Mutex<()>,
}

fn elapsed(since: Option<i64>, now_ms: i64) -> Option<Duration> {
    since.map(|t| Duration::from_millis(u64::try_from(now_ms.saturating_sub(t)).unwrap_or(0)))
}

impl KeyCache {
    pub(crate) fn new(config: &IssuerConfig, source: Arc<dyn KeySource>) -> Self {
        Self {
            issuer: config.issuer.clone(),
            source,
            refresh_every: config.jwks_refresh(),
            cooldown: config.unknown_kid_cooldown(),
            state: RwLock::new(KeyState::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn cooled_down(&self, now: i64) -> bool {
        elapsed(self.read().attempted_at, now).is_none_or(|e| e >= self.cooldown)
    }

    fn is_stale(&self, now: i64) -> bool {
        let stale = elapsed(self.read().loaded_at, now).is_none_or(|e| e >= self.refresh_every);
        stale && self.cooled_down(now)
    }

    fn current(&self) -> (Option<Arc<KeySet>>, u64) {
        let state = self.read();
        (state.keys.clone(), state.generation)
    }

    /// The current generation of the keys, to tell whether a verified
    /// token's key may have gone.
    pub(crate) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Finds the key for `kid`/`alg`, fetching when there are no keys yet,
    /// when they are stale, or when `kid` is unknown (once per cooldown).
    pub(crate) async fn lookup(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        clock: &dyn Clock,
    ) -> KeyLookup {
        if self.current().0.is_none() {
            self.fetch_if_cooled_down(clock).await;
        } else {
            self.refresh_if_stale_nowait(clock).await;
        }
        let (keys, generation) = self.current();
        let Some(keys) = keys else {
            return KeyLookup::Unavailable;
        };
        match keys.select(kid, alg) {
            Selection::Found(_) => KeyLookup::Found { keys, generation },
            Selection::Incompatible => KeyLookup::Incompatible,
            Selection::Unknown => {
                if !self.fetch_if_cooled_down(clock).await {
                    return KeyLookup::Unknown;
                }
                let (keys, generation) = self.current();
                match keys {
                    Some(keys) => match keys.select(kid, alg) {
                        Selection::Found(_) => KeyLookup::Found { keys, generation },
                        Selection::Incompatible => KeyLookup::Incompatible,
                        Selection::Unknown => KeyLookup::Unknown,
                    },
                    None => KeyLookup::Unavailable,
                }
            }
        }
    }

    /// Refreshes stale keys unless another request is fetching already:
    /// one request refreshes, the others go on with the keys they have.
    pub(crate) async fn refresh_if_stale_nowait(&self, clock: &dyn Clock) {
        if self.current().0.is_none() || !self.is_stale(clock.now_ms()) {
            return;
        }
        if let Ok(_guard) = self.fetching.try_lock()
            && self.is_stale(clock.now_ms())
        {
            // The outcome is recorded in the state and logged.
            let _ = self.fetch(clock).await;
        }
    }

    /// Fetches unless another fetch happened within the cooldown; waits
    /// for a fetch in progress. Returns whether this call fetched.
    async fn fetch_if_cooled_down(&self, clock: &dyn Clock) -> bool {
        let _guard = self.fetching.lock().await;
        if !self.cooled_down(clock.now_ms()) {
            return false;
        }
        let _ = self.fetch(clock).await;
        true
    }

    /// Fetches now, whatever the cooldown (start-up, the refresh loop).
    pub(crate) async fn refresh(&self, clock: &dyn Clock) -> Result<usize, KeySourceError> {
        let _guard = self.fetching.lock().await;
        self.fetch(clock).await
    }

    /// Fetches when the keys are stale (the refresh loop).
    pub(crate) async fn refresh_if_stale(&self, clock: &dyn Clock) {
        let _guard = self.fetching.lock().await;
        if self.is_stale(clock.now_ms()) {
            // The outcome is recorded in the state and logged.
            let _ = self.fetch(clock).await;
        }
    }

    /// Must be called with `fetching` held.
    async fn fetch(&self, clock: &dyn Clock) -> Result<usize, KeySourceError> {
        let result = self.source.fetch().await;
        let now = clock.now_ms();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.attempted_at = Some(now);
        match result {
            Ok(keys) => {
                let count = keys.len();
                let changed = state.keys.as_ref().is_none_or(|old| !old.same_keys(&keys));
                if changed {
                    state.generation += 1;
                    tracing::info!(issuer = %self.issuer, keys = count, kids = ?keys.kids(), "loaded the issuer's signing keys");
                }
                state.keys = Some(Arc::new(keys));
                state.loaded_at = Some(now);
                state.last_error = None;
                Ok(count)
            }
            Err(error) => {
                tracing::warn!(
                    issuer = %self.issuer,
                    error = %error,
                    kept_keys = state.keys.as_ref().map_or(0, |k| k.len()),
                    "cannot fetch the issuer's signing keys; keeping the last good ones"
                );
                state.last_error = Some(error.to_string());
                Err(error)
            }
        }
    }

    pub(crate) fn status(&self) -> KeyStatus {
        let state = self.read();
        KeyStatus {
            keys: state.keys.as_ref().map_or(0, |k| k.len()),
            loaded_at_ms: state.loaded_at,
            last_error: state.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rsa_jwk(kid: &str) -> Value {
        // A syntactically valid 2048-bit modulus (not a real key: these
        // tests never verify with it).
        let n = URL_SAFE_NO_PAD.encode([0xC5_u8; 256]);
        json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB", "use": "sig", "alg": "RS256"})
    }

    #[test]
    fn unusable_keys_are_left_out() {
        let small_n = URL_SAFE_NO_PAD.encode([0xC5_u8; 128]);
        let set = KeySet::from_jwks(&json!({"keys": [
            rsa_jwk("good"),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "n": URL_SAFE_NO_PAD.encode([1_u8; 256]), "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "kid": "weak", "n": small_n, "e": "AQAB"},
            {"kty": "RSA", "kid": "hs-alg", "n": URL_SAFE_NO_PAD.encode([1_u8; 256]), "e": "AQAB", "alg": "HS256"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "no-verify", "n": URL_SAFE_NO_PAD.encode([1_u8; 256]), "e": "AQAB", "key_ops": ["encrypt"]},
            "not an object"
        ]}))
        .expect("one usable key");
        assert_eq!(set.kids(), vec!["good"]);
        assert_eq!(
            KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).err(),
            Some(KeySetError::NoUsableKeys)
        );
        assert_eq!(
            KeySet::from_jwks(&json!({"kid": "x"})).err(),
            Some(KeySetError::NotAKeySet)
        );
        assert_eq!(
            KeySet::from_jwks_json(b"nope").err(),
            Some(KeySetError::NotAKeySet)
        );
    }

    #[test]
    fn selection_respects_kid_and_algorithm() {
        let set = KeySet::from_jwks(&json!({"keys": [rsa_jwk("a"), rsa_jwk("b")]})).expect("keys");
        assert!(
            matches!(set.select(Some("a"), Algorithm::RS256), Selection::Found(k) if k.kid() == Some("a"))
        );
        assert!(matches!(
            set.select(Some("a"), Algorithm::ES256),
            Selection::Incompatible
        ));
        assert!(
            matches!(
                set.select(Some("a"), Algorithm::PS256),
                Selection::Incompatible
            ),
            "JWK pins RS256"
        );
        assert!(matches!(
            set.select(Some("../../etc/passwd"), Algorithm::RS256),
            Selection::Unknown
        ));
        assert!(
            matches!(set.select(None, Algorithm::RS256), Selection::Unknown),
            "ambiguous without kid"
        );
        let one = KeySet::from_jwks(&json!({"keys": [rsa_jwk("only")]})).expect("keys");
        assert!(matches!(
            one.select(None, Algorithm::RS256),
            Selection::Found(_)
        ));
        assert!(one.same_keys(&one.clone()));
        assert!(!one.same_keys(&set));
    }
}
