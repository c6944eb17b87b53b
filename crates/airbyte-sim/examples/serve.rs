//! Runs the simulator on a fixed port until Ctrl-C:
//! `cargo run -p airbyte-sim --example serve -- 127.0.0.1:8000 [config.toml]`.

use std::path::Path;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let config = match args.next() {
        Some(path) => airbyte_sim::SimConfig::from_file(Path::new(&path))?,
        None => airbyte_sim::SimConfig::default(),
    };
    let sim = airbyte_sim::Sim::new(config)?;
    let (id, secret) = sim.credentials();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("Airbyte simulator on http://{addr}/api/public/v1 (client {id} / {secret})");
    sim.serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
