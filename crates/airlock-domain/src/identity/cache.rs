//! Tokens already verified, so that a client calling often pays for one
//! signature check per token. Keyed by the token's SHA-256 (never by its
//! signature, which ECDSA makes malleable), bounded, and no entry outlives
//! its token's `exp` or the issuer key that verified it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::digest;

use super::principal::Principal;

/// How many verified tokens are remembered, by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// A token's cache key.
pub(crate) type TokenHash = [u8; 32];

/// The SHA-256 of a token.
pub(crate) fn token_hash(token: &str) -> TokenHash {
    let mut out = [0_u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

#[derive(Debug)]
struct Entry {
    principal: Arc<Principal>,
    /// The token's `exp`, in Unix seconds: the entry is dead from then on.
    expires_at: i64,
    /// Which issuer verified it, and the generation of that issuer's keys.
    issuer: usize,
    generation: u64,
    seq: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<TokenHash, Entry>,
    /// Insertion order, oldest first, for eviction.
    order: BTreeMap<u64, TokenHash>,
    next_seq: u64,
}

/// A bounded map from token hash to the principal it verified as.
#[derive(Debug)]
pub(crate) struct TokenCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The principal for `hash` if cached and alive at `now` (Unix
    /// seconds), with the issuer index and key generation that verified it:
    /// the caller checks that those keys are still current.
    pub(crate) fn get(&self, hash: &TokenHash, now: i64) -> Option<(Arc<Principal>, usize, u64)> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = inner.entries.get(hash)?;
        if now < entry.expires_at {
            return Some((Arc::clone(&entry.principal), entry.issuer, entry.generation));
        }
        if let Some(dead) = inner.entries.remove(hash) {
            inner.order.remove(&dead.seq);
        }
        None
    }

    /// Forgets a token (its keys changed since it was verified).
    pub(crate) fn remove(&self, hash: &TokenHash) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = inner.entries.remove(hash) {
            inner.order.remove(&entry.seq);
        }
    }

    /// Remembers a verified token, evicting the oldest entries when full.
    pub(crate) fn insert(
        &self,
        hash: TokenHash,
        principal: Arc<Principal>,
        expires_at: i64,
        issuer: usize,
        generation: u64,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = inner.entries.remove(&hash) {
            inner.order.remove(&old.seq);
        }
        while inner.entries.len() >= self.capacity {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            inner.entries.remove(&oldest);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.insert(seq, hash);
        inner.entries.insert(
            hash,
            Entry {
                principal,
                expires_at,
                issuer,
                generation,
                seq,
            },
        );
    }

    /// How many tokens are remembered.
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::PrincipalKind;

    fn principal(subject: &str) -> Arc<Principal> {
        Arc::new(Principal {
            issuer: "https://i".into(),
            subject: subject.into(),
            kind: PrincipalKind::User,
            client_id: None,
            display_name: subject.into(),
            roles: vec![],
            groups: vec![],
            scopes: vec![],
            email: None,
            claims: json!({}),
        })
    }

    #[test]
    fn entries_die_at_exp() {
        let cache = TokenCache::new(10);
        let h = token_hash("t1");
        cache.insert(h, principal("a"), 100, 3, 7);
        let (p, issuer, generation) = cache.get(&h, 99).expect("cached");
        assert_eq!((p.subject.as_str(), issuer, generation), ("a", 3, 7));
        assert!(cache.get(&h, 100).is_none(), "not at exp");
        assert_eq!(cache.len(), 0, "a dead entry is dropped");
        cache.insert(h, principal("a"), 100, 0, 1);
        cache.remove(&h);
        assert!(cache.get(&h, 0).is_none());
        assert!(cache.get(&token_hash("t2"), 0).is_none());
    }

    #[test]
    fn bounded_with_oldest_evicted_first() {
        let cache = TokenCache::new(3);
        for i in 0..5 {
            cache.insert(
                token_hash(&format!("t{i}")),
                principal(&format!("p{i}")),
                1_000,
                0,
                1,
            );
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&token_hash("t0"), 0).is_none());
        assert!(cache.get(&token_hash("t1"), 0).is_none());
        for i in 2..5 {
            assert!(
                cache.get(&token_hash(&format!("t{i}")), 0).is_some(),
                "t{i}"
            );
        }
        // Re-inserting a token does not grow the cache.
        cache.insert(token_hash("t4"), principal("p4"), 1_000, 0, 1);
        assert_eq!(cache.len(), 3);
        let none = TokenCache::new(0);
        none.insert(token_hash("x"), principal("x"), 1_000, 0, 1);
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn hash_is_sha256() {
        let h = token_hash("abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
