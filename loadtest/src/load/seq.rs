//! The per-session `seq` check: every session event carries a `seq` that the contract
//! makes strictly increasing per session, so a client can tell from the numbers alone
//! whether an event was lost, delivered twice or delivered out of order.
//!
//! The checker starts from `connected.last_seq` (everything up to it happened before
//! the socket attached) and expects `last + 1` next. A jump leaves a gap; a gap filled
//! later was a reordering, not a loss; a number seen before is a duplicate. Whatever
//! gap is still open when the session ends was lost.

use std::collections::BTreeSet;

use serde::Serialize;

/// What one session's (or, merged, every session's) `seq` numbers showed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeqReport {
    /// Events with a `seq` received.
    pub received: u64,
    /// Numbers never received, although a later one was.
    pub lost: u64,
    /// Numbers received more than once (each extra copy counts).
    pub duplicated: u64,
    /// Numbers received after a higher one (a gap that was filled late).
    pub reordered: u64,
}

impl SeqReport {
    /// Adds another session's report.
    pub fn merge(&mut self, other: &SeqReport) {
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
    }

    /// True when nothing was lost, duplicated or reordered.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0
    }
}

/// Tracks one session's `seq` numbers.
#[derive(Debug, Clone)]
pub struct SeqChecker {
    /// Highest number received (or the starting point).
    highest: u64,
    /// Numbers below `highest` not received yet.
    missing: BTreeSet<u64>,
    report: SeqReport,
}

/// How one event's number compared with what came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// The next number, or a jump forward (the skipped numbers are now missing).
    InOrder,
    /// A missing number arriving late.
    Reordered,
    /// A number already received (or at or below the starting point).
    Duplicate,
}

impl SeqChecker {
    /// A checker for a socket whose `connected` said `last_seq`.
    pub fn starting_after(last_seq: u64) -> Self {
        Self {
            highest: last_seq,
            missing: BTreeSet::new(),
            report: SeqReport::default(),
        }
    }

    /// Records one received number.
    pub fn observe(&mut self, seq: u64) -> SeqVerdict {
        self.report.received += 1;
        if seq > self.highest {
            // Bounded: a wild jump (a corrupt number) must not allocate without limit.
            let gap = (seq - self.highest - 1).min(1_000_000);
            self.missing.extend(seq - gap..seq);
            self.highest = seq;
            SeqVerdict::InOrder
        } else if self.missing.remove(&seq) {
            self.report.reordered += 1;
            SeqVerdict::Reordered
        } else {
            self.report.duplicated += 1;
            SeqVerdict::Duplicate
        }
    }

    /// Highest number received so far.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// The report, counting every gap still open as lost.
    pub fn finish(&self) -> SeqReport {
        SeqReport {
            lost: self.missing.len() as u64,
            ..self.report
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(start: u64, seqs: &[u64]) -> SeqReport {
        let mut checker = SeqChecker::starting_after(start);
        for &seq in seqs {
            checker.observe(seq);
        }
        checker.finish()
    }

    #[test]
    fn an_in_order_stream_is_clean() {
        let report = run(0, &[1, 2, 3, 4, 5]);
        assert_eq!(
            report,
            SeqReport {
                received: 5,
                ..SeqReport::default()
            }
        );
        assert!(report.is_clean());
    }

    #[test]
    fn the_start_comes_from_connected() {
        assert!(run(41, &[42, 43]).is_clean());
        // 41 happened before the socket attached: seeing it again is a duplicate.
        assert_eq!(run(41, &[41, 42]).duplicated, 1);
    }

    #[test]
    fn a_gap_never_filled_is_lost() {
        let report = run(0, &[1, 2, 5, 6]);
        assert_eq!(report.lost, 2);
        assert_eq!(report.reordered, 0);
        assert!(!report.is_clean());
    }

    #[test]
    fn a_gap_filled_late_is_a_reordering() {
        let mut checker = SeqChecker::starting_after(0);
        assert_eq!(checker.observe(1), SeqVerdict::InOrder);
        assert_eq!(checker.observe(3), SeqVerdict::InOrder);
        assert_eq!(checker.observe(2), SeqVerdict::Reordered);
        assert_eq!(checker.observe(4), SeqVerdict::InOrder);
        let report = checker.finish();
        assert_eq!(report.lost, 0);
        assert_eq!(report.reordered, 1);
        assert_eq!(report.received, 4);
    }

    #[test]
    fn repeats_are_duplicates() {
        let report = run(0, &[1, 2, 2, 3, 1]);
        assert_eq!(report.duplicated, 2);
        assert_eq!(report.lost, 0);
        assert_eq!(report.reordered, 0);
    }

    #[test]
    fn a_late_number_seen_twice_is_reordered_once_then_duplicate() {
        let report = run(0, &[2, 1, 1]);
        assert_eq!(report.reordered, 1);
        assert_eq!(report.duplicated, 1);
    }

    #[test]
    fn reports_merge() {
        let mut total = run(0, &[1, 3]);
        total.merge(&run(0, &[1, 1]));
        assert_eq!(
            total,
            SeqReport {
                received: 4,
                lost: 1,
                duplicated: 1,
                reordered: 0,
            }
        );
    }
}
