//! `GET /openapi.json` (the HTTP surface as an OpenAPI 3.1 document,
//! generated from the handlers' `#[utoipa::path]` annotations) and
//! `GET /docs` (a page that renders it, self-contained: no external URL).
//!
//! Each handler describes itself next to its code, and each door's
//! `Routes` carries those descriptions with its routes; this module puts
//! the doors' descriptions into one document.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::web::problem::Problem;
use crate::web::problem::responses::{
    BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable,
    Unprocessable,
};
use crate::web::routes::{Routes, route};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Airlock",
        description = "An identity-aware control plane for Airbyte. Airlock's own API \
            (snake_case JSON, errors as `application/problem+json`), the Airbyte-compatible \
            front (Airbyte's own paths and camelCase bodies), service-account keys and the \
            MCP server. Every call but the health checks, metrics, token exchange and this \
            documentation carries a bearer token from a trusted identity provider."
    ),
    components(
        schemas(Problem),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            Unprocessable,
            Unavailable,
            TooManyRequests
        )
    ),
    modifiers(&BearerJwt),
    tags(
        (name = "identity", description = "Who the caller is"),
        (name = "connections", description = "Airbyte's connections, as far as the caller may see them"),
        (name = "jobs", description = "Syncs and resets: trigger, follow, cancel, retry"),
        (name = "approvals", description = "Four-eyes approvals of destructive actions: ask, list, approve, deny"),
        (name = "audit", description = "The hash-chained audit trail, for auditors"),
        (name = "operations", description = "Health, readiness, metrics and this documentation"),
        (name = "airbyte-compatible", description = "Airbyte's public API and token exchange, identity-checked, for unchanged Airbyte clients"),
        (name = "service-accounts", description = "Airlock as the issuer of service-account tokens"),
        (name = "mcp", description = "The Model Context Protocol server for AI agents"),
        (name = "console", description = "The web console: its page, sign-in (OIDC code flow with PKCE) and session"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme: a JWT from a trusted issuer.
struct BearerJwt;

impl utoipa::Modify for BearerJwt {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "An access token from an issuer in `[[issuers]]` (or a \
                             service-account token from `/applications/token`).",
                        ))
                        .build(),
                ),
            );
            components.add_security_scheme(
                "session",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    "airlock_session",
                    "The web console's session (set by `/console/callback`), named \
                     `__Host-airlock_session` when cookies are `Secure`. Calls that \
                     change state also need its `X-CSRF-Token`, and an `Origin` (when \
                     sent) equal to Airlock's own. Sent twice, it is refused (400).",
                ))),
            );
        }
    }
}

/// `/openapi.json` and `/docs`, serving the document of `surface` and of
/// themselves.
pub fn routes<'a>(surface: impl IntoIterator<Item = &'a Routes>) -> Routes {
    let docs = Routes::<Served>::new()
        .route(route!(document_json))
        .route(route!(docs));
    let mut described = docs.openapi();
    for routes in surface {
        described.merge(routes.openapi());
    }
    let mut text = document(described)
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    docs.with_state(Served(Bytes::from(text)))
}

/// The document as served.
#[derive(Clone)]
struct Served(Bytes);

/// The whole document: the operations and schemas the routes describe
/// (`surface`), with the title, tags, shared responses and security
/// schemes.
fn document(surface: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(surface);
    session_cookies(&mut doc);
    unique_operation_ids(&mut doc);
    capped_per_identity(&mut doc);
    links(&mut doc);
    doc
}

/// An answer that names a resource by its `id`, and the operations that
/// take it: a link from each listed status of each `from` to each operation
/// of `to`, passing the answer's `id` as the operation's `id`.
struct Linked {
    from: &'static [&'static str],
    statuses: &'static [&'static str],
    to: &'static [&'static str],
}

/// The links of Airlock's own API, so that clients (and tests generated
/// from the document) can follow a job or an approval from the answer that
/// made it.
const LINKS: &[Linked] = &[
    Linked {
        from: &["trigger_sync", "trigger_reset"],
        statuses: &["200", "202"],
        to: &["get_job", "events", "cancel", "retry"],
    },
    Linked {
        from: &["retry"],
        statuses: &["202"],
        to: &["get_job", "events", "cancel"],
    },
    Linked {
        from: &["request_approval"],
        statuses: &["200", "201"],
        to: &["get_approval", "approve", "deny"],
    },
];

fn links(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::link::LinkBuilder;
    for item in doc.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            let Some(linked) = LINKS.iter().find(|l| {
                l.from
                    .contains(&operation.operation_id.as_deref().unwrap_or_default())
            }) else {
                continue;
            };
            for status in linked.statuses {
                let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status)
                else {
                    continue;
                };
                for target in linked.to {
                    let link = LinkBuilder::new()
                        .operation_id(*target)
                        .parameter("id", "$response.body#/id")
                        .build();
                    response.links.insert((*target).to_owned(), RefOr::T(link));
                }
            }
        }
    }
}

/// Every call of Airlock's own API that takes a bearer token also takes the
/// console's session cookie (the `Caller` extractor accepts both).
fn session_cookies(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    for (path, item) in &mut doc.paths.paths {
        if !path.starts_with("/v1/") || path.ends_with("/token") {
            continue;
        }
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            if let Some(security) = operation.security.as_mut() {
                let session = SecurityRequirement::new("session", Vec::<String>::new());
                if !security.contains(&session) {
                    security.push(session);
                }
            }
        }
    }
}

/// Every authenticated call of Airlock's own API passes the per-identity
/// cap of requests in flight (`api::limits`, in the `Caller` extractor),
/// so each may answer 429.
fn capped_per_identity(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Ref, RefOr};
    for (path, item) in &mut doc.paths.paths {
        if !path.starts_with("/v1/") || path.ends_with("/token") {
            continue;
        }
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            if operation.security.is_some() {
                operation.responses.responses.insert(
                    "429".to_owned(),
                    RefOr::Ref(Ref::from_response_name("TooManyRequests")),
                );
            }
        }
    }
}

/// One handler serving several methods gets one id per method (OpenAPI
/// wants them unique): `public` becomes `public_get`, `public_post`, ...
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let each = |doc: &mut utoipa::openapi::OpenApi,
                f: &mut dyn FnMut(&str, &mut utoipa::openapi::path::Operation)| {
        for item in doc.paths.paths.values_mut() {
            for (method, operation) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ] {
                if let Some(operation) = operation {
                    f(method, operation);
                }
            }
        }
    };
    each(doc, &mut |_, operation| {
        if let Some(id) = &operation.operation_id {
            *seen.entry(id.clone()).or_default() += 1;
        }
    });
    each(doc, &mut |method, operation| {
        if let Some(id) = operation.operation_id.as_mut()
            && seen.get(id.as_str()).is_some_and(|n| *n > 1)
        {
            *id = format!("{id}_{method}");
        }
    });
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn document_json(State(Served(text)): State<Served>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], text)
}

/// `GET /docs`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    summary = "This document, readable (HTML, works offline)",
    responses((status = 200, description = "An HTML page", body = String, content_type = "text/html"))
)]
async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
