//! The report as one self-contained HTML page: summary tables, latency histograms and
//! throughput over time as inline SVG. No script, no external file, no CDN: it opens
//! from disk or a CI artifact as it is.

use std::fmt::Write;

use super::Report;
use crate::load::live::rates;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const PAD: f64 = 40.0;

/// The page.
pub fn render(r: &Report) -> String {
    let mut body = String::new();
    let s = &r.settings;
    let _ = write!(
        body,
        "<h1>loadtest: {}</h1><p class=meta>{} &middot; {} sessions &times; {} messages &middot; {} &middot; <code>{}</code></p>",
        esc(&r.mode),
        esc(&r.started_at),
        s.sessions,
        if s.messages == 0 {
            "unbounded".to_owned()
        } else {
            s.messages.to_string()
        },
        match s.rate {
            Some(rate) => format!("open loop {rate} msg/s per session"),
            None => "closed loop".to_owned(),
        },
        esc(&r.command),
    );
    let verdict = if r.checks.clean { "clean" } else { "not clean" };
    let w = &r.window;
    let _ = write!(
        body,
        "<h2>Summary <span class=\"badge {}\">{verdict}</span></h2><table>\
         <tr><th>sessions connected</th><td>{} / {}</td><th>window</th><td>{:.2} s</td></tr>\
         <tr><th>messages sent</th><td>{}</td><th>completed</th><td>{}</td></tr>\
         <tr><th>failed / rejected / timed out</th><td>{} / {} / {}</td><th>chunks</th><td>{}</td></tr>\
         <tr><th>chunks/s</th><td>{:.1}</td><th>messages/s</th><td>{:.1}</td></tr>\
         <tr><th>seq lost / duplicated / reordered</th><td>{} / {} / {}</td><th>out of order / mismatched</th><td>{} / {}</td></tr>\
         </table>",
        if r.checks.clean { "ok" } else { "bad" },
        r.sessions.connected,
        r.sessions.requested,
        w.secs,
        r.messages.sent,
        r.messages.completed,
        r.messages.failed,
        r.messages.rejected,
        r.messages.timed_out,
        r.chunks.total,
        w.chunks_per_sec,
        w.messages_per_sec,
        r.checks.seq.lost,
        r.checks.seq.duplicated,
        r.checks.seq.reordered,
        r.checks.order_violations,
        r.checks.content_mismatches,
    );
    body.push_str("<h2>Latency (ms)</h2><table><tr><th></th><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    let rows = r.latency_rows();
    for (name, q) in rows.iter().filter(|(_, q)| q.count > 0) {
        let _ = write!(
            body,
            "<tr><th>{name}</th><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            q.count, q.mean, q.p50, q.p90, q.p99, q.p999, q.max
        );
    }
    if let Some(tap) = &r.tap {
        let q = &tap.added_ms;
        let _ = write!(
            body,
            "<tr><th>added per chunk</th><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            q.count, q.mean, q.p50, q.p90, q.p99, q.p999, q.max
        );
    }
    body.push_str("</table>");
    if !r.errors.is_empty() {
        body.push_str("<h2>Errors</h2><table>");
        for (code, n) in &r.errors {
            let _ = write!(body, "<tr><th>{}</th><td>{n}</td></tr>", esc(code));
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Throughput over time</h2>");
    let series = rates(&r.timeline);
    body.push_str(&line_chart(
        "chunks/s",
        &series.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
    ));
    body.push_str(&line_chart(
        "messages/s",
        &series.iter().map(|p| (p.0, p.2)).collect::<Vec<_>>(),
    ));
    body.push_str("<h2>Latency histograms</h2>");
    for (name, buckets) in [
        ("typing", &r.histograms.typing),
        ("first chunk", &r.histograms.first_chunk),
        ("complete", &r.histograms.complete),
    ] {
        if !buckets.is_empty() {
            body.push_str(&bar_chart(name, buckets));
        }
    }
    if !r.processes.is_empty() {
        body.push_str("<h2>Processes</h2><table><tr><th>name</th><th>pid</th><th>RSS before (KiB)</th><th>RSS window start</th><th>RSS end</th><th>CPU in window (ms)</th><th>wake-ups in window</th></tr>");
        for p in &r.processes {
            let rss = |s: Option<crate::load::procfs::ProcSample>| {
                s.map_or("-".into(), |s| s.rss_kib.to_string())
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.name),
                p.pid,
                rss(p.before_connect),
                rss(p.window_start),
                rss(p.window_end),
                p.cpu_window_us
                    .map_or("-".into(), |c| format!("{:.0}", c as f64 / 1000.0)),
                p.wakeups_window.map_or("-".into(), |n| n.to_string()),
            );
        }
        body.push_str("</table>");
    }
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>loadtest report</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:900px}\
table{border-collapse:collapse;margin:8px 0}th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}\
th{text-align:left;font-weight:600}.meta{color:#666}.badge{font-size:12px;padding:2px 8px;border-radius:8px}\
.ok{background:#d7f5dd;color:#135a24}.bad{background:#fbd5d5;color:#8a1010}svg{display:block;margin:6px 0 18px}\
svg text{font:11px system-ui,sans-serif;fill:#444}";

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar per bucket, x labelled with bucket upper bounds (ms).
fn bar_chart(title: &str, buckets: &[(f64, u64)]) -> String {
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let inner = WIDTH - 2.0 * PAD;
    let bar = inner / buckets.len() as f64;
    let mut svg = format!(
        "<svg width=\"{WIDTH}\" height=\"{}\" viewBox=\"0 0 {WIDTH} {}\" role=img aria-label=\"{title}\"><text x=\"{PAD}\" y=\"14\">{title} (count per latency bucket, ms)</text>",
        HEIGHT + 20.0,
        HEIGHT + 20.0
    );
    let label_every = (buckets.len() / 8).max(1);
    for (i, (upper, count)) in buckets.iter().enumerate() {
        let h = (*count as f64 / max) * (HEIGHT - 2.0 * PAD);
        let x = PAD + i as f64 * bar;
        let y = HEIGHT - PAD - h;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4a7fd4\"><title>&le; {upper} ms: {count}</title></rect>",
            (bar - 1.0).max(1.0)
        );
        if i % label_every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                HEIGHT - PAD + 14.0,
                short(*upper)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"4\" y=\"{:.1}\">{max:.0}</text><line x1=\"{PAD}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/></svg>",
        PAD + 4.0,
        HEIGHT - PAD,
        WIDTH - PAD,
        HEIGHT - PAD
    );
    svg
}

/// A polyline of `(t seconds, value)`.
fn line_chart(title: &str, points: &[(f64, f64)]) -> String {
    let mut svg = format!(
        "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=img aria-label=\"{title}\"><text x=\"{PAD}\" y=\"14\">{title} over time (s)</text>"
    );
    if points.is_empty() {
        svg.push_str("<text x=\"40\" y=\"100\">no data</text></svg>");
        return svg;
    }
    let t_max = points.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let v_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    let x = |t: f64| PAD + t / t_max * (WIDTH - 2.0 * PAD);
    let y = |v: f64| HEIGHT - PAD - v / v_max * (HEIGHT - 2.0 * PAD);
    let path: Vec<String> = points
        .iter()
        .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect();
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"#d4574a\" stroke-width=\"1.5\" points=\"{}\"/>\
         <line x1=\"{PAD}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
         <text x=\"4\" y=\"{:.1}\">{}</text><text x=\"4\" y=\"{:.1}\">0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\">{t_max:.1}</text></svg>",
        path.join(" "),
        HEIGHT - PAD,
        WIDTH - PAD,
        HEIGHT - PAD,
        PAD + 4.0,
        short(v_max),
        HEIGHT - PAD,
        WIDTH - PAD - 20.0,
        HEIGHT - PAD + 14.0,
    );
    svg
}

/// A compact number label.
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let html = super::render(&super::super::tests::sample_report());
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<svg"), "charts are inline SVG");
        assert!(html.contains("<polyline"), "throughput chart");
        assert!(html.contains("<rect"), "histogram bars");
        assert!(!html.contains("<script"), "no scripts");
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "nothing fetched"
        );
        assert!(!html.contains("<b>"), "user text is escaped");
    }
}
