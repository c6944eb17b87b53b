//! A request's query string and JSON body read into typed values. What does
//! not fit is refused with the field to blame ([`super::problem::Invalid`]):
//! a body that is not JSON is malformed (400, pointer `""`); a value of the
//! wrong type, missing, unknown or refused by its type breaks a rule (422,
//! a JSON Pointer into the body, or the query parameter's name).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_path_to_error::{Path, Segment};

use super::problem::ApiError;

/// The query string as `T`, like axum's `Query`, refused as a problem that
/// names the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// `raw` (a query string without its `?`) as `T`.
pub fn query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(pairs).map_err(|error| {
        let message = error.inner().to_string();
        let (names, detail) = blame(error.path(), &message);
        ApiError::invalid(names.join("."), detail)
    })
}

/// A JSON body as `T`.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        let path = error.path().clone();
        let inner = error.into_inner();
        if !inner.is_data() {
            return ApiError::malformed("", format!("not JSON: {inner}"));
        }
        let message = without_position(&inner.to_string());
        let (names, detail) = blame(&path, &message);
        ApiError::invalid(pointer(&names), detail)
    })?;
    reader
        .end()
        .map_err(|e| ApiError::malformed("", format!("not JSON: {e}")))?;
    Ok(value)
}

/// The names down to the value to blame, and what is wrong with it. serde
/// names a missing or unknown field in its message, not in its path.
fn blame(path: &Path, message: &str) -> (Vec<String>, String) {
    let mut names: Vec<String> = path
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    if let Some(name) = named
        && names.last() != Some(&name)
    {
        names.push(name);
    }
    // The fields a body may hold are in the document; the list would only
    // lengthen the answer.
    let detail = match message.split_once(", expected") {
        Some((head, _)) if head.starts_with("unknown field") => head,
        _ => message,
    };
    (names, detail.to_owned())
}

/// The JSON Pointer (RFC 6901) of `names`.
fn pointer(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("/{}", name.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// serde_json's message without its " at line L column C".
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::problem::Invalid;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        limit: Option<u32>,
        reason: String,
        #[expect(dead_code, reason = "only its refusals are read")]
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only its refusals are read")]
    struct Nested {
        items: Vec<u32>,
    }

    fn refusal(error: ApiError) -> (u16, Invalid) {
        let status = error.problem().status.as_u16();
        match error {
            ApiError::BadRequest(invalid) | ApiError::Unprocessable(invalid) => (status, invalid),
            other => panic!("not a refusal of the content: {other:?}"),
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_malformed() {
        for body in [&b"{"[..], b"{\"reason\": \"x\"} trailing", b"\xff"] {
            let (status, invalid) = refusal(json::<Options>(body).unwrap_err());
            assert_eq!(status, 400, "{invalid:?}");
            assert_eq!(invalid.pointer.as_deref(), Some(""));
            assert!(invalid.detail.starts_with("not JSON"), "{invalid:?}");
        }
    }

    #[test]
    fn a_body_value_that_breaks_a_rule_is_named_by_its_pointer() {
        let cases: [(&[u8], &str, &str); 4] = [
            (br#"{"reason": 5}"#, "/reason", "invalid type"),
            (br#"{"limit": 1}"#, "/reason", "missing field `reason`"),
            (
                br#"{"reason": "x", "lmit": 1}"#,
                "/lmit",
                "unknown field `lmit`",
            ),
            (
                br#"{"reason": "x", "nested": {"items": [1, "two"]}}"#,
                "/nested/items/1",
                "invalid type",
            ),
        ];
        for (body, at, detail) in cases {
            let (status, invalid) = refusal(json::<Options>(body).unwrap_err());
            assert_eq!(status, 422, "{invalid:?}");
            assert_eq!(invalid.pointer.as_deref(), Some(at));
            assert!(invalid.detail.starts_with(detail), "{invalid:?}");
            assert!(!invalid.detail.contains(" at line "), "{invalid:?}");
            assert!(!invalid.detail.contains("expected one of"), "{invalid:?}");
        }
    }

    #[test]
    fn a_query_value_that_breaks_a_rule_is_named_by_its_parameter() {
        let cases = [
            ("reason=x&limit=ten", "limit", "invalid digit"),
            ("limit=1", "reason", "missing field `reason`"),
            ("reason=x&lmit=1", "lmit", "unknown field `lmit`"),
        ];
        for (raw, at, detail) in cases {
            let (status, invalid) = refusal(query::<Options>(raw).unwrap_err());
            assert_eq!(status, 422, "{invalid:?}");
            assert_eq!(invalid.pointer.as_deref(), Some(at));
            assert!(invalid.detail.starts_with(detail), "{invalid:?}");
        }
        let read: Options = query("reason=a%20b&limit=3").expect("fits");
        assert_eq!((read.reason.as_str(), read.limit), ("a b", Some(3)));
    }

    #[test]
    fn pointers_escape_tildes_and_slashes() {
        assert_eq!(pointer(&["a/b".into(), "c~d".into()]), "/a~1b/c~0d");
        assert_eq!(pointer(&[]), "");
    }
}
