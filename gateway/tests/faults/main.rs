//! The fault suite: real `redis-server`, `mock-llm`, `gateway` and `worker` processes,
//! killed (SIGKILL) or stopped (SIGTERM) and restarted under load, while careful
//! clients chat. Every scenario prints
//! its figures and asserts that nothing was lost, duplicated or left unanswered, and
//! that every answer is the right one for its conversation.
//!
//! "Unanswered" is what a client saw: no outcome within its deadline. "Lost" is
//! measured apart from it, afterwards, against the store: a message the client sent
//! that is not in the session's history (`GET .../messages`), or that is there with
//! neither a stored answer, nor an `error` the client saw, nor a place among the
//! session's messages still waiting in the inbox.

mod client;
mod cluster;

use client::{ChatClient, Outcome, Tally};
use cluster::{Cluster, Inspector, TOKENS};
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A message's deadline, generous: recovery waits out a claim lease or a reconnect.
const ANSWER_WITHIN: Duration = Duration::from_secs(45);

/// What the mock LLM answers to the `users`-th user message when `assistants` answers
/// were stored before it.
fn expected(users: usize, assistants: usize, text: &str) -> String {
    let mut messages: Vec<Value> = Vec::new();
    messages.extend((1..users).map(|_| json!({"role": "user", "content": "earlier"})));
    messages.extend((0..assistants).map(|_| json!({"role": "assistant", "content": "answer"})));
    messages.push(json!({"role": "user", "content": text}));
    loadtest::mock_llm::reply_text(&messages, TOKENS)
}

/// One conversation of `turns` messages; returns the client's tally plus wrong answers.
async fn converse(gateways: Vec<String>, index: usize, turns: usize) -> (Tally, u64, ChatClient) {
    let mut client = ChatClient::new(gateways, index).await;
    let mut wrong = 0;
    let mut assistants = 0;
    for turn in 1..=turns {
        let text = format!("client {index} turn {turn}");
        match client.exchange(&text, ANSWER_WITHIN).await {
            Outcome::Complete(answer) => {
                if answer != expected(turn, assistants, &text) {
                    eprintln!("client {index} turn {turn}: unexpected answer {answer:?}");
                    wrong += 1;
                }
                assistants += 1;
            }
            Outcome::Error(code) => eprintln!("client {index} turn {turn}: error {code}"),
            Outcome::Unanswered => eprintln!("client {index} turn {turn}: unanswered"),
        }
    }
    client.drain(Duration::from_millis(300)).await;
    (client.tally.clone(), wrong, client)
}

/// What the store holds for one client's session, compared with what it saw.
#[derive(Default)]
struct Audit {
    /// Sent, and then missing or neither answered nor failed nor waiting.
    lost: u64,
    /// Stored twice, answers not matching the completes, and the like.
    history_problems: u64,
}

/// Audits one client's session: every message it sent is stored once and is
/// answered, failed (as the client saw) or still waiting; one answer per `complete`.
async fn audit(gateways: &[String], client: &ChatClient, inspector: &Inspector) -> Audit {
    let url = format!(
        "http://{}/api/session/{}/messages?limit=200",
        gateways[0], client.session_id
    );
    let history: Value = reqwest::get(url)
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    let messages = history["messages"].as_array().expect("messages");
    let waiting = inspector.waiting(&client.session_id);
    let answers: Vec<&Value> = messages
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    let answered: std::collections::HashSet<&str> = answers
        .iter()
        .filter_map(|m| m["reply_to"].as_str())
        .collect();
    let mut audit = Audit::default();
    for exchange in &client.exchanges {
        let stored: Vec<&Value> = messages
            .iter()
            .filter(|m| m["role"] == "user" && m["content"] == exchange.text.as_str())
            .collect();
        let Some(user) = stored.first() else {
            eprintln!(
                "session {}: {:?} was sent and is not stored",
                client.session_id, exchange.text
            );
            audit.lost += 1;
            continue;
        };
        if stored.len() > 1 {
            eprintln!(
                "session {}: {:?} stored {} times",
                client.session_id,
                exchange.text,
                stored.len()
            );
            audit.history_problems += 1;
        }
        let id = user["id"].as_str().unwrap_or_default();
        let failed = matches!(exchange.outcome, Outcome::Error(_));
        if !answered.contains(id) && !failed && !waiting.iter().any(|w| w == id) {
            eprintln!(
                "session {}: {:?} is stored but neither answered, failed nor waiting",
                client.session_id, exchange.text
            );
            audit.lost += 1;
        }
    }
    if answers.len() as u64 != client.tally.completes || answered.len() != answers.len() {
        eprintln!(
            "session {}: {} answers stored for {} completes",
            client.session_id,
            answers.len(),
            client.tally.completes
        );
        audit.history_problems += 1;
    }
    audit
}

struct Verdict {
    tally: Tally,
    wrong_answers: u64,
    lost: u64,
    history_problems: u64,
    clients: Vec<ChatClient>,
}

async fn run_clients(
    gateways: Vec<String>,
    inspector: Inspector,
    clients: usize,
    turns: usize,
) -> Verdict {
    let runs = (0..clients).map(|i| converse(gateways.clone(), i, turns));
    let results = join_all(runs).await;
    let mut verdict = Verdict {
        tally: Tally::default(),
        wrong_answers: 0,
        lost: 0,
        history_problems: 0,
        clients: Vec::new(),
    };
    for (t, wrong, client) in results {
        verdict.tally.add(&t);
        verdict.wrong_answers += wrong;
        let audit = audit(&gateways, &client, &inspector).await;
        verdict.lost += audit.lost;
        verdict.history_problems += audit.history_problems;
        verdict.clients.push(client);
    }
    verdict
}

fn report(
    name: &str,
    verdict: &Verdict,
    worker_kills: u64,
    gateway_kills: u64,
    redis_restarts: u64,
    pubsub_kills: u64,
) {
    let t = &verdict.tally;
    println!(
        "faults[{name}]: {} messages, {worker_kills} worker kills, {gateway_kills} gateway kills, \
         {redis_restarts} redis restarts, {pubsub_kills} pubsub kills; lost {}, duplicate completes {}, \
         unanswered {}, errors {}, seq gaps {}, complete!=chunks {}, wrong answers {}, history problems {}; \
         {} restarts announced, {} reconnects",
        t.messages,
        verdict.lost,
        t.duplicate_outcomes,
        t.unanswered,
        t.errors,
        t.seq_gaps,
        t.complete_mismatches,
        verdict.wrong_answers,
        verdict.history_problems,
        t.restarts_seen,
        t.reconnects,
    );
    assert_eq!(verdict.lost, 0, "lost messages");
    assert_eq!(t.unanswered, 0, "unanswered messages");
    assert_eq!(t.duplicate_outcomes, 0, "duplicate outcomes");
    assert_eq!(t.errors, 0, "errors");
    assert_eq!(t.seq_gaps, 0, "seq gaps");
    assert_eq!(t.complete_mismatches, 0, "complete differs from its chunks");
    assert_eq!(verdict.wrong_answers, 0, "wrong answers");
    assert_eq!(verdict.history_problems, 0, "history problems");
    assert_eq!(t.completes, t.messages, "every message completed");
}

/// Runs a chaos thread; stops and joins it when dropped, also when a test panics, so
/// the cluster it holds is dropped and no process outlives the test.
struct Chaos {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Chaos {
    fn start(body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || body(stop)
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("chaos thread");
        }
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A pseudo-random number in `0..n` (no need for a crate to pick a victim).
fn pick(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % n as u128) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_kills_mid_stream_lose_nothing() {
    let cluster = Arc::new(Mutex::new(Cluster::start(2, 3, &[])));
    let gateways = cluster.lock().unwrap().gateway_urls();
    let inspector = cluster.lock().unwrap().inspector();
    let kills = Arc::new(AtomicU64::new(0));
    let chaos = {
        let (cluster, kills) = (cluster.clone(), kills.clone());
        Chaos::start(move |stop| {
            std::thread::sleep(Duration::from_millis(800));
            while !stop.load(Ordering::Acquire) && kills.load(Ordering::Acquire) < 12 {
                {
                    let mut cluster = cluster.lock().unwrap();
                    let victim = pick(cluster.workers.len() as u64) as usize;
                    if kills.load(Ordering::Acquire) % 4 == 3 {
                        // Graceful: stops reading, finishes what it has, exits in time.
                        let exited = cluster.workers[victim].terminate(Duration::from_secs(8));
                        assert!(exited, "a SIGTERMed worker exits within its grace period");
                    } else {
                        cluster.workers[victim].kill();
                    }
                    kills.fetch_add(1, Ordering::AcqRel);
                    let replacement =
                        cluster.spawn_worker(victim + 10 * kills.load(Ordering::Acquire) as usize);
                    cluster.workers[victim] = replacement;
                }
                std::thread::sleep(Duration::from_millis(400 + pick(500)));
            }
        })
    };
    let verdict = run_clients(gateways, inspector, 8, 5).await;
    chaos.finish();
    report("workers", &verdict, kills.load(Ordering::Acquire), 0, 0, 0);
    assert!(kills.load(Ordering::Acquire) >= 3, "the chaos ran");
    assert!(
        verdict.tally.restarts_seen >= 1,
        "some answer was taken over mid-stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gateway_kills_and_stops_resume_on_the_other() {
    let cluster = Arc::new(Mutex::new(Cluster::start(2, 2, &[])));
    let gateways = cluster.lock().unwrap().gateway_urls();
    let inspector = cluster.lock().unwrap().inspector();
    let kills = Arc::new(AtomicU64::new(0));
    let chaos = {
        let (cluster, kills) = (cluster.clone(), kills.clone());
        Chaos::start(move |stop| {
            let mut round = 0u64;
            std::thread::sleep(Duration::from_millis(700));
            while !stop.load(Ordering::Acquire) && round < 6 {
                let victim = (round % 2) as usize;
                {
                    let mut cluster = cluster.lock().unwrap();
                    let port = cluster.gateways[victim].1;
                    if round % 3 == 2 {
                        // Graceful: sockets get 1012 after in-flight events.
                        assert!(
                            cluster.gateways[victim].0.terminate(Duration::from_secs(8)),
                            "SIGTERM exits in time"
                        );
                    } else {
                        cluster.gateways[victim].0.kill();
                    }
                    kills.fetch_add(1, Ordering::AcqRel);
                    std::thread::sleep(Duration::from_millis(300));
                    let replacement = cluster.spawn_gateway(port);
                    cluster.gateways[victim].0 = replacement;
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(600 + pick(400)));
            }
        })
    };
    let verdict = run_clients(gateways, inspector, 6, 6).await;
    chaos.finish();
    report("gateways", &verdict, 0, kills.load(Ordering::Acquire), 0, 0);
    assert!(kills.load(Ordering::Acquire) >= 2, "the chaos ran");
    assert!(
        verdict.tally.reconnects >= 1,
        "clients moved between gateways"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_and_pubsub_kill_lose_nothing() {
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let cluster = Arc::new(Mutex::new(Cluster::start(2, 2, &aof)));
    let gateways = cluster.lock().unwrap().gateway_urls();
    let inspector = cluster.lock().unwrap().inspector();
    let chaos = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(900));
            let killed = cluster
                .lock()
                .unwrap()
                .redis_cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
            std::thread::sleep(Duration::from_millis(1500));
            cluster.lock().unwrap().redis().restart(&aof);
            killed.trim().parse::<u64>().unwrap_or(0)
        })
    };
    let verdict = run_clients(gateways.clone(), inspector, 6, 6).await;
    let pubsub_killed = chaos.join().unwrap();
    report("redis", &verdict, 0, 0, 1, pubsub_killed);
    assert!(
        pubsub_killed >= 2,
        "both gateways' subscriptions were killed"
    );

    // Health is green again on both instances once Redis is back.
    for gateway in &gateways {
        let health: Value = reqwest::get(format!("http://{gateway}/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "healthy", "{gateway}: {health}");
    }
}

/// The multi-instance suite on a 3-master Redis Cluster (`REDIS_URL=redis-cluster://`):
/// workers and gateways killed mid-stream, every message still answered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_redis_cluster_worker_and_gateway_kills_lose_nothing() {
    let cluster = Arc::new(Mutex::new(Cluster::start_on_redis_cluster(2, 2, 3, 0)));
    let gateways = cluster.lock().unwrap().gateway_urls();
    let inspector = cluster.lock().unwrap().inspector();
    let (worker_kills, gateway_kills) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let chaos = {
        let (cluster, worker_kills, gateway_kills) =
            (cluster.clone(), worker_kills.clone(), gateway_kills.clone());
        Chaos::start(move |stop| {
            std::thread::sleep(Duration::from_millis(800));
            let mut round = 0usize;
            while !stop.load(Ordering::Acquire) && round < 6 {
                {
                    let mut cluster = cluster.lock().unwrap();
                    let victim = round % 2;
                    if round.is_multiple_of(2) {
                        cluster.workers[victim].kill();
                        worker_kills.fetch_add(1, Ordering::AcqRel);
                        let replacement = cluster.spawn_worker(victim + 10 * (round + 1));
                        cluster.workers[victim] = replacement;
                    } else {
                        let port = cluster.gateways[victim].1;
                        cluster.gateways[victim].0.kill();
                        gateway_kills.fetch_add(1, Ordering::AcqRel);
                        let replacement = cluster.spawn_gateway(port);
                        cluster.gateways[victim].0 = replacement;
                    }
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(500 + pick(400)));
            }
        })
    };
    let verdict = run_clients(gateways, inspector, 6, 4).await;
    chaos.finish();
    let (w, g) = (
        worker_kills.load(Ordering::Acquire),
        gateway_kills.load(Ordering::Acquire),
    );
    report("redis-cluster", &verdict, w, g, 0, 0);
    assert!(w >= 1 && g >= 1, "the chaos ran");
}

/// A Redis Cluster master (3 masters, a replica each) SIGKILLed mid-stream: its replica
/// takes over its slots, the gateways' shard channels follow them, and every message
/// still ends in exactly one `complete`. Redis replicates asynchronously; on loopback
/// the replica is a fraction of a millisecond behind, so what this asserts is the
/// system's part (README "Redis Cluster and failover" says what Redis may lose).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_cluster_master_failover_mid_stream_loses_nothing() {
    let cluster = Arc::new(Mutex::new(Cluster::start_on_redis_cluster(2, 2, 3, 1)));
    let gateways = cluster.lock().unwrap().gateway_urls();
    let inspector = cluster.lock().unwrap().inspector();
    let chaos = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let keys = shared::keys::Keys::new("x", shared::keys::DEFAULT_PARTITIONS);
            let key = keys.inbox(shared::keys::Partition(0));
            let mut cluster = cluster.lock().unwrap();
            let redis = cluster.redis_cluster();
            let master = redis.master_of(&key);
            redis.kill(master);
            redis.wait_for_failover(&key);
            (master, redis.master_of(&key))
        })
    };
    let verdict = run_clients(gateways, inspector, 6, 5).await;
    let (old, new) = chaos.join().unwrap();
    report("redis-cluster-failover", &verdict, 0, 0, 0, 0);
    assert_ne!(old, new, "a replica took over");
}

/// The gateway and a worker (the real binaries) on a TLS 3-master Redis Cluster whose
/// certificates a private CA signed (`REDIS_TLS_CA_FILE`): a message sent over a
/// WebSocket is answered, its chunks crossing the cluster's sharded pub/sub over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_tls_redis_cluster_a_message_is_answered() {
    let cluster = Cluster::start_on_tls_redis_cluster(1, 1, 3);
    assert!(cluster.redis_url().starts_with("rediss-cluster://"));
    let mut client = ChatClient::new(cluster.gateway_urls(), 0).await;
    for turn in 0..2 {
        let text = format!("over tls {turn}");
        match client.exchange(&text, ANSWER_WITHIN).await {
            Outcome::Complete(answer) => assert_eq!(answer, expected(turn + 1, turn, &text)),
            Outcome::Error(error) => panic!("error: {error}"),
            Outcome::Unanswered => panic!("unanswered"),
        }
    }
}

/// A `REDIS_TLS_*` file that cannot be read, or TLS settings on a plain `REDIS_URL`,
/// end either binary at start with one line naming the setting (exit code 2).
#[test]
fn bad_tls_settings_end_both_binaries_with_one_line() {
    let cases = [
        (
            "rediss://127.0.0.1:1",
            "REDIS_TLS_CA_FILE=/nonexistent/ca.pem: ",
        ),
        (
            "redis://127.0.0.1:1",
            "REDIS_TLS_* is set but REDIS_URL is not rediss://",
        ),
    ];
    for (name, package) in [("gateway", "gateway"), ("worker", "worker")] {
        for (url, says) in cases {
            let output = std::process::Command::new(cluster::binary(name, package))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("REDIS_URL", url)
                .env("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem")
                .output()
                .expect("the binary runs");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
            assert!(stderr.contains(says), "{name}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: {stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_is_reported_and_survived() {
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut cluster = Cluster::start(1, 0, &aof);
    let probe = shared::testkit::free_port();
    let worker = cluster.spawn_worker_on(0, probe);
    cluster.workers.push(worker);
    let gateways = cluster.gateway_urls();
    let health = format!("http://{}/health", gateways[0]);
    let readyz = format!("http://127.0.0.1:{probe}/readyz");
    cluster::wait_http(&readyz, Duration::from_secs(10));

    let mut client = ChatClient::new(gateways.clone(), 0).await;
    assert!(matches!(
        client.exchange("before", ANSWER_WITHIN).await,
        Outcome::Complete(_)
    ));

    // A socket attached before the outage, to send on during it.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws/{}?protocol=stream",
        gateways[0], client.session_id
    ))
    .await
    .expect("socket attaches");
    let connected = next_text(&mut socket).await;
    assert_eq!(connected["status"], "connected", "{connected}");

    cluster.redis().kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while cluster::http_status(&health) != Some(503) || cluster::http_status(&readyz) != Some(503) {
        assert!(
            std::time::Instant::now() < deadline,
            "probes did not report the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A message sent meanwhile gets the `unavailable` error the README promises.
    {
        use futures_util::SinkExt;
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                json!({"message": "during"}).to_string().into(),
            ))
            .await
            .expect("send during the outage");
    }
    let answer = next_text(&mut socket).await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "unavailable", "{answer}");

    cluster.redis().restart(&aof);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while cluster::http_status(&health) != Some(200) || cluster::http_status(&readyz) != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "probes did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = client.exchange("after", ANSWER_WITHIN).await;
    assert!(matches!(after, Outcome::Complete(_)), "{after:?}");
    // The refused message was not stored, and nothing else went missing.
    let audited = audit(&gateways, &client, &cluster.inspector()).await;
    assert_eq!(audited.lost, 0, "lost messages");
    assert_eq!(audited.history_problems, 0, "history problems");
    println!(
        "faults[outage]: /health and /readyz went 503 and back; a message sent meanwhile got \
         `unavailable`; chat resumed on the same session; lost {}",
        audited.lost
    );
}

/// A provider's error, in the stream or as its answer, in any body shape: the client
/// gets `llm_error`, and the worker process's log has the provider's own message,
/// never a parse failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_providers_error_is_llm_error_with_its_message_in_the_workers_log() {
    let mut cluster = Cluster::start(1, 0, &[]);
    cluster.workers.push(cluster.spawn_worker(0));
    let mut client = ChatClient::new(cluster.gateway_urls(), 0).await;
    let cases = [
        (
            "[mock:deviate=error_event]",
            "mock-llm: the model is overloaded (injected mid-stream)",
        ),
        (
            "[mock:status=400 deviate=flat_error]",
            "mock-llm: request rejected (injected)",
        ),
        ("[mock:status=404]", "mock-llm: model not found (injected)"),
    ];
    for (directive, _) in cases {
        let outcome = client
            .exchange(&format!("fail {directive}"), ANSWER_WITHIN)
            .await;
        assert_eq!(outcome, Outcome::Error("llm_error".into()), "{directive}");
    }
    let log = cluster.workers[0].log();
    for (directive, message) in cases {
        assert!(
            log.contains(message),
            "{directive}: {message:?} not in the worker's log:\n{log}"
        );
    }
    for parse_failure in ["deserializ", "unreadable"] {
        assert!(!log.contains(parse_failure), "{parse_failure}:\n{log}");
    }
    println!(
        "faults[provider-errors]: {} provider errors (mid-stream event, flat body, error \
         object) reached the client as llm_error; the worker logged each provider's message",
        cases.len()
    );
}

/// Claim lease of the saturation case, as in the measurement that found the starvation.
const SATURATION_LEASE: Duration = Duration::from_secs(3);

/// How long a worker's blocking inbox read may hold its slots (`worker::answer::INBOX_BLOCK`).
const INBOX_BLOCK: Duration = worker::answer::INBOX_BLOCK;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_under_saturation_has_its_messages_answered_first() {
    // 2 workers with 4 slots each, 16 sessions sending back to back: the inbox is never
    // empty, so a slot is never free for long.
    let mut cluster = Cluster::start(1, 0, &[]);
    cluster.set_worker_env("WORKER_CONCURRENCY", "4");
    cluster.set_worker_env(
        "WORKER_CLAIM_LEASE_MS",
        &SATURATION_LEASE.as_millis().to_string(),
    );
    for i in 0..2 {
        let worker = cluster.spawn_worker(i);
        cluster.workers.push(worker);
    }
    let gateways = cluster.gateway_urls();
    let inspector = cluster.inspector();
    let cluster = Arc::new(Mutex::new(cluster));
    let killed = {
        let cluster = cluster.clone();
        let inspector = inspector.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            let mut cluster = cluster.lock().unwrap();
            let victim = &mut cluster.workers[0];
            let consumer = victim.worker_id.clone().expect("a worker id");
            // On a busy machine a worker may start late: kill it once it is answering.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while inspector.held_by(&consumer).is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the worker to kill never took a message"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            victim.kill();
            let at = std::time::Instant::now();
            // What it held when it died: its pending entries, not reclaimed before a
            // lease has passed.
            (at, inspector.held_by(&consumer))
        })
    };
    let verdict = run_clients(gateways, inspector, 16, 8).await;
    let (killed_at, held) = killed.join().expect("kill thread");
    report("saturation", &verdict, 1, 0, 0, 0);
    assert!(!held.is_empty(), "the killed worker held messages");

    // The dead worker's messages: those of its sessions in flight when it died.
    let reclaimed: Vec<&client::Exchange> = verdict
        .clients
        .iter()
        .filter(|c| held.contains(&c.session_id))
        .filter_map(|c| {
            c.exchanges
                .iter()
                .find(|e| e.sent_at <= killed_at && e.done_at.is_none_or(|done| done > killed_at))
        })
        .collect();
    assert_eq!(
        reclaimed.len(),
        held.len(),
        "one message in flight per held session"
    );
    // Answering time once begun, of every other message of the run.
    let answer_time = verdict
        .clients
        .iter()
        .flat_map(|c| &c.exchanges)
        .filter(|e| !reclaimed.iter().any(|r| std::ptr::eq(*r, *e)))
        .filter_map(client::Exchange::answer_time)
        .max()
        .expect("answers were timed");
    // The dead worker refreshed its claims at most a third of a lease before dying, so
    // its entries are idle past the lease at most one lease after the kill; a live
    // intake reclaims every half lease (after a blocking read of at most INBOX_BLOCK
    // on an empty inbox), the first slot to free up after that is theirs (within one
    // answer time), and then each is answered (one more answer time). One second
    // covers process scheduling and Redis round trips.
    let bound = SATURATION_LEASE
        + SATURATION_LEASE / 2
        + INBOX_BLOCK
        + answer_time * 2
        + Duration::from_secs(1);
    let slowest = reclaimed
        .iter()
        .map(|e| {
            e.done_at
                .expect("answered")
                .saturating_duration_since(killed_at)
        })
        .max()
        .expect("reclaimed messages");
    println!(
        "faults[saturation]: 2 workers x 4 slots, 16 sessions, lease {} ms, 1 worker SIGKILLed \
         holding {} messages; all answered within {} ms of the kill (bound {} ms = 1.5 lease \
         + read block {} ms + 2 x longest answer {} ms + 1 s); {} restarts announced",
        SATURATION_LEASE.as_millis(),
        reclaimed.len(),
        slowest.as_millis(),
        bound.as_millis(),
        INBOX_BLOCK.as_millis(),
        answer_time.as_millis(),
        verdict.tally.restarts_seen,
    );
    for exchange in &reclaimed {
        let after_kill = exchange
            .done_at
            .unwrap()
            .saturating_duration_since(killed_at);
        assert!(
            after_kill <= bound,
            "{:?} was answered {} ms after the kill, past the bound of {} ms",
            exchange.text,
            after_kill.as_millis(),
            bound.as_millis()
        );
    }
}

/// The next text frame of a socket (pings skipped), as JSON, within 10 s.
async fn next_text(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a frame within 10 s, not a hang");
        match frame {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// One gateway and one worker whose agent file has a signed webhook tool `book`
/// pointing at `path` of a tool server the test owns (loopback, allowed).
struct BookingAgent {
    server: loadtest::tool_server::ToolServer,
    /// Holds the agent file; removed by the test at its end.
    dir: std::path::PathBuf,
    cluster: Cluster,
}

impl BookingAgent {
    async fn start(path: &str) -> Self {
        use loadtest::tool_server::{ToolServer, new_secret};
        let secret = new_secret();
        let server = ToolServer::start(Some(&secret)).await;
        let dir = std::env::temp_dir().join(format!("faults-agent-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let agent = dir.join("agent.yaml");
        std::fs::write(
            &agent,
            format!(
                "name: Booking Agent\ntools:\n  - {{name: book, type: webhook, url: '{}', secret_env: BOOK_SECRET}}\n",
                server.url(path)
            ),
        )
        .unwrap();
        let mut cluster = Cluster::start(1, 0, &[]);
        cluster.set_worker_env("AGENT_FILE", agent.to_str().unwrap());
        cluster.set_worker_env("BOOK_SECRET", &secret);
        cluster.set_worker_env("TOOL_URL_ALLOWLIST", "127.0.0.1");
        cluster.workers.push(cluster.spawn_worker(0));
        Self {
            server,
            dir,
            cluster,
        }
    }
}

/// A webhook may book an appointment: a worker killed after the webhook answered and
/// before `complete` must not make the next worker call it again. The tool server
/// (in this test, checking signatures with its own HMAC) counts calls per
/// `webhook-id`; the replacement worker reuses the stored result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_after_a_webhook_answered_does_not_call_it_again() {
    let BookingAgent {
        server,
        dir,
        mut cluster,
    } = BookingAgent::start("echo").await;
    let gateways = cluster.gateway_urls();
    let mock = cluster.mock_url.clone();

    // Each model request waits 2 s before its first token: time to kill the worker
    // once the model has been asked with the tool's result.
    let text = "Book a blood test [mock:tool=book][mock:first=2000]";
    let mut client = ChatClient::new(gateways.clone(), 0).await;
    let killer = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let requests: Value = http
                .get(format!("{mock}/mock/requests"))
                .send()
                .await
                .expect("mock answers")
                .json()
                .await
                .expect("json");
            let asked_with_result = requests.as_array().unwrap().iter().any(|r| {
                r["messages"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"))
            });
            if asked_with_result {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let outcome = {
        let exchange = client.exchange(text, ANSWER_WITHIN);
        tokio::pin!(exchange);
        tokio::select! {
            outcome = &mut exchange => panic!("answered before the kill: {outcome:?}"),
            asked = killer => {
                assert!(asked.unwrap(), "the model was asked with the tool's result");
                cluster.workers[0].kill();
                cluster.workers[0] = cluster.spawn_worker(1);
                exchange.await
            }
        }
    };
    let Outcome::Complete(answer) = outcome else {
        panic!("no complete: {outcome:?}")
    };
    assert!(
        answer.starts_with(r#"Tool book said: echo:{"query":"Book a blood test"}."#),
        "{answer}"
    );
    let calls = server.calls();
    let counts = server.calls_per_webhook_id();
    println!(
        "faults[tool-restart]: webhook calls {}, per id {counts:?}",
        calls.len()
    );
    assert_eq!(
        calls.len(),
        1,
        "the booking server was called once: {counts:?}"
    );
    assert!(calls[0].signature_valid, "signed as Standard Webhooks says");
    assert!(
        client.tally.restarts_seen >= 1,
        "the takeover was announced"
    );

    let history: Value = reqwest::get(format!(
        "http://{}/api/session/{}/messages",
        gateways[0], client.session_id
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let stored = &history["messages"][1]["function_calls"];
    assert_eq!(stored.as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(stored[0]["result"], r#"echo:{"query":"Book a blood test"}"#);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The other half: a worker killed while the webhook is still running leaves a call
/// with no stored result. The next worker sends it again with the same `webhook-id`
/// (and a fresh valid signature), so the customer's server can tell the retry from a
/// new booking; the answer then comes from that result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_during_a_webhook_resends_it_with_the_same_webhook_id() {
    let BookingAgent {
        server,
        dir,
        mut cluster,
    } = BookingAgent::start("slow/3000").await;
    let server = std::sync::Arc::new(server);
    let gateways = cluster.gateway_urls();

    let mut client = ChatClient::new(gateways.clone(), 0).await;
    let watcher = {
        let server = server.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while server.calls().is_empty() {
                if tokio::time::Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            true
        })
    };
    let outcome = {
        let exchange = client.exchange("Book a blood test [mock:tool=book]", ANSWER_WITHIN);
        tokio::pin!(exchange);
        tokio::select! {
            outcome = &mut exchange => panic!("answered before the kill: {outcome:?}"),
            arrived = watcher => {
                assert!(arrived.unwrap(), "the webhook was called");
                // The server holds the call for 3 s: the worker dies before its answer.
                cluster.workers[0].kill();
                cluster.workers[0] = cluster.spawn_worker(1);
                exchange.await
            }
        }
    };
    let Outcome::Complete(answer) = outcome else {
        panic!("no complete: {outcome:?}")
    };
    assert!(
        answer.starts_with(r#"Tool book said: echo:{"query":"Book a blood test"}."#),
        "{answer}"
    );
    let calls = server.calls();
    let counts = server.calls_per_webhook_id();
    println!(
        "faults[tool-resend]: webhook calls {}, per id {counts:?}",
        calls.len()
    );
    assert_eq!(calls.len(), 2, "sent again after the kill: {counts:?}");
    assert_eq!(counts.len(), 1, "with the same webhook-id: {counts:?}");
    assert!(calls.iter().all(|c| c.signature_valid), "both signed");
    assert!(
        client.tally.restarts_seen >= 1,
        "the takeover was announced"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
