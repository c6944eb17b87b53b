//! JSON as tokens carry it: strict parsing (no duplicate keys) and claim
//! path lookup (`realm_access.roles`, `https://example.com/roles`).

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses a JSON object, refusing duplicate keys at any depth: two parsers
/// that disagree on which duplicate wins are an attack surface.
pub(crate) fn parse_strict_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        Ok(_) => Err(StrictJsonError::NotAnObject),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(StrictJsonError::DuplicateKey),
        Err(_) => Err(StrictJsonError::Syntax),
    }
}

const DUPLICATE: &str = "duplicate key";

/// Why a JSON part of a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StrictJsonError {
    #[error("not valid JSON")]
    Syntax,
    #[error("not a JSON object")]
    NotAnObject,
    #[error("duplicate JSON key")]
    DuplicateKey,
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Strict(Value::Number(n)))
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Strict, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Strict(Value::Object(map)))
    }
}

/// How deep a claim path may reach into nested objects.
const MAX_PATH_DEPTH: usize = 16;

/// The claim at `path`: the literal key first (Auth0's
/// `https://example.com/roles`), then the path split on dots, trying every
/// split (Keycloak's `resource_access.airlock.roles`).
pub fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    lookup_at(claims, path, 0)
}

fn lookup_at<'a>(value: &'a Value, path: &str, depth: usize) -> Option<&'a Value> {
    let object = value.as_object()?;
    if let Some(found) = object.get(path) {
        return Some(found);
    }
    if depth >= MAX_PATH_DEPTH {
        return None;
    }
    path.match_indices('.').find_map(|(i, _)| {
        let child = object.get(&path[..i])?;
        lookup_at(child, &path[i + 1..], depth + 1)
    })
}

/// A claim as one string: strings as they are (when not blank), numbers
/// and booleans printed; anything else is no value.
pub(crate) fn as_single(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A claim as a list: arrays element by element (scalars only), strings
/// split on whitespace (`scope = "a b"`).
pub(crate) fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(as_single).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        other => as_single(other).into_iter().collect(),
    }
}

/// Whether a claim holds `expected`: equal as a scalar, or as any element
/// of an array. A string claim must equal `expected` as a whole.
pub(crate) fn holds(value: &Value, expected: &str) -> bool {
    match value {
        Value::Array(items) => items
            .iter()
            .any(|item| as_single(item).as_deref() == Some(expected)),
        other => as_single(other).as_deref() == Some(expected),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn literal_key_wins_over_dotted_path() {
        let claims = json!({
            "https://example.com/roles": ["literal"],
            "https://example": { "com/roles": ["nested"] },
            "realm_access": { "roles": ["kc-admin", "kc-user"] },
            "resource_access": { "air.lock": { "roles": ["client-role"] } },
            "a.b": { "c": 1 },
        });
        assert_eq!(
            lookup(&claims, "https://example.com/roles"),
            Some(&json!(["literal"]))
        );
        assert_eq!(
            lookup(&claims, "realm_access.roles"),
            Some(&json!(["kc-admin", "kc-user"]))
        );
        assert_eq!(
            lookup(&claims, "resource_access.air.lock.roles"),
            Some(&json!(["client-role"])),
            "a key that itself contains dots"
        );
        assert_eq!(lookup(&claims, "a.b.c"), Some(&json!(1)));
        assert_eq!(lookup(&claims, "realm_access.groups"), None);
        assert_eq!(
            lookup(&claims, "realm_access.roles.0"),
            None,
            "no array indexing"
        );
        assert_eq!(lookup(&claims, ""), None);
        assert_eq!(lookup(&json!("not an object"), "x"), None);
    }

    #[test]
    fn lists_and_space_separated_strings_both_work() {
        assert_eq!(
            as_list(&json!(["a", "b", 3, {"x": 1}, true])),
            vec!["a", "b", "3", "true"]
        );
        assert_eq!(
            as_list(&json!("openid  jobs:read\tjobs:sync")),
            vec!["openid", "jobs:read", "jobs:sync"]
        );
        assert_eq!(as_list(&json!(null)), Vec::<String>::new());
        assert_eq!(as_single(&json!("  ")), None);
        assert_eq!(as_single(&json!(42)), Some("42".to_owned()));
        assert!(holds(&json!(["x", "airbyte-runner"]), "airbyte-runner"));
        assert!(holds(&json!("airbyte-runner"), "airbyte-runner"));
        assert!(
            !holds(&json!("airbyte-runner extra"), "airbyte-runner"),
            "strings match whole"
        );
        assert!(holds(&json!(true), "true"));
        assert!(!holds(&json!({"airbyte-runner": 1}), "airbyte-runner"));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert_eq!(
            parse_strict_object(br#"{"a":1,"a":2}"#),
            Err(StrictJsonError::DuplicateKey)
        );
        assert_eq!(
            parse_strict_object(br#"{"x":{"b":[{"c":1,"c":1}]}}"#),
            Err(StrictJsonError::DuplicateKey)
        );
        assert_eq!(
            parse_strict_object(br#"[1]"#),
            Err(StrictJsonError::NotAnObject)
        );
        assert_eq!(
            parse_strict_object(br#"{"a":1"#),
            Err(StrictJsonError::Syntax)
        );
        assert_eq!(
            parse_strict_object(br#"{"a":1} x"#),
            Err(StrictJsonError::Syntax)
        );
        let ok =
            parse_strict_object(br#"{"a":1.5,"b":[null,true,"s"],"c":{"d":-1}}"#).expect("valid");
        assert_eq!(
            Value::Object(ok),
            json!({"a":1.5,"b":[null,true,"s"],"c":{"d":-1}})
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse_strict_object(deep.as_bytes()),
            Err(StrictJsonError::Syntax)
        );
    }
}
