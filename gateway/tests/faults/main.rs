//! The fault suite: real `redis-server`, `mock-llm`, `gateway` and `worker` processes,
//! killed (SIGKILL) or stopped (SIGTERM) and restarted under load, while careful
//! clients chat. Every scenario prints
//! its figures and asserts that nothing was lost, duplicated or left unanswered, and
//! that every answer is the right one for its conversation.

mod client;
mod cluster;

use client::{ChatClient, Outcome, Tally};
use cluster::{Cluster, TOKENS};
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

/// Checks the stored history against what the client saw: every message once, one
/// answer per completed message.
async fn check_history(gateways: &[String], client: &ChatClient) -> u64 {
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
    let users = messages.iter().filter(|m| m["role"] == "user").count() as u64;
    let answers: Vec<&Value> = messages
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    let distinct: std::collections::HashSet<&str> = answers
        .iter()
        .filter_map(|m| m["reply_to"].as_str())
        .collect();
    let mut problems = 0;
    if users != client.tally.messages {
        eprintln!(
            "session {}: {users} user messages stored for {} sent",
            client.session_id, client.tally.messages
        );
        problems += 1;
    }
    if answers.len() as u64 != client.tally.completes || distinct.len() != answers.len() {
        eprintln!(
            "session {}: {} answers stored for {} completes",
            client.session_id,
            answers.len(),
            client.tally.completes
        );
        problems += 1;
    }
    problems
}

struct Verdict {
    tally: Tally,
    wrong_answers: u64,
    history_problems: u64,
}

async fn run_clients(gateways: Vec<String>, clients: usize, turns: usize) -> Verdict {
    let runs = (0..clients).map(|i| converse(gateways.clone(), i, turns));
    let results = join_all(runs).await;
    let mut tally = Tally::default();
    let mut wrong_answers = 0;
    let mut history_problems = 0;
    for (t, wrong, client) in &results {
        tally.add(t);
        wrong_answers += wrong;
        history_problems += check_history(&gateways, client).await;
    }
    Verdict {
        tally,
        wrong_answers,
        history_problems,
    }
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
        t.unanswered,
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
    let verdict = run_clients(gateways, 8, 5).await;
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
    let verdict = run_clients(gateways, 6, 6).await;
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
    let chaos = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(900));
            let killed = cluster
                .lock()
                .unwrap()
                .redis_cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
            std::thread::sleep(Duration::from_millis(1500));
            cluster.lock().unwrap().redis.restart(&aof);
            killed.trim().parse::<u64>().unwrap_or(0)
        })
    };
    let verdict = run_clients(gateways.clone(), 6, 6).await;
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

    cluster.redis.kill();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while cluster::http_status(&health) != Some(503) || cluster::http_status(&readyz) != Some(503) {
        assert!(
            std::time::Instant::now() < deadline,
            "probes did not report the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A message sent meanwhile gets a clear error on the socket, not a hang.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/{}", gateways[0], client.session_id))
            .await
            .map(|(s, r)| (Some(s), r))
            .unwrap_or((None, Default::default()));
    if let Some(socket) = socket.as_mut() {
        use futures_util::{SinkExt, StreamExt};
        let _ = socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                json!({"message": "during"}).to_string().into(),
            ))
            .await;
        let answer = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        assert!(
            answer.is_ok(),
            "an answer (error event or close) instead of a hang"
        );
    }

    cluster.redis.restart(&aof);
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
    println!(
        "faults[outage]: /health and /readyz went 503 and back; chat resumed on the same session"
    );
}
