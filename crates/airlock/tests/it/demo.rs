//! `airlock demo` as a newcomer runs it: start the process, follow the
//! printed instructions (get a token, list connections, sync with wait), and
//! end with a succeeded job.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::KilledOnDrop;

/// The text between `start` and the next `end` in `line`.
fn between<'a>(line: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = line.find(start)? + start.len();
    let rest = &line[from..];
    Some(&rest[..rest.find(end)?])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_follows_the_banner_to_a_succeeded_sync() {
    let data = std::env::temp_dir().join(format!(
        "airlock-demo-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("airlock demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let _demo = KilledOnDrop(child);

    // Read the banner up to its last line.
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("banner line");
            let done = line.contains("Ctrl-C stops it");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    })
    .await
    .expect("banner read");
    assert!(
        banner.iter().any(|l| l.contains("Ctrl-C")),
        "no banner: {banner:?}"
    );

    // "Get a token (pick a role)": the runner's line, as printed.
    let runner = banner
        .iter()
        .find(|l| l.trim_start().starts_with("runner"))
        .expect("a runner token line");
    let token_url = between(runner, "curl -s ", " -d").expect("token url");
    let form: Vec<(String, String)> = runner
        .split(" -d ")
        .skip(1)
        .map(|part| {
            let part = part.split_whitespace().next().expect("a -d value");
            let (key, value) = part.split_once('=').expect("key=value");
            (key.to_owned(), value.to_owned())
        })
        .collect();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(token_url)
        .form(&form)
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();

    // "Console": the page, and its sign-in at the demo provider's login page.
    let console_url = banner
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("Console: "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a console line");
    let page = http.get(console_url).send().await.expect("console page");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = no_redirects
        .get(format!("{console_url}/login"))
        .send()
        .await
        .expect("console login");
    assert_eq!(login.status(), reqwest::StatusCode::SEE_OTHER);
    let authorize = login.headers()["location"].to_str().expect("location");
    assert!(authorize.contains("/demo-idp/authorize?"), "{authorize}");
    let people = http
        .get(authorize)
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    assert!(people.contains("Rene Runner") && people.contains("Otto Auditor"));

    // "Then": list connections, then the sync with wait.
    let connections_url = banner
        .iter()
        .find(|l| l.contains("/v1/connections -H"))
        .and_then(|l| between(l, "curl -s ", " -H"))
        .expect("connections call");
    let connections: Value = http
        .get(connections_url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("connections")
        .json()
        .await
        .expect("json");
    let slugs: Vec<&str> = connections["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|c| c["slug"].as_str())
        .collect();
    let sync_url = banner
        .iter()
        .find(|l| l.contains("/sync?wait="))
        .and_then(|l| between(l, "-X POST '", "'"))
        .expect("sync call");
    assert!(
        slugs
            .iter()
            .any(|s| sync_url.contains(&format!("/{s}/sync"))),
        "{sync_url} names a listed connection: {slugs:?}"
    );

    let response = http
        .post(sync_url)
        .bearer_auth(&token)
        .timeout(Duration::from_secs(200))
        .send()
        .await
        .expect("sync");
    assert!(response.status().is_success(), "{}", response.status());
    let mut job: Value = response.json().await.expect("job");
    // Rarely a simulated attempt fails and is retried: keep following it.
    for _ in 0..180 {
        if job["state"] == "succeeded" || job["state"] == "failed" || job["state"] == "cancelled" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let url = connections_url.replace(
            "/v1/connections",
            &format!("/v1/jobs/{}", job["id"].as_str().expect("id")),
        );
        job = http
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("job")
            .json()
            .await
            .expect("json");
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["airbyte_job_id"].as_i64().is_some(), "{job}");
    assert!(
        job["rows_synced"].as_i64().is_some_and(|rows| rows > 0),
        "{job}"
    );
    let _ = std::fs::remove_dir_all(&data);
}
