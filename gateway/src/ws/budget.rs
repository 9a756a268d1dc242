//! Every frame a client sends costs something (a JSON parse at least; a signature
//! check for `auth`, a Redis script for `cancel`, a write for `ping`), so every frame
//! counts against one per-socket budget, whatever its type: `WS_FRAMES_PER_MINUTE`
//! with a burst of `WS_FRAME_BURST`. A frame over budget is not looked at: the client
//! gets `rate_limited` (with `retry_after_ms`). A client that keeps going,
//! `WS_FRAME_OVERRUNS` refused frames in a row, is not a person who clicked too fast:
//! its socket is closed with 4429. (Once, 20 000 `auth` frames in 1.9 s were all
//! verified, and 10 000 `cancel` frames ran 10 000 scripts.)
//!
//! User messages also have their own, stricter per-minute limit (`socket.rs`); this
//! one bounds what no other limit does.

use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;

/// What to do with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget: handle it.
    Take,
    /// Over budget: answer `rate_limited`, try again after this many milliseconds.
    Refuse { retry_after_ms: u64 },
    /// Over budget too often in a row: close the socket.
    Close,
}

/// One socket's frame budget.
pub struct FrameBudget {
    limiter: RateLimiter<NotKeyed, InMemoryState, DefaultClock>,
    /// Frames refused since the last one taken.
    overruns: u32,
    max_overruns: u32,
}

impl FrameBudget {
    pub fn new(per_minute: u32, burst: u32, max_overruns: u32) -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(nonzero(per_minute)).allow_burst(nonzero(burst));
        Self {
            limiter: RateLimiter::direct(quota),
            overruns: 0,
            max_overruns,
        }
    }

    /// Counts one frame.
    pub fn frame(&mut self) -> Verdict {
        match self.limiter.check() {
            Ok(()) => {
                self.overruns = 0;
                Verdict::Take
            }
            Err(not_until) => {
                self.overruns = self.overruns.saturating_add(1);
                if self.overruns > self.max_overruns {
                    return Verdict::Close;
                }
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Verdict::Refuse {
                    retry_after_ms: wait.as_millis().max(1) as u64,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_taken_then_refused_then_closed() {
        let mut budget = FrameBudget::new(1, 3, 2);
        let verdicts: Vec<Verdict> = (0..6).map(|_| budget.frame()).collect();
        assert_eq!(&verdicts[..3], &[Verdict::Take; 3]);
        assert!(matches!(verdicts[3], Verdict::Refuse { retry_after_ms } if retry_after_ms > 0));
        assert!(matches!(verdicts[4], Verdict::Refuse { .. }));
        assert_eq!(verdicts[5], Verdict::Close);
    }
}
