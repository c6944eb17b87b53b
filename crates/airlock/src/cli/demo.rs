//! `airlock demo`: the whole stack on embedded defaults, for a newcomer.
//!
//! It runs, in one process: a simulated Airbyte (with its scheduler on, so
//! jobs appear by themselves), a development identity provider issuing real
//! signed tokens, and Airlock itself on SQLite in a temporary folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use airbyte_sim::SimConfig;
use anyhow::Context;
use axum::Router;

use crate::app::{App, Extras};
use crate::config::Config;
use crate::devidp::{self, DevIdp};
use airlock_domain::identity::{KeySource, StaticKeySource};
use airlock_domain::policy;

/// Flags of `airlock demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Keep the demo's database in this folder (a temporary one otherwise).
    #[arg(long)]
    data: Option<PathBuf>,
}

/// The demo's configuration: one grant per built-in role, matched on the
/// `roles` claim the demo provider puts in its tokens; resets wait for a
/// second person (`[approvals]`), as the docs recommend.
fn demo_config(
    data: &std::path::Path,
    airbyte_url: &str,
    client_id: &str,
    client_secret: &str,
) -> anyhow::Result<Config> {
    let mut text = format!(
        "[storage]\nurl = \"sqlite://{}\"\n\n[airbyte]\nurl = \"{airbyte_url}\"\nclient_id = \"{client_id}\"\nclient_secret = \"{client_secret}\"\n\n[jobs]\npoll_interval_secs = 2\n\n[connections]\nrefresh_secs = 10\n\n[approvals]\nrequire = [\"jobs:reset\"]\n",
        data.join("airlock.db").display()
    );
    for role in policy::BUILTIN_ROLES {
        text.push_str(&format!(
            "\n[[grants]]\nrole = \"{role}\"\nmatch = {{ claim = \"roles\", value = \"{role}\" }}\n"
        ));
    }
    Config::from_toml("demo", &text, &[]).context("the demo configuration is invalid")
}

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (data, _temp) = match args.data {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            (dir, None)
        }
        None => {
            let dir = std::env::temp_dir()
                .join(format!("airlock-demo-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir)?;
            (dir.clone(), Some(TempDir(dir)))
        }
    };
    let sim = airbyte_sim::spawn(SimConfig {
        scheduler: true,
        ..SimConfig::default()
    })
    .await
    .context("cannot start the Airbyte simulator")?;
    let (sim_id, sim_secret) = sim.sim.credentials();

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let idp = DevIdp::new(&base)?;
    let config = demo_config(&data, &sim.base_url(), &sim_id, &sim_secret)?;
    let source: Arc<dyn KeySource> = Arc::new(StaticKeySource::new(idp.key_set()));
    let extras = Extras {
        issuers: vec![(idp.issuer_config(), source)],
        routes: Some(Router::new().nest(devidp::MOUNT, idp.router())),
        ..Extras::default()
    };
    let app = App::build(config, extras).await?;
    println!("{}", banner(&base, idp.issuer(), &data));
    app.run(listener, crate::shutdown_signal()).await?;
    sim.shutdown().await;
    eprintln!("demo stopped");
    Ok(ExitCode::SUCCESS)
}

/// What the demo prints at start: where it is, how to get a token for each
/// role, and three calls to try.
fn banner(base: &str, issuer: &str, data: &std::path::Path) -> String {
    let roles: Vec<String> = devidp::CLIENTS
        .iter()
        .map(|(client, _)| {
            format!(
                "  {client:<8} TOKEN=$(curl -s {issuer}/token -d grant_type=client_credentials -d client_id={client} -d client_secret={} | jq -r .access_token)",
                devidp::secret_of(client)
            )
        })
        .collect();
    let people: Vec<String> = devidp::USERS
        .iter()
        .map(|(_, role, name)| format!("{name} ({role})"))
        .collect();
    format!(
        "Airlock demo: {base}   (simulated Airbyte, demo identity provider, data in {})\n\
         \n\
         Console: {base}/console   (sign in as {})\n\
         \n\
         Get a token (pick a role):\n{}\n\
         \n\
         Then:\n  \
         curl -s {base}/v1/whoami -H \"authorization: Bearer $TOKEN\" | jq\n  \
         curl -s {base}/v1/connections -H \"authorization: Bearer $TOKEN\" | jq '.data[] | {{slug, name, workspace_name}}'\n  \
         curl -s -X POST '{base}/v1/connections/jira-bigquery/sync?wait=120s' -H \"authorization: Bearer $TOKEN\" | jq\n\
         \n\
         Resets wait for a second person: an editor's reset is awaiting_approval until the approver\n\
         (or an admin) approves it at {base}/console#/approvals or with `airlock approve ID`.\n\
         \n\
         AI agents: MCP at {base}/mcp with the agent's token (or `airlock mcp` with AIRLOCK_URL and AIRLOCK_TOKEN).\n\
         Ctrl-C stops it.",
        data.display(),
        people.join(", "),
        roles.join("\n")
    )
}

/// A folder removed when the demo ends.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ignored = std::fs::remove_dir_all(&self.0);
    }
}
