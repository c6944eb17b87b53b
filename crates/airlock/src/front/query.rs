//! The query string of a request to the front, parsed once: the pairs the
//! front authorizes on are the pairs it forwards, re-encoded, never the
//! caller's raw text.
//!
//! Airbyte's server (Micronaut) may read a raw query differently from
//! Airlock: split pairs on `;` as well as `&`, take the first or the last
//! of a repeated key, or match a key in another case. So a query that
//! could be read two ways is refused (400) before anything is decided: a
//! raw `;`, or a key given twice (in any case) unless Airbyte reads it as
//! a list (`workspaceIds`, `tagIds`).

use axum::http::request::Parts;
use uuid::Uuid;

use super::error::FrontError;

/// Keys Airbyte reads as lists, repeated or comma-separated.
const LIST_KEYS: [&str; 2] = ["workspaceIds", "tagIds"];

/// A request's query as the front read it: decoded pairs, in order, no
/// key repeated except [`LIST_KEYS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// The request's query, or why it is refused.
    pub(crate) fn of(parts: &Parts) -> Result<Self, FrontError> {
        Self::parse(parts.uri.query().unwrap_or_default())
    }

    /// Parses `raw` (`a=1&b=2`), refusing what Airbyte could read otherwise.
    pub(crate) fn parse(raw: &str) -> Result<Self, FrontError> {
        if raw.contains(';') {
            return Err(FrontError::BadRequest(
                "`;` is not allowed in the query (separate parameters with `&`, \
                 encode a `;` in a value as %3B)"
                    .to_owned(),
            ));
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect();
        // Each key's first spelling, by its lower case: one pass, however
        // many pairs.
        let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for (key, _) in &pairs {
            match seen.entry(key.to_ascii_lowercase()) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(key);
                }
                std::collections::hash_map::Entry::Occupied(first)
                    if *first.get() != key || !LIST_KEYS.contains(&key.as_str()) =>
                {
                    return Err(FrontError::BadRequest(format!(
                        "{} is given more than once",
                        crate::web::refusals::bounded(key)
                    )));
                }
                std::collections::hash_map::Entry::Occupied(_) => {}
            }
        }
        Ok(Self(pairs))
    }

    /// The pairs, in the caller's order.
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The one value of `key` (parsing made sure there is at most one).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a UUID, if given; any other value is a 400.
    pub(crate) fn uuid(&self, key: &str) -> Result<Option<Uuid>, FrontError> {
        self.get(key)
            .map(|v| {
                Uuid::parse_str(v)
                    .map_err(|_| FrontError::BadRequest(format!("{key} must be a UUID")))
            })
            .transpose()
    }

    /// Every value of a list key, comma-separated values split (as Airbyte
    /// reads `workspaceIds`), as canonical UUIDs.
    pub(crate) fn uuids(&self, key: &str) -> Result<Vec<String>, FrontError> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| {
                Uuid::parse_str(v)
                    .map(|u| u.hyphenated().to_string())
                    .map_err(|_| FrontError::BadRequest(format!("{key}: `{v}` is not a UUID")))
            })
            .collect()
    }

    /// `path`, with the query re-encoded when there is one.
    pub(crate) fn after(&self, path: &str) -> String {
        with_query(path, &self.0)
    }
}

/// `pairs` form-encoded (`a=1&b=x+y`).
pub(crate) fn encode(pairs: &[(String, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// `path?pairs`, or `path` alone when there are none.
pub(crate) fn with_query(path: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", encode(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0d9e2f4a-6c1b-4f0e-9a3d-2b7c8e5f1a40";
    const B: &str = "0d9e2f4a-6c1b-4f0e-9a3d-2b7c8e5f1a41";

    fn refused(raw: &str) -> bool {
        matches!(Query::parse(raw), Err(FrontError::BadRequest(_)))
    }

    #[test]
    fn a_query_that_reads_two_ways_is_refused() {
        assert!(refused(&format!("x=;sourceId={B}&sourceId={A}")));
        assert!(refused(&format!("sourceId={A};sourceId={B}")));
        assert!(refused(&format!("sourceId={A}&sourceId={B}")));
        assert!(refused(&format!("sourceId={A}&sourceId={A}")));
        assert!(refused(&format!("sourceId={A}&SourceId={B}")));
        assert!(refused(&format!("source%49d={A}&sourceId={B}")));
        assert!(refused("limit=1&limit=100"));
        assert!(refused(&format!("workspaceIds={A}&WorkspaceIds={B}")));
        assert!(refused(&format!("connectionId={A}&connectionid={B}")));
    }

    #[test]
    fn lists_repeat_and_the_rest_is_rebuilt_from_the_pairs() {
        let query = Query::parse(&format!(
            "workspaceIds={A}&workspaceIds={B},{A}&limit=2&tagIds=t&tagIds=u"
        ))
        .expect("a list key may repeat");
        assert_eq!(
            query.uuids("workspaceIds").expect("uuids"),
            [A, B, A].map(str::to_owned)
        );
        assert_eq!(query.get("limit"), Some("2"));
        let query = Query::parse(&format!("x=a%3Bb&source%49d={A}&name=a+b%26c")).expect("query");
        assert_eq!(query.get("x"), Some("a;b"));
        assert_eq!(
            query.uuid("sourceId").expect("uuid"),
            Some(A.parse().expect("uuid"))
        );
        assert_eq!(
            query.after("/streams"),
            format!("/streams?x=a%3Bb&sourceId={A}&name=a+b%26c")
        );
        assert_eq!(Query::parse("").expect("empty").after("/jobs"), "/jobs");
        assert!(
            Query::parse("sourceId=nope")
                .expect("query")
                .uuid("sourceId")
                .is_err()
        );
        assert!(
            Query::parse("workspaceIds=x")
                .expect("query")
                .uuids("workspaceIds")
                .is_err()
        );
    }
}
