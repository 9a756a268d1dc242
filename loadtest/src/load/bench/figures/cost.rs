//! Figures 9-11: CPU per answered message of each of our processes, beside the floor
//! measured in the same run (a minimal client streaming the same answers straight
//! from the same mock, `loadtest --mode llm`, whose CPU is this process's own), and
//! Redis commands per answer (`INFO commandstats`, which counts the commands scripts
//! run). The answer's text is streamed as 1, 4 and 32 deltas (`[mock:pieces=N]`),
//! 20 ms apart so that each is its own chunk event under the default coalescing:
//! the bytes stay the same, so a straight line through the three gives the fixed
//! cost per message and the cost per chunk separately. Beside them, in the details:
//! each process's wake-ups per answer, and the same stream load on one gateway in
//! embedded mode (no Redis, its worker in the process), which tells what the hops
//! between the Redis deployment's processes cost apart from the logic.

use super::{Bench, Worker, list};
use crate::load::Hooks;
use crate::load::bench::{Figure, median};
use crate::load::report::Report;

/// Content deltas per answer.
const PIECES: [usize; 3] = [1, 4, 32];
/// Milliseconds between deltas: more than the default coalescing window (15 ms).
const PACE_MS: u64 = 20;
/// Concurrent conversations, each closed loop with `THINK_MS` between answers.
const SESSIONS: usize = 40;
const THINK_MS: u64 = 200;
/// Our processes, as sampled.
const OURS: [&str; 3] = ["gateway", "worker", "redis"];

/// One value per run of each sampled process, by name.
#[derive(Default)]
struct PerProcess(Vec<(String, Vec<f64>)>);

impl PerProcess {
    fn push(&mut self, name: &str, value: f64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => self.0.push((name.to_owned(), vec![value])),
        }
    }

    /// The median of `name`'s runs.
    fn of(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or(f64::NAN, |(_, v)| median(v))
    }

    /// The sum of our processes' medians.
    fn ours(&self) -> f64 {
        OURS.iter().map(|n| self.of(n)).sum()
    }
}

/// One protocol's runs at one delta count.
#[derive(Default)]
struct Side {
    /// CPU µs per answered message.
    cpu: PerProcess,
    /// Wake-ups (a thread sleeping, then woken) per answered message.
    wakeups: PerProcess,
    chunks: Vec<f64>,
    commands: Vec<f64>,
    rates: Vec<f64>,
}

impl Side {
    fn add(&mut self, report: &Report, commands: Option<f64>) {
        let messages = report.window.messages.max(1) as f64;
        for p in &report.processes {
            let per_answer = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64 / messages);
            self.cpu.push(&p.name, per_answer(p.cpu_window_us));
            self.wakeups.push(&p.name, per_answer(p.wakeups_window));
        }
        self.chunks.push(report.chunks.per_message_mean);
        self.rates.push(report.window.messages_per_sec);
        if let Some(c) = commands {
            self.commands.push(c);
        }
    }

    /// Median CPU µs per message of `name`.
    fn cpu_of(&self, name: &str) -> f64 {
        self.cpu.of(name)
    }

    fn ours(&self) -> f64 {
        self.cpu.ours()
    }
}

/// A least-squares line `a + b·x` through the points.
fn line(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

impl Bench {
    /// Figures 9, 10 and 11.
    pub async fn cost(&mut self) -> anyhow::Result<Vec<Figure>> {
        let mock = self.mock_long.1.clone();
        let stack = self.stack("cost", Worker::Default, 15, &mock)?;
        // The same logic in one process with no Redis: what the hops between our
        // processes cost is the difference.
        let embedded = self.embedded_stack("cost-embedded", 15, &mock)?;
        let me = std::process::id();
        let pids = vec![
            format!("gateway={}", stack.gateway.pid()),
            format!("worker={}", stack.worker.as_ref().map_or(0, |w| w.pid())),
            format!("redis={}", self.redis.pid()),
            format!("mock={}", self.mock_long.0.pid()),
            format!("client={me}"),
        ];
        // [floor, simple, stream, embedded] per delta count.
        let mut sides: Vec<[Side; 4]> = PIECES.iter().map(|_| Default::default()).collect();
        for rep in 0..self.repeat() {
            for (i, pieces) in PIECES.iter().enumerate() {
                let text = format!("[mock:pieces={pieces} slow={PACE_MS}] Hello from loadtest");
                for (j, side) in ["llm", "simple", "stream", "embedded"]
                    .into_iter()
                    .enumerate()
                {
                    let (mode, url) = match side {
                        "llm" => ("llm", format!("{mock}/v1")),
                        "embedded" => ("stream", embedded.url.clone()),
                        mode => (mode, stack.url.clone()),
                    };
                    let mut args: Vec<String> = [
                        "--mode",
                        mode,
                        "--url",
                        &url,
                        "--sessions",
                        &SESSIONS.to_string(),
                        "--messages",
                        "0",
                        "--think-ms",
                        &THINK_MS.to_string(),
                        // A steady load: first sends spread over one send period
                        // (thinking + the answer), not 40 at once in lockstep.
                        "--stagger-ms",
                        &(THINK_MS + *pieces as u64 * PACE_MS).to_string(),
                        "--text",
                        &text,
                        "--duration",
                        &self.seconds(),
                        "--warmup",
                        &super::WARMUP.to_string(),
                    ]
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                    let pid_args = match side {
                        "llm" => vec![
                            format!("mock={}", self.mock_long.0.pid()),
                            format!("client={me}"),
                        ],
                        "embedded" => {
                            args.extend(self.auth_args());
                            vec![
                                format!("gateway={}", embedded.gateway.pid()),
                                format!("mock={}", self.mock_long.0.pid()),
                                format!("client={me}"),
                            ]
                        }
                        _ => {
                            args.extend(self.auth_args());
                            pids.clone()
                        }
                    };
                    for p in pid_args {
                        args.extend(["--pid".to_owned(), p]);
                    }
                    let (hooks, counted) = if side != "simple" && side != "stream" {
                        (Hooks::default(), None)
                    } else {
                        let (hooks, reset) = self.commandstats_reset();
                        (hooks, Some(reset))
                    };
                    let report = self
                        .load(
                            &format!("CPU per answer, {side}, {pieces} deltas"),
                            &format!("cost-{side}-{pieces}-{rep}"),
                            args,
                            hooks,
                        )
                        .await?;
                    let commands = match &counted {
                        Some(reset) => self.commandstats_after(reset)?.map(|info| {
                            super::super::redis_bench::sum_commandstats(&info) as f64
                                / report.messages.completed.max(1) as f64
                        }),
                        None => None,
                    };
                    sides[i][j].add(&report, commands);
                }
            }
        }
        drop((stack, embedded));
        Ok(figures(&sides))
    }
}

fn figures(sides: &[[Side; 4]]) -> Vec<Figure> {
    let mut details = Vec::new();
    for (i, pieces) in PIECES.iter().enumerate() {
        let [floor, simple, stream, embedded] = &sides[i];
        let base = floor.cpu_of("client");
        details.push(format!(
            "{pieces} deltas: floor (llm client) {base:.0} µs/answer at {} answers/s; stream: {:.1} chunks/answer",
            list(&floor.rates),
            median(&stream.chunks)
        ));
        for (name, side) in [("simple", simple), ("stream", stream)] {
            let per: Vec<String> = OURS
                .iter()
                .chain(&["mock", "client"])
                .map(|n| format!("{n} {:.0}", side.cpu_of(n)))
                .collect();
            details.push(format!(
                "{pieces} deltas, {name}: µs/answer {}; ours {:.0} = {:.2}× the floor, worker {:.2}×; Redis commands/answer {} at {} answers/s",
                per.join(", "),
                side.ours(),
                side.ours() / base,
                side.cpu_of("worker") / base,
                list(&side.commands),
                list(&side.rates),
            ));
        }
        let woken = |side: &Side| {
            OURS.iter()
                .map(|n| format!("{n} {:.1}", side.wakeups.of(n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let floor_wakeups = floor.wakeups.of("client");
        details.push(format!(
            "{pieces} deltas, wake-ups per answer: floor (llm client) {floor_wakeups:.1}; stream {} = ours {:.1}, {:.2}× the floor's (CPU {:.2}×); simple {} = ours {:.1}, {:.2}×",
            woken(stream),
            stream.wakeups.ours(),
            stream.wakeups.ours() / floor_wakeups,
            stream.ours() / base,
            woken(simple),
            simple.wakeups.ours(),
            simple.wakeups.ours() / floor_wakeups,
        ));
        details.push(format!(
            "{pieces} deltas, embedded (one gateway process, its own worker, in-memory store and bus; stream protocol): {:.0} µs/answer = {:.2}× the floor, {:.1} wake-ups/answer; the Redis deployment's hops between processes cost {:.0} µs/answer more",
            embedded.cpu_of("gateway"),
            embedded.cpu_of("gateway") / base,
            embedded.wakeups.of("gateway"),
            stream.ours() - embedded.cpu_of("gateway"),
        ));
    }
    // Fixed and per-chunk cost: a line through (chunks per answer, µs per answer).
    let fit = |f: &dyn Fn(&[Side; 4]) -> f64| {
        let points: Vec<(f64, f64)> = sides.iter().map(|s| (median(&s[2].chunks), f(s))).collect();
        line(&points)
    };
    let mut fits = Vec::new();
    for name in OURS.iter().chain(&["client"]) {
        let (a, b) = fit(&|s: &[Side; 4]| {
            if *name == "client" {
                s[0].cpu_of("client")
            } else {
                s[2].cpu_of(name)
            }
        });
        let label = if *name == "client" { "floor" } else { name };
        fits.push(format!("{label} {a:.0} + {b:.1}/chunk"));
    }
    let (ea, eb) = fit(&|s: &[Side; 4]| s[3].cpu_of("gateway"));
    fits.push(format!("embedded {ea:.0} + {eb:.1}/chunk"));
    let (ca, cb) = fit(&|s: &[Side; 4]| median(&s[2].commands));
    details.push(format!(
        "stream protocol, a line through the three delta counts, µs per answer = fixed + per chunk: {}; Redis commands per answer = {ca:.1} + {cb:.2}/chunk",
        fits.join(", ")
    ));
    let mut wake_fits = Vec::new();
    for name in OURS.iter().chain(&["client"]) {
        let (a, b) = fit(&|s: &[Side; 4]| {
            if *name == "client" {
                s[0].wakeups.of("client")
            } else {
                s[2].wakeups.of(name)
            }
        });
        let label = if *name == "client" { "floor" } else { name };
        wake_fits.push(format!("{label} {a:.1} + {b:.2}/chunk"));
    }
    details.push(format!(
        "the same line for wake-ups per answer (voluntary context switches of each process's threads, from /proc/<pid>/task/*/status): {}",
        wake_fits.join(", ")
    ));
    details.push(format!(
        "{SESSIONS} conversations, closed loop, {THINK_MS} ms between answers, first sends spread over one send period (`--stagger-ms`); `[mock:pieces=N slow={PACE_MS}]`: the 100-token answer as N deltas {PACE_MS} ms apart, default coalescing (15 ms); CPU from /proc/<pid>/stat in the window ÷ answers in the window; \"ours\" is gateway + worker + redis-server; the floor is the load generator's own CPU in `--mode llm`; Redis commands by INFO commandstats (scripts' commands included) from the first message to the last answer"
    ));

    // Headline values at 4 deltas over the stream protocol (the issue's ~7-chunk load
    // lies between 4 and 32; every count is in the details).
    let [floor, _, stream, _] = &sides[1];
    let base = floor.cpu_of("client");
    let (ours, worker) = (stream.ours() / base, stream.cpu_of("worker") / base);
    let chunks = median(&stream.chunks);
    let commands = median(&stream.commands);
    // One published batch per chunk event at this pace.
    let allowed = 15.0 + 4.0 * chunks;
    vec![
        Figure {
            number: 9,
            name: "CPU per answered message, gateway + worker + redis-server ÷ a client streaming the same answer straight from mock-llm (stream protocol, 4 deltas)".into(),
            system: format!("{:.0} µs", stream.ours()),
            baseline: format!("{base:.0} µs (floor client)"),
            result: format!("{ours:.2}×"),
            target: "≤ 4× (stretch ≤ 2×)".into(),
            met: Some(ours <= 4.0),
            details,
        },
        Figure {
            number: 10,
            name: "CPU per answered message, the worker alone ÷ the floor client (stream protocol, 4 deltas)".into(),
            system: format!("{:.0} µs", stream.cpu_of("worker")),
            baseline: format!("{base:.0} µs (floor client)"),
            result: format!("{worker:.2}×"),
            target: "≤ 1.5×".into(),
            met: Some(worker <= 1.5),
            details: vec!["the runs of figure 9".into()],
        },
        Figure {
            number: 11,
            name: "Redis commands per answer, inside scripts included (stream protocol, 4 deltas)".into(),
            system: format!("{commands:.1} for {chunks:.1} chunk batches"),
            baseline: "—".into(),
            result: format!("{commands:.1} (15 + 4 × {chunks:.1} = {allowed:.1})"),
            target: "≤ 15 + 4 per published chunk batch".into(),
            met: Some(commands <= allowed),
            details: vec!["the runs of figure 9, by INFO commandstats".into()],
        },
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_through_points() {
        let (a, b) = super::line(&[(1.0, 12.0), (4.0, 18.0), (32.0, 74.0)]);
        assert!((a - 10.0).abs() < 1e-9 && (b - 2.0).abs() < 1e-9, "{a} {b}");
        assert_eq!(super::line(&[(2.0, 5.0), (2.0, 7.0)]), (6.0, 0.0));
    }
}
