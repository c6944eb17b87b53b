//! Requests generated from the served `/openapi.json` find no failure
//! (issue 20): schemathesis (pinned in `tests/python/requirements.txt`),
//! with `tests/contract/schemathesis.toml`, against a running Airlock and
//! its simulator, as an admin and as a reader.
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

use crate::harness::{Harness, Stack};
use crate::support::{Db, python, reliable_connections, repo_root};

/// The seed of the generated requests.
const SEED: &str = "20261206";

/// Runs schemathesis as `role`, with `examples` cases per operation and
/// phase; fails with its report unless it finds nothing.
async fn generated_requests_pass(stack: &Stack, role: &str, examples: u32) {
    let tool = python().with_file_name("schemathesis");
    assert!(
        tool.exists(),
        "{} is missing: run scripts/test, which installs the Python test packages",
        tool.display()
    );
    let seed = std::env::var("AIRLOCK_CONTRACT_SEED").unwrap_or_else(|_| SEED.to_owned());
    // Its own working folder: no example database from an earlier run
    // changes what is generated, and nothing is left in the repository.
    let workdir = tempfile_dir(role);
    let mut command = Command::new(&tool);
    command
        .current_dir(&workdir)
        .env("AIRLOCK_CONTRACT_TOKEN", stack.token(role))
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(repo_root().join("tests/contract/schemathesis.toml"))
        .arg("run")
        .arg(stack.url("/openapi.json"))
        .args(["--exclude-path-regex", r"\{path\}$"])
        .args(["--checks", "all"])
        .args(["--seed", &seed])
        .args(["--max-examples", &examples.to_string()])
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
    assert!(
        output.status.success(),
        "as {role}, requests generated from /openapi.json found failures (seed {seed}):\n{stdout}\n{stderr}"
    );
    // A run that tested nothing would also exit 0.
    assert!(
        stdout.contains("generated") && !stdout.contains(" 0 generated"),
        "as {role}, nothing was generated:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&workdir);
}

/// A fresh folder for one run.
fn tempfile_dir(role: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "airlock-contract-{role}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("a working folder");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_generated_from_the_document_find_no_failure() {
    let stack = Harness::fast(Db::Sqlite)
        .extra("[approvals]\nrequire = [\"jobs:reset\"]\n")
        .start()
        .await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    // A job to find, list and follow from the first request on.
    let (status, job) = stack.sync(&connection, "").await;
    assert!(status.is_success(), "{job}");
    stack
        .wait_terminal(job["id"].as_str().expect("the job's id"))
        .await;
    generated_requests_pass(&stack, "admin", 10).await;
    generated_requests_pass(&stack, "reader", 5).await;
    stack.stop().await;
}
