//! One key of a key set: a JWK checked and turned into a [`VerifyingKey`].

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

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

    pub(super) fn verifies(&self, alg: Algorithm) -> bool {
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

    /// The key of one JWK, or why it is left out: its `use` and `key_ops`,
    /// its pinned `alg`, its `kid`, then its key material, checked in that
    /// order.
    pub(super) fn from_jwk(jwk: &Jwk) -> Result<Self, &'static str> {
        check_use(jwk)?;
        let alg = pinned_alg(jwk)?;
        let kid = key_id(jwk)?;
        let (kind, key, material) = public_key(jwk)?;
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

    pub(super) fn same_key(&self, other: &Self) -> bool {
        self.kid == other.kid
            && self.kind == other.kind
            && self.alg == other.alg
            && self.material == other.material
    }
}

/// A JWK: one JSON object of a key set's `keys`.
type Jwk = serde_json::Map<String, Value>;

/// The JWK's member `name`, when it is a string.
fn text<'a>(jwk: &'a Jwk, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

/// The JWK's member `name`, base64url-decoded key material.
fn bytes(jwk: &Jwk, name: &str) -> Result<Vec<u8>, &'static str> {
    let value = text(jwk, name).ok_or("missing key material")?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| "key material is not base64url")
}

/// Refuses a key whose `use` or `key_ops` is not signature verification.
fn check_use(jwk: &Jwk) -> Result<(), &'static str> {
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
    Ok(())
}

/// The algorithm the JWK pins with `alg`, if any; never a symmetric one.
fn pinned_alg(jwk: &Jwk) -> Result<Option<Algorithm>, &'static str> {
    Ok(match jwk.get("alg") {
        None => None,
        Some(value) => {
            let name = value.as_str().ok_or("alg is not a string")?;
            let alg = Algorithm::from_str(name).map_err(|_| "unsupported alg")?;
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err("symmetric key");
            }
            Some(alg)
        }
    })
}

/// The JWK's `kid`, if any.
fn key_id(jwk: &Jwk) -> Result<Option<String>, &'static str> {
    Ok(match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("kid is not a string"),
    })
}

/// The key's kind, the key to verify with, and its public material, by
/// the JWK's `kty`.
fn public_key(jwk: &Jwk) -> Result<(KeyKind, DecodingKey, Vec<u8>), &'static str> {
    match text(jwk, "kty") {
        Some("RSA") => rsa_key(jwk),
        Some("EC") => ec_key(jwk),
        Some("OKP") => ed25519_key(jwk),
        Some("oct") => Err("symmetric key"),
        _ => Err("unsupported key type"),
    }
}

/// An RSA key (`n`, `e`) of at least [`MIN_RSA_BITS`].
fn rsa_key(jwk: &Jwk) -> Result<(KeyKind, DecodingKey, Vec<u8>), &'static str> {
    let n = bytes(jwk, "n")?;
    let e = bytes(jwk, "e")?;
    let significant = n.iter().skip_while(|b| **b == 0).count();
    if significant * 8 < MIN_RSA_BITS {
        return Err("RSA key shorter than 2048 bits");
    }
    if e.is_empty() {
        return Err("RSA exponent is empty");
    }
    let key = DecodingKey::from_rsa_raw_components(&n, &e);
    Ok((KeyKind::Rsa, key, [n, e].concat()))
}

/// An EC key on P-256 or P-384 (`crv`, `x`, `y`).
fn ec_key(jwk: &Jwk) -> Result<(KeyKind, DecodingKey, Vec<u8>), &'static str> {
    let (kind, size) = match text(jwk, "crv") {
        Some("P-256") => (KeyKind::EcP256, 32),
        Some("P-384") => (KeyKind::EcP384, 48),
        _ => return Err("unsupported curve"),
    };
    let (x, y) = (bytes(jwk, "x")?, bytes(jwk, "y")?);
    if x.len() != size || y.len() != size {
        return Err("EC coordinates have the wrong length");
    }
    let point = [&[0x04][..], &x, &y].concat();
    Ok((kind, DecodingKey::from_ec_der(&point), point))
}

/// An Ed25519 key (`kty` OKP, `crv`, `x`).
fn ed25519_key(jwk: &Jwk) -> Result<(KeyKind, DecodingKey, Vec<u8>), &'static str> {
    if text(jwk, "crv") != Some("Ed25519") {
        return Err("unsupported curve");
    }
    let x = bytes(jwk, "x")?;
    if x.len() != 32 {
        return Err("Ed25519 key has the wrong length");
    }
    Ok((KeyKind::Ed25519, DecodingKey::from_ed_der(&x), x))
}
