//! End-to-end tests: the simulator on port 0, driven over real HTTP.
//! `writes` covers the public API's writes (workspaces, sources, destinations,
//! connections, streams).

mod writes;

use std::time::{Duration, Instant};

use airbyte_sim::{FaultSpec, Faults, RunningSim, SimConfig};
use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running simulator, an HTTP client and a valid token.
struct Harness {
    sim: RunningSim,
    http: reqwest::Client,
    token: String,
}

impl Harness {
    /// Starts a simulator from TOML: a manual clock and tokens that outlive the
    /// test's clock jumps, unless the TOML says otherwise.
    async fn start(extra_toml: &str) -> Result<Harness> {
        let mut toml = extra_toml.to_owned();
        if !toml.contains("manual_clock") {
            toml.push_str("\nmanual_clock = true");
        }
        if !toml.contains("token_lifetime_secs") {
            toml.push_str("\ntoken_lifetime_secs = 31536000");
        }
        let config = SimConfig::from_toml_str(&toml)?;
        let sim = airbyte_sim::spawn(config).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        let mut h = Harness {
            sim,
            http,
            token: String::new(),
        };
        h.token = h.fresh_token().await?;
        Ok(h)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    async fn fresh_token(&self) -> Result<String> {
        let (id, secret) = self.sim.sim.credentials();
        let res = self
            .http
            .post(self.url("/applications/token"))
            .form(&[
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await?;
        ensure!(res.status() == StatusCode::OK, "token: {}", res.status());
        let body: Value = res.json().await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("access_token")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(StatusCode, Value)> {
        let res = req.bearer_auth(&self.token).send().await?;
        let status = res.status();
        let text = res.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> Result<(StatusCode, Value)> {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    async fn delete(&self, path: &str) -> Result<(StatusCode, Value)> {
        self.send(self.http.delete(self.url(path))).await
    }

    async fn sync(&self, connection_id: &str) -> Result<(StatusCode, Value)> {
        self.post(
            "/jobs",
            json!({"connectionId": connection_id, "jobType": "sync"}),
        )
        .await
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.admin_url()));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await?;
        ensure!(
            res.status() == StatusCode::OK,
            "admin {path}: {}",
            res.status()
        );
        Ok(res.json().await?)
    }

    async fn advance(&self, seconds: f64) -> Result<()> {
        self.admin(
            reqwest::Method::POST,
            "/advance",
            Some(json!({"seconds": seconds})),
        )
        .await?;
        Ok(())
    }

    /// Adds `count` connections that always succeed (or always fail) to `workspace`.
    async fn bulk(&self, workspace: &str, count: u32, extra: Value) -> Result<Vec<String>> {
        let mut body = json!({"workspace": workspace, "count": count,
            "failure_rate": 0.0, "attempt_failure_rate": 0.0});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let res = self
            .admin(reqwest::Method::POST, "/connections", Some(body))
            .await?;
        Ok(res["connection_ids"]
            .as_array()
            .context("connection_ids")?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    async fn connection_named(&self, name: &str) -> Result<Value> {
        let (status, body) = self
            .get("/connections?limit=100&includeDeleted=true")
            .await?;
        ensure!(status == StatusCode::OK);
        body["data"]
            .as_array()
            .context("data")?
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .with_context(|| format!("no connection {name}"))
    }

    async fn workspace_id(&self, name: &str) -> Result<String> {
        let (_, body) = self.get("/workspaces").await?;
        body["data"]
            .as_array()
            .context("data")?
            .iter()
            .find(|w| w["name"] == name)
            .and_then(|w| w["workspaceId"].as_str().map(str::to_owned))
            .with_context(|| format!("no workspace {name}"))
    }
}

fn data_len(body: &Value) -> usize {
    body["data"].as_array().map_or(0, Vec::len)
}

// ------------------------------------------------------------------ auth

#[tokio::test]
async fn token_flow_form_json_bad_credentials_and_expiry() -> Result<()> {
    let h = Harness::start("token_lifetime_secs = 180").await?;
    let (id, secret) = h.sim.sim.credentials();

    // JSON without grant_type, as Dagster sends it.
    let res = h
        .http
        .post(h.url("/applications/token"))
        .json(&json!({"client_id": id, "client_secret": secret}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await?;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 180);
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() >= 32));

    // Bad credentials: 400, form or JSON.
    let res = h
        .http
        .post(h.url("/applications/token"))
        .form(&[("client_id", id.as_str()), ("client_secret", "wrong")])
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = h
        .http
        .post(h.url("/applications/token"))
        .json(&json!({"client_id": "nobody", "client_secret": secret}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Missing bearer: the framework's 401 body, href = request path.
    let res = h.http.get(h.url("/jobs")).send().await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"].to_str()?, "application/json");
    assert_eq!(
        res.text().await?,
        r#"{"message":"Unauthorized","_links":{"self":{"href":"/api/public/v1/jobs","templated":false}},"_embedded":{"errors":[{"message":"Unauthorized"}]}}"#
    );

    // A valid token works until it expires in simulated time.
    let (status, _) = h.get("/workspaces").await?;
    assert_eq!(status, StatusCode::OK);
    h.advance(179.0).await?;
    assert_eq!(h.get("/workspaces").await?.0, StatusCode::OK);
    h.advance(2.0).await?;
    let (status, body) = h.get("/connections?limit=5").await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["_links"]["self"]["href"], "/api/public/v1/connections");
    assert_eq!(body["_embedded"]["errors"][0]["message"], "Unauthorized");

    // An unknown token is refused the same way; health needs none.
    let res = h
        .http
        .get(h.url("/workspaces"))
        .bearer_auth("not-a-token")
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = h.http.get(h.url("/health")).send().await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.text().await?.is_empty());
    h.sim.shutdown().await;
    Ok(())
}

// ------------------------------------------------------------------ lists

#[tokio::test]
async fn list_paging_has_airbytes_next_quirk() -> Result<()> {
    let h = Harness::start("").await?;
    h.bulk("paging", 25, json!({})).await?;
    let ws = h.workspace_id("paging").await?;
    let base = format!("/connections?workspaceIds={ws}&limit=10");

    let (status, first) = h.get(&base).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(data_len(&first), 10);
    assert!(first.get("previous").is_none());
    let next = first["next"].as_str().context("next")?;
    assert_eq!(
        next,
        format!(
            "http://{}/api/public/v1/connections?workspaceIds={ws}&limit=10&offset=10",
            h.sim.addr
        )
    );

    // Follow `next` as a client would, by absolute URL.
    let (_, second) = h.send(h.http.get(next)).await?;
    assert_eq!(data_len(&second), 10);
    let (_, third) = h
        .send(h.http.get(second["next"].as_str().context("next")?))
        .await?;
    assert_eq!(data_len(&third), 5, "a short last page");
    let third_next = third["next"]
        .as_str()
        .context("short last page keeps next")?;
    assert!(third_next.ends_with("offset=30"));
    assert!(
        third["previous"]
            .as_str()
            .is_some_and(|p| p.ends_with("limit=10&offset=10"))
    );
    let (_, empty) = h.send(h.http.get(third_next)).await?;
    assert_eq!(data_len(&empty), 0);
    assert!(empty.get("next").is_none(), "an empty page has no next");
    assert!(empty.get("previous").is_some());

    // Default limit 20, maximum 100.
    let (_, default) = h.get(&format!("/connections?workspaceIds={ws}")).await?;
    assert_eq!(data_len(&default), 20);
    let (status, body) = h.get("/connections?limit=101").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Bad Request");
    assert_eq!(h.get("/jobs?limit=0").await?.0, StatusCode::BAD_REQUEST);
    assert_eq!(h.get("/jobs?offset=x").await?.0, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn resource_filters_and_lookups() -> Result<()> {
    let h = Harness::start("").await?;
    let (_, workspaces) = h.get("/workspaces").await?;
    assert_eq!(data_len(&workspaces), 3);
    assert!(workspaces["data"][0]["notifications"].is_object());
    let analytics = h.workspace_id("analytics").await?;
    let finance = h.workspace_id("finance").await?;

    // Repeated workspaceIds.
    let (_, only) = h
        .get(&format!("/connections?workspaceIds={analytics}"))
        .await?;
    let (_, both) = h
        .get(&format!(
            "/connections?workspaceIds={analytics}&workspaceIds={finance}"
        ))
        .await?;
    assert!(data_len(&only) > 0);
    assert!(data_len(&both) > data_len(&only));
    assert!(
        only["data"]
            .as_array()
            .context("data")?
            .iter()
            .all(|c| c["workspaceId"] == analytics.as_str())
    );

    // Deleted (deprecated) connections only with includeDeleted.
    let (_, all) = h.get("/connections?limit=100").await?;
    let (_, with_deleted) = h.get("/connections?limit=100&includeDeleted=true").await?;
    assert_eq!(data_len(&with_deleted), data_len(&all) + 1);
    assert!(
        all["data"]
            .as_array()
            .context("data")?
            .iter()
            .all(|c| c["status"] != "deprecated")
    );

    // tagIds: connections carrying the tag.
    let (_, tags) = h.get(&format!("/tags?workspaceIds={analytics}")).await?;
    let nightly = tags["data"]
        .as_array()
        .context("tags")?
        .iter()
        .find(|t| t["name"] == "nightly")
        .context("nightly tag")?;
    let tag_id = nightly["tagId"].as_str().context("tagId")?;
    let (_, tagged) = h.get(&format!("/connections?tagIds={tag_id}")).await?;
    assert_eq!(data_len(&tagged), 1);
    assert_eq!(tagged["data"][0]["name"], "Postgres → Snowflake");
    assert_eq!(tagged["data"][0]["tags"][0]["tagId"], tag_id);

    // Sources and destinations by workspace; each gettable by id.
    let (_, sources) = h.get(&format!("/sources?workspaceIds={finance}")).await?;
    assert_eq!(data_len(&sources), 3);
    let source_id = sources["data"][0]["sourceId"]
        .as_str()
        .context("sourceId")?;
    let (status, source) = h.get(&format!("/sources/{source_id}")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(source["workspaceId"], finance.as_str());
    assert!(source["createdAt"].is_i64());
    let (_, destinations) = h.get("/destinations").await?;
    let destination = &destinations["data"][0];
    assert_eq!(
        destination["configuration"]["destinationType"],
        destination["destinationType"]
    );
    let destination_id = destination["destinationId"].as_str().context("id")?;
    assert_eq!(
        h.get(&format!("/destinations/{destination_id}")).await?.0,
        StatusCode::OK
    );
    assert_eq!(
        h.get(&format!("/workspaces/{analytics}")).await?.1["name"],
        "analytics"
    );

    // Unknown ids: Airbyte's problem shape; malformed ids: the framework's 400.
    let missing = "00000000-0000-0000-0000-000000000001";
    let (status, body) = h.get(&format!("/connections/{missing}")).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "resource-not-found");
    assert_eq!(body["data"]["resourceId"], missing);
    assert_eq!(
        h.get(&format!("/workspaces/{missing}")).await?.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/sources/not-a-uuid").await?.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get("/jobs/not-a-number").await?.0,
        StatusCode::BAD_REQUEST
    );
    let (status, body) = h.get("/no-such-route").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Not Found");
    Ok(())
}

// ------------------------------------------------------------------ jobs

#[tokio::test]
async fn job_lifecycle_follows_the_simulated_clock() -> Result<()> {
    let h = Harness::start("").await?;
    let ids = h
        .bulk("lifecycle", 2, json!({"duration_secs": [30, 30]}))
        .await?;
    let (status, job) = h.sync(&ids[0]).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job["status"], "pending");
    assert_eq!(job["jobType"], "sync");
    assert_eq!(job["connectionId"], ids[0].as_str());
    assert!(job["jobId"].is_i64());
    assert!(job.get("duration").is_none(), "no duration while pending");
    assert!(job.get("lastUpdatedAt").is_none());
    let start = job["startTime"].as_str().context("startTime")?;
    assert_eq!(start.len(), "2026-11-28T08:30:00Z".len());
    assert!(start.ends_with('Z'));
    let job_id = job["jobId"].as_i64().context("jobId")?;

    h.advance(4.0).await?;
    let (_, running) = h.get(&format!("/jobs/{job_id}")).await?;
    assert_eq!(running["status"], "running");
    assert!(running.get("lastUpdatedAt").is_none());
    let rows_early = running["rowsSynced"]
        .as_i64()
        .context("rows while running")?;
    h.advance(15.0).await?;
    let (_, later) = h.get(&format!("/jobs/{job_id}")).await?;
    assert_eq!(later["status"], "running");
    assert!(later["rowsSynced"].as_i64().context("rows")? > rows_early);
    assert!(later["bytesSynced"].as_i64().context("bytes")? > 0);

    h.advance(60.0).await?;
    let (_, done) = h.get(&format!("/jobs/{job_id}")).await?;
    assert_eq!(done["status"], "succeeded");
    assert!(done["lastUpdatedAt"].as_str().is_some());
    let duration = done["duration"].as_str().context("duration")?;
    assert!(
        duration.starts_with("PT") && duration.ends_with('S'),
        "{duration}"
    );
    assert!(done["rowsSynced"].as_i64().context("rows")? >= 500);

    // A failing connection goes through `incomplete` to `failed` after 3 attempts.
    let flaky = h
        .bulk(
            "lifecycle",
            1,
            json!({"failure_rate": 1.0, "duration_secs": [10, 10]}),
        )
        .await?;
    let (_, job) = h.sync(&flaky[0]).await?;
    let job_id = job["jobId"].as_i64().context("jobId")?;
    let mut seen = Vec::new();
    for _ in 0..60 {
        h.advance(1.0).await?;
        let (_, j) = h.get(&format!("/jobs/{job_id}")).await?;
        let s = j["status"].as_str().unwrap_or_default().to_owned();
        if seen.last() != Some(&s) {
            seen.push(s);
        }
    }
    assert_eq!(
        seen,
        vec![
            "pending",
            "running",
            "incomplete",
            "running",
            "incomplete",
            "running",
            "failed"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_sync_is_409_with_airbytes_exact_body() -> Result<()> {
    let h = Harness::start("").await?;
    let ids = h.bulk("conflict", 1, json!({})).await?;
    let id = &ids[0];
    assert_eq!(h.sync(id).await?.0, StatusCode::OK);
    let res = h
        .http
        .post(h.url("/jobs"))
        .bearer_auth(&h.token)
        .json(&json!({"connectionId": id, "jobType": "sync"}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.headers()["content-type"].to_str()?, "application/json");
    assert_eq!(
        res.text().await?,
        format!(
            r#"{{"status":409,"type":"https://reference.airbyte.com/reference/errors#try-again-later","title":"try-again-later","detail":"Please try again later.","data":{{"message":"A sync is already running for: {id}"}}}}"#
        )
    );
    // Still refused while running; accepted once finished.
    h.advance(5.0).await?;
    assert_eq!(h.sync(id).await?.0, StatusCode::CONFLICT);
    h.advance(3_600.0).await?;
    assert_eq!(h.sync(id).await?.0, StatusCode::OK);
    let counters = h.sim.sim.counters();
    let uuid = id.parse()?;
    assert_eq!(counters.jobs_created_for(uuid), 2, "409s create nothing");
    Ok(())
}

#[tokio::test]
async fn cancel_then_state_conflict() -> Result<()> {
    let h = Harness::start("").await?;
    let ids = h.bulk("cancel", 1, json!({})).await?;
    let (_, job) = h.sync(&ids[0]).await?;
    let job_id = job["jobId"].as_i64().context("jobId")?;
    h.advance(5.0).await?;
    let (status, cancelled) = h.delete(&format!("/jobs/{job_id}")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["jobId"], job_id);
    assert!(cancelled["lastUpdatedAt"].as_str().is_some());

    // It stays cancelled whatever the clock does.
    h.advance(3_600.0).await?;
    assert_eq!(
        h.get(&format!("/jobs/{job_id}")).await?.1["status"],
        "cancelled"
    );

    let (status, body) = h.delete(&format!("/jobs/{job_id}")).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["status"], 409);
    assert_eq!(body["title"], "state-conflict");
    assert_eq!(body["data"]["message"], "Job is not currently running");
    assert_eq!(h.delete("/jobs/1").await?.0, StatusCode::NOT_FOUND);

    // The connection is free again.
    assert_eq!(h.sync(&ids[0]).await?.0, StatusCode::OK);
    assert_eq!(h.sim.sim.counters().jobs_cancelled, 1);
    Ok(())
}

#[tokio::test]
async fn refresh_clear_reset_and_unknown_connections() -> Result<()> {
    let h = Harness::start("").await?;
    let ids = h.bulk("kinds", 1, json!({})).await?;
    let id = &ids[0];

    let (status, body) = h
        .post("/jobs", json!({"connectionId": id, "jobType": "refresh"}))
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["title"], "unprocessable-entity");
    assert_eq!(
        body["data"]["message"],
        "Refreshes are not supported in the public API"
    );

    // A sync runs; a clear (answered as a reset) replaces it.
    let (_, sync) = h.sync(id).await?;
    let (status, clear) = h
        .post("/jobs", json!({"connectionId": id, "jobType": "clear"}))
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(clear["jobType"], "reset");
    let (_, old) = h.get(&format!("/jobs/{}", sync["jobId"])).await?;
    assert_eq!(old["status"], "cancelled");
    h.advance(3_600.0).await?;
    let (_, reset) = h.get(&format!("/jobs/{}", clear["jobId"])).await?;
    assert_eq!(reset["status"], "succeeded");
    assert_eq!(reset["rowsSynced"], 0);

    let (status, body) = h.sync("00000000-0000-0000-0000-0000000000aa").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "resource-not-found");
    assert_eq!(body["data"]["resourceType"], "connection");
    let (status, _) = h
        .post("/jobs", json!({"connectionId": id, "jobType": "nonsense"}))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h.post("/jobs", json!({"jobType": "sync"})).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Real servers answer 400 for unknown resources; the simulator can too.
    let strict = Harness::start("not_found_status = 400").await?;
    let (status, body) = strict.get(&format!("/connections/{}", uuid_zero())).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], 400);
    assert_eq!(body["title"], "resource-not-found");
    Ok(())
}

fn uuid_zero() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

#[tokio::test]
async fn job_list_filters_and_order() -> Result<()> {
    let h = Harness::start("").await?;
    let a = h.bulk("jobs-a", 2, json!({})).await?;
    let b = h.bulk("jobs-b", 1, json!({})).await?;
    let ws_a = h.workspace_id("jobs-a").await?;
    let ws_b = h.workspace_id("jobs-b").await?;

    let (_, j1) = h.sync(&a[0]).await?;
    h.advance(3_600.0).await?;
    let (_, _j2) = h
        .post("/jobs", json!({"connectionId": a[1], "jobType": "reset"}))
        .await?;
    h.advance(10.0).await?;
    let (_, j3) = h.sync(&b[0]).await?;
    let t_before_j3 = j3["startTime"].as_str().context("startTime")?.to_owned();

    let ids = |body: &Value| -> Vec<i64> {
        body["data"]
            .as_array()
            .map(|d| d.iter().filter_map(|j| j["jobId"].as_i64()).collect())
            .unwrap_or_default()
    };
    let (_, all) = h.get("/jobs").await?;
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 3);
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
    let (_, desc) = h.get("/jobs?orderBy=createdAt|DESC").await?;
    let mut reversed = all_ids.clone();
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);
    let (_, by_update) = h.get("/jobs?orderBy=updatedAt%7CASC").await?;
    assert_eq!(ids(&by_update).len(), 3);

    let (_, by_conn) = h.get(&format!("/jobs?connectionId={}", a[0])).await?;
    assert_eq!(ids(&by_conn), vec![j1["jobId"].as_i64().context("id")?]);
    let (_, resets) = h.get("/jobs?jobType=reset").await?;
    assert_eq!(data_len(&resets), 1);
    assert_eq!(resets["data"][0]["connectionId"], a[1].as_str());
    let (_, in_a) = h.get(&format!("/jobs?workspaceIds={ws_a}")).await?;
    assert_eq!(data_len(&in_a), 2);
    let (_, in_both) = h
        .get(&format!("/jobs?workspaceIds={ws_a}&workspaceIds={ws_b}"))
        .await?;
    assert_eq!(data_len(&in_both), 3);
    let (_, succeeded) = h.get("/jobs?status=succeeded").await?;
    assert_eq!(ids(&succeeded), vec![j1["jobId"].as_i64().context("id")?]);
    let (_, pending) = h.get("/jobs?status=pending").await?;
    assert_eq!(data_len(&pending), 1);
    let (_, recent) = h
        .get(&format!("/jobs?createdAtStart={t_before_j3}"))
        .await?;
    assert_eq!(data_len(&recent), 1);
    let (_, old) = h.get(&format!("/jobs?createdAtEnd={t_before_j3}")).await?;
    assert_eq!(data_len(&old), 3, "bounds are inclusive");
    let (_, updated) = h
        .get(&format!("/jobs?updatedAtStart={t_before_j3}"))
        .await?;
    assert_eq!(data_len(&updated), 1);

    assert_eq!(
        h.get("/jobs?status=bogus").await?.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get("/jobs?orderBy=name|UP").await?.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get("/jobs?jobType=refresh").await?.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        h.get("/jobs?createdAtStart=yesterday").await?.0,
        StatusCode::BAD_REQUEST
    );
    Ok(())
}

#[tokio::test]
async fn queued_status_when_enabled() -> Result<()> {
    let h = Harness::start("emit_queued = true").await?;
    let ids = h.bulk("queued", 1, json!({})).await?;
    let (_, job) = h.sync(&ids[0]).await?;
    assert_eq!(job["status"], "queued");
    h.advance(1.0).await?;
    let (_, job) = h.get(&format!("/jobs/{}", job["jobId"])).await?;
    assert_eq!(job["status"], "pending");
    Ok(())
}

// ------------------------------------------------------------------ config API

#[tokio::test]
async fn config_api_connection_matches_public_view() -> Result<()> {
    let h = Harness::start("").await?;
    let public = h.connection_named("Postgres → Snowflake").await?;
    let id = public["connectionId"].as_str().context("id")?;
    let url = format!("{}/connections/get", h.sim.config_api_url());

    let res = h
        .http
        .post(&url)
        .json(&json!({"connectionId": id}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await?;
    assert_eq!(body["_links"]["self"]["href"], "/api/v1/connections/get");

    let (status, read) = h
        .send(h.http.post(&url).json(&json!({"connectionId": id})))
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["connectionId"], id);
    assert_eq!(read["name"], public["name"]);
    assert_eq!(read["prefix"], public["prefix"]);
    assert_eq!(read["sourceId"], public["sourceId"]);
    assert_eq!(read["destinationId"], public["destinationId"]);
    assert_eq!(read["status"], public["status"]);
    assert_eq!(read["scheduleType"], "cron");
    assert_eq!(read["namespaceDefinition"], "customformat");
    assert_eq!(public["namespaceDefinition"], "custom_format");
    assert_eq!(read["namespaceFormat"], public["namespaceFormat"]);

    let streams = read["syncCatalog"]["streams"]
        .as_array()
        .context("streams")?;
    let selected: Vec<&str> = streams
        .iter()
        .filter(|s| s["config"]["selected"] == true)
        .filter_map(|s| s["stream"]["name"].as_str())
        .collect();
    let public_streams: Vec<&str> = public["configurations"]["streams"]
        .as_array()
        .context("configurations")?
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(selected, public_streams);
    assert!(
        streams.len() > selected.len(),
        "unselected streams are listed too"
    );
    let users = &streams[0];
    assert_eq!(users["stream"]["namespace"], "public");
    assert!(users["stream"]["jsonSchema"]["properties"]["email"].is_object());
    assert_eq!(users["config"]["syncMode"], "incremental");
    assert_eq!(users["config"]["destinationSyncMode"], "append_dedup");
    assert_eq!(users["config"]["aliasName"], "users");
    assert_eq!(users["config"]["cursorField"], json!(["updated_at"]));
    assert_eq!(users["config"]["primaryKey"], json!([["id"]]));
    assert_eq!(
        public["configurations"]["streams"][0]["syncMode"],
        "incremental_deduped_history"
    );

    let (status, _) = h
        .send(
            h.http
                .post(&url)
                .json(&json!({"connectionId": uuid_zero()})),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}

// ------------------------------------------------------------------ faults

#[tokio::test]
async fn faults_error_rate_limit_latency_and_validation() -> Result<()> {
    let h = Harness::start("").await?;
    let always = |f: fn(&mut FaultSpec)| {
        let mut spec = FaultSpec::default();
        f(&mut spec);
        spec
    };

    h.sim
        .sim
        .set_faults(Faults::none().with_route("GET /workspaces", always(|s| s.error_rate = 1.0)));
    for _ in 0..6 {
        let (status, _) = h.get("/workspaces").await?;
        assert!(
            [500, 502, 503].contains(&status.as_u16()),
            "unexpected {status}"
        );
    }
    assert_eq!(
        h.get("/connections").await?.0,
        StatusCode::OK,
        "other routes unaffected"
    );

    h.sim.sim.set_faults(
        Faults::none().with_route("GET /connections", always(|s| s.rate_limit_rate = 1.0)),
    );
    let res = h
        .http
        .get(h.url("/connections"))
        .bearer_auth(&h.token)
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_none());
    assert_eq!(
        res.text().await?,
        r#"{"message":"You are being rate limited."}"#
    );

    h.sim.sim.set_faults(Faults {
        default: always(|s| s.latency_ms = 250),
        ..Faults::none()
    });
    let started = Instant::now();
    assert_eq!(h.get("/workspaces").await?.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Faults are settable over HTTP too, and validated.
    let admin = format!("{}/faults", h.sim.admin_url());
    let res = h
        .http
        .put(&admin)
        .json(&json!({"routes": {"GET /nowhere": {"error_rate": 1.0}}}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = h
        .http
        .put(&admin)
        .json(&json!({"default": {"error_rate": 2.0}}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = h
        .http
        .put(&admin)
        .json(&json!({"routes": {"GET /jobs/{jobId}": {"error_rate": 1.0}}}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        h.sim.sim.faults().routes["GET /jobs/{jobId}"].error_rate,
        1.0
    );
    assert!(h.get("/jobs/1").await?.0.is_server_error());

    let counters = h.sim.sim.counters();
    assert_eq!(counters.requests_to("GET /workspaces"), 7);
    assert_eq!(counters.faults_on("GET /workspaces", "error"), 6);
    assert_eq!(counters.faults_on("GET /connections", "rate_limit"), 1);
    assert_eq!(counters.responses_to("GET /connections", 429), 1);
    assert_eq!(counters.responses_to("GET /connections", 200), 1);
    Ok(())
}

#[tokio::test]
async fn drop_and_blackhole_faults() -> Result<()> {
    let h = Harness::start("").await?;
    let ids = h.bulk("faults", 1, json!({})).await?;
    let id = ids[0].clone();

    h.sim.sim.set_faults(Faults::none().with_route(
        "POST /jobs",
        FaultSpec {
            drop_rate: 1.0,
            ..FaultSpec::default()
        },
    ));
    let err = h
        .http
        .post(h.url("/jobs"))
        .bearer_auth(&h.token)
        .json(&json!({"connectionId": id, "jobType": "sync"}))
        .send()
        .await;
    assert!(err.is_err(), "a dropped connection yields no response");
    let counters = h.sim.sim.counters();
    assert_eq!(counters.requests_to("POST /jobs"), 1);
    assert_eq!(counters.faults_on("POST /jobs", "drop"), 1);
    assert_eq!(
        counters.total_jobs_created(),
        0,
        "dropped before processing"
    );

    // Black hole: the job is created, the answer never comes.
    h.sim.sim.set_faults(Faults::none().with_route(
        "POST /jobs",
        FaultSpec {
            blackhole_rate: 1.0,
            ..FaultSpec::default()
        },
    ));
    let result = h
        .http
        .post(h.url("/jobs"))
        .bearer_auth(&h.token)
        .timeout(Duration::from_millis(500))
        .json(&json!({"connectionId": id, "jobType": "sync"}))
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    assert_eq!(h.sim.sim.counters().jobs_created_for(id.parse()?), 1);
    let (_, jobs) = h.get(&format!("/jobs?connectionId={id}")).await?;
    assert_eq!(data_len(&jobs), 1, "the ambiguous job exists");

    h.sim.sim.set_faults(Faults::none());
    assert_eq!(h.sync(&id).await?.0, StatusCode::CONFLICT);
    h.sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn token_expiry_faults_and_admin_action() -> Result<()> {
    let mut h = Harness::start("").await?;
    h.sim.sim.set_faults(Faults::none().with_route(
        "GET /jobs",
        FaultSpec {
            expire_token_rate: 1.0,
            ..FaultSpec::default()
        },
    ));
    let (status, body) = h.get("/jobs").await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Unauthorized");
    assert_eq!(
        h.get("/workspaces").await?.0,
        StatusCode::UNAUTHORIZED,
        "the token is gone"
    );
    h.sim.sim.set_faults(Faults::none());
    h.token = h.fresh_token().await?;
    assert_eq!(h.get("/workspaces").await?.0, StatusCode::OK);

    let expired = h
        .admin(reqwest::Method::POST, "/expire-tokens", None)
        .await?;
    assert_eq!(expired["expired"], 1, "the first token was already revoked");
    assert_eq!(h.get("/workspaces").await?.0, StatusCode::UNAUTHORIZED);
    h.token = h.fresh_token().await?;

    // The `expire_tokens` action inside a faults update.
    h.sim.sim.set_faults(Faults {
        expire_tokens: true,
        ..Faults::none()
    });
    assert!(!h.sim.sim.faults().expire_tokens, "an action, not kept");
    assert_eq!(h.get("/workspaces").await?.0, StatusCode::UNAUTHORIZED);
    Ok(())
}

// ------------------------------------------------------------------ counters

#[tokio::test]
async fn counters_count_routes_statuses_tokens_and_jobs() -> Result<()> {
    let h = Harness::start("").await?;
    let ids = h.bulk("counted", 2, json!({})).await?;
    h.sync(&ids[0]).await?;
    h.sync(&ids[0]).await?;
    h.sync(&ids[1]).await?;
    h.get("/jobs").await?;

    let c: Value = h.admin(reqwest::Method::GET, "/counters", None).await?;
    assert_eq!(c["requests"]["POST /applications/token"], 1);
    assert_eq!(c["responses"]["POST /applications/token"]["200"], 1);
    assert_eq!(c["tokens_issued"], 1);
    assert_eq!(c["requests"]["POST /jobs"], 3);
    assert_eq!(c["responses"]["POST /jobs"]["200"], 2);
    assert_eq!(c["responses"]["POST /jobs"]["409"], 1);
    assert_eq!(c["requests"]["GET /jobs"], 1);
    assert_eq!(c["jobs_created"][&ids[0]], 1);
    assert_eq!(c["jobs_created"][&ids[1]], 1);
    assert!(
        c["requests"].get("POST /_sim/connections").is_none(),
        "admin not counted"
    );

    h.admin(reqwest::Method::POST, "/counters/reset", None)
        .await?;
    let after = h.sim.sim.counters();
    assert_eq!(after, airbyte_sim::Counters::default());

    // Unauthenticated requests are counted with their 401s.
    h.http.get(h.url("/jobs")).send().await?;
    assert_eq!(h.sim.sim.counters().responses_to("GET /jobs", 401), 1);
    Ok(())
}

// ------------------------------------------------------------------ scale and determinism

#[tokio::test]
async fn a_thousand_running_jobs_across_two_workspaces() -> Result<()> {
    let h = Harness::start("").await?;
    let body = json!({"start_syncs": true, "duration_secs": [600, 900]});
    let a = h.bulk("scale-a", 500, body.clone()).await?;
    let b = h.bulk("scale-b", 500, body).await?;
    assert_eq!(a.len() + b.len(), 1_000);
    h.advance(5.0).await?;
    let jobs = h.admin(reqwest::Method::GET, "/jobs", None).await?;
    assert_eq!(jobs["total"], 1_000);
    assert_eq!(jobs["by_status"]["running"], 1_000);

    let (_, page) = h.get("/jobs?status=running&limit=100&offset=900").await?;
    assert_eq!(data_len(&page), 100);
    let ws = h.workspace_id("scale-b").await?;
    let (_, page) = h
        .get(&format!("/jobs?workspaceIds={ws}&limit=100&offset=450"))
        .await?;
    assert_eq!(data_len(&page), 50);
    assert_eq!(h.sync(&a[17]).await?.0, StatusCode::CONFLICT);
    let counters = h.sim.sim.counters();
    assert_eq!(
        counters.total_jobs_created(),
        0,
        "started by Airbyte, not the API"
    );
    assert_eq!(counters.jobs_started_by_airbyte.len(), 1_000);
    Ok(())
}

#[tokio::test]
async fn same_seed_same_world_and_outcomes() -> Result<()> {
    async fn run(seed: u64) -> Result<(Vec<String>, Vec<Value>)> {
        let h = Harness::start(&format!(
            "seed = {seed}\nstart_time = \"2026-11-28T08:30:00Z\""
        ))
        .await?;
        let (_, conns) = h.get("/connections?limit=100").await?;
        let ids: Vec<String> = conns["data"]
            .as_array()
            .context("data")?
            .iter()
            .filter_map(|c| c["connectionId"].as_str().map(str::to_owned))
            .collect();
        for id in &ids {
            h.sync(id).await?;
        }
        h.advance(86_400.0).await?;
        let (_, jobs) = h.get("/jobs?limit=100").await?;
        let jobs = jobs["data"].as_array().context("data")?.clone();
        h.sim.shutdown().await;
        Ok((ids, jobs))
    }
    let (ids_a, jobs_a) = run(7).await?;
    let (ids_b, jobs_b) = run(7).await?;
    let (ids_c, _) = run(8).await?;
    assert_eq!(ids_a, ids_b);
    assert_eq!(jobs_a, jobs_b, "ids, statuses, durations and rows replay");
    assert_ne!(ids_a, ids_c);
    assert!(
        jobs_a
            .iter()
            .all(|j| j["startTime"] == "2026-11-28T08:30:00Z")
    );
    Ok(())
}

// ------------------------------------------------------------------ config

#[test]
fn config_defaults_and_unknown_keys() -> Result<()> {
    let config = SimConfig::from_toml_str("")?;
    assert_eq!(config.client_id, "airlock-sim");
    assert_eq!(config.client_secret, "airlock-sim-secret");
    assert_eq!(config.token_lifetime_secs, 180);
    assert!((config.time_scale - 1.0).abs() < f64::EPSILON);
    assert!(!config.scheduler && !config.emit_queued);

    let err = SimConfig::from_toml_str("client_idd = \"x\"").expect_err("unknown key");
    assert!(err.to_string().contains("client_idd"), "{err}");
    let err = SimConfig::from_toml_str("[faults.default]\nerror_rate = 3.0").expect_err("rate");
    assert!(err.to_string().contains("error_rate"), "{err}");
    let config = SimConfig::from_toml_str(
        "[faults.routes.\"POST /jobs\"]\nblackhole_rate = 0.5\nlatency_ms = 10",
    )?;
    assert_eq!(config.faults.routes["POST /jobs"].blackhole_rate, 0.5);
    assert!(
        airbyte_sim::Sim::new(SimConfig {
            world: Some("/nonexistent/world.toml".into()),
            ..SimConfig::default()
        })
        .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn a_world_fixture_file_relative_to_the_config() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("airbyte-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("world.toml"),
        r#"
[[workspaces]]
name = "solo"
[[sources]]
name = "Faker"
workspace = "solo"
source_type = "faker"
[[destinations]]
name = "Null"
workspace = "solo"
destination_type = "dev-null"
[[connections]]
name = "Faker → Null"
source = "Faker"
destination = "Null"
id = "11111111-2222-3333-4444-555555555555"
tags = ["demo"]
schedule = { type = "basic", every = 15, unit = "minutes" }
[[connections.streams]]
name = "users"
fields = { id = "integer" }
"#,
    )?;
    let config_path = dir.join("sim.toml");
    std::fs::write(&config_path, "world = \"world.toml\"\nseed = 3\n")?;
    let config = SimConfig::from_file(&config_path)?;
    let sim = airbyte_sim::spawn(config).await?;
    let http = reqwest::Client::new();
    let (id, secret) = sim.sim.credentials();
    let token: Value = http
        .post(format!("{}/applications/token", sim.base_url()))
        .json(&json!({"client_id": id, "client_secret": secret}))
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().context("token")?;
    let conn: Value = http
        .get(format!(
            "{}/connections/11111111-2222-3333-4444-555555555555",
            sim.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(conn["name"], "Faker → Null");
    assert_eq!(conn["schedule"]["basicTiming"], "Every 15 minutes");
    assert_eq!(conn["tags"][0]["name"], "demo");
    assert_eq!(
        conn["configurations"]["streams"][0]["syncMode"],
        "full_refresh_overwrite"
    );
    sim.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
