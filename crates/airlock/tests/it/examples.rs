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
