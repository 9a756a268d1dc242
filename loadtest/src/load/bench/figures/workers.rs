//! Figure 14: what an answer costs when several workers read the inbox, against one
//! worker, same load. Workers are scaled on the backlog, so a deployment runs many;
//! a new inbox entry should be read by the one worker that takes it, not by every
//! idle one. Judged on the inbox reads (`XREADGROUP`) per answer by `INFO
//! commandstats` from the first message to the last answer; all commands and the
//! workers' and redis-server's CPU per answer are beside it.

use super::{Bench, Worker, list};
use crate::load::bench::{Figure, median, redis_bench};
use crate::load::report::Report;

/// Workers on the "several" side.
const WORKERS: usize = 4;
/// Conversations, each closed loop with `THINK_MS` between answers of 4 deltas
/// `PACE_MS` apart (figure 9's 4-delta answer).
const SESSIONS: usize = 20;
const THINK_MS: u64 = 100;
const PIECES: u64 = 4;
const PACE_MS: u64 = 20;

/// One side's runs.
#[derive(Default)]
struct Side {
    commands: Vec<f64>,
    reads: Vec<f64>,
    workers_us: Vec<f64>,
    redis_us: Vec<f64>,
}

impl Side {
    fn add(&mut self, report: &Report, info: Option<&str>) {
        let answers = report.messages.completed.max(1) as f64;
        if let Some(info) = info {
            self.commands
                .push(redis_bench::sum_commandstats(info) as f64 / answers);
            self.reads
                .push(redis_bench::commandstat_calls(info, "xreadgroup") as f64 / answers);
        }
        let window = report.window.messages.max(1) as f64;
        let cpu = |prefix: &str| -> f64 {
            report
                .processes
                .iter()
                .filter(|p| p.name.starts_with(prefix))
                .map(|p| p.cpu_window_us.map_or(f64::NAN, |us| us as f64))
                .sum::<f64>()
                / window
        };
        self.workers_us.push(cpu("worker"));
        self.redis_us.push(cpu("redis"));
    }
}

impl Bench {
    pub async fn workers(&mut self) -> anyhow::Result<Figure> {
        let mock = self.mock_long.1.clone();
        let one = self.stack("workers1", Worker::Default, 15, &mock)?;
        let several = self.stack("workers", Worker::Several(WORKERS), 15, &mock)?;
        let text = format!("[mock:pieces={PIECES} slow={PACE_MS}] Hello from loadtest");
        let (mut single, mut many) = (Side::default(), Side::default());
        for rep in 0..self.repeat() {
            for (stack, side, label) in [(&one, &mut single, "1"), (&several, &mut many, "n")] {
                let mut args: Vec<String> = [
                    "--mode",
                    "stream",
                    "--url",
                    &stack.url,
                    "--sessions",
                    &SESSIONS.to_string(),
                    "--messages",
                    "0",
                    "--think-ms",
                    &THINK_MS.to_string(),
                    "--stagger-ms",
                    &(THINK_MS + PIECES * PACE_MS).to_string(),
                    "--text",
                    &text,
                    "--duration",
                    &self.seconds(),
                    "--warmup",
                    &super::WARMUP.to_string(),
                    "--pid",
                    &format!("redis={}", self.redis.pid()),
                ]
                .into_iter()
                .map(str::to_owned)
                .collect();
                let workers = stack.worker.iter().chain(&stack.more_workers);
                for (i, worker) in workers.enumerate() {
                    args.extend([
                        "--pid".to_owned(),
                        format!("worker{}={}", i + 1, worker.pid()),
                    ]);
                }
                args.extend(self.auth_args());
                let (hooks, reset) = self.commandstats_reset();
                let workers_here = 1 + stack.more_workers.len();
                let report = self
                    .load(
                        &format!("commands per answer, {workers_here} worker(s)"),
                        &format!("workers-{label}-{rep}"),
                        args,
                        hooks,
                    )
                    .await?;
                let info = self.commandstats_after(&reset)?;
                side.add(&report, info.as_deref());
            }
        }
        drop((one, several));
        let ratio = median(&many.reads) / median(&single.reads);
        let cpu = |side: &Side| median(&side.workers_us) + median(&side.redis_us);
        Ok(Figure {
            number: 14,
            name: format!(
                "inbox reads (`XREADGROUP`) per answer with {WORKERS} workers ÷ with 1 (stream protocol, 4 deltas, same load)"
            ),
            system: format!(
                "{:.2} reads, {:.1} commands, {:.0} µs CPU (workers + Redis) per answer",
                median(&many.reads),
                median(&many.commands),
                cpu(&many)
            ),
            baseline: format!(
                "{:.2} reads, {:.1} commands, {:.0} µs CPU per answer",
                median(&single.reads),
                median(&single.commands),
                cpu(&single)
            ),
            result: format!("{ratio:.2}× (CPU {:.2}×)", cpu(&many) / cpu(&single)),
            target: "≤ 1.1× (a new entry is read by the one worker that takes it)".into(),
            met: Some(ratio <= 1.1),
            details: vec![
                format!(
                    "commands per answer, 1 worker: {}; {WORKERS} workers: {}",
                    list(&single.commands),
                    list(&many.commands)
                ),
                format!(
                    "XREADGROUP per answer, 1 worker: {}; {WORKERS} workers: {}",
                    list(&single.reads),
                    list(&many.reads)
                ),
                format!(
                    "CPU µs per answer, all workers: 1 worker {}, {WORKERS} workers {}; redis-server: {}, {}",
                    list(&single.workers_us),
                    list(&many.workers_us),
                    list(&single.redis_us),
                    list(&many.redis_us)
                ),
                format!(
                    "{SESSIONS} conversations, closed loop, {THINK_MS} ms between answers, first sends spread over one send period; `[mock:pieces={PIECES} slow={PACE_MS}]`, default coalescing; each side its own gateway and key prefix on the one Redis, runs alternating"
                ),
            ],
        })
    }
}
