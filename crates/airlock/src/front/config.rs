//! `[front]` and `[[service_accounts]]`: how the Airbyte-compatible front
//! exchanges client credentials, and the small-setup service accounts whose
//! tokens Airlock signs itself.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use airlock_domain::identity::IssuerConfig;
use airlock_domain::settings::InvalidKey;

use airlock_domain::secret::SecretSource;
use airlock_domain::secret::hash::SecretHash;

/// Shortest lifetime a configuration may give service-account tokens.
const MIN_TOKEN_LIFETIME_SECS: u64 = 60;
/// Longest lifetime a configuration may give service-account tokens.
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// Longest a finished job's answer may be kept (a day).
const MAX_FINISHED_JOBS_CACHE_SECS: u64 = 24 * 3600;

/// `[front]`: the Airbyte-compatible front.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrontConfig {
    /// Airlock's address as its clients reach it (`https://airlock.example.com`):
    /// the issuer of service-account tokens and the base of page links.
    /// Default: `http://` + `server.listen` (and the request's `Host` for links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The `[[issuers]]` entry whose token endpoint receives callers' client
    /// credentials. Default: the only issuer, when exactly one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_issuer: Option<String>,
    /// Sent to that token endpoint as `audience` (Auth0) and, when it is an
    /// absolute URI, as `resource` (RFC 8707, oidc-provider). Default: the
    /// issuer's first audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_audience: Option<String>,
    /// Sent as `scope` when set (Entra ID needs `api://.../.default`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_scope: Option<String>,
    /// How the caller's credentials are presented to the token endpoint.
    pub token_auth_method: TokenAuthMethod,
    /// The ES256 key (PKCS#8 or SEC1 PEM) that signs service-account tokens.
    /// When absent, the key is made by Airlock: kept in the database, sealed
    /// under `signing_key_secret`, when that is set (every replica, and every
    /// restart, signs with the same key); otherwise per process (tokens then
    /// die with it), which Postgres storage refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SecretSource>,
    /// The secret that seals the signing key Airlock keeps in the database
    /// (AES-256-GCM under a PBKDF2 key of it); a long random string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_secret: Option<SecretSource>,
    /// Lifetime of service-account tokens, in seconds (Airbyte's is 900).
    pub token_lifetime_secs: u64,
    /// How long Airbyte's answer about a finished job (succeeded, failed,
    /// cancelled: it never changes again) answers `GET /jobs/{id}` before
    /// Airbyte is asked again, in seconds; 0 asks Airbyte every time.
    pub finished_jobs_cache_secs: u64,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            token_issuer: None,
            token_audience: None,
            token_scope: None,
            token_auth_method: TokenAuthMethod::default(),
            signing_key: None,
            signing_key_secret: None,
            token_lifetime_secs: 900,
            finished_jobs_cache_secs: 60,
        }
    }
}

/// How client credentials go to an identity provider's token endpoint
/// (OpenID Connect Core, section 9).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP Basic (what RFC 6749 requires every server to accept).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// `[[service_accounts]]`: a client whose credentials Airlock checks itself
/// and whose tokens it signs, for setups without a suitable identity provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountConfig {
    /// The client id callers present.
    pub client_id: String,
    /// `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>` of its secret.
    #[serde(serialize_with = "redacted")]
    pub secret_hash: String,
    /// Identity-provider-style roles put in its tokens' `roles` claim, so
    /// that `[[grants]]` match them like any issuer's roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

fn redacted<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(airlock_domain::secret::Secret::REDACTED)
}

fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

impl FrontConfig {
    /// The issuer of service-account tokens: `public_url`, or `http://` +
    /// `listen` (`[server] listen`).
    pub fn service_account_issuer(&self, listen: SocketAddr) -> String {
        self.public_url.as_ref().map_or_else(
            || format!("http://{listen}"),
            |url| url.trim_end_matches('/').to_owned(),
        )
    }
}

/// What the front is built from: its own sections, the issuers whose token
/// endpoint it may use, and `[server] listen` (the default issuer of its
/// tokens).
#[derive(Debug, Clone, Copy)]
pub struct FrontSetup<'a> {
    /// `[front]`.
    pub front: &'a FrontConfig,
    /// `[[service_accounts]]`.
    pub accounts: &'a [ServiceAccountConfig],
    /// `[[issuers]]`.
    pub issuers: &'a [IssuerConfig],
    /// `[server] listen`.
    pub listen: SocketAddr,
    /// Whether several replicas may share the storage (Postgres): a key
    /// made per process would then sign tokens other replicas refuse.
    pub shared_storage: bool,
}

impl FrontSetup<'_> {
    /// The issuer of service-account tokens.
    pub fn service_account_issuer(&self) -> String {
        self.front.service_account_issuer(self.listen)
    }
}

/// Checks `[front]` and `[[service_accounts]]`, against the configured
/// issuers; the error names the key.
pub fn validate(setup: &FrontSetup<'_>) -> Result<(), InvalidKey> {
    let FrontSetup {
        front,
        accounts,
        issuers,
        listen,
        shared_storage,
    } = *setup;
    let err = |key: &str, message: String| Err(InvalidKey::new(key, message));
    if let Some(url) = &front.public_url
        && (!(url.starts_with("http://") || url.starts_with("https://"))
            || url.chars().any(char::is_whitespace)
            || url.contains(['?', '#']))
    {
        return err(
            "front.public_url",
            format!("`{url}` is not an http(s) base URL"),
        );
    }
    if let Some(issuer) = &front.token_issuer
        && !issuers.iter().any(|i| &i.issuer == issuer)
    {
        return err(
            "front.token_issuer",
            format!("`{issuer}` is not a configured issuer"),
        );
    }
    for (key, value) in [
        ("front.token_audience", &front.token_audience),
        ("front.token_scope", &front.token_scope),
    ] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            return err(key, "must not be empty when set".to_owned());
        }
    }
    if !(MIN_TOKEN_LIFETIME_SECS..=MAX_TOKEN_LIFETIME_SECS).contains(&front.token_lifetime_secs) {
        return err(
            "front.token_lifetime_secs",
            format!("must be between {MIN_TOKEN_LIFETIME_SECS} and {MAX_TOKEN_LIFETIME_SECS}"),
        );
    }
    if front.finished_jobs_cache_secs > MAX_FINISHED_JOBS_CACHE_SECS {
        return err(
            "front.finished_jobs_cache_secs",
            format!("must be at most {MAX_FINISHED_JOBS_CACHE_SECS}"),
        );
    }
    validate_accounts(accounts)?;
    validate_signing_key(front, accounts, shared_storage)?;
    if !accounts.is_empty() {
        let issuer = front.service_account_issuer(listen);
        if issuers.iter().any(|i| i.issuer == issuer) {
            return err(
                "front.public_url",
                format!(
                    "`{issuer}` is also an [[issuers]] entry: Airlock's own tokens need an issuer of their own"
                ),
            );
        }
    }
    Ok(())
}

/// With service accounts on storage that replicas share, every replica
/// must sign with one key: a configured one, or the one kept in the
/// database (which needs the secret that seals it).
fn validate_signing_key(
    front: &FrontConfig,
    accounts: &[ServiceAccountConfig],
    shared_storage: bool,
) -> Result<(), InvalidKey> {
    let key = "front.signing_key_secret";
    match (&front.signing_key, &front.signing_key_secret) {
        (Some(_), Some(_)) => Err(InvalidKey::new(
            key,
            "not used with front.signing_key: set one of them",
        )),
        (None, None) if shared_storage && !accounts.is_empty() => Err(InvalidKey::new(
            key,
            "required with [[service_accounts]] on Postgres storage, so that every replica \
             signs with the one key kept (sealed) in the database; or set front.signing_key",
        )),
        _ => Ok(()),
    }
}

/// Checks each `[[service_accounts]]` entry: a usable, unique client id, a
/// parsable secret hash and no empty role.
fn validate_accounts(accounts: &[ServiceAccountConfig]) -> Result<(), InvalidKey> {
    for (i, account) in accounts.iter().enumerate() {
        let key = |field: &str| format!("service_accounts[{i}].{field}");
        if !valid_client_id(&account.client_id) {
            return Err(InvalidKey::new(
                key("client_id"),
                "1 to 128 letters, digits and `._-@`",
            ));
        }
        if let Some(j) = accounts[..i]
            .iter()
            .position(|other| other.client_id == account.client_id)
        {
            return Err(InvalidKey::new(
                key("client_id"),
                format!("`{}` is already service_accounts[{j}]", account.client_id),
            ));
        }
        if let Err(message) = account.secret_hash.parse::<SecretHash>() {
            return Err(InvalidKey::new(key("secret_hash"), message));
        }
        if let Some(r) = account.roles.iter().position(|r| r.trim().is_empty()) {
            return Err(InvalidKey::new(
                key(&format!("roles[{r}]")),
                "must not be empty",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn hash() -> String {
        airlock_domain::secret::hash::hash_secret("s", airlock_domain::secret::hash::MIN_ITERATIONS)
            .expect("hash")
    }

    #[test]
    fn front_and_service_accounts_load() {
        let text = format!(
            "[front]\npublic_url = \"https://airlock.example\"\ntoken_audience = \"urn:airlock\"\n\
             token_auth_method = \"client_secret_post\"\n\n\
             [[service_accounts]]\nclient_id = \"ci\"\nsecret_hash = \"{}\"\nroles = [\"runner\"]\n",
            hash()
        );
        let config = Config::from_toml("t.toml", &text, &[]).expect("valid");
        assert_eq!(config.front.token_lifetime_secs, 900);
        assert_eq!(config.front.finished_jobs_cache_secs, 60);
        assert_eq!(
            config.front.token_auth_method,
            super::TokenAuthMethod::ClientSecretPost
        );
        assert_eq!(config.service_accounts[0].roles, vec!["runner"]);
        let printed = config.to_redacted_toml();
        assert!(!printed.contains("pbkdf2"), "{printed}");
    }

    /// Service accounts on Postgres need one key for every replica: the
    /// secret that seals the stored one, or a configured key (not both).
    #[test]
    fn shared_storage_needs_a_shared_signing_key() {
        let account = format!(
            "[[service_accounts]]\nclient_id = \"ci\"\nsecret_hash = \"{}\"\n",
            hash()
        );
        let postgres = "[storage]\nurl = \"postgres://airlock@db/airlock\"\n";
        let secret = "signing_key_secret = \"s3cret-that-seals\"\n";
        let key = "signing_key = { file = \"/k.pem\" }\n";
        let load = |text: String| Config::from_toml("t.toml", &text, &[]);
        let error = load(format!("{postgres}{account}")).expect_err("no shared key");
        assert!(
            error.to_string().contains("front.signing_key_secret"),
            "{error}"
        );
        let error = load(format!("{postgres}[front]\n{secret}{key}{account}")).expect_err("both");
        assert!(
            error.to_string().contains("front.signing_key_secret"),
            "{error}"
        );
        load(format!("{postgres}[front]\n{secret}{account}")).expect("the sealed key");
        load(format!("{postgres}[front]\n{key}{account}")).expect("a configured key");
        load(postgres.to_owned()).expect("no service accounts");
        // SQLite is one process: a key made per process still serves it.
        let config = load(account.clone()).expect("SQLite");
        let printed = load(format!("[front]\n{secret}{account}"))
            .expect("valid")
            .to_redacted_toml();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(config.front.signing_key_secret.is_none());
    }

    #[test]
    fn mistakes_name_their_key() {
        let h = hash();
        let account = |id: &str, hash: &str| {
            format!("[[service_accounts]]\nclient_id = \"{id}\"\nsecret_hash = \"{hash}\"\n")
        };
        let cases = [
            (
                "[front]\npublic_url = \"ftp://x\"\n".to_owned(),
                "front.public_url",
            ),
            (
                "[front]\ntoken_issuer = \"https://idp.example\"\n".to_owned(),
                "front.token_issuer",
            ),
            (
                "[front]\ntoken_scope = \" \"\n".to_owned(),
                "front.token_scope",
            ),
            (
                "[front]\ntoken_lifetime_secs = 5\n".to_owned(),
                "front.token_lifetime_secs",
            ),
            (
                "[front]\nfinished_jobs_cache_secs = 100000\n".to_owned(),
                "front.finished_jobs_cache_secs",
            ),
            (
                "[front]\ntoken_auth_method = \"jwt\"\n".to_owned(),
                "token_auth_method",
            ),
            ("[front]\nunknown = 1\n".to_owned(), "unknown"),
            (account("has space", &h), "service_accounts[0].client_id"),
            (
                format!("{}{}", account("ci", &h), account("ci", &h)),
                "service_accounts[1].client_id",
            ),
            (account("ci", "plain"), "service_accounts[0].secret_hash"),
            (
                format!("{}roles = [\"\"]\n", account("ci", &h)),
                "service_accounts[0].roles[0]",
            ),
            (
                format!(
                    "[front]\npublic_url = \"https://idp.example\"\n\n[[issuers]]\nissuer = \"https://idp.example\"\naudiences = [\"a\"]\n\n{}",
                    account("ci", &h)
                ),
                "front.public_url",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml("t.toml", &text, &[])
                .expect_err(&text)
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
