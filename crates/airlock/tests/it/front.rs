//! The Airbyte-compatible front, driven the way Airbyte's own clients drive
//! Airbyte: the official Python SDK, the Airflow provider's request
//! sequence, and Dagster's token and Configuration API calls, against
//! Airlock in front of the simulator, with service accounts and with a real
//! identity provider (npm `oidc-provider`).

use std::process::{Command, Stdio};
use std::time::Duration;

use airlock::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{AirlockToml, Grant, Harness, Issuer, Stack};
use crate::support::{self, Db};

/// Secrets of the test service accounts: `<client>-secret`.
const ACCOUNTS: [(&str, &str); 3] = [
    ("ci-runner", "pipeline-runner"),
    ("ci-reader", "pipeline-reader"),
    ("ci-admin", "pipeline-admin"),
];

/// Grants on the service accounts' roles: the runner in `analytics` only.
pub(crate) fn pipeline_grants() -> Vec<Grant> {
    vec![
        Grant::on_claim("runner", "roles", "pipeline-runner").workspaces(&["analytics"]),
        Grant::on_claim("reader", "roles", "pipeline-reader"),
        Grant::on_claim("admin", "roles", "pipeline-admin"),
    ]
}

pub(crate) fn secret(client: &str) -> String {
    format!("{client}-secret")
}

/// Airlock's front, public at its own URL, in front of a simulator whose
/// clock moves only when told, with the service accounts and `grants`
/// (and no development identity provider).
pub(crate) fn harness(grants: Vec<Grant>) -> Harness {
    crate::front_writes::service_account_front(Db::Sqlite, &ACCOUNTS, grants).fast_jobs()
}

/// A stack started from [`harness`], with the calls of the front's tests.
pub(crate) struct Front(Stack);

impl std::ops::Deref for Front {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.0
    }
}

impl Front {
    pub(crate) async fn start(harness: Harness) -> Self {
        Self(harness.start().await)
    }

    /// Stops Airlock, then the simulator.
    pub(crate) async fn stop(self) {
        self.0.stop().await.shutdown().await;
    }

    pub(crate) fn api(&self) -> String {
        format!("{}/api/public/v1", self.base)
    }

    /// `GET` of a public-API `path` (such as `/jobs/42`) with `bearer`.
    pub(crate) async fn get(
        &self,
        path: &str,
        bearer: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        send_full(
            self.http
                .get(format!("{}{path}", self.api()))
                .bearer_auth(bearer),
        )
        .await
    }

    /// The simulated world: workspaces and connections, by workspace name.
    pub(crate) async fn world(&self) -> World {
        let world: Value = self
            .http
            .get(format!("{}/world", self.sim.admin_url()))
            .send()
            .await
            .expect("world")
            .json()
            .await
            .expect("JSON");
        let workspace = |name: &str| crate::front_writes::workspace_id(&world, name);
        let analytics = workspace("analytics");
        let connections_of = |id: &str, active: bool| -> Vec<String> {
            world["connections"]
                .as_array()
                .expect("connections")
                .iter()
                .filter(|c| c["workspace_id"] == id && (!active || c["status"] == "active"))
                .map(|c| c["id"].as_str().expect("id").to_owned())
                .collect()
        };
        let other = workspace("marketing");
        World {
            analytics_active: connections_of(&analytics, true),
            other_connection: connections_of(&other, false).remove(0),
            analytics,
            other,
        }
    }

    /// A token from the front's token endpoint (a form, as the SDK sends it).
    async fn token(&self, path: &str, client: &str, secret: &str) -> (StatusCode, Value) {
        support::send(self.http.post(format!("{}{path}", self.base)).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", secret),
        ]))
        .await
    }

    pub(crate) async fn access_token(&self, client: &str) -> String {
        let (status, body) = self
            .token("/applications/token", client, &secret(client))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("a token").to_owned()
    }

    /// The one job Airlock recorded for an Airbyte job, as an admin sees it.
    async fn airlock_job(&self, admin: &str, airbyte_job_id: i64) -> Value {
        let (status, body) = support::send(
            self.http
                .get(format!("{}/v1/jobs?limit=200", self.base))
                .bearer_auth(admin),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let found: Vec<&Value> = body["data"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter(|j| j["airbyte_job_id"] == airbyte_job_id)
            .collect();
        assert_eq!(found.len(), 1, "{body:#}");
        found[0].clone()
    }

    /// No request reached the simulator with a token it did not issue
    /// (Airlock's own): a forwarded caller token would have been a 401.
    fn assert_no_foreign_token_reached_airbyte(&self) {
        let counters = self.sim.sim.counters();
        let unauthorized: Vec<(&String, u64)> = counters
            .responses
            .iter()
            .filter_map(|(route, statuses)| statuses.get("401").map(|n| (route, *n)))
            .collect();
        assert!(unauthorized.is_empty(), "401s at Airbyte: {unauthorized:?}");
        assert!(counters.requests.values().sum::<u64>() > 0);
    }
}

#[derive(Debug)]
pub(crate) struct World {
    pub(crate) analytics: String,
    pub(crate) analytics_active: Vec<String>,
    pub(crate) other: String,
    pub(crate) other_connection: String,
}

/// An Airbyte-shaped refusal: JSON (not problem+json), the request id in
/// the body and the header.
pub(crate) fn assert_airbyte_error(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) {
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(content_type, "application/json", "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    for key in ["type", "title", "detail"] {
        assert!(body[key].is_string(), "{key} in {body}");
    }
    let header_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id");
    assert_eq!(body["data"]["request_id"], header_id, "{body}");
}

pub(crate) async fn send_full(
    request: reqwest::RequestBuilder,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("Airlock answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body");
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_works_through_the_front_with_least_privilege() {
    let front = Front::start(harness(pipeline_grants())).await;
    let world = front.world().await;
    let (_, sim_secret) = front.sim.sim.credentials();
    let sim_client = airbyte_client::AirbyteClient::new(airbyte_client::ClientConfig::new(
        airbyte_client::Url::parse(&front.sim.base_url()).expect("url"),
        airbyte_client::Auth::ClientCredentials {
            client_id: front.sim.sim.credentials().0,
            client_secret: sim_secret.into(),
        },
    ))
    .expect("client");
    let in_workspace = sim_client
        .list_connections(&airbyte_client::ListParams {
            workspace_ids: vec![support::uuid(&world.analytics)],
            limit: Some(100),
            ..airbyte_client::ListParams::default()
        })
        .await
        .expect("connections")
        .data
        .len();

    let out = support::run_python(
        "front_session.py",
        &[
            ("AIRLOCK_URL", front.api()),
            ("SIM_ADMIN", front.sim.admin_url()),
            ("RUNNER_ID", "ci-runner".to_owned()),
            ("RUNNER_SECRET", secret("ci-runner")),
            ("READER_ID", "ci-reader".to_owned()),
            ("READER_SECRET", secret("ci-reader")),
            ("WORKSPACE_ID", world.analytics.clone()),
            ("WORKSPACE_CONNECTIONS", in_workspace.to_string()),
            ("OTHER_CONNECTION", world.other_connection.clone()),
        ],
    )
    .await;
    assert!(out.contains("front session ok"), "{out}");

    // The sync the SDK started is in Airlock's job table, as the runner's.
    let job_line = out
        .lines()
        .find_map(|l| l.strip_prefix("job: "))
        .expect("the job line");
    let airbyte_job_id: i64 = job_line
        .split_whitespace()
        .next()
        .and_then(|id| id.parse().ok())
        .expect("a job id");
    let admin = front.access_token("ci-admin").await;
    let job = front.airlock_job(&admin, airbyte_job_id).await;
    assert_eq!(job["channel"], "front", "{job:#}");
    assert_eq!(job["requested_by"], "ci-runner", "{job:#}");
    assert_eq!(job["type"], "sync", "{job:#}");
    front.assert_no_foreign_token_reached_airbyte();
    front.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airflow_provider_request_sequence_is_served() {
    let front = Front::start(harness(pipeline_grants())).await;
    let world = front.world().await;
    let connection = world.analytics_active[0].clone();

    // The provider's token URL, `v1/applications/token`, relative to the host.
    let (status, token) = front
        .token("/v1/applications/token", "ci-runner", &secret("ci-runner"))
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 900);
    let bearer = token["access_token"].as_str().expect("token").to_owned();

    let (status, job) = support::send(
        front
            .http
            .post(format!("{}/jobs", front.api()))
            .bearer_auth(&bearer)
            .json(&json!({"connectionId": connection, "jobType": "sync"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let job_id = job["jobId"].as_i64().expect("jobId");
    assert_eq!(job["connectionId"], connection.as_str());

    // A second sync on the busy connection: Airbyte's 409, unchanged.
    let (status, headers, conflict) = send_full(
        front
            .http
            .post(format!("{}/jobs", front.api()))
            .bearer_auth(&bearer)
            .json(&json!({"connectionId": connection, "jobType": "sync"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["title"], "try-again-later", "{conflict}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert!(headers.get("x-request-id").is_some());

    // Poll every "3 s" (simulated) a few times, then give up as on a timeout.
    // Each poll of the running job asks Airbyte.
    let job_reads = || front.sim.sim.counters().requests_to("GET /jobs/{jobId}");
    let reads_before = job_reads();
    for _ in 0..3 {
        let (status, _, polled) = front.get(&format!("/jobs/{job_id}"), &bearer).await;
        assert_eq!(status, StatusCode::OK, "{polled}");
        assert_eq!(polled["jobId"], job_id);
        assert!(
            matches!(polled["status"].as_str(), Some("pending" | "running")),
            "{polled}"
        );
        front.sim.sim.advance(Duration::from_secs(3));
    }
    let (status, cancelled) = support::send(
        front
            .http
            .delete(format!("{}/jobs/{job_id}", front.api()))
            .bearer_auth(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(job_reads() >= reads_before + 3);

    // A finished job never changes: the first read asks Airbyte, the next
    // ones get the same answer without asking again.
    let reads_before = job_reads();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (status, headers, polled) = front.get(&format!("/jobs/{job_id}"), &bearer).await;
        assert_eq!(status, StatusCode::OK, "{polled}");
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        assert_eq!(polled["status"], "cancelled", "{polled}");
        answers.push(polled);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(job_reads(), reads_before + 1);

    // Airlock recorded the job as the runner's and the tracker follows it
    // to its end.
    let admin = front.access_token("ci-admin").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = front.airlock_job(&admin, job_id).await;
        assert_eq!(job["channel"], "front", "{job:#}");
        assert_eq!(job["requested_by"], "ci-runner", "{job:#}");
        if job["state"] == "cancelled" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A job of a connection out of the runner's scope does not exist for it;
    // neither does a job id Airbyte does not know (Airbyte's own 404).
    let admin_job = {
        let (status, job) = support::send(
            front
                .http
                .post(format!("{}/jobs", front.api()))
                .bearer_auth(&admin)
                .json(&json!({"connectionId": world.other_connection, "jobType": "sync"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{job}");
        job["jobId"].as_i64().expect("jobId")
    };
    // Even once the admin's read of it is kept (finished: cancelled).
    for method in [reqwest::Method::DELETE, reqwest::Method::GET] {
        let (status, job) = support::send(
            front
                .http
                .request(method, format!("{}/jobs/{admin_job}", front.api()))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{job}");
        assert_eq!(job["status"], "cancelled", "{job}");
    }
    for path in [format!("/jobs/{admin_job}"), "/jobs/987654321".to_owned()] {
        let (status, headers, body) = front.get(&path, &bearer).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["title"], "resource-not-found", "{body}");
        assert!(headers.get("x-request-id").is_some());
    }
    let (status, headers, body) = send_full(
        front
            .http
            .delete(format!("{}/jobs/{admin_job}", front.api()))
            .bearer_auth(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_airbyte_error(status, &headers, &body);
    front.assert_no_foreign_token_reached_airbyte();
    front.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_airbyte_shaped_and_lists_point_at_airlock() {
    let front = Front::start(harness(pipeline_grants())).await;
    let world = front.world().await;
    let runner = front.access_token("ci-runner").await;
    let reader = front.access_token("ci-reader").await;

    // No token, a bad token: 401 with the body of Airbyte's web framework,
    // as Airbyte (and the simulator) answer it.
    for auth in [None, Some("Bearer not-a-token")] {
        let mut request = front.http.get(format!("{}/connections", front.api()));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let (status, headers, body) = send_full(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(headers["content-type"], "application/json", "{body}");
        assert_eq!(body["message"], "Unauthorized", "{body}");
        assert_eq!(
            body["_links"]["self"]["href"], "/api/public/v1/connections",
            "{body}"
        );
        assert_eq!(body["_embedded"]["errors"][0]["message"], "Unauthorized");
        assert!(headers.get("www-authenticate").is_some());
    }
    // The caller's own request id is kept.
    let (status, headers, body) = send_full(
        front
            .http
            .get(format!("{}/users", front.api()))
            .header("x-request-id", "trace-123")
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_airbyte_error(status, &headers, &body);
    assert_eq!(body["data"]["request_id"], "trace-123");

    // A reader may not change anything; a runner may not read what is
    // outside its workspace.
    let (status, headers, body) = send_full(
        front
            .http
            .patch(format!(
                "{}/connections/{}",
                front.api(),
                world.analytics_active[0]
            ))
            .bearer_auth(&reader)
            .json(&json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_airbyte_error(status, &headers, &body);
    for path in [
        format!("/workspaces/{}", world.other),
        format!("/connections/{}", world.other_connection),
    ] {
        let (status, headers, body) = front.get(&path, &runner).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_airbyte_error(status, &headers, &body);
    }
    let (status, body) = support::send(
        front
            .http
            .get(format!("{}/workspaces/{}", front.api(), world.analytics))
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A list asked for another workspace only is empty, not an error.
    let (status, body) = support::send(
        front
            .http
            .get(format!(
                "{}/connections?workspaceIds={}",
                front.api(),
                world.other
            ))
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([]));

    // Pages keep Airbyte's format; their links point at Airlock, with the
    // caller's query (not the narrowed one Airlock sent Airbyte).
    let (status, page) = support::send(
        front
            .http
            .get(format!("{}/connections?limit=2", front.api()))
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2), "{page}");
    let next = page["next"].as_str().expect("next");
    assert_eq!(
        next,
        format!("{}/connections?limit=2&offset=2", front.api()),
        "{page}"
    );

    // Sources are read by workspace: the list is filtered, one of another
    // workspace does not exist for the runner.
    let admin = front.access_token("ci-admin").await;
    let (status, all) = support::send(
        front
            .http
            .get(format!("{}/sources?limit=100", front.api()))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let sources = all["data"].as_array().expect("sources").clone();
    let (status, mine) = support::send(
        front
            .http
            .get(format!("{}/sources?limit=100", front.api()))
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let mine = mine["data"].as_array().expect("sources").clone();
    assert!(!mine.is_empty() && mine.len() < sources.len(), "{mine:?}");
    assert!(
        mine.iter()
            .all(|s| s["workspaceId"] == world.analytics.as_str())
    );
    let theirs = sources
        .iter()
        .find(|s| s["workspaceId"] != world.analytics.as_str())
        .and_then(|s| s["sourceId"].as_str())
        .expect("a source elsewhere");
    let (status, headers, body) = send_full(
        front
            .http
            .get(format!("{}/sources/{theirs}", front.api()))
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_airbyte_error(status, &headers, &body);
    let own = mine[0]["sourceId"].as_str().expect("id");
    let (status, body) = support::send(
        front
            .http
            .get(format!("{}/sources/{own}", front.api()))
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sourceId"], own);

    // An allowed change goes to Airbyte and its answer comes back as it is,
    // even an error that is not Airbyte's problem shape (a field of the
    // wrong type: the web framework's 400).
    let (status, headers, body) = send_full(
        front
            .http
            .patch(format!(
                "{}/connections/{}",
                front.api(),
                world.analytics_active[0]
            ))
            .bearer_auth(&admin)
            .json(&json!({"name": 42})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["_embedded"]["errors"].is_array(), "{body}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );

    // Dagster's Configuration API read, in and out of scope.
    let (status, connection) = support::send(
        front
            .http
            .post(format!("{}/api/v1/connections/get", front.base))
            .bearer_auth(&runner)
            .json(&json!({"connectionId": world.analytics_active[0]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{connection}");
    assert!(
        connection["syncCatalog"]["streams"].is_array(),
        "{connection}"
    );
    let (status, headers, body) = send_full(
        front
            .http
            .post(format!("{}/api/v1/connections/get", front.base))
            .bearer_auth(&runner)
            .json(&json!({"connectionId": world.other_connection})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_airbyte_error(status, &headers, &body);

    // Bad credentials are a 400, as at Airbyte.
    for (client, secret) in [("ci-runner", "wrong"), ("nobody", "nobody-secret")] {
        let (status, body) = front
            .token("/api/public/v1/applications/token", client, secret)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["title"], "bad-request", "{body}");
    }

    // Airlock's own issuer is published for anyone who verifies its tokens.
    let (status, discovery) = support::send(
        front
            .http
            .get(format!("{}/.well-known/openid-configuration", front.base)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{discovery}");
    assert_eq!(discovery["issuer"], front.base.as_str());
    let (status, jwks) =
        support::send(front.http.get(discovery["jwks_uri"].as_str().expect("uri"))).await;
    assert_eq!(status, StatusCode::OK, "{jwks}");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    let (status, health) = support::send(front.http.get(format!("{}/health", front.api()))).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    front.assert_no_foreign_token_reached_airbyte();
    front.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_are_exchanged_at_a_real_identity_provider() {
    let provider = crate::oidc::start_provider()
        .unwrap_or_else(|reason| panic!("the OpenID provider does not start: {reason}"));
    let grants = vec![
        Grant::role("runner").workspaces(&["analytics"]),
        Grant::role("reader"),
        Grant::on_claim("admin", "roles", "pipeline-admin"),
    ];
    let issuer = Issuer::new(&provider.issuer, &["airlock"]).with("token_type", "at+jwt");
    let front = Front::start(
        harness(grants)
            .issuer(issuer)
            .extra("[front]\ntoken_audience = \"urn:airlock\""),
    )
    .await;
    let world = front.world().await;
    let connection = &world.analytics_active[0];

    // Dagster's request: JSON, no grant_type, at the host's root.
    let (status, token) = support::send(
        front
            .http
            .post(format!("{}/applications/token", front.base))
            .json(&json!({"client_id": "runner", "client_secret": "runner-secret"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 300, "the provider's lifetime");
    let runner = token["access_token"].as_str().expect("token").to_owned();
    assert_eq!(runner.split('.').count(), 3, "the provider's JWT itself");

    // The SDK's form, under /api/public/v1.
    let (status, token) = front
        .token(
            "/api/public/v1/applications/token",
            "reader",
            "reader-secret",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let reader = token["access_token"].as_str().expect("token").to_owned();

    // Service accounts still come first.
    let (status, token) = front
        .token("/v1/applications/token", "ci-runner", &secret("ci-runner"))
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["expires_in"], 900);

    // Bad credentials: the provider refuses, Airlock answers 400 like Airbyte.
    for (client, secret) in [("runner", "wrong"), ("stranger", "x")] {
        let (status, body) = front.token("/applications/token", client, secret).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["data"]["message"], "Invalid client credentials",
            "{body}"
        );
    }

    // The provider's token works on the front; its Authorization header
    // stays at Airlock.
    let (status, job) = support::send(
        front
            .http
            .post(format!("{}/jobs", front.api()))
            .bearer_auth(&runner)
            .json(&json!({"connectionId": connection, "jobType": "sync"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let job_id = job["jobId"].as_i64().expect("jobId");
    let (status, polled) = support::send(
        front
            .http
            .get(format!("{}/jobs/{job_id}", front.api()))
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{polled}");
    let (status, body) = support::send(
        front
            .http
            .post(format!("{}/jobs", front.api()))
            .bearer_auth(&reader)
            .json(&json!({"connectionId": connection, "jobType": "sync"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    front.assert_no_foreign_token_reached_airbyte();
    // Had it been forwarded, Airbyte would have refused it.
    let direct = front
        .http
        .get(format!("{}/jobs/{job_id}", front.sim.base_url()))
        .bearer_auth(&runner)
        .send()
        .await
        .expect("the simulator answers");
    assert_eq!(direct.status(), StatusCode::UNAUTHORIZED);

    let admin = front.access_token("ci-admin").await;
    let recorded = front.airlock_job(&admin, job_id).await;
    assert_eq!(recorded["channel"], "front");
    assert_eq!(recorded["requested_by"], "runner");
    front.stop().await;
    drop(provider);
}

mod store {
    //! `Store::insert_started_job` on both backends: the unique indexes
    //! (one row per Airbyte job, one active job per connection) hold.

    use airlock_domain::audit;
    use airlock_domain::jobs::{Channel, JobState, JobType};
    use airlock_store::Store;
    use airlock_store::front::{Recorded, StartedJob};
    use airlock_store::jobs::AirbyteReport;
    use serde_json::json;

    use crate::support::{Db, both_backends, fresh_database};

    fn started<'a>(
        airbyte_job_id: i64,
        connection: &'a str,
        requester: &'a serde_json::Value,
    ) -> StartedJob<'a> {
        StartedJob {
            connection_id: connection,
            workspace_id: "w",
            job_type: JobType::Sync,
            airbyte_job_id,
            state: JobState::Running,
            requested_by: "ci-runner",
            requester,
            channel: Channel::Front,
            trace_parent: None,
        }
    }

    async fn started_jobs_respect_the_unique_indexes(db: Db) {
        let store = Store::connect(&fresh_database(db).await)
            .await
            .expect("store");
        let requester = json!({"subject": "ci-runner"});
        let entry = audit::Entry {
            channel: "front".to_owned(),
            action: "jobs.sync".to_owned(),
            decision: "allow".to_owned(),
            ..audit::Entry::default()
        };

        let Recorded::New(job) = store
            .insert_started_job(&started(10, "c1", &requester), 1_000, &entry)
            .await
            .expect("insert")
        else {
            panic!("a new row");
        };
        assert_eq!(job.channel, Channel::Front);
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.airbyte_job_id, Some(10));
        assert_eq!(job.requested_by, "ci-runner");
        assert_eq!((job.attempts, job.max_attempts), (1, 1));

        // The same Airbyte job again: left as it was.
        let again = store
            .insert_started_job(&started(10, "c1", &requester), 2_000, &entry)
            .await
            .expect("insert");
        assert!(
            matches!(again, Recorded::Existing(ref j) if j.id == job.id),
            "{again:?}"
        );

        // Another Airbyte job on the same connection while c1's is active.
        let busy = store
            .insert_started_job(&started(11, "c1", &requester), 3_000, &entry)
            .await
            .expect("insert");
        assert_eq!(busy, Recorded::ConnectionBusy);

        // The tracker saw the Airbyte job first: its row is adopted.
        let seen = AirbyteReport {
            airbyte_job_id: 20,
            state: JobState::Pending,
            rows_synced: None,
            bytes_synced: None,
            duration: None,
        };
        let external = store
            .insert_external_job("c2", "w", JobType::Sync, &seen, 4_000)
            .await
            .expect("external")
            .expect("a new row");
        assert_eq!(external.channel, Channel::Airbyte);
        let adopted = store
            .insert_started_job(&started(20, "c2", &requester), 5_000, &entry)
            .await
            .expect("insert");
        let Recorded::Adopted(job) = adopted else {
            panic!("adopted: {adopted:?}");
        };
        assert_eq!(job.id, external.id);
        assert_eq!(job.channel, Channel::Front);
        assert_eq!(job.requested_by, "ci-runner");
        assert_eq!(job.requester["subject"], "ci-runner");
    }

    both_backends!(started_jobs_respect_the_unique_indexes);
}

#[test]
fn hash_secret_reads_stdin_and_prints_a_usable_hash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["hash-secret", "--iterations", "10000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("airlock runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret\n")
        .expect("write");
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).expect("UTF-8");
    let hash: airlock_domain::secret::hash::SecretHash =
        printed.trim().parse().expect("a valid hash");
    assert!(hash.verify("s3cret"));
    assert!(!hash.verify("s3cret\n"));
    // The hash is accepted by the configuration.
    let mut account = toml::Table::new();
    account.insert("client_id".to_owned(), "ci".into());
    account.insert("secret_hash".to_owned(), printed.trim().into());
    let mut config = AirlockToml::default();
    config.push("service_accounts", account);
    Config::from_toml("t.toml", &config.text(), &[]).expect("valid");
}
