//! When a streamed answer's tokens go out: at most one chunk batch per coalescing
//! window. A token that arrives a window or more after the last batch went out is
//! published at once; one that arrives sooner waits for the window's end, and the
//! tokens that arrive meanwhile go out with it. So a fast model's tokens are merged
//! (fewer Redis round trips), while a slow model's are neither delayed nor given a
//! timer wake-up of their own (a wait counted from each token would hold every one of
//! them back a whole window).

use std::time::Duration;
use tokio::time::Instant;

/// What to do with a token that just arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Publish what is pending now.
    Now,
    /// Publish at this instant, with whatever arrives until then.
    At(Instant),
}

/// The coalescing window of one answer's stream.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    last_batch: Option<Instant>,
}

impl Coalescer {
    /// A window of zero publishes every token on its own.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last_batch: None,
        }
    }

    /// A token arrived at `now` (the first of an answer always goes out at once).
    pub fn on_token(&self, now: Instant) -> Decision {
        match self.last_batch.map(|at| at + self.window) {
            Some(end) if !self.window.is_zero() && now < end => Decision::At(end),
            _ => Decision::Now,
        }
    }

    /// A batch went out at `now`.
    pub fn published(&mut self, now: Instant) {
        self.last_batch = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(15);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn slow_tokens_go_out_as_they_come() {
        let t0 = Instant::now();
        let mut coalescer = Coalescer::new(WINDOW);
        // 20 ms apart, longer than the window: each at once.
        for n in 0..5 {
            let now = t0 + ms(20 * n);
            assert_eq!(coalescer.on_token(now), Decision::Now, "token {n}");
            coalescer.published(now);
        }
    }

    #[test]
    fn fast_tokens_wait_for_the_end_of_the_window_since_the_last_batch() {
        let t0 = Instant::now();
        let mut coalescer = Coalescer::new(WINDOW);
        assert_eq!(coalescer.on_token(t0), Decision::Now, "the first at once");
        coalescer.published(t0);
        for n in 1..8 {
            assert_eq!(
                coalescer.on_token(t0 + ms(2 * n)),
                Decision::At(t0 + WINDOW)
            );
        }
        coalescer.published(t0 + WINDOW);
        assert_eq!(
            coalescer.on_token(t0 + ms(16)),
            Decision::At(t0 + WINDOW + WINDOW)
        );
        assert_eq!(coalescer.on_token(t0 + ms(30)), Decision::Now);
    }

    #[test]
    fn a_zero_window_publishes_every_token() {
        let t0 = Instant::now();
        let mut coalescer = Coalescer::new(Duration::ZERO);
        for n in 0..3 {
            assert_eq!(coalescer.on_token(t0), Decision::Now, "token {n}");
            coalescer.published(t0);
        }
    }
}
