//! Sealed values: a secret Airlock makes itself and keeps in the database
//! (the front's signing key), encrypted with AES-256-GCM under a key derived
//! from a configured secret, so that whoever reads the database without the
//! configuration learns nothing from it.
//!
//! A sealed value reads `aes256gcm$<iterations>$<salt b64>$<nonce and
//! ciphertext b64>`: the key is PBKDF2-HMAC-SHA256 of the configured secret
//! with the value's own salt, and `purpose` is bound to the ciphertext as
//! associated data, so that a value sealed for one use does not open as
//! another.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::pbkdf2;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Secret;

/// The format's name.
const SCHEME: &str = "aes256gcm";
/// PBKDF2 iterations of new sealed values (as for service accounts' hashes).
const ITERATIONS: u32 = super::hash::DEFAULT_ITERATIONS;
/// Salt bytes of new sealed values.
const SALT_LEN: usize = 16;

/// What can go wrong sealing or opening a value. Never says more than
/// which: neither the secret nor the value is in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no randomness available")]
    Randomness,
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("the sealed value does not open with this secret (another secret, or altered)")]
    WrongSecret,
}

/// Seals `plaintext` for `purpose` under `secret`, with a fresh salt and nonce.
pub fn seal(secret: &Secret, purpose: &str, plaintext: &[u8]) -> Result<String, SealError> {
    let random = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    random.fill(&mut salt).map_err(|_| SealError::Randomness)?;
    let mut nonce = [0u8; NONCE_LEN];
    random.fill(&mut nonce).map_err(|_| SealError::Randomness)?;
    let iterations = NonZeroU32::new(ITERATIONS).ok_or(SealError::Malformed)?;
    let key = derive(secret, iterations, &salt)?;
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(purpose.as_bytes()),
        &mut body,
    )
    .map_err(|_| SealError::Malformed)?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&body);
    Ok(format!(
        "{SCHEME}${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(sealed)
    ))
}

/// Opens a value [`seal`] made for `purpose` under `secret`.
pub fn open(secret: &Secret, purpose: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
    let mut parts = sealed.split('$');
    let (Some(SCHEME), Some(iterations), Some(salt), Some(body), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SealError::Malformed);
    };
    let iterations: NonZeroU32 = iterations.parse().map_err(|_| SealError::Malformed)?;
    let salt = STANDARD.decode(salt).map_err(|_| SealError::Malformed)?;
    let body = STANDARD.decode(body).map_err(|_| SealError::Malformed)?;
    if salt.len() < SALT_LEN || body.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(SealError::Malformed);
    }
    let (nonce, ciphertext) = body.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
    let key = derive(secret, iterations, &salt)?;
    let mut ciphertext = ciphertext.to_vec();
    let plaintext = key
        .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut ciphertext)
        .map_err(|_| SealError::WrongSecret)?;
    Ok(plaintext.to_vec())
}

/// The AES-256 key of `secret` with `salt`.
fn derive(secret: &Secret, iterations: NonZeroU32, salt: &[u8]) -> Result<LessSafeKey, SealError> {
    let mut bytes = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        secret.expose().as_bytes(),
        &mut bytes,
    );
    let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::Malformed)?;
    bytes.fill(0);
    Ok(LessSafeKey::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_secret_and_purpose() {
        let secret = Secret::new("correct horse battery staple");
        let sealed = seal(&secret, "front.signing_key", b"the key").expect("sealed");
        assert!(!sealed.contains("the key"));
        assert_eq!(
            open(&secret, "front.signing_key", &sealed).expect("opens"),
            b"the key"
        );
        // Fresh salt and nonce every time.
        assert_ne!(
            seal(&secret, "front.signing_key", b"the key").expect("sealed"),
            sealed
        );
        assert_eq!(
            open(&Secret::new("another"), "front.signing_key", &sealed),
            Err(SealError::WrongSecret)
        );
        assert_eq!(
            open(&secret, "another.purpose", &sealed),
            Err(SealError::WrongSecret)
        );
        // One bit flipped in the ciphertext.
        let (head, body) = sealed.rsplit_once('$').expect("parts");
        let mut bytes = STANDARD.decode(body).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{head}${}", STANDARD.encode(bytes));
        assert_eq!(
            open(&secret, "front.signing_key", &altered),
            Err(SealError::WrongSecret)
        );
        for malformed in [
            "",
            "aes256gcm$1$AAAA",
            "other$600000$AAAA$AAAA",
            "aes256gcm$x$AAAA$AAAA",
        ] {
            assert_eq!(
                open(&secret, "front.signing_key", malformed),
                Err(SealError::Malformed),
                "{malformed}"
            );
        }
    }
}
