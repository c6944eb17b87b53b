//! `sync --wait`: following a job to its end, over its event stream or,
//! when streams are cut, by polling.

use super::*;

/// Follows a job through `GET /v1/jobs/{id}/events` until a terminal
/// state, printing each state; reconnects (from the last event seen) when
/// the stream drops, and polls when it cannot reconnect. Returns the job as
/// it ended.
pub(super) async fn follow(
    client: &Client,
    id: &str,
    say: &dyn Fn(String),
) -> anyhow::Result<Value> {
    let mut last_seq = 0_i64;
    let mut failures = 0;
    loop {
        match stream_once(client, id, &mut last_seq, say).await {
            Ok(Some(job)) => return Ok(job),
            Ok(None) => failures += 1,
            // An API error (403, 404) is final; a dropped connection is not.
            Err(error) if error.downcast_ref::<ApiProblem>().is_some() => return Err(error),
            Err(_) => failures += 1,
        }
        if failures >= 3 {
            return poll(client, id, say).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection to the event stream; `Some(job)` after a terminal state.
pub(super) async fn stream_once(
    client: &Client,
    id: &str,
    last_seq: &mut i64,
    say: &dyn Fn(String),
) -> anyhow::Result<Option<Value>> {
    let mut request = client
        .request(Method::GET, client.url(&["v1", "jobs", id, "events"], &[]))
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if *last_seq > 0 {
        request = request.header("Last-Event-ID", last_seq.to_string());
    }
    let mut response = check(request.send().await.map_err(|e| client.unreachable(e))?).await?;
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await.context("the event stream broke")? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        let normalized = buffer.replace("\r\n", "\n");
        buffer = normalized;
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if data.is_empty() {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let seq = event.get("seq").and_then(Value::as_i64).unwrap_or(0);
            if seq <= *last_seq {
                continue;
            }
            *last_seq = seq;
            say(state_line(&event));
            let terminal = matches!(
                event.get("state").and_then(Value::as_str),
                Some("succeeded" | "failed" | "cancelled" | "rejected" | "expired")
            );
            if terminal {
                return match event.get("job") {
                    Some(job) if job.is_object() => Ok(Some(job.clone())),
                    _ => Ok(Some(
                        client
                            .call(Method::GET, client.url(&["v1", "jobs", id], &[]))
                            .await?,
                    )),
                };
            }
        }
    }
    Ok(None)
}

/// Polls `GET /v1/jobs/{id}` every two seconds until the job ends.
pub(super) async fn poll(client: &Client, id: &str, say: &dyn Fn(String)) -> anyhow::Result<Value> {
    let mut last_state = String::new();
    loop {
        let job = client
            .call(Method::GET, client.url(&["v1", "jobs", id], &[]))
            .await?;
        let state = field(&job, "state");
        if state != last_state {
            say(format!("{}  {state}", when(&job, "updated_at")));
            last_state.clone_from(&state);
        }
        if matches!(
            state.as_str(),
            "succeeded" | "failed" | "cancelled" | "rejected" | "expired"
        ) {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
