//! The console's two cookies, written in one place so their attributes
//! cannot drift apart:
//!
//! - the session (`airlock_session`, `__Host-airlock_session` when
//!   `Secure`): the session id (256 random bits). `HttpOnly` (no script
//!   reads it), `SameSite=Lax` (not sent on cross-site requests other than
//!   top-level navigations), `Path=/` (the API is under `/v1`), `Secure`
//!   per `[console] cookie_secure`, never a `Domain`, `Max-Age` until the
//!   session ends.
//! - the login (`airlock_login`, `__Secure-airlock_login` when `Secure`):
//!   the `state` of a login in flight, sent back only to
//!   `/console/callback`, for ten minutes; it binds the callback to the
//!   browser that started the login (no login CSRF). Its path rules out
//!   `__Host-`; `__Secure-` still keeps plain-HTTP pages from setting it.

use crate::web::session::{cookie_name, cookie_values};

/// The login cookie's name over plain HTTP.
pub const LOGIN_COOKIE: &str = "airlock_login";

/// The login cookie's name when cookies are `Secure`.
pub const SECURE_LOGIN_COOKIE: &str = "__Secure-airlock_login";

/// The login cookie's name, per `secure`.
pub fn login_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_LOGIN_COOKIE
    } else {
        LOGIN_COOKIE
    }
}

/// Where the identity provider sends the browser back.
pub const CALLBACK_PATH: &str = "/console/callback";

/// How long a login may take, in seconds.
pub const LOGIN_TTL_SECS: i64 = 600;

fn cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        max_age.max(0),
        if secure { "; Secure" } else { "" }
    )
}

/// Sets the session cookie for `max_age` seconds.
pub fn session(id: &str, max_age: i64, secure: bool) -> String {
    cookie(cookie_name(secure), id, "/", max_age, secure)
}

/// Removes the session cookie.
pub fn clear_session(secure: bool) -> String {
    cookie(cookie_name(secure), "", "/", 0, secure)
}

/// Sets the login cookie.
pub fn login(state: &str, secure: bool) -> String {
    let name = login_cookie_name(secure);
    cookie(name, state, CALLBACK_PATH, LOGIN_TTL_SECS, secure)
}

/// Removes the login cookie.
pub fn clear_login(secure: bool) -> String {
    cookie(login_cookie_name(secure), "", CALLBACK_PATH, 0, secure)
}

/// The `state` in the request's login cookie; none when the cookie is
/// there twice (the login then fails: which browser started it cannot be
/// told).
pub fn login_state(headers: &axum::http::HeaderMap, secure: bool) -> Option<&str> {
    match cookie_values(headers, login_cookie_name(secure)).as_slice() {
        [value] => Some(*value).filter(|value| crate::web::session::is_session_id(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(cookie: &str) -> Vec<&str> {
        cookie.split("; ").skip(1).collect()
    }

    #[test]
    fn the_session_cookie_is_http_only_lax_and_secure_when_asked() {
        let id = crate::web::session::new_secret();
        let set = session(&id, 3600, true);
        // The __Host- prefix: Secure, Path=/ and no Domain, or browsers drop it.
        assert!(set.starts_with(&format!("__Host-airlock_session={id}; ")));
        assert!(!set.to_ascii_lowercase().contains("domain"));
        assert_eq!(
            attributes(&set),
            [
                "Path=/",
                "Max-Age=3600",
                "HttpOnly",
                "SameSite=Lax",
                "Secure"
            ]
        );
        let plain = session(&id, 3600, false);
        assert!(plain.starts_with(&format!("airlock_session={id}; ")));
        assert_eq!(
            attributes(&plain),
            ["Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"]
        );
        let cleared = clear_session(true);
        assert!(cleared.starts_with("__Host-airlock_session=; "));
        assert!(cleared.ends_with("; Secure"));
        assert!(clear_session(false).starts_with("airlock_session=; "));
        assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/;"));
        assert!(session(&id, -5, false).contains("Max-Age=0"));
    }

    #[test]
    fn the_login_cookie_goes_to_the_callback_only() {
        let state = crate::web::session::new_secret();
        let set = login(&state, false);
        assert_eq!(
            attributes(&set),
            [
                "Path=/console/callback",
                "Max-Age=600",
                "HttpOnly",
                "SameSite=Lax"
            ]
        );
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "cookie",
            format!("{LOGIN_COOKIE}={state}; a=b")
                .parse()
                .expect("header"),
        );
        assert_eq!(login_state(&headers, false), Some(state.as_str()));
        assert_eq!(login_state(&headers, true), None, "not the Secure name");
        headers.insert("cookie", "airlock_login=<script>".parse().expect("header"));
        assert_eq!(login_state(&headers, false), None);
        headers.insert(
            "cookie",
            format!(
                "{LOGIN_COOKIE}={state}; {LOGIN_COOKIE}={}",
                crate::web::session::new_secret()
            )
            .parse()
            .expect("header"),
        );
        assert_eq!(login_state(&headers, false), None, "twice: none is taken");
        assert!(clear_login(false).contains("Max-Age=0"));
        let secure = login(&state, true);
        assert!(secure.starts_with(&format!("__Secure-airlock_login={state}; ")));
        assert!(secure.ends_with("; Secure"));
    }
}
