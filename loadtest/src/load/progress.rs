//! The live progress bar: messages done out of the total (or seconds out of the
//! duration) with current rates, redrawn from the live counters. Hidden when stderr
//! is not a terminal or with `--no-progress`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::live::Snapshot;

/// The bar and what it counts.
pub struct Progress {
    bar: ProgressBar,
    /// Length counts seconds, not messages (`--messages 0` or idle modes).
    by_time: bool,
}

impl Progress {
    /// A bar of `total` messages, or of `seconds` when the total is unknown.
    pub fn new(total_messages: Option<u64>, seconds: f64, hidden: bool) -> Self {
        let (len, by_time) = match total_messages {
            Some(total) if total > 0 => (total, false),
            _ => (seconds.ceil().max(1.0) as u64, true),
        };
        let bar = ProgressBar::with_draw_target(
            Some(len),
            if hidden {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr_with_hz(4)
            },
        );
        let unit = if by_time { "s" } else { "msgs" };
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}"
            ))
            .expect("static template")
            .progress_chars("=> "),
        );
        Self { bar, by_time }
    }

    /// Redraws from the counters; `rates` are chunks/s and messages/s over the last tick.
    pub fn update(&self, now: &Snapshot, elapsed: Duration, chunk_rate: f64, msg_rate: f64) {
        let position = if self.by_time {
            elapsed.as_secs()
        } else {
            now.messages_done
        };
        self.bar.set_position(position);
        self.bar.set_message(format!(
            "| {} open | {:.0} chunks/s | {:.1} msgs/s | {} errors",
            now.connected, chunk_rate, msg_rate, now.errors
        ));
    }

    /// Shows a phase name (connecting, draining).
    pub fn phase(&self, text: &str) {
        self.bar.set_message(text.to_owned());
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
