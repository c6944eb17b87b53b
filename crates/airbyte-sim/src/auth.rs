//! The token store behind Airbyte's authentication: opaque bearer tokens issued for
//! client credentials, each expiring at a simulated instant. The HTTP side
//! (`POST /applications/token`, the bearer check and the 401 body) is in `api::auth`.

use std::collections::HashMap;

use crate::clock::Millis;

/// Issued tokens and when they expire (simulated milliseconds).
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    tokens: HashMap<String, Millis>,
}

impl TokenStore {
    pub(crate) fn issue(&mut self, now: Millis, lifetime_ms: Millis) -> String {
        if self.tokens.len() > 50_000 {
            self.tokens.retain(|_, exp| *exp > now);
        }
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let token = hex::encode(bytes);
        self.tokens.insert(token.clone(), now + lifetime_ms);
        token
    }

    pub(crate) fn is_valid(&self, token: &str, now: Millis) -> bool {
        self.tokens.get(token).is_some_and(|&exp| exp > now)
    }

    pub(crate) fn revoke(&mut self, token: &str) {
        self.tokens.remove(token);
    }

    /// Forgets every token; returns how many there were.
    pub(crate) fn expire_all(&mut self) -> usize {
        let n = self.tokens.len();
        self.tokens.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_can_be_revoked() {
        let mut store = TokenStore::default();
        let t = store.issue(0, 1_000);
        assert!(store.is_valid(&t, 999));
        assert!(!store.is_valid(&t, 1_000));
        let u = store.issue(0, 1_000);
        store.revoke(&u);
        assert!(!store.is_valid(&u, 0));
        assert!(!store.is_valid("nope", 0));
    }
}
