//! Stored secrets: PBKDF2-HMAC-SHA256 hashes of client secrets (service
//! accounts), checked in constant time, never printed.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use aws_lc_rs::pbkdf2;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The hash format's name.
const SCHEME: &str = "pbkdf2-sha256";

/// Fewest PBKDF2 iterations a stored hash may use.
pub const MIN_ITERATIONS: u32 = 10_000;

/// What `hash_secret` uses by default (OWASP's 2023 advice for SHA-256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;

/// A parsed `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretHash")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl FromStr for SecretHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = format!(
            "expected {SCHEME}$<iterations>$<salt base64>$<hash base64> (see `hash_secret`)"
        );
        let mut parts = s.split('$');
        let (Some(scheme), Some(iterations), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(expected);
        };
        if scheme != SCHEME {
            return Err(expected);
        }
        let iterations: u32 = iterations.parse().map_err(|_| expected.clone())?;
        if iterations < MIN_ITERATIONS {
            return Err(format!(
                "{iterations} iterations is fewer than the minimum of {MIN_ITERATIONS}"
            ));
        }
        let decode = |text: &str| {
            STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| expected.clone())
        };
        let salt = decode(salt)?;
        let hash = decode(hash)?;
        if salt.len() < 16 {
            return Err("the salt must be at least 16 bytes".to_owned());
        }
        if hash.len() != 32 {
            return Err("the hash must be 32 bytes (SHA-256)".to_owned());
        }
        Ok(Self {
            iterations: NonZeroU32::new(iterations).ok_or(expected)?,
            salt,
            hash,
        })
    }
}

impl SecretHash {
    /// Whether `secret` is the one hashed; constant time in the comparison.
    /// Costs the configured iterations: call it off the async threads.
    pub fn verify(&self, secret: &str) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            secret.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }
}

/// Hashes `secret` for `[[service_accounts]] secret_hash`, with a fresh salt.
pub fn hash_secret(secret: &str, iterations: u32) -> Result<String, String> {
    let iterations = NonZeroU32::new(iterations.max(MIN_ITERATIONS)).ok_or("zero iterations")?;
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| "no randomness available".to_owned())?;
    let mut hash = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        secret.as_bytes(),
        &mut hash,
    );
    Ok(format!(
        "{SCHEME}${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_reject_other_secrets() {
        let stored = hash_secret("s3cret", MIN_ITERATIONS).expect("hash");
        assert!(stored.starts_with("pbkdf2-sha256$10000$"), "{stored}");
        let parsed: SecretHash = stored.parse().expect("parses");
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(!parsed.verify(""));
        assert!(!format!("{parsed:?}").contains(stored.rsplit('$').next().unwrap_or("x")));
    }

    #[test]
    fn malformed_hashes_are_explained() {
        for bad in [
            "",
            "argon2$1$2$3",
            "pbkdf2-sha256$abc$AAAA$AAAA",
            "pbkdf2-sha256$100$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
            "pbkdf2-sha256$10000$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
            "pbkdf2-sha256$10000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA$extra",
        ] {
            assert!(bad.parse::<SecretHash>().is_err(), "{bad}");
        }
    }
}
