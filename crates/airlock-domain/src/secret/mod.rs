//! Secrets in configuration: given inline, from an environment variable or
//! from a file, and never printed; [`hash`] keeps stored secrets as PBKDF2
//! hashes, and [`sealed`] encrypts what Airlock keeps in the database.

pub mod hash;
pub mod sealed;

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a secret comes from, as written in the configuration file.
///
/// Kept separate from [`Secret`] so that loading (which touches the
/// environment and the file system) happens once, at the edge, with errors
/// that name the key.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `key = "value"`.
    Inline(String),
    /// `key = { env = "NAME" }`.
    Env(String),
    /// `key = { file = "/run/secrets/x" }`; trailing newlines are trimmed.
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline([redacted])"),
            Self::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl SecretSource {
    /// Reads the secret. `lookup_env` is injected so tests need not touch the
    /// process environment.
    pub fn resolve(&self, lookup_env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
        let value = match self {
            Self::Inline(value) => value.clone(),
            Self::Env(name) => {
                lookup_env(name).ok_or_else(|| format!("environment variable {name} is not set"))?
            }
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(Secret::new(value))
    }
}

impl Serialize for SecretSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Inline(_) => serializer.serialize_str(Secret::REDACTED),
            Self::Env(name) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("env", name)?;
                map.end()
            }
            Self::File(path) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("file", path)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;

        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = SecretSource;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, { env = "NAME" } or { file = "PATH" }"#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SecretSource::Inline(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        r#"expected { env = "NAME" } or { file = "PATH" }"#,
                    ));
                };
                let source = match key.as_str() {
                    "env" => SecretSource::Env(map.next_value()?),
                    "file" => SecretSource::File(map.next_value()?),
                    other => return Err(de::Error::unknown_field(other, &["env", "file"])),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "unexpected key `{extra}`: give exactly one of `env` or `file`"
                    )));
                }
                Ok(source)
            }
        }

        deserializer.deserialize_any(SourceVisitor)
    }
}

/// A loaded secret: usable by the code that needs it, invisible to `Debug`,
/// `Display`, logs and serialized output.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// What a secret prints as, everywhere.
    pub const REDACTED: &'static str = "[redacted]";

    /// Wraps a value read from a trusted place.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value, for the one place that must send it somewhere.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The secrecy type, for crates (the Airbyte client) that take it.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        s: SecretSource,
    }

    fn parse(toml_text: &str) -> Result<SecretSource, String> {
        toml::from_str::<Holder>(toml_text)
            .map(|h| h.s)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(parse(r#"s = "x""#), Ok(SecretSource::Inline("x".into())));
        assert_eq!(
            parse(r#"s = { env = "X" }"#),
            Ok(SecretSource::Env("X".into()))
        );
        assert_eq!(
            parse(r#"s = { file = "/x" }"#),
            Ok(SecretSource::File("/x".into()))
        );
    }

    #[test]
    fn rejects_unknown_and_extra_keys() {
        let err = parse(r#"s = { vault = "X" }"#).expect_err("unknown key");
        assert!(err.contains("vault"), "{err}");
        let err = parse(r#"s = { env = "X", file = "/y" }"#).expect_err("two keys");
        assert!(err.contains("file"), "{err}");
    }

    #[test]
    fn resolves_env_and_file_and_never_prints() {
        let env = |name: &str| (name == "SET").then(|| "from-env".to_owned());
        let secret = SecretSource::Env("SET".into())
            .resolve(&env)
            .expect("env is set");
        assert_eq!(secret.expose(), "from-env");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert!(SecretSource::Env("UNSET".into()).resolve(&env).is_err());

        let dir = std::env::temp_dir().join(format!("airlock-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("s");
        std::fs::write(&path, "from-file\n").expect("write");
        let secret = SecretSource::File(path).resolve(&env).expect("file");
        assert_eq!(secret.expose(), "from-file");

        let inline = SecretSource::Inline("hunter2".into());
        assert!(!format!("{inline:?}").contains("hunter2"));
        assert_eq!(
            serde_json::to_string(&inline).expect("json"),
            "\"[redacted]\""
        );
    }
}
