//! The web console in a real browser: `tests/browser/console.mjs`
//! (playwright-core driving the machine's Chromium) against `airlock serve`
//! on SQLite, the Airbyte simulator, and the npm `oidc-provider` whose own
//! login form signs people in.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium`, or `CHROMIUM`) and the
//! node modules of `tests/browser` and `tests/oidc` (`scripts/test`
//! installs them; `.ci/run` installs Chromium). Without them the test
//! fails when `CI` is set, and is skipped loudly otherwise.
//!
//! The script screenshots every view: into `docs/screenshots/` with
//! `AIRLOCK_UPDATE_SNAPSHOTS=1` (the README links them), into the target
//! directory otherwise, so that a test run leaves the work tree clean.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use airbyte_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Grant, Harness, Issuer, TempDir, secret_file};
use crate::support::{self, reliable_connections, repo_root, sim_add_connections};

/// The views the script must have screenshotted.
const VIEWS: [&str; 10] = [
    "login",
    "connections",
    "connections-phone",
    "board",
    "job",
    "audit",
    "whoami",
    "approvals",
    "approvals-phone",
    "job-approval",
];

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What the test needs and does not have.
fn missing() -> Vec<String> {
    let mut missing = Vec::new();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !node {
        missing.push("`node` is not on PATH".to_owned());
    }
    if !chromium().exists() {
        missing.push(format!(
            "{} does not exist (apt-get install chromium)",
            chromium().display()
        ));
    }
    for (dir, module) in [
        ("tests/browser", "playwright-core"),
        ("tests/oidc", "oidc-provider"),
    ] {
        if !repo_root()
            .join(dir)
            .join("node_modules")
            .join(module)
            .join("package.json")
            .exists()
        {
            missing.push(format!(
                "{dir}/node_modules has no {module}: run `npm ci --prefix {dir}`"
            ));
        }
    }
    missing
}

/// A token of the provider for one of its client-credentials clients.
async fn client_token(http: &reqwest::Client, issuer: &str, client: &str) -> String {
    let body: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(client, Some(format!("{client}-secret")))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("the provider answers")
        .json()
        .await
        .expect("JSON");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token for {client}: {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_use_the_console_in_chromium() {
    let missing = missing();
    if !missing.is_empty() {
        let reason = missing.join("; ");
        if std::env::var_os("CI").is_some() {
            panic!("the browser test needs its tools: {reason}");
        }
        eprintln!("\n!!! SKIPPED the console's browser test: {reason} !!!\n");
        return;
    }
    let provider = crate::oidc::start_provider()
        .unwrap_or_else(|reason| panic!("the OpenID provider does not start: {reason}"));
    let issuer = provider.issuer.clone();
    let http = support::http_client();

    // Jobs twenty times faster than life; one connection whose syncs always
    // succeed, in the runner's workspace, for the sync the runner starts.
    let sim = airbyte_sim::spawn(SimConfig {
        time_scale: 0.05,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let added = sim_add_connections(&http, &sim, reliable_connections("analytics", 1, 60)).await;
    let target_id = added.connection_ids[0].clone();

    // What each person must see, from the simulator itself.
    let airbyte = support::airbyte_client(&sim);
    let params = airbyte_client::ListParams::default();
    let workspaces: HashMap<String, String> = airbyte
        .list_workspaces(&params)
        .await
        .expect("workspaces")
        .data
        .into_iter()
        .map(|w| (w.workspace_id.to_string(), w.name))
        .collect();
    let connections = airbyte
        .list_all_connections(&params)
        .await
        .expect("connections");
    let names_in = |workspace: &str| -> Vec<String> {
        connections
            .iter()
            .filter(|c| workspaces[&c.workspace_id.to_string()] == workspace)
            .map(|c| c.name.clone())
            .collect()
    };
    let target_name = connections
        .iter()
        .find(|c| c.connection_id.to_string() == target_id)
        .map(|c| c.name.clone())
        .expect("the added connection");

    // The console client's secret comes from a file, as in production.
    let secrets = TempDir::new("airlock-browser");
    let secret_path = secrets.path.join("console-client-secret");
    std::fs::write(&secret_path, "airlock-console-secret\n").expect("secret written");
    let issuer_entry = Issuer::new(&issuer, &["airlock"])
        .with("token_type", "at+jwt")
        .with("console_client_id", "airlock-console")
        .with("console_client_secret", secret_file(&secret_path))
        .with("console_resource", "urn:airlock");
    let deployment = Harness::fast(support::Db::Sqlite)
        .airbyte(&sim)
        .default_airbyte_timeout()
        .without_dev_idp()
        .issuer(issuer_entry)
        .without_role_grants()
        .grant(Grant::role("runner").workspaces(&["analytics"]))
        .grant(Grant::role("reader").workspaces(&["marketing"]))
        .grant(Grant::role("auditor"))
        .grant(Grant::role("admin"))
        // Four eyes: the editor's reset waits until the approver approves.
        .grant(Grant::role("editor").workspaces(&["analytics"]))
        .grant(Grant::role("approver").workspaces(&["analytics"]))
        .approving_resets()
        .deploy()
        .await;
    let served = deployment.serve();
    let airlock = served.client.base.clone();

    // Slugs as Airlock derives them (an admin's view).
    let admin = client_token(&http, &issuer, "admin").await;
    let slug_of = |body: &Value| body["slug"].as_str().expect("slug").to_owned();
    let (status, target) = support::send(
        http.get(format!("{airlock}/v1/connections/{target_id}"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{target}");
    let marketing = connections
        .iter()
        .find(|c| workspaces[&c.workspace_id.to_string()] == "marketing")
        .expect("a marketing connection");
    let (_, reader_connection) = support::send(
        http.get(format!(
            "{airlock}/v1/connections/{}",
            marketing.connection_id
        ))
        .bearer_auth(&admin),
    )
    .await;

    let expect = json!({
        "runner": {"login": "rene", "name": "Rene Runner", "connections": names_in("analytics")},
        "reader": {"login": "rosa", "connections": names_in("marketing"), "slug": slug_of(&reader_connection)},
        "auditor": {"login": "otto"},
        "sync": {"slug": slug_of(&target), "name": target_name},
        "editor": {"login": "edda", "name": "Edda Editor"},
        "approver": {"login": "april", "name": "April Approver"},
    });
    let shots = if std::env::var_os("AIRLOCK_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        repo_root().join("docs/screenshots")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
    };
    let _ = std::fs::remove_dir_all(&shots);

    let dir = repo_root().join("tests/browser");
    let started = Instant::now();
    let output = tokio::task::spawn_blocking({
        let (airlock, issuer, shots) = (airlock.clone(), issuer.clone(), shots.clone());
        move || {
            run_bounded(
                Command::new("node")
                    .arg(dir.join("console.mjs"))
                    .current_dir(&dir)
                    .env("AIRLOCK_URL", airlock)
                    .env("ISSUER", issuer)
                    .env("EXPECT", expect.to_string())
                    .env("SCREENSHOTS", shots)
                    .env("CHROMIUM", chromium()),
                Duration::from_secs(360),
            )
        }
    })
    .await
    .expect("the script ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser script failed ({}) after {:?}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
        started.elapsed()
    );
    assert!(stdout.contains("browser checks passed"), "{stdout}");
    for view in VIEWS {
        let png = shots.join(format!("{view}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", png.display());
    }
    // No secret in Airlock's log: not the console's client secret, and no
    // cookie or token header ever.
    let log = served.log_at("INFO");
    let text = serde_json::to_string(&log).expect("JSON");
    for secret in ["airlock-console-secret", "airlock_session=", "x-csrf-token"] {
        assert!(!text.contains(secret), "the log contains `{secret}`");
    }
    assert!(
        served.logged("console session started") >= 7,
        "six people signed in (runner twice, approver twice)"
    );
    drop(served);
    drop(provider);
    sim.shutdown().await;
}

/// Runs `command` to its end, or kills it after `bound` (a hung browser
/// must not hang the suite); its output either way.
fn run_bounded(command: &mut Command, bound: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().expect("killed");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}
