use serde_json::json;

use super::*;
use crate::identity::config::ClaimsConfig;

fn map(preset: Preset, audiences: &[&str], claims: Value) -> Principal {
    let mut config = IssuerConfig::new("https://issuer.example", audiences);
    config.preset = preset;
    ClaimMapping::for_issuer(&config)
        .principal("https://issuer.example", claims)
        .expect("maps")
}

#[test]
fn entra_app_token_is_a_service_with_app_roles() {
    let p = map(
        Preset::Entra,
        &["api://airlock"],
        json!({
            "aud": "api://airlock",
            "iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
            "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
            "azpacr": "1",
            "idtyp": "app",
            "oid": "1f0b5a0e-0000-4c8e-9a8b-1234567890ab",
            "sub": "1f0b5a0e-0000-4c8e-9a8b-1234567890ab",
            "roles": ["Airlock.Runner", "Airlock.Reader"],
            "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "ver": "2.0"
        }),
    );
    assert_eq!(p.kind, PrincipalKind::Service);
    assert_eq!(p.subject, "1f0b5a0e-0000-4c8e-9a8b-1234567890ab");
    assert_eq!(
        p.client_id.as_deref(),
        Some("6e74172b-be56-4843-9ff4-e66a39bb12e3")
    );
    assert_eq!(p.roles, vec!["Airlock.Runner", "Airlock.Reader"]);
    assert!(p.scopes.is_empty());
    assert_eq!(p.display_name, "6e74172b-be56-4843-9ff4-e66a39bb12e3");
}

#[test]
fn entra_user_token_uses_oid_and_scp_string() {
    let p = map(
        Preset::Entra,
        &["api://airlock"],
        json!({
            "aud": "api://airlock",
            "azp": "0e0a7a5b-1111-2222-3333-444455556666",
            "name": "Ada Lovelace",
            "oid": "00000000-0000-0000-66f3-3332eca7ea81",
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "preferred_username": "ada@contoso.com",
            "scp": "Jobs.Read Jobs.Sync",
            "groups": ["a3c1bd5c-8f4b-4e7e-9a8b-0d2f1e3c4b5a"],
            "v1_appid_ignored": "x",
            "ver": "2.0"
        }),
    );
    assert_eq!(p.kind, PrincipalKind::User);
    assert_eq!(p.subject, "00000000-0000-0000-66f3-3332eca7ea81");
    assert_eq!(p.scopes, vec!["Jobs.Read", "Jobs.Sync"]);
    assert_eq!(p.groups, vec!["a3c1bd5c-8f4b-4e7e-9a8b-0d2f1e3c4b5a"]);
    assert_eq!(p.display_name, "Ada Lovelace");
    assert_eq!(
        p.email, None,
        "upn/preferred_username are never taken as email"
    );
}

#[test]
fn entra_v1_token_falls_back_to_appid() {
    let p = map(
        Preset::Entra,
        &["api://airlock"],
        json!({"appid": "c0ffee00-aaaa-bbbb-cccc-000000000001", "oid": "o1", "sub": "o1", "ver": "1.0"}),
    );
    assert_eq!(
        p.client_id.as_deref(),
        Some("c0ffee00-aaaa-bbbb-cccc-000000000001")
    );
    assert_eq!(p.kind, PrincipalKind::Service);
}

#[test]
fn okta_scp_array_groups_and_client_tokens() {
    let user = map(
        Preset::Okta,
        &["api://airlock"],
        json!({
            "ver": 1,
            "jti": "AT.abc",
            "iss": "https://dev-123.okta.com/oauth2/default",
            "aud": "api://airlock",
            "cid": "0oa1bcdefGHIJKLmn357",
            "uid": "00u1abcdEFGHIJKlm357",
            "scp": ["openid", "airlock.sync"],
            "sub": "grace@example.com",
            "groups": ["Everyone", "data-engineers"]
        }),
    );
    assert_eq!(user.kind, PrincipalKind::User);
    assert_eq!(
        user.subject, "00u1abcdEFGHIJKlm357",
        "uid is stable, sub is the login"
    );
    assert_eq!(user.scopes, vec!["openid", "airlock.sync"]);
    assert_eq!(user.groups, vec!["Everyone", "data-engineers"]);
    assert_eq!(user.client_id.as_deref(), Some("0oa1bcdefGHIJKLmn357"));

    let service = map(
        Preset::Okta,
        &["api://airlock"],
        json!({"cid": "0oa9service", "sub": "0oa9service", "scp": ["airlock.sync"]}),
    );
    assert_eq!(service.kind, PrincipalKind::Service);
    assert_eq!(service.subject, "0oa9service");
}

#[test]
fn keycloak_nested_realm_and_client_roles_and_client_id_spellings() {
    let p = map(
        Preset::Keycloak,
        &["airlock"],
        json!({
            "iss": "https://kc.example.com/realms/data",
            "aud": ["airlock", "account"],
            "sub": "3f2d9c1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f",
            "typ": "Bearer",
            "azp": "dagster",
            "preferred_username": "service-account-dagster",
            "clientId": "dagster",
            "realm_access": {"roles": ["offline_access", "airbyte-runner"]},
            "resource_access": {
                "airlock": {"roles": ["editor"]},
                "account": {"roles": ["manage-account"]}
            },
            "scope": "profile email"
        }),
    );
    assert_eq!(p.kind, PrincipalKind::Service);
    assert_eq!(
        p.client_id.as_deref(),
        Some("dagster"),
        "older clientId spelling"
    );
    assert_eq!(p.roles, vec!["offline_access", "airbyte-runner", "editor"]);
    assert!(
        !p.roles.contains(&"manage-account".to_owned()),
        "other clients' roles stay out"
    );
    assert_eq!(p.scopes, vec!["profile", "email"]);
    assert_eq!(p.display_name, "service-account-dagster");

    let user = map(
        Preset::Keycloak,
        &["airlock"],
        json!({"sub": "u-1", "client_id": "console", "azp": "console", "preferred_username": "linus",
               "name": "Linus T", "email": "linus@example.com", "email_verified": true,
               "groups": ["/data/eng"]}),
    );
    assert_eq!(user.kind, PrincipalKind::User);
    assert_eq!(user.client_id.as_deref(), Some("console"));
    assert_eq!(user.email.as_deref(), Some("linus@example.com"));
    assert_eq!(user.groups, vec!["/data/eng"]);
}

#[test]
fn auth0_namespaced_claims_permissions_and_client_credentials() {
    let service = map(
        Preset::Auth0,
        &["https://airlock.example.com"],
        json!({
            "iss": "https://tenant.eu.auth0.com/",
            "sub": "Xk9rQ2abcDEF@clients",
            "aud": "https://airlock.example.com",
            "gty": "client-credentials",
            "azp": "Xk9rQ2abcDEF",
            "scope": "jobs:sync",
            "permissions": ["jobs:sync"]
        }),
    );
    assert_eq!(service.kind, PrincipalKind::Service);
    assert_eq!(service.client_id.as_deref(), Some("Xk9rQ2abcDEF"));
    assert_eq!(service.roles, vec!["jobs:sync"]);

    let mut config = IssuerConfig::new(
        "https://tenant.eu.auth0.com/",
        &["https://airlock.example.com"],
    );
    config.preset = Preset::Auth0;
    config.claims = ClaimsConfig {
        roles: Some(ClaimPaths(vec!["https://airlock.example.com/roles".into()])),
        groups: Some(ClaimPaths(vec![
            "https://airlock.example.com/groups".into(),
        ])),
        ..ClaimsConfig::default()
    };
    let user = ClaimMapping::for_issuer(&config)
        .principal(
            "https://tenant.eu.auth0.com/",
            json!({
                "sub": "auth0|64b7f0c2e1",
                "azp": "spa-client",
                "https://airlock.example.com/roles": ["airbyte-editor"],
                "https://airlock.example.com/groups": "analysts",
                "nickname": "margaret",
                "permissions": ["ignored-now"]
            }),
        )
        .expect("maps");
    assert_eq!(user.kind, PrincipalKind::User);
    assert_eq!(user.roles, vec!["airbyte-editor"]);
    assert_eq!(user.groups, vec!["analysts"]);
    assert_eq!(user.display_name, "margaret");
}

#[test]
fn google_hd_email_and_service_accounts() {
    let user = map(
        Preset::Google,
        &["1234-abc.apps.googleusercontent.com"],
        json!({
            "iss": "https://accounts.google.com",
            "azp": "1234-abc.apps.googleusercontent.com",
            "aud": "1234-abc.apps.googleusercontent.com",
            "sub": "110169484474386276334",
            "hd": "example.com",
            "email": "alan@example.com",
            "email_verified": true
        }),
    );
    assert_eq!(user.kind, PrincipalKind::User);
    assert_eq!(user.email.as_deref(), Some("alan@example.com"));
    assert_eq!(user.display_name, "alan@example.com");
    assert_eq!(user.claim("hd"), Some(&json!("example.com")));

    let sa = map(
        Preset::Google,
        &["https://airlock.example.com"],
        json!({"sub": "1175", "email": "ci-runner@proj-1.iam.gserviceaccount.com", "email_verified": true}),
    );
    assert_eq!(sa.kind, PrincipalKind::Service);

    let unverified = map(
        Preset::Google,
        &["x"],
        json!({"sub": "1", "email": "x@example.com", "email_verified": false}),
    );
    assert_eq!(
        unverified.email, None,
        "an unverified email is not an identity"
    );
}

#[test]
fn generic_rfc9068_client_token_and_missing_subject() {
    let p = map(
        Preset::Generic,
        &["airlock"],
        json!({"sub": "runner", "client_id": "runner", "roles": ["runner"], "scope": "airlock"}),
    );
    assert_eq!(p.kind, PrincipalKind::Service);
    assert_eq!(p.roles, vec!["runner"]);
    assert_eq!(p.scopes, vec!["airlock"]);

    let config = IssuerConfig::new("https://i.example", &["x"]);
    let err = ClaimMapping::for_issuer(&config).principal("https://i.example", json!({"sub": ""}));
    assert_eq!(err, Err(MappingError::MissingSubject));
}

#[test]
fn overrides_replace_preset_paths_and_kind_rules() {
    let mut config = IssuerConfig::new("https://i.example", &["x"]);
    config.preset = Preset::Okta;
    config.claims = ClaimsConfig {
        subject: Some(ClaimPaths(vec!["employee.id".into()])),
        service: Some(vec![KindRule {
            claim: "kind".into(),
            equals: Some("bot".into()),
            ..KindRule::default()
        }]),
        ..ClaimsConfig::default()
    };
    let mapping = ClaimMapping::for_issuer(&config);
    let bot = mapping
        .principal(
            "https://i.example",
            json!({"employee": {"id": 7}, "kind": "bot", "uid": "u"}),
        )
        .expect("maps");
    assert_eq!(bot.subject, "7");
    assert_eq!(bot.kind, PrincipalKind::Service);
    let person = mapping
        .principal("https://i.example", json!({"employee": {"id": "e-8"}}))
        .expect("maps");
    assert_eq!(
        person.kind,
        PrincipalKind::User,
        "preset rule `uid absent` was replaced"
    );
}

#[test]
fn a_subject_of_the_wrong_type_is_refused_not_coerced() {
    let entra = ClaimMapping::for_issuer(&{
        let mut c = IssuerConfig::new("https://i.example", &["x"]);
        c.preset = Preset::Entra;
        c
    });
    for oid in [
        json!(1.5),
        json!(true),
        json!({"id": "x"}),
        json!(["x"]),
        json!(null),
    ] {
        assert_eq!(
            entra.principal("https://i.example", json!({"oid": oid, "sub": "fallback"})),
            Err(MappingError::InvalidSubject),
            "oid {oid} must not fall back to sub nor be printed"
        );
    }
    assert_eq!(
        entra
            .principal("https://i.example", json!({"oid": " ", "sub": "s"}))
            .map(|p| p.subject),
        Ok("s".to_owned()),
        "a blank subject counts as absent"
    );
    assert_eq!(
        entra.principal("https://i.example", json!({"name": "n"})),
        Err(MappingError::MissingSubject)
    );
    assert_eq!(
        crate::identity::AuthError::from(MappingError::InvalidSubject),
        crate::identity::AuthError::InvalidClaim("sub")
    );
}
