//! Client commands for humans: `connections`, `sync`, `reset`, `jobs`,
//! `job`, `cancel`, `retry`, and the four-eyes `approvals`, `approve`,
//! `deny`, talking to a running Airlock over HTTP.
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

mod approvals;
mod follow;
mod http;
mod render;

use self::approvals::*;
use self::follow::*;
use self::http::*;
use self::render::*;

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
    /// Reset (clear) a connection's data; where resets wait for a second
    /// person, the job awaits approval (--wait waits through it and says
    /// so): exit 0 when it succeeded, 1 when it failed, was denied or expired.
    Reset(SyncArgs),
    /// List jobs, newest first.
    Jobs(JobsArgs),
    /// Show one job.
    Job(JobArgs),
    /// Cancel a job.
    Cancel(JobArgs),
    /// Retry a failed or cancelled job (a new job, linked to it).
    Retry(JobArgs),
    /// List the approval requests you made or may decide (pending ones by
    /// default).
    Approvals(ApprovalsArgs),
    /// Approve someone else's request (never your own).
    Approve(ApproveArgs),
    /// Deny a request, with a reason.
    Deny(DenyArgs),
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
    /// Why (a reset that waits for approval shows it to the approvers).
    #[arg(long)]
    reason: Option<String>,
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
    #[arg(long, value_parser = [
        "awaiting_approval", "queued", "starting", "pending", "running", "succeeded", "failed",
        "cancelled", "rejected", "expired",
    ])]
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
        ClientCommand::Sync(args) => trigger(&args, "sync").await,
        ClientCommand::Reset(args) => trigger(&args, "reset").await,
        ClientCommand::Jobs(args) => jobs(&args).await,
        ClientCommand::Job(args) => job(&args).await,
        ClientCommand::Cancel(args) => cancel(&args).await,
        ClientCommand::Retry(args) => retry(&args).await,
        ClientCommand::Approvals(args) => approvals(&args).await,
        ClientCommand::Approve(args) => approve(&args).await,
        ClientCommand::Deny(args) => deny(&args).await,
    };
    Ok(outcome.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::from(EXIT_ERROR)
    }))
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
    print_table(
        &["SLUG", "NAME", "WORKSPACE", "STATUS", "TAGS"],
        &rows,
        "no connections you may see",
    );
    Ok(ExitCode::SUCCESS)
}

/// `airlock sync` and `airlock reset` (`kind`).
async fn trigger(args: &SyncArgs, kind: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let mut query = vec![("if_running", args.if_running.as_str())];
    if let Some(reason) = &args.reason {
        query.push(("reason", reason.as_str()));
    }
    let url = client.url(&["v1", "connections", &args.connection, kind], &query);
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
            if let Some(line) = awaiting_line(&job) {
                println!("{line}");
            }
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
    if let Some(line) = awaiting_line(&job) {
        say(line);
    }
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
    print_table(
        &[
            "ID",
            "CONNECTION",
            "TYPE",
            "STATE",
            "CREATED",
            "FINISHED",
            "ROWS",
        ],
        &rows,
        "no jobs",
    );
    Ok(ExitCode::SUCCESS)
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
mod tests;
