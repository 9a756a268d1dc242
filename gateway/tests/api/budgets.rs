//! Token budgets (`BUDGET_TOKENS_PER_DAY`): the answer that crosses a budget finishes,
//! and from then on that user (or address) is refused `budget_exceeded` on every
//! gateway, before the model is called (the mock LLM sees no request), while everyone
//! else is served; `GET /api/usage` and `complete.usage` report what the mock LLM
//! counted. On Redis with three gateways, and embedded (per address, behind a trusted
//! proxy). The window's reset is in the conformance suite (paused clock).

use crate::helpers::{Mode, TestEnv, TestGateway, TestSocket};
use crate::security_support::{
    claims, connect_with, create_as, get, hs256, hs256_auth, open_as, send, token,
};
use serde_json::Value;

/// Fewer tokens than any answer costs (the mock counts every prompt word).
const BUDGET: u64 = 5;

/// Sends `text` and returns the `complete` event of its answer.
async fn answered(socket: &mut TestSocket, text: &str) -> Value {
    socket.send_message(text).await;
    let events = socket.until_ready().await;
    events
        .into_iter()
        .find(|e| e["type"] == "complete")
        .expect("a complete event")
}

/// Sends `text` and asserts it is refused `budget_exceeded`; the socket stays open.
async fn refused(socket: &mut TestSocket, text: &str) {
    socket.send_message(text).await;
    let event = socket.recv().await;
    assert_eq!(event["type"], "error", "{event}");
    assert_eq!(event["code"], "budget_exceeded", "{event}");
    let wait = event["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait > 0 && wait <= 86_400_000, "{event}");
    socket.send_json(&serde_json::json!({"type": "ping"})).await;
    assert_eq!(socket.recv().await["type"], "pong");
}

/// Prompt + completion of a `complete` event's `usage`, checked against the request the
/// mock LLM answered (it counts the prompt's whitespace-separated words).
fn usage_of(complete: &Value, request: &Value) -> u64 {
    let usage = &complete["usage"];
    let prompt = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
    let completion = usage["completion_tokens"]
        .as_u64()
        .expect("completion_tokens");
    let words: usize = request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(|c| c.split_whitespace().count())
        .sum();
    assert_eq!(prompt, words as u64, "the mock's prompt count");
    assert!(completion > 0);
    assert_eq!(
        request["stream_options"]["include_usage"], true,
        "usage asked for"
    );
    prompt + completion
}

/// The one `day` window of `/api/usage`.
fn day(report: &Value) -> &Value {
    let windows = report["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 1, "{report}");
    assert_eq!(windows[0]["window"], "day", "{report}");
    &windows[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_refuses_that_user_on_every_gateway_and_nobody_else() {
    let env = TestEnv::redis()
        .gateways(3)
        .workers(1)
        .settings(|s| {
            hs256_auth(s);
            s.protection.budget_tokens_per_day = Some(BUDGET);
            s.auth.jwt_budget_claim = Some("plan".into());
        })
        .start()
        .await;
    let (alice, bob) = (token("alice"), token("bob"));
    let gw = |i: usize| -> &TestGateway { &env.gateways[i] };
    let id = create_as(gw(0), &alice).await;
    let mut first = open_as(gw(0), &id, &alice).await;
    let complete = answered(&mut first, "hello there budget").await;
    let requests = env.llm_requests().await;
    assert_eq!(requests.len(), 1);
    let spent = usage_of(&complete, &requests[0]);
    assert!(
        spent > BUDGET,
        "the first answer crosses the budget and finishes"
    );

    let report = get(gw(2), "/api/usage", Some(&alice)).await;
    assert_eq!(report.status, 200, "{}", report.body);
    let window = day(&report.body);
    assert_eq!(window["used"], spent);
    assert_eq!(window["limit"], BUDGET);
    assert_eq!(window["remaining"], 0);
    assert!(window["resets_at"].as_str().unwrap().ends_with('Z'));

    // Alice is refused everywhere, on the session she has and on a new one.
    refused(&mut first, "one more").await;
    let other = create_as(gw(1), &alice).await;
    for i in [1, 2] {
        let mut socket = open_as(gw(i), &other, &alice).await;
        refused(&mut socket, "from another pod").await;
    }
    assert_eq!(
        env.llm_requests().await.len(),
        1,
        "the model saw no refused message"
    );
    let page = get(gw(1), &format!("/api/session/{id}/messages"), Some(&alice)).await;
    let stored = page.body["messages"].as_array().expect("messages").len();
    assert_eq!(stored, 2, "refused messages are not stored: {}", page.body);

    // Bob is served, and his usage is his own.
    let bobs = create_as(gw(1), &bob).await;
    let mut socket = open_as(gw(1), &bobs, &bob).await;
    let complete = answered(&mut socket, "and me").await;
    let requests = env.llm_requests().await;
    assert_eq!(requests.len(), 2);
    let bob_spent = usage_of(&complete, &requests[1]);
    let report = get(gw(0), "/api/usage", Some(&bob)).await;
    assert_eq!(day(&report.body)["used"], bob_spent);

    // A token's own budget (the `plan` claim) replaces the configured one.
    let mut plan = claims("carol");
    plan["plan"] = serde_json::json!({"tokens_per_day": 1_000_000});
    let carol = hs256(&plan);
    let carols = create_as(gw(2), &carol).await;
    let mut socket = open_as(gw(2), &carols, &carol).await;
    answered(&mut socket, "first").await;
    answered(&mut socket, "second").await;
    let report = get(gw(2), "/api/usage", Some(&carol)).await;
    assert_eq!(day(&report.body)["limit"], 1_000_000);
    // A claim of another shape is no budget: the token is refused.
    let mut bad = claims("dave");
    bad["plan"] = serde_json::json!({"tokens": "lots"});
    get(gw(0), "/api/usage", Some(&hs256(&bad)))
        .await
        .assert_error(401, "unauthorized");
}

/// `X-Forwarded-For` from the trusted proxy (loopback) names the client address.
async fn socket_from(gw: &TestGateway, id: &str, address: &str) -> TestSocket {
    let (mut socket, _) = connect_with(gw, &format!("/ws/{id}"), &[("x-forwarded-for", address)])
        .await
        .expect("upgrade");
    assert_eq!(socket.recv().await["status"], "connected");
    socket
}

async fn usage_from(gw: &TestGateway, address: &str) -> Value {
    let answer = send(
        gw.http
            .get(gw.url("/api/usage"))
            .header("x-forwarded-for", address),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

#[tokio::test]
async fn a_spent_budget_refuses_that_address_and_nobody_else_when_embedded() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| {
            s.protection.trusted_proxies = Some("127.0.0.1".into());
            s.protection.budget_tokens_per_day = Some(BUDGET);
        })
        .start()
        .await;
    let gw = env.gw();
    let id = gw.create_session().await;
    let mut spender = socket_from(gw, &id, "198.51.100.1").await;
    let complete = answered(&mut spender, "hello there budget").await;
    let requests = env.llm_requests().await;
    let spent = usage_of(&complete, &requests[0]);
    refused(&mut spender, "one more").await;
    assert_eq!(
        env.llm_requests().await.len(),
        1,
        "the model saw no refused message"
    );
    assert_eq!(day(&usage_from(gw, "198.51.100.1").await)["used"], spent);

    let mut neighbour = socket_from(gw, &id, "198.51.100.2").await;
    // The session's events reach every socket on it: the spender's socket hears
    // the neighbour's answer too, so read it there as well.
    let complete = answered(&mut neighbour, "my turn").await;
    spender.until_ready().await;
    let requests = env.llm_requests().await;
    assert_eq!(requests.len(), 2);
    let theirs = usage_of(&complete, &requests[1]);
    assert_eq!(day(&usage_from(gw, "198.51.100.2").await)["used"], theirs);
    assert_eq!(day(&usage_from(gw, "198.51.100.1").await)["used"], spent);
}

#[tokio::test]
async fn without_a_budget_usage_lists_no_window() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let (status, body) = env.gw().get("/api/usage").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"windows": []}));
}

/// A model that reports no usage (the built-in demo model) still spends the budget:
/// the worker counts the tokens itself, and `complete` claims no figure it was not
/// given. The refusal shows in the metrics by outcome.
#[tokio::test]
async fn tokens_are_counted_when_the_provider_reports_none() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| {
            s.llm.openai_base_url = None;
            s.protection.budget_tokens_per_day = Some(BUDGET);
        })
        .start()
        .await;
    let gw = env.gw();
    let (_, mut socket) = gw.open_session().await;
    let complete = answered(&mut socket, "hello there budget").await;
    assert!(complete.get("usage").is_none(), "{complete}");
    let (_, report) = gw.get("/api/usage").await;
    let used = day(&report)["used"].as_u64().expect("used");
    assert!(used > BUDGET, "{report}");
    refused(&mut socket, "one more").await;
    let metrics = send(gw.http.get(gw.url("/metrics"))).await.body;
    let metrics = metrics.as_str().expect("Prometheus text");
    assert!(
        metrics.contains(r#"chat_limit_checks_total{limit="budget",outcome="refused"}"#),
        "{metrics}"
    );
}

/// Messages queued while the answer that spends the budget is still streaming were
/// accepted under budget; the worker checks again before calling the model, so they
/// are refused (`budget_exceeded`, as events of the session) and never reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_before_the_budget_ran_out_are_refused_by_the_worker() {
    let env = TestEnv::redis()
        .workers(1)
        .mock(|m| m.token_delay_ms = 20)
        .settings(|s| s.protection.budget_tokens_per_day = Some(BUDGET))
        .start()
        .await;
    let (_, mut socket) = env.gw().open_session().await;
    for text in ["first question here", "second", "third"] {
        socket.send_message(text).await;
    }
    let mut events = Vec::new();
    let mut ready = 0;
    while ready < 3 {
        let event = socket.recv().await;
        ready += usize::from(event["type"] == "status" && event["status"] == "ready");
        events.push(event);
    }
    let completes = events.iter().filter(|e| e["type"] == "complete").count();
    let refusals: Vec<&Value> = events.iter().filter(|e| e["type"] == "error").collect();
    assert_eq!(completes, 1, "{events:?}");
    assert_eq!(refusals.len(), 2, "{events:?}");
    for refusal in refusals {
        assert_eq!(refusal["code"], "budget_exceeded", "{refusal}");
        assert!(refusal["seq"].is_u64() && refusal["message_id"].is_string());
        assert!(refusal["retry_after_ms"].as_u64().unwrap_or(0) > 0);
    }
    assert_eq!(
        env.llm_requests().await.len(),
        1,
        "the model saw only the first"
    );
}
