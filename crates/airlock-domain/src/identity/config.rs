//! `[[issuers]]`: which identity providers Airlock trusts, and how to read
//! their tokens.

use std::fmt;
use std::time::Duration;

use crate::settings::InvalidKey;
use serde::{Deserialize, Serialize};

/// How far a token's `exp`/`nbf`/`iat` may be off, by default, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// How often an issuer's key set is fetched again, by default, in seconds.
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;
/// The least time between two fetches of a key set, by default, in seconds:
/// tokens naming an unknown `kid` cannot make Airlock fetch more often.
pub const DEFAULT_UNKNOWN_KID_COOLDOWN_SECS: u64 = 60;
/// The largest leeway a configuration may ask for.
const MAX_LEEWAY_SECS: u64 = 600;

/// One identity provider whose tokens Airlock accepts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` value of its tokens, exactly; also the base of discovery
    /// (`{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// Accepted `aud` values: a token must name at least one of them.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where this provider puts subjects, roles, groups and scopes.
    #[serde(default)]
    pub preset: Preset,
    /// The key set URL; when absent it is discovered from the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Signature algorithms accepted from this issuer (never HMAC or `none`).
    /// Not set: every asymmetric algorithm its key can verify (the JWK's
    /// `alg`, else its `kty`/`crv`) that its discovery document advertises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<SigningAlgorithm>>,
    /// Allowed clock skew for `exp`, `nbf` and `iat`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// How often the key set is fetched again, in seconds.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_secs: u64,
    /// The least time between two key set fetches, in seconds.
    #[serde(default = "default_cooldown")]
    pub unknown_kid_cooldown_secs: u64,
    /// Per-issuer overrides of the preset's claim paths.
    #[serde(default, skip_serializing_if = "ClaimsConfig::is_empty")]
    pub claims: ClaimsConfig,
    /// When set, the token header's `typ` must be this (e.g. `at+jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The client id a browser console would use with this issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The provider's token endpoint, for exchanging a caller's client
    /// credentials; discovered when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Accept an `http://` issuer or key set URL on a host other than
    /// loopback. Only for closed test networks.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_insecure_http: bool,
    /// The OAuth client the web console signs people in with (authorization
    /// code with PKCE). Without it, this issuer is not offered at `/console`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_client_id: Option<String>,
    /// That client's secret, for providers that require one of web
    /// applications; absent for a public client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_client_secret: Option<crate::secret::SecretSource>,
    /// Scopes the console asks for; must include `openid`. Default
    /// `openid profile email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_scope: Option<String>,
    /// An RFC 8707 `resource` indicator sent with the console's login, so
    /// that the access token is a JWT for Airlock (e.g. `oidc-provider`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_resource: Option<String>,
    /// An `audience` parameter sent with the console's login (Auth0: without
    /// it, access tokens are opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_audience: Option<String>,
}

/// The scopes the console asks for when `console_scope` is not set.
pub const DEFAULT_CONSOLE_SCOPE: &str = "openid profile email";

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECS
}
fn default_refresh() -> u64 {
    DEFAULT_JWKS_REFRESH_SECS
}
fn default_cooldown() -> u64 {
    DEFAULT_UNKNOWN_KID_COOLDOWN_SECS
}
fn is_false(value: &bool) -> bool {
    !*value
}

impl IssuerConfig {
    /// An issuer with every optional key at its default, as tests and the
    /// demo identity provider need.
    pub fn new(issuer: impl Into<String>, audiences: &[&str]) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            preset: Preset::default(),
            jwks_url: None,
            algorithms: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            jwks_refresh_secs: DEFAULT_JWKS_REFRESH_SECS,
            unknown_kid_cooldown_secs: DEFAULT_UNKNOWN_KID_COOLDOWN_SECS,
            claims: ClaimsConfig::default(),
            token_type: None,
            client_id: None,
            token_endpoint: None,
            allow_insecure_http: false,
            console_client_id: None,
            console_client_secret: None,
            console_scope: None,
            console_resource: None,
            console_audience: None,
        }
    }

    /// The scopes the console asks this issuer for.
    pub fn console_scope(&self) -> &str {
        self.console_scope
            .as_deref()
            .unwrap_or(DEFAULT_CONSOLE_SCOPE)
    }

    /// The refresh period as a duration.
    pub fn jwks_refresh(&self) -> Duration {
        Duration::from_secs(self.jwks_refresh_secs)
    }

    /// The fetch cooldown as a duration.
    pub fn unknown_kid_cooldown(&self) -> Duration {
        Duration::from_secs(self.unknown_kid_cooldown_secs)
    }

    /// Checks what types alone cannot; `key` names this issuer in errors,
    /// e.g. `issuers[0]`.
    pub fn validate(&self, key: &str) -> Result<(), InvalidKey> {
        let err = |field: &str, message: String| InvalidKey {
            key: format!("{key}.{field}"),
            message,
        };
        check_url(&self.issuer, self.allow_insecure_http).map_err(|m| err("issuer", m))?;
        if self.audiences.is_empty() {
            return Err(err(
                "audiences",
                "must name at least one audience: tokens for other APIs must not be accepted"
                    .to_owned(),
            ));
        }
        if let Some(i) = self.audiences.iter().position(|a| a.trim().is_empty()) {
            return Err(err(
                &format!("audiences[{i}]"),
                "must not be empty".to_owned(),
            ));
        }
        if let Some(url) = &self.jwks_url {
            check_url(url, self.allow_insecure_http).map_err(|m| err("jwks_url", m))?;
        }
        if let Some(url) = &self.token_endpoint {
            check_url(url, self.allow_insecure_http).map_err(|m| err("token_endpoint", m))?;
        }
        if self.algorithms.as_ref().is_some_and(Vec::is_empty) {
            return Err(err(
                "algorithms",
                "must allow at least one algorithm".to_owned(),
            ));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(err(
                "leeway_secs",
                format!(
                    "{} is more than the maximum of {MAX_LEEWAY_SECS}",
                    self.leeway_secs
                ),
            ));
        }
        if self.jwks_refresh_secs == 0 {
            return Err(err("jwks_refresh_secs", "must be at least 1".to_owned()));
        }
        if self.unknown_kid_cooldown_secs == 0 {
            return Err(err(
                "unknown_kid_cooldown_secs",
                "must be at least 1".to_owned(),
            ));
        }
        if let Some(typ) = &self.token_type
            && typ.trim().is_empty()
        {
            return Err(err("token_type", "must not be empty when set".to_owned()));
        }
        self.validate_console()
            .map_err(|(field, m)| err(field, m))?;
        self.claims
            .validate()
            .map_err(|(field, m)| err(&format!("claims.{field}"), m))
    }

    /// The console's keys: a client id when any other console key is set,
    /// no blank values, `openid` among the scopes.
    fn validate_console(&self) -> Result<(), (&'static str, String)> {
        let others = self.console_client_secret.is_some()
            || self.console_scope.is_some()
            || self.console_resource.is_some()
            || self.console_audience.is_some();
        match &self.console_client_id {
            None if others => {
                return Err((
                    "console_client_id",
                    "missing (other console_* keys are set)".to_owned(),
                ));
            }
            Some(id) if id.trim().is_empty() || id.chars().any(char::is_control) => {
                return Err(("console_client_id", "must not be empty".to_owned()));
            }
            _ => {}
        }
        for (field, value) in [
            ("console_scope", &self.console_scope),
            ("console_resource", &self.console_resource),
            ("console_audience", &self.console_audience),
        ] {
            if let Some(value) = value
                && (value.trim().is_empty() || value.chars().any(char::is_control))
            {
                return Err((field, "must not be empty when set".to_owned()));
            }
        }
        if !self.console_scope().split(' ').any(|s| s == "openid") {
            return Err((
                "console_scope",
                "must include `openid` (the ID token proves the login)".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Checks every issuer and that no two share an `issuer` value; errors name
/// the place, e.g. `issuers[1].audiences`.
pub fn validate_issuers(issuers: &[IssuerConfig]) -> Result<(), InvalidKey> {
    for (i, issuer) in issuers.iter().enumerate() {
        issuer.validate(&format!("issuers[{i}]"))?;
        if let Some(j) = issuers[..i]
            .iter()
            .position(|other| other.issuer == issuer.issuer)
        {
            return Err(InvalidKey {
                key: format!("issuers[{i}].issuer"),
                message: format!("`{}` is already configured as issuers[{j}]", issuer.issuer),
            });
        }
    }
    Ok(())
}

pub fn check_url(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        if !loopback && !allow_insecure_http {
            return Err(format!(
                "`{url}` is plain http on a non-loopback host: use https (or set allow_insecure_http = true on a closed test network)"
            ));
        }
        rest
    } else {
        return Err(format!("`{url}` is not an http(s) URL"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{url}` has no host"));
    }
    if url.chars().any(char::is_whitespace) {
        return Err(format!("`{url}` contains whitespace"));
    }
    Ok(())
}

/// Where a provider puts things in its tokens; see the identity README.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Plain OIDC / RFC 9068: `sub`, `roles`, `groups`, `scope`, `client_id`.
    #[default]
    Generic,
    /// Microsoft Entra ID (v2 tokens).
    Entra,
    /// Okta custom authorization servers.
    Okta,
    /// Keycloak realms.
    Keycloak,
    /// Auth0 tenants.
    Auth0,
    /// Google ID tokens.
    Google,
}

impl Preset {
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Entra => "entra",
            Self::Okta => "okta",
            Self::Keycloak => "keycloak",
            Self::Auth0 => "auth0",
            Self::Google => "google",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The asymmetric signature algorithms an issuer may be allowed to use.
/// HMAC and `none` do not exist here, so no configuration can allow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl SigningAlgorithm {
    /// Every accepted value.
    pub const ALL: [SigningAlgorithm; 9] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];

    /// The JOSE name (`RS256`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The same algorithm in `jsonwebtoken`'s terms.
    pub fn to_jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::Rs256 => A::RS256,
            Self::Rs384 => A::RS384,
            Self::Rs512 => A::RS512,
            Self::Ps256 => A::PS256,
            Self::Ps384 => A::PS384,
            Self::Ps512 => A::PS512,
            Self::Es256 => A::ES256,
            Self::Es384 => A::ES384,
            Self::EdDsa => A::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for SigningAlgorithm {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if let Some(alg) = Self::ALL.into_iter().find(|a| a.as_str() == value) {
            return Ok(alg);
        }
        let allowed: Vec<_> = Self::ALL.iter().map(|a| a.as_str()).collect();
        let why = if value.to_ascii_uppercase().starts_with("HS") {
            " (HMAC needs a secret shared with the provider; Airlock only verifies public-key signatures)"
        } else if value.eq_ignore_ascii_case("none") {
            " (unsigned tokens are never accepted)"
        } else {
            ""
        };
        Err(format!(
            "algorithm `{value}` is not allowed{why}; use one of {}",
            allowed.join(", ")
        ))
    }
}

impl From<SigningAlgorithm> for String {
    fn from(value: SigningAlgorithm) -> Self {
        value.as_str().to_owned()
    }
}

/// Per-issuer overrides of where the preset looks for each part of a
/// principal. Each key takes one claim path or a list of them, tried in
/// order (lists are concatenated for roles, groups and scopes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsConfig {
    /// The stable subject (`sub`; `oid` for Entra, `uid` for Okta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<ClaimPaths>,
    /// The identity provider's roles for the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<ClaimPaths>,
    /// The caller's groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<ClaimPaths>,
    /// The token's scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<ClaimPaths>,
    /// The OAuth client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClaimPaths>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ClaimPaths>,
    /// The caller's email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<ClaimPaths>,
    /// Rules that make a principal a service (any rule matching suffices);
    /// replaces the preset's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Vec<KindRule>>,
}

impl ClaimsConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        for (name, paths) in [
            ("subject", &self.subject),
            ("roles", &self.roles),
            ("groups", &self.groups),
            ("scopes", &self.scopes),
            ("client_id", &self.client_id),
            ("name", &self.name),
            ("email", &self.email),
        ] {
            if let Some(paths) = paths
                && let Some(i) = paths.0.iter().position(|p| p.trim().is_empty())
            {
                return Err((
                    format!("{name}[{i}]"),
                    "a claim path must not be empty".to_owned(),
                ));
            }
        }
        if self.subject.as_ref().is_some_and(|p| p.0.is_empty()) {
            return Err((
                "subject".to_owned(),
                "must name at least one claim".to_owned(),
            ));
        }
        for (i, rule) in self.service.iter().flatten().enumerate() {
            rule.validate().map_err(|m| (format!("service[{i}]"), m))?;
        }
        Ok(())
    }
}

/// One claim path or several, as `"roles"` or `["roles", "realm_access.roles"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ClaimPaths(pub Vec<String>);

impl<'de> Deserialize<'de> for ClaimPaths {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        match OneOrMany::deserialize(deserializer) {
            Ok(OneOrMany::One(path)) => Ok(Self(vec![path])),
            Ok(OneOrMany::Many(paths)) => Ok(Self(paths)),
            Err(_) => Err(serde::de::Error::custom(
                "expected a claim path or a list of claim paths",
            )),
        }
    }
}

/// A test on one claim that marks a principal as a service (a machine
/// client) rather than a user. Give `claim` and exactly one test.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KindRule {
    /// The claim path tested.
    pub claim: String,
    /// The claim equals this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The claim starts with this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    /// The claim ends with this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<String>,
    /// The claim is absent (`true`) or present (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<bool>,
    /// The claim equals the one at this other path (e.g. `sub` = `client_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<String>,
}

impl KindRule {
    fn validate(&self) -> Result<(), String> {
        if self.claim.trim().is_empty() {
            return Err("`claim` must name a claim path".to_owned());
        }
        let tests = [
            self.equals.is_some(),
            self.starts_with.is_some(),
            self.ends_with.is_some(),
            self.absent.is_some(),
            self.same_as.is_some(),
        ];
        match tests.iter().filter(|t| **t).count() {
            1 => Ok(()),
            0 => Err("give one test: equals, starts_with, ends_with, absent or same_as".to_owned()),
            _ => Err(
                "give only one test: equals, starts_with, ends_with, absent or same_as".to_owned(),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
