//! The four-eyes commands: `approvals` (the requests you made or may
//! decide), `approve ID` and `deny ID --reason`, and the line a reset that
//! waits for approval prints.

use super::*;

/// Flags of `airlock approvals`.
#[derive(Debug, clap::Args)]
pub struct ApprovalsArgs {
    /// Only requests in this state.
    #[arg(long, default_value = "pending", value_parser = [
        "pending", "approved", "used", "denied", "expired", "withdrawn", "all",
    ])]
    state: String,
    /// How many requests (1 to 200).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=200))]
    limit: u16,
    #[command(flatten)]
    remote: Remote,
}

/// Flags of `airlock approve`.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The request's id.
    id: String,
    /// Why (optional; kept with the decision).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// Flags of `airlock deny`.
#[derive(Debug, clap::Args)]
pub struct DenyArgs {
    /// The request's id.
    id: String,
    /// Why (required).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    remote: Remote,
}

/// What a job awaiting approval prints: which request, and how to approve.
pub(super) fn awaiting_line(job: &Value) -> Option<String> {
    if job.get("state").and_then(Value::as_str) != Some("awaiting_approval") {
        return None;
    }
    let approval = job
        .get("approval")
        .map_or_else(String::new, |a| field(a, "id"));
    Some(format!(
        "waiting for approval {approval}: another person with approvals:decide runs `airlock approve {approval}`"
    ))
}

/// `airlock approvals`.
pub(super) async fn approvals(args: &ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let limit = args.limit.to_string();
    let mut query = vec![("limit", limit.as_str())];
    if args.state != "all" {
        query.push(("state", args.state.as_str()));
    }
    let list = client
        .call(Method::GET, client.url(&["v1", "approvals"], &query))
        .await?;
    if args.remote.json {
        print_json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = rows_of(&list)
        .iter()
        .map(|a| {
            let connection = a
                .get("connection")
                .and_then(Value::as_str)
                .map_or_else(|| field(a, "connection_id"), str::to_owned);
            let requester = a
                .get("requester")
                .map_or_else(String::new, |r| field(r, "subject"));
            vec![
                field(a, "id"),
                field(a, "state"),
                field(a, "type"),
                connection,
                requester,
                when(a, "requested_at"),
                field(a, "reason"),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "STATE",
            "ACTION",
            "CONNECTION",
            "REQUESTER",
            "REQUESTED",
            "REASON",
        ],
        &rows,
        "no approval requests",
    );
    Ok(ExitCode::SUCCESS)
}

/// `airlock approve ID`.
pub(super) async fn approve(args: &ApproveArgs) -> anyhow::Result<ExitCode> {
    decide(&args.remote, &args.id, "approve", args.reason.as_deref()).await
}

/// `airlock deny ID --reason ...`.
pub(super) async fn deny(args: &DenyArgs) -> anyhow::Result<ExitCode> {
    decide(&args.remote, &args.id, "deny", Some(&args.reason)).await
}

async fn decide(
    remote: &Remote,
    id: &str,
    verdict: &str,
    reason: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(remote)?;
    let body = serde_json::json!({ "reason": reason });
    let approval = client
        .call_with(
            Method::POST,
            client.url(&["v1", "approvals", id, verdict], &[]),
            &body,
        )
        .await?;
    if remote.json {
        print_json(&approval);
        return Ok(ExitCode::SUCCESS);
    }
    let state = field(&approval, "state");
    let mut line = format!("approval {} is {state}", field(&approval, "id"));
    let job = field(&approval, "job_id");
    if job != "-" {
        let _infallible = match state.as_str() {
            "used" => write!(line, "; job {job} is queued"),
            "denied" => write!(line, "; job {job} is rejected"),
            _ => write!(line, "; job {job}"),
        };
    } else if state == "approved" {
        let _infallible = write!(
            line,
            "; the requester's next matching reset (through any door) uses it, until {}",
            when(&approval, "grant_expires_at")
        );
    }
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
