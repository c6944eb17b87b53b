//! The console's two cookies, written in one place so their attributes
//! cannot drift apart:
//!
//! - `airlock_session`: the session id (256 random bits). `HttpOnly` (no
//!   script reads it), `SameSite=Lax` (not sent on cross-site requests
//!   other than top-level navigations), `Path=/` (the API is under `/v1`),
//!   `Secure` per `[console] cookie_secure`, `Max-Age` until the session
//!   ends.
//! - `airlock_login`: the `state` of a login in flight, sent back only to
//!   `/console/callback`, for ten minutes; it binds the callback to the
//!   browser that started the login (no login CSRF).

use crate::web::session::COOKIE;

/// The login cookie's name.
pub const LOGIN_COOKIE: &str = "airlock_login";

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
    cookie(COOKIE, id, "/", max_age, secure)
}

/// Removes the session cookie.
pub fn clear_session(secure: bool) -> String {
    cookie(COOKIE, "", "/", 0, secure)
}

/// Sets the login cookie.
pub fn login(state: &str, secure: bool) -> String {
    cookie(LOGIN_COOKIE, state, CALLBACK_PATH, LOGIN_TTL_SECS, secure)
}

/// Removes the login cookie.
pub fn clear_login(secure: bool) -> String {
    cookie(LOGIN_COOKIE, "", CALLBACK_PATH, 0, secure)
}

/// The `state` in the request's login cookie.
pub fn login_state(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LOGIN_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| crate::web::session::is_session_id(value))
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
        assert!(set.starts_with(&format!("airlock_session={id}; ")));
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
        assert_eq!(
            attributes(&session(&id, 3600, false)),
            ["Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax"]
        );
        let cleared = clear_session(true);
        assert!(cleared.starts_with("airlock_session=; "));
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
        assert_eq!(login_state(&headers), Some(state.as_str()));
        headers.insert("cookie", "airlock_login=<script>".parse().expect("header"));
        assert_eq!(login_state(&headers), None);
        assert!(clear_login(false).contains("Max-Age=0"));
    }
}
