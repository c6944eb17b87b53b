use super::*;
use airlock_services::airbyte::AirbyteAuth;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_load_without_a_file() {
    let config = Config::load(None, &[]).expect("defaults are valid");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.storage.url, "sqlite://airlock.db");
    assert!(matches!(
        config.airbyte.auth(&|_| None),
        Ok(AirbyteAuth::None)
    ));
}

#[test]
fn unknown_keys_are_named() {
    let err = Config::from_toml(
        "t.toml",
        "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n",
        &[],
    )
    .expect_err("typo must fail")
    .to_string();
    assert!(err.contains("lisen"), "{err}");
    assert!(err.contains("t.toml"), "{err}");

    let err = Config::from_toml("t.toml", "[serverz]\n", &[])
        .expect_err("unknown table")
        .to_string();
    assert!(err.contains("serverz"), "{err}");
}

#[test]
fn env_overrides_win_and_are_typed() {
    let config = Config::from_toml(
        "t.toml",
        "[airbyte]\ntimeout_secs = 5\n",
        &env(&[
            ("AIRLOCK_AIRBYTE__TIMEOUT_SECS", "7"),
            ("AIRLOCK_SERVER__LISTEN", "0.0.0.0:9000"),
            ("AIRLOCK_URL", "http://ignored"),
            ("OTHER__THING", "x"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.airbyte.timeout_secs, 7);
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
}

#[test]
fn unknown_env_override_is_named() {
    let err = Config::from_toml("t.toml", "", &env(&[("AIRLOCK_SERVER__LISTN", "x")]))
        .expect_err("typo")
        .to_string();
    assert!(err.contains("listn"), "{err}");
    assert!(err.contains("AIRLOCK_SERVER__LISTN"), "{err}");
}

#[test]
fn env_override_reaches_into_lists() {
    let config = Config::from_toml(
        "t.toml",
        "[[issuers]]\nissuer = \"https://a\"\n",
        &env(&[("AIRLOCK_ISSUERS__0__AUDIENCES", r#"["x", "y"]"#)]),
    )
    .expect("valid");
    assert_eq!(config.issuers[0].audiences, vec!["x", "y"]);
    let err = Config::from_toml("t.toml", "", &env(&[("AIRLOCK_ISSUERS__3__ISSUER", "x")]))
        .expect_err("gap")
        .to_string();
    assert!(err.contains("AIRLOCK_ISSUERS__3__ISSUER"), "{err}");
}

#[test]
fn airbyte_credentials_resolve_and_conflicts_are_named() {
    let config = Config::from_toml(
        "t.toml",
        "[airbyte]\nclient_id = \"id\"\nclient_secret = { env = \"SECRET\" }\n",
        &[],
    )
    .expect("valid");
    let auth = config
        .airbyte
        .auth(&|name| (name == "SECRET").then(|| "s3cret".to_owned()))
        .expect("resolves");
    match auth {
        AirbyteAuth::ClientCredentials {
            client_id,
            client_secret,
        } => {
            assert_eq!(client_id, "id");
            assert_eq!(client_secret.expose(), "s3cret");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = config
        .airbyte
        .auth(&|_| None)
        .expect_err("unset env")
        .to_string();
    assert!(
        err.contains("airbyte.client_secret") && err.contains("SECRET"),
        "{err}"
    );

    let both = Config::from_toml(
        "t.toml",
        "[airbyte]\nclient_id = \"id\"\ntoken = \"t\"\n",
        &[],
    )
    .expect("parses");
    assert!(both.airbyte.auth(&|_| None).is_err());
}

#[test]
fn redacted_output_hides_inline_secrets() {
    let config = Config::from_toml(
        "t.toml",
        "[airbyte]\nclient_id = \"id\"\nclient_secret = \"hunter2\"\n",
        &[],
    )
    .expect("valid");
    let printed = config.to_redacted_toml();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("[redacted]"), "{printed}");
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn bad_values_are_named() {
    for (text, key) in [
        (
            "[server]\nrequest_log_flush_ms = 10001\n",
            "server.request_log_flush_ms",
        ),
        ("[storage]\nurl = \"mysql://x\"\n", "storage.url"),
        ("[airbyte]\nurl = \"ftp://x\"\n", "airbyte.url"),
        ("[airbyte]\ntimeout_secs = 0\n", "airbyte.timeout_secs"),
        ("[server]\nlisten = \"nope\"\n", "listen"),
        (
            "[telemetry]\notlp_endpoint = \"collector:4318\"\n",
            "telemetry.otlp_endpoint",
        ),
        (
            "[telemetry]\nsample_ratio = 1.5\n",
            "telemetry.sample_ratio",
        ),
        (
            "[telemetry]\nservice_name = \" \"\n",
            "telemetry.service_name",
        ),
        ("[telemetry]\notlp_endpont = \"http://x\"\n", "otlp_endpont"),
        (
            "[console]\nsession_ttl_secs = 5\n",
            "console.session_ttl_secs",
        ),
        (
            "[console]\npublic_url = \"https://a.example/console\"\n",
            "console.public_url",
        ),
        ("[console]\ncookie_secure = \"sometimes\"\n", "sometimes"),
        ("[console]\nenable = true\n", "enable"),
    ] {
        let err = Config::from_toml("t.toml", text, &[])
            .expect_err(text)
            .to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn the_site_takes_the_consoles_url_then_the_fronts() {
    let load = |text: &str| Config::from_toml("t.toml", text, &[]).expect("valid");
    let both = load(
        "[console]\npublic_url = \"https://console.example\"\ncookie_secure = \"never\"\n\n\
         [front]\npublic_url = \"https://front.example\"\n",
    );
    let site = both.site();
    assert_eq!(site.public_url.as_deref(), Some("https://console.example"));
    assert_eq!(site.cookie_secure, crate::web::session::CookieSecure::Never);
    let front_only = load("[front]\npublic_url = \"https://front.example\"\n");
    assert_eq!(
        front_only.site().public_url.as_deref(),
        Some("https://front.example")
    );
    assert_eq!(load("").site().public_url, None);
}

#[test]
fn every_section_error_names_its_key() {
    for (text, key) in [
        (
            "[server]\nbody_timeout_secs = 0\n",
            "server.body_timeout_secs",
        ),
        (
            "[server]\nrequest_log_flush_ms = 10001\n",
            "server.request_log_flush_ms",
        ),
        ("[storage]\nurl = \"mysql://x\"\n", "storage.url"),
        ("[airbyte]\ntimeout_secs = 0\n", "airbyte.timeout_secs"),
        (
            "[connections]\nrefresh_secs = 0\n",
            "connections.refresh_secs",
        ),
        ("[jobs]\nlease_secs = 1\n", "jobs.lease_secs"),
        ("[mcp]\nallowed_hosts = []\n", "mcp.allowed_hosts"),
        (
            "[telemetry]\nsample_ratio = 2.0\n",
            "telemetry.sample_ratio",
        ),
        (
            "[console]\nsession_ttl_secs = 1\n",
            "console.session_ttl_secs",
        ),
    ] {
        match Config::from_toml("t.toml", text, &[]) {
            Err(ConfigError::Invalid(error)) => assert_eq!(error.key, key, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn issuers_roles_and_grants_survive_the_redacted_round_trip() {
    let text = r#"
[[issuers]]
issuer = "https://tenant.eu.auth0.com/"
audiences = ["https://airlock.example.com", "airlock"]
preset = "auth0"
algorithms = ["RS256", "PS256"]
leeway_secs = 30
token_type = "at+jwt"
[issuers.claims]
roles = "https://airlock.example.com/roles"
groups = ["https://airlock.example.com/groups", "groups"]
service = [{ claim = "gty", equals = "client-credentials" }, { claim = "uid", absent = true }]

[roles.operator]
permissions = ["jobs:sync"]
inherits = ["reader"]
description = "runs pipelines"

[[grants]]
role = "operator"
match = { claim = "https://airlock.example.com/roles", value = "ops", issuer = "https://tenant.eu.auth0.com/" }
workspaces = ["analytics"]
connections = ["orders", "tag:nightly"]
"#;
    let config = Config::from_toml("t.toml", text, &[]).expect("valid");
    let printed = config.to_redacted_toml();
    let again =
        Config::from_toml("printed", &printed, &[]).expect("the printed configuration is valid");
    assert_eq!(again.issuers, config.issuers, "{printed}");
    assert_eq!(again.roles, config.roles, "{printed}");
    assert_eq!(again.grants, config.grants, "{printed}");
    assert_eq!(
        config.issuers[0].claims.service.as_ref().map(Vec::len),
        Some(2)
    );
}

#[test]
fn config_validation_names_issuer_and_grant_keys() {
    for (text, key) in [
        (
            "[[issuers]]\nissuer = \"https://a.example\"\n",
            "issuers[0].audiences",
        ),
        (
            "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"x\", issuer = \"https://nowhere\" }\n",
            "grants[0].match.issuer",
        ),
        (
            "[[grants]]\nrole = \"writer\"\nmatch = { sub = \"x\" }\n",
            "grants[0].role",
        ),
        (
            "[roles.x]\npermissions = [\"jobs:nuke\"]\n",
            "roles.x.permissions[0]",
        ),
    ] {
        let err = Config::from_toml("t.toml", text, &[])
            .expect_err(text)
            .to_string();
        assert!(err.starts_with(key), "{key}: {err}");
    }
}

#[test]
fn the_configuration_file_takes_webhooks_and_names_their_keys() {
    let config = Config::from_toml(
        "t.toml",
        "[[webhooks]]\nurl = \"https://hooks.example.com/a\"\nsecret = { env = \"HOOK_SECRET\" }\n\
         events = [\"started\", \"job.failed\"]\nworkspaces = [\"analytics\"]\n",
        &[],
    )
    .expect("valid");
    assert_eq!(
        config.webhooks[0].events,
        [
            airlock_services::webhooks::WebhookEvent::Started,
            airlock_services::webhooks::WebhookEvent::Failed,
        ]
    );
    let err = Config::from_toml(
        "t.toml",
        "[[webhooks]]\nurl = \"https://hooks.example.com/a\"\nsecret = \"s\"\n",
        &[("AIRLOCK_WEBHOOKS__0__URL".to_owned(), "mailto:x".to_owned())],
    )
    .expect_err("bad url")
    .to_string();
    assert!(err.contains("webhooks[0].url"), "{err}");
    let printed = Config::from_toml(
        "t.toml",
        "[[webhooks]]\nurl = \"https://hooks.example.com/a\"\nsecret = \"hunter2\"\n",
        &[],
    )
    .expect("valid")
    .to_redacted_toml();
    assert!(
        !printed.contains("hunter2") && printed.contains("[[webhooks]]"),
        "{printed}"
    );
}
