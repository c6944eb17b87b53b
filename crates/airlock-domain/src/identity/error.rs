//! Why a token is refused ([`AuthError`], with a stable code for logs and
//! the audit trail) and why an [`Authenticator`](super::Authenticator)
//! cannot be built ([`IdentityError`]).

use crate::settings::InvalidKey;

/// Why a request is not authenticated. Every variant becomes the same 401
/// for the caller; [`AuthError::code`] is for logs and the audit trail.
/// Messages never contain the token or its claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or `Bearer` with nothing after it.
    #[error("no bearer token")]
    MissingToken,
    /// An `Authorization` header with another scheme (`Basic`, ...).
    #[error("not a bearer token")]
    WrongScheme,
    /// Longer than [`MAX_TOKEN_BYTES`](super::MAX_TOKEN_BYTES).
    #[error("token too large")]
    TooLarge,
    /// Not a well-formed compact JWS.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is `none`, HMAC, unknown, or not allowed for the issuer.
    #[error("signature algorithm not allowed")]
    AlgNotAllowed,
    /// The key named by `kid` cannot verify this `alg`.
    #[error("signature algorithm does not fit the key")]
    AlgKeyMismatch,
    /// The header has a `crit` parameter.
    #[error("critical header extension not supported")]
    CritUnsupported,
    /// The token wraps another token (`cty: JWT`).
    #[error("nested tokens are not accepted")]
    NestedToken,
    /// The header's `typ` is not the one the issuer requires.
    #[error("wrong token type")]
    WrongType,
    /// `iss` names no configured issuer.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// The issuer's key set has no key with this `kid`, even after a refetch.
    #[error("unknown signing key")]
    UnknownKid,
    /// The issuer's keys could never be fetched.
    #[error("issuer keys unavailable")]
    KeysUnavailable,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Past `exp` (plus leeway).
    #[error("token expired")]
    Expired,
    /// Before `nbf`, or `iat` in the future (beyond leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` names none of the issuer's configured audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is absent.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type.
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
}

impl AuthError {
    /// A short, stable reason code for logs and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::WrongScheme => "wrong_scheme",
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::AlgKeyMismatch => "alg_key_mismatch",
            Self::CritUnsupported => "crit_unsupported",
            Self::NestedToken => "nested_token",
            Self::WrongType => "wrong_type",
            Self::UnknownIssuer => "unknown_issuer",
            Self::UnknownKid => "unknown_kid",
            Self::KeysUnavailable => "keys_unavailable",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
        }
    }

    /// The claim a [`MissingClaim`](Self::MissingClaim) or
    /// [`InvalidClaim`](Self::InvalidClaim) names (`sub`, `exp`...), for
    /// the log and the audit trail beside the code.
    pub fn claim(&self) -> Option<&'static str> {
        match self {
            Self::MissingClaim(claim) | Self::InvalidClaim(claim) => Some(claim),
            _ => None,
        }
    }
}

/// What can go wrong building an [`Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// An issuer's configuration is invalid.
    #[error(transparent)]
    Config(#[from] InvalidKey),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_distinct_snake_case() {
        let all = [
            AuthError::MissingToken,
            AuthError::WrongScheme,
            AuthError::TooLarge,
            AuthError::Malformed("x"),
            AuthError::AlgNotAllowed,
            AuthError::AlgKeyMismatch,
            AuthError::CritUnsupported,
            AuthError::NestedToken,
            AuthError::WrongType,
            AuthError::UnknownIssuer,
            AuthError::UnknownKid,
            AuthError::KeysUnavailable,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongAudience,
            AuthError::MissingClaim("x"),
            AuthError::InvalidClaim("x"),
        ];
        let mut codes: Vec<_> = all.iter().map(AuthError::code).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(AuthError::InvalidClaim("sub").claim(), Some("sub"));
        assert_eq!(AuthError::MissingClaim("exp").claim(), Some("exp"));
        assert_eq!(AuthError::BadSignature.claim(), None);
    }
}
