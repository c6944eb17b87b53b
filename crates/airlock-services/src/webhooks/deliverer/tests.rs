//! The deliverer's unit tests.

use super::*;

#[test]
fn backoff_doubles_with_jitter_up_to_an_hour() {
    for (attempt, full) in [(1, 30_000), (2, 60_000), (3, 120_000), (20, 3_600_000)] {
        let delay = backoff_ms(attempt);
        assert!(
            delay <= full && delay >= full * 3 / 4,
            "attempt {attempt}: {delay}"
        );
    }
}

#[test]
fn webhook_ids_are_stable_and_short() {
    assert_eq!(
        webhook_id("https://a.example/x"),
        webhook_id("https://a.example/x")
    );
    assert_ne!(
        webhook_id("https://a.example/x"),
        webhook_id("https://a.example/y")
    );
    assert_eq!(webhook_id("https://a.example/x").len(), 16);
}

#[test]
fn sent_at_is_added_to_the_stored_body() {
    let body = with_sent_at(r#"{"event":"job.failed"}"#, 0);
    let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(value["event"], "job.failed");
    assert_eq!(value["sent_at"], "1970-01-01T00:00:00Z");
}

#[test]
fn debug_shows_neither_secret_nor_url() {
    let config: WebhookConfig =
        toml::from_str("url = \"https://hooks.example.com/T0/B0/tok3n\"\nsecret = \"hunter2\"\n")
            .expect("config");
    let webhook = Webhook::from_config(0, &config, &|_| None).expect("webhook");
    let printed = format!("{webhook:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("tok3n"),
        "{printed}"
    );
}
