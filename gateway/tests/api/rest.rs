//! Every REST route: bodies, status codes and the error shape.

use crate::both_backends;
use crate::helpers::{Mode, TestEnv};
use serde_json::{Value, json};

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().expect("message is a string");
    assert!(!message.is_empty(), "{body}");
}

fn assert_rfc3339(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("time is a string: {value}"));
    assert!(text.ends_with('Z'), "{text}");
    assert!(chrono_like(text), "{text}");
}

fn chrono_like(text: &str) -> bool {
    // 2026-11-26T10:30:00.123Z
    text.len() == 24 && &text[4..5] == "-" && &text[10..11] == "T" && &text[19..20] == "."
}

both_backends!(
    info_health_livez_status,
    create_session_and_read_it_back,
    create_session_bad_bodies,
    delete_session,
    history_pages,
    unknown_and_invalid_ids,
);

async fn info_health_livez_status(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();

    let (status, body) = gw.get("/").await;
    assert_eq!(status, 200);
    assert_eq!(body["service"], "chat-gateway");
    assert!(body["version"].is_string());
    assert!(body["endpoints"].is_object());

    let (status, body) = gw.get("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    for field in ["service", "agent", "version"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
    assert_eq!(body["active_sessions"], 0);
    assert_rfc3339(&body["timestamp"]);

    let (status, body) = gw.get("/livez").await;
    assert_eq!((status, body), (200, json!({"status": "alive"})));

    gw.create_session().await;
    let (status, body) = gw.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["active_sessions"], 1);

    let (status, body) = gw.get("/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert!(body["instance"].is_string());
    if mode == Mode::Embedded {
        assert_eq!(body["model"]["base_url"], env.mock.api_base());
        assert_eq!(body["model"]["name"], "mock-model");
        assert_eq!(body["model"]["demo"], false);
    } else {
        // This gateway runs no worker: the workers' settings choose the model.
        assert_eq!(body["model"]["provider"], "configured on workers", "{body}");
        assert!(body["model"].get("base_url").is_none(), "{body}");
    }
    assert!(body["model"]["limits"]["max_message_chars"].is_u64());
    assert_eq!(body["connections"], 0);
    assert_eq!(body["active_sessions"], 1);
    assert!(body["queue"]["backlog"].is_u64());
    assert!(body["queue"]["oldest_pending_age_ms"].is_u64());
    let expected_mode = if mode == Mode::Redis {
        "redis"
    } else {
        "embedded"
    };
    assert_eq!(body["mode"], expected_mode);
    assert!(!body.to_string().contains("sk-"), "no key in /status");

    let mut socket = gw.connect("/ws/watcher?protocol=stream").await;
    socket.recv().await;
    let (_, body) = gw.get("/status").await;
    assert_eq!(body["connections"], 1);
}

async fn create_session_and_read_it_back(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let (status, body) = gw
        .post_json(
            "/api/create-session",
            &json!({"user_id": "user_12345", "metadata": {"source": "dashboard", "user_name": "John Doe"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["session_id"].as_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4),
        "{id}"
    );
    assert_eq!(
        body["websocket_url"],
        format!("ws://127.0.0.1:{}/ws/{id}", gw.port)
    );
    assert_rfc3339(&body["created_at"]);
    assert_eq!(body["status"], "ready");

    let (status, info) = gw.get(&format!("/api/session/{id}/info")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["session_id"], id);
    assert_eq!(info["created_at"], body["created_at"]);
    assert_eq!(info["message_count"], 0);
    assert_eq!(info["user_id"], "user_12345");
    assert_eq!(info["status"], "active");
    assert_rfc3339(&info["last_activity_at"]);
    assert_eq!(
        info["metadata"],
        json!({"source": "dashboard", "user_name": "John Doe"})
    );

    // No body at all, and an explicit null user.
    let (status, body) = gw.post_raw("/api/create-session", "").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = gw
        .post_json(
            "/api/create-session",
            &json!({"user_id": null, "metadata": {}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, info) = gw
        .get(&format!(
            "/api/session/{}/info",
            body["session_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(info["user_id"], Value::Null);

    // websocket_url follows the request's Host; X-Forwarded-Proto only counts from a
    // trusted proxy (none here; see security_surface.rs for the trusted case).
    let response = gw
        .http
        .post(gw.url("/api/create-session"))
        .header("host", "chat.example.com")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let id = body["session_id"].as_str().unwrap();
    assert_eq!(
        body["websocket_url"],
        format!("ws://chat.example.com/ws/{id}")
    );
}

async fn create_session_bad_bodies(mode: Mode) {
    let env = TestEnv::builder(mode)
        .settings(|s| {
            s.limits.max_body_bytes = 1024;
            s.limits.max_metadata_bytes = 100;
            s.limits.max_user_id_chars = 10;
        })
        .start()
        .await;
    let gw = env.gw();
    for bad in [
        "{not json",
        "[]",
        "\"text\"",
        r#"{"user_id": 5}"#,
        r#"{"metadata": "x"}"#,
        r#"{"metadata": [1]}"#,
        r#"{"protocol": "carrier-pigeon"}"#,
        r#"{"unexpected": true}"#,
        r#"{"user_id": "abcdefghijk"}"#,
    ] {
        let (status, body) = gw.post_raw("/api/create-session", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_error(&body, "invalid_request");
    }
    let (status, body) = gw
        .post_json(
            "/api/create-session",
            &json!({"metadata": {"blob": "x".repeat(200)}}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_error(&body, "payload_too_large");
    let (status, body) = gw
        .post_raw(
            "/api/create-session",
            format!("{{\"metadata\":{{\"a\":\"{}\"}}}}", "x".repeat(2000)),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_error(&body, "payload_too_large");
    // Nothing was created by any of these.
    let (_, health) = gw.get("/health").await;
    assert_eq!(health["active_sessions"], 0, "{health}");
}

async fn delete_session(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let id = gw.create_session().await;
    let (status, body) = gw.delete(&format!("/api/session/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "deleted");
    assert_eq!(body["session_id"], id.as_str());
    assert_rfc3339(&body["deleted_at"]);

    let (status, body) = gw.get(&format!("/api/session/{id}/info")).await;
    assert_eq!(status, 404);
    assert_error(&body, "session_not_found");
    let (status, body) = gw.delete(&format!("/api/session/{id}")).await;
    assert_eq!(status, 404);
    assert_error(&body, "session_not_found");
    let (status, _) = gw.get(&format!("/api/session/{id}/messages")).await;
    assert_eq!(status, 404);
}

async fn history_pages(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let id = gw.create_session().await;
    let (status, body) = gw.get(&format!("/api/session/{id}/messages")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"session_id": id, "messages": [], "has_more": false})
    );

    let mut socket = gw.connect(&format!("/ws/{id}")).await;
    socket.recv().await; // connected
    for text in ["one", "two", "three"] {
        socket.send_message(text).await;
        socket.until_ready().await;
    }
    let (_, body) = gw.get(&format!("/api/session/{id}/messages")).await;
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 6);
    assert_eq!(body["has_more"], false);
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ]
    );
    for m in messages {
        assert!(m["id"].is_string() && m["content"].is_string());
        assert_rfc3339(&m["created_at"]);
    }
    assert_eq!(messages[0]["content"], "one");
    assert_eq!(messages[5]["reply_to"], messages[4]["id"]);

    let (_, page) = gw.get(&format!("/api/session/{id}/messages?limit=2")).await;
    assert_eq!(page["messages"].as_array().unwrap()[..], messages[4..6]);
    assert_eq!(page["has_more"], true);
    let before = messages[4]["id"].as_str().unwrap();
    let (_, page) = gw
        .get(&format!(
            "/api/session/{id}/messages?limit=3&before={before}"
        ))
        .await;
    assert_eq!(page["messages"].as_array().unwrap()[..], messages[1..4]);
    assert_eq!(page["has_more"], true);

    for bad in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "before=nope",
        &format!("before={}", uuid::Uuid::new_v4()),
    ] {
        let (status, body) = gw.get(&format!("/api/session/{id}/messages?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_error(&body, "invalid_request");
    }
    assert_eq!(gw.message_count(&id).await, 6);
}

async fn unknown_and_invalid_ids(mode: Mode) {
    let env = TestEnv::builder(mode).start().await;
    let gw = env.gw();
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/session/{unknown}/info"),
        format!("/api/session/{unknown}/messages"),
    ] {
        let (status, body) = gw.get(&path).await;
        assert_eq!(status, 404, "{path}");
        assert_error(&body, "session_not_found");
    }
    let (status, body) = gw.delete(&format!("/api/session/{unknown}")).await;
    assert_eq!(status, 404);
    assert_error(&body, "session_not_found");

    let long = "x".repeat(10_000);
    for bad in ["a%7Bb%7D", "sp%20ace", long.as_str()] {
        let (status, body) = gw.get(&format!("/api/session/{bad}/info")).await;
        assert_eq!(status, 400, "{body}");
        assert_error(&body, "invalid_request");
    }
    let (status, body) = gw.get("/no/such/route").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string() && body["message"].is_string());
    let (status, body) = gw.post_raw("/health", "").await;
    assert_eq!(status, 405, "{body}");
}

/// A gateway without a worker and without LLM settings of its own does not claim the
/// built-in demo model answers: its workers (configured apart) do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_gateway_without_worker_does_not_claim_a_model() {
    let env = TestEnv::builder(Mode::Redis)
        .workers(0)
        .settings(|s| {
            s.llm.openai_base_url = None;
            s.llm.openai_api_key = None;
        })
        .start()
        .await;
    let (status, body) = env.gw().get("/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["worker_in_process"], false);
    let model = &body["model"];
    assert_eq!(model["provider"], "configured on workers", "{model}");
    assert_eq!(model["configured_on"], "workers");
    assert!(
        model.get("demo").is_none() && model.get("name").is_none(),
        "{model}"
    );
    assert!(!body.to_string().contains("builtin-demo"), "{body}");
}
