//! `deploy/kubernetes`: both kustomizations build with `kubectl kustomize`,
//! validate strictly against Kubernetes' schemas (kubernetes-validate, the
//! oldest and newest versions docs/deployment.md names), and hold together:
//! every selector finds the pods, the probes, ports and security context are
//! what Airlock needs, the stop fits the grace period, and the ConfigMap's
//! airlock.toml passes `airlock check-config` with the Deployment's
//! environment.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::harness::TempDir;
use crate::support::{python, repo_root};

/// The Kubernetes versions the manifests are validated against.
const VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// The preStop pause, the longest request's grace and the background loops'
/// bound, in seconds: what the pod's grace period must cover.
const LOOPS_STOP_SECS: u64 = 5;

#[test]
fn the_base_builds_validates_and_holds_together() {
    let docs = built("base");
    let deployment = holds_together(&docs);
    assert_eq!(
        deployment["spec"]["replicas"], 2,
        "the base runs two replicas on Postgres"
    );
}

#[test]
fn next_to_airbyte_reaches_airbytes_server_and_only_it() {
    let docs = built("next-to-airbyte");
    holds_together(&docs);

    let namespace = one(&docs, "Namespace");
    assert_eq!(namespace["metadata"]["name"], "airlock");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
        "the namespace enforces the restricted Pod Security Standard"
    );
    for doc in docs.iter().filter(|doc| doc["kind"] != "Namespace") {
        assert_eq!(doc["metadata"]["namespace"], "airlock", "{}", doc["kind"]);
    }

    let config = config_of(&docs);
    let airbyte = reqwest::Url::parse(&config.airbyte.url).expect("Airbyte's URL");
    assert_eq!(
        airbyte.host_str(),
        Some("airbyte-airbyte-server-svc.airbyte.svc.cluster.local"),
        "Airbyte's server Service of the Helm release `airbyte`"
    );
    assert_eq!(airbyte.path(), "/api/public/v1");
    let port = u64::from(airbyte.port().expect("an explicit port"));
    let policy = one(&docs, "NetworkPolicy");
    let to_airbyte: Vec<&Value> = array(&policy["spec"]["egress"])
        .iter()
        .filter(|rule| ports_of(rule).contains(&port))
        .collect();
    assert_eq!(to_airbyte.len(), 1, "one egress rule reaches port {port}");
    let peer = &array(&to_airbyte[0]["to"])[0];
    assert_eq!(
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "airbyte"
    );
    assert_eq!(
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "server"
    );
}

/// The documents `kubectl kustomize deploy/kubernetes/<dir>` prints, after
/// they validated against every version in [`VERSIONS`].
fn built(dir: &str) -> Vec<Value> {
    let path = repo_root().join("deploy/kubernetes").join(dir);
    let yaml = run(
        Command::new("kubectl").arg("kustomize").arg(&path),
        "kubectl kustomize",
    );
    let scratch = TempDir::new("airlock-kubernetes");
    let file = scratch.path.join(format!("{dir}.yaml"));
    std::fs::write(&file, &yaml).expect("write the built manifests");
    for version in VERSIONS {
        run(
            Command::new(validator())
                .args(["--strict", "--quiet", "--kubernetes-version", version])
                .arg(&file),
            "kubernetes-validate",
        );
    }
    let json = run(
        Command::new(python())
            .args([
                "-c",
                "import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)",
            ])
            .stdin(std::fs::File::open(&file).expect("the built manifests")),
        "YAML to JSON",
    );
    serde_json::from_str(&json).expect("the manifests as JSON")
}

/// Checks what every kustomization must hold; returns its Deployment.
fn holds_together(docs: &[Value]) -> &Value {
    let deployment = one(docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let labels = pod["metadata"]["labels"].as_object().expect("pod labels");
    let selects_the_pods = |selector: &Value, what: &str| {
        let selector = selector.as_object().expect(what);
        assert!(!selector.is_empty(), "{what} is empty");
        for (key, value) in selector {
            assert_eq!(
                labels.get(key),
                Some(value),
                "{what} does not select the pods ({key})"
            );
        }
    };
    selects_the_pods(
        &deployment["spec"]["selector"]["matchLabels"],
        "the Deployment's selector",
    );
    selects_the_pods(
        &one(docs, "Service")["spec"]["selector"],
        "the Service's selector",
    );
    selects_the_pods(
        &one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "the PodDisruptionBudget's selector",
    );
    selects_the_pods(
        &one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        "the NetworkPolicy's pod selector",
    );

    let containers = array(&pod["spec"]["containers"]);
    assert_eq!(containers.len(), 1);
    let airlock = &containers[0];
    probes_and_ports(airlock, docs);
    locked_down(&pod["spec"], airlock);
    stops_in_time(&pod["spec"], airlock);
    assert!(airlock["resources"]["requests"]["cpu"].is_string());
    assert!(airlock["resources"]["requests"]["memory"].is_string());
    assert!(airlock["resources"]["limits"]["memory"].is_string());

    mounts_the_generated_config(&pod["spec"], docs);
    the_config_checks_with_the_deployments_environment(docs, airlock);
    deployment
}

fn probes_and_ports(airlock: &Value, docs: &[Value]) {
    let ports = array(&airlock["ports"]);
    assert_eq!(ports[0]["name"], "http");
    assert_eq!(ports[0]["containerPort"], 8080);
    assert_eq!(airlock["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(airlock["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        assert_eq!(airlock[probe]["httpGet"]["port"], "http", "{probe}");
    }
    let service = one(docs, "Service");
    assert_eq!(
        service["spec"]["ports"][0]["name"], "http",
        "a named port to scrape /metrics from"
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let ingress = &one(docs, "NetworkPolicy")["spec"]["ingress"];
    assert_eq!(
        ingress[0]["ports"][0]["port"], "http",
        "callers reach the HTTP port"
    );
}

fn locked_down(pod: &Value, airlock: &Value) {
    let context = &pod["securityContext"];
    assert_eq!(context["runAsNonRoot"], true);
    assert!(
        context["runAsUser"].as_u64().is_some_and(|uid| uid > 0),
        "a numeric non-root user"
    );
    assert_eq!(context["seccompProfile"]["type"], "RuntimeDefault");
    let context = &airlock["securityContext"];
    assert_eq!(context["readOnlyRootFilesystem"], true);
    assert_eq!(context["allowPrivilegeEscalation"], false);
    assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(pod["automountServiceAccountToken"], false);
}

/// SIGTERM comes after the preStop pause; Airlock then takes up to
/// [`airlock::app::SHUTDOWN_GRACE`] for requests in flight and
/// [`LOOPS_STOP_SECS`] for its loops before releasing its leases.
fn stops_in_time(pod: &Value, airlock: &Value) {
    let pause: u64 = array(&airlock["lifecycle"]["preStop"]["exec"]["command"])
        .last()
        .and_then(Value::as_str)
        .and_then(|secs| secs.parse().ok())
        .expect("the preStop pause in seconds");
    let needed = pause + airlock::app::SHUTDOWN_GRACE.as_secs() + LOOPS_STOP_SECS;
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a grace period");
    assert!(
        grace > needed,
        "a grace period of {grace} s cuts a stop that may take {needed} s"
    );
}

fn mounts_the_generated_config(pod: &Value, docs: &[Value]) {
    let name = one(docs, "ConfigMap")["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    assert!(
        name.starts_with("airlock-config-"),
        "a generated name, hashed: {name}"
    );
    let volume = array(&pod["volumes"])
        .iter()
        .find(|volume| volume["configMap"]["name"] == name.as_str())
        .expect("the ConfigMap is mounted");
    let mount = array(&pod["containers"][0]["volumeMounts"])
        .iter()
        .find(|mount| mount["name"] == volume["name"])
        .expect("its volume is mounted");
    assert_eq!(mount["mountPath"], "/etc/airlock");
    assert_eq!(mount["readOnly"], true);
    let args = array(&pod["containers"][0]["args"]);
    assert!(
        args.iter().any(|arg| arg == "/etc/airlock/airlock.toml"),
        "{args:?}"
    );
}

/// `airlock check-config` accepts the ConfigMap's file with the environment
/// the Deployment gives (each Secret reference standing for a value), and
/// the result is what replicas need: Postgres and a shared signing key.
fn the_config_checks_with_the_deployments_environment(docs: &[Value], airlock: &Value) {
    let (scratch, file) = config_file(docs);
    let env = environment(airlock);
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["check-config", "--quiet", "--offline", "--config"])
        .arg(&file)
        .env_clear()
        .envs(env.iter().map(|(name, value)| (name, value)))
        .output()
        .expect("run airlock check-config");
    assert!(
        output.status.success(),
        "check-config refused the ConfigMap's airlock.toml: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = airlock::config::Config::load(Some(&file), &env).expect("the config loads");
    assert!(
        config.storage.url.starts_with("postgres://"),
        "replicas share Postgres"
    );
    assert!(
        config.front.signing_key_secret.is_some(),
        "replicas open the same signing key"
    );
    drop(scratch);
}

/// Every variable the Deployment sets, each from the Secret `airlock-secrets`
/// (a value standing for the secret's).
fn environment(airlock: &Value) -> Vec<(String, String)> {
    let mut keys = BTreeSet::new();
    let env = array(&airlock["env"])
        .iter()
        .map(|var| {
            let name = var["name"].as_str().expect("a name").to_owned();
            let reference = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(
                reference["name"], "airlock-secrets",
                "{name} comes from the Secret"
            );
            let key = reference["key"].as_str().expect("a key");
            assert!(keys.insert(key.to_owned()), "{key} is used twice");
            let value = match name.as_str() {
                "AIRLOCK_STORAGE__URL" => "postgres://airlock:secret@db:5432/airlock".to_owned(),
                _ => format!("value-of-{key}"),
            };
            (name, value)
        })
        .collect();
    documented_secret_keys(&keys);
    env
}

/// docs/deployment.md's `kubectl create secret` names every key the
/// Deployment reads.
fn documented_secret_keys(keys: &BTreeSet<String>) {
    let docs = std::fs::read_to_string(repo_root().join("docs/deployment.md")).expect("docs");
    for key in keys {
        assert!(
            docs.contains(&format!("--from-literal={key}="))
                || docs.contains(&format!("--from-file={key}=")),
            "docs/deployment.md does not say how to fill the Secret's key {key}"
        );
    }
}

fn config_file(docs: &[Value]) -> (TempDir, PathBuf) {
    let text = one(docs, "ConfigMap")["data"]["airlock.toml"]
        .as_str()
        .expect("airlock.toml in the ConfigMap")
        .to_owned();
    let scratch = TempDir::new("airlock-kubernetes-config");
    let file = scratch.path.join("airlock.toml");
    std::fs::write(&file, text).expect("write airlock.toml");
    (scratch, file)
}

fn config_of(docs: &[Value]) -> airlock::config::Config {
    let (_scratch, file) = config_file(docs);
    let env = environment(&one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]);
    airlock::config::Config::load(Some(&file), &env).expect("the config loads")
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut of_kind = docs.iter().filter(|doc| doc["kind"] == kind);
    let doc = of_kind.next().unwrap_or_else(|| panic!("no {kind}"));
    assert!(of_kind.next().is_none(), "more than one {kind}");
    doc
}

fn array(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
}

fn ports_of(rule: &Value) -> Vec<u64> {
    array(&rule["ports"])
        .iter()
        .filter_map(|port| port["port"].as_u64())
        .collect()
}

/// kubernetes-validate, next to the test interpreter (`scripts/test`
/// installs it from tests/python/requirements.txt).
fn validator() -> PathBuf {
    let path = python().with_file_name("kubernetes-validate");
    assert!(
        path.exists(),
        "{} is missing: run scripts/test",
        path.display()
    );
    path
}

/// Runs `command`; fails the test with its output unless it exits 0, and
/// returns its standard output.
fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|error| {
        panic!("{what} could not start ({error}); kubectl with kustomize 5 is needed (docs/deployment.md)")
    });
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}
