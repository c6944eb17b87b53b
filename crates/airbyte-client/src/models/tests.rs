//! Tests of the models: tolerance of unknown values and fields, parsing, and
//! the query pairs of the filters.

use super::*;
use serde_json::json;

#[test]
fn job_status_knows_queued_and_keeps_unknown_values() {
    let queued: JobStatus = serde_json::from_value(json!("queued")).unwrap();
    assert_eq!(queued, JobStatus::Queued);
    assert!(queued.is_active());
    let odd: JobStatus = serde_json::from_value(json!("paused_for_lunch")).unwrap();
    assert_eq!(odd, JobStatus::Unknown("paused_for_lunch".into()));
    assert!(!odd.is_active() && !odd.is_terminal());
    assert_eq!(
        serde_json::to_value(&odd).unwrap(),
        json!("paused_for_lunch")
    );
    for terminal in ["failed", "succeeded", "cancelled"] {
        assert!(JobStatus::from(terminal).is_terminal(), "{terminal}");
    }
    assert_eq!(JobStatus::from("RUNNING"), JobStatus::Running);
}

#[test]
fn job_type_tolerates_unknown_values() {
    assert_eq!(JobType::from("clear"), JobType::Clear);
    assert_eq!(
        serde_json::from_value::<JobType>(json!("backfill")).unwrap(),
        JobType::Unknown("backfill".into())
    );
}

#[test]
fn job_parses_with_and_without_optional_fields() {
    let pending: Job = serde_json::from_value(json!({
        "jobId": 9_007_199_254_740_993_i64,
        "status": "queued",
        "jobType": "sync",
        "startTime": "2026-08-01T10:00:00Z",
        "connectionId": "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826",
        "somethingNew": {"x": 1}
    }))
    .unwrap();
    assert_eq!(pending.job_id, 9_007_199_254_740_993);
    assert_eq!(pending.status, JobStatus::Queued);
    assert!(pending.started_at().is_some());
    assert_eq!(pending.elapsed(), None);

    let done: Job = serde_json::from_value(json!({
        "jobId": 7,
        "status": "succeeded",
        "jobType": "reset",
        "startTime": "2026-08-01T10:00:00Z",
        "connectionId": "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826",
        "lastUpdatedAt": "2026-08-01T10:08:12Z",
        "duration": "PT8M12S",
        "bytesSynced": 1024,
        "rowsSynced": 10
    }))
    .unwrap();
    assert_eq!(done.elapsed(), Some(Duration::from_secs(492)));
    assert!(done.last_updated().is_some());
    assert_eq!(done.rows_synced, Some(10));
}

#[test]
fn iso8601_durations() {
    assert_eq!(
        parse_iso8601_duration("PT8H6M12S"),
        Some(Duration::from_secs(29_172))
    );
    assert_eq!(
        parse_iso8601_duration("P1DT1S"),
        Some(Duration::from_secs(86_401))
    );
    assert_eq!(
        parse_iso8601_duration("PT0.5S"),
        Some(Duration::from_millis(500))
    );
    assert_eq!(parse_iso8601_duration("PT"), None);
    assert_eq!(parse_iso8601_duration("8M"), None);
    assert_eq!(parse_iso8601_duration("PT8X"), None);
}

#[test]
fn connection_tolerates_missing_optional_fields_and_reads_tags() {
    let minimal: Connection = serde_json::from_value(json!({
        "connectionId": "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826",
        "name": "pg to bq",
        "sourceId": "49237019-645d-47d4-b45b-5eddf97775ce",
        "destinationId": "e478de0d-a3a0-475c-b019-25f7dd29e281",
        "workspaceId": "871d9b60-11d1-44cb-8c92-c246d53bf87e",
        "configurations": {"streams": []}
    }))
    .unwrap();
    assert!(minimal.tags.is_empty() && minimal.schedule.is_none());

    let full: Connection = serde_json::from_value(json!({
        "connectionId": "18dccc91-0ab1-4f72-9ed7-0b8fc27c5826",
        "name": "pg to bq",
        "sourceId": "49237019-645d-47d4-b45b-5eddf97775ce",
        "destinationId": "e478de0d-a3a0-475c-b019-25f7dd29e281",
        "workspaceId": "871d9b60-11d1-44cb-8c92-c246d53bf87e",
        "status": "active",
        "schedule": {"scheduleType": "cron", "cronExpression": "0 0 * * * ?"},
        "prefix": "raw_",
        "tags": [{"tagId": "0b5b2d4e-8e1f-4a54-9b9c-2a1e7d5d7f10", "name": "nightly", "color": "FF0000"}]
    }))
    .unwrap();
    assert_eq!(full.status, Some(ConnectionStatus::Active));
    assert_eq!(full.schedule.unwrap().schedule_type, ScheduleType::Cron);
    assert_eq!(full.tags[0].name, "nightly");
}

#[test]
fn page_treats_empty_links_as_absent() {
    let page: Page<Workspace> = serde_json::from_value(json!({
        "data": [{"workspaceId": "871d9b60-11d1-44cb-8c92-c246d53bf87e", "name": "w", "dataResidency": "auto"}],
        "next": "",
    }))
    .unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.next, None);
    assert_eq!(page.previous, None);
}

#[test]
fn job_filter_repeats_workspaces_and_formats_times() {
    let ws = Uuid::nil();
    let filter = JobFilter {
        workspace_ids: vec![ws, ws],
        created_at_start: Some(time::macros::datetime!(2026-08-01 00:00 UTC)),
        order_by: Some(JobOrder::CreatedAtDesc),
        status: Some(JobStatus::Queued),
        ..JobFilter::default()
    };
    let query = filter.filter_query();
    assert_eq!(
        query.iter().filter(|(k, _)| *k == "workspaceIds").count(),
        2
    );
    assert!(query.contains(&("createdAtStart", "2026-08-01T00:00:00Z".into())));
    assert!(query.contains(&("orderBy", "createdAt|DESC".into())));
    assert!(query.contains(&("status", "queued".into())));
}
