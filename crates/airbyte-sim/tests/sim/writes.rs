//! The public API's writes over HTTP: status codes, bodies and error shapes
//! as Airbyte's servers answer them.

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Harness, data_len};

impl Harness {
    async fn patch(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.send(self.http.patch(self.url(path)).json(&body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.send(self.http.put(self.url(path)).json(&body)).await
    }

    /// Creates a source or destination (`kind` is `source` or `destination`)
    /// of type `postgres` in `workspace`; returns its id.
    async fn create_actor(&self, kind: &str, workspace: &str, name: &str) -> Result<String> {
        let (status, body) = self
            .post(
                &format!("/{kind}s"),
                json!({
                    "name": name,
                    "workspaceId": workspace,
                    "configuration": {format!("{kind}Type"): "postgres", "host": "db", "password": "pw"},
                }),
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        Ok(body[format!("{kind}Id")]
            .as_str()
            .expect("an id")
            .to_owned())
    }
}

fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, title: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert_eq!(body["title"], title, "{body}");
}

/// The web framework's 400 (`{"message","_links","_embedded"}`).
fn assert_binding(status: StatusCode, body: &Value, mentions: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], "Bad Request", "{body}");
    let message = body["_embedded"]["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains(mentions), "{mentions} in {body}");
}

#[tokio::test]
async fn workspaces_are_created_renamed_and_deleted_with_their_contents() -> Result<()> {
    let h = Harness::start("").await?;
    let (status, created) = h.post("/workspaces", json!({"name": "sales"})).await?;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["name"], "sales");
    assert_eq!(created["dataResidency"], "auto");
    let id = created["workspaceId"].as_str().expect("an id").to_owned();

    let (status, namesake) = h.post("/workspaces", json!({"name": "sales"})).await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "names need not be unique: {namesake}"
    );
    assert_ne!(namesake["workspaceId"], created["workspaceId"]);

    let (status, body) = h.post("/workspaces", json!({})).await?;
    assert_binding(status, &body, "'name'");

    let (status, renamed) = h
        .patch(&format!("/workspaces/{id}"), json!({"name": "revenue"}))
        .await?;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "revenue");
    assert_eq!(renamed["workspaceId"], id.as_str());

    let source = h.create_actor("source", &id, "CRM").await?;
    let destination = h.create_actor("destination", &id, "Lake").await?;
    let (status, connection) = h
        .post(
            "/connections",
            json!({"sourceId": source, "destinationId": destination}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{connection}");

    let (status, body) = h.delete(&format!("/workspaces/{id}")).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, json!(""), "a delete has no body");
    let (_, listed) = h.get("/workspaces?limit=100").await?;
    assert!(
        !listed.to_string().contains(&id),
        "a deleted workspace is not listed"
    );
    let (_, listed) = h.get("/workspaces?limit=100&includeDeleted=true").await?;
    assert!(listed.to_string().contains(&id), "unless asked for");
    let (status, _) = h.get(&format!("/workspaces/{id}")).await?;
    assert_eq!(status, StatusCode::OK, "a tombstone is still readable");
    let (_, sources) = h.get(&format!("/sources?workspaceIds={id}")).await?;
    assert_eq!(data_len(&sources), 0, "{sources}");
    let connection_id = connection["connectionId"].as_str().expect("an id");
    let (_, read) = h.get(&format!("/connections/{connection_id}")).await?;
    assert_eq!(read["status"], "deprecated", "{read}");

    let unknown = "00000000-0000-4000-8000-000000000001";
    let (status, body) = h
        .patch(&format!("/workspaces/{unknown}"), json!({"name": "x"}))
        .await?;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "resource-not-found");
    let (status, body) = h.delete(&format!("/workspaces/{unknown}")).await?;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "resource-not-found");
    Ok(())
}

#[tokio::test]
async fn sources_follow_create_patch_put_and_delete_semantics() -> Result<()> {
    let h = Harness::start("").await?;
    let workspace = h.workspace_id("analytics").await?;
    let (status, body) = h
        .post(
            "/sources",
            json!({
                "name": "Orders",
                "workspaceId": workspace,
                "configuration": {"sourceType": "postgres", "host": "db", "port": 5432, "password": "hunter2"},
            }),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sourceType"], "postgres");
    assert_eq!(body["configuration"]["password"], "**********", "{body}");
    assert_eq!(body["configuration"]["sourceType"], "postgres", "{body}");
    let id = body["sourceId"].as_str().expect("an id").to_owned();
    let (status, read) = h.get(&format!("/sources/{id}")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, body, "the read shows what the create answered");

    let (status, body) = h
        .post(
            "/sources",
            json!({"name": "x", "workspaceId": workspace, "configuration": {"host": "db"}}),
        )
        .await?;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable-entity",
    );
    let (status, body) = h
        .post(
            "/sources",
            json!({"name": "x", "workspaceId": "nope", "configuration": {}}),
        )
        .await?;
    assert_binding(status, &body, "workspaceId");
    let (status, body) = h
        .post(
            "/sources",
            json!({"name": "x", "workspaceId": "00000000-0000-4000-8000-000000000002",
                "configuration": {"sourceType": "postgres"}}),
        )
        .await?;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "resource-not-found");
    assert_eq!(body["data"]["resourceType"], "workspace", "{body}");

    let (status, patched) = h
        .patch(
            &format!("/sources/{id}"),
            json!({"configuration": {"port": 6432}}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Orders", "a PATCH keeps what it omits");
    assert_eq!(patched["configuration"]["host"], "db");
    assert_eq!(patched["configuration"]["port"], 6432);

    let (status, body) = h
        .put(&format!("/sources/{id}"), json!({"name": "Orders v2"}))
        .await?;
    assert_binding(status, &body, "'configuration'");
    let (status, put) = h
        .put(
            &format!("/sources/{id}"),
            json!({"name": "Orders v2", "configuration": {"host": "db2"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["name"], "Orders v2");
    assert!(
        put["configuration"].get("port").is_none(),
        "a PUT replaces: {put}"
    );

    let (status, _) = h.delete(&format!("/sources/{id}")).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = h
        .get(&format!("/sources?workspaceIds={workspace}&limit=100"))
        .await?;
    assert!(!listed.to_string().contains(&id));
    let (status, _) = h.delete(&format!("/sources/{id}")).await?;
    assert_eq!(status, StatusCode::NO_CONTENT, "deleting again succeeds");
    let unknown = "00000000-0000-4000-8000-000000000003";
    let (status, body) = h.delete(&format!("/destinations/{unknown}")).await?;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "resource-not-found");
    let (status, body) = h.delete("/destinations/not-a-uuid").await?;
    assert_binding(status, &body, "destinationId");
    Ok(())
}

#[tokio::test]
async fn connections_are_created_from_discovered_streams_renamed_and_deleted() -> Result<()> {
    let h = Harness::start("").await?;
    let workspace = h.workspace_id("analytics").await?;
    let source = h.create_actor("source", &workspace, "Faker").await?;
    let destination = h.create_actor("destination", &workspace, "Lake").await?;

    let (status, streams) = h
        .get(&format!(
            "/streams?sourceId={source}&destinationId={destination}"
        ))
        .await?;
    assert_eq!(status, StatusCode::OK, "{streams}");
    let names: Vec<&str> = streams
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|s| s["streamName"].as_str())
        .collect();
    assert!(names.contains(&"users"), "{streams}");
    let (status, body) = h.get("/streams").await?;
    assert_binding(status, &body, "sourceId");

    let (status, body) = h
        .post(
            "/connections",
            json!({"sourceId": source, "destinationId": destination,
                "configurations": {"streams": [{"name": "nope"}]}}),
        )
        .await?;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-request");
    let other = h.workspace_id("marketing").await?;
    let elsewhere = h.create_actor("destination", &other, "Elsewhere").await?;
    let (status, body) = h
        .post(
            "/connections",
            json!({"sourceId": source, "destinationId": elsewhere}),
        )
        .await?;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-request");
    let (status, body) = h.post("/connections", json!({"sourceId": source})).await?;
    assert_binding(status, &body, "'destinationId'");

    let (status, created) = h
        .post(
            "/connections",
            json!({"name": "Faker → Lake", "sourceId": source, "destinationId": destination,
                "schedule": {"scheduleType": "cron", "cronExpression": "0 0 * * * ?"},
                "configurations": {"streams": [{"name": "users", "syncMode": "incremental_append"}]}}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["workspaceId"], workspace.as_str());
    assert_eq!(created["status"], "active");
    assert_eq!(created["schedule"]["scheduleType"], "cron");
    assert_eq!(
        created["configurations"]["streams"],
        json!([{"name": "users", "syncMode": "incremental_append",
            "cursorField": ["updated_at"], "primaryKey": [["id"]]}])
    );
    let id = created["connectionId"].as_str().expect("an id").to_owned();

    let (status, renamed) = h
        .patch(&format!("/connections/{id}"), json!({"name": "Renamed"}))
        .await?;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Renamed");
    assert_eq!(
        renamed["schedule"], created["schedule"],
        "a PATCH keeps what it omits"
    );
    let (status, body) = h
        .patch(
            &format!("/connections/{id}"),
            json!({"schedule": {"scheduleType": "cron", "cronExpression": "daily"}}),
        )
        .await?;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-request");

    let (status, job) = h.sync(&id).await?;
    assert_eq!(status, StatusCode::OK, "a new connection syncs: {job}");
    let (status, _) = h.delete(&format!("/connections/{id}")).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let job_id = job["jobId"].as_i64().expect("a job id");
    let (_, job) = h.get(&format!("/jobs/{job_id}")).await?;
    assert_eq!(job["status"], "cancelled", "a delete stops the sync: {job}");
    let (_, listed) = h.get("/connections?limit=100").await?;
    assert!(!listed.to_string().contains(&id));
    let (status, read) = h.get(&format!("/connections/{id}")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["status"], "deprecated");
    let (status, body) = h.sync(&id).await?;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no job on a deleted connection: {body}"
    );

    let unknown = "00000000-0000-4000-8000-000000000004";
    let (status, body) = h
        .patch(&format!("/connections/{unknown}"), json!({"name": "x"}))
        .await?;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "resource-not-found");
    Ok(())
}
