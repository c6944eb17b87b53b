//! The official Airbyte Python SDK against `airlock sim`: it must not be able
//! to tell the simulator from a real Airbyte.

use airbyte_sim::SimConfig;

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_runs_a_whole_session_against_the_simulator() {
    // Tokens live 63 s; the SDK renews 60 s before expiry, so the 4 s wait
    // below makes it fetch a second token during the session.
    let sim = airbyte_sim::spawn(SimConfig {
        token_lifetime_secs: 63,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let (client_id, client_secret) = sim.sim.credentials();
    let out = support::run_python(
        "sdk_session.py",
        &[
            ("AIRBYTE_URL", sim.base_url()),
            ("SIM_ADMIN", sim.admin_url()),
            ("CLIENT_ID", client_id),
            ("CLIENT_SECRET", client_secret),
            ("TOKEN_WAIT_SECS", "4".to_owned()),
        ],
    )
    .await;
    assert!(out.contains("sdk session ok"), "{out}");

    let counters = sim.sim.counters();
    let tokens = counters.requests_to("POST /applications/token");
    // One at the start, one after the forced expiry, one ahead of expiry.
    assert!(tokens >= 3, "token requests: {tokens}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_answers_match_airbytes_openapi_document() {
    let sim = airbyte_sim::spawn(SimConfig::default())
        .await
        .expect("simulator starts");
    let (client_id, client_secret) = sim.sim.credentials();
    let out = support::run_python(
        "validate_against_openapi.py",
        &[
            ("AIRBYTE_URL", sim.base_url()),
            ("SIM_ADMIN", sim.admin_url()),
            ("CLIENT_ID", client_id),
            ("CLIENT_SECRET", client_secret),
            ("OPENAPI", support::airbyte_openapi().display().to_string()),
        ],
    )
    .await;
    assert!(out.contains("answers match the document"), "{out}");
    sim.shutdown().await;
}
