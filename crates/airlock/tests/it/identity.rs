//! Token verification end to end through `Authenticator::authenticate`,
//! with in-process key sets and a manual clock: the JWT attack suite, the
//! verified-token cache, and key rotation through the JWKS cache.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_domain::clock::{Clock, ManualClock};
use airlock_domain::identity::{
    AuthError, Authenticator, IssuerConfig, KeyFuture, KeySet, KeySource, KeySourceError,
    MAX_TOKEN_BYTES, PrincipalKind, SigningAlgorithm, StaticKeySource,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.example.com";
const OTHER_ISSUER: &str = "https://other.example.com";
/// The tests' "now", in Unix seconds.
const NOW: i64 = 1_800_000_000;

const RSA_A: &str = include_str!("../fixtures/rsa-a.pem");
const RSA_A_PUBLIC: &str = include_str!("../fixtures/rsa-a.pub.pem");
const RSA_B: &str = include_str!("../fixtures/rsa-b.pem");
const RSA_ATTACKER: &str = include_str!("../fixtures/rsa-attacker.pem");
const EC_A: &str = include_str!("../fixtures/ec-a.pem");
const EC_ATTACKER: &str = include_str!("../fixtures/ec-attacker.pem");
const ED_A: &str = include_str!("../fixtures/ed-a.pem");

/// A private key with its algorithm and `kid`, able to sign anything.
struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
}

impl Signer {
    fn rsa(pem: &str, kid: &str) -> Self {
        Self {
            key: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA test key"),
            alg: Algorithm::RS256,
            kid: kid.into(),
        }
    }

    fn ec(pem: &str, kid: &str) -> Self {
        Self {
            key: EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC test key"),
            alg: Algorithm::ES256,
            kid: kid.into(),
        }
    }

    fn ed(pem: &str, kid: &str) -> Self {
        Self {
            key: EncodingKey::from_ed_pem(pem.as_bytes()).expect("Ed25519 test key"),
            alg: Algorithm::EdDSA,
            kid: kid.into(),
        }
    }

    /// The public half as a JWK, the way a provider publishes it.
    fn jwk(&self) -> Value {
        let jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("public JWK");
        let mut value = serde_json::to_value(jwk).expect("JWK serializes");
        value["kid"] = json!(self.kid);
        value["use"] = json!("sig");
        value
    }

    /// The standard header for this key.
    fn header(&self) -> Value {
        json!({"alg": alg_name(self.alg), "typ": "JWT", "kid": self.kid})
    }

    /// Signs `header` and `payload` (JSON values) with this key.
    fn sign(&self, header: &Value, payload: &Value) -> String {
        self.sign_raw(&header.to_string(), &payload.to_string())
    }

    /// Signs raw JSON texts (for duplicate keys and other non-canonical JSON).
    fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).expect("signs");
        format!("{input}.{signature}")
    }

    /// A token with the standard header and `claims`.
    fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::PS256 => "PS256",
        other => panic!("unused in tests: {other:?}"),
    }
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn key_set(signers: &[&Signer]) -> KeySet {
    let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
    KeySet::from_jwks(&json!({ "keys": keys })).expect("usable key set")
}

/// Valid claims for [`ISSUER`], with `extra` merged over them.
fn claims(extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISSUER,
        "sub": "svc-etl",
        "aud": "airlock",
        "iat": NOW,
        "exp": NOW + 300,
        "client_id": "etl",
        "roles": ["runner"],
    });
    for (k, v) in extra.as_object().expect("object").iter() {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn clock_at(secs: i64) -> ManualClock {
    ManualClock::new(secs * 1000)
}

/// Two issuers that reuse the same `kid` (`rsa-1`) for different keys:
/// [`ISSUER`] signs with RSA, EC and Ed25519; [`OTHER_ISSUER`] with RSA only.
struct World {
    auth: Authenticator,
    clock: ManualClock,
    rsa: Signer,
    ec: Signer,
    ed: Signer,
    other: Signer,
}

fn world() -> World {
    let rsa = Signer::rsa(RSA_A, "rsa-1");
    let ec = Signer::ec(EC_A, "ec-1");
    let ed = Signer::ed(ED_A, "ed-1");
    let other = Signer::rsa(RSA_B, "rsa-1");
    let mut first = IssuerConfig::new(ISSUER, &["airlock"]);
    first.algorithms = Some(vec![
        SigningAlgorithm::Rs256,
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
    ]);
    let mut second = IssuerConfig::new(OTHER_ISSUER, &["airlock"]);
    second.algorithms = Some(vec![SigningAlgorithm::Rs256]);
    let clock = clock_at(NOW);
    let auth = Authenticator::new(
        vec![
            (
                first,
                Arc::new(StaticKeySource::new(key_set(&[&rsa, &ec, &ed]))) as Arc<dyn KeySource>,
            ),
            (
                second,
                Arc::new(StaticKeySource::new(key_set(&[&other]))) as Arc<dyn KeySource>,
            ),
        ],
        Arc::new(clock.clone()),
    )
    .expect("valid issuers");
    World {
        auth,
        clock,
        rsa,
        ec,
        ed,
        other,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn valid_tokens_from_every_key_type_are_accepted_and_mapped() {
    let w = world();
    for signer in [&w.rsa, &w.ec, &w.ed] {
        let p = w
            .auth
            .authenticate(Some(&bearer(&signer.token(&claims(json!({}))))))
            .await
            .unwrap_or_else(|e| panic!("{:?} token refused: {}", signer.alg, e.code()));
        assert_eq!(p.issuer, ISSUER);
        assert_eq!(p.subject, "svc-etl");
        assert_eq!(p.roles, vec!["runner"]);
        assert_eq!(p.client_id.as_deref(), Some("etl"));
        assert_eq!(p.kind, PrincipalKind::User, "sub differs from client_id");
    }
    let other = w
        .auth
        .authenticate(Some(&bearer(
            &w.other
                .token(&claims(json!({"iss": OTHER_ISSUER, "sub": "etl"}))),
        )))
        .await
        .expect("the second issuer's own token");
    assert_eq!(other.issuer, OTHER_ISSUER);
    assert_eq!(other.kind, PrincipalKind::Service, "sub = client_id");
    let lower = w
        .auth
        .authenticate(Some(&format!("bearer {}", w.rsa.token(&claims(json!({}))))))
        .await;
    assert!(lower.is_ok(), "the scheme is case-insensitive (RFC 9110)");
    let skewed = w
        .rsa
        .token(&claims(json!({"exp": NOW - 30, "nbf": NOW + 30})));
    assert!(
        w.auth.verify_token(&skewed).await.is_ok(),
        "within the 60 s leeway"
    );

    // Cached or not, a token dies at exp + leeway.
    let token = w.rsa.token(&claims(json!({})));
    assert!(w.auth.verify_token(&token).await.is_ok());
    w.clock.advance_ms(seconds(359));
    assert!(
        w.auth.verify_token(&token).await.is_ok(),
        "within the leeway after exp"
    );
    w.clock.advance_ms(seconds(1));
    assert_eq!(
        w.auth.verify_token(&token).await.err(),
        Some(AuthError::Expired)
    );
}

/// One attack: what is sent, and the reason code it must be refused with
/// (`a|b` when either is right).
struct Case {
    name: &'static str,
    authorization: Option<String>,
    code: &'static str,
}

fn case(name: &'static str, token: String, code: &'static str) -> Case {
    Case {
        name,
        authorization: Some(bearer(&token)),
        code,
    }
}

fn header_case(name: &'static str, authorization: Option<String>, code: &'static str) -> Case {
    Case {
        name,
        authorization,
        code,
    }
}

/// Flips one character in the middle of `part` (0 header, 1 payload, 2 signature).
fn tamper(token: &str, part: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let target = &mut parts[part];
    let mid = target.len() / 2;
    let replacement = if &target[mid..=mid] == "A" { "B" } else { "A" };
    target.replace_range(mid..=mid, replacement);
    parts.join(".")
}

fn unsigned(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(&header.to_string()),
        b64(&payload.to_string())
    )
}

fn hmac_signed(header: &Value, payload: &Value, secret: &[u8], alg: Algorithm) -> String {
    let key = EncodingKey::from_secret(secret);
    let input = format!("{}.{}", b64(&header.to_string()), b64(&payload.to_string()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).expect("HMAC signs");
    format!("{input}.{signature}")
}

fn attack_cases(w: &World) -> Vec<Case> {
    let good = claims(json!({}));
    let valid = w.rsa.token(&good);
    let attacker = Signer::rsa(RSA_ATTACKER, "attacker-1");
    let ec_attacker = Signer::ec(EC_ATTACKER, "ec-1");
    let rsa_header = w.rsa.header();
    let with = |extra: Value| {
        let mut h = rsa_header.clone();
        for (k, v) in extra.as_object().expect("object") {
            h[k] = v.clone();
        }
        h
    };
    let n_bytes = {
        let jwk = w.rsa.jwk();
        URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().expect("n"))
            .expect("n decodes")
    };
    let public_der = {
        let body: String = RSA_A_PUBLIC
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        STANDARD.decode(body).expect("DER")
    };
    let big_claim = "x".repeat(MAX_TOKEN_BYTES);
    let deep = format!(
        "{{\"iss\":\"{ISSUER}\",\"sub\":\"s\",\"aud\":\"airlock\",\"exp\":{},\"x\":{}1{}}}",
        NOW + 300,
        "[".repeat(300),
        "]".repeat(300)
    );
    let good_text = good.to_string();
    let good_inner = &good_text[1..good_text.len() - 1];

    vec![
        // alg none, in every casing, signed or not.
        case("alg none", unsigned(&json!({"alg": "none"}), &good, ""), "alg_not_allowed"),
        case("alg None", unsigned(&json!({"alg": "None"}), &good, ""), "alg_not_allowed"),
        case("alg NONE", unsigned(&json!({"alg": "NONE"}), &good, ""), "alg_not_allowed"),
        case("alg nOnE", unsigned(&json!({"alg": "nOnE", "kid": "rsa-1"}), &good, ""), "alg_not_allowed"),
        case("alg none with a signature", unsigned(&json!({"alg": "none"}), &good, "c2ln"), "alg_not_allowed"),
        case("alg missing", unsigned(&json!({"typ": "JWT"}), &good, "c2ln"), "malformed"),
        case("alg null", unsigned(&json!({"alg": null}), &good, "c2ln"), "malformed"),
        case("alg with a NUL", unsigned(&json!({"alg": "RS256\u{0}"}), &good, "c2ln"), "alg_not_allowed"),
        // HMAC with the public key as the secret (key confusion).
        case(
            "HS256 keyed with the RSA public key PEM",
            hmac_signed(&json!({"alg": "HS256", "kid": "rsa-1"}), &good, RSA_A_PUBLIC.as_bytes(), Algorithm::HS256),
            "alg_not_allowed",
        ),
        case(
            "HS256 keyed with the RSA public key DER",
            hmac_signed(&json!({"alg": "HS256", "kid": "rsa-1"}), &good, &public_der, Algorithm::HS256),
            "alg_not_allowed",
        ),
        case(
            "HS384 keyed with the RSA modulus",
            hmac_signed(&json!({"alg": "HS384", "kid": "rsa-1"}), &good, &n_bytes, Algorithm::HS384),
            "alg_not_allowed",
        ),
        case(
            "HS512 without kid",
            hmac_signed(&json!({"alg": "HS512"}), &good, RSA_A_PUBLIC.as_bytes(), Algorithm::HS512),
            "alg_not_allowed",
        ),
        // Signatures.
        case("stripped signature", format!("{}.", valid.rsplit_once('.').expect("3 parts").0), "bad_signature"),
        case("signature and its dot stripped", valid.rsplit_once('.').expect("3 parts").0.to_owned(), "malformed"),
        case("altered signature", tamper(&valid, 2), "bad_signature"),
        case(
            "signature of another token",
            format!(
                "{}.{}",
                valid.rsplit_once('.').expect("3 parts").0,
                w.rsa.token(&claims(json!({"sub": "other"}))).rsplit_once('.').expect("3 parts").1
            ),
            "bad_signature",
        ),
        case("all-zero signature", format!("{}.{}", valid.rsplit_once('.').expect("3 parts").0, URL_SAFE_NO_PAD.encode([0_u8; 256])), "bad_signature"),
        case("altered payload", tamper(&valid, 1), "malformed|bad_signature"),
        case(
            "payload swapped for an admin one",
            {
                let parts: Vec<&str> = valid.split('.').collect();
                let forged = b64(&claims(json!({"roles": ["admin"]})).to_string());
                format!("{}.{forged}.{}", parts[0], parts[2])
            },
            "bad_signature",
        ),
        case(
            "header swapped (typ changed)",
            {
                let parts: Vec<&str> = valid.split('.').collect();
                format!("{}.{}.{}", b64(&with(json!({"typ": "at+jwt"})).to_string()), parts[1], parts[2])
            },
            "bad_signature",
        ),
        // Time.
        case("expired", w.rsa.token(&claims(json!({"exp": NOW - 61}))), "expired"),
        case("expired at the leeway's edge", w.rsa.token(&claims(json!({"exp": NOW - 60}))), "expired"),
        case("expired long ago", w.rsa.token(&claims(json!({"exp": 1, "iat": 0}))), "expired"),
        case("nbf beyond the leeway", w.rsa.token(&claims(json!({"nbf": NOW + 61}))), "not_yet_valid"),
        case("iat in the future", w.rsa.token(&claims(json!({"iat": NOW + 3_600}))), "not_yet_valid"),
        case("exp as a string", w.rsa.token(&claims(json!({"exp": (NOW + 300).to_string()}))), "invalid_claim"),
        case("nbf as a string", w.rsa.token(&claims(json!({"nbf": "0"}))), "invalid_claim"),
        case("missing exp", w.rsa.token(&claims(json!({"exp": null}))), "missing_claim"),
        // Issuer and audience.
        case("unknown iss", w.rsa.token(&claims(json!({"iss": "https://evil.example"}))), "unknown_issuer"),
        case("iss with a trailing slash", w.rsa.token(&claims(json!({"iss": format!("{ISSUER}/")}))), "unknown_issuer"),
        case("iss as a list", w.rsa.token(&claims(json!({"iss": [ISSUER]}))), "invalid_claim"),
        case("missing iss", w.rsa.token(&claims(json!({"iss": null}))), "missing_claim"),
        case("wrong aud", w.rsa.token(&claims(json!({"aud": "account"}))), "wrong_audience"),
        case("aud list without ours", w.rsa.token(&claims(json!({"aud": ["account", "api"]}))), "wrong_audience"),
        case("missing aud", w.rsa.token(&claims(json!({"aud": null}))), "missing_claim"),
        case("missing sub", w.rsa.token(&claims(json!({"sub": null}))), "missing_claim"),
        case("sub as a number", w.rsa.token(&claims(json!({"sub": 42}))), "invalid_claim"),
        // Keys: only the configured issuer's, by kid.
        case("unknown kid", w.rsa.sign(&with(json!({"kid": "nope"})), &good), "unknown_kid"),
        case("kid with path traversal", w.rsa.sign(&with(json!({"kid": "../../../../etc/passwd"})), &good), "unknown_kid"),
        case("kid with SQL", w.rsa.sign(&with(json!({"kid": "' OR '1'='1"})), &good), "unknown_kid"),
        case("kid as a number", w.rsa.sign(&with(json!({"kid": 1})), &good), "malformed"),
        case(
            "jku to the attacker's key set",
            attacker.sign(&json!({"alg": "RS256", "kid": "attacker-1", "jku": "https://evil.example/jwks.json"}), &good),
            "unknown_kid",
        ),
        case(
            "x5u to the attacker's certificate",
            attacker.sign(&json!({"alg": "RS256", "kid": "rsa-1", "x5u": "https://evil.example/cert.pem"}), &good),
            "bad_signature",
        ),
        case(
            "embedded jwk with the attacker's key",
            attacker.sign(&json!({"alg": "RS256", "kid": "rsa-1", "jwk": attacker.jwk()}), &good),
            "bad_signature",
        ),
        case(
            "embedded jwk without kid",
            attacker.sign(&json!({"alg": "RS256", "jwk": attacker.jwk()}), &good),
            "bad_signature",
        ),
        case(
            "x5c with a bogus chain",
            attacker.sign(&json!({"alg": "RS256", "kid": "rsa-1", "x5c": [STANDARD.encode(b"not a cert")]}), &good),
            "bad_signature",
        ),
        case("EC attacker reusing the EC kid", ec_attacker.token(&good), "bad_signature"),
        case("second issuer's key with the first issuer's iss (same kid)", w.other.token(&good), "bad_signature"),
        case(
            "first issuer's key with the second issuer's iss (same kid)",
            w.rsa.token(&claims(json!({"iss": OTHER_ISSUER}))),
            "bad_signature",
        ),
        case("RS256 header on the EC key", w.rsa.sign(&with(json!({"kid": "ec-1"})), &good), "alg_key_mismatch"),
        case("ES256 header on the RSA key", w.ec.sign(&json!({"alg": "ES256", "kid": "rsa-1"}), &good), "alg_key_mismatch"),
        case(
            "ES256 where only RS256 is allowed",
            Signer::ec(EC_A, "rsa-1").token(&claims(json!({"iss": OTHER_ISSUER}))),
            "alg_not_allowed",
        ),
        case("PS256 not allowed", unsigned(&json!({"alg": "PS256", "kid": "rsa-1"}), &good, "c2ln"), "alg_not_allowed"),
        case("ES384 not allowed", unsigned(&json!({"alg": "ES384", "kid": "ec-1"}), &good, "c2ln"), "alg_not_allowed"),
        // Header extensions.
        case("crit exp", w.rsa.sign(&with(json!({"crit": ["exp"], "exp": NOW})), &good), "crit_unsupported"),
        case("crit b64 false", w.rsa.sign(&with(json!({"crit": ["b64"], "b64": false})), &good), "crit_unsupported"),
        case("crit empty", w.rsa.sign(&with(json!({"crit": []})), &good), "crit_unsupported"),
        case("nested JWT", w.rsa.sign(&with(json!({"cty": "JWT"})), &good), "nested_token"),
        case("nested JWT, lowercase", w.rsa.sign(&with(json!({"cty": "jwt"})), &good), "nested_token"),
        case("JWE shape", format!("{valid}.AAAA.BBBB"), "malformed"),
        // Encoding.
        case("oversized token", w.rsa.token(&claims(json!({"pad": big_claim}))), "too_large"),
        case("padded base64", { let mut p: Vec<String> = valid.split('.').map(str::to_owned).collect(); p[0].push('='); p.join(".") }, "malformed"),
        case("standard base64 alphabet", valid.replacen(['-', '_', 'e'], "+", 1), "malformed"),
        case("header not base64", format!("!!!.{}", valid.split_once('.').expect("parts").1), "malformed"),
        case("header not JSON", w.rsa.sign_raw("{alg:RS256}", &good_text), "malformed"),
        case("payload not JSON", w.rsa.sign_raw(&rsa_header.to_string(), "{\"iss\":"), "malformed"),
        case("payload a JSON list", w.rsa.sign_raw(&rsa_header.to_string(), "[1,2]"), "malformed"),
        case("payload nested too deep", w.rsa.sign_raw(&rsa_header.to_string(), &deep), "malformed"),
        case(
            "duplicate claim (roles)",
            w.rsa.sign_raw(&rsa_header.to_string(), &format!("{{{good_inner},\"roles\":[\"admin\"]}}")),
            "malformed",
        ),
        case(
            "duplicate iss",
            w.rsa.sign_raw(&rsa_header.to_string(), &format!("{{{good_inner},\"iss\":\"{OTHER_ISSUER}\"}}")),
            "malformed",
        ),
        case(
            "duplicate alg in the header",
            w.rsa.sign_raw("{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"alg\":\"none\"}", &good_text),
            "malformed",
        ),
        case("two parts", "abc.def".to_owned(), "malformed"),
        case("four parts", format!("{valid}.x"), "malformed"),
        case("empty parts", "..".to_owned(), "malformed"),
        case("unicode look-alike", valid.replacen('e', "е", 1), "malformed"),
        // The Authorization header itself.
        header_case("no header", None, "missing_token"),
        header_case("empty header", Some(String::new()), "missing_token"),
        header_case("Bearer alone", Some("Bearer".into()), "missing_token"),
        header_case("Bearer and a space", Some("Bearer ".into()), "missing_token"),
        header_case("Basic scheme", Some("Basic dXNlcjpwYXNz".into()), "wrong_scheme"),
        header_case("token without scheme", Some(valid.clone()), "wrong_scheme"),
        header_case("tab after Bearer", Some(format!("Bearer\t{valid}")), "wrong_scheme"),
        header_case("trailing space", Some(format!("Bearer {valid} ")), "malformed"),
        header_case("trailing newline", Some(format!("Bearer {valid}\n")), "malformed"),
        header_case("two tokens", Some(format!("Bearer {valid} {valid}")), "malformed"),
        header_case("comma-joined tokens", Some(format!("Bearer {valid},{valid}")), "malformed"),
        header_case("huge header", Some(format!("Bearer {}", "a".repeat(100_000))), "too_large"),
    ]
}

#[tokio::test]
async fn jwt_attack_suite_is_refused_with_the_right_reason() {
    let w = world();
    let cases = attack_cases(&w);
    assert!(cases.len() >= 40, "the suite has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match w.auth.authenticate(case.authorization.as_deref()).await {
            Ok(p) => failures.push(format!("{}: ACCEPTED as {}", case.name, p.subject)),
            Err(e) if !case.code.split('|').any(|code| code == e.code()) => {
                failures.push(format!(
                    "{}: refused as {} ({e}), expected {}",
                    case.name,
                    e.code(),
                    case.code
                ));
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(w.auth.cached_tokens(), 0, "nothing refused was cached");
    // The control: the untampered token still works.
    assert!(
        w.auth
            .verify_token(&w.rsa.token(&claims(json!({}))))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn claims_of_the_wrong_json_type_are_refused_naming_the_claim() {
    let w = world();
    let cases = [
        ("sub", json!(42)),
        ("sub", json!({"id": "svc-etl"})),
        ("sub", json!(["svc-etl"])),
        ("sub", json!(true)),
        ("aud", json!({"airlock": true})),
        ("aud", json!(7)),
        ("aud", json!(["airlock", {"x": 1}])),
        ("exp", json!((NOW + 300).to_string())),
        ("exp", json!(true)),
        ("exp", json!([NOW + 300])),
        ("iss", json!([ISSUER])),
        ("iss", json!({"url": ISSUER})),
        ("iss", json!(1)),
        ("nbf", json!(NOW.to_string())),
        ("nbf", json!([NOW])),
        ("iat", json!(NOW.to_string())),
        ("iat", json!({"at": NOW})),
        ("jti", json!(12)),
    ];
    for (claim, value) in cases {
        let token = w.rsa.token(&claims(json!({ claim: value })));
        assert_eq!(
            w.auth.verify_token(&token).await.err(),
            Some(AuthError::InvalidClaim(claim)),
            "{claim}: {value}"
        );
    }
    // The same claims with their right types are accepted.
    let fine = claims(json!({"jti": "j-1", "nbf": NOW, "aud": ["x", "airlock"]}));
    assert!(w.auth.verify_token(&w.rsa.token(&fine)).await.is_ok());
}

#[tokio::test]
async fn every_mutation_and_truncation_is_refused_without_panic() {
    let w = world();
    let valid = w.ec.token(&claims(json!({})));
    let mut tried = 0;
    for i in 0..valid.len() {
        for replacement in ["A", "_", ".", "=", "é", "\0"] {
            let mut mutated = valid.clone();
            if mutated.get(i..=i) == Some(replacement) {
                continue;
            }
            mutated.replace_range(i..=i, replacement);
            tried += 1;
            let outcome = w.auth.verify_token(&mutated).await;
            assert!(
                outcome.is_err(),
                "mutation at {i} with {replacement:?} was accepted"
            );
        }
        tried += 1;
        assert!(
            w.auth.verify_token(&valid[..i]).await.is_err(),
            "truncation to {i} accepted"
        );
    }
    assert!(tried > 1_000, "{tried}");
    assert!(
        w.auth.verify_token(&valid).await.is_ok(),
        "the original still verifies"
    );
}

#[tokio::test]
async fn required_token_type_is_checked() {
    let signer = Signer::rsa(RSA_A, "rsa-1");
    let mut config = IssuerConfig::new(ISSUER, &["airlock"]);
    config.token_type = Some("at+jwt".into());
    let auth = Authenticator::new(
        vec![(
            config,
            Arc::new(StaticKeySource::new(key_set(&[&signer]))) as Arc<dyn KeySource>,
        )],
        Arc::new(clock_at(NOW)),
    )
    .expect("valid");
    let plain = signer.token(&claims(json!({})));
    assert_eq!(
        auth.verify_token(&plain).await.err(),
        Some(AuthError::WrongType)
    );
    let typed = signer.sign(
        &json!({"alg": "RS256", "kid": "rsa-1", "typ": "application/at+jwt"}),
        &claims(json!({})),
    );
    assert!(auth.verify_token(&typed).await.is_ok());
}

#[tokio::test]
async fn verified_tokens_are_cached_but_never_past_exp() {
    let signer = Signer::rsa(RSA_A, "rsa-1");
    let mut config = IssuerConfig::new(ISSUER, &["airlock"]);
    config.leeway_secs = 0;
    let clock = clock_at(NOW);
    let source = Arc::new(CountingSource::new(key_set(&[&signer])));
    let auth = Authenticator::new(
        vec![(config, source.clone() as Arc<dyn KeySource>)],
        Arc::new(clock.clone()),
    )
    .expect("valid");
    let token = signer.token(&claims(json!({"exp": NOW + 10})));
    for _ in 0..3 {
        auth.verify_token(&token).await.expect("valid");
    }
    assert_eq!(auth.cached_tokens(), 1);
    clock.advance_ms(9_000);
    assert!(auth.verify_token(&token).await.is_ok(), "still before exp");
    clock.advance_ms(1_000);
    assert_eq!(
        auth.verify_token(&token).await.err(),
        Some(AuthError::Expired),
        "the cache must not outlive exp"
    );
}

/// A key source whose keys the test changes, counting fetches; it can be
/// made unreachable.
#[derive(Debug)]
struct CountingSource {
    keys: Mutex<KeySet>,
    fetches: AtomicUsize,
    down: AtomicBool,
}

impl CountingSource {
    fn new(keys: KeySet) -> Self {
        Self {
            keys: Mutex::new(keys),
            fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        }
    }

    fn set(&self, keys: KeySet) {
        *self.keys.lock().expect("lock") = keys;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl KeySource for CountingSource {
    fn fetch(&self) -> KeyFuture<'_> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            // Let concurrent requests pile up behind this fetch.
            tokio::task::yield_now().await;
            if self.down.load(Ordering::SeqCst) {
                return Err(KeySourceError::Unreachable {
                    url: "https://id.example.com/jwks".into(),
                    reason: "connection refused".into(),
                });
            }
            Ok(self.keys.lock().expect("lock").clone())
        })
    }
}

struct Rotation {
    auth: Arc<Authenticator>,
    clock: ManualClock,
    source: Arc<CountingSource>,
    old: Signer,
    new: Signer,
}

fn rotation() -> Rotation {
    let old = Signer::rsa(RSA_A, "2026-01");
    let new = Signer::rsa(RSA_B, "2026-02");
    let config = IssuerConfig::new(ISSUER, &["airlock"]); // refresh 300 s, cooldown 60 s
    let clock = clock_at(NOW);
    let source = Arc::new(CountingSource::new(key_set(&[&old])));
    let auth = Authenticator::new(
        vec![(config, source.clone() as Arc<dyn KeySource>)],
        Arc::new(clock.clone()),
    )
    .expect("valid");
    Rotation {
        auth: Arc::new(auth),
        clock,
        source,
        old,
        new,
    }
}

fn seconds(n: u64) -> i64 {
    i64::try_from(Duration::from_secs(n).as_millis()).expect("fits")
}

#[tokio::test]
async fn rotated_key_is_accepted_without_restart() {
    let r = rotation();
    assert!(!r.auth.is_ready(), "nothing fetched yet");
    r.auth
        .verify_token(&r.old.token(&claims(json!({}))))
        .await
        .expect("old key");
    assert_eq!(r.source.fetches(), 1);
    assert!(r.auth.is_ready());

    // The provider publishes a new key and starts signing with it.
    r.source.set(key_set(&[&r.old, &r.new]));
    let fresh = r.new.token(&claims(json!({"sub": "after-rotation"})));
    assert_eq!(
        r.auth.verify_token(&fresh).await.err(),
        Some(AuthError::UnknownKid),
        "within the cooldown of the first fetch: no refetch"
    );
    assert_eq!(r.source.fetches(), 1);
    r.clock.advance_ms(seconds(61));
    let p = r
        .auth
        .verify_token(&fresh)
        .await
        .expect("refetched on unknown kid");
    assert_eq!(p.subject, "after-rotation");
    assert_eq!(r.source.fetches(), 2);

    // The old key is retired: once the periodic refresh sees it gone, its
    // tokens stop working even though one is in the verified-token cache.
    let old_token = r.old.token(&claims(json!({"exp": NOW + 3_600})));
    r.auth
        .verify_token(&old_token)
        .await
        .expect("old key still published");
    r.source.set(key_set(&[&r.new]));
    r.clock.advance_ms(seconds(301));
    assert_eq!(
        r.auth.verify_token(&old_token).await.err(),
        Some(AuthError::UnknownKid)
    );
    assert_eq!(r.source.fetches(), 3, "one periodic refresh");
}

#[tokio::test]
async fn unknown_kid_flood_fetches_at_most_once_per_cooldown() {
    let r = rotation();
    r.auth.refresh_all().await;
    assert_eq!(r.source.fetches(), 1);
    let forger = Signer::rsa(RSA_ATTACKER, "x");
    let flood: Vec<String> = (0..1_000)
        .map(|i| {
            forger.sign(
                &json!({"alg": "RS256", "kid": format!("forged-{i}")}),
                &claims(json!({})),
            )
        })
        .collect();
    let flood = Arc::new(flood);

    let run_flood = |auth: Arc<Authenticator>, flood: Arc<Vec<String>>| async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..flood.len() {
            let (auth, flood) = (Arc::clone(&auth), Arc::clone(&flood));
            tasks.spawn(async move { auth.verify_token(&flood[i]).await });
        }
        let mut refused = 0;
        while let Some(outcome) = tasks.join_next().await {
            assert_eq!(
                outcome.expect("no panic").err(),
                Some(AuthError::UnknownKid)
            );
            refused += 1;
        }
        refused
    };

    // Right after a fetch: the whole flood is refused with no fetch at all.
    assert_eq!(
        run_flood(Arc::clone(&r.auth), Arc::clone(&flood)).await,
        1_000
    );
    assert_eq!(r.source.fetches(), 1);

    // Past the cooldown: one fetch for the whole flood, concurrently.
    r.clock.advance_ms(seconds(60));
    assert_eq!(
        run_flood(Arc::clone(&r.auth), Arc::clone(&flood)).await,
        1_000
    );
    assert_eq!(r.source.fetches(), 2);

    // Again, sequentially, a cooldown later.
    r.clock.advance_ms(seconds(61));
    for token in flood.iter() {
        assert_eq!(
            r.auth.verify_token(token).await.err(),
            Some(AuthError::UnknownKid)
        );
    }
    assert_eq!(r.source.fetches(), 3);
    // Legitimate tokens kept working throughout.
    assert!(
        r.auth
            .verify_token(&r.old.token(&claims(json!({}))))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn last_good_keys_survive_an_unreachable_provider() {
    let r = rotation();
    r.auth.refresh_all().await;
    r.source.down.store(true, Ordering::SeqCst);
    r.clock.advance_ms(seconds(3_600));
    let token = r
        .old
        .token(&claims(json!({"iat": NOW + 3_600, "exp": NOW + 3_900})));
    let p = r
        .auth
        .verify_token(&token)
        .await
        .expect("keys kept while the provider is down");
    assert_eq!(p.subject, "svc-etl");
    assert_eq!(r.source.fetches(), 2, "one refresh attempted");
    let readiness = r.auth.readiness();
    assert!(readiness[0].ready, "still ready: keys are loaded");
    assert!(
        readiness[0]
            .status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("connection refused")),
        "{readiness:?}"
    );
    // The failed refresh is not retried on every request.
    let _ = r
        .auth
        .verify_token(
            &r.new
                .token(&claims(json!({"iat": NOW + 3_600, "exp": NOW + 3_900}))),
        )
        .await;
    assert_eq!(r.source.fetches(), 2);
}

#[tokio::test]
async fn keys_unavailable_until_the_provider_answers() {
    let r = rotation();
    r.source.down.store(true, Ordering::SeqCst);
    let token = r.old.token(&claims(json!({"exp": NOW + 3_600})));
    assert_eq!(
        r.auth.verify_token(&token).await.err(),
        Some(AuthError::KeysUnavailable)
    );
    assert_eq!(
        r.auth.verify_token(&token).await.err(),
        Some(AuthError::KeysUnavailable)
    );
    assert_eq!(r.source.fetches(), 1, "no retry within the cooldown");
    assert!(!r.auth.is_ready());
    let outcomes = r.auth.refresh_all().await;
    assert!(outcomes[0].1.is_err());
    r.source.down.store(false, Ordering::SeqCst);
    r.clock.advance_ms(seconds(60));
    assert!(r.auth.verify_token(&token).await.is_ok());
    assert!(r.auth.is_ready());
}

#[tokio::test]
async fn stale_keys_are_refreshed_by_requests_and_by_the_loop() {
    let r = rotation();
    r.auth.refresh_all().await;
    let token = r.old.token(&claims(json!({"exp": NOW + 7_200})));
    r.auth.verify_token(&token).await.expect("valid");
    r.clock.advance_ms(seconds(299));
    r.auth.refresh_stale().await;
    assert_eq!(r.source.fetches(), 1, "not stale yet");
    r.clock.advance_ms(seconds(1));
    r.auth.refresh_stale().await;
    assert_eq!(r.source.fetches(), 2, "stale after 300 s");
    r.clock.advance_ms(seconds(300));
    r.auth.verify_token(&token).await.expect("valid");
    assert_eq!(r.source.fetches(), 3, "a request refreshes stale keys");
    assert_eq!(r.clock.now_ms(), (NOW + 600) * 1000);

    // The background loop stops when asked.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let auth = Arc::clone(&r.auth);
    let refresher = tokio::spawn(async move {
        auth.run_refresh(async {
            let _ = stopped.await;
        })
        .await;
    });
    stop.send(()).expect("loop running");
    tokio::time::timeout(Duration::from_secs(5), refresher)
        .await
        .expect("the loop stops promptly")
        .expect("no panic");
}

/// A provider over HTTP, as `HttpKeySource` meets it: discovery, then JWKS.
mod over_http {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use airlock_domain::clock::ManualClock;
    use airlock_domain::identity::{AuthError, Authenticator, IssuerConfig};
    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use serde_json::{Value, json};

    use super::{EC_A, ED_A, NOW, RSA_A, RSA_A_PUBLIC, Signer, claims, hmac_signed, unsigned};
    use airlock_domain::identity::SigningAlgorithm;
    use jsonwebtoken::Algorithm;

    #[derive(Default)]
    struct Served {
        /// The issuer the discovery document states.
        stated_issuer: Mutex<String>,
        /// Its `id_token_signing_alg_values_supported`, when it has one.
        advertised: Mutex<Option<Value>>,
        /// The JWKS body, and the status to answer with.
        jwks: Mutex<(StatusCode, String)>,
        discovery_hits: AtomicUsize,
        jwks_hits: AtomicUsize,
    }

    async fn discovery(State(s): State<Arc<Served>>) -> Response {
        s.discovery_hits.fetch_add(1, Ordering::SeqCst);
        let issuer = s.stated_issuer.lock().expect("lock").clone();
        let mut document = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks"), "token_endpoint": format!("{issuer}/token")});
        if let Some(advertised) = s.advertised.lock().expect("lock").clone() {
            document["id_token_signing_alg_values_supported"] = advertised;
        }
        axum::Json(document).into_response()
    }

    async fn jwks(State(s): State<Arc<Served>>) -> Response {
        s.jwks_hits.fetch_add(1, Ordering::SeqCst);
        let (status, body) = s.jwks.lock().expect("lock").clone();
        (status, [("content-type", "application/json")], body).into_response()
    }

    async fn serve() -> (String, Arc<Served>) {
        let served = Arc::new(Served::default());
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(Arc::clone(&served));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        *served.stated_issuer.lock().expect("lock") = base.clone();
        (base, served)
    }

    fn set_jwks(served: &Served, status: StatusCode, body: &Value) {
        *served.jwks.lock().expect("lock") = (status, body.to_string());
    }

    fn authenticator(config: IssuerConfig) -> Authenticator {
        Authenticator::from_config(
            &[config],
            &reqwest::Client::new(),
            Arc::new(ManualClock::new(NOW * 1000)),
        )
        .expect("valid")
    }

    #[tokio::test]
    async fn keys_are_found_through_discovery_once() {
        let (base, served) = serve().await;
        let signer = Signer::rsa(RSA_A, "k1");
        set_jwks(&served, StatusCode::OK, &json!({"keys": [signer.jwk()]}));
        let auth = authenticator(IssuerConfig::new(base.clone(), &["airlock"]));
        let token = signer.token(&claims(json!({"iss": base})));
        let p = auth
            .verify_token(&token)
            .await
            .expect("verified through discovery");
        assert_eq!(p.issuer, base);
        assert_eq!(auth.refresh_all().await[0].1, Ok(1));
        assert_eq!(
            served.discovery_hits.load(Ordering::SeqCst),
            1,
            "discovery is remembered"
        );
        assert_eq!(served.jwks_hits.load(Ordering::SeqCst), 2);
        let discovered = airlock_domain::identity::discover(&reqwest::Client::new(), &base, false)
            .await
            .expect("discovery");
        assert_eq!(discovered.token_endpoint, Some(format!("{base}/token")));
    }

    /// A JWK without its `alg`: its `kty` and `crv` alone say what it verifies.
    fn unpinned(signer: &Signer) -> Value {
        let mut jwk = signer.jwk();
        jwk.as_object_mut().expect("object").remove("alg");
        jwk
    }

    #[tokio::test]
    async fn without_algorithms_the_keys_and_discovery_decide() {
        let (base, served) = serve().await;
        *served.advertised.lock().expect("lock") =
            Some(json!(["ES256", "EdDSA", "PS256", "HS256", "none", "XX999"]));
        let ec = Signer::ec(EC_A, "ec-1");
        let ed = Signer::ed(ED_A, "ed-1");
        let ps = Signer {
            alg: Algorithm::PS256,
            ..Signer::rsa(RSA_A, "rsa-1")
        };
        let ec_jwk = unpinned(&ec);
        set_jwks(
            &served,
            StatusCode::OK,
            &json!({"keys": [ec_jwk, ed.jwk(), unpinned(&ps)]}),
        );
        let config = IssuerConfig::new(base.clone(), &["airlock"]);
        assert_eq!(config.algorithms, None, "the default");
        let auth = authenticator(config);
        let good = claims(json!({"iss": base}));
        for signer in [&ec, &ed, &ps] {
            let outcome = auth.verify_token(&signer.token(&good)).await;
            assert!(outcome.is_ok(), "{:?}: {outcome:?}", signer.alg);
        }
        let refused = [
            (
                "RS256: the RSA key could, the issuer does not advertise it",
                Signer::rsa(RSA_A, "rsa-1").token(&good),
                AuthError::AlgNotAllowed,
            ),
            (
                "ES384 on a P-256 key",
                unsigned(&json!({"alg": "ES384", "kid": "ec-1"}), &good, "c2ln"),
                AuthError::AlgKeyMismatch,
            ),
            (
                "PS256 on the EC key",
                ps.sign(&json!({"alg": "PS256", "kid": "ec-1"}), &good),
                AuthError::AlgKeyMismatch,
            ),
            (
                "HS256 keyed with the EC key's JWK (key confusion)",
                hmac_signed(
                    &json!({"alg": "HS256", "kid": "ec-1"}),
                    &good,
                    ec_jwk.to_string().as_bytes(),
                    Algorithm::HS256,
                ),
                AuthError::AlgNotAllowed,
            ),
            (
                "HS256 keyed with the RSA public key PEM (key confusion)",
                hmac_signed(
                    &json!({"alg": "HS256", "kid": "rsa-1"}),
                    &good,
                    RSA_A_PUBLIC.as_bytes(),
                    Algorithm::HS256,
                ),
                AuthError::AlgNotAllowed,
            ),
            (
                "alg none",
                unsigned(&json!({"alg": "none", "kid": "ec-1"}), &good, ""),
                AuthError::AlgNotAllowed,
            ),
        ];
        for (name, token, expected) in refused {
            assert_eq!(
                auth.verify_token(&token).await.err(),
                Some(expected),
                "{name}"
            );
        }
        let discovered = airlock_domain::identity::discover(&reqwest::Client::new(), &base, false)
            .await
            .expect("discovery");
        assert_eq!(
            discovered.signing_algorithms,
            Some(vec![
                SigningAlgorithm::Es256,
                SigningAlgorithm::EdDsa,
                SigningAlgorithm::Ps256
            ]),
            "HMAC, none and unknown names are left out"
        );
    }

    #[tokio::test]
    async fn without_algorithms_or_discovery_a_pinned_key_decides() {
        let (base, served) = serve().await;
        let ec = Signer::ec(EC_A, "ec-1");
        let rsa = Signer::rsa(RSA_A, "rsa-1");
        let mut pinned = rsa.jwk();
        pinned["alg"] = json!("PS256");
        set_jwks(
            &served,
            StatusCode::OK,
            &json!({"keys": [ec.jwk(), pinned]}),
        );
        let mut config = IssuerConfig::new("https://keycloak.example/realms/data", &["airlock"]);
        config.jwks_url = Some(format!("{base}/jwks"));
        let auth = authenticator(config);
        let good = claims(json!({"iss": "https://keycloak.example/realms/data"}));
        assert!(
            auth.verify_token(&ec.token(&good)).await.is_ok(),
            "ES256 by default"
        );
        let ps = Signer {
            alg: Algorithm::PS256,
            ..Signer::rsa(RSA_A, "rsa-1")
        };
        assert!(
            auth.verify_token(&ps.token(&good)).await.is_ok(),
            "the pinned alg"
        );
        assert_eq!(
            auth.verify_token(&rsa.token(&good)).await.err(),
            Some(AuthError::AlgKeyMismatch),
            "RS256 on a key pinned to PS256"
        );
        assert_eq!(
            auth.verify_token(&hmac_signed(
                &json!({"alg": "HS256", "kid": "rsa-1"}),
                &good,
                RSA_A_PUBLIC.as_bytes(),
                Algorithm::HS256
            ))
            .await
            .err(),
            Some(AuthError::AlgNotAllowed)
        );
        assert_eq!(served.discovery_hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn configured_jwks_url_skips_discovery() {
        let (base, served) = serve().await;
        let signer = Signer::rsa(RSA_A, "k1");
        set_jwks(&served, StatusCode::OK, &json!({"keys": [signer.jwk()]}));
        let mut config = IssuerConfig::new("https://login.example.com", &["airlock"]);
        config.jwks_url = Some(format!("{base}/jwks"));
        let auth = authenticator(config);
        let token = signer.token(&claims(json!({"iss": "https://login.example.com"})));
        assert!(auth.verify_token(&token).await.is_ok());
        assert_eq!(served.discovery_hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_discovery_document_for_another_issuer_is_refused() {
        let (base, served) = serve().await;
        let signer = Signer::rsa(RSA_A, "k1");
        set_jwks(&served, StatusCode::OK, &json!({"keys": [signer.jwk()]}));
        *served.stated_issuer.lock().expect("lock") = "https://evil.example".into();
        let auth = authenticator(IssuerConfig::new(base.clone(), &["airlock"]));
        let outcome = auth.refresh_all().await.remove(0).1;
        assert!(
            outcome
                .expect_err("mismatch")
                .to_string()
                .contains("another issuer")
        );
        let token = signer.token(&claims(json!({"iss": base})));
        assert_eq!(
            auth.verify_token(&token).await.err(),
            Some(AuthError::KeysUnavailable)
        );
        assert_eq!(
            served.jwks_hits.load(Ordering::SeqCst),
            0,
            "keys never fetched from elsewhere"
        );
    }

    #[tokio::test]
    async fn broken_key_sets_are_errors_not_empty_sets() {
        let (base, served) = serve().await;
        let auth = authenticator(IssuerConfig::new(base.clone(), &["airlock"]));
        for (status, body, expected) in [
            (StatusCode::INTERNAL_SERVER_ERROR, json!({}), "answered 500"),
            (
                StatusCode::OK,
                json!({"keys": []}),
                "no usable signature key",
            ),
            (
                StatusCode::OK,
                json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
                "no usable signature key",
            ),
            (StatusCode::OK, json!({"nope": 1}), "not a JWKS document"),
            (
                StatusCode::OK,
                json!({"keys": [], "pad": "x".repeat(600 * 1024)}),
                "larger than",
            ),
        ] {
            set_jwks(&served, status, &body);
            let outcome = auth.refresh_all().await.remove(0).1;
            let message = outcome.expect_err(expected).to_string();
            assert!(message.contains(expected), "{expected}: {message}");
            assert!(!auth.is_ready());
        }
    }

    #[tokio::test]
    async fn a_claim_of_the_wrong_type_is_refused_through_the_api_and_audited() {
        use airlock_store::audit::AuditFilter;

        use crate::harness::{Harness, Issuer};
        use crate::support::Db;

        let (base, served) = serve().await;
        let signer = Signer::ec(EC_A, "ec-1");
        set_jwks(&served, StatusCode::OK, &json!({"keys": [signer.jwk()]}));
        let stack = Harness::new(Db::Sqlite)
            .issuer(Issuer::new(&base, &["airlock"]))
            .start()
            .await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs();
        let claims = |sub: Value| json!({"iss": base, "sub": sub, "aud": "airlock", "iat": now, "exp": now + 300, "roles": ["reader"]});
        let call = |token: String, request_id: &'static str| {
            stack
                .http
                .get(stack.url("/v1/jobs"))
                .bearer_auth(token)
                .header("x-request-id", request_id)
                .send()
        };
        let fine = call(signer.token(&claims(json!("svc-42"))), "typed-ok")
            .await
            .expect("answer");
        assert_eq!(fine.status(), StatusCode::OK, "a string sub is accepted");
        let numeric = call(signer.token(&claims(json!(42))), "typed-number")
            .await
            .expect("answer");
        assert_eq!(numeric.status(), StatusCode::UNAUTHORIZED);
        let body = numeric.text().await.expect("body");
        assert!(!body.contains("sub"), "the reason is not told: {body}");

        let records = stack
            .store()
            .await
            .audit_records(&AuditFilter {
                ascending: true,
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .expect("records");
        let refusal = records
            .iter()
            .find(|r| r.entry.origin.request_id.as_deref() == Some("typed-number"))
            .expect("the refusal is audited");
        assert_eq!(refusal.entry.action, "authenticate");
        assert_eq!(refusal.entry.decision, "deny");
        assert_eq!(refusal.entry.reason.as_deref(), Some("invalid_claim"));
        assert_eq!(
            refusal.entry.detail.as_ref().map(|d| d["claim"].clone()),
            Some(json!("sub"))
        );
    }
}
