//! Request bodies of the public API's writes, read the way Airbyte's web
//! framework binds them: a body that is not a JSON object, a missing required
//! property or a value of the wrong type is refused before the application
//! runs, with the framework's 400.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::api::error::ApiError;

/// A JSON object body, and the path its refusals name.
#[derive(Debug)]
pub(crate) struct JsonBody {
    path: String,
    map: Map<String, Value>,
}

impl JsonBody {
    pub(crate) fn parse(path: &str, bytes: &[u8]) -> Result<JsonBody, ApiError> {
        let binding = |message: String| ApiError::Binding {
            path: path.to_owned(),
            message,
        };
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(JsonBody {
                path: path.to_owned(),
                map,
            }),
            Ok(_) => Err(binding(
                "Required argument [body] not specified: the body must be a JSON object".to_owned(),
            )),
            Err(e) => Err(binding(format!("Invalid JSON: {e}"))),
        }
    }

    fn binding(&self, message: String) -> ApiError {
        ApiError::Binding {
            path: self.path.clone(),
            message,
        }
    }

    /// A property that is present and not null.
    pub(crate) fn value(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn required<T>(&self, name: &str, value: Option<T>) -> Result<T, ApiError> {
        value.ok_or_else(|| self.binding(format!("Missing required creator property '{name}'")))
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.binding(format!(
                "Cannot deserialize value of type `String` from {other} (property '{name}')"
            ))),
        }
    }

    pub(crate) fn uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.string(name)?
            .map(|raw| {
                Uuid::parse_str(&raw).map_err(|_| {
                    self.binding(format!(
                        "Cannot deserialize value of type `java.util.UUID` from String \"{raw}\" (property '{name}')"
                    ))
                })
            })
            .transpose()
    }

    /// One of `allowed` (an enum of Airbyte's document).
    pub(crate) fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.string(name)? {
            Some(v) if !allowed.contains(&v.as_str()) => Err(self.binding(format!(
                "Cannot deserialize value of type `{name}` from String \"{v}\": not one of the values accepted: {allowed:?}"
            ))),
            other => Ok(other),
        }
    }

    /// An object-valued property.
    pub(crate) fn object(&self, name: &str) -> Result<Option<&Map<String, Value>>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(self.binding(format!(
                "Cannot deserialize value of type `Object` from {other} (property '{name}')"
            ))),
        }
    }

    /// A nested object as a body of its own, for its properties' checks.
    pub(crate) fn nested(&self, map: &Map<String, Value>) -> JsonBody {
        JsonBody {
            path: self.path.clone(),
            map: map.clone(),
        }
    }

    /// A property that must deserialize into `T` (arrays of strings and the like).
    pub(crate) fn typed<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        self.value(name)
            .map(|v| {
                serde_json::from_value(v.clone())
                    .map_err(|e| self.binding(format!("Cannot deserialize property '{name}': {e}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bound_like_the_framework_does() {
        assert!(JsonBody::parse("/p", b"[1]").is_err());
        assert!(JsonBody::parse("/p", b"{").is_err());
        let body = JsonBody::parse(
            "/p",
            br#"{"name": 3, "id": "nope", "mode": "x", "ok": "y", "gone": null}"#,
        )
        .expect("an object");
        assert!(body.string("name").is_err());
        assert!(body.uuid("id").is_err());
        assert!(body.one_of("mode", &["a", "b"]).is_err());
        assert_eq!(body.string("ok").expect("a string").as_deref(), Some("y"));
        assert_eq!(body.string("gone").expect("null is absent"), None);
        assert!(
            body.required("gone", body.string("gone").expect("ok"))
                .is_err()
        );
    }
}
