//! The Redis-only baselines: `redis-benchmark` with one connection per client and no
//! pipelining (`-P 1 -c 50`), as the figures name them, plus the command counts of
//! `INFO commandstats` and `MONITOR` for the commands-per-message figure.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::procs::{Proc, Redis};

/// A chunk-sized payload for `PUBLISH`.
pub fn chunk_payload() -> String {
    crate::load::echo::frame(160)
}

/// Requests per second of `redis-benchmark -P 1 -c 50 -n N <command...>`.
pub fn redis_benchmark(redis: &Redis, requests: u64, command: &[&str]) -> anyhow::Result<f64> {
    let output = Command::new("redis-benchmark")
        .args(["-p", &redis.port.to_string(), "-P", "1", "-c", "50", "-n"])
        .arg(requests.to_string())
        .arg("--csv")
        .args(command)
        .output()
        .context("running redis-benchmark")?;
    anyhow::ensure!(output.status.success(), "redis-benchmark failed");
    parse_csv_rps(&String::from_utf8_lossy(&output.stdout))
}

/// The `rps` column of redis-benchmark's last CSV line.
fn parse_csv_rps(csv: &str) -> anyhow::Result<f64> {
    let line = csv
        .lines()
        .rfind(|l| !l.starts_with("\"test\"") && !l.trim().is_empty())
        .context("no result line")?;
    let fields: Vec<&str> = line.rsplitn(8, "\",\"").collect();
    // rsplitn walks from the end: rps is the 7th field from the right.
    let Some(rps) = fields.get(6) else {
        bail!("unreadable redis-benchmark line {line:?}")
    };
    rps.trim_matches('"')
        .parse()
        .with_context(|| format!("unreadable rps in {line:?}"))
}

/// `PUBLISH` rate with one subscriber on the channel, as figure 1's baseline.
pub fn publish_rate(redis: &Redis, requests: u64, logs: &Path) -> anyhow::Result<f64> {
    let mut command = Command::new("redis-cli");
    command.args(["-p", &redis.port.to_string(), "SUBSCRIBE", "bench:publish"]);
    let subscriber = Proc::spawn("subscriber", command, &logs.join("subscriber.log"), false)?;
    std::thread::sleep(Duration::from_millis(200));
    let payload = chunk_payload();
    let rate = redis_benchmark(redis, requests, &["PUBLISH", "bench:publish", &payload]);
    drop(subscriber);
    rate
}

/// `XADD` rate, as figure 5's baseline.
pub fn xadd_rate(redis: &Redis, requests: u64) -> anyhow::Result<f64> {
    let rate = redis_benchmark(
        redis,
        requests,
        &[
            "XADD",
            "bench:stream",
            "MAXLEN",
            "~",
            "100000",
            "*",
            "f",
            "v",
        ],
    );
    redis.cli(&["DEL", "bench:stream"])?;
    rate
}

/// Counts every command Redis ran between [`CommandCount::start`] and
/// [`CommandCount::stop`]: `INFO commandstats` (which includes the commands scripts
/// run) and a `MONITOR` transcript (which tells client commands from script ones).
pub struct CommandCount {
    port: u16,
    monitor: Option<std::process::Child>,
    transcript: std::path::PathBuf,
}

/// What a [`CommandCount`] saw.
#[derive(Debug, Clone, Default)]
pub struct Commands {
    /// Every command, scripts' inner commands included (`INFO commandstats`).
    pub all: u64,
    /// Commands sent by clients (each `EVALSHA` once), from `MONITOR`.
    pub client: u64,
    /// Commands run inside scripts, from `MONITOR`.
    pub scripted: u64,
    /// Client commands by name.
    pub client_by_name: BTreeMap<String, u64>,
}

impl CommandCount {
    /// Resets the stats and starts the transcript.
    pub fn start(port: u16, transcript: &Path) -> anyhow::Result<Self> {
        let cli = |args: &[&str]| {
            Command::new("redis-cli")
                .args(["-p", &port.to_string()])
                .args(args)
                .output()
        };
        cli(&["CONFIG", "RESETSTAT"])?;
        let file = std::fs::File::create(transcript)?;
        let monitor = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "MONITOR"])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-cli MONITOR")?;
        std::thread::sleep(Duration::from_millis(150));
        Ok(Self {
            port,
            monitor: Some(monitor),
            transcript: transcript.to_owned(),
        })
    }

    /// Stops the transcript and reads the counts.
    pub fn stop(mut self) -> anyhow::Result<Commands> {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(mut monitor) = self.monitor.take() {
            let _ = monitor.kill();
            let _ = monitor.wait();
        }
        let stats = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "INFO", "commandstats"])
            .output()?;
        let transcript = std::fs::read_to_string(&self.transcript)?;
        let mut commands = count_transcript(&transcript);
        commands.all = sum_commandstats(&String::from_utf8_lossy(&stats.stdout));
        Ok(commands)
    }
}

impl Drop for CommandCount {
    fn drop(&mut self) {
        if let Some(mut monitor) = self.monitor.take() {
            let _ = monitor.kill();
            let _ = monitor.wait();
        }
    }
}

/// Sum of `calls=` over `INFO commandstats`, leaving out the measurement's own
/// commands (`CONFIG RESETSTAT`, `MONITOR`, `INFO`).
pub(super) fn sum_commandstats(info: &str) -> u64 {
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, fields) = rest.split_once(':')?;
            if matches!(name, "config|resetstat" | "monitor" | "info") {
                return None;
            }
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?;
            calls.parse::<u64>().ok()
        })
        .sum()
}

/// `calls=` of one command in `INFO commandstats` (0 when it was not run).
pub(super) fn commandstat_calls(info: &str, command: &str) -> u64 {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            (name == command).then_some(fields)?;
            fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Client and script commands of a `MONITOR` transcript
/// (`1700000000.123 [0 127.0.0.1:5000] "EVALSHA" ...`, `[0 lua]` for scripts).
fn count_transcript(transcript: &str) -> Commands {
    let mut commands = Commands::default();
    for line in transcript.lines() {
        let Some(start) = line.find(" [") else {
            continue;
        };
        let Some(end) = line[start..].find("] ") else {
            continue;
        };
        let source = &line[start + 2..start + end];
        let name = line[start + end + 2..]
            .split('"')
            .nth(1)
            .unwrap_or("")
            .to_ascii_uppercase();
        if source.ends_with(" lua") {
            commands.scripted += 1;
        } else {
            commands.client += 1;
            *commands.client_by_name.entry(name).or_default() += 1;
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rps_is_read() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"PUBLISH bench:chan x,y\",\"102459.02\",\"0.278\",\"0.048\",\"0.239\",\"0.543\",\"0.719\",\"3.583\"\n";
        assert_eq!(parse_csv_rps(csv).unwrap(), 102459.02);
        assert!(parse_csv_rps("").is_err());
    }

    #[test]
    fn commandstats_are_summed_without_the_measurement() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5\r\ncmdstat_hget:calls=20,usec=1\r\ncmdstat_config|resetstat:calls=1,usec=1\r\ncmdstat_info:calls=3,usec=1\r\n";
        assert_eq!(sum_commandstats(info), 30);
        assert_eq!(commandstat_calls(info, "hget"), 20);
        assert_eq!(commandstat_calls(info, "xreadgroup"), 0);
    }

    #[test]
    fn transcripts_tell_clients_from_scripts() {
        let transcript = "OK\n1700000000.1 [0 127.0.0.1:5000] \"evalsha\" \"abc\" \"2\"\n1700000000.2 [0 lua] \"HGET\" \"k\" \"f\"\n1700000000.3 [0 unix:/tmp/s] \"XREADGROUP\" \"GROUP\"\n";
        let c = count_transcript(transcript);
        assert_eq!(c.client, 2);
        assert_eq!(c.scripted, 1);
        assert_eq!(c.client_by_name["EVALSHA"], 1);
        assert_eq!(c.client_by_name["XREADGROUP"], 1);
    }
}
