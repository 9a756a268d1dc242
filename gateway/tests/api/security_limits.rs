//! Security matrix, part 3: what one client can cost. Rate limits (REST by user or
//! address, socket messages), socket caps (per user across pods, per instance),
//! origins, slow clients, and every size limit; each refused with the contract's
//! status or close code, with nothing changed and the gateway still answering.

use crate::helpers::{Mode, TestEnv, TestGateway};
use crate::security_support::*;
use futures_util::SinkExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Sends `n` requests as `token` (or none, with `xff`) and returns the statuses.
async fn burst(gw: &TestGateway, n: usize, token: Option<&str>, xff: Option<&str>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let mut request = gw.http.get(gw.url("/status"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(xff) = xff {
            request = request.header("x-forwarded-for", xff);
        }
        statuses.push(send(request).await.status);
    }
    statuses
}

fn slow_rest(s: &mut gateway::Settings) {
    s.protection.rate_limit_per_minute = 1;
    s.protection.rate_limit_burst = 3;
}

// ---------------------------------------------------------------------------
// REST rate limits

#[tokio::test]
async fn a_rest_flood_gets_429_with_retry_after() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(slow_rest)
        .start()
        .await;
    let gw = env.gw();
    assert_eq!(burst(gw, 3, None, None).await, [200, 200, 200]);
    let refused = get(gw, "/status", None).await;
    refused.assert_error(429, "rate_limited");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Probes are not limited (they all come from one kubelet address).
    assert_eq!(gw.get("/health").await.0, 200);
    assert_eq!(gw.get("/livez").await.0, 200);
    // Socket upgrades count too.
    let refused = connect_with(gw, "/ws/flooded", &[]).await;
    assert!(refused.is_err(), "upgrade refused with 429");
    assert_eq!(live_sessions(gw).await, 0);
}

#[tokio::test]
async fn rest_limits_are_per_user_when_there_is_a_token() {
    let env = auth_env(slow_rest).await;
    let gw = env.gw();
    let alice = token("alice");
    assert_eq!(burst(gw, 4, Some(&alice), None).await, [200, 200, 200, 429]);
    // Bob shares Alice's address but not her budget.
    assert_eq!(
        burst(gw, 3, Some(&token("bob")), None).await,
        [200, 200, 200]
    );
    // Requests without a valid token share the address's budget, apart from users'.
    assert_eq!(
        burst(gw, 4, Some("garbage"), None).await,
        [401, 401, 401, 429]
    );
}

#[tokio::test]
async fn session_creation_has_a_stricter_limit() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| {
            s.protection.create_session_per_minute = 1;
            s.protection.create_session_burst = 2;
        })
        .start()
        .await;
    let gw = env.gw();
    let first = gw.create_session().await;
    gw.create_session().await;
    let refused = send(gw.http.post(gw.url("/api/create-session")).body("")).await;
    refused.assert_error(429, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    // Other routes still answer.
    assert_eq!(gw.get(&format!("/api/session/{first}/info")).await.0, 200);
    assert_eq!(live_sessions(gw).await, 2);
}

/// Without trusted proxies, `X-Forwarded-For` is the client's own claim: ignored.
#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(slow_rest)
        .start()
        .await;
    let gw = env.gw();
    let statuses = [
        burst(gw, 2, None, Some("1.1.1.1")).await,
        burst(gw, 2, None, Some("2.2.2.2, 3.3.3.3")).await,
    ]
    .concat();
    assert_eq!(statuses, [200, 200, 200, 429]);
    let forwarded = send(
        gw.http
            .get(gw.url("/status"))
            .header("forwarded", "for=4.4.4.4")
            .header("x-real-ip", "5.5.5.5"),
    )
    .await;
    forwarded.assert_error(429, "rate_limited");
}

/// Behind a trusted proxy the client is the rightmost untrusted address; what the
/// client wrote to the left of it is ignored.
#[tokio::test]
async fn behind_trusted_proxies_the_chain_is_read_from_the_right() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| {
            slow_rest(s);
            s.protection.trusted_proxies = Some("127.0.0.1, 10.0.0.0/8".into());
        })
        .start()
        .await;
    let gw = env.gw();
    // Client 1.1.1.1 via a trusted load balancer 10.0.0.7.
    let chain = |spoof: &str| format!("{spoof}, 1.1.1.1, 10.0.0.7");
    let statuses = [
        burst(gw, 2, None, Some(&chain("6.6.6.6"))).await,
        burst(gw, 2, None, Some(&chain("7.7.7.7"))).await,
    ]
    .concat();
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "the spoofed left part does not help"
    );
    // A different client behind the same proxy has its own budget.
    assert_eq!(burst(gw, 1, None, Some("2.2.2.2, 10.0.0.7")).await, [200]);
}

// ---------------------------------------------------------------------------
// Sockets: message rate, caps, origins

#[tokio::test]
async fn a_socket_message_flood_is_rate_limited_and_the_socket_stays() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| {
            s.limits.ws_message_burst = 2;
            s.limits.ws_messages_per_minute = 1;
        })
        .start()
        .await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    for i in 0..6 {
        socket.send_message(&format!("flood {i}")).await;
    }
    let mut limited = 0;
    let mut completes = 0;
    while completes < 2 || limited < 4 {
        let event = socket.recv().await;
        if event["code"] == "rate_limited" {
            assert!(event["retry_after_ms"].as_u64().unwrap() > 0, "{event}");
            limited += 1;
        }
        if event["type"] == "complete" {
            completes += 1;
        }
    }
    still_open(&mut socket).await;
    assert_eq!(
        gw.message_count(&id).await,
        4,
        "only the two allowed were stored"
    );
}

#[tokio::test]
async fn too_many_sockets_for_one_user_are_closed_4429() {
    let env = auth_env(|s| s.protection.max_sockets_per_user = 2).await;
    let gw = env.gw();
    let alice = token("alice");
    let id = create_as(gw, &alice).await;
    let first = open_as(gw, &id, &alice).await;
    let mut second = open_as(gw, &id, &alice).await;
    assert_socket_refused(gw, &format!("/ws/{id}?token={alice}"), "rate_limited", 4429).await;
    // Another user is not affected.
    let bob = token("bob");
    let bobs = create_as(gw, &bob).await;
    open_as(gw, &bobs, &bob).await;
    // Closing one frees its slot at once.
    first.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut socket = gw.connect(&format!("/ws/{id}?token={alice}")).await;
        let event = socket.recv().await;
        if event["status"] == "connected" {
            break;
        }
        assert!(Instant::now() < deadline, "slot not freed: {event}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    still_open(&mut second).await;
}

/// The per-user socket cap is counted in Redis: it holds across gateway pods.
#[tokio::test]
async fn the_socket_cap_holds_across_pods() {
    let mut env = auth_env_on(Mode::Redis, |s| s.protection.max_sockets_per_user = 2).await;
    env.add_gateway().await;
    let (a, b) = (&env.gateways[0], &env.gateways[1]);
    let alice = token("alice");
    let id = create_as(a, &alice).await;
    let _one = open_as(a, &id, &alice).await;
    let _two = open_as(b, &id, &alice).await;
    for gw in [a, b] {
        assert_socket_refused(gw, &format!("/ws/{id}?token={alice}"), "rate_limited", 4429).await;
    }
}

/// A pod that stops frees its sockets' slots at once (a crashed one's lapse within a
/// minute: see the `unrefreshed_slots_lapse` conformance case).
#[tokio::test]
async fn a_stopping_pod_frees_its_sockets_slots() {
    let mut env = auth_env_on(Mode::Redis, |s| s.protection.max_sockets_per_user = 1).await;
    env.add_gateway().await;
    let (a, b) = (&env.gateways[0], &env.gateways[1]);
    let alice = token("alice");
    let id = create_as(b, &alice).await;
    let mut on_a = open_as(a, &id, &alice).await;
    assert_socket_refused(b, &format!("/ws/{id}?token={alice}"), "rate_limited", 4429).await;
    a.shutdown.cancel();
    assert_eq!(on_a.closed().await, Some(1012));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut socket = b.connect(&format!("/ws/{id}?token={alice}")).await;
        if socket.recv().await["status"] == "connected" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stopped pod's slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Without authentication the cap applies per client address.
#[tokio::test]
async fn without_auth_the_socket_cap_is_per_address() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| s.protection.max_sockets_per_address = 2)
        .start()
        .await;
    let gw = env.gw();
    let _one = gw.connect("/ws/room-1").await;
    let _two = gw.connect("/ws/room-2").await;
    assert_socket_refused(gw, "/ws/room-3", "rate_limited", 4429).await;
    assert_eq!(live_sessions(gw).await, 2, "room-3 was not created");
}

#[tokio::test]
async fn the_instance_connection_cap_closes_1013() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| s.protection.max_connections = 1)
        .start()
        .await;
    let gw = env.gw();
    let (_, mut first) = gw.open_session().await;
    let id = gw.create_session().await;
    assert_socket_refused(gw, &format!("/ws/{id}"), "unavailable", 1013).await;
    still_open(&mut first).await;
    assert_eq!(gw.message_count(&id).await, 0);
}

#[tokio::test]
async fn a_disallowed_origin_is_closed_1008() {
    let env = auth_env(|s| s.cors_allowed_origins = Some("https://app.example.com".into())).await;
    let gw = env.gw();
    let alice = token("alice");
    let id = create_as(gw, &alice).await;
    let path = format!("/ws/{id}?token={alice}");
    let (mut evil, _) = connect_with(gw, &path, &[("origin", "https://evil.example")])
        .await
        .expect("upgrade");
    assert_refused(&mut evil, "unauthorized", 1008).await;
    for origin in [
        "https://app.example.com",
        &format!("http://127.0.0.1:{}", gw.port),
    ] {
        let (mut ok, _) = connect_with(gw, &path, &[("origin", origin)])
            .await
            .expect("upgrade");
        assert_eq!(ok.recv().await["status"], "connected", "{origin}");
    }
    // No Origin at all: a non-browser client (Node's ws), allowed.
    open_as(gw, &id, &alice).await;
    assert_eq!(count_as(gw, &id, &alice).await, 0);
}

#[tokio::test]
async fn cors_answers_only_allowed_origins() {
    let env = auth_env(|s| s.cors_allowed_origins = Some("https://app.example.com".into())).await;
    let gw = env.gw();
    let preflight = |origin: &'static str| {
        gw.http
            .request(reqwest::Method::OPTIONS, gw.url("/api/create-session"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
    };
    let good = send(preflight("https://app.example.com")).await;
    assert_eq!(
        good.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_allows_authorization(&good.headers);
    let evil = send(preflight("https://evil.example")).await;
    assert!(!evil.headers.contains_key("access-control-allow-origin"));
    // Authentication on and no list: no cross-origin access by default.
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    let answer = send(
        gw.http
            .request(reqwest::Method::OPTIONS, gw.url("/api/create-session"))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST"),
    )
    .await;
    assert!(!answer.headers.contains_key("access-control-allow-origin"));
}

/// The preflight's answer names `authorization` (a `*` would not cover it) and
/// `content-type`.
fn assert_allows_authorization(headers: &reqwest::header::HeaderMap) {
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    let names: Vec<&str> = allowed.split(',').map(str::trim).collect();
    assert!(names.contains(&"authorization"), "{allowed}");
    assert!(names.contains(&"content-type"), "{allowed}");
    assert!(!names.contains(&"*"), "{allowed}");
}

#[tokio::test]
async fn cors_with_any_origin_still_lists_authorization() {
    // Authentication off: any origin, as the seeds run.
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    let answer = send(
        gw.http
            .request(reqwest::Method::OPTIONS, gw.url("/api/create-session"))
            .header("origin", "https://elsewhere.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization"),
    )
    .await;
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    assert_allows_authorization(&answer.headers);
    // A 429's Retry-After is readable by the page.
    let simple = send(
        gw.http
            .get(gw.url("/health"))
            .header("origin", "https://elsewhere.example"),
    )
    .await;
    let exposed = simple.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
}

// ---------------------------------------------------------------------------
// Slow clients

/// A handshake trickled byte by byte (slowloris) is cut at the header-read deadline,
/// and so is a connection that never says anything.
#[tokio::test]
async fn a_slow_handshake_that_never_completes_times_out() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| s.protection.http_header_read_timeout_secs = 1)
        .start()
        .await;
    let gw = env.gw();
    let address = ("127.0.0.1", gw.port);

    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    let trickled = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = trickled.into_split();
    let started = Instant::now();
    // One byte of a never-ending handshake every 100 ms.
    let trickle = tokio::spawn(async move {
        let handshake = b"GET /ws/slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Pad: ";
        for byte in handshake.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf)).await;
    trickle.abort();
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "not cut: {read:?}");
    let cut = started.elapsed();
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_secs(4),
        "{cut:?}"
    );
    // The silent connection is closed too.
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    // Nothing was created and the gateway serves others.
    assert_eq!(live_sessions(gw).await, 0);
}

/// A body that never finishes arriving is answered 408 at the request deadline.
#[tokio::test]
async fn a_body_that_never_finishes_gets_408() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| s.protection.http_request_timeout_secs = 1)
        .start()
        .await;
    let gw = env.gw();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    stream
        .write_all(b"POST /api/create-session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"metadata\":")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("invalid_request"), "{text}");
    assert_eq!(live_sessions(gw).await, 0);
}

// ---------------------------------------------------------------------------
// Sizes and encodings

fn small_limits(s: &mut gateway::Settings) {
    s.limits.max_body_bytes = 1024;
    s.limits.max_metadata_bytes = 100;
    s.limits.max_user_id_chars = 10;
    s.limits.ws_max_message_bytes = 2048;
    s.limits.max_message_chars = 50;
}

async fn small_env() -> TestEnv {
    TestEnv::builder(Mode::Embedded)
        .settings(small_limits)
        .start()
        .await
}

#[tokio::test]
async fn an_oversize_body_is_413() {
    let env = small_env().await;
    let gw = env.gw();
    let body = json!({"metadata": {"pad": "x".repeat(2_000)}}).to_string();
    let answer = send(gw.http.post(gw.url("/api/create-session")).body(body)).await;
    answer.assert_error(413, "payload_too_large");
    assert_eq!(live_sessions(gw).await, 0);
}

#[tokio::test]
async fn oversize_metadata_is_413() {
    let env = small_env().await;
    let gw = env.gw();
    let (status, body) = gw
        .post_json(
            "/api/create-session",
            &json!({"metadata": {"pad": "x".repeat(200)}}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    assert_eq!(live_sessions(gw).await, 0);
}

#[tokio::test]
async fn an_oversize_user_id_is_400() {
    let env = small_env().await;
    let gw = env.gw();
    let (status, body) = gw
        .post_json("/api/create-session", &json!({"user_id": "u".repeat(11)}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert_eq!(live_sessions(gw).await, 0);
}

#[tokio::test]
async fn an_oversize_frame_closes_1009() {
    let env = small_env().await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    socket
        .send_text(&json!({"message": "x".repeat(4_096)}).to_string())
        .await;
    assert_eq!(socket.closed().await, Some(1009));
    assert_eq!(gw.message_count(&id).await, 0);
}

/// Small frames that add up to an oversize message are refused the same way.
#[tokio::test]
async fn an_oversize_fragmented_message_closes_1009() {
    let env = small_env().await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    let text = json!({"message": "y".repeat(3_000)}).to_string();
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(1_000).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { Data::Text } else { Data::Continue };
        let last = i + 1 == chunks.len();
        let frame = Frame::message(chunk.to_vec(), OpCode::Data(opcode), last);
        if socket.ws.send(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    assert_eq!(socket.closed().await, Some(1009));
    assert_eq!(gw.message_count(&id).await, 0);
}

#[tokio::test]
async fn a_message_over_the_character_limit_is_refused_and_the_socket_stays() {
    let env = small_env().await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    socket.send_message(&"z".repeat(51)).await;
    let event = socket.recv().await;
    assert_eq!(event["code"], "message_too_long", "{event}");
    still_open(&mut socket).await;
    assert_eq!(gw.message_count(&id).await, 0);
}

#[tokio::test]
async fn binary_frames_are_refused_and_the_socket_stays() {
    let env = small_env().await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    let message = json!({"message": "hi"}).to_string().into_bytes();
    socket
        .ws
        .send(Message::Binary(message.into()))
        .await
        .unwrap();
    let event = socket.recv().await;
    assert_eq!(event["code"], "unsupported_frame", "{event}");
    still_open(&mut socket).await;
    assert_eq!(gw.message_count(&id).await, 0);
}

#[tokio::test]
async fn ten_thousand_character_ids_are_refused_everywhere() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    let long = "i".repeat(10_000);
    for (method, path) in [
        (reqwest::Method::GET, format!("/api/session/{long}/info")),
        (
            reqwest::Method::GET,
            format!("/api/session/{long}/messages"),
        ),
        (reqwest::Method::POST, format!("/api/session/{long}/cancel")),
        (reqwest::Method::DELETE, format!("/api/session/{long}")),
    ] {
        call(gw, method, &path, None)
            .await
            .assert_error(400, "invalid_request");
    }
    assert_socket_refused(gw, &format!("/ws/{long}"), "invalid_request", 4404).await;
    let answer = get(gw, &format!("/api/session/x/messages?before={long}"), None).await;
    assert!(
        answer.status == 400 || answer.status == 404,
        "{}",
        answer.body
    );
    assert_eq!(live_sessions(gw).await, 0);
}

#[tokio::test]
async fn invalid_utf8_is_refused_without_harm() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    // In a REST body.
    let answer = send(
        gw.http
            .post(gw.url("/api/create-session"))
            .header("content-type", "application/json")
            .body(vec![
                b'{', b'"', b'u', b's', b'e', b'r', b'_', b'i', b'd', b'"', b':', b'"', 0xff, 0xfe,
                b'"', b'}',
            ]),
    )
    .await;
    answer.assert_error(400, "invalid_request");
    // In a path.
    let answer = get(gw, "/api/session/%FF%FE/info", None).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_socket_refused(gw, "/ws/%FF%FE", "invalid_request", 4404).await;
    // In a text frame: the socket ends with 1007 (a protocol error), nothing is
    // stored, and the gateway goes on serving.
    let (id, mut socket) = gw.open_session().await;
    let frame = Frame::message(vec![b'"', 0xc3, 0x28, b'"'], OpCode::Data(Data::Text), true);
    let _ = socket.ws.send(Message::Frame(frame)).await;
    let code = socket.closed().await;
    assert_eq!(code, Some(1007));
    assert_eq!(gw.message_count(&id).await, 0);
    assert_eq!(live_sessions(gw).await, 1);
    let (_, mut other) = gw.open_session().await;
    still_open(&mut other).await;
}

// ---------------------------------------------------------------------------
// A client that never reads (issue 10, item 6)

/// `tx_queue` of the gateway's side of a loopback connection (`/proc/net/tcp`): the
/// bytes the kernel holds for a client that does not read them.
fn server_send_queue(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port_of = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, queues) = (fields.get(1)?, fields.get(2)?, fields.get(4)?);
        if port_of(local)? != server_port || port_of(remote)? != client_port {
            return None;
        }
        u64::from_str_radix(queues.split(':').next()?, 16).ok()
    })
}

/// The gateway's kernel send buffer for one connection is bounded by
/// `TCP_SEND_BUFFER_BYTES` (Linux holds up to twice the value): a client that sends
/// messages with long answers and never reads pins no more than that, then is closed
/// as too slow, and the gateway is as before.
async fn never_reading_client_pins(send_buffer: u32) -> u64 {
    let env = TestEnv::builder(Mode::Embedded)
        .mock(|m| m.tokens = 20_000)
        .settings(move |s| {
            s.limits.tcp_send_buffer_bytes = send_buffer;
            s.limits.ws_send_timeout_secs = 3;
        })
        .start()
        .await;
    let gw = env.gw();
    let id = gw.create_session().await;
    // A small receive window, so what the client does not read stays on our side.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4_096).unwrap();
    let stream = socket
        .connect(([127, 0, 0, 1], gw.port).into())
        .await
        .unwrap();
    let client_port = stream.local_addr().unwrap().port();
    let (mut ws, _) =
        tokio_tungstenite::client_async(gw.ws_url(&format!("/ws/{id}?protocol=stream")), stream)
            .await
            .unwrap();
    for i in 0..8 {
        let frame = json!({"message": format!("a long answer please {i}")}).to_string();
        ws.send(Message::Text(frame.into())).await.unwrap();
    }
    // Never read; watch what the kernel holds until the gateway lets the socket go.
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(queued) = server_send_queue(gw.port, client_port) {
            most = most.max(queued);
        }
        let (_, status) = gw.get("/status").await;
        if status["connections"] == 0 || Instant::now() > deadline {
            assert_eq!(
                status["connections"], 0,
                "the stalled socket was closed (the kernel held up to {most} bytes for it)"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing else changed: the session and the gateway still answer.
    let mut socket = gw.connect(&format!("/ws/{id}?protocol=stream")).await;
    assert_eq!(socket.recv().await["status"], "connected");
    still_open(&mut socket).await;
    drop(ws);
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_pins_a_bounded_kernel_buffer() {
    const SEND_BUFFER: u32 = 32_768;
    let most = never_reading_client_pins(SEND_BUFFER).await;
    println!("kernel send queue of a never-reading client: at most {most} bytes");
    assert!(
        most >= u64::from(SEND_BUFFER) / 2,
        "the buffer was really filled: {most}"
    );
    assert!(
        most <= 2 * u64::from(SEND_BUFFER) + 16_384,
        "held {most} bytes for a client that never reads"
    );
}
