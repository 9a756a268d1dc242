//! `/metrics` of a gateway and of a worker (separate processes on one Redis), parsed by
//! `prometheus_client.parser` after a chat, a bad frame, a cancelled answer and an
//! answer with two tool calls (one that works, one whose server refuses the
//! connection): every family the contract names is there with its type, and the counts
//! moved by exactly what happened.

use crate::cluster::{Cluster, wait_http};
use crate::python;
use crate::socket::Socket;
use serde_json::{Value, json};
use shared::testkit::free_port;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Parses Prometheus text from stdin with the reference parser; prints
/// `{family: {"type": ..., "samples": [[name, labels, value], ...]}}`.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type,
                        "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(out))
"#;

/// One scrape, as the parser read it.
struct Scrape(BTreeMap<String, Value>);

impl Scrape {
    async fn of(url: &str) -> Self {
        let response = reqwest::get(url).await.expect("scrape");
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = response.text().await.unwrap();
        let parsed: BTreeMap<String, Value> =
            serde_json::from_str(&python::run(PARSE, &[], &text)).expect("parser output");
        Self(parsed)
    }

    /// The family's type; panics when the family is missing. `name` is the
    /// exposition name (`_total` included), as the contract writes it.
    fn kind(&self, name: &str) -> &str {
        let family = name.strip_suffix("_total").unwrap_or(name);
        self.0
            .get(family)
            .unwrap_or_else(|| panic!("no family {name} in {:?}", self.0.keys()))["type"]
            .as_str()
            .unwrap()
    }

    /// The value of the sample `sample` whose labels include `labels` (0 when absent).
    fn value(&self, sample: &str, labels: Value) -> f64 {
        let family = sample
            .strip_suffix("_total")
            .or_else(|| sample.strip_suffix("_count"))
            .or_else(|| sample.strip_suffix("_sum"))
            .or_else(|| sample.strip_suffix("_bucket"))
            .unwrap_or(sample);
        let Some(found) = self.0.get(family) else {
            return 0.0;
        };
        let wanted = labels.as_object().unwrap();
        found["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s[0] == sample)
            .filter(|s| wanted.iter().all(|(k, v)| &s[1][k] == v))
            .map(|s| s[2].as_f64().unwrap())
            .sum()
    }

    /// Every label value of every sample, to check none is an id.
    fn label_values(&self) -> Vec<String> {
        self.0
            .values()
            .flat_map(|f| f["samples"].as_array().unwrap().clone())
            .flat_map(|s| {
                s[1].as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Scrapes until `ready` holds (a worker counts an answer just after publishing it,
/// and its families one after the other).
async fn scrape_until(url: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = Scrape::of(url).await;
        if ready(&scrape) || Instant::now() > deadline {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An agent file with a knowledge base (`kb`) and a webhook (`book`) on a loopback
/// port where nothing listens; returns the file.
fn agent_with_two_tools() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("observe-agent-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("kb")).expect("temp dir");
    std::fs::write(dir.join("kb/prices.md"), "A blood test costs 25 euros.").unwrap();
    let file = dir.join("agent.yaml");
    std::fs::write(
        &file,
        format!(
            "name: Metrics Agent\ntools:\n\
             - {{name: kb, type: knowledge_base, description: Clinic facts., documents: kb}}\n\
             - {{name: book, type: webhook, description: Books., url: 'http://127.0.0.1:{}/hook', timeout_secs: 2}}\n",
            free_port()
        ),
    )
    .unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_families_move_with_a_chat_a_bad_frame_a_cancel_and_tool_calls() {
    worker::llm::install_crypto_provider();
    let mut cluster = Cluster::start(1, 0, &[]);
    let agent = agent_with_two_tools();
    cluster.set_worker_env("AGENT_FILE", agent.to_str().unwrap());
    cluster.set_worker_env("TOOL_URL_ALLOWLIST", "127.0.0.1");
    let probe_port = free_port();
    cluster.workers.push(cluster.spawn_worker_on(0, probe_port));
    let worker_url = format!("http://127.0.0.1:{probe_port}");
    wait_http(&format!("{worker_url}/livez"), Duration::from_secs(15));
    let gateway = cluster.gateway_urls()[0].clone();
    let gateway_metrics = format!("http://{gateway}/metrics");
    let worker_metrics = format!("{worker_url}/metrics");

    // Before anything happened every family of each side is there, at zero.
    let before = Scrape::of(&gateway_metrics).await;
    assert_eq!(before.kind("chat_sockets_open"), "gauge");
    assert_eq!(before.value("chat_sockets_open", json!({})), 0.0);
    let before = Scrape::of(&worker_metrics).await;
    assert_eq!(before.kind("chat_messages_total"), "counter");
    assert_eq!(before.value("chat_messages_total", json!({})), 0.0);
    // The agent's tools are series from the start.
    assert_eq!(before.kind("chat_tool_calls_total"), "counter");
    for (tool, outcome) in [
        ("kb", "ok"),
        ("kb", "error"),
        ("book", "ok"),
        ("book", "error"),
    ] {
        let labels = json!({"tool": tool, "outcome": outcome});
        let samples = before.0["chat_tool_calls"]["samples"].as_array().unwrap();
        assert!(
            samples.iter().any(|s| s[1] == labels),
            "no series {labels} before any call"
        );
        assert_eq!(before.value("chat_tool_calls_total", labels), 0.0);
    }

    let session = uuid::Uuid::new_v4().to_string();
    let mut socket = Socket::open(&gateway, &session).await;

    // A chat.
    socket.send_text(r#"{"message":"hello there"}"#).await;
    let complete = socket.answer().await;
    assert_eq!(complete["type"], "complete", "{complete}");
    // A bad frame.
    socket.send_text("this is not json").await;
    let error = socket.next().await;
    assert_eq!(error["code"], "invalid_json", "{error}");
    // A cancelled answer: cancel once the first chunk is out.
    socket
        .send_text(r#"{"message":"a long one, please"}"#)
        .await;
    socket.until(|e| e["type"] == "chunk").await;
    socket.send_text(r#"{"type":"cancel"}"#).await;
    let cancelled = socket.answer().await;
    assert_eq!(cancelled["type"], "complete", "{cancelled}");
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    // An answer with two tool calls in one turn: `kb` answers, `book` cannot connect.
    socket
        .send_text(r#"{"message":"How much is a blood test? [mock:tool=kb][mock:tool=book]"}"#)
        .await;
    let mut called = Vec::new();
    let with_tools = loop {
        let event = socket.next().await;
        match event["type"].as_str() {
            Some("function_called") => called.push(event["function_name"].clone()),
            Some("complete" | "error") => break event,
            _ => {}
        }
    };
    socket.until(|e| e["status"] == "ready").await;
    assert_eq!(with_tools["type"], "complete", "{with_tools}");
    called.sort_by_key(|name| name.to_string());
    assert_eq!(called, [json!("book"), json!("kb")]);

    let gateway_scrape = Scrape::of(&gateway_metrics).await;
    // The answer's duration is the last thing a worker records for it.
    let worker_scrape = scrape_until(&worker_metrics, |s| {
        s.value("chat_answer_duration_seconds_count", json!({})) >= 3.0
    })
    .await;

    // The gateway's side.
    let g = &gateway_scrape;
    assert_eq!(g.kind("chat_sockets_open"), "gauge");
    assert_eq!(
        g.value("chat_sockets_open", json!({"protocol": "stream"})),
        1.0
    );
    assert_eq!(
        g.value("chat_sockets_open", json!({"protocol": "simple"})),
        0.0
    );
    assert_eq!(g.kind("chat_messages_accepted_total"), "counter");
    assert_eq!(g.value("chat_messages_accepted_total", json!({})), 3.0);
    assert_eq!(g.kind("chat_messages_rejected_total"), "counter");
    assert_eq!(
        g.value(
            "chat_messages_rejected_total",
            json!({"reason": "invalid_json"})
        ),
        1.0
    );
    assert_eq!(g.value("chat_messages_rejected_total", json!({})), 1.0);
    assert_eq!(g.kind("chat_events_forwarded_total"), "counter");
    // Three answers: typing, at least one chunk, complete, ready each; two
    // `function_called`.
    let forwarded = g.value("chat_events_forwarded_total", json!({"protocol": "stream"}));
    assert!(forwarded >= 14.0, "forwarded {forwarded}");
    assert_eq!(g.kind("chat_slow_client_closes_total"), "counter");
    assert_eq!(g.value("chat_slow_client_closes_total", json!({})), 0.0);
    assert_eq!(g.kind("chat_inbox_backlog"), "gauge");
    assert_eq!(g.value("chat_inbox_backlog", json!({})), 0.0);
    assert_eq!(g.kind("chat_inbox_oldest_pending_seconds"), "gauge");
    assert_eq!(g.kind("chat_pubsub_reconnects_total"), "counter");
    assert_eq!(g.kind("chat_store_errors_total"), "counter");
    assert_eq!(g.value("chat_store_errors_total", json!({})), 0.0);

    // The worker's side.
    let w = &worker_scrape;
    assert_eq!(w.kind("chat_messages_total"), "counter");
    assert_eq!(
        w.value("chat_messages_total", json!({"outcome": "complete"})),
        2.0
    );
    assert_eq!(
        w.value("chat_messages_total", json!({"outcome": "cancelled"})),
        1.0
    );
    assert_eq!(
        w.value("chat_messages_total", json!({"outcome": "error"})),
        0.0
    );
    assert_eq!(w.kind("chat_first_chunk_seconds"), "histogram");
    assert_eq!(w.value("chat_first_chunk_seconds_count", json!({})), 3.0);
    assert!(w.value("chat_first_chunk_seconds_sum", json!({})) > 0.0);
    let inf = w.value("chat_first_chunk_seconds_bucket", json!({"le": "+Inf"}));
    assert_eq!(inf, 3.0);
    assert_eq!(w.kind("chat_answer_duration_seconds"), "histogram");
    assert_eq!(
        w.value("chat_answer_duration_seconds_count", json!({})),
        3.0
    );
    assert_eq!(w.kind("chat_llm_requests_total"), "counter");
    // The chat's request, and the tool answer's two (the calls, then the answer).
    assert_eq!(
        w.value("chat_llm_requests_total", json!({"outcome": "ok"})),
        3.0
    );
    assert_eq!(
        w.value("chat_llm_requests_total", json!({"outcome": "cancelled"})),
        1.0
    );
    assert_eq!(
        w.value("chat_llm_requests_total", json!({"outcome": "error"})),
        0.0
    );
    assert_eq!(w.kind("chat_llm_first_token_seconds"), "histogram");
    assert_eq!(
        w.value("chat_llm_first_token_seconds_count", json!({})),
        4.0
    );
    assert_eq!(w.kind("chat_tool_calls_total"), "counter");
    for (tool, outcome, count) in [
        ("kb", "ok", 1.0),
        ("kb", "error", 0.0),
        ("book", "ok", 0.0),
        ("book", "error", 1.0),
    ] {
        assert_eq!(
            w.value(
                "chat_tool_calls_total",
                json!({"tool": tool, "outcome": outcome})
            ),
            count,
            "{tool} {outcome}"
        );
    }
    assert_eq!(w.kind("chat_inbox_backlog"), "gauge");
    assert_eq!(w.kind("chat_reclaims_total"), "counter");
    assert_eq!(w.value("chat_reclaims_total", json!({})), 0.0);
    assert_eq!(w.kind("chat_dead_letters_total"), "counter");
    assert_eq!(w.value("chat_dead_letters_total", json!({})), 0.0);

    // Bounded labels: no session or message id anywhere.
    for value in g.label_values().into_iter().chain(w.label_values()) {
        assert!(
            uuid::Uuid::parse_str(&value).is_err() && value != session,
            "label value {value} looks like an id"
        );
    }
    let _ = std::fs::remove_dir_all(agent.parent().unwrap());
}
