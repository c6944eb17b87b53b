//! The resources a request names besides the one it is decided on: ids at
//! the top level of its JSON body (`workspaceId`, `sourceId`,
//! `destinationId`, `connectionId`) and `GET /streams`' `destinationId`.
//! Each is found and decided with the request's permission like the main
//! resource, so that a body cannot move a source into a workspace, or tie
//! a new connection to a destination, that the caller may not touch. Out
//! of scope looks like not found (404), as for the main resource. The
//! body is parsed here once, and forwarded as parsed (re-encoded).

use axum::body::Bytes;
use axum::http::Method;
use axum::http::request::Parts;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::caller;
use super::error::FrontError;
use super::public::{Located, Step, locate, resolve_connection};
use super::{FrontState, raw_response, workspace_resource};
use crate::web::Caller;
use airlock_domain::policy::{Permission, Resource};

/// A resource named by id, not yet found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Named {
    Workspace(Uuid),
    Source(Uuid),
    Destination(Uuid),
    Connection(Uuid),
}

/// Makes a [`Named`] of an id.
type Naming = fn(Uuid) -> Named;

/// The body keys that name a resource.
const BODY_KEYS: [(&str, Naming); 4] = [
    ("workspaceId", Named::Workspace),
    ("sourceId", Named::Source),
    ("destinationId", Named::Destination),
    ("connectionId", Named::Connection),
];

impl Named {
    pub(super) fn id(self) -> Uuid {
        match self {
            Self::Workspace(id)
            | Self::Source(id)
            | Self::Destination(id)
            | Self::Connection(id) => id,
        }
    }
}

/// The resources a JSON body names at its top level. `null` names none; a
/// value that is not a UUID, or a key spelled in another case (which a
/// lenient reader could take for the real one), is a 400.
pub(super) fn in_body(object: &Map<String, Value>) -> Result<Vec<Named>, FrontError> {
    let mut named = Vec::new();
    for (key, value) in object {
        let Some((name, make)) = BODY_KEYS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
        else {
            continue;
        };
        if key != name {
            return Err(FrontError::BadRequest(format!("{key}: write it {name}")));
        }
        match value {
            Value::Null => {}
            Value::String(text) => match Uuid::parse_str(text) {
                Ok(id) => named.push(make(id)),
                Err(_) => return Err(FrontError::BadRequest(format!("{name} must be a UUID"))),
            },
            _ => return Err(FrontError::BadRequest(format!("{name} must be a UUID"))),
        }
    }
    Ok(named)
}

/// The JSON object of a request that carries one (POST, PUT, PATCH with a
/// body); other bodies are not forwarded.
pub(super) fn body_of(
    method: &Method,
    body: &Bytes,
) -> Result<Option<Map<String, Value>>, FrontError> {
    let carries = [Method::POST, Method::PUT, Method::PATCH].contains(method);
    if !carries || body.is_empty() {
        return Ok(None);
    }
    json_body(body).map(|(object, _)| Some(object))
}

/// A JSON object body, and the bytes to forward (as the front read it).
pub(super) fn json_body(
    body: &[u8],
) -> Result<(serde_json::Map<String, Value>, Vec<u8>), FrontError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => {
            let bytes = serde_json::to_vec(&object)
                .map_err(|e| FrontError::Internal(anyhow::Error::new(e)))?;
            Ok((object, bytes))
        }
        _ => Err(FrontError::BadRequest(
            "The request body must be a JSON object".to_owned(),
        )),
    }
}

pub(super) fn uuid_field(
    object: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Uuid, FrontError> {
    object
        .get(name)
        .and_then(Value::as_str)
        // Hyphenated, as Airbyte (Java's `UUID.fromString`) and the
        // document's pattern take it.
        .filter(|s| s.len() == 36)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| FrontError::BadRequest(format!("{name} must be a UUID")))
}

/// Another resource the request touches, found: what is decided, and how
/// a refusal names it.
#[derive(Debug)]
pub(super) struct Also {
    resource: Resource,
    kind: &'static str,
    id: String,
}

/// Finds each named resource (the catalog for connections, Airbyte for
/// sources and destinations); Airbyte's refusal of a lookup is answered
/// as it is.
pub(super) async fn find(
    state: &FrontState,
    parts: &Parts,
    named: Vec<Named>,
) -> Result<Step<Vec<Also>>, FrontError> {
    let mut found = Vec::with_capacity(named.len());
    for name in named {
        let id = name.id().hyphenated().to_string();
        let (resource, kind) = match name {
            Named::Workspace(_) => (workspace_resource(state, &id), "workspace"),
            Named::Connection(uuid) => (
                resolve_connection(state, uuid).await?.resource(),
                "connection",
            ),
            Named::Source(uuid) | Named::Destination(uuid) => {
                let (plural, kind) = match name {
                    Named::Source(_) => ("sources", "source"),
                    _ => ("destinations", "destination"),
                };
                // Boxed: only writes name sources or destinations, and the
                // lookup's future is large.
                match Box::pin(locate(state, parts, plural, uuid)).await? {
                    Located::In(workspace, _) => (workspace_resource(state, &workspace), kind),
                    Located::Refused(raw) => return Ok(Step::Answer(raw_response(raw))),
                }
            }
        };
        found.push(Also { resource, kind, id });
    }
    Ok(Step::Go(found))
}

/// Decides `permission` on each resource found; the first refusal (404
/// when out of scope, audited) stops the request.
pub(super) async fn authorize(
    state: &FrontState,
    caller: &Caller,
    permission: Permission,
    also: &[Also],
) -> Result<(), FrontError> {
    for other in also {
        caller::authorize(
            caller,
            state,
            permission,
            &other.resource,
            other.kind,
            &other.id,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0d9e2f4a-6c1b-4f0e-9a3d-2b7c8e5f1a40";

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn every_id_key_of_a_body_is_named() {
        let id: Uuid = A.parse().expect("uuid");
        let named = in_body(&object(serde_json::json!({
            "name": "x", "workspaceId": A, "destinationId": A, "sourceId": A,
            "connectionId": A, "definitionId": "not mine to judge",
        })))
        .expect("named");
        assert_eq!(named.len(), 4);
        for expected in [
            Named::Workspace(id),
            Named::Source(id),
            Named::Destination(id),
            Named::Connection(id),
        ] {
            assert!(named.contains(&expected), "{expected:?}");
        }
        assert_eq!(
            in_body(&object(serde_json::json!({"workspaceId": null}))).expect("none"),
            []
        );
        for refused in [
            serde_json::json!({"workspaceId": "elsewhere"}),
            serde_json::json!({"workspaceId": 7}),
            serde_json::json!({"destinationId": [A]}),
            serde_json::json!({"WorkspaceId": A}),
            serde_json::json!({"sourceid": A}),
        ] {
            assert!(in_body(&object(refused.clone())).is_err(), "{refused}");
        }
    }
}
