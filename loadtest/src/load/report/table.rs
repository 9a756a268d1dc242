//! The report as a plain-text table for the terminal.

use std::fmt::Write;

use super::Report;

/// The whole report as lines of text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let s = &r.settings;
    let pacing = match s.rate {
        Some(rate) => format!("open loop at {rate} msg/s per session"),
        None if s.stagger_ms > 0 => format!(
            "closed loop (think {} ms, first sends spread over {} ms)",
            s.think_ms, s.stagger_ms
        ),
        None => format!("closed loop (think {} ms)", s.think_ms),
    };
    let _ = writeln!(
        out,
        "loadtest {}: {} sessions ({} connected, {} failed), {} messages each, {pacing}, {} URL(s){}",
        r.mode,
        r.sessions.requested,
        r.sessions.connected,
        r.sessions.failed,
        if s.messages == 0 {
            "unbounded".to_owned()
        } else {
            s.messages.to_string()
        },
        s.urls.len(),
        if s.authenticated {
            ", authenticated"
        } else {
            ""
        },
    );
    let w = &r.window;
    let _ = writeln!(
        out,
        "phase {:.2} s; window {:.2} s from {:.2} s",
        r.phase_secs, w.secs, w.start_secs
    );
    let m = &r.messages;
    let _ = writeln!(
        out,
        "messages    sent {}  completed {}  failed {}  rejected {}  timed out {}",
        m.sent, m.completed, m.failed, m.rejected, m.timed_out
    );
    let _ = writeln!(
        out,
        "throughput  {:.1} chunks/s  {:.1} msgs/s  {:.1} events/s  {:.2} MB/s",
        w.chunks_per_sec,
        w.messages_per_sec,
        w.events_per_sec,
        w.bytes as f64 / w.secs.max(1e-9) / 1e6
    );
    let _ = writeln!(
        out,
        "{:<16}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "latency (ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    let rows = r.latency_rows();
    for (name, q) in rows {
        if q.count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<14}{:>9}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
            name, q.count, q.mean, q.p50, q.p90, q.p99, q.p999, q.max
        );
    }
    if let Some(tap) = &r.tap {
        let q = &tap.added_ms;
        let _ = writeln!(
            out,
            "  {:<14}{:>9}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}   (socket minus plain subscriber, {} unmatched)",
            "added/chunk", q.count, q.mean, q.p50, q.p90, q.p99, q.p999, q.max, tap.unmatched
        );
    }
    let c = &r.chunks;
    let _ = writeln!(
        out,
        "chunks      {} total, {:.1} per message (max {}), {} bytes",
        c.total, c.per_message_mean, c.per_message_max, c.bytes
    );
    let k = &r.checks;
    let _ = writeln!(
        out,
        "checks      seq: {} received, {} lost, {} duplicated, {} reordered; {} out of order, {} mismatched, {} unexpected, {} restarts => {}",
        k.seq.received,
        k.seq.lost,
        k.seq.duplicated,
        k.seq.reordered,
        k.order_violations,
        k.content_mismatches,
        k.unexpected_events,
        k.restarts,
        if k.clean { "CLEAN" } else { "NOT CLEAN" }
    );
    if r.errors.is_empty() {
        let _ = writeln!(out, "errors      none");
    } else {
        let list: Vec<String> = r.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(out, "errors      {}", list.join(", "));
    }
    for p in &r.processes {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let rss = |s: Option<crate::load::procfs::ProcSample>| {
            s.map_or("-".to_owned(), |s| format!("{:.1}", mib(s.rss_kib)))
        };
        let per_chunk = match (p.cpu_window_us, w.chunks) {
            (Some(cpu), chunks) if chunks > 0 => {
                format!(", {:.2} µs/chunk", cpu as f64 / chunks as f64)
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "process     {} (pid {}): RSS MiB before {} / window start {} / end {}; CPU in window {} ms{per_chunk}; wake-ups in window {}",
            p.name,
            p.pid,
            rss(p.before_connect),
            rss(p.window_start),
            rss(p.window_end),
            p.cpu_window_us
                .map_or("-".to_owned(), |c| format!("{:.0}", c as f64 / 1000.0)),
            p.wakeups_window.map_or("-".to_owned(), |n| n.to_string()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_names_every_figure() {
        let text = super::render(&super::super::tests::sample_report());
        assert!(text.contains("completed 2"), "{text}");
        assert!(text.contains("first chunk"), "{text}");
        assert!(text.contains("CLEAN"), "{text}");
        assert!(text.contains("10000.00 µs/chunk"), "{text}");
        assert!(text.contains("wake-ups in window 300"), "{text}");
        assert!(
            !text.contains("REST create"),
            "empty rows are left out: {text}"
        );
    }
}
