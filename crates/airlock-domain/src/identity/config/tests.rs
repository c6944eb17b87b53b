use super::*;

fn parse(text: &str) -> Result<IssuerConfig, String> {
    toml::from_str::<IssuerConfig>(text).map_err(|e| e.to_string())
}

#[test]
fn defaults_are_the_documented_ones() {
    let c =
        parse("issuer = \"https://id.example.com\"\naudiences = [\"airlock\"]\n").expect("parses");
    assert_eq!(c.preset, Preset::Generic);
    assert_eq!(c.algorithms, None, "not set: the issuer's keys decide");
    assert_eq!(c.leeway_secs, 60);
    assert_eq!(c.jwks_refresh_secs, 300);
    assert_eq!(c.unknown_kid_cooldown_secs, 60);
    assert!(c.jwks_url.is_none() && c.token_type.is_none());
    assert_eq!(c, IssuerConfig::new("https://id.example.com", &["airlock"]));
    c.validate("issuers[0]").expect("valid");
}

#[test]
fn hmac_and_none_cannot_be_configured() {
    for alg in ["HS256", "hs512", "none", "None", "RS1"] {
        let err = parse(&format!(
            "issuer = \"https://a.example\"\naudiences = [\"x\"]\nalgorithms = [\"RS256\", \"{alg}\"]\n"
        ))
        .expect_err(alg);
        assert!(err.contains("not allowed"), "{alg}: {err}");
    }
    let c = parse("issuer = \"https://a.example\"\naudiences = [\"x\"]\nalgorithms = [\"ES256\", \"EdDSA\", \"PS512\"]\n")
        .expect("asymmetric algorithms parse");
    assert_eq!(
        c.algorithms,
        Some(vec![
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Ps512
        ])
    );
}

#[test]
fn presets_parse_by_name() {
    for name in ["generic", "entra", "okta", "keycloak", "auth0", "google"] {
        let c = parse(&format!(
            "issuer = \"https://a.example\"\naudiences = [\"x\"]\npreset = \"{name}\"\n"
        ))
        .expect(name);
        assert_eq!(c.preset.as_str(), name);
    }
    assert!(parse("issuer = \"https://a.example\"\npreset = \"azure\"\n").is_err());
}

#[test]
fn claim_overrides_take_a_path_or_a_list() {
    let c = parse(
        "issuer = \"https://a.example\"\naudiences = [\"x\"]\n[claims]\nroles = \"https://example.com/roles\"\ngroups = [\"groups\", \"realm_access.groups\"]\nservice = [{ claim = \"gty\", equals = \"client-credentials\" }]\n",
    )
    .expect("parses");
    assert_eq!(
        c.claims.roles,
        Some(ClaimPaths(vec!["https://example.com/roles".into()]))
    );
    assert_eq!(c.claims.groups.as_ref().map(|g| g.0.len()), Some(2));
    c.validate("issuers[0]").expect("valid");
    assert!(
        parse("issuer = \"https://a.example\"\n[claims]\nrole = \"x\"\n").is_err(),
        "unknown key"
    );
}

#[test]
fn validation_errors_name_the_key() {
    let base = IssuerConfig::new("https://id.example.com", &["airlock"]);
    let cases: Vec<(IssuerConfig, &str)> = vec![
        (
            IssuerConfig {
                audiences: vec![],
                ..base.clone()
            },
            "issuers[0].audiences",
        ),
        (
            IssuerConfig {
                audiences: vec![" ".into()],
                ..base.clone()
            },
            "issuers[0].audiences[0]",
        ),
        (
            IssuerConfig {
                issuer: "id.example.com".into(),
                ..base.clone()
            },
            "issuers[0].issuer",
        ),
        (
            IssuerConfig {
                issuer: "http://id.example.com".into(),
                ..base.clone()
            },
            "issuers[0].issuer",
        ),
        (
            IssuerConfig {
                jwks_url: Some("ftp://x".into()),
                ..base.clone()
            },
            "issuers[0].jwks_url",
        ),
        (
            IssuerConfig {
                algorithms: Some(vec![]),
                ..base.clone()
            },
            "issuers[0].algorithms",
        ),
        (
            IssuerConfig {
                leeway_secs: 100_000,
                ..base.clone()
            },
            "issuers[0].leeway_secs",
        ),
        (
            IssuerConfig {
                jwks_refresh_secs: 0,
                ..base.clone()
            },
            "issuers[0].jwks_refresh_secs",
        ),
        (
            IssuerConfig {
                unknown_kid_cooldown_secs: 0,
                ..base.clone()
            },
            "issuers[0].unknown_kid_cooldown_secs",
        ),
        (
            IssuerConfig {
                claims: ClaimsConfig {
                    service: Some(vec![KindRule {
                        claim: "gty".into(),
                        ..KindRule::default()
                    }]),
                    ..ClaimsConfig::default()
                },
                ..base.clone()
            },
            "issuers[0].claims.service[0]",
        ),
        (
            IssuerConfig {
                claims: ClaimsConfig {
                    roles: Some(ClaimPaths(vec!["roles".into(), String::new()])),
                    ..ClaimsConfig::default()
                },
                ..base.clone()
            },
            "issuers[0].claims.roles[1]",
        ),
        (
            IssuerConfig {
                console_resource: Some("urn:airlock".into()),
                ..base.clone()
            },
            "issuers[0].console_client_id",
        ),
        (
            IssuerConfig {
                console_client_id: Some(" ".into()),
                ..base.clone()
            },
            "issuers[0].console_client_id",
        ),
        (
            IssuerConfig {
                console_client_id: Some("console".into()),
                console_scope: Some("profile email".into()),
                ..base.clone()
            },
            "issuers[0].console_scope",
        ),
        (
            IssuerConfig {
                console_client_id: Some("console".into()),
                console_audience: Some(String::new()),
                ..base.clone()
            },
            "issuers[0].console_audience",
        ),
    ];
    for (config, key) in cases {
        let err = config.validate("issuers[0]").expect_err(key);
        assert_eq!(err.key, key, "{err}");
    }
}

#[test]
fn loopback_http_is_fine_and_other_http_needs_opting_in() {
    let mut c = IssuerConfig::new("http://127.0.0.1:4000", &["airlock"]);
    c.validate("i").expect("loopback http");
    c.issuer = "http://localhost/realms/x".into();
    c.validate("i").expect("localhost http");
    c.issuer = "http://keycloak:8080/realms/x".into();
    assert!(c.validate("i").is_err());
    c.allow_insecure_http = true;
    c.validate("i").expect("opted in");
}

#[test]
fn duplicate_issuers_are_named() {
    let a = IssuerConfig::new("https://a.example", &["x"]);
    let err = validate_issuers(&[a.clone(), IssuerConfig::new("https://b.example", &["x"]), a])
        .expect_err("duplicate");
    assert_eq!(err.key, "issuers[2].issuer");
    assert!(err.message.contains("issuers[0]"), "{err}");
}
