//! The `Airlock-Signature` header: `t=<unix seconds>,v1=<hex>`, where `<hex>`
//! is HMAC-SHA256 keyed with the webhook's secret over `"<t>.<body>"`.
//!
//! The timestamp is inside the signed text, so a receiver that rejects old
//! timestamps also rejects replays. The scheme is Stripe's, which receivers
//! often already know how to check.

use aws_lc_rs::hmac;

/// The name of the signature header.
pub const HEADER: &str = "Airlock-Signature";

/// The header value for `body` sent at `t` (unix seconds).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(t.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("t={t},v1={}", hex::encode(context.sign().as_ref()))
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Checks a header value against `body`, for receivers written in Rust (and
/// the tests): the timestamp must be within `tolerance_secs` of `now_secs`,
/// and one `v1` must match (several are allowed, for secret rotation).
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                candidates.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now_secs - t).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = Vec::with_capacity(body.len() + 12);
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    candidates
        .iter()
        .any(|tag| hmac::verify(&key, &signed, tag).is_ok())
        .then_some(())
        .ok_or(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_documented_scheme() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently.
        let header = sign(b"secret", 1_700_000_000, b"{}");
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"secret"),
            b"1700000000.{}",
        );
        assert_eq!(
            header,
            format!("t=1700000000,v1={}", hex::encode(expected.as_ref()))
        );
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
    }

    #[test]
    fn verifies_and_rejects() {
        let body = br#"{"event":"job.succeeded"}"#;
        let header = sign(b"k", 1000, body);
        assert_eq!(verify(b"k", &header, body, 1010, 300), Ok(()));
        assert_eq!(
            verify(b"other", &header, body, 1010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", &header, b"{}", 1010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", &header, body, 2000, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(b"k", "v1=00", body, 1000, 300),
            Err(SignatureError::Malformed)
        );
        let rotated = format!("{header},v1={}", "ab".repeat(32));
        assert_eq!(verify(b"k", &rotated, body, 1000, 300), Ok(()));
    }
}
