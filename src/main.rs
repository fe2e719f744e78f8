//! `stagepact`: serves the API (with a private PostgreSQL cluster when no
//! `DATABASE_URL` is given), migrates, mints tokens for trying the API,
//! rebuilds projections, and regenerates the committed OpenAPI and event schemas.

mod cli;
mod database;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli::init_tracing(&cli.settings);
    cli.run().await
}
