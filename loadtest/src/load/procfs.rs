//! Resident memory, CPU time and wake-ups of a process, from `/proc/<pid>/status`
//! (`VmRSS`), `/proc/<pid>/stat` (`utime + stime`, every thread included) and each
//! thread's `voluntary_ctxt_switches`, as the benchmarks measure the gateway and its
//! baselines. Linux only; elsewhere samples are `None`.

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcSample {
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// User + system CPU time so far, µs (clock-tick resolution, usually 10 ms).
    pub cpu_us: u64,
    /// Times a thread went to sleep so far (to wait for I/O, a timer or another
    /// thread), summed over the live threads: each is a wake-up later, which on a
    /// lightly loaded process costs more than most of the work it wakes for.
    pub wakeups: u64,
}

/// Reads `pid` now; `None` when it is gone or `/proc` is unreadable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(ProcSample {
        rss_kib: rss_kib(&status)?,
        cpu_us: cpu_ticks(&stat)? * 1_000_000 / clock_ticks_per_second(),
        wakeups: wakeups(pid),
    })
}

/// `voluntary_ctxt_switches` summed over the threads of `pid` (0 when unreadable).
fn wakeups(pid: u32) -> u64 {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    threads
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|status| voluntary_switches(&status))
        .sum()
}

/// `voluntary_ctxt_switches` of a `/proc/.../status` text.
fn voluntary_switches(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with("voluntary_ctxt_switches:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `VmRSS` of a `/proc/<pid>/status` text, in KiB.
fn rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` of a `/proc/<pid>/stat` text, in clock ticks. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK`, read once; 100 (Linux's value everywhere that matters) if that fails.
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t: &u64| t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tgateway\nVmPeak:\t  9999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\nvoluntary_ctxt_switches:\t417\nnonvoluntary_ctxt_switches:\t9\n";
        assert_eq!(rss_kib(status), Some(12345));
        assert_eq!(voluntary_switches(status), Some(417));
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn samples_this_process() {
        let me = sample(std::process::id()).expect("/proc is readable on Linux");
        assert!(me.rss_kib > 0);
        // A sleep is a voluntary switch of this thread, counted in the next sample.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = sample(std::process::id()).unwrap();
        assert!(later.wakeups > me.wakeups, "{me:?} {later:?}");
        assert!(sample(u32::MAX).is_none());
    }
}
