//! `loadtest`: the load generator (see `loadtest::load`) and, as `loadtest bench`,
//! the benchmark driver (see `loadtest::load::bench`).
//!
//! Prints the report table on stdout and logs on stderr. With `--strict` the exit
//! status is 1 unless every message completed and every contract check passed, which
//! is what the CI smoke run relies on.

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadtest::load::bench::BenchSettings;
use loadtest::load::{self, RunSettings};
use tracing_subscriber::EnvFilter;

/// Load generator for the chat gateway: sessions, messages, contract checks, reports.
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunSettings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Starts Redis, mock-llm, gateways, workers and the baselines on loopback,
    /// measures every published figure as a ratio against its baseline, and writes
    /// the results.
    Bench(BenchSettings),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Bench(settings)) => load::bench::run(settings).await,
        None => {
            let strict = cli.run.strict;
            let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
            let report = load::run(cli.run, format!("loadtest {command}"))
                .await
                .context("load run")?;
            if strict && !report.checks.clean {
                eprintln!("loadtest: --strict: the run is not clean (see the checks line)");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
