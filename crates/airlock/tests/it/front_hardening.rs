//! The front under attack: queries that Airbyte could read another way than
//! Airlock did, ids in bodies that name what the caller may not touch, and
//! list answers that cannot be filtered. Each attack is made against
//! Airlock in front of the simulator, which records what really reached it.

use airbyte_sim::{BadBody, FaultSpec, Faults};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::front::{Front, World, assert_airbyte_error, harness, pipeline_grants, send_full};
use crate::harness::Grant;

/// The front's harness with one more service account, `ci-editor`
/// (secret `ci-editor-secret`): an editor (airbyte:write) in `analytics`.
fn with_editor() -> crate::harness::Harness {
    let hash = airlock_domain::secret::hash::hash_secret("ci-editor-secret", 10_000).expect("hash");
    let mut account = toml::Table::new();
    account.insert("client_id".to_owned(), "ci-editor".into());
    account.insert("secret_hash".to_owned(), hash.into());
    account.insert("roles".to_owned(), vec!["pipeline-editor"].into());
    harness(pipeline_grants())
        .grant(Grant::on_claim("editor", "roles", "pipeline-editor").workspaces(&["analytics"]))
        .entry("service_accounts", account)
}

/// The id (`field`) of the first item of an admin's `list` in `workspace`,
/// and of one in another workspace.
async fn ids(
    front: &Front,
    admin: &str,
    list: &str,
    field: &str,
    world: &World,
) -> (String, String) {
    let (status, _, page) = front.get(&format!("/{list}?limit=100"), admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["data"].as_array().expect("items");
    let find = |inside: bool| {
        items
            .iter()
            .find(|i| (i["workspaceId"] == world.analytics.as_str()) == inside)
            .and_then(|i| i[field].as_str())
            .unwrap_or_else(|| panic!("a {field} (in analytics: {inside})"))
            .to_owned()
    };
    (find(true), find(false))
}

/// `method path` with `bearer` and a raw body.
async fn send(
    front: &Front,
    method: Method,
    path: &str,
    bearer: &str,
    body: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send_full(
        front
            .http
            .request(method, format!("{}{path}", front.api()))
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

/// The request targets of `method path` that reached the simulator.
fn reached(front: &Front, method_and_path: &str) -> Vec<String> {
    front
        .sim
        .sim
        .counters()
        .targets_of(&format!(
            "{} /api/public/v1{}",
            method_and_path.split(' ').next().unwrap_or_default(),
            method_and_path.split_once(' ').map_or("", |(_, p)| p)
        ))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_reads_two_ways_is_refused_and_the_rest_is_rebuilt() {
    let front = Front::start(harness(pipeline_grants())).await;
    let world = front.world().await;
    let runner = front.access_token("ci-runner").await;
    let admin = front.access_token("ci-admin").await;
    let (mine, other) = ids(&front, &admin, "sources", "sourceId", &world).await;
    let (_, other_destination) = ids(&front, &admin, "destinations", "destinationId", &world).await;
    let connection = &world.analytics_active[0];

    // Authorized on one reading, forwarded raw, read the other way by a
    // server that splits on `;` or takes the first of a repeated key.
    let attacks = [
        format!("/streams?x=;sourceId={other}&sourceId={mine}"),
        format!("/streams?sourceId={mine};sourceId={other}"),
        format!("/streams?sourceId={other}&sourceId={mine}"),
        format!("/streams?sourceId={mine}&sourceId={other}"),
        format!("/streams?SourceId={other}&sourceId={mine}"),
        format!("/streams?source%49d={other}&sourceId={mine}"),
        format!(
            "/jobs?connectionId={connection}&connectionId={}",
            world.other_connection
        ),
        format!("/connections/{connection}?connectionId={connection}&connectionId=x"),
        format!(
            "/connections?workspaceIds={}&WorkspaceIds={}",
            world.analytics, world.other
        ),
        format!("/sources/{mine}?x=1;y=2"),
    ];
    for attack in &attacks {
        let (status, headers, body) = front.get(attack, &runner).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{attack}: {body}");
        assert_airbyte_error(status, &headers, &body);
        assert_eq!(body["title"], "bad-request", "{body}");
    }
    assert_eq!(reached(&front, "GET /streams"), Vec::<String>::new());
    let (status, audit) = crate::support::send(
        front
            .http
            .get(format!(
                "{}/v1/audit?action=front.request&decision=deny",
                front.base
            ))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let refusals = audit["data"].as_array().expect("records");
    assert_eq!(refusals.len(), attacks.len(), "{audit:#}");
    assert!(refusals.iter().all(|r| r["reason"] == "ambiguous_query"));

    // Out of scope in the query: the other workspace's source, or its
    // destination next to the runner's own source.
    for path in [
        format!("/streams?sourceId={other}"),
        format!("/streams?sourceId={mine}&destinationId={other_destination}"),
    ] {
        let (status, headers, body) = front.get(&path, &runner).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_airbyte_error(status, &headers, &body);
    }
    assert_eq!(reached(&front, "GET /streams"), Vec::<String>::new());

    // Allowed: what reaches Airbyte is the pairs Airlock read, re-encoded
    // (a `;` inside a value stays a value), and Airbyte's answer comes back.
    let (status, _, body) = front
        .get(
            &format!("/streams?sourceId={mine}&ignoreCache=true&note=a%3Bb+c"),
            &runner,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.is_array(), "Airbyte's own answer: {body}");
    assert_eq!(
        reached(&front, "GET /streams"),
        [format!(
            "GET /api/public/v1/streams?sourceId={mine}&ignoreCache=true&note=a%3Bb+c"
        )]
    );
    let (status, _, body) = front
        .get(
            &format!("/connections/{connection}?x=%26connectionId%3D1"),
            &runner,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        reached(&front, &format!("GET /connections/{connection}")),
        [format!(
            "GET /api/public/v1/connections/{connection}?x=%26connectionId%3D1"
        )]
    );
    front.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_id_in_a_body_is_authorized() {
    let front = Front::start(with_editor()).await;
    let world = front.world().await;
    let editor = front.access_token("ci-editor").await;
    let admin = front.access_token("ci-admin").await;
    let (source, _) = ids(&front, &admin, "sources", "sourceId", &world).await;
    let (destination, other_destination) =
        ids(&front, &admin, "destinations", "destinationId", &world).await;
    let connection = world.analytics_active[0].clone();
    let (analytics, other) = (world.analytics.clone(), world.other.clone());

    // Each names something outside the editor's workspace: not found.
    let attacks = [
        (
            Method::POST,
            "/connections".to_owned(),
            json!({"sourceId": source, "destinationId": other_destination, "name": "exfil"})
                .to_string(),
            "destination",
        ),
        (
            Method::PATCH,
            format!("/sources/{source}"),
            json!({"workspaceId": other}).to_string(),
            "workspace",
        ),
        (
            Method::PUT,
            format!("/sources/{source}"),
            // Duplicate keys: the last one is what is read and forwarded.
            format!(r#"{{"workspaceId":"{analytics}","name":"s","workspaceId":"{other}"}}"#),
            "workspace",
        ),
        (
            Method::PATCH,
            format!("/destinations/{destination}"),
            json!({"workspaceId": other}).to_string(),
            "workspace",
        ),
        (
            Method::PATCH,
            format!("/connections/{connection}"),
            json!({"destinationId": other_destination}).to_string(),
            "destination",
        ),
        (
            Method::PATCH,
            format!("/connections/{connection}"),
            json!({"connectionId": world.other_connection}).to_string(),
            "connection",
        ),
        (
            Method::POST,
            "/sources".to_owned(),
            json!({"workspaceId": analytics, "destinationId": other_destination}).to_string(),
            "destination",
        ),
    ];
    front.sim.sim.reset_counters();
    for (method, path, body, kind) in &attacks {
        let (status, headers, answer) = send(&front, method.clone(), path, &editor, body).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} {path} {body}: {answer}"
        );
        assert_airbyte_error(status, &headers, &answer);
        assert_eq!(answer["data"]["resourceType"], *kind, "{answer}");
    }
    // Ids that are not UUIDs, or spelled to slip past: refused outright.
    for body in [
        json!({"workspaceId": analytics, "WorkspaceId": other}).to_string(),
        json!({"workspaceId": 7}).to_string(),
        "[]".to_owned(),
    ] {
        let (status, _, answer) = send(
            &front,
            Method::PATCH,
            &format!("/sources/{source}"),
            &editor,
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let writes: Vec<String> = front
        .sim
        .sim
        .counters()
        .targets
        .into_iter()
        .filter(|t| !t.starts_with("GET "))
        .collect();
    assert_eq!(
        writes,
        Vec::<String>::new(),
        "nothing refused reached Airbyte"
    );

    // The same requests within the workspace go to Airbyte, and its
    // answer comes back.
    let allowed = [
        (
            Method::POST,
            "/connections".to_owned(),
            json!({"sourceId": source, "destinationId": destination}).to_string(),
        ),
        (
            Method::PATCH,
            format!("/sources/{source}"),
            json!({"workspaceId": analytics, "name": "renamed"}).to_string(),
        ),
    ];
    for (method, path, body) in &allowed {
        let (status, _, answer) = send(&front, method.clone(), path, &editor, body).await;
        assert!(
            status.is_success() && answer.is_object(),
            "{status} Airbyte's answer: {answer}"
        );
        assert_eq!(
            reached(&front, &format!("{method} {path}")).len(),
            1,
            "{path}"
        );
    }
    let (status, audit) = crate::support::send(
        front
            .http
            .get(format!(
                "{}/v1/audit?action=airbyte.write&decision=deny",
                front.base
            ))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let denied = audit["data"].as_array().expect("records");
    assert_eq!(denied.len(), attacks.len(), "{audit:#}");
    front.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_cannot_be_filtered_is_a_502_never_passed_on() {
    let front = Front::start(harness(pipeline_grants())).await;
    let runner = front.access_token("ci-runner").await;
    let lists = [
        ("GET /connections", "/connections"),
        ("GET /sources", "/sources"),
        ("GET /jobs", "/jobs"),
        ("GET /workspaces", "/workspaces"),
    ];
    for (_, path) in lists {
        let (status, _, page) = front.get(path, &runner).await;
        assert_eq!(status, StatusCode::OK, "{path} before any fault: {page}");
    }
    for bad in BadBody::ALL {
        for (route, path) in lists {
            let fault = FaultSpec {
                bad_body: Some(bad),
                ..FaultSpec::default()
            };
            front
                .sim
                .sim
                .set_faults(Faults::none().with_route(route, fault));
            let (status, headers, body) = front.get(path, &runner).await;
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{bad:?} {path}: {body}");
            assert_airbyte_error(status, &headers, &body);
            assert!(!body.to_string().contains("hidden"), "{body}");
            assert!(front.sim.sim.counters().faults_on(route, "bad_body") > 0);
        }
    }
    front.sim.sim.set_faults(Faults::none());
    let (status, _, page) = front.get("/connections", &runner).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    front.stop().await;
}
