//! The calls that read what Airbyte holds, so connections can be listed and
//! named: workspaces, connections, sources and destinations, and the
//! Configuration API's read of one connection.

use http::Method;
use uuid::Uuid;

use super::{AirbyteClient, Pages};
use crate::error::{Error, Result};
use crate::models::{Connection, Destination, ListParams, Page, Source, Workspace};

impl AirbyteClient {
    /// One page of workspaces (`GET /workspaces`).
    pub async fn list_workspaces(&self, params: &ListParams) -> Result<Page<Workspace>> {
        self.list_page(
            "GET /workspaces",
            "/workspaces",
            params.filter_query(false),
            params.limit,
            params.offset,
        )
        .await
    }

    /// One workspace (`GET /workspaces/{workspaceId}`).
    pub async fn get_workspace(&self, workspace_id: Uuid) -> Result<Workspace> {
        let call = self.call(
            Method::GET,
            "GET /workspaces/{workspaceId}",
            format!("/workspaces/{workspace_id}"),
        );
        self.call_json(call).await
    }

    /// One page of connections (`GET /connections`), filtered by workspaces and tags.
    pub async fn list_connections(&self, params: &ListParams) -> Result<Page<Connection>> {
        self.list_page(
            "GET /connections",
            "/connections",
            params.filter_query(true),
            params.limit,
            params.offset,
        )
        .await
    }

    /// Every connection matching `params`, following pages from `params.offset`.
    pub async fn list_all_connections(&self, params: &ListParams) -> Result<Vec<Connection>> {
        self.connection_pages(params).collect_all().await
    }

    /// A pager over connections, for callers that may stop early.
    pub fn connection_pages(&self, params: &ListParams) -> Pages<Connection> {
        Pages::new(
            self.clone(),
            "GET /connections",
            "/connections",
            params.filter_query(true),
            params.limit,
            params.offset,
        )
    }

    /// One connection (`GET /connections/{connectionId}`).
    pub async fn get_connection(&self, connection_id: Uuid) -> Result<Connection> {
        let call = self.call(
            Method::GET,
            "GET /connections/{connectionId}",
            format!("/connections/{connection_id}"),
        );
        self.call_json(call).await
    }

    /// One page of sources (`GET /sources`), to name where connections read from.
    pub async fn list_sources(&self, params: &ListParams) -> Result<Page<Source>> {
        self.list_page(
            "GET /sources",
            "/sources",
            params.filter_query(false),
            params.limit,
            params.offset,
        )
        .await
    }

    /// One page of destinations (`GET /destinations`), to name where connections write.
    pub async fn list_destinations(&self, params: &ListParams) -> Result<Page<Destination>> {
        self.list_page(
            "GET /destinations",
            "/destinations",
            params.filter_query(false),
            params.limit,
            params.offset,
        )
        .await
    }

    /// Reads a connection through the Configuration API (`POST /connections/get`),
    /// the one internal route Dagster needs; the body is returned as Airbyte sent it.
    /// A read, so retried like one although it is a POST.
    pub async fn get_connection_config(&self, connection_id: Uuid) -> Result<serde_json::Value> {
        let Some(site) = &self.inner.config else {
            return Err(Error::InvalidInput(
                "no Configuration API URL is configured".to_owned(),
            ));
        };
        let body = serde_json::to_vec(&serde_json::json!({ "connectionId": connection_id }))
            .map_err(|error| Error::InvalidInput(error.to_string()))?;
        let mut call = self.call(Method::POST, "POST /api/v1/connections/get", String::new());
        call.site = site;
        call.target = site.target("/connections/get");
        call.body = Some(body.into());
        self.call_json(call).await
    }
}
