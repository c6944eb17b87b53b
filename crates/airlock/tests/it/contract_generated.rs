//! Requests generated from a document find no failure (issue 20):
//! schemathesis (pinned in `tests/python/requirements.txt`), from the
//! served `/openapi.json` with `tests/contract/schemathesis.toml`, against
//! a running Airlock and its simulator, as an admin and as a reader; and
//! from Airbyte's own document against the front (the last test).
//!
//! Every operation of the document is tried but the front's catch-alls
//! (`/api/public/v1/{path}`, `/api/v1/{path}`), which forward to Airbyte
//! and answer as Airbyte's own document says: positive and negative cases,
//! then stateful sequences along the document's links (a trigger's job to
//! its cancel, retry and events; an approval request to its decisions).
//! A failure is any 5xx, a status the document does not list, a valid
//! request refused, an invalid one accepted, or a response or event outside
//! its schema.
//!
//! The seed is fixed (`AIRLOCK_CONTRACT_SEED` picks another), so that CI
//! and a rerun generate the same requests; `AIRLOCK_CONTRACT_DETERMINISTIC=1`
//! also drops Hypothesis's random variation (`--generation-deterministic`),
//! for chasing one failure.

use std::process::Command;

use crate::harness::Harness;
use crate::support::{Db, KilledOnDrop, airbyte_openapi, python, reliable_connections, repo_root};

/// The seed of the generated requests.
const SEED: &str = "20261206";

/// One schemathesis run: which document, against what, as whom.
struct Run<'a> {
    /// Who runs it, for the failure message.
    name: &'a str,
    /// The configuration, under `tests/contract/`.
    config: &'a str,
    /// The document: a URL, or a file with `url` the API's base.
    schema: String,
    url: Option<String>,
    /// Arguments past the common ones.
    args: &'a [&'a str],
    /// Environment: the token (the configuration names the variable), and
    /// the hooks that lay facts over the document.
    env: Vec<(&'static str, String)>,
    /// Cases per operation and phase.
    examples: u32,
}

/// Runs schemathesis; fails with its report unless it finds nothing.
async fn generated_requests_pass(run: Run<'_>) {
    let tool = python().with_file_name("schemathesis");
    assert!(
        tool.exists(),
        "{} is missing: run scripts/test, which installs the Python test packages",
        tool.display()
    );
    let seed = std::env::var("AIRLOCK_CONTRACT_SEED").unwrap_or_else(|_| SEED.to_owned());
    // Its own working folder: no example database from an earlier run
    // changes what is generated, and nothing is left in the repository.
    let workdir = fresh_dir(run.name);
    let mut command = Command::new(&tool);
    command
        .current_dir(&workdir)
        .envs(run.env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(repo_root().join("tests/contract").join(run.config))
        .arg("run")
        .arg(&run.schema)
        .args(run.url.iter().flat_map(|url| ["--url", url.as_str()]))
        .args(run.args)
        .args(["--seed", &seed])
        .args(["--max-examples", &run.examples.to_string()])
        // One worker: requests in the same order on every run (and
        // Hypothesis's source inspection is not safe across threads).
        .args(["--workers", "1"])
        .args(["--generation-database", "none"]);
    if std::env::var_os("AIRLOCK_CONTRACT_DETERMINISTIC").is_some() {
        command.arg("--generation-deterministic");
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let name = run.name;
    assert!(
        output.status.success(),
        "{name}: generated requests found failures (seed {seed}):\n{stdout}\n{stderr}"
    );
    // A run that tested nothing would also exit 0.
    assert!(
        stdout.contains("generated") && !stdout.contains(" 0 generated"),
        "{name}: nothing was generated:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&workdir);
}

/// A fresh folder for one run.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "airlock-contract-{}-{}",
        name.replace(' ', "-"),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("a working folder");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_generated_from_the_document_find_no_failure() {
    let stack = Harness::fast(Db::Sqlite).approving_resets().start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    // A job to find, list and follow from the first request on.
    let (status, job) = stack.sync(&connection, "").await;
    assert!(status.is_success(), "{job}");
    stack
        .wait_terminal(job["id"].as_str().expect("the job's id"))
        .await;
    for (role, examples) in [("admin", 10), ("reader", 5)] {
        generated_requests_pass(Run {
            name: role,
            config: "schemathesis.toml",
            schema: stack.url("/openapi.json"),
            url: None,
            // The front's catch-alls forward to Airbyte: the next test.
            args: &["--exclude-path-regex", r"\{path\}$"],
            env: vec![("AIRLOCK_CONTRACT_TOKEN", stack.token(role))],
            examples,
        })
        .await;
    }
    stack.stop().await;
}

/// The Airbyte-compatible front answers as Airbyte's own document says (with
/// what real Airbyte answers beyond it, `tests/contract/airbyte/overlay.py`):
/// requests generated from `../shared/airbyte/airbyte-api.openapi.yaml`, as
/// an admin, against `airlock demo` (its simulator and its world, whose ids
/// `tests/contract/airbyte/schemathesis.toml` names). What the front answers
/// itself (refusals, the 401, filtered lists) and what it forwards must
/// match the document; the simulator's known gaps are listed there and in
/// docs/api.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_answers_as_airbytes_document_says() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let data = fresh_dir("front-demo");
    let child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("airlock demo starts");
    let _demo = KilledOnDrop(child);
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "airlock demo did not get ready at {base}");
    let token: serde_json::Value = http
        .post(format!("{base}/demo-idp/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "admin"),
            ("client_secret", "admin-secret"),
        ])
        .send()
        .await
        .expect("a token")
        .json()
        .await
        .expect("a token's JSON");
    let token = token["access_token"].as_str().expect("access_token");
    generated_requests_pass(Run {
        name: "the front",
        config: "airbyte/schemathesis.toml",
        schema: airbyte_openapi().display().to_string(),
        url: Some(format!("{base}/api/public/v1")),
        args: &[],
        env: vec![
            ("AIRBYTE_FRONT_TOKEN", token.to_owned()),
            (
                "SCHEMATHESIS_HOOKS",
                repo_root()
                    .join("tests/contract/airbyte/overlay.py")
                    .display()
                    .to_string(),
            ),
        ],
        examples: 5,
    })
    .await;
    let _ = std::fs::remove_dir_all(&data);
}
