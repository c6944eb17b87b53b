use super::*;

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

#[test]
fn names_round_trip() {
    for tool in ToolName::ALL {
        assert_eq!(tool.as_str().parse::<ToolName>().ok(), Some(tool));
    }
    assert!("drop_tables".parse::<ToolName>().is_err());
}

#[test]
fn arguments_cannot_change_the_route() {
    let call = ToolName::TriggerSync
        .request(args(json!({"connection": "x/reset?wait=1s"})))
        .expect("valid");
    assert_eq!(call.method, Method::POST);
    assert_eq!(
        call.path_and_query,
        "/v1/connections/x%2Freset%3Fwait%3D1s/sync"
    );
    let call = ToolName::GetJob
        .request(args(json!({"job_id": "../audit"})))
        .expect("valid");
    assert_eq!(call.path_and_query, "/v1/jobs/..%2Faudit");
}

#[test]
fn triggers_map_to_the_api() {
    let call = ToolName::TriggerSync
        .request(args(json!({
            "connection": "nightly-orders",
            "wait_seconds": 30,
            "idempotency_key": "run-42",
            "if_running": "attach",
        })))
        .expect("valid");
    assert_eq!(
        call.path_and_query,
        "/v1/connections/nightly-orders/sync?wait=30s&if_running=attach"
    );
    assert_eq!(call.idempotency_key.as_deref(), Some("run-42"));
    let reset = ToolName::ResetConnection
        .request(args(json!({"connection": "c"})))
        .expect("valid");
    assert_eq!(reset.path_and_query, "/v1/connections/c/reset");
    for bad in [
        json!({}),
        json!({"connection": "c", "wait_seconds": 901}),
        json!({"connection": "c", "idempotency_key": "with space"}),
        json!({"connection": "c", "surprise": true}),
    ] {
        assert!(
            matches!(
                ToolName::TriggerSync.request(args(bad.clone())),
                Err(McpError::InvalidArguments(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn lists_map_to_the_api() {
    let call = ToolName::ListJobs
        .request(args(
            json!({"connection": "a b", "state": "running", "limit": 5}),
        ))
        .expect("valid");
    assert_eq!(
        call.path_and_query,
        "/v1/jobs?connection=a+b&state=running&limit=5"
    );
    let call = ToolName::ListConnections
        .request(JsonObject::new())
        .expect("valid");
    assert_eq!(call.path_and_query, "/v1/connections");
}

#[test]
fn definitions_carry_schemas_and_honest_annotations() {
    for tool in ToolName::ALL {
        let def = tool.definition();
        assert_eq!(
            def.input_schema.get("type"),
            Some(&json!("object")),
            "{tool:?}"
        );
        let output = def.output_schema.expect("an output schema");
        assert_eq!(output.get("type"), Some(&json!("object")));
        let a = def.annotations.expect("annotations");
        assert_eq!(a.destructive_hint, Some(tool == ToolName::ResetConnection));
        let reads = tool.permission() == Permission::ConnectionsRead
            || tool.permission() == Permission::JobsRead;
        assert_eq!(a.read_only_hint, Some(reads));
    }
    let trigger = ToolName::TriggerSync.definition();
    let properties = trigger.input_schema["properties"].clone();
    assert_eq!(properties["wait_seconds"]["maximum"], json!(900));
    assert_eq!(trigger.input_schema["required"], json!(["connection"]));
}
