//! List endpoints, filtered to what the caller may see while keeping
//! Airbyte's page format (`{"data", "next", "previous"}`).
//!
//! A caller whose grant covers every workspace gets Airbyte's answer as it
//! is. Anyone else's query is narrowed first: `workspaceIds` becomes the
//! workspaces (of those asked for) where the caller may see something, so
//! that Airbyte's pages hold mostly visible items; then every item is
//! checked on its own (a grant on some connections of a workspace shows
//! those connections only). `next` and `previous` are rewritten to point
//! at Airlock, with the caller's own query. An answer that cannot be
//! filtered (not JSON, no `data` array, an item without the id it is judged
//! by) is a 502, never passed on unfiltered.

use std::collections::BTreeSet;

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::FrontState;
use super::classify::Listing;
use super::error::{FrontError, json_response};
use super::query::{Query, encode, with_query};
use super::{PUBLIC_PREFIX, forward, raw_response};
use crate::web::Caller;
use airlock_domain::policy::{Permission, Resource};
use airlock_services::connections::Snapshot;

/// How a list's items are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judge {
    /// By the connection (`connectionId` of the item).
    Connection,
    /// By the workspace, or any readable connection in it.
    WorkspaceOrConnections,
    /// By the workspace only.
    Workspace,
}

fn judge_of(listing: Listing) -> Judge {
    match listing {
        Listing::Connections | Listing::Jobs => Judge::Connection,
        Listing::Workspaces => Judge::WorkspaceOrConnections,
        Listing::Sources | Listing::Destinations => Judge::Workspace,
    }
}

fn permission_of(listing: Listing) -> Permission {
    match listing {
        Listing::Jobs => Permission::JobsRead,
        _ => Permission::ConnectionsRead,
    }
}

/// `scheme://host` that page links point at: `[front] public_url`, else
/// the request's own `Host`.
pub(crate) fn origin(state: &FrontState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.front().public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = crate::web::session::request_host(headers);
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|s| *s == "https" || *s == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// An Airbyte page link rewritten to Airlock: the caller's query with the
/// link's `limit` and `offset`.
fn rewrite_link(link: &str, base: &str, caller_pairs: &[(String, String)]) -> Option<String> {
    let url = airbyte_client::Url::parse(link).ok()?;
    let mut pairs: Vec<(String, String)> = caller_pairs
        .iter()
        .filter(|(k, _)| k != "limit" && k != "offset")
        .cloned()
        .collect();
    for (k, v) in url.query_pairs() {
        if k == "limit" || k == "offset" {
            pairs.push((k.into_owned(), v.into_owned()));
        }
    }
    Some(format!("{base}?{}", encode(&pairs)))
}

/// The snapshot, fetched once if the catalog is still empty.
async fn snapshot(state: &FrontState) -> Result<std::sync::Arc<Snapshot>, FrontError> {
    let snapshot = state.catalog().snapshot();
    if snapshot.fetched_at != 0 {
        return Ok(snapshot);
    }
    state.catalog().refresh_after_miss().await.map_err(|error| {
        tracing::warn!(error = %error, "cannot list Airbyte connections");
        FrontError::BadGateway("Airbyte")
    })
}

/// Decides visibility for one caller and one list.
struct Visibility<'a> {
    state: &'a FrontState,
    caller: &'a Caller,
    permission: Permission,
    judge: Judge,
    snapshot: std::sync::Arc<Snapshot>,
    refreshed: bool,
}

impl Visibility<'_> {
    fn workspace_resource(&self, id: &str) -> Resource {
        Resource::Workspace(airlock_domain::policy::WorkspaceResource {
            id: id.to_owned(),
            names: self.snapshot.bound_names(id),
        })
    }

    fn allows(&self, resource: &Resource) -> bool {
        self.state
            .policy()
            .allows(&self.caller.principal, self.permission, resource)
    }

    fn workspace_visible(&self, id: &str) -> bool {
        if self.allows(&self.workspace_resource(id)) {
            return true;
        }
        self.judge != Judge::Workspace
            && self
                .snapshot
                .all()
                .iter()
                .filter(|c| c.workspace_id == id)
                .any(|c| self.allows(&c.resource()))
    }

    /// The workspaces of the catalog where the caller may see something.
    fn workspaces(&self) -> BTreeSet<String> {
        self.snapshot
            .workspaces()
            .keys()
            .filter(|id| self.workspace_visible(id))
            .cloned()
            .collect()
    }

    async fn connection_visible(&mut self, id: &str) -> bool {
        if self.snapshot.resolve(id).is_none() && !self.refreshed {
            // A connection created since the last refresh; at most one
            // listing per cooldown, whoever asks.
            self.refreshed = true;
            if let Ok(fresh) = self.state.catalog().refresh_after_miss().await {
                self.snapshot = fresh;
            }
        }
        self.snapshot
            .resolve(id)
            .filter(|c| c.id == id)
            .is_some_and(|c| self.allows(&c.resource()))
    }

    /// Whether the caller may see `item`; an item without the id it is
    /// judged by cannot be judged.
    async fn item_visible(&mut self, item: &Value) -> Result<bool, &'static str> {
        let name = match self.judge {
            Judge::Connection => "connectionId",
            Judge::WorkspaceOrConnections | Judge::Workspace => "workspaceId",
        };
        let id = item
            .get(name)
            .and_then(Value::as_str)
            .ok_or("an item without its id")?
            .to_ascii_lowercase();
        Ok(match self.judge {
            Judge::Connection => self.connection_visible(&id).await,
            Judge::WorkspaceOrConnections | Judge::Workspace => self.workspace_visible(&id),
        })
    }
}

/// An empty page, for a caller who may see nothing of what was asked.
fn empty_page() -> Response {
    json_response(
        StatusCode::OK,
        json!({"data": []}).to_string().into_bytes(),
        None,
    )
}

/// Serves a list.
pub(crate) async fn list(
    state: &FrontState,
    caller: &Caller,
    listing: Listing,
    parts: &Parts,
    query: &Query,
) -> Result<Response, FrontError> {
    let permission = permission_of(listing);
    let caller_pairs = query.pairs();
    let everywhere = state
        .policy()
        .allows(&caller.principal, permission, &Resource::Global);
    let base = format!(
        "{}{PUBLIC_PREFIX}/{}",
        origin(state, &parts.headers),
        listing.segment()
    );
    if everywhere {
        let raw = forward(
            state,
            parts,
            &query.after(&format!("/{}", listing.segment())),
            Vec::new(),
        )
        .await?;
        return rewrite_page(raw, &base, caller_pairs, None).await;
    }
    let mut visibility = Visibility {
        state,
        caller,
        permission,
        judge: judge_of(listing),
        snapshot: snapshot(state).await?,
        refreshed: false,
    };
    // A job list of one connection is decided on that connection.
    if listing == Listing::Jobs
        && let Some(connection) = query.uuid("connectionId")?
    {
        let id = connection.hyphenated().to_string();
        if !visibility.connection_visible(&id).await {
            let resource = visibility.snapshot.resolve(&id).map_or(
                Resource::Global,
                airlock_services::connections::ConnectionInfo::resource,
            );
            caller
                .deny(state, "jobs.read", &resource, "out_of_scope", "404")
                .await;
            return Err(FrontError::NotFound {
                resource_type: "connection",
                id,
            });
        }
    }
    let visible = visibility.workspaces();
    let asked = query.uuids("workspaceIds")?;
    let narrowed: Vec<String> = if asked.is_empty() {
        visible.iter().cloned().collect()
    } else {
        asked.into_iter().filter(|w| visible.contains(w)).collect()
    };
    if narrowed.is_empty() {
        return Ok(empty_page());
    }
    let mut pairs: Vec<(String, String)> = caller_pairs
        .iter()
        .filter(|(k, _)| k != "workspaceIds")
        .cloned()
        .collect();
    pairs.extend(narrowed.into_iter().map(|w| ("workspaceIds".to_owned(), w)));
    let path = with_query(&format!("/{}", listing.segment()), &pairs);
    let raw = forward(state, parts, &path, Vec::new()).await?;
    rewrite_page(raw, &base, caller_pairs, Some(&mut visibility)).await
}

/// Filters a page's items (when `visibility` is given) and points its links
/// at Airlock. Unfiltered, anything but a 200 JSON page passes through
/// unchanged; filtered, Airbyte's refusals do, but a success that is not a
/// page of judgeable items is a 502, never passed on unfiltered.
async fn rewrite_page(
    raw: airbyte_client::RawResponse,
    base: &str,
    caller_pairs: &[(String, String)],
    visibility: Option<&mut Visibility<'_>>,
) -> Result<Response, FrontError> {
    let mut page = match visibility {
        None => match json_page(&raw) {
            Ok(page) if raw.status == StatusCode::OK => page,
            _ => return Ok(raw_response(raw)),
        },
        Some(_) if !raw.status.is_success() => return Ok(raw_response(raw)),
        Some(visibility) => filtered(&raw, visibility).await.map_err(|reason| {
            tracing::warn!(reason, status = %raw.status, "Airbyte's list cannot be filtered");
            FrontError::BadGateway("Airbyte")
        })?,
    };
    for key in ["next", "previous"] {
        if let Some(Value::String(link)) = page.get(key) {
            match rewrite_link(link, base, caller_pairs) {
                Some(rewritten) => {
                    page.insert(key.to_owned(), Value::String(rewritten));
                }
                None => {
                    page.remove(key);
                }
            }
        }
    }
    Ok(json_response(
        StatusCode::OK,
        Value::Object(page).to_string().into_bytes(),
        raw.content_type.as_deref(),
    ))
}

/// Airbyte's answer as a JSON object, or why it is not one.
fn json_page(raw: &airbyte_client::RawResponse) -> Result<Map<String, Value>, &'static str> {
    let is_json = raw
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json"));
    if !is_json {
        return Err("not JSON (content type)");
    }
    match serde_json::from_slice::<Value>(&raw.body) {
        Ok(Value::Object(page)) => Ok(page),
        Ok(_) => Err("not a JSON object"),
        Err(_) => Err("not JSON"),
    }
}

/// The page with only the items the caller may see, or why Airbyte's
/// answer cannot be filtered.
async fn filtered(
    raw: &airbyte_client::RawResponse,
    visibility: &mut Visibility<'_>,
) -> Result<Map<String, Value>, &'static str> {
    if raw.status != StatusCode::OK {
        return Err("an unexpected success status");
    }
    let mut page = json_page(raw)?;
    let Some(Value::Array(items)) = page.remove("data") else {
        return Err("no `data` array");
    };
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if visibility.item_visible(&item).await? {
            kept.push(item);
        }
    }
    page.insert("data".to_owned(), Value::Array(kept));
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn links_keep_the_callers_query_and_airbytes_window() {
        let caller = p(&[
            ("workspaceIds", "a"),
            ("limit", "2"),
            ("includeDeleted", "true"),
        ]);
        let link = "http://airbyte:8000/api/public/v1/connections?workspaceIds=a&workspaceIds=b&includeDeleted=true&limit=2&offset=4";
        assert_eq!(
            rewrite_link(link, "https://airlock/api/public/v1/connections", &caller).as_deref(),
            Some(
                "https://airlock/api/public/v1/connections?workspaceIds=a&includeDeleted=true&limit=2&offset=4"
            )
        );
        assert_eq!(rewrite_link("not a url", "x", &caller), None);
    }
}
