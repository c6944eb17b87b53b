//! Helpers shared by the integration tests: where the repository is, and the
//! external peers (Python packages, Node) that the tests drive.

use std::path::PathBuf;
use std::process::Command;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The Python interpreter with the test packages (`scripts/test` makes it).
/// A missing interpreter fails the test loudly: it is part of the suite.
pub fn python() -> PathBuf {
    let path = std::env::var_os("AIRLOCK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which installs the Python test packages",
        path.display()
    );
    path
}

/// Airbyte's OpenAPI document, kept outside the repository in `../shared`.
pub fn airbyte_openapi() -> PathBuf {
    let candidates = [
        std::env::var_os("AIRBYTE_OPENAPI").map(PathBuf::from),
        Some(repo_root().join("../shared/airbyte/airbyte-api.openapi.yaml")),
        Some(PathBuf::from(
            "/work/shared/airbyte/airbyte-api.openapi.yaml",
        )),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .expect("Airbyte's OpenAPI document: set AIRBYTE_OPENAPI or keep ../shared/airbyte next to the repository")
}

/// Runs a Python test script with `env`, and fails with its output unless it
/// exits 0. Returns its standard output.
pub async fn run_python(script: &str, env: &[(&str, String)]) -> String {
    let mut command = Command::new(python());
    command.arg(repo_root().join("tests/python").join(script));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

/// Where the integration tests find Postgres (the machine's, by default).
pub fn postgres_admin_url() -> String {
    std::env::var("AIRLOCK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The storage backends every queue test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of `kind`; the Postgres one is a new database
/// on the machine's server. A missing Postgres fails the test: it is part
/// of the suite, not optional.
pub async fn fresh_database(kind: Db) -> String {
    let name = format!("airlock_test_{}", uuid::Uuid::new_v4().simple());
    match kind {
        Db::Sqlite => {
            let dir = std::env::temp_dir().join("airlock-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!("sqlite://{}", dir.join(format!("{name}.db")).display())
        }
        Db::Postgres => {
            use sqlx::Connection;
            let admin = postgres_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                panic!("Postgres is required for these tests ({admin}): {e}. Start it or set AIRLOCK_TEST_POSTGRES.")
            });
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(base, _)| base)
                .to_owned();
            format!("{base}/{name}")
        }
    }
}
