//! Client commands for humans: `connections`, `sync`, `jobs`, `job`,
//! `cancel`, `retry`, talking to a running Airlock over HTTP.
//!
//! Airlock is found at `AIRLOCK_URL` (or `--url`), and the caller's access
//! token is read from `AIRLOCK_TOKEN` only (a flag would leave it in shell
//! history and process lists). Output is a table for people, or the API's
//! JSON with `--json`. Exit codes: 0 done (a waited sync succeeded), 1 a
//! waited sync failed or was cancelled, 2 a usage, network or HTTP error.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Where Airlock is, and how to print.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Airlock's base URL (your access token is read from AIRLOCK_TOKEN).
    #[arg(long, env = "AIRLOCK_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The client subcommands (flattened into the top-level command list).
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// List the connections you may see on a running Airlock (uses
    /// AIRLOCK_URL and AIRLOCK_TOKEN).
    Connections(ConnectionsArgs),
    /// Start a sync of a connection (by slug or id); with --wait, follow it
    /// to its end: exit 0 when it succeeded, 1 when it failed or was cancelled.
    Sync(SyncArgs),
    /// List jobs, newest first.
    Jobs(JobsArgs),
    /// Show one job.
    Job(JobArgs),
    /// Cancel a job.
    Cancel(JobArgs),
    /// Retry a failed or cancelled job (a new job, linked to it).
    Retry(JobArgs),
}

/// Flags of `airlock connections`.
#[derive(Debug, clap::Args)]
pub struct ConnectionsArgs {
    /// Only this workspace (id or name).
    #[arg(long)]
    workspace: Option<String>,
    /// Only connections carrying this Airbyte tag.
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// What to do when the connection already has a job.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum IfRunning {
    /// Run after it (the default).
    #[default]
    Queue,
    /// Follow the job already there instead.
    Attach,
    /// Refuse.
    Reject,
}

impl IfRunning {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Attach => "attach",
            Self::Reject => "reject",
        }
    }
}

/// Flags of `airlock sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The connection: its slug or its Airbyte id.
    connection: String,
    /// Follow the job, printing each state, until it ends.
    #[arg(long)]
    wait: bool,
    /// When the connection already has a job.
    #[arg(long, value_enum, default_value_t = IfRunning::Queue)]
    if_running: IfRunning,
    #[command(flatten)]
    remote: Remote,
}

/// Flags of `airlock jobs`.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// Only jobs of this connection (slug or id).
    #[arg(long)]
    connection: Option<String>,
    /// Only jobs in this state.
    #[arg(long, value_parser = ["queued", "starting", "pending", "running", "succeeded", "failed", "cancelled"])]
    state: Option<String>,
    /// How many jobs (1 to 200).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=200))]
    limit: u16,
    #[command(flatten)]
    remote: Remote,
}

/// Flags of `airlock job`, `cancel` and `retry`.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// The job's id.
    id: String,
    #[command(flatten)]
    remote: Remote,
}

/// Exit code of usage, network and HTTP errors.
const EXIT_ERROR: u8 = 2;

/// Runs a client command; prints any error and maps it to exit code 2.
pub(super) async fn run(command: ClientCommand) -> anyhow::Result<ExitCode> {
    let outcome = match command {
        ClientCommand::Connections(args) => connections(&args).await,
        ClientCommand::Sync(args) => sync(&args).await,
        ClientCommand::Jobs(args) => jobs(&args).await,
        ClientCommand::Job(args) => job(&args).await,
        ClientCommand::Cancel(args) => cancel(&args).await,
        ClientCommand::Retry(args) => retry(&args).await,
    };
    Ok(outcome.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::from(EXIT_ERROR)
    }))
}

/// An error answer of the API, as its problem+json body describes it.
#[derive(Debug)]
struct ApiProblem {
    status: StatusCode,
    title: String,
    code: String,
    detail: Option<String>,
    request_id: Option<String>,
}

impl std::fmt::Display for ApiProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (HTTP {}, {})",
            self.title,
            self.status.as_u16(),
            self.code
        )?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, "\n  request_id: {id}")?;
        }
        let hint = match self.status {
            StatusCode::UNAUTHORIZED => {
                Some("set AIRLOCK_TOKEN to a valid access token from your identity provider")
            }
            StatusCode::FORBIDDEN => Some(
                "your identity may not do this here; an administrator can look up the reason by request_id",
            ),
            _ => None,
        };
        if let Some(hint) = hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiProblem {}

/// Airlock over HTTP, with the caller's token.
struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    fn new(remote: &Remote) -> anyhow::Result<Self> {
        let base = Url::parse(&remote.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .with_context(|| format!("AIRLOCK_URL `{}` is not an http(s) URL", remote.url))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("airlock-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        let token = std::env::var("AIRLOCK_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(Self { http, base, token })
    }

    /// The URL of `segments` (each percent-encoded) under the base.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request and returns the JSON body of a 2xx answer; any other
    /// answer becomes an [`ApiProblem`].
    async fn call(&self, method: Method, url: Url) -> anyhow::Result<Value> {
        let response = self
            .request(method, url)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let response = check(response).await?;
        response
            .json()
            .await
            .context("Airlock's answer is not JSON")
    }

    fn unreachable(&self, error: reqwest::Error) -> anyhow::Error {
        let reason = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
            let mut last = error.to_string();
            while let Some(inner) = source {
                last = inner.to_string();
                source = inner.source();
            }
            last
        };
        anyhow::anyhow!("cannot reach Airlock at {}: {reason}", self.base)
    }
}

/// The response when it is a 2xx; its problem otherwise.
async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let header_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    Err(ApiProblem {
        status,
        title: text("title").unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("Unexpected answer")
                .to_owned()
        }),
        code: text("code").unwrap_or_else(|| "unknown".to_owned()),
        detail: text("detail"),
        request_id: text("request_id").or(header_id),
    }
    .into())
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A string field, or `-`.
fn field(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS`, or `-`.
fn when(value: &Value, key: &str) -> String {
    match value.get(key).and_then(Value::as_str) {
        Some(text) => {
            let seconds = text.get(..19).unwrap_or(text);
            seconds.replacen('T', " ", 1)
        }
        None => "-".to_owned(),
    }
}

/// Columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let _infallible = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn rows_of(list: &Value) -> &[Value] {
    list.get("data")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `airlock connections`.
async fn connections(args: &ConnectionsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let mut query = Vec::new();
    if let Some(workspace) = &args.workspace {
        query.push(("workspace", workspace.as_str()));
    }
    if let Some(tag) = &args.tag {
        query.push(("tag", tag.as_str()));
    }
    let list = client
        .call(Method::GET, client.url(&["v1", "connections"], &query))
        .await?;
    if args.remote.json {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = rows_of(&list)
        .iter()
        .map(|c| {
            let tags = c
                .get("tags")
                .and_then(Value::as_array)
                .map(|tags| {
                    tags.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                field(c, "slug"),
                field(c, "name"),
                field(c, "workspace_name"),
                field(c, "status"),
                tags,
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no connections you may see");
    } else {
        print!(
            "{}",
            table(&["SLUG", "NAME", "WORKSPACE", "STATUS", "TAGS"], &rows)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `airlock sync`.
async fn sync(args: &SyncArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let url = client.url(
        &["v1", "connections", &args.connection, "sync"],
        &[("if_running", args.if_running.as_str())],
    );
    let job = client.call(Method::POST, url).await?;
    let id = field(&job, "id");
    if !args.wait {
        if args.remote.json {
            print_json(&job);
        } else {
            println!(
                "job {id} {} for {}; follow it with `airlock job {id}`",
                field(&job, "state"),
                args.connection
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // State lines go to stderr with --json, so stdout stays one document.
    let json = args.remote.json;
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!("job {id} for {}", args.connection));
    let finished = follow(&client, &id, &say).await?;
    if json {
        print_json(&finished);
    } else {
        say(summary(&finished));
    }
    Ok(match finished.get("state").and_then(Value::as_str) {
        Some("succeeded") => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// One line on how a job ended.
fn summary(job: &Value) -> String {
    let state = field(job, "state");
    let mut line = format!("job {} {state}", field(job, "id"));
    if let Some(rows) = job.get("rows_synced").and_then(Value::as_i64) {
        let _infallible = write!(line, ": {rows} rows");
        if let Some(bytes) = job.get("bytes_synced").and_then(Value::as_i64) {
            let _infallible = write!(line, ", {bytes} bytes");
        }
    }
    if let Some(error) = job.get("error").and_then(Value::as_str)
        && state != "succeeded"
    {
        let _infallible = write!(line, " ({error})");
    }
    line
}

/// Follows a job through `GET /v1/jobs/{id}/events` until a terminal
/// state, printing each state; reconnects (from the last event seen) when
/// the stream drops, and polls when it cannot reconnect. Returns the job as
/// it ended.
async fn follow(client: &Client, id: &str, say: &dyn Fn(String)) -> anyhow::Result<Value> {
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
async fn stream_once(
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
                Some("succeeded" | "failed" | "cancelled")
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
async fn poll(client: &Client, id: &str, say: &dyn Fn(String)) -> anyhow::Result<Value> {
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
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// `HH:MM:SS  state  detail` for one event of the stream.
fn state_line(event: &Value) -> String {
    let at = event.get("at").and_then(Value::as_str).unwrap_or_default();
    let time = at
        .split_once('T')
        .map_or(at, |(_, t)| t.get(..8).unwrap_or(t));
    let state = field(event, "state");
    match event.get("detail").and_then(Value::as_str) {
        Some(detail) => format!("{time}  {state:<10} {detail}"),
        None => format!("{time}  {state}"),
    }
}

/// `airlock jobs`.
async fn jobs(args: &JobsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let limit = args.limit.to_string();
    let mut query = vec![("limit", limit.as_str())];
    if let Some(connection) = &args.connection {
        query.push(("connection", connection.as_str()));
    }
    if let Some(state) = &args.state {
        query.push(("state", state.as_str()));
    }
    let list = client
        .call(Method::GET, client.url(&["v1", "jobs"], &query))
        .await?;
    if args.remote.json {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    // Slugs read better than ids; without them (no permission, Airbyte
    // down), ids it is.
    let slugs: std::collections::HashMap<String, String> = client
        .call(Method::GET, client.url(&["v1", "connections"], &[]))
        .await
        .map(|list| {
            rows_of(&list)
                .iter()
                .map(|c| (field(c, "id"), field(c, "slug")))
                .collect()
        })
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = rows_of(&list)
        .iter()
        .map(|j| {
            let connection = field(j, "connection_id");
            vec![
                field(j, "id"),
                slugs.get(&connection).cloned().unwrap_or(connection),
                field(j, "type"),
                field(j, "state"),
                when(j, "created_at"),
                when(j, "finished_at"),
                field(j, "rows_synced"),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no jobs");
    } else {
        print!(
            "{}",
            table(
                &[
                    "ID",
                    "CONNECTION",
                    "TYPE",
                    "STATE",
                    "CREATED",
                    "FINISHED",
                    "ROWS"
                ],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A job as `key: value` lines.
fn describe(job: &Value) -> String {
    let attempts = format!(
        "{} of {}",
        field(job, "attempts"),
        field(job, "max_attempts")
    );
    let pairs = [
        ("id", field(job, "id")),
        ("connection", field(job, "connection_id")),
        ("workspace", field(job, "workspace_id")),
        ("type", field(job, "type")),
        ("state", field(job, "state")),
        ("airbyte job", field(job, "airbyte_job_id")),
        ("attempts", attempts),
        ("requested by", field(job, "requested_by")),
        ("created", when(job, "created_at")),
        ("updated", when(job, "updated_at")),
        ("finished", when(job, "finished_at")),
        ("rows", field(job, "rows_synced")),
        ("bytes", field(job, "bytes_synced")),
        ("duration", field(job, "duration")),
        ("retry of", field(job, "retry_of")),
        ("error", field(job, "error")),
    ];
    pairs
        .iter()
        .map(|(key, value)| format!("{key:<13}{value}\n"))
        .collect()
}

/// `airlock job ID`.
async fn job(args: &JobArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let job = client
        .call(Method::GET, client.url(&["v1", "jobs", &args.id], &[]))
        .await?;
    if args.remote.json {
        print_json(&job);
    } else {
        print!("{}", describe(&job));
    }
    Ok(ExitCode::SUCCESS)
}

/// `airlock cancel ID`.
async fn cancel(args: &JobArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let job = client
        .call(
            Method::POST,
            client.url(&["v1", "jobs", &args.id, "cancel"], &[]),
        )
        .await?;
    if args.remote.json {
        print_json(&job);
    } else {
        println!(
            "cancel requested: job {} is {}",
            field(&job, "id"),
            field(&job, "state")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `airlock retry ID`.
async fn retry(args: &JobArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let job = client
        .call(
            Method::POST,
            client.url(&["v1", "jobs", &args.id, "retry"], &[]),
        )
        .await?;
    if args.remote.json {
        print_json(&job);
    } else {
        let id = field(&job, "id");
        println!(
            "job {id} {} (retry of {}); follow it with `airlock job {id}`",
            field(&job, "state"),
            args.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
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
}
