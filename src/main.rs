//! `stagepact`: serves the API (with a private PostgreSQL cluster when no
//! `DATABASE_URL` is given), migrates, mints tokens for trying the API,
//! rebuilds projections, and regenerates the committed OpenAPI and event schemas.

mod cli;
mod database;

use clap::Parser;

/// mimalloc instead of the C library's allocator. A request allocates and
/// frees many small objects on one thread and hands buffers to another;
/// glibc's malloc spent about a quarter of the server's CPU on that in the
/// soak, a good part of it consolidating freed chunks (BENCHMARKS.md, "Soak",
/// runs W to Z).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli::init_tracing(&cli.settings);
    cli.run().await
}
