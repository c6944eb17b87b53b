//! An issuer's key set: the usable keys of a JWKS document, and the key
//! for a token's `kid` and `alg`.

use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::VerifyingKey;

/// The most keys kept from one key set.
const MAX_KEYS: usize = 64;

/// The usable public keys of one issuer, parsed from a JWKS document.
/// Keys that are symmetric, for encryption, too weak or of an unsupported
/// type are left out.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    /// The asymmetric algorithms the issuer's discovery document advertises
    /// (`id_token_signing_alg_values_supported`); `None` when it names none
    /// (or the key set was not found through discovery).
    advertised: Option<Vec<Algorithm>>,
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
        Ok(Self {
            keys,
            advertised: None,
        })
    }

    /// The same keys, limited to the algorithms the issuer advertises
    /// (only used when its configuration sets no `algorithms`).
    #[must_use]
    pub fn with_advertised(mut self, advertised: Option<Vec<Algorithm>>) -> Self {
        self.advertised = advertised;
        self
    }

    /// Whether the issuer advertises `alg` (or advertises nothing).
    pub(crate) fn advertises(&self, alg: Algorithm) -> bool {
        self.advertised
            .as_ref()
            .is_none_or(|list| list.contains(&alg))
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
                let mut named = self.keys.iter().filter(|k| k.kid() == Some(kid)).peekable();
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

    pub(super) fn same_keys(&self, other: &Self) -> bool {
        self.advertised == other.advertised
            && self.keys.len() == other.keys.len()
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

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

    #[test]
    fn advertised_algorithms_limit_and_count_as_a_change() {
        let set = KeySet::from_jwks(&json!({"keys": [rsa_jwk("a")]})).expect("keys");
        assert!(set.advertises(Algorithm::PS512), "nothing advertised");
        let limited = set.clone().with_advertised(Some(vec![Algorithm::RS256]));
        assert!(limited.advertises(Algorithm::RS256));
        assert!(!limited.advertises(Algorithm::PS256));
        assert!(
            !limited.same_keys(&set),
            "a new list invalidates cached tokens"
        );
    }
}
