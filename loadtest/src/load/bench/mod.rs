//! The benchmark driver (`loadtest bench`, wrapped by `scripts/bench.sh`).
//!
//! Starts its own `redis-server`, `mock-llm`s, gateways, workers and the bare echo on
//! 127.0.0.1, and measures each published figure as a ratio against a baseline taken
//! in the same run on the same machine: baseline and system alternate (A, B, A, B,
//! ...) and each side's value is the median of `--repeat` runs (at least 3). Every
//! load run is an in-process `loadtest` run whose command line is recorded, and whose
//! JSON and HTML reports are kept under `--out`.
//!
//! # Layout
//!
//! - `procs`: the processes and the free ports they use.
//! - `redis_bench`: `redis-benchmark` baselines and Redis command counts.
//! - `figures`: one function per figure (or group sharing runs); `figures::cost`
//!   holds CPU per answered message against the floor client (9-11),
//!   `figures::fanout` one session on many sockets (12), `figures::cluster` the
//!   store on a Redis Cluster against one Redis (13), `figures::workers` an
//!   answer's Redis commands with several workers against one (14).
//! - `markdown`: the results as Markdown, written into `BENCHMARKS.md` between
//!   markers so the hand-written parts (profiles, before/after) stay.

mod figures;
mod markdown;
mod procs;
mod redis_bench;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use procs::{Bins, Redis};

/// Benchmark settings.
#[derive(Debug, Clone, Args)]
pub struct BenchSettings {
    /// Directory of the release binaries (gateway, worker, mock-llm, echo-baseline).
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,

    /// Where reports, logs and results go.
    #[arg(long, default_value = "artifacts/bench")]
    pub out: PathBuf,

    /// Runs per side of every comparison (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,

    /// Seconds of each saturation or latency run (a warm-up second is added).
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,

    /// Idle sessions for the memory figure.
    #[arg(long, default_value_t = 20000)]
    pub idle_sessions: usize,

    /// Only these figures (comma-separated numbers, e.g. `1,6,8`).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<u32>,

    /// Replace the generated section of this Markdown file (between
    /// `<!-- bench:begin -->` and `<!-- bench:end -->`) with the results.
    #[arg(long)]
    pub write: Option<PathBuf>,

    /// The command that started the benchmark, for the record.
    #[arg(long, default_value = "bash scripts/bench.sh")]
    pub invoked_as: String,
}

impl BenchSettings {
    fn wants(&self, figure: u32) -> bool {
        self.only.is_empty() || self.only.contains(&figure)
    }
}

/// One figure's result.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub number: u32,
    pub name: String,
    /// The system's value (median), with its unit.
    pub system: String,
    /// The baseline's value (median), with its unit.
    pub baseline: String,
    /// The compared value: a ratio, or a difference for latency figures.
    pub result: String,
    pub target: String,
    pub met: Option<bool>,
    /// Every run's values, in order, and remarks.
    pub details: Vec<String>,
}

/// Everything a benchmark run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub date: String,
    pub machine: Vec<(String, String)>,
    pub invoked_as: String,
    pub authenticated: bool,
    pub figures: Vec<Figure>,
    /// One reproducing `loadtest` command per kind of run.
    pub commands: Vec<(String, String)>,
    pub setup: Vec<String>,
    pub elapsed_secs: f64,
}

/// Runs the benchmarks and writes the results.
pub async fn run(settings: BenchSettings) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let logs = settings.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let bins = Bins {
        dir: settings.bin_dir.clone(),
        logs: logs.clone(),
    };
    bins.check()?;
    let limit = procs::open_files_limit().unwrap_or(1024);
    let mut settings = settings;
    // Each side of the idle sockets is in its own process (this one holds the
    // clients, the gateway or echo the servers), all under the same limit.
    let needed = settings.idle_sessions as u64 + 1000;
    if limit < needed {
        let fit = limit.saturating_sub(1000) as usize;
        eprintln!(
            "bench: open-file limit {limit} is too low for {} idle sessions (raise `ulimit -n`); using {fit}",
            settings.idle_sessions
        );
        settings.idle_sessions = fit.max(100);
    }
    let redis = Redis::start(&logs)?;
    let mut bench = figures::Bench::new(bins, redis, settings.clone())?;
    let mut figures = Vec::new();
    if settings.wants(1) || settings.wants(2) || settings.wants(6) || settings.wants(8) {
        figures.extend(bench.saturation().await?);
    }
    if settings.wants(3) {
        figures.push(bench.first_chunk().await?);
    }
    if settings.wants(4) {
        figures.push(bench.idle_memory().await?);
    }
    if settings.wants(5) {
        figures.push(bench.accept().await?);
    }
    if settings.wants(7) {
        figures.push(bench.commands().await?);
    }
    if settings.wants(9) || settings.wants(10) || settings.wants(11) {
        figures.extend(bench.cost().await?);
    }
    if settings.wants(12) {
        figures.push(bench.fanout().await?);
    }
    if settings.wants(13) {
        figures.push(bench.cluster().await?);
    }
    if settings.wants(14) {
        figures.push(bench.workers().await?);
    }
    figures.sort_by_key(|f| f.number);
    figures.retain(|f| settings.wants(f.number));
    let results = Results {
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine: markdown::machine_facts(),
        invoked_as: settings.invoked_as.clone(),
        authenticated: bench.authenticated,
        figures,
        commands: bench.commands_used.clone(),
        setup: bench.setup_notes(),
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    let text = markdown::render(&results);
    println!("\n{text}");
    std::fs::write(
        settings.out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    std::fs::write(settings.out.join("results.md"), &text)?;
    if let Some(path) = &settings.write {
        markdown::write_section(path, &text)?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn medians() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(super::median(&[]).is_nan());
    }
}
