//! A bearer token taken apart and checked before and after its signature:
//! everything about a JWT that needs no key.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::AuthError;
use super::claims::{StrictJsonError, parse_strict_object};

/// The largest token accepted, in bytes; longer ones are refused before
/// any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The token in an `Authorization: Bearer ...` header. The scheme is
/// case-insensitive (RFC 9110); the token must be one run of base64url
/// characters and dots.
pub(crate) fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::MissingToken)?;
    if header.len() > MAX_TOKEN_BYTES + "Bearer ".len() {
        return Err(AuthError::TooLarge);
    }
    if header.trim().is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::WrongScheme);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

/// A token whose structure is sound and whose header Airlock accepts; its
/// signature and claims are not checked yet.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: &'a str,
}

fn is_base64url_or_dot(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')
}

fn decode_part(part: &str, which: &'static str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(which_b64(which)))?;
    parse_strict_object(&bytes).map_err(|e| {
        AuthError::Malformed(match (which, e) {
            ("header", StrictJsonError::DuplicateKey) => "duplicate key in the header",
            ("header", _) => "the header is not a JSON object",
            (_, StrictJsonError::DuplicateKey) => "duplicate claim",
            _ => "the payload is not a JSON object",
        })
    })
}

fn which_b64(which: &'static str) -> &'static str {
    if which == "header" {
        "the header is not base64url"
    } else {
        "the payload is not base64url"
    }
}

/// Takes a compact JWS apart and checks its header: size, shape, no
/// duplicate keys, an allowed asymmetric `alg`, no `crit`, no nested JWT.
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    if !token.bytes().all(is_base64url_or_dot) {
        return Err(AuthError::Malformed("characters outside base64url"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_part, payload_part, signature] = parts[..] else {
        return Err(AuthError::Malformed(if parts.len() == 5 {
            "encrypted tokens (JWE) are not accepted"
        } else {
            "not three dot-separated parts"
        }));
    };
    if header_part.is_empty() || payload_part.is_empty() {
        return Err(AuthError::Malformed("empty header or payload"));
    }
    let header = decode_part(header_part, "header")?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(AuthError::Malformed("alg is not a string")),
        None => return Err(AuthError::Malformed("no alg in the header")),
    };
    let alg = match Algorithm::from_str(alg) {
        Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) | Err(_) => {
            return Err(AuthError::AlgNotAllowed);
        }
        Ok(alg) => alg,
    };
    // RFC 7515 4.1.11: a receiver must reject a token whose `crit` names an
    // extension it does not understand. Airlock understands none.
    if header.contains_key("crit") {
        return Err(AuthError::CritUnsupported);
    }
    let text = |name: &'static str| -> Result<Option<String>, AuthError> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(AuthError::Malformed(
                "a header parameter has the wrong type",
            )),
        }
    };
    if let Some(cty) = text("cty")?
        && (cty.eq_ignore_ascii_case("JWT") || cty.eq_ignore_ascii_case("application/jwt"))
    {
        return Err(AuthError::NestedToken);
    }
    if header.contains_key("enc") || header.contains_key("zip") {
        return Err(AuthError::Malformed(
            "encryption parameters in a signed token",
        ));
    }
    let kid = text("kid")?;
    let typ = text("typ")?;
    let claims = decode_part(payload_part, "payload")?;
    if signature.is_empty() {
        return Err(AuthError::BadSignature);
    }
    Ok(Unverified {
        alg,
        kid,
        typ,
        claims,
        signing_input: &token[..header_part.len() + 1 + payload_part.len()],
        signature,
    })
}

/// Whether the header's `typ` is what the issuer requires; `application/`
/// prefixes and case are ignored (RFC 7515 4.1.9).
pub(crate) fn type_matches(typ: Option<&str>, expected: &str) -> bool {
    let normalize = |t: &str| {
        let t = t.trim();
        // `get` rather than indexing: the header is untrusted and may put a
        // multi-byte character across byte 12.
        let t = match (t.get(..12), t.get(12..)) {
            (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
            _ => t,
        };
        t.to_ascii_lowercase()
    };
    typ.is_some_and(|t| normalize(t) == normalize(expected))
}

/// A NumericDate claim in whole seconds; `Ok(None)` when absent. Strings,
/// booleans and the like are refused (CVE-2026-25537).
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if n.as_u64().is_some() {
                Ok(Some(i64::MAX))
            } else {
                // `as` saturates far outside i64; JSON has no NaN.
                Ok(n.as_f64().map(|f| f.floor() as i64))
            }
        }
        Some(_) => Err(AuthError::InvalidClaim(name)),
    }
}

/// RFC 7519 4.1: `iss`, `sub` and `jti` are strings when present (the
/// types of `aud`, `exp`, `nbf` and `iat` are checked where they are read).
/// A claim of another type refuses the token: it is never coerced.
pub(crate) fn check_string_claims(claims: &Map<String, Value>) -> Result<(), AuthError> {
    for name in ["iss", "sub", "jti"] {
        if claims.get(name).is_some_and(|value| !value.is_string()) {
            return Err(AuthError::InvalidClaim(name));
        }
    }
    Ok(())
}

/// Checks the registered claims' types, the time claims and the audience
/// of a token whose signature was verified; returns its `exp`.
pub(crate) fn check_claims(
    claims: &Map<String, Value>,
    audiences: &[String],
    leeway_secs: u64,
    now: i64,
) -> Result<i64, AuthError> {
    check_string_claims(claims)?;
    let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
    let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(leeway) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && now.saturating_add(leeway) < nbf
    {
        return Err(AuthError::NotYetValid);
    }
    if let Some(iat) = numeric_date(claims, "iat")?
        && iat > now.saturating_add(leeway)
    {
        return Err(AuthError::NotYetValid);
    }
    let named: Vec<&str> = match claims.get("aud") {
        None => return Err(AuthError::MissingClaim("aud")),
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or(AuthError::InvalidClaim("aud")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(AuthError::InvalidClaim("aud")),
    };
    if !named.iter().any(|aud| audiences.iter().any(|a| a == aud)) {
        return Err(AuthError::WrongAudience);
    }
    Ok(exp)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
        assert_eq!(
            bearer_token(Some("bearer abc")),
            Ok("abc"),
            "scheme is case-insensitive"
        );
        assert_eq!(bearer_token(Some("BEARER  abc")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("")), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::MissingToken));
        assert_eq!(bearer_token(Some("Bearer ")), Err(AuthError::MissingToken));
        assert_eq!(
            bearer_token(Some("Basic dXNlcjpwdw==")),
            Err(AuthError::WrongScheme)
        );
        assert_eq!(bearer_token(Some("Bearerabc")), Err(AuthError::WrongScheme));
        assert_eq!(bearer_token(Some("Token abc")), Err(AuthError::WrongScheme));
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 100));
        assert_eq!(bearer_token(Some(&huge)), Err(AuthError::TooLarge));
    }

    #[test]
    fn header_checks() {
        let payload = b64(&json!({"iss": "x"}));
        let with = |header: Value| format!("{}.{payload}.c2ln", b64(&header));
        assert!(parse(&with(json!({"alg": "RS256", "kid": "k"}))).is_ok());
        for alg in [
            "none", "None", "NONE", "nOnE", "HS256", "HS384", "HS512", "rs256", "RS1", "",
        ] {
            assert_eq!(
                parse(&with(json!({"alg": alg}))).err(),
                Some(AuthError::AlgNotAllowed),
                "{alg}"
            );
        }
        assert_eq!(
            parse(&with(json!({"alg": "RS256", "crit": ["exp"], "exp": 1}))).err(),
            Some(AuthError::CritUnsupported)
        );
        assert_eq!(
            parse(&with(json!({"alg": "RS256", "cty": "JWT"}))).err(),
            Some(AuthError::NestedToken)
        );
        assert_eq!(
            parse(&with(json!({"alg": "RS256", "cty": "jwt"}))).err(),
            Some(AuthError::NestedToken)
        );
        assert!(matches!(
            parse(&with(json!({"alg": "RS256", "kid": 7}))),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            parse(&with(json!({"kid": "k"}))),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            parse(&with(json!({"alg": ["RS256"]}))),
            Err(AuthError::Malformed(_))
        ));
        let dup = format!(
            "{}.{payload}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","alg":"none"}"#)
        );
        assert!(matches!(parse(&dup), Err(AuthError::Malformed(_))));
        let unsigned = format!("{}.{payload}.", b64(&json!({"alg": "RS256"})));
        assert_eq!(parse(&unsigned).err(), Some(AuthError::BadSignature));
        assert!(matches!(parse("a.b.c.d.e"), Err(AuthError::Malformed(_))));
        assert!(matches!(parse("a.b"), Err(AuthError::Malformed(_))));
        assert!(matches!(parse("a b.c.d"), Err(AuthError::Malformed(_))));
        assert_eq!(parse("").err(), Some(AuthError::MissingToken));
    }

    #[test]
    fn signing_input_is_header_dot_payload() {
        let header = b64(&json!({"alg": "ES256", "typ": "at+jwt"}));
        let payload = b64(&json!({"sub": "s"}));
        let token = format!("{header}.{payload}.c2ln");
        let parsed = parse(&token).expect("parses");
        assert_eq!(parsed.signing_input, format!("{header}.{payload}"));
        assert_eq!(parsed.signature, "c2ln");
        assert_eq!(parsed.alg, Algorithm::ES256);
        assert_eq!(parsed.typ.as_deref(), Some("at+jwt"));
    }

    #[test]
    fn typ_comparison() {
        assert!(type_matches(Some("at+jwt"), "at+jwt"));
        assert!(type_matches(Some("application/AT+JWT"), "at+jwt"));
        assert!(
            !type_matches(Some("applicatioñ+jwt"), "at+jwt"),
            "no panic on a split character"
        );
        assert!(!type_matches(Some("ééééééé"), "at+jwt"));
        assert!(!type_matches(Some("JWT"), "at+jwt"));
        assert!(!type_matches(None, "at+jwt"));
    }

    #[test]
    fn time_and_audience_claims() {
        let aud = vec!["airlock".to_owned()];
        let now = 1_000_000;
        let ok = claims(json!({"exp": now + 10, "aud": "airlock"}));
        assert_eq!(check_claims(&ok, &aud, 60, now), Ok(now + 10));
        let cases = [
            (json!({"aud": "airlock"}), AuthError::MissingClaim("exp")),
            (
                json!({"exp": "9999999999", "aud": "airlock"}),
                AuthError::InvalidClaim("exp"),
            ),
            (
                json!({"exp": now - 61, "aud": "airlock"}),
                AuthError::Expired,
            ),
            (
                json!({"exp": now - 60, "aud": "airlock"}),
                AuthError::Expired,
            ),
            (
                json!({"exp": now + 600, "nbf": now + 61, "aud": "airlock"}),
                AuthError::NotYetValid,
            ),
            (
                json!({"exp": now + 600, "iat": now + 3_600, "aud": "airlock"}),
                AuthError::NotYetValid,
            ),
            (
                json!({"exp": now + 600, "nbf": "0", "aud": "airlock"}),
                AuthError::InvalidClaim("nbf"),
            ),
            (json!({"exp": now + 600}), AuthError::MissingClaim("aud")),
            (
                json!({"exp": now + 600, "aud": "other"}),
                AuthError::WrongAudience,
            ),
            (
                json!({"exp": now + 600, "aud": []}),
                AuthError::WrongAudience,
            ),
            (
                json!({"exp": now + 600, "aud": ["airlock", 5]}),
                AuthError::InvalidClaim("aud"),
            ),
            (
                json!({"exp": now + 600, "aud": {"airlock": true}}),
                AuthError::InvalidClaim("aud"),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                check_claims(&claims(value.clone()), &aud, 60, now),
                Err(expected),
                "{value}"
            );
        }
        // Within the leeway: a little expired, a little early.
        let skewed = claims(json!({"exp": now - 30, "nbf": now + 30, "aud": ["x", "airlock"]}));
        assert_eq!(check_claims(&skewed, &aud, 60, now), Ok(now - 30));
        let float = claims(json!({"exp": 1e300, "aud": "airlock"}));
        assert_eq!(check_claims(&float, &aud, 60, now), Ok(i64::MAX));
    }

    #[test]
    fn registered_claims_of_the_wrong_json_type_are_refused() {
        let aud = vec!["airlock".to_owned()];
        let now = 1_000_000;
        let base = json!({"iss": "https://id.example", "sub": "s", "jti": "j", "aud": "airlock", "exp": now + 600, "nbf": now, "iat": now});
        assert_eq!(
            check_claims(&claims(base.clone()), &aud, 60, now),
            Ok(now + 600)
        );
        let wrong: [(&str, Value); 22] = [
            ("sub", json!(42)),
            ("sub", json!(4.2)),
            ("sub", json!(true)),
            ("sub", json!(null)),
            ("sub", json!(["s"])),
            ("sub", json!({"id": "s"})),
            ("iss", json!(["https://id.example"])),
            ("iss", json!({"iss": "https://id.example"})),
            ("jti", json!(7)),
            ("aud", json!({"airlock": true})),
            ("aud", json!(1)),
            ("aud", json!(null)),
            ("aud", json!([["airlock"]])),
            ("exp", json!((now + 600).to_string())),
            ("exp", json!(true)),
            ("exp", json!([now + 600])),
            ("exp", json!(null)),
            ("nbf", json!("0")),
            ("nbf", json!({"t": 0})),
            ("iat", json!(now.to_string())),
            ("iat", json!([now])),
            ("iat", json!(false)),
        ];
        for (name, value) in wrong {
            let mut token = base.clone();
            token[name] = value.clone();
            assert_eq!(
                check_claims(&claims(token), &aud, 60, now),
                Err(AuthError::InvalidClaim(name)),
                "{name}: {value}"
            );
        }
    }
}
