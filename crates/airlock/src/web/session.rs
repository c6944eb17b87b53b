//! Console sessions as the API sees them: the session cookie
//! (`__Host-airlock_session` when cookies are `Secure`, `airlock_session`
//! over plain HTTP), the session it names (from the store, through a short
//! in-memory cache), and the CSRF check every state-changing request made
//! with it must pass.
//!
//! The console creates and ends sessions; the `Caller`
//! extractor only reads them, so that a request from the console meets the
//! same policy, limits and audit trail as one with a bearer token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, header};
use serde::{Deserialize, Serialize};

use airlock_domain::identity::Principal;
use airlock_store::sessions::SessionRow;
use airlock_store::{Store, StoreError};

/// The session cookie's name over plain HTTP (development).
pub const COOKIE: &str = "airlock_session";

/// The session cookie's name when cookies are `Secure`. Browsers keep a
/// `__Host-` cookie only if this very host set it `Secure`, with `Path=/`
/// and no `Domain`, so a sibling subdomain or a plain-HTTP page cannot
/// plant one next to it (session fixation) or shadow it.
pub const SECURE_COOKIE: &str = "__Host-airlock_session";

/// The session cookie's name for a request whose cookies are (or are not)
/// `Secure` ([`cookie_is_secure`]).
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}

/// The header a state-changing request carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a session read from the database is trusted without reading it
/// again: a logout on another replica takes at most this long to be seen
/// there.
const CACHE_TTL_MS: i64 = 5_000;

/// Sessions kept in memory at most (the cache is emptied when full).
const CACHE_CAPACITY: usize = 10_000;

/// A signed-in browser, as the `Caller` extractor uses it.
#[derive(Clone)]
pub struct Session {
    /// Hex SHA-256 of the cookie's id: the key of the row.
    pub id_hash: String,
    /// Who signed in, as the API would compute it from their token.
    pub principal: Principal,
    /// Compared with `X-CSRF-Token` on state-changing requests.
    csrf_token: String,
    /// Unix ms.
    pub expires_at: i64,
}

/// The CSRF token stays out of `Debug` (and so out of logs).
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("subject", &self.principal.subject)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session a row describes; `None` when its principal does not
    /// parse (a row from an incompatible version: treated as no session).
    pub fn from_row(row: &SessionRow) -> Option<Self> {
        let principal = serde_json::from_str(&row.principal).ok()?;
        Some(Self {
            id_hash: row.id_hash.clone(),
            principal,
            csrf_token: row.csrf_token.clone(),
            expires_at: row.expires_at,
        })
    }

    /// The CSRF token, for its owner only (`/console/session`).
    pub fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// Why a state-changing request made with a session cookie is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfFailure {
    /// No `X-CSRF-Token` header.
    MissingToken,
    /// A token that is not this session's.
    WrongToken,
    /// An `Origin` header naming another origin than Airlock's own.
    CrossOrigin,
}

impl CsrfFailure {
    /// The reason code for the log and the audit trail.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingToken => "csrf_token_missing",
            Self::WrongToken => "csrf_token_mismatch",
            Self::CrossOrigin => "origin_mismatch",
        }
    }

    /// What the client is told (it says nothing about the session).
    pub fn message(self) -> &'static str {
        match self {
            Self::MissingToken => "the X-CSRF-Token header is missing",
            Self::WrongToken => "the X-CSRF-Token header does not match the session",
            Self::CrossOrigin => "the request comes from another origin",
        }
    }
}

/// Whether a method changes state (and so needs the CSRF token).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF check of a state-changing request made with `session`: its
/// `X-CSRF-Token` equals the session's token (compared in constant time)
/// and its `Origin`, when present, is `own_origin`.
pub fn check_csrf(
    headers: &HeaderMap,
    session: &Session,
    own_origin: &str,
) -> Result<(), CsrfFailure> {
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.as_bytes() != own_origin.as_bytes()
    {
        return Err(CsrfFailure::CrossOrigin);
    }
    let Some(sent) = headers.get(CSRF_HEADER) else {
        return Err(CsrfFailure::MissingToken);
    };
    aws_lc_rs::constant_time::verify_slices_are_equal(
        sent.as_bytes(),
        session.csrf_token.as_bytes(),
    )
    .map_err(|_| CsrfFailure::WrongToken)
}

/// The request carries the session cookie more than once (in one `Cookie`
/// header or several): which one is the session cannot be told, so the
/// request is refused rather than one of them picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateCookie;

/// The values of every cookie called `name` in the request's `Cookie`
/// headers, in order.
pub fn cookie_values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(found, _)| found.trim() == name)
        .map(|(_, value)| value.trim())
        .collect()
}

/// The id in the request's session cookie (named per `secure`), when there
/// is one of the right shape (43 base64url characters: 256 bits); an error
/// when the cookie is there twice.
pub fn cookie_id(headers: &HeaderMap, secure: bool) -> Result<Option<&str>, DuplicateCookie> {
    match cookie_values(headers, cookie_name(secure)).as_slice() {
        [] => Ok(None),
        [value] => Ok(Some(*value).filter(|value| is_session_id(value))),
        _ => Err(DuplicateCookie),
    }
}

/// 43 base64url characters (no padding): what [`new_secret`] makes.
pub fn is_session_id(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 256 random bits, base64url without padding (43 characters): session
/// ids, CSRF tokens, login `state`s and PKCE verifiers.
pub fn new_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    // The system's generator; should it fail, rand's thread generator
    // (a CSPRNG seeded by the system) takes over.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes = rand::random();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256: how ids and states are stored.
pub fn hash_of(secret: &str) -> String {
    airlock_domain::audit::sha256_hex(secret.as_bytes())
}

/// How browsers see Airlock: the origin they reach it at and whether its
/// cookies are `Secure`. The composition root fills it from `[console]`
/// and `[front]`.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// `[console] public_url`, else `[front] public_url`.
    pub public_url: Option<String>,
    /// `[console] cookie_secure`.
    pub cookie_secure: CookieSecure,
}

/// When the console's cookies carry `Secure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    /// When the console's public URL is `https`, or the request came over
    /// TLS (a proxy in front says so with `X-Forwarded-Proto: https`).
    #[default]
    Auto,
    Always,
    Never,
}

/// `scheme://host[:port]` browsers reach Airlock at: the site's public
/// URL, else the request's `Host` (with the scheme a proxy states in
/// `X-Forwarded-Proto`, `http` otherwise).
pub fn own_origin(site: &Site, headers: &HeaderMap) -> String {
    if let Some(url) = &site.public_url {
        return origin_of_url(url);
    }
    let host = request_host(headers);
    let scheme = if forwarded_https(headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The origin part of a URL: scheme and authority, lowercase scheme, no
/// trailing slash or path.
fn origin_of_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{}://{authority}", scheme.to_ascii_lowercase())
}

/// A proxy in front says the request came over TLS.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Whether the console's cookies get `Secure` for this request:
/// `[console] cookie_secure`, where `auto` means "when the public URL is
/// https or the request came over TLS".
pub fn cookie_is_secure(site: &Site, headers: &HeaderMap) -> bool {
    match site.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => {
            own_origin(site, headers).starts_with("https://") || forwarded_https(headers)
        }
    }
}

/// Sessions by the hash of their id: the store, with a short cache in
/// front so that a page's burst of API calls reads the database once.
#[derive(Debug)]
pub struct Sessions {
    store: Store,
    cache: Mutex<HashMap<String, (Arc<Session>, i64)>>,
}

impl Sessions {
    /// Sessions kept in `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Session>, i64)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live session whose cookie id is `id`, if any.
    pub async fn find(&self, id: &str, now: i64) -> Result<Option<Arc<Session>>, StoreError> {
        self.find_by_hash(&hash_of(id), now).await
    }

    /// The live session stored under `id_hash`, if any (a stream opened by
    /// a session checks with it that the session still exists).
    pub async fn find_by_hash(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let id_hash = id_hash.to_owned();
        let cached = self.cache().get(&id_hash).cloned();
        if let Some((session, read_at)) = cached
            && session.expires_at > now
            && now - read_at < CACHE_TTL_MS
        {
            return Ok(Some(session));
        }
        let found = self
            .store
            .get_session(&id_hash, now)
            .await?
            .as_ref()
            .and_then(Session::from_row)
            .map(Arc::new);
        let mut cache = self.cache();
        match &found {
            Some(session) => {
                if cache.len() >= CACHE_CAPACITY {
                    cache.retain(|_, (s, read_at)| {
                        s.expires_at > now && now - *read_at < CACHE_TTL_MS
                    });
                    if cache.len() >= CACHE_CAPACITY {
                        cache.clear();
                    }
                }
                cache.insert(id_hash, (Arc::clone(session), now));
            }
            None => {
                cache.remove(&id_hash);
            }
        }
        Ok(found)
    }

    /// Forgets a session here (after a logout); other replicas forget it
    /// within [`CACHE_TTL_MS`].
    pub fn forget(&self, id_hash: &str) {
        self.cache().remove(id_hash);
    }
}

/// The request's `Host`, when it is a plausible host name or address (and
/// port); `localhost` otherwise. For building the server's own URLs.
pub(crate) fn request_host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost")
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn session(csrf: &str) -> Session {
        Session {
            id_hash: String::new(),
            principal: serde_json::from_value(serde_json::json!({
                "issuer": "https://id.example", "subject": "u", "kind": "user",
                "client_id": null, "display_name": "u", "roles": [], "groups": [],
                "scopes": [], "email": null, "claims": {}
            }))
            .expect("a principal"),
            csrf_token: csrf.to_owned(),
            expires_at: i64::MAX,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
    }

    #[test]
    fn csrf_needs_the_sessions_token_and_the_own_origin() {
        let token = new_secret();
        let s = session(&token);
        let own = "https://airlock.example";
        assert_eq!(
            check_csrf(&headers(&[("x-csrf-token", &token)]), &s, own),
            Ok(())
        );
        assert_eq!(
            check_csrf(
                &headers(&[("x-csrf-token", &token), ("origin", own)]),
                &s,
                own
            ),
            Ok(())
        );
        assert_eq!(
            check_csrf(&headers(&[]), &s, own),
            Err(CsrfFailure::MissingToken)
        );
        assert_eq!(
            check_csrf(&headers(&[("x-csrf-token", &new_secret())]), &s, own),
            Err(CsrfFailure::WrongToken)
        );
        assert_eq!(
            check_csrf(&headers(&[("x-csrf-token", &token[..20])]), &s, own),
            Err(CsrfFailure::WrongToken),
            "a prefix is not the token"
        );
        for origin in [
            "https://evil.example",
            "http://airlock.example",
            "https://airlock.example:8443",
            "null",
        ] {
            assert_eq!(
                check_csrf(
                    &headers(&[("x-csrf-token", &token), ("origin", origin)]),
                    &s,
                    own
                ),
                Err(CsrfFailure::CrossOrigin),
                "{origin}"
            );
        }
        assert!(changes_state(&Method::POST) && changes_state(&Method::DELETE));
        assert!(!changes_state(&Method::GET) && !changes_state(&Method::HEAD));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_must_look_like_an_id() {
        let id = new_secret();
        assert_eq!(id.len(), 43);
        assert!(is_session_id(&id));
        let plain = |pairs: &[(&'static str, &str)]| {
            cookie_id(&headers(pairs), false).map(|found| found.map(str::to_owned))
        };
        let cookie = format!("theme=dark; {COOKIE}={id}; other=1");
        assert_eq!(plain(&[("cookie", &cookie)]), Ok(Some(id.clone())));
        assert_eq!(
            plain(&[("cookie", "a=b"), ("cookie", &format!("{COOKIE}={id}"))]),
            Ok(Some(id.clone()))
        );
        assert_eq!(plain(&[("cookie", &format!("{COOKIE}=short"))]), Ok(None));
        assert_eq!(plain(&[("cookie", &format!("x{COOKIE}={id}"))]), Ok(None));
        assert_eq!(plain(&[]), Ok(None));
        // Secure: only the __Host- cookie is the session.
        let secure = format!("{COOKIE}={}; {SECURE_COOKIE}={id}", new_secret());
        assert_eq!(
            cookie_id(&headers(&[("cookie", &secure)]), true),
            Ok(Some(id.as_str()))
        );
        assert_eq!(
            cookie_id(&headers(&[("cookie", &format!("{COOKIE}={id}"))]), true),
            Ok(None)
        );
        assert_ne!(new_secret(), new_secret());
        assert_eq!(hash_of("abc").len(), 64);
    }

    #[test]
    fn a_session_cookie_sent_twice_is_refused_not_picked() {
        let (mine, planted) = (new_secret(), new_secret());
        for secure in [false, true] {
            let name = cookie_name(secure);
            let twice_in_one = format!("{name}={planted}; {name}={mine}");
            assert_eq!(
                cookie_id(&headers(&[("cookie", &twice_in_one)]), secure),
                Err(DuplicateCookie)
            );
            let in_two = [
                ("cookie", format!("{name}={planted}")),
                ("cookie", format!("a=b; {name} = {mine}")),
            ];
            let in_two: Vec<(&'static str, &str)> =
                in_two.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(cookie_id(&headers(&in_two), secure), Err(DuplicateCookie));
            // Even when one of them is not a well-formed id.
            let odd = format!("{name}=x; {name}={mine}");
            assert_eq!(
                cookie_id(&headers(&[("cookie", &odd)]), secure),
                Err(DuplicateCookie)
            );
        }
    }

    #[test]
    fn the_own_origin_and_secure_follow_the_configuration() {
        let mut site = Site::default();
        let plain = headers(&[("host", "airlock.local:8080")]);
        assert_eq!(own_origin(&site, &plain), "http://airlock.local:8080");
        assert!(!cookie_is_secure(&site, &plain));
        let proxied = headers(&[("host", "airlock.example"), ("x-forwarded-proto", "https")]);
        assert_eq!(own_origin(&site, &proxied), "https://airlock.example");
        assert!(cookie_is_secure(&site, &proxied));
        site.public_url = Some("https://console.example/".into());
        assert_eq!(own_origin(&site, &plain), "https://console.example");
        assert!(
            cookie_is_secure(&site, &plain),
            "auto: the public URL is https"
        );
        site.cookie_secure = CookieSecure::Never;
        assert!(!cookie_is_secure(&site, &proxied));
        site.public_url = None;
        site.cookie_secure = CookieSecure::Always;
        assert!(cookie_is_secure(&site, &plain));
        site.public_url = Some("https://front.example".into());
        assert_eq!(own_origin(&site, &plain), "https://front.example");
        let hostile = headers(&[("host", "evil\"host")]);
        site.public_url = None;
        assert_eq!(own_origin(&site, &hostile), "http://localhost");
    }
}
