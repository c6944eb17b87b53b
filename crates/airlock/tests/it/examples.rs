//! The example configurations in docs/examples pass `airlock check-config`
//! (secrets given through `AIRLOCK_*` overrides, as a deployment would).

use std::process::Command;

use crate::support::repo_root;

fn check(file: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
    command
        .args(["check-config", "--config"])
        .arg(repo_root().join("docs/examples").join(file));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("airlock runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_example_configuration_is_valid() {
    let cases: [(&str, &[(&str, &str)]); 5] = [
        (
            "keycloak.toml",
            &[("AIRLOCK_AIRBYTE__CLIENT_SECRET", "s3cret-value")],
        ),
        ("entra.toml", &[("AIRBYTE_CLIENT_SECRET", "s3cret-value")]),
        ("okta.toml", &[("AIRLOCK_AIRBYTE__TOKEN", "s3cret-value")]),
        ("auth0.toml", &[("AIRBYTE_PASSWORD", "s3cret-value")]),
        (
            "google.toml",
            &[("AIRLOCK_AIRBYTE__CLIENT_SECRET", "s3cret-value")],
        ),
    ];
    let listed: Vec<String> = std::fs::read_dir(repo_root().join("docs/examples"))
        .expect("docs/examples")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    assert_eq!(
        listed.len(),
        cases.len(),
        "every example is checked: {listed:?}"
    );
    for (file, env) in cases {
        let (ok, out) = check(file, env);
        assert!(ok, "{file}: {out}");
        assert!(
            !out.contains("s3cret-value"),
            "{file} printed a secret: {out}"
        );
    }
}

#[test]
fn a_missing_secret_and_a_typo_are_named() {
    let (ok, out) = check("entra.toml", &[]);
    assert!(!ok);
    assert!(
        out.contains("airbyte.client_secret") && out.contains("AIRBYTE_CLIENT_SECRET"),
        "{out}"
    );
    let (ok, out) = check(
        "auth0.toml",
        &[
            ("AIRBYTE_PASSWORD", "x"),
            ("AIRLOCK_SERVER__LISTN", "0.0.0.0:1"),
        ],
    );
    assert!(!ok);
    assert!(out.contains("listn"), "{out}");
}

/// Every key path of a TOML table, dotted (`jobs.max_attempts`); arrays of
/// tables contribute their entries' keys under the array's name.
fn key_paths(prefix: &str, table: &toml::Table, out: &mut std::collections::BTreeSet<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => key_paths(&path, inner, out),
            toml::Value::Array(items)
                if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
            {
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        key_paths(&path, inner, out);
                    }
                }
            }
            _ => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn the_configuration_reference_is_valid_and_complete() {
    let doc = std::fs::read_to_string(repo_root().join("docs/configuration.md"))
        .expect("docs/configuration.md");
    let block = doc
        .split("<!-- reference -->")
        .nth(1)
        .and_then(|rest| rest.split("```toml").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("a ```toml block after <!-- reference -->");
    // Valid: unknown or misspelt keys would fail here.
    airlock::config::Config::from_toml("docs/configuration.md", block, &[])
        .unwrap_or_else(|e| panic!("the reference does not load: {e}"));
    // Complete: every key the defaults have is named (commented-out keys
    // count, for keys without a default).
    let uncommented: String = block
        .lines()
        .map(|l| l.trim_start().trim_start_matches('#').trim_start())
        .map(|l| format!("{l}\n"))
        .collect();
    let mut documented = std::collections::BTreeSet::new();
    for line in uncommented.lines() {
        if line.starts_with('[') {
            // `[jobs]`, `[[grants]]`, `[connections.slugs]`: tables are named too.
            let name = line.trim_matches(|c| c == '[' || c == ']');
            let name = name.split(']').next().unwrap_or(name);
            documented.insert(name.rsplit('.').next().unwrap_or(name).to_owned());
        } else if let Some((key, _)) = line.split_once('=') {
            documented.insert(key.trim().trim_matches('"').to_owned());
        }
    }
    let defaults: toml::Table =
        toml::from_str(&airlock::config::Config::default().to_redacted_toml()).expect("defaults");
    let mut paths = std::collections::BTreeSet::new();
    key_paths("", &defaults, &mut paths);
    for path in paths {
        let leaf = path.rsplit('.').next().unwrap_or(&path);
        assert!(
            documented.contains(leaf),
            "docs/configuration.md does not name `{path}`"
        );
    }
}
