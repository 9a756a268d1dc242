//! The figures. Each function starts what it needs, alternates baseline and system
//! runs `--repeat` times and returns the figure(s) with medians and every run's value.

mod cluster;
mod cost;
mod fanout;
mod workers;

use std::sync::{Arc, Mutex};

use super::procs::{Bins, Proc, Redis};
use super::redis_bench::{CommandCount, Commands, publish_rate, xadd_rate};
use super::{BenchSettings, Figure, median};
use crate::load::report::Report;
use crate::load::{Hooks, RunSettings, run_with};

/// Secret of the benchmark's HS256 tokens (loopback only, never a real key).
const JWT_SECRET: &str = "bench-only-secret-0123456789abcdef";
/// Tokens per answer of the main mock (the K of figure 7).
const TOKENS: usize = 100;
/// Warm-up seconds before each measured window.
const WARMUP: f64 = 1.0;

/// Figure 3's send period: 1 s of thinking + an answer of about 250 ms; the first
/// sends are spread over it.
const TTFC_PERIOD_MS: u64 = 1250;

/// Requests per `redis-benchmark` run.
const REDIS_REQUESTS: u64 = 200_000;

/// Which worker a figure's stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worker {
    /// None: the figure only accepts messages, or holds idle sockets.
    Off,
    /// The worker as shipped (`WORKER_THREADS` unset: one runtime thread).
    Default,
    /// One runtime thread per core (`WORKER_THREADS`): the figures where one worker
    /// takes a saturating load alone, the reason `WORKER_CONCURRENCY` is raised too.
    PerCore,
    /// This many workers as shipped, all reading the same inbox (figure 14).
    Several(usize),
}

/// A gateway (and maybe a worker) on their own key prefix.
struct Stack {
    gateway: Proc,
    worker: Option<Proc>,
    /// The workers after the first, with `Worker::Several`.
    more_workers: Vec<Proc>,
    url: String,
    prefix: String,
}

/// The benchmark's shared state.
pub struct Bench {
    bins: Bins,
    redis: Redis,
    settings: BenchSettings,
    /// 100-token answers, no delay unless a message asks (`[mock:slow=..]`).
    mock_long: (Proc, String),
    /// 20-token answers, for time-to-first-chunk.
    mock_short: (Proc, String),
    pub authenticated: bool,
    pub commands_used: Vec<(String, String)>,
    stacks: u32,
}

impl Bench {
    pub fn new(bins: Bins, redis: Redis, settings: BenchSettings) -> anyhow::Result<Self> {
        let mock_long = bins.mock("mock-long", &["--tokens", &TOKENS.to_string()])?;
        let mock_short = bins.mock("mock-short", &["--tokens", "20"])?;
        let authenticated = bins.gateway_has_auth();
        Ok(Self {
            bins,
            redis,
            settings,
            mock_long,
            mock_short,
            authenticated,
            commands_used: Vec::new(),
            stacks: 0,
        })
    }

    /// How the processes were configured, for the record.
    pub fn setup_notes(&self) -> Vec<String> {
        vec![
            format!(
                "Redis {}: `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no`, started by the benchmark.",
                redis_version()
            ),
            format!(
                "`mock-llm --tokens {TOKENS}` (figures 1, 2, 5-8) and `mock-llm --tokens 20` (figure 3), no delays unless a message asks (`[mock:first=..]`, `[mock:slow=..]`)."
            ),
            format!(
                "Gateway and worker: release builds, one of each per figure on its own `KEY_PREFIX`, `RUN_WORKER=false`, `RUST_LOG=warn`, `WS_MESSAGES_PER_MINUTE=WS_MESSAGE_BURST=WS_FRAMES_PER_MINUTE=WS_FRAME_BURST=1000000`, `MAX_PENDING_MESSAGES=100000`, `WORKER_CONCURRENCY=4096` (one worker takes each figure's whole load) and, where that load saturates it (figures 1, 2, 6, 8, 12, 13), `WORKER_THREADS` = the cores (elsewhere the default, one thread), per-address and per-user limits off (`RATE_LIMIT_PER_MINUTE=CREATE_SESSION_PER_MINUTE=MESSAGES_PER_MINUTE_PER_USER=MESSAGES_PER_MINUTE_PER_ADDRESS=MAX_SOCKETS_PER_USER=MAX_SESSIONS_PER_USER=0`, `MAX_CONNECTIONS=100000`), `AUTO_CREATE_SESSIONS=true` (the simple client's socket names its own session){}.",
                if self.authenticated {
                    ", `JWT_SECRET` set (every session authenticated with its own HS256 token)"
                } else {
                    "; no authentication (this gateway build has no `JWT_SECRET`)"
                }
            ),
            "The echo baseline: `echo-baseline --buffer-bytes 4096` (axum WebSocket echo, 4 KiB buffers, TCP_NODELAY like the gateway).".to_owned(),
        ]
    }

    fn stack(
        &mut self,
        tag: &str,
        worker: Worker,
        coalesce_ms: u64,
        mock_url: &str,
    ) -> anyhow::Result<Stack> {
        let redis_url = self.redis.url();
        self.stack_on(&redis_url, tag, worker, coalesce_ms, mock_url)
    }

    /// One gateway in embedded mode (no `REDIS_URL`: in-memory store and bus, its own
    /// worker in the process), on the figures' other settings.
    fn embedded_stack(
        &mut self,
        tag: &str,
        coalesce_ms: u64,
        mock_url: &str,
    ) -> anyhow::Result<Stack> {
        self.stack_on("", tag, Worker::Off, coalesce_ms, mock_url)
    }

    /// A stack whose store is the Redis at `redis_url` (figure 13's cluster); none
    /// (`""`) is embedded mode.
    fn stack_on(
        &mut self,
        redis_url: &str,
        tag: &str,
        worker: Worker,
        coalesce_ms: u64,
        mock_url: &str,
    ) -> anyhow::Result<Stack> {
        self.stacks += 1;
        let prefix = format!("bench{}", self.stacks);
        let mut env: Vec<(String, String)> = [
            ("RUST_LOG", "warn".to_owned()),
            ("REDIS_URL", redis_url.to_owned()),
            ("KEY_PREFIX", prefix.clone()),
            ("OPENAI_BASE_URL", format!("{mock_url}/v1")),
            ("LLM_MODEL", "mock-model".to_owned()),
            ("RUN_WORKER", "false".to_owned()),
            ("WS_MESSAGES_PER_MINUTE", "1000000".to_owned()),
            ("WS_MESSAGE_BURST", "1000000".to_owned()),
            // Figure 5 writes 400 frames back to back on each socket.
            ("WS_FRAMES_PER_MINUTE", "1000000".to_owned()),
            ("WS_FRAME_BURST", "1000000".to_owned()),
            ("MAX_PENDING_MESSAGES", "100000".to_owned()),
            ("WORKER_CONCURRENCY", "4096".to_owned()),
            // Every session comes from one address (and, unauthenticated, one user).
            ("RATE_LIMIT_PER_MINUTE", "0".to_owned()),
            ("CREATE_SESSION_PER_MINUTE", "0".to_owned()),
            ("MAX_SOCKETS_PER_USER", "0".to_owned()),
            ("MESSAGES_PER_MINUTE_PER_USER", "0".to_owned()),
            ("MESSAGES_PER_MINUTE_PER_ADDRESS", "0".to_owned()),
            ("MAX_SESSIONS_PER_USER", "0".to_owned()),
            ("MAX_CONNECTIONS", "100000".to_owned()),
            ("CHUNK_COALESCE_MS", coalesce_ms.to_string()),
            // The simple client opens a socket on an id of its own (figure 9).
            ("AUTO_CREATE_SESSIONS", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if redis_url.is_empty() {
            env.retain(|(k, _)| k != "REDIS_URL" && k != "RUN_WORKER" && k != "KEY_PREFIX");
        }
        if self.authenticated {
            env.push(("JWT_SECRET".into(), JWT_SECRET.into()));
        }
        let (gateway, url) = self.bins.gateway(&format!("gateway-{tag}"), &env)?;
        let worker_kind = worker;
        let worker = match worker_kind {
            Worker::Off => None,
            Worker::Default => Some(self.bins.worker(&format!("worker-{tag}"), &env)?),
            Worker::PerCore => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                env.push(("WORKER_THREADS".into(), cores.to_string()));
                Some(self.bins.worker(&format!("worker-{tag}"), &env)?)
            }
            Worker::Several(_) => Some(self.bins.worker(&format!("worker-{tag}"), &env)?),
        };
        let mut more_workers = Vec::new();
        if let Worker::Several(n) = worker_kind {
            for i in 2..=n {
                more_workers.push(self.bins.worker(&format!("worker-{tag}-{i}"), &env)?);
            }
        }
        Ok(Stack {
            gateway,
            worker,
            more_workers,
            url,
            prefix,
        })
    }

    /// Hooks that clear Redis's `INFO commandstats` when the load starts, and the flag
    /// they set when that worked: counts read after the run are then the run's own.
    fn commandstats_reset(&self) -> (Hooks, Arc<Mutex<bool>>) {
        let reset = Arc::new(Mutex::new(false));
        let hooks = Hooks {
            on_start: Some(Box::new({
                let (port, reset) = (self.redis.port, reset.clone());
                move || {
                    let ok = std::process::Command::new("redis-cli")
                        .args(["-p", &port.to_string(), "CONFIG", "RESETSTAT"])
                        .output()
                        .is_ok_and(|o| o.status.success());
                    *reset.lock().unwrap_or_else(|e| e.into_inner()) = ok;
                }
            })),
            on_window_end: None,
        };
        (hooks, reset)
    }

    /// `INFO commandstats` after a run started with [`Self::commandstats_reset`], when
    /// its reset worked (every message has finished when `load` returns, so all their
    /// commands are in).
    fn commandstats_after(&self, reset: &Mutex<bool>) -> anyhow::Result<Option<String>> {
        if *reset.lock().unwrap_or_else(|e| e.into_inner()) {
            Ok(Some(self.redis.cli(&["INFO", "commandstats"])?))
        } else {
            Ok(None)
        }
    }

    fn auth_args(&self) -> Vec<String> {
        if self.authenticated {
            vec!["--jwt-secret".into(), JWT_SECRET.into()]
        } else {
            Vec::new()
        }
    }

    /// One in-process `loadtest` run; `file` names its reports.
    async fn load(
        &mut self,
        label: &str,
        file: &str,
        mut args: Vec<String>,
        hooks: Hooks,
    ) -> anyhow::Result<Report> {
        let out = &self.settings.out;
        args.extend([
            "--no-progress".to_owned(),
            "--quiet".to_owned(),
            "--json".to_owned(),
            out.join(format!("{file}.json")).display().to_string(),
            "--html".to_owned(),
            out.join(format!("{file}.html")).display().to_string(),
        ]);
        let command = format!("loadtest {}", shell_words(&args));
        if !self.commands_used.iter().any(|(l, _)| l == label) {
            self.commands_used.push((label.to_owned(), command.clone()));
        }
        let settings = RunSettings::try_from_args(&args)?;
        let report = run_with(settings, command, hooks).await?;
        eprintln!(
            "bench: {file:<22} {:>10.1} chunks/s {:>9.1} msgs/s  first chunk p50 {:.3} ms p99 {:.3} ms  {}",
            report.window.chunks_per_sec,
            report.window.messages_per_sec,
            report.latency_ms.first_chunk.p50,
            report.latency_ms.first_chunk.p99,
            if report.checks.clean {
                "clean"
            } else {
                "NOT CLEAN"
            }
        );
        Ok(report)
    }

    fn repeat(&self) -> u32 {
        self.settings.repeat
    }

    fn seconds(&self) -> String {
        self.settings.seconds.to_string()
    }

    /// Figures 1, 2, 6 and 8: chunk delivery at saturation (100 and 1 000 sessions,
    /// coalescing off so every token is a chunk event), the bare echo at the same
    /// socket counts, and per-chunk latency at half the saturated load.
    pub async fn saturation(&mut self) -> anyhow::Result<Vec<Figure>> {
        let mock = self.mock_long.1.clone();
        let stack = self.stack("saturation", Worker::PerCore, 0, &mock)?;
        let (echo, echo_url) = self.bins.echo("echo-saturation")?;
        let gateway_pid = stack.gateway.pid();
        let worker_pid = stack.worker.as_ref().map_or(0, Proc::pid);
        let mut publish = Vec::new();
        let (mut s100, mut s1000, mut e100, mut e1000) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let wants8 = self.settings.wants(8);
        for rep in 0..self.repeat() {
            let redis = &self.redis;
            publish.push(publish_rate(redis, REDIS_REQUESTS, &self.bins.logs)?);
            eprintln!(
                "bench: redis PUBLISH            {:>10.1} /s",
                publish.last().copied().unwrap_or(0.0)
            );
            for sessions in [100usize, 1000] {
                if sessions == 1000 && !wants8 {
                    continue;
                }
                let echo_args = vec![
                    "--mode".into(),
                    "echo".into(),
                    "--url".into(),
                    echo_url.clone(),
                    "--sessions".into(),
                    sessions.to_string(),
                    "--messages".into(),
                    "0".into(),
                    "--window".into(),
                    "4".into(),
                    "--duration".into(),
                    self.seconds(),
                    "--warmup".into(),
                    WARMUP.to_string(),
                    "--pid".into(),
                    format!("echo={}", echo.pid()),
                ];
                let e = self
                    .load(
                        &format!("echo baseline, {sessions} sockets"),
                        &format!("echo{sessions}-{rep}"),
                        echo_args,
                        Hooks::default(),
                    )
                    .await?;
                let mut args = vec![
                    "--mode".into(),
                    "stream".into(),
                    "--url".into(),
                    stack.url.clone(),
                    "--sessions".into(),
                    sessions.to_string(),
                    "--messages".into(),
                    "0".into(),
                    "--duration".into(),
                    self.seconds(),
                    "--warmup".into(),
                    WARMUP.to_string(),
                    "--pid".into(),
                    format!("gateway={gateway_pid}"),
                    "--pid".into(),
                    format!("worker={worker_pid}"),
                    "--pid".into(),
                    format!("redis={}", self.redis.pid()),
                    "--pid".into(),
                    format!("mock={}", self.mock_long.0.pid()),
                ];
                args.extend(self.auth_args());
                let s = self
                    .load(
                        &format!("saturation, {sessions} sessions"),
                        &format!("stream{sessions}-{rep}"),
                        args,
                        Hooks::default(),
                    )
                    .await?;
                if sessions == 100 {
                    e100.push(e);
                    s100.push(s);
                } else {
                    e1000.push(e);
                    s1000.push(s);
                }
            }
        }
        let mut figures = Vec::new();
        let rate = |r: &Report| r.window.chunks_per_sec;
        let s100_rate = median(&s100.iter().map(rate).collect::<Vec<_>>());
        let base_rate = median(&publish);
        let dirty: Vec<String> = s100
            .iter()
            .chain(&s1000)
            .filter(|r| !r.checks.clean)
            .map(|r| {
                format!(
                    "NOT CLEAN: {} sessions: seq {:?}, errors {:?}",
                    r.sessions.requested, r.checks.seq, r.errors
                )
            })
            .collect();
        let ratio1 = s100_rate / base_rate;
        let mut details = vec![
            format!(
                "system runs (chunks/s): {}",
                list(&s100.iter().map(rate).collect::<Vec<_>>())
            ),
            format!("PUBLISH runs (/s): {}", list(&publish)),
            format!(
                "events lost / duplicated / reordered over all saturation runs: {} / {} / {}",
                s100.iter()
                    .chain(&s1000)
                    .map(|r| r.checks.seq.lost)
                    .sum::<u64>(),
                s100.iter()
                    .chain(&s1000)
                    .map(|r| r.checks.seq.duplicated)
                    .sum::<u64>(),
                s100.iter()
                    .chain(&s1000)
                    .map(|r| r.checks.seq.reordered)
                    .sum::<u64>()
            ),
            format!(
                "chunks per answer {:.1}; CPU in the window (ms per s, of 2 000 on this machine): gateway {:.0}, worker {:.0}, redis-server {:.0}, mock-llm {:.0}; the load generator takes the rest",
                median(
                    &s100
                        .iter()
                        .map(|r| r.chunks.per_message_mean)
                        .collect::<Vec<_>>()
                ),
                median(
                    &s100
                        .iter()
                        .map(|r| cpu_ms_per_sec(r, "gateway"))
                        .collect::<Vec<_>>()
                ),
                median(
                    &s100
                        .iter()
                        .map(|r| cpu_ms_per_sec(r, "worker"))
                        .collect::<Vec<_>>()
                ),
                median(
                    &s100
                        .iter()
                        .map(|r| cpu_ms_per_sec(r, "redis"))
                        .collect::<Vec<_>>()
                ),
                median(
                    &s100
                        .iter()
                        .map(|r| cpu_ms_per_sec(r, "mock"))
                        .collect::<Vec<_>>()
                ),
            ),
        ];
        details.extend(dirty.iter().cloned());
        figures.push(Figure {
            number: 1,
            name: "chunk events delivered per second at saturation (100 sessions, coalescing off)"
                .into(),
            system: format!("{s100_rate:.0} chunks/s"),
            baseline: format!("{base_rate:.0} PUBLISH/s"),
            result: format!("{ratio1:.3}"),
            target: "≥ 0.5 (stretch 1.0), none lost or reordered".into(),
            met: Some(ratio1 >= 0.5 && dirty.is_empty()),
            details,
        });

        let cpu_per = |r: &Report, name: &str| {
            r.processes
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.cpu_window_us)
                .map_or(f64::NAN, |cpu| cpu as f64 / r.window.chunks.max(1) as f64)
        };
        let gw_cpu: Vec<f64> = s100.iter().map(|r| cpu_per(r, "gateway")).collect();
        let echo_cpu: Vec<f64> = e100.iter().map(|r| cpu_per(r, "echo")).collect();
        let ratio6 = median(&gw_cpu) / median(&echo_cpu);
        figures.push(Figure {
            number: 6,
            name: "gateway CPU-µs per forwarded chunk (100 sessions at saturation)".into(),
            system: format!("{:.2} µs", median(&gw_cpu)),
            baseline: format!("{:.2} µs per echoed frame", median(&echo_cpu)),
            result: format!("{ratio6:.2}×"),
            target: "≤ 2×".into(),
            met: Some(ratio6 <= 2.0),
            details: vec![
                format!("gateway runs (µs/chunk): {}", list(&gw_cpu)),
                format!("echo runs (µs/frame): {} at {} frames/s", list(&echo_cpu), list(&e100.iter().map(rate).collect::<Vec<_>>())),
                "the gateway's count covers everything it did in the window (accepting the messages, subscribing, forwarding typing/complete/ready too) divided by chunk events only".into(),
            ],
        });

        if wants8 {
            let s_ratio = median(&s1000.iter().map(rate).collect::<Vec<_>>()) / s100_rate;
            let e_ratio = median(&e1000.iter().map(rate).collect::<Vec<_>>())
                / median(&e100.iter().map(rate).collect::<Vec<_>>());
            let result = s_ratio / e_ratio;
            figures.push(Figure {
                number: 8,
                name: "delivery rate at 1 000 sockets ÷ at 100 sockets".into(),
                system: format!("{s_ratio:.3}"),
                baseline: format!("{e_ratio:.3} (bare echo)"),
                result: format!("{result:.3} of the echo's"),
                target: "≥ 0.9 × the echo's".into(),
                met: Some(result >= 0.9),
                details: vec![
                    format!(
                        "system 1 000 sessions (chunks/s): {}",
                        list(&s1000.iter().map(rate).collect::<Vec<_>>())
                    ),
                    format!(
                        "echo 100 sockets (frames/s): {}",
                        list(&e100.iter().map(rate).collect::<Vec<_>>())
                    ),
                    format!(
                        "echo 1 000 sockets (frames/s): {}",
                        list(&e1000.iter().map(rate).collect::<Vec<_>>())
                    ),
                ],
            });
        }

        if self.settings.wants(2) {
            let per_message = median(
                &s100
                    .iter()
                    .map(|r| r.chunks.per_message_mean)
                    .collect::<Vec<_>>(),
            )
            .max(1.0);
            let per_session = s100_rate / 2.0 / per_message / 100.0;
            let mut runs = Vec::new();
            for rep in 0..self.repeat() {
                let mut args = vec![
                    "--mode".into(),
                    "stream".into(),
                    "--url".into(),
                    stack.url.clone(),
                    "--sessions".into(),
                    "100".into(),
                    "--messages".into(),
                    "0".into(),
                    "--rate".into(),
                    format!("{per_session:.4}"),
                    "--duration".into(),
                    self.seconds(),
                    "--warmup".into(),
                    WARMUP.to_string(),
                    "--tap-redis".into(),
                    self.redis.url(),
                    "--key-prefix".into(),
                    stack.prefix.clone(),
                ];
                args.extend(self.auth_args());
                runs.push(
                    self.load(
                        "half load with a plain Redis subscriber",
                        &format!("halfload-{rep}"),
                        args,
                        Hooks::default(),
                    )
                    .await?,
                );
            }
            let p50s: Vec<f64> = runs
                .iter()
                .map(|r| r.tap.as_ref().map_or(f64::NAN, |t| t.added_ms.p50))
                .collect();
            let p99s: Vec<f64> = runs
                .iter()
                .map(|r| r.tap.as_ref().map_or(f64::NAN, |t| t.added_ms.p99))
                .collect();
            let (p50, p99) = (median(&p50s), median(&p99s));
            figures.push(Figure {
                number: 2,
                name: "added latency per chunk at half of #1's load (worker publish → client receive)".into(),
                system: format!(
                    "{:.0} chunks/s offered",
                    median(&runs.iter().map(rate).collect::<Vec<_>>())
                ),
                baseline: "a plain Redis subscriber on the same channels".into(),
                result: format!("+p50 {p50:.3} ms, +p99 {p99:.3} ms"),
                target: "+p50 ≤ 0.5 ms, +p99 ≤ 2 ms".into(),
                met: Some(p50 <= 0.5 && p99 <= 2.0),
                details: vec![
                    format!("per run +p50 (ms): {}; +p99 (ms): {}", list(&p50s), list(&p99s)),
                    format!("{:.3} messages/s per session, open loop; chunks matched per run: {}", per_session,
                        runs.iter().map(|r| r.tap.as_ref().map_or(0, |t| t.matched).to_string()).collect::<Vec<_>>().join(", ")),
                    "per chunk: arrival at the client's socket minus arrival at the plain subscriber, both in the load generator's process on one clock".into(),
                ],
            });
        }
        drop(echo);
        drop(stack);
        Ok(figures)
    }

    /// Figure 3: time to first chunk through the system minus straight from mock-llm,
    /// for independent users (first sends spread over one send period) and, beside it,
    /// for the same conversations all sending at once (a burst that repeats in lockstep).
    pub async fn first_chunk(&mut self) -> anyhow::Result<Figure> {
        let mock = self.mock_short.1.clone();
        let stack = self.stack("ttfc", Worker::Default, 15, &mock)?;
        let text = "[mock:first=50 slow=10] Hello from loadtest";
        let seconds = self.seconds();
        let common = |mode: &str, url: String, stagger_ms: u64| -> Vec<String> {
            vec![
                "--mode".into(),
                mode.into(),
                "--url".into(),
                url,
                "--sessions".into(),
                "100".into(),
                "--ramp".into(),
                "80".into(),
                "--messages".into(),
                "0".into(),
                "--think-ms".into(),
                "1000".into(),
                "--stagger-ms".into(),
                stagger_ms.to_string(),
                "--text".into(),
                text.into(),
                "--duration".into(),
                seconds.clone(),
            ]
        };
        // [spread, burst] × [direct, system]
        let mut runs: [[Vec<Report>; 2]; 2] = Default::default();
        for rep in 0..self.repeat() {
            for (k, (stagger_ms, label)) in [(TTFC_PERIOD_MS, "spread"), (0, "burst")]
                .into_iter()
                .enumerate()
            {
                let args = common("llm", format!("{mock}/v1"), stagger_ms);
                runs[k][0].push(
                    self.load(
                        &format!("straight to mock-llm, 100 conversations, {label}"),
                        &format!("ttfc-{label}-direct-{rep}"),
                        args,
                        Hooks::default(),
                    )
                    .await?,
                );
                let mut args = common("stream", stack.url.clone(), stagger_ms);
                args.extend(self.auth_args());
                runs[k][1].push(
                    self.load(
                        &format!("through the system, 100 conversations, {label}"),
                        &format!("ttfc-{label}-system-{rep}"),
                        args,
                        Hooks::default(),
                    )
                    .await?,
                );
            }
        }
        let q = |runs: &[Report], f: fn(&Report) -> f64| {
            median(&runs.iter().map(f).collect::<Vec<_>>())
        };
        let p50 = |r: &Report| r.latency_ms.first_chunk.p50;
        let p99 = |r: &Report| r.latency_ms.first_chunk.p99;
        let [[direct, system], [burst_direct, burst_system]] = &runs;
        let (d50, d99) = (q(direct, p50), q(direct, p99));
        let (s50, s99) = (q(system, p50), q(system, p99));
        let (a50, a99) = (s50 - d50, s99 - d99);
        let (b50, b99) = (
            q(burst_system, p50) - q(burst_direct, p50),
            q(burst_system, p99) - q(burst_direct, p99),
        );
        let messages = |runs: &[Report]| {
            runs.iter()
                .map(|r| r.messages.completed.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        drop(stack);
        Ok(Figure {
            number: 3,
            name: "time to first chunk, system minus straight from mock-llm (100 concurrent conversations)".into(),
            system: format!("p50 {s50:.2} ms, p99 {s99:.2} ms"),
            baseline: format!("p50 {d50:.2} ms, p99 {d99:.2} ms"),
            result: format!("+p50 {a50:.2} ms, +p99 {a99:.2} ms"),
            target: "+p50 ≤ 1 ms, +p99 ≤ 5 ms".into(),
            met: Some(a50 <= 1.0 && a99 <= 5.0),
            details: vec![
                format!("system runs p50/p99 (ms): {}", pairs(system)),
                format!("direct runs p50/p99 (ms): {}", pairs(direct)),
                format!("{text:?}: first token after 50 ms, then 10 ms per token, 20 tokens; each conversation closed loop with 1 s between answers; default coalescing (15 ms); first sends spread over {TTFC_PERIOD_MS} ms (`--stagger-ms`, about one send period), as independent users' are"),
                format!("messages per run: system {}, direct {}", messages(system), messages(direct)),
                format!("the same 100 conversations all sending at once (`--stagger-ms 0`: a burst of 100 that repeats in lockstep): **+p50 {b50:.2} ms, +p99 {b99:.2} ms**; system p50/p99 (ms) {}, direct {}", pairs(burst_system), pairs(burst_direct)),
            ],
        })
    }

    /// Figure 4: resident memory per idle socket, gateway vs the bare echo; each run
    /// on a freshly started process.
    pub async fn idle_memory(&mut self) -> anyhow::Result<Figure> {
        let n = self.settings.idle_sessions;
        let (mut gateway, mut echo) = (Vec::new(), Vec::new());
        let per = |r: &Report| {
            r.processes[0]
                .rss_growth_kib
                .map_or(f64::NAN, |k| k as f64 / r.sessions.connected.max(1) as f64)
        };
        let mock = self.mock_long.1.clone();
        for rep in 0..self.repeat() {
            let (echo_proc, echo_url) = self.bins.echo(&format!("echo-idle-{rep}"))?;
            let args = vec![
                "--mode".into(),
                "echo-idle".into(),
                "--url".into(),
                echo_url,
                "--sessions".into(),
                n.to_string(),
                "--ramp".into(),
                "2500".into(),
                "--duration".into(),
                "2".into(),
                "--pid".into(),
                format!("echo={}", echo_proc.pid()),
            ];
            let e = self
                .load(
                    &format!("echo baseline, {n} idle sockets"),
                    &format!("idle-echo-{rep}"),
                    args,
                    Hooks::default(),
                )
                .await?;
            drop(echo_proc);
            echo.push(e);
            let stack = self.stack(&format!("idle-{rep}"), Worker::Off, 15, &mock)?;
            let mut args = vec![
                "--mode".into(),
                "idle".into(),
                "--url".into(),
                stack.url.clone(),
                "--sessions".into(),
                n.to_string(),
                "--ramp".into(),
                "2500".into(),
                "--duration".into(),
                "2".into(),
                "--pid".into(),
                format!("gateway={}", stack.gateway.pid()),
            ];
            args.extend(self.auth_args());
            gateway.push(
                self.load(
                    &format!("gateway, {n} idle sessions"),
                    &format!("idle-gateway-{rep}"),
                    args,
                    Hooks::default(),
                )
                .await?,
            );
            drop(stack);
        }
        let g: Vec<f64> = gateway.iter().map(per).collect();
        let e: Vec<f64> = echo.iter().map(per).collect();
        let ratio = median(&g) / median(&e);
        // The figure is the gateway's: its sockets must all open. The echo's per-socket
        // figure divides by the sockets that did open, so a few that failed there
        // (its accept queue under the ramp) leave it comparable; they are reported.
        let failed: u64 = gateway.iter().map(|r| r.sessions.failed).sum();
        let echo_failed: u64 = echo.iter().map(|r| r.sessions.failed).sum();
        Ok(Figure {
            number: 4,
            name: format!(
                "gateway RSS per idle {} session at {n} sessions",
                if self.authenticated {
                    "authenticated"
                } else {
                    "(unauthenticated)"
                }
            ),
            system: format!("{:.1} KiB", median(&g)),
            baseline: format!("{:.1} KiB per echo socket", median(&e)),
            result: format!("{ratio:.2}×"),
            target: "≤ 2× (about 12 KiB)".into(),
            met: Some(ratio <= 2.0 && failed == 0),
            details: vec![
                format!("gateway runs (KiB/session): {}", list(&g)),
                format!("echo runs (KiB/socket): {}", list(&e)),
                format!(
                    "RSS growth from before the first connection to 1 s after the last one; sockets that failed to open: gateway {failed}, echo {echo_failed}"
                ),
            ],
        })
    }

    /// Figure 5: user messages accepted per second (no worker attached).
    pub async fn accept(&mut self) -> anyhow::Result<Figure> {
        let mock = self.mock_long.1.clone();
        let stack = self.stack("accept", Worker::Off, 15, &mock)?;
        let (mut base, mut system) = (Vec::new(), Vec::new());
        for rep in 0..self.repeat() {
            base.push(xadd_rate(&self.redis, REDIS_REQUESTS)?);
            eprintln!(
                "bench: redis XADD               {:>10.1} /s",
                base.last().copied().unwrap_or(0.0)
            );
            let mut args = vec![
                "--mode".into(),
                "accept".into(),
                "--url".into(),
                stack.url.clone(),
                "--sessions".into(),
                "50".into(),
                "--messages".into(),
                "400".into(),
                "--pid".into(),
                format!("gateway={}", stack.gateway.pid()),
            ];
            args.extend(self.auth_args());
            system.push(
                self.load(
                    "accept throughput, 50 sockets",
                    &format!("accept-{rep}"),
                    args,
                    Hooks::default(),
                )
                .await?,
            );
        }
        let rates: Vec<f64> = system
            .iter()
            .map(|r| r.messages.completed as f64 / r.window.secs)
            .collect();
        let ratio = median(&rates) / median(&base);
        let refused: u64 = system
            .iter()
            .map(|r| r.messages.rejected + r.messages.timed_out)
            .sum();
        drop(stack);
        Ok(Figure {
            number: 5,
            name: "user messages accepted per second (frame → stored and queued), 50 sockets"
                .into(),
            system: format!("{:.0} msgs/s", median(&rates)),
            baseline: format!("{:.0} XADD/s", median(&base)),
            result: format!("{ratio:.3}"),
            target: "≥ 0.5".into(),
            met: Some(ratio >= 0.5 && refused == 0),
            details: vec![
                format!("system runs (msgs/s): {}", list(&rates)),
                format!("XADD runs (/s): {}", list(&base)),
                format!(
                    "50 sockets × 400 messages, written back to back, then a ping whose pong proves them accepted; refused or timed out: {refused}"
                ),
            ],
        })
    }

    /// Figure 7: Redis commands per answered message of K = 100 tokens.
    pub async fn commands(&mut self) -> anyhow::Result<Figure> {
        let mock = self.mock_long.1.clone();
        let stack = self.stack("commands", Worker::Default, 15, &mock)?;
        let mut rows = Vec::new();
        let mut at_2ms = (Vec::new(), Vec::new());
        for pace in [2u64, 5] {
            let (mut client, mut all, mut chunks) = (Vec::new(), Vec::new(), Vec::new());
            let mut names = Commands::default().client_by_name;
            for rep in 0..self.repeat() {
                let counted: Arc<Mutex<Option<anyhow::Result<Commands>>>> = Arc::default();
                let counter: Arc<Mutex<Option<CommandCount>>> = Arc::default();
                let port = self.redis.port;
                let transcript = self.bins.logs.join(format!("monitor-{pace}-{rep}.txt"));
                let hooks = Hooks {
                    on_start: Some(Box::new({
                        let counter = counter.clone();
                        move || match CommandCount::start(port, &transcript) {
                            Ok(c) => *counter.lock().unwrap_or_else(|e| e.into_inner()) = Some(c),
                            Err(error) => eprintln!("bench: cannot count commands: {error:#}"),
                        }
                    })),
                    on_window_end: Some(Box::new({
                        let (counter, counted) = (counter.clone(), counted.clone());
                        move || {
                            if let Some(c) =
                                counter.lock().unwrap_or_else(|e| e.into_inner()).take()
                            {
                                *counted.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.stop());
                            }
                        }
                    })),
                };
                let mut args = vec![
                    "--mode".into(),
                    "stream".into(),
                    "--url".into(),
                    stack.url.clone(),
                    "--sessions".into(),
                    "50".into(),
                    "--messages".into(),
                    "4".into(),
                    "--text".into(),
                    format!("[mock:slow={pace}] Hello from loadtest"),
                ];
                args.extend(self.auth_args());
                let report = self
                    .load(
                        &format!("commands per answer, {pace} ms per token"),
                        &format!("commands-{pace}ms-{rep}"),
                        args,
                        hooks,
                    )
                    .await?;
                let commands = counted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_else(|| Err(anyhow::anyhow!("no command count")))?;
                let answered = report.messages.completed.max(1) as f64;
                client.push(commands.client as f64 / answered);
                all.push(commands.all as f64 / answered);
                chunks.push(report.chunks.per_message_mean);
                if rep == 0 {
                    names = commands.client_by_name.clone();
                }
            }
            let per_name: Vec<String> = names.iter().map(|(n, c)| format!("{n} {c}")).collect();
            if pace == 2 {
                at_2ms = (client.clone(), all.clone());
            }
            rows.push(format!(
                "{pace} ms/token: {:.1} chunk events per answer; client commands per answer {} (median {:.1}); all commands incl. inside scripts {} (median {:.1}); first run's client commands: {}",
                median(&chunks), list(&client), median(&client), list(&all), median(&all), per_name.join(", ")
            ));
        }
        drop(stack);
        let k = TOKENS as f64;
        let target = k / 4.0 + 8.0;
        // Judged as the issue defines it: INFO commandstats, which counts the commands
        // scripts run; what clients send is shown beside it.
        let (sent, counted) = (median(&at_2ms.0), median(&at_2ms.1));
        rows.push("client commands are what the gateway and worker send (each EVALSHA counted once, from MONITOR); \"all\" is INFO commandstats, which also counts every command a script runs".into());
        Ok(Figure {
            number: 7,
            name: format!(
                "Redis commands per answered message of K = {TOKENS} tokens (2 ms/token, coalescing 15 ms)"
            ),
            system: format!("{counted:.1} by INFO commandstats ({sent:.1} sent by clients)"),
            baseline: "—".into(),
            result: format!("{counted:.1} (K/4 + 8 = {target:.0})"),
            target: "≤ K/4 + 8 with chunk coalescing".into(),
            met: Some(counted <= target),
            details: rows,
        })
    }
}

/// CPU ms per wall-clock second of a sampled process in the window.
fn cpu_ms_per_sec(report: &Report, name: &str) -> f64 {
    report
        .processes
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.cpu_window_us)
        .map_or(f64::NAN, |cpu| cpu as f64 / 1000.0 / report.window.secs)
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| {
            if v.abs() >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.3}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pairs(runs: &[Report]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "{:.2}/{:.2}",
                r.latency_ms.first_chunk.p50, r.latency_ms.first_chunk.p99
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Arguments as a shell would need them.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redis_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_are_quoted_when_needed() {
        let args = vec![
            "--text".to_owned(),
            "[mock:slow=2] Hi".to_owned(),
            "--url".to_owned(),
            "http://x:1".to_owned(),
        ];
        assert_eq!(
            super::shell_words(&args),
            "--text '[mock:slow=2] Hi' --url http://x:1"
        );
    }
}
