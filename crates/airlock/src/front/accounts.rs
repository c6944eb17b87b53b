//! Service accounts: client credentials that Airlock checks itself (secrets
//! stored as PBKDF2-HMAC-SHA256 hashes) and ES256 tokens that Airlock signs
//! for them, published as an ordinary issuer (JWKS and discovery) so that
//! they are verified like any identity provider's.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::config::{FrontSetup, ServiceAccountConfig};
use airlock_domain::identity::{IssuerConfig, KeySet, SigningAlgorithm};
use airlock_domain::secret::Secret;
use airlock_domain::secret::hash::SecretHash;

/// The audience of service-account tokens (Airlock's own).
pub const AUDIENCE: &str = "airlock";

/// The `typ` header of service-account tokens (RFC 9068).
const TOKEN_TYPE: &str = "at+jwt";

/// One service account, its hash parsed.
#[derive(Debug, Clone)]
pub(crate) struct ServiceAccount {
    pub(crate) client_id: String,
    pub(crate) hash: SecretHash,
    pub(crate) roles: Vec<String>,
}

/// What can go wrong preparing service accounts.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("front.signing_key: {0}")]
    SigningKey(String),
    /// The key kept in the database, or the secret that seals it.
    #[error("front.signing_key_secret: {0}")]
    SharedKey(String),
    #[error("service_accounts[{index}].secret_hash: {message}")]
    Hash { index: usize, message: String },
    /// The front's client of the identity provider could not be built.
    #[error("cannot build the front's HTTP client: {0}")]
    HttpClient(String),
}

/// The name of the signing key Airlock keeps in the database; also what
/// its seal is bound to.
pub const SHARED_KEY_NAME: &str = "front.signing_key";

/// The secret that seals the signing key kept in the database, when that is
/// where the key comes from: service accounts, no `[front] signing_key`, and
/// `signing_key_secret` set.
pub fn shared_key_secret(
    setup: &FrontSetup<'_>,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, AccountsError> {
    match &setup.front.signing_key_secret {
        Some(source) if !setup.accounts.is_empty() && setup.front.signing_key.is_none() => source
            .resolve(lookup_env)
            .map(Some)
            .map_err(AccountsError::SharedKey),
        _ => Ok(None),
    }
}

/// A new signing key for the service accounts, as PKCS#8 DER.
pub fn generate_signing_key() -> Result<Vec<u8>, AccountsError> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|e| AccountsError::SharedKey(e.to_string()))?;
    let pkcs8 = pair
        .to_pkcs8v1()
        .map_err(|e| AccountsError::SharedKey(e.to_string()))?;
    Ok(pkcs8.as_ref().to_vec())
}

/// Airlock's own issuer: the service accounts and the key that signs their
/// tokens.
pub(crate) struct Accounts {
    issuer: String,
    kid: String,
    key: Arc<EncodingKey>,
    jwks: Value,
    by_client: BTreeMap<String, ServiceAccount>,
    lifetime_secs: u64,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .field("accounts", &self.by_client.len())
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// The issuer for `config`'s service accounts, or `None` when there are
    /// none. The signing key is the configured one, else `shared` (the
    /// PKCS#8 key kept in the database, see [`shared_key_secret`]), else
    /// one made now for this process.
    pub(crate) fn from_config(
        setup: &FrontSetup<'_>,
        lookup_env: &dyn Fn(&str) -> Option<String>,
        shared: Option<&[u8]>,
    ) -> Result<Option<Self>, AccountsError> {
        if setup.accounts.is_empty() {
            return Ok(None);
        }
        let pair = match (&setup.front.signing_key, shared) {
            (Some(source), _) => {
                let pem = source
                    .resolve(lookup_env)
                    .map_err(AccountsError::SigningKey)?;
                let der = pem_to_der(pem.expose()).map_err(AccountsError::SigningKey)?;
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).map_err(
                    |e| AccountsError::SigningKey(format!("not a P-256 private key: {e}")),
                )?
            }
            (None, Some(der)) => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|e| {
                    AccountsError::SharedKey(format!("the stored key is not a P-256 key: {e}"))
                })?,
            (None, None) => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|e| AccountsError::SigningKey(e.to_string()))?,
        };
        let by_client = setup
            .accounts
            .iter()
            .enumerate()
            .map(|(index, account)| parse_account(index, account))
            .collect::<Result<_, _>>()?;
        Self::new(
            setup.service_account_issuer(),
            &pair,
            by_client,
            setup.front.token_lifetime_secs,
        )
        .map(Some)
    }

    fn new(
        issuer: String,
        pair: &EcdsaKeyPair,
        by_client: BTreeMap<String, ServiceAccount>,
        lifetime_secs: u64,
    ) -> Result<Self, AccountsError> {
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|e| AccountsError::SigningKey(e.to_string()))?;
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(AccountsError::SigningKey(
                "unexpected public key size".to_owned(),
            ));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, point);
        let kid = format!("airlock-{}", &URL_SAFE_NO_PAD.encode(digest.as_ref())[..16]);
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
            issuer,
            kid,
            key: Arc::new(EncodingKey::from_ec_der(pkcs8.as_ref())),
            jwks,
            by_client,
            lifetime_secs,
        })
    }

    /// The published key set.
    pub(crate) fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Its keys, for Airlock's verifier (no HTTP round trip).
    pub(crate) fn key_set(&self) -> KeySet {
        // Built above from a valid key: it always parses.
        KeySet::from_jwks(&self.jwks).unwrap_or_default()
    }

    /// How Airlock verifies its own tokens: ES256, `typ` at+jwt, audience
    /// [`AUDIENCE`]. Keys never come over HTTP, so an `http://` issuer on
    /// any host is harmless.
    pub(crate) fn issuer_config(&self) -> IssuerConfig {
        let mut config = IssuerConfig::new(self.issuer.clone(), &[AUDIENCE]);
        config.algorithms = Some(vec![SigningAlgorithm::Es256]);
        config.token_type = Some(TOKEN_TYPE.to_owned());
        config.allow_insecure_http = true;
        config
    }

    /// The OpenID discovery document of this issuer.
    pub(crate) fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "token_endpoint": format!("{}/applications/token", self.issuer),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }

    /// The service account called `client_id`.
    pub(crate) fn get(&self, client_id: &str) -> Option<&ServiceAccount> {
        self.by_client.get(client_id)
    }

    /// A signed token for `account`, issued at `now_ms`; with its lifetime.
    pub(crate) fn token_for(&self, account: &ServiceAccount, now_ms: i64) -> Option<(String, u64)> {
        let now = now_ms.div_euclid(1000);
        let lifetime = i64::try_from(self.lifetime_secs).ok()?;
        let claims = json!({
            "iss": self.issuer,
            "sub": account.client_id,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid::Uuid::new_v4().to_string(),
            "client_id": account.client_id,
            "roles": account.roles,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some(TOKEN_TYPE.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.key).ok()?;
        Some((token, self.lifetime_secs))
    }
}

fn parse_account(
    index: usize,
    account: &ServiceAccountConfig,
) -> Result<(String, ServiceAccount), AccountsError> {
    let hash = account
        .secret_hash
        .parse()
        .map_err(|message| AccountsError::Hash { index, message })?;
    Ok((
        account.client_id.clone(),
        ServiceAccount {
            client_id: account.client_id.clone(),
            hash,
            roles: account.roles.clone(),
        },
    ))
}

/// The DER inside a PEM document (`PRIVATE KEY` or `EC PRIVATE KEY`).
fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    let mut inside = false;
    let mut body = String::new();
    for line in pem.lines().map(str::trim) {
        if line.starts_with("-----BEGIN ") {
            if !(line.contains("PRIVATE KEY")) {
                return Err("expected a PEM private key".to_owned());
            }
            inside = true;
        } else if line.starts_with("-----END ") {
            break;
        } else if inside {
            body.push_str(line);
        }
    }
    if body.is_empty() {
        return Err("no PEM private key found".to_owned());
    }
    STANDARD
        .decode(body)
        .map_err(|_| "the PEM body is not base64".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use airlock_domain::secret::hash::{MIN_ITERATIONS, hash_secret};

    #[test]
    fn the_configured_signing_key_is_used_and_checked() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let config = |key: &str| {
            let text = format!(
                "[front]\nsigning_key = {{ file = \"{fixtures}/{key}\" }}\n\n\
                 [[service_accounts]]\nclient_id = \"ci\"\nsecret_hash = \"{}\"\n",
                hash_secret("s", MIN_ITERATIONS).expect("hash")
            );
            Config::from_toml("t.toml", &text, &[]).expect("valid")
        };
        let lookup = |_: &str| None;
        let first = Accounts::from_config(&config("ec-a.pem").front_setup(), &lookup, None)
            .expect("loads")
            .expect("accounts");
        let second = Accounts::from_config(&config("ec-a.pem").front_setup(), &lookup, None)
            .expect("loads")
            .expect("accounts");
        assert_eq!(first.kid, second.kid, "tokens survive a restart");
        for wrong in ["rsa-a.pem", "ed-a.pem", "missing.pem"] {
            let err = Accounts::from_config(&config(wrong).front_setup(), &lookup, None)
                .expect_err(wrong);
            assert!(err.to_string().contains("front.signing_key"), "{err}");
        }
        assert!(
            Accounts::from_config(&Config::default().front_setup(), &lookup, None)
                .expect("no accounts")
                .is_none()
        );
    }

    #[test]
    fn pem_keys_load_and_tokens_verify_against_the_published_keys() {
        let pem = include_str!("../../tests/fixtures/ec-a.pem");
        let der = pem_to_der(pem).expect("pem");
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .expect("P-256");
        let account = ServiceAccount {
            client_id: "ci".to_owned(),
            hash: hash_secret("x", MIN_ITERATIONS)
                .expect("hash")
                .parse()
                .expect("parses"),
            roles: vec!["runner".to_owned()],
        };
        let accounts = Accounts::new(
            "https://airlock.example".to_owned(),
            &pair,
            BTreeMap::from([("ci".to_owned(), account.clone())]),
            900,
        )
        .expect("accounts");
        let again = Accounts::new(
            "https://airlock.example".to_owned(),
            &pair,
            BTreeMap::new(),
            900,
        )
        .expect("accounts");
        assert_eq!(accounts.kid, again.kid, "the kid is derived from the key");
        assert_eq!(accounts.key_set().len(), 1);
        let (token, lifetime) = accounts.token_for(&account, 1_000_000).expect("signed");
        assert_eq!(lifetime, 900);
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(accounts.kid.as_str()));
        assert!(
            pem_to_der("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err()
        );
    }
}
