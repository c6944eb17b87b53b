//! Airlock's `Authenticator` against a real OpenID provider: npm
//! `oidc-provider` v9, run by `tests/oidc/server.mjs`. Keys come through
//! discovery and JWKS over HTTP, tokens through client credentials.
//!
//! Needs `node` and `npm ci --prefix tests/oidc`. Without them the test
//! fails when `CI` is set, and is skipped loudly otherwise.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use airlock::config::Config;
use airlock_domain::clock::SystemClock;
use airlock_domain::identity::{AuthError, Authenticator, IssuerConfig, PrincipalKind};
use airlock_domain::policy::{Permission, Resource};

use crate::harness::{AirlockToml, Grant, Issuer};
use crate::support::repo_root;

/// The provider process; killed when dropped.
pub(crate) struct Provider {
    child: Child,
    pub(crate) issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider, or explains why it cannot: `Err` is the reason.
pub(crate) fn start_provider() -> Result<Provider, String> {
    let dir = repo_root().join("tests/oidc");
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !node_ok {
        return Err("`node` is not on PATH".into());
    }
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        return Err(format!(
            "{} has no node_modules: run `npm ci --prefix tests/oidc`",
            dir.display()
        ));
    }
    let mut child = Command::new("node")
        .arg(dir.join("server.mjs"))
        .arg("0")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start node: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep reading: a closed pipe would kill the provider at its next
        // line of output (EPIPE).
        let mut rest = String::new();
        while reader.read_line(&mut rest).is_ok_and(|n| n > 0) {
            rest.clear();
        }
    });
    let mut provider = Provider {
        child,
        issuer: String::new(),
    };
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the provider printed no ready line within 30 s".to_owned())?;
    provider.issuer = line
        .trim()
        .split_once("issuer=")
        .map(|(_, issuer)| issuer.to_owned())
        .ok_or_else(|| format!("unexpected first line from the provider: {line:?}"))?;
    Ok(provider)
}

/// The provider, or `None` after a loud skip; panics under CI.
fn provider_or_skip() -> Option<Provider> {
    match start_provider() {
        Ok(provider) => Some(provider),
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("the OIDC provider test needs node and tests/oidc/node_modules: {reason}")
        }
        Err(reason) => {
            eprintln!("\n!!! SKIPPED oidc-provider integration test: {reason} !!!\n");
            None
        }
    }
}

async fn client_credentials(
    http: &reqwest::Client,
    issuer: &str,
    client: &str,
    secret: &str,
    resource: Option<&str>,
) -> Result<String, String> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(resource) = resource {
        form.push(("resource", resource));
    }
    let response = http
        .post(format!("{issuer}/token"))
        .basic_auth(client, Some(secret))
        .form(&form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no access_token in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_provider_tokens_are_verified_and_mapped() {
    let Some(provider) = provider_or_skip() else {
        return;
    };
    let issuer = provider.issuer.clone();
    let http = reqwest::Client::new();

    let mut config = AirlockToml::default()
        .with_issuer(Issuer::new(&issuer, &["airlock"]).with("token_type", "at+jwt"));
    for role in ["reader", "runner", "editor", "admin"] {
        config = config.with_grant(Grant::role(role));
    }
    let config = config.with_grant(Grant::matching("auditor", "role", "auditor"));
    let config = Config::from_toml("oidc.toml", &config.text(), &[]).expect("valid configuration");
    let policy = config.policy().expect("valid policy");
    let auth = Authenticator::from_config(&config.issuers, &http, Arc::new(SystemClock))
        .expect("authenticator");
    assert!(!auth.is_ready());
    let outcomes = auth.refresh_all().await;
    assert!(
        outcomes[0].1.is_ok(),
        "discovery and JWKS fetch: {outcomes:?}"
    );
    assert!(auth.is_ready());

    for (role, may_sync, may_reset, may_audit) in [
        ("reader", false, false, false),
        ("runner", true, false, false),
        ("editor", true, true, false),
        ("admin", true, true, true),
        ("auditor", false, false, true),
    ] {
        let token = client_credentials(&http, &issuer, role, &format!("{role}-secret"), None)
            .await
            .unwrap_or_else(|e| panic!("token for {role}: {e}"));
        let principal = auth
            .authenticate(Some(&format!("Bearer {token}")))
            .await
            .unwrap_or_else(|e| panic!("{role}'s token refused: {}", e.code()));
        assert_eq!(principal.issuer, issuer);
        assert_eq!(principal.subject, role, "RFC 9068: sub is the client");
        assert_eq!(principal.client_id.as_deref(), Some(role));
        assert_eq!(principal.kind, PrincipalKind::Service);
        assert_eq!(principal.roles, vec![role.to_owned()]);
        assert!(
            policy.allows(&principal, Permission::ConnectionsRead, &Resource::Global),
            "{role}"
        );
        assert_eq!(
            policy.allows(&principal, Permission::JobsSync, &Resource::Global),
            may_sync,
            "{role}"
        );
        assert_eq!(
            policy.allows(&principal, Permission::JobsReset, &Resource::Global),
            may_reset,
            "{role}"
        );
        assert_eq!(
            policy.allows(&principal, Permission::AuditRead, &Resource::Global),
            may_audit,
            "{role}"
        );

        let tampered = {
            let (rest, signature) = token.rsplit_once('.').expect("a JWS");
            let (header, _) = rest.split_once('.').expect("a JWS");
            let forged = base64_url(&format!(
                r#"{{"iss":"{issuer}","sub":"{role}","aud":"airlock","exp":9999999999,"roles":["admin"]}}"#
            ));
            format!("{header}.{forged}.{signature}")
        };
        assert_eq!(
            auth.verify_token(&tampered).await.err(),
            Some(AuthError::BadSignature)
        );
    }

    // The same provider's token for another API must not open Airlock.
    let other = client_credentials(&http, &issuer, "admin", "admin-secret", Some("urn:other"))
        .await
        .expect("token for the other resource");
    assert_eq!(
        auth.verify_token(&other).await.err(),
        Some(AuthError::WrongAudience)
    );
    let airlock = client_credentials(&http, &issuer, "admin", "admin-secret", Some("urn:airlock"))
        .await
        .expect("token for airlock, asked explicitly");
    assert!(auth.verify_token(&airlock).await.is_ok());

    // A client without roles authenticates but is granted nothing.
    let nobody = client_credentials(&http, &issuer, "nobody", "nobody-secret", None)
        .await
        .expect("token for nobody");
    let principal = auth.verify_token(&nobody).await.expect("valid token");
    assert!(principal.roles.is_empty());
    assert!(
        Permission::ALL
            .iter()
            .all(|p| !policy.can_anywhere(&principal, *p))
    );

    // The provider itself refuses bad client credentials.
    assert!(
        client_credentials(&http, &issuer, "admin", "wrong", None)
            .await
            .is_err()
    );

    // An issuer configured with the wrong audience refuses the same tokens.
    let strict = Authenticator::from_config(
        &[IssuerConfig::new(issuer.clone(), &["someone-else"])],
        &http,
        Arc::new(SystemClock),
    )
    .expect("authenticator");
    assert_eq!(
        strict.verify_token(&airlock).await.err(),
        Some(AuthError::WrongAudience)
    );
    drop(provider);
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
