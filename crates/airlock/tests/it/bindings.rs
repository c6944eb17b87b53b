//! Grants bind to ids that Airbyte users cannot change: someone editing in
//! Airbyte renames connections and workspaces and creates namesakes, and
//! the grants written with names keep meaning what they meant (on SQLite
//! and Postgres; ARCHITECTURE.md, "Names in grants are bound to ids").

use std::collections::BTreeSet;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::front_writes::{secret, service_account_front, sim_world, workspace_id};
use crate::harness::{Grant, Stack, TempDir};
use crate::support::{self, Db, both_backends};

/// A runner in the workspace `analytics` (by name), and a runner of the
/// connection `stripe-bigquery` (by slug, in `finance`).
const ACCOUNTS: [(&str, &str); 2] = [("ci-ws", "team-ws"), ("ci-conn", "team-conn")];

/// Airbyte, as someone editing in it directly (the simulator's own
/// credentials: Airlock is not in the way).
struct Editor<'a> {
    stack: &'a Stack,
    token: String,
}

impl<'a> Editor<'a> {
    async fn new(stack: &'a Stack) -> Self {
        let (id, secret) = stack.sim.sim.credentials();
        let (status, body) = support::send(
            stack
                .http
                .post(format!("{}/applications/token", stack.sim.base_url()))
                .json(&json!({"client_id": id, "client_secret": secret})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["access_token"].as_str().expect("a token").to_owned();
        Self { stack, token }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.stack.sim.base_url());
        let (status, answer) = support::send(
            self.stack
                .http
                .request(method, url)
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        answer
    }

    async fn rename(&self, kind: &str, id: &str, name: &str) {
        let path = format!("/{kind}/{id}");
        self.call(reqwest::Method::PATCH, &path, json!({"name": name}))
            .await;
    }

    /// A new connection called `name` between a new source and destination
    /// in `workspace`; returns its id.
    async fn namesake_connection(&self, workspace: &str, name: &str) -> String {
        let post = reqwest::Method::POST;
        let config = |kind: &str| json!({format!("{kind}Type"): "postgres", "host": "h"});
        let source = self
            .call(
                post.clone(),
                "/sources",
                json!({"name": "s", "workspaceId": workspace, "configuration": config("source")}),
            )
            .await;
        let destination = self
            .call(
                post.clone(),
                "/destinations",
                json!({"name": "d", "workspaceId": workspace, "configuration": config("destination")}),
            )
            .await;
        let connection = self
            .call(
                post,
                "/connections",
                json!({"name": name, "sourceId": source["sourceId"],
                    "destinationId": destination["destinationId"]}),
            )
            .await;
        connection["connectionId"]
            .as_str()
            .expect("an id")
            .to_owned()
    }
}

/// The connections a service account sees in Airlock's catalog: id to slug.
async fn visible(stack: &Stack, client: &str) -> Vec<(String, String)> {
    let (status, token) = support::send(stack.http.post(stack.url("/applications/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", &secret(client)),
    ]))
    .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let bearer = token["access_token"].as_str().expect("a token");
    let (status, page) = support::send(
        stack
            .http
            .get(stack.url("/v1/connections"))
            .bearer_auth(bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut seen: Vec<(String, String)> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_owned(),
                c["slug"].as_str().expect("slug").to_owned(),
            )
        })
        .collect();
    seen.sort();
    seen
}

/// The id of the connection called `name` in the simulator.
fn connection_id(world: &Value, name: &str) -> String {
    world["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["id"].as_str())
        .expect("the connection")
        .to_owned()
}

async fn renames_and_namesakes_do_not_move_grants(db: Db) {
    let stack = service_account_front(
        db,
        &ACCOUNTS,
        vec![
            Grant::on_claim("runner", "roles", "team-ws").workspaces(&["analytics"]),
            Grant::on_claim("runner", "roles", "team-conn").connections(&["stripe-bigquery"]),
        ],
    )
    .start()
    .await;
    let world = sim_world(&stack).await;
    let analytics = workspace_id(&world, "analytics");
    let marketing = workspace_id(&world, "marketing");
    let stripe = connection_id(&world, "Stripe → BigQuery");
    let klaviyo = connection_id(&world, "Klaviyo → BigQuery");
    let in_analytics = visible(&stack, "ci-ws").await;
    assert!(!in_analytics.is_empty());
    assert_eq!(
        visible(&stack, "ci-conn").await,
        vec![(stripe.clone(), "stripe-bigquery".to_owned())]
    );

    // In Airbyte: the granted connection is renamed away, another takes its
    // name, and a new namesake appears; the granted workspace is renamed
    // away, another takes its name, and a new namesake appears with a
    // connection in it.
    let editor = Editor::new(&stack).await;
    editor.rename("connections", &stripe, "Stripe (old)").await;
    editor
        .rename("connections", &klaviyo, "Stripe → BigQuery")
        .await;
    let namesake = editor
        .namesake_connection(&marketing, "Stripe → BigQuery")
        .await;
    editor
        .rename("workspaces", &analytics, "analytics-archive")
        .await;
    editor.rename("workspaces", &marketing, "analytics").await;
    let new_workspace = editor
        .call(
            reqwest::Method::POST,
            "/workspaces",
            json!({"name": "analytics"}),
        )
        .await;
    let new_workspace = new_workspace["workspaceId"].as_str().expect("an id");
    let planted = editor.namesake_connection(new_workspace, "Planted").await;
    stack.state.catalog().refresh().await.expect("a refresh");

    assert_eq!(
        visible(&stack, "ci-ws").await,
        in_analytics,
        "the workspace grant stays on the workspace it was bound to"
    );
    assert_eq!(
        visible(&stack, "ci-conn").await,
        vec![(stripe.clone(), "stripe-bigquery".to_owned())],
        "the slug stays with its connection through a rename"
    );
    let snapshot = stack.state.catalog().snapshot();
    let slug_of = |id: &str| snapshot.resolve(id).map(|c| c.slug.clone());
    assert_eq!(slug_of(&klaviyo).as_deref(), Some("klaviyo-bigquery"));
    assert_eq!(slug_of(&namesake).as_deref(), Some("stripe-bigquery-2"));
    assert!(slug_of(&planted).is_some());
    let slugs: BTreeSet<String> = snapshot.all().iter().map(|c| c.slug.clone()).collect();
    assert_eq!(slugs.len(), snapshot.all().len(), "slugs stay unique");

    // check-config says what each name is bound to.
    let dir = TempDir::new("airlock-bindings");
    let path = dir.path.join("airlock.toml");
    stack.config.write(&path);
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("airlock runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "workspace \"analytics\"  bound to workspace {analytics}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "connection \"stripe-bigquery\"  slug of connection {stripe}"
        )),
        "{stdout}"
    );
    stack.stop().await.shutdown().await;
}

both_backends!(renames_and_namesakes_do_not_move_grants);
