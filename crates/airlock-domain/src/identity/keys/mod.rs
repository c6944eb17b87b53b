//! Issuers' public keys: where they come from ([`KeySource`]), what a usable
//! key is ([`KeySet`]), and the per-issuer cache that refreshes them.
//!
//! Keys come only from the configured issuer's key set, never from a URL or
//! key inside a token (`jku`, `x5u`, `jwk`, `x5c` are ignored). A token
//! naming an unknown `kid` makes the cache fetch again at most once per
//! cooldown; when the provider is unreachable the last good keys stay.
//!
//! The parts: one key from its JWK (`jwk`), the key set and the choice of
//! a key for a token (`set`), the sources of key sets (`source`, and
//! `http` for discovery and JWKS endpoints), and the cache (`cache`).

mod cache;
mod http;
mod jwk;
mod set;
mod source;

pub use cache::KeyStatus;
pub(crate) use cache::{KeyCache, KeyLookup};
pub use http::{Discovery, HttpKeySource, discover};
pub use jwk::VerifyingKey;
pub(crate) use set::Selection;
pub use set::{KeySet, KeySetError};
pub use source::{KeyFuture, KeySource, KeySourceError, StaticKeySource};
