use super::*;

#[test]
fn a_login_returns_only_to_a_console_view() {
    assert_eq!(view_path(Some("/board")), "/board");
    assert_eq!(view_path(Some("#/jobs/0193ab")), "/jobs/0193ab");
    assert_eq!(
        view_path(Some("/audit?action=jobs.reset")),
        "/audit?action=jobs.reset"
    );
    for hostile in [
        "https://evil.example",
        "//evil.example",
        "/\\evil",
        "/a b",
        "javascript:alert(1)",
        "",
    ] {
        assert_eq!(view_path(Some(hostile)), HOME, "{hostile}");
    }
    assert_eq!(view_path(None), HOME);
    assert_eq!(view_path(Some(&format!("/{}", "a".repeat(300)))), HOME);
}

#[test]
fn only_a_fallback_display_name_is_replaced() {
    let principal = |name: &str, client: Option<&str>| -> Principal {
        serde_json::from_value(json!({
            "issuer": "https://id.example", "subject": "u1", "kind": "user",
            "client_id": client, "display_name": name, "roles": ["runner"],
            "groups": [], "scopes": [], "email": null, "claims": {}
        }))
        .expect("a principal")
    };
    let named = principal("Rene Runner", Some("console"));
    let by_client = with_display_name(principal("console", Some("console")), &named);
    assert_eq!(by_client.display_name, "Rene Runner");
    assert_eq!(by_client.roles, ["runner"], "nothing else changes");
    let by_subject = with_display_name(principal("u1", None), &named);
    assert_eq!(by_subject.display_name, "Rene Runner");
    let own = with_display_name(principal("R. Runner", Some("console")), &named);
    assert_eq!(own.display_name, "R. Runner", "a real name stays");
    let nameless = with_display_name(principal("u1", None), &principal("u1", None));
    assert_eq!(nameless.display_name, "u1");
}

#[test]
fn state_and_nonce_must_come_back_unchanged() {
    let kept = new_secret();
    assert!(same_secret(Some(&kept), &kept));
    assert!(!same_secret(None, &kept), "a missing nonce");
    assert!(!same_secret(Some(""), &kept));
    assert!(!same_secret(Some(&kept[..42]), &kept), "a prefix");
    assert!(
        !same_secret(Some(&format!("{kept}x")), &kept),
        "a longer value"
    );
    assert!(!same_secret(Some(&new_secret()), &kept), "another login's");
    assert!(!same_secret(Some(""), ""), "nothing kept matches nothing");
}

#[test]
fn failure_codes_are_stable() {
    for (failure, code) in [
        (Failure::StateMismatch, "state_mismatch"),
        (Failure::LoginExpired, "login_expired"),
        (Failure::Refused, "refused"),
        (Failure::Exchange, "exchange_failed"),
        (Failure::Token, "token_invalid"),
        (Failure::UnknownIssuer, "unknown_issuer"),
    ] {
        assert_eq!(failure.code(), code);
    }
}

#[test]
fn redirects_set_every_cookie_and_are_not_cached() {
    let response = see_other("/console#/board", &["a=1".into(), "b=2".into()]);
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/console#/board");
    assert_eq!(
        response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .count(),
        2
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
}
