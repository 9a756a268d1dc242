//! Traces as a collector receives them: a gateway and workers as separate processes
//! (real binaries, a real `redis-server`, `mock-llm`) export over OTLP/HTTP to a
//! third-party receiver (`oteltap`, PyPI, decoding with `opentelemetry-proto`).
//! One message is one trace, the workers' spans descend from the gateway's, a message
//! taken over after its worker was SIGKILLed still joins its trace, spans held in the
//! batch go out on SIGTERM, and the log lines inside a message's spans carry its trace
//! id.

use crate::cluster::Cluster;
use crate::socket::Socket;
use serde_json::Value;
use shared::testkit::free_port;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The receiver process and the spans it printed so far.
struct Receiver {
    child: Child,
    port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Self {
        let port = free_port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/observe/otlp_receiver.py"
        );
        let mut child = Command::new(crate::python::python())
            .arg(script)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the OTLP receiver starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = lines
            .next()
            .expect("the receiver says it is ready")
            .expect("a line");
        assert!(ready.contains("ready"), "{ready}");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let span: Value = serde_json::from_str(&line).expect("a span as JSON");
                sink.lock().unwrap().push(span);
            }
        });
        Self { child, port, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (up to 30 s: waiting, not speed) until the received spans satisfy `done`.
    fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: received {:#?}",
                names(&spans)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(spans: &[Value]) -> Vec<String> {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} trace={} id={} parent={} {}",
                s["name"], s["trace_id"], s["span_id"], s["parent_span_id"], s["attributes"]
            )
        })
        .collect()
}

/// The span named `name` whose attribute `key` is `value` (the only one).
fn find<'a>(spans: &'a [Value], name: &str, key: &str, value: &str) -> Option<&'a Value> {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == name && s["attributes"][key] == value)
        .collect();
    assert!(
        found.len() <= 1,
        "more than one {name}: {:#?}",
        names(spans)
    );
    found.first().copied()
}

fn children<'a>(spans: &'a [Value], parent: &Value) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["parent_span_id"] == parent["span_id"])
        .collect()
}

/// Every span of `root`'s trace reaches `root` through its parents, and nothing in
/// that trace is parentless but `root`.
fn assert_one_tree(spans: &[Value], root: &Value) {
    let trace: Vec<&Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == root["trace_id"])
        .collect();
    for span in &trace {
        let mut at = *span;
        let mut hops = 0;
        while at["span_id"] != root["span_id"] {
            at = trace
                .iter()
                .find(|s| s["span_id"] == at["parent_span_id"])
                .unwrap_or_else(|| {
                    panic!(
                        "{} is not a descendant of the gateway's span: {:#?}",
                        span["name"],
                        names(spans)
                    )
                });
            hops += 1;
            assert!(hops < 10, "a cycle of parents");
        }
    }
    assert_eq!(root["parent_span_id"], "", "the gateway's span is the root");
}

/// An agent with a knowledge base (`kb`), so an answer makes a tool call.
fn agent_file() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("traces-agent-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("kb")).expect("agent dir");
    std::fs::write(
        dir.join("kb/hours.md"),
        "We are open from 8 to 18 on weekdays.",
    )
    .expect("kb document");
    let file = dir.join("agent.yaml");
    std::fs::write(
        &file,
        "name: Trace Agent\ntools:\n  - {name: kb, type: knowledge_base, description: Opening hours., documents: kb}\n",
    )
    .expect("agent file");
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_message_from_gateway_to_workers_even_after_a_worker_is_killed() {
    let receiver = Receiver::start();
    let mut cluster = Cluster::start(0, 0, &[]);
    cluster.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint());
    // Spans wait in the batch until the process stops: whatever arrives was sent by
    // the flush at shutdown.
    cluster.set_env("OTEL_BSP_SCHEDULE_DELAY", "600000");
    // The gateway logs each queued message at debug; the workers' restart is a warning.
    cluster.set_env("RUST_LOG", "warn,gateway::ws::socket=debug");
    let agent = agent_file();
    cluster.set_env("AGENT_FILE", agent.to_str().expect("utf-8 path"));
    let port = free_port();
    let gateway = cluster.spawn_gateway(port);
    cluster.gateways.push((gateway, port));
    cluster.workers.push(cluster.spawn_worker(0));
    let session = uuid::Uuid::new_v4().to_string();
    let mut socket = Socket::open(&format!("127.0.0.1:{port}"), &session).await;

    // Message 1: answered with one tool call by worker 0, which then stops (SIGTERM).
    socket
        .send_text(r#"{"message":"When are you open? [mock:tool=kb]"}"#)
        .await;
    let first = socket.answer().await;
    assert_eq!(first["type"], "complete", "{first}");
    let first_id = first["message_id"].as_str().expect("message id").to_owned();
    assert!(cluster.workers[0].terminate(Duration::from_secs(20)));
    let spans = receiver.wait_for("worker 0's spans, flushed at SIGTERM", |spans| {
        spans.iter().any(|s| s["name"] == "chat.answer")
    });
    assert!(
        spans.iter().all(|s| s["name"] != "chat.message"),
        "the gateway (still running) holds its spans until it stops: {:#?}",
        names(&spans)
    );

    // Message 2: worker 1 is SIGKILLed mid-answer; worker 2 takes the message over.
    cluster.workers.push(cluster.spawn_worker(1));
    socket.send_text(r#"{"message":"And on Sunday?"}"#).await;
    socket.until(|e| e["type"] == "chunk").await;
    cluster.workers[1].kill();
    cluster.workers.push(cluster.spawn_worker(2));
    socket
        .until(|e| e["type"] == "status" && e["status"] == "restarted")
        .await;
    let second = socket.answer().await;
    assert_eq!(second["type"], "complete", "{second}");
    let second_id = second["message_id"]
        .as_str()
        .expect("message id")
        .to_owned();

    assert!(cluster.workers[2].terminate(Duration::from_secs(20)));
    assert!(cluster.gateways[0].0.terminate(Duration::from_secs(20)));
    let spans = receiver.wait_for("the gateway's spans and worker 2's", |spans| {
        let of = |name: &str, id: &str| find(spans, name, "message_id", id).is_some();
        of("chat.message", &first_id) && of("chat.message", &second_id) && {
            spans
                .iter()
                .any(|s| s["name"] == "chat.answer" && s["attributes"]["message_id"] == second_id)
        }
    });

    // Message 1: one trace, the gateway's span at its root.
    let gateway_1 = find(&spans, "chat.message", "message_id", &first_id).unwrap();
    assert_eq!(gateway_1["attributes"]["session_id"], session.as_str());
    assert_eq!(gateway_1["attributes"]["outcome"], "accepted");
    let answer_1 = find(&spans, "chat.answer", "message_id", &first_id).unwrap();
    assert_eq!(answer_1["trace_id"], gateway_1["trace_id"]);
    assert_eq!(answer_1["parent_span_id"], gateway_1["span_id"]);
    assert_eq!(answer_1["attributes"]["tries"], 1);
    assert_eq!(answer_1["attributes"]["outcome"], "complete");
    let parts = children(&spans, answer_1);
    let named = |name: &str| -> Vec<&Value> {
        parts
            .iter()
            .copied()
            .filter(|s| s["name"] == name)
            .collect()
    };
    assert_eq!(named("queue.wait").len(), 1, "{:#?}", names(&spans));
    assert_eq!(named("prompt.build").len(), 1, "{:#?}", names(&spans));
    assert_eq!(named("store.finish").len(), 1, "{:#?}", names(&spans));
    let tool = named("tool.call");
    assert_eq!(tool.len(), 1, "{:#?}", names(&spans));
    assert_eq!(tool[0]["attributes"]["tool"], "kb");
    assert_eq!(tool[0]["attributes"]["outcome"], "ok");
    // The turn that asked for the tool, then the answer from its result.
    let requests = named("llm.request");
    assert_eq!(requests.len(), 2, "{:#?}", names(&spans));
    let mut requests = requests.clone();
    requests.sort_by_key(|s| s["start_ns"].as_u64());
    assert_eq!(requests[0]["attributes"]["tool_calls"], 1);
    assert_eq!(requests[1]["attributes"]["tool_calls"], 0);
    for request in &requests {
        assert_eq!(request["attributes"]["outcome"], "ok");
        let first_token = request["attributes"]["time_to_first_token_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("time to first token on {request}"));
        assert!(first_token >= 0.0, "{request}");
    }
    // The wait in the queue starts when the gateway accepted the message (ms resolution).
    let wait = named("queue.wait")[0];
    let accepted = gateway_1["start_ns"].as_u64().unwrap();
    assert!(
        wait["start_ns"].as_u64().unwrap() + 1_000_000 >= accepted,
        "{wait} starts before {gateway_1}"
    );
    assert_one_tree(&spans, gateway_1);

    // Message 2: a trace of its own, which the worker that took it over joined.
    let gateway_2 = find(&spans, "chat.message", "message_id", &second_id).unwrap();
    assert_ne!(
        gateway_2["trace_id"], gateway_1["trace_id"],
        "one trace per message"
    );
    let answer_2 = find(&spans, "chat.answer", "message_id", &second_id).unwrap();
    assert_eq!(answer_2["trace_id"], gateway_2["trace_id"]);
    assert_eq!(answer_2["parent_span_id"], gateway_2["span_id"]);
    assert_eq!(answer_2["attributes"]["tries"], 2, "the reclaimed try");
    assert_eq!(answer_2["attributes"]["outcome"], "complete");
    let parts: Vec<String> = children(&spans, answer_2)
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    for part in ["queue.wait", "prompt.build", "llm.request", "store.finish"] {
        assert!(parts.iter().any(|p| p == part), "{part} in {parts:?}");
    }
    assert_one_tree(&spans, gateway_2);

    // Log lines inside a message's spans carry its trace id.
    let trace_1 = gateway_1["trace_id"].as_str().unwrap();
    let trace_2 = gateway_2["trace_id"].as_str().unwrap();
    let gateway_log = cluster.gateways[0].0.log();
    for trace in [trace_1, trace_2] {
        assert!(
            gateway_log
                .lines()
                .any(|l| l.contains("message queued") && l.contains(trace)),
            "the gateway's log names trace {trace}:\n{gateway_log}"
        );
    }
    let taker_log = cluster.workers[2].log();
    assert!(
        taker_log
            .lines()
            .any(|l| l.contains("restarting a message") && l.contains(trace_2)),
        "worker 2's log names trace {trace_2}:\n{taker_log}"
    );
    let _ = std::fs::remove_dir_all(agent.parent().unwrap());
}
