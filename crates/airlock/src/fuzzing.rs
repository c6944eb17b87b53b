//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer).
//!
//! Each takes arbitrary bytes, drives one of Airlock's parsers with them and
//! panics when an invariant breaks; "returns an error" is always fine, a
//! panic never is. They live in the library (not in `fuzz/`) so that the
//! unit tests below run them on the seed corpus and on mutations of it with
//! every `cargo test`, and so that they cannot drift from the code.
//!
//! - [`token`]: bearer tokens through [`Authenticator::authenticate`], both
//!   as raw text and as header/payload pairs signed with a real key (so the
//!   fuzzer reaches the claim checks and the claim mapping of every preset).
//! - [`config`]: configuration text and `AIRLOCK_*` overrides through
//!   [`Config::from_toml`].
//! - [`front_path`]: request lines through URI parsing and the compatible
//!   front's [`classify`].

use std::sync::{Arc, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::http::{Method, Uri};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::config::Config;
use crate::front::classify;
use airlock_domain::clock::ManualClock;
use airlock_domain::identity::{
    Authenticator, IssuerConfig, KeySet, KeySource, Preset, SigningAlgorithm, StaticKeySource,
};
use airlock_domain::policy::Permission;

/// The issuer of the tokens [`token`] signs.
pub const ISSUER: &str = "https://idp.fuzz.example";
/// The audience Airlock expects of them.
pub const AUDIENCE: &str = "airlock";
/// The fixed time of the authenticators' clock (2027-01-15), in seconds.
pub const NOW_SECS: i64 = 1_800_000_000;
/// Separates the header from the payload in a signed-token input.
pub const SPLIT: u8 = 0xFF;

const PRESETS: [Preset; 6] = [
    Preset::Generic,
    Preset::Entra,
    Preset::Okta,
    Preset::Keycloak,
    Preset::Auth0,
    Preset::Google,
];

struct TokenHarness {
    runtime: tokio::runtime::Runtime,
    key: EncodingKey,
    /// One per preset, without a token cache (every input is verified).
    authenticators: Vec<Authenticator>,
}

fn harness() -> &'static TokenHarness {
    static HARNESS: OnceLock<TokenHarness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("read the key back");
        let point = pair.public_key().as_ref();
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "fuzz", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        let keys = KeySet::from_jwks(&jwks).expect("a valid key set");
        let clock = Arc::new(ManualClock::new(NOW_SECS * 1000));
        let authenticators = PRESETS
            .iter()
            .map(|preset| {
                let mut config = IssuerConfig::new(ISSUER, &[AUDIENCE]);
                config.preset = *preset;
                config.algorithms = Some(vec![SigningAlgorithm::Es256, SigningAlgorithm::Rs256]);
                let source: Arc<dyn KeySource> = Arc::new(StaticKeySource::new(keys.clone()));
                Authenticator::new(vec![(config, source)], clock.clone())
                    .expect("a valid issuer")
                    .with_cache_capacity(0)
            })
            .collect();
        TokenHarness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime"),
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            authenticators,
        }
    })
}

/// Bearer tokens. The first byte picks the preset (`byte / 2 % 6`) and the
/// mode: even, the rest is the `Authorization` header's text, verbatim;
/// odd, the rest is `header 0xFF payload`, base64url-encoded and signed
/// with the issuer's real key, so that only the claims decide.
pub fn token(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let harness = harness();
    let authenticator = &harness.authenticators[usize::from(first / 2) % PRESETS.len()];
    if first % 2 == 0 {
        let header = String::from_utf8_lossy(rest);
        for candidate in [header.to_string(), format!("Bearer {header}")] {
            let outcome = harness
                .runtime
                .block_on(authenticator.authenticate(Some(&candidate)));
            assert!(
                outcome.is_err(),
                "accepted a token nobody signed: {candidate:?}"
            );
        }
        return;
    }
    let (header, payload) = match rest.iter().position(|b| *b == SPLIT) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let Ok(signature) =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &harness.key, Algorithm::ES256)
    else {
        return;
    };
    let token = format!("{signing_input}.{signature}");
    let outcome = harness.runtime.block_on(authenticator.verify_token(&token));
    if let Ok(principal) = outcome {
        check_accepted(header, payload, &principal.subject);
    }
}

/// What an accepted token must have been: an object header naming ES256
/// without `crit`, and an object payload from our issuer, for our audience,
/// unexpired, with a subject.
fn check_accepted(header: &[u8], payload: &[u8], subject: &str) {
    let header: Value = serde_json::from_slice(header).expect("an accepted header is JSON");
    assert_eq!(header["alg"], "ES256", "accepted header {header}");
    assert!(header.get("crit").is_none(), "accepted crit in {header}");
    let claims: Value = serde_json::from_slice(payload).expect("accepted claims are JSON");
    assert_eq!(claims["iss"], ISSUER, "accepted claims {claims}");
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => aud == AUDIENCE,
        Value::Array(auds) => auds.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    assert!(audience_ok, "accepted audience of {claims}");
    let exp = claims["exp"]
        .as_f64()
        .expect("accepted a token without exp");
    assert!(
        exp > (NOW_SECS - 300) as f64,
        "accepted an expired token: {claims}"
    );
    assert!(!subject.is_empty(), "accepted an empty subject: {claims}");
}

/// Configuration: the text up to the first `0xFF` is the TOML file; each
/// following line `NAME=VALUE` is an environment variable (only
/// `AIRLOCK_*` ones are read). A configuration that loads must write
/// out as TOML that reads back to the same configuration.
pub fn config(data: &[u8]) {
    let (text, env) = match data.iter().position(|b| *b == SPLIT) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let Ok(config) = Config::from_toml("fuzz", text, &env) else {
        return;
    };
    // Written out (as `check-config` shows it, secrets redacted), it is
    // valid TOML, and reading it back changes nothing further.
    let written = toml::to_string(&config).expect("a loaded configuration serializes");
    if let Err(error) = written.parse::<toml::Table>() {
        panic!("a loaded configuration is written as invalid TOML: {error}\n{written}");
    }
    if let Ok(again) = Config::from_toml("written", &written, &[]) {
        let rewritten = toml::to_string(&again).expect("serializes");
        assert_eq!(
            written, rewritten,
            "reading a written configuration changed it"
        );
    }
}

/// The compatible front's routing: the first byte picks the method, the
/// rest is the request target. Whatever `classify` accepts must be a
/// plain path of known words, canonical ids and job numbers, and only GET
/// may be a read.
pub fn front_path(data: &[u8]) {
    const METHODS: [&str; 8] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE",
    ];
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let method = Method::from_bytes(METHODS[usize::from(first) % METHODS.len()].as_bytes())
        .expect("a known method");
    let Ok(uri) = Uri::try_from(rest) else {
        return;
    };
    let Some(path) = uri.path().strip_prefix(crate::front::PUBLIC_PREFIX) else {
        return;
    };
    let Some((permission, _resource)) = classify(&method, path) else {
        return;
    };
    let reads = [Permission::ConnectionsRead, Permission::JobsRead];
    assert_eq!(
        method == Method::GET,
        reads.contains(&permission),
        "{method} {path} classified as {permission:?}"
    );
    for segment in path.split('/').skip(1) {
        assert!(
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{method} {path}: accepted segment {segment:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed corpus in `fuzz/seeds/<target>/`.
    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target);
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| std::fs::read(entry.expect("entry").path()).expect("read a seed"))
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
        seeds
    }

    /// A small deterministic mutator (xorshift): flips, inserts, deletes
    /// and splices bytes, as a fuzzer's first steps would.
    fn mutations(seeds: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|i| {
                let mut input = seeds[i % seeds.len()].clone();
                for _ in 0..=(next() % 4) {
                    let at = if input.is_empty() {
                        0
                    } else {
                        (next() as usize) % input.len()
                    };
                    match next() % 4 {
                        0 if !input.is_empty() => input[at] ^= 1 << (next() % 8),
                        1 => input.insert(at, next() as u8),
                        2 if !input.is_empty() => {
                            input.remove(at);
                        }
                        _ => {
                            let other = &seeds[(next() as usize) % seeds.len()];
                            let from = (next() as usize) % (other.len() + 1);
                            input.splice(at..at, other[from..].iter().copied().take(16));
                        }
                    }
                }
                input
            })
            .collect()
    }

    fn run(target: &str, f: fn(&[u8])) {
        let seeds = seeds(target);
        for input in seeds.iter().chain(mutations(&seeds, 3_000).iter()) {
            f(input);
        }
    }

    #[test]
    fn token_seeds_and_mutations_hold_the_invariants() {
        run("token", token);
    }

    #[test]
    fn config_seeds_and_mutations_hold_the_invariants() {
        run("config", config);
    }

    #[test]
    fn front_path_seeds_and_mutations_hold_the_invariants() {
        run("front_path", front_path);
    }

    #[test]
    fn a_signed_seed_is_accepted_so_the_claim_checks_are_reached() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let seed = std::fs::read(dir.join("../../fuzz/seeds/token/signed-generic"))
            .expect("the generic seed");
        let (header, payload) =
            seed[1..].split_at(seed[1..].iter().position(|b| *b == SPLIT).expect("a split"));
        let harness = harness();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(&payload[1..])
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &harness.key, Algorithm::ES256)
                .expect("sign");
        let principal = harness
            .runtime
            .block_on(harness.authenticators[0].verify_token(&format!("{input}.{signature}")))
            .expect("the seed is a valid token");
        assert_eq!(principal.subject, "alice");
    }
}
