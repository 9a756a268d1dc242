//! Figure 12: the fan-out cost when one session has many sockets open (one
//! conversation on many screens): the gateway's CPU per chunk event it delivered
//! with `WATCHERS + 1` sockets on each session, against the same socket count with
//! one socket per session, runs alternating on one gateway.

use super::{Bench, Worker, list};
use crate::load::Hooks;
use crate::load::bench::{Figure, median};
use crate::load::report::Report;

/// Sockets per session on the fan-out side: the sender's and 49 watchers.
const WATCHERS: usize = 49;
/// Sessions on the fan-out side (each with `WATCHERS + 1` sockets).
const SESSIONS: usize = 4;

/// Gateway CPU µs per chunk event delivered to any socket.
fn per_delivery(r: &Report) -> f64 {
    let delivered = (r.window.chunks + r.window.watched_chunks).max(1) as f64;
    r.processes
        .iter()
        .find(|p| p.name == "gateway")
        .and_then(|p| p.cpu_window_us)
        .map_or(f64::NAN, |us| us as f64 / delivered)
}

impl Bench {
    pub async fn fanout(&mut self) -> anyhow::Result<Figure> {
        let mock = self.mock_long.1.clone();
        // Coalescing off: every token is a chunk event, as in figures 1 and 6.
        let stack = self.stack("fanout", Worker::PerCore, 0, &mock)?;
        let sockets = SESSIONS * (WATCHERS + 1);
        let (mut shared, mut apart) = (Vec::new(), Vec::new());
        for rep in 0..self.repeat() {
            for watchers in [0, WATCHERS] {
                let sessions = if watchers == 0 { sockets } else { SESSIONS };
                let mut args: Vec<String> = [
                    "--mode",
                    "stream",
                    "--url",
                    &stack.url,
                    "--sessions",
                    &sessions.to_string(),
                    "--watchers",
                    &watchers.to_string(),
                    "--messages",
                    "0",
                    "--text",
                    "[mock:slow=2] Hello from loadtest",
                    "--duration",
                    &self.seconds(),
                    "--warmup",
                    &super::WARMUP.to_string(),
                    "--pid",
                    &format!("gateway={}", stack.gateway.pid()),
                ]
                .into_iter()
                .map(str::to_owned)
                .collect();
                args.extend(self.auth_args());
                let label = if watchers == 0 {
                    format!("fan-out baseline, {sockets} sessions of one socket")
                } else {
                    format!("fan-out, {SESSIONS} sessions of {} sockets", watchers + 1)
                };
                let report = self
                    .load(
                        &label,
                        &format!("fanout-{watchers}-{rep}"),
                        args,
                        Hooks::default(),
                    )
                    .await?;
                if watchers == 0 {
                    apart.push(report);
                } else {
                    shared.push(report);
                }
            }
        }
        drop(stack);
        let s: Vec<f64> = shared.iter().map(per_delivery).collect();
        let a: Vec<f64> = apart.iter().map(per_delivery).collect();
        let ratio = median(&s) / median(&a);
        let dirty = shared
            .iter()
            .chain(&apart)
            .filter(|r| !r.checks.clean || !r.errors.is_empty())
            .count();
        Ok(Figure {
            number: 12,
            name: format!(
                "gateway CPU-µs per delivered chunk event, {} sockets on one session ÷ one socket per session ({sockets} sockets either way)",
                WATCHERS + 1
            ),
            system: format!("{:.2} µs", median(&s)),
            baseline: format!("{:.2} µs", median(&a)),
            result: format!("{ratio:.2}×"),
            target: "≤ 1× (one bus message, many socket writes)".into(),
            met: Some(ratio <= 1.0 && dirty == 0),
            details: vec![
                format!("{SESSIONS} sessions × {} sockets (µs/delivery): {}", WATCHERS + 1, list(&s)),
                format!("{sockets} sessions × 1 socket (µs/delivery): {}", list(&a)),
                format!(
                    "deliveries/s: shared {}; apart {}; runs with errors or failed checks: {dirty}",
                    list(&shared.iter().map(|r| (r.window.chunks + r.window.watched_chunks) as f64 / r.window.secs).collect::<Vec<_>>()),
                    list(&apart.iter().map(|r| r.window.chunks as f64 / r.window.secs).collect::<Vec<_>>()),
                ),
                "`[mock:slow=2]`, 100 tokens, coalescing off; each watcher checks seq (no gap, no repeat) like the sender's socket".into(),
            ],
        })
    }
}
