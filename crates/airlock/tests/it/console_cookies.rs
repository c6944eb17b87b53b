//! The console's cookies under attack: with `Secure` cookies the session is
//! a `__Host-` cookie (a plain-named one, as a sibling subdomain or a
//! plain-HTTP page could plant, is not a session), and a request carrying
//! the session cookie twice, in one `Cookie` header or in two, is refused
//! and audited rather than one of them picked.

use airlock::web::session::new_secret;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use serde_json::Value;

use crate::console::{audit, browser, cookie_value, fast_sim, json, set_cookies, to_callback};
use crate::harness::{Harness, Stack};
use crate::support::Db;

/// Signs `user` in on a stack whose cookies are `Secure`: the session
/// cookie's `Set-Cookie`, checked for what the `__Host-` prefix requires.
async fn sign_in_secure(stack: &Stack, user: &str) -> String {
    let (callback, state) = to_callback(stack, user).await;
    // The login cookie is `__Secure-` (its path rules out `__Host-`); the
    // plain name does not carry a login.
    let plain = browser()
        .get(&callback)
        .header(COOKIE, format!("airlock_login={state}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(plain.status(), StatusCode::SEE_OTHER);
    assert!(!set_cookies(&plain).contains_key("__Host-airlock_session"));
    let (callback, state) = to_callback(stack, user).await;
    let back = browser()
        .get(&callback)
        .header(COOKIE, format!("__Secure-airlock_login={state}"))
        .send()
        .await
        .expect("callback");
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let cookies = set_cookies(&back);
    assert!(!cookies.contains_key("airlock_session"), "{cookies:?}");
    let set = cookies
        .get("__Host-airlock_session")
        .expect("a __Host- session cookie")
        .clone();
    let attributes: Vec<&str> = set.split("; ").skip(1).collect();
    for wanted in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(attributes.contains(&wanted), "{set}");
    }
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "{set}"
    );
    cookie_value(&set)
}

/// `GET path` with each of `cookies` as its own `Cookie` header.
async fn get_with(stack: &Stack, path: &str, cookies: &[String]) -> (StatusCode, String, Value) {
    let mut request = browser().get(stack.url(path));
    for cookie in cookies {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.expect("Airlock answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        content_type,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn secure_sessions_are_host_cookies_and_a_doubled_cookie_is_refused() {
    let stack = Harness::new(Db::Sqlite)
        .sim(fast_sim())
        .set("console", "cookie_secure", "always")
        .set("server", "refusal_window_secs", 1)
        .start()
        .await;
    let id = sign_in_secure(&stack, "rene").await;
    let host = |value: &str| format!("__Host-airlock_session={value}");

    let (status, _, whoami) = get_with(&stack, "/v1/whoami", &[host(&id)]).await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    assert_eq!(whoami["subject"], "rene", "{whoami}");
    // The plain name is no session when cookies are Secure, even with the
    // right id: a planted cookie of that name is never read.
    let (status, _, body) =
        get_with(&stack, "/v1/whoami", &[format!("airlock_session={id}")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A planted session next to the real one, in either order, in one
    // header or two: refused, not picked.
    let planted = new_secret();
    let attacks = [
        vec![format!("{}; {}", host(&planted), host(&id))],
        vec![format!("{}; theme=dark; {}", host(&id), host(&planted))],
        vec![host(&id), host(&planted)],
        vec![format!("a=b; {}", host(&planted)), host(&id)],
    ];
    for cookies in &attacks {
        for path in ["/v1/whoami", "/console/session"] {
            let (status, content_type, problem) = get_with(&stack, path, cookies).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{path} {cookies:?}: {problem}"
            );
            assert_eq!(content_type, "application/problem+json", "{problem}");
            assert_eq!(problem["status"], 400, "{problem}");
            assert_eq!(problem["errors"][0]["pointer"], "Cookie", "{problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("more than once"), "{problem}");
            assert!(!problem.to_string().contains(&id), "the id is not echoed");
        }
    }
    // Audited as refusals of unidentified requests: the first at once, the
    // rest as one record with a count when the (one-second) window closes.
    let counted = |records: &[Value]| -> u64 {
        records
            .iter()
            .map(|r| r["detail"]["repeated"].as_u64().unwrap_or(1))
            .sum()
    };
    let mut refusals: Vec<Value> = Vec::new();
    for _ in 0..100 {
        refusals = audit(&stack, "action=authenticate&decision=deny&limit=100")
            .await
            .into_iter()
            .filter(|r| r["reason"] == "duplicate_session_cookie")
            .collect();
        if counted(&refusals) >= 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        counted(&refusals),
        u64::try_from(attacks.len() * 2).expect("small"),
        "{refusals:#?}"
    );
    assert!(
        refusals.iter().all(|r| r["outcome"] == "400"),
        "{refusals:#?}"
    );
    assert!(
        refusals.iter().all(|r| !r.to_string().contains(&id)),
        "the id is not audited"
    );

    // Two plain-named cookies are not the session's name: ignored, no session.
    let doubled_plain = format!("airlock_session={id}; airlock_session={planted}");
    let (status, _, body) = get_with(&stack, "/v1/whoami", &[doubled_plain]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The session still works, and logging out clears the __Host- cookie.
    let (_, _, session) = get_with(&stack, "/console/session", &[host(&id)]).await;
    let csrf = session["csrf_token"].as_str().expect("a CSRF token");
    let out = browser()
        .post(stack.url("/console/logout"))
        .header(COOKIE, host(&id))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&out)
        .remove("__Host-airlock_session")
        .expect("cleared");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Path=/") && cleared.ends_with("Secure"),
        "{cleared}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_doubled_plain_session_cookie_is_refused_too() {
    let stack = Harness::new(Db::Sqlite).sim(fast_sim()).start().await;
    let (callback, state) = to_callback(&stack, "rosa").await;
    let back = browser()
        .get(&callback)
        .header(COOKIE, format!("airlock_login={state}"))
        .send()
        .await
        .expect("callback");
    let set = set_cookies(&back)
        .remove("airlock_session")
        .expect("a plain session cookie over HTTP");
    assert!(!set.contains("Secure"), "{set}");
    let id = cookie_value(&set);
    let (status, _) = json(
        browser()
            .get(stack.url("/v1/whoami"))
            .header(COOKIE, format!("airlock_session={id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = json(browser().get(stack.url("/v1/whoami")).header(
        COOKIE,
        format!("airlock_session={}; airlock_session={id}", new_secret()),
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    // A bearer token still wins over whatever cookies ride along.
    let (status, whoami) = json(
        browser()
            .get(stack.url("/v1/whoami"))
            .header(
                COOKIE,
                format!("airlock_session={id}; airlock_session={id}"),
            )
            .bearer_auth(stack.token("admin")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    stack.stop().await;
}
