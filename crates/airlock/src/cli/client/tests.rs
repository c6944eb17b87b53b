use super::*;

#[test]
fn tables_align_their_columns() {
    let text = table(
        &["A", "LONGER"],
        &[
            vec!["x".into(), "1".into()],
            vec!["wide cell".into(), "2".into()],
        ],
    );
    assert_eq!(text, "A          LONGER\nx          1\nwide cell  2\n");
}

#[test]
fn problems_name_status_code_and_request_id() {
    let problem = ApiProblem {
        status: StatusCode::FORBIDDEN,
        title: "Forbidden".into(),
        code: "forbidden".into(),
        detail: None,
        request_id: Some("req-1".into()),
    };
    let text = problem.to_string();
    assert!(
        text.starts_with("Forbidden (HTTP 403, forbidden)"),
        "{text}"
    );
    assert!(text.contains("request_id: req-1"), "{text}");
    assert!(text.contains("hint:"), "{text}");
}

#[test]
fn urls_encode_their_segments() {
    let client = Client::new(&Remote {
        url: "http://airlock.example/base/".into(),
        json: false,
    })
    .expect("client");
    let url = client.url(
        &["v1", "connections", "a b/c", "sync"],
        &[("if_running", "queue")],
    );
    assert_eq!(
        url.as_str(),
        "http://airlock.example/base/v1/connections/a%20b%2Fc/sync?if_running=queue"
    );
}

#[test]
fn event_lines_show_time_state_and_detail() {
    let event = serde_json::json!({"seq": 2, "state": "running", "at": "2026-01-02T03:04:05.678Z", "detail": "airbyte job 7"});
    assert_eq!(state_line(&event), "03:04:05  running    airbyte job 7");
}
