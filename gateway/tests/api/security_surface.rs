//! Issue 10, item 6: the smaller holes. A path whose percent-escapes decode to no
//! UTF-8 text gets the contract's JSON error; `websocket_url` never reflects a `Host`
//! that is not a plain `host[:port]` and believes `X-Forwarded-Proto` only from
//! trusted proxies, and `PUBLIC_URL` wins (and is checked at start-up); `/demo`
//! answers carry a Content-Security-Policy, `nosniff` and frame-ancestors. Each case
//! also checks that nothing else changed.

use crate::helpers::{Mode, TestEnv};
use crate::security_support::*;
use gateway::{Application, Settings};
use tokio_util::sync::CancellationToken;

/// Creates a session with these extra headers.
async fn create_with(gw: &crate::helpers::TestGateway, headers: &[(&str, &str)]) -> Answer {
    let mut request = gw.http.post(gw.url("/api/create-session"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
}

#[tokio::test]
async fn a_path_that_does_not_decode_gets_the_json_error() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    let (id, mut socket) = gw.open_session().await;
    let before = live_sessions(gw).await;
    for (method, path) in [
        (reqwest::Method::GET, "/api/session/%ff/info".to_owned()),
        (
            reqwest::Method::GET,
            "/api/session/%ff%fe/messages".to_owned(),
        ),
        (reqwest::Method::DELETE, "/api/session/%c3%28".to_owned()),
        (reqwest::Method::POST, "/api/session/%ff/cancel".to_owned()),
        (
            reqwest::Method::GET,
            format!("/api/session/{id}/messages?limit=%ff"),
        ),
    ] {
        let answer = call(gw, method.clone(), &path, None).await;
        answer.assert_error(400, "invalid_request");
        assert_eq!(
            answer.headers["content-type"], "application/json",
            "{method} {path}"
        );
    }
    assert_eq!(live_sessions(gw).await, before, "nothing was changed");
    still_open(&mut socket).await;
    assert_eq!(gw.message_count(&id).await, 0);
}

#[tokio::test]
async fn websocket_url_reflects_no_bad_host_and_no_untrusted_proto() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    let before = live_sessions(gw).await;
    // A Host that is not host[:port] is refused, and no session is made for it.
    for evil in [
        "\"><script>alert(1)</script>",
        "evil.com/path",
        "user@evil.com",
        "a b",
    ] {
        let answer = create_with(gw, &[("host", evil)]).await;
        answer.assert_error(400, "invalid_request");
        assert!(
            !answer.body.to_string().contains("<script>"),
            "{}",
            answer.body
        );
    }
    assert_eq!(live_sessions(gw).await, before, "nothing was created");
    // X-Forwarded-Proto from a peer that is no trusted proxy changes nothing.
    let answer = create_with(
        gw,
        &[("host", "chat.example.com"), ("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let id = answer.body["session_id"].as_str().unwrap();
    assert_eq!(
        answer.body["websocket_url"],
        format!("ws://chat.example.com/ws/{id}")
    );

    // Behind a trusted proxy, its scheme counts.
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| s.protection.trusted_proxies = Some("127.0.0.1".into()))
        .start()
        .await;
    let answer = create_with(
        env.gw(),
        &[("host", "chat.example.com"), ("x-forwarded-proto", "https")],
    )
    .await;
    let id = answer.body["session_id"].as_str().unwrap();
    assert_eq!(
        answer.body["websocket_url"],
        format!("wss://chat.example.com/ws/{id}")
    );
}

#[tokio::test]
async fn public_url_wins_over_any_host_and_is_checked_at_start() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| s.public_url = Some("https://chat.example.com/api-base/".into()))
        .start()
        .await;
    let answer = create_with(
        env.gw(),
        &[("host", "\"><script>"), ("x-forwarded-proto", "http")],
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let id = answer.body["session_id"].as_str().unwrap();
    assert_eq!(
        answer.body["websocket_url"],
        format!("wss://chat.example.com/api-base/ws/{id}")
    );
    for bad in [
        "javascript:alert(1)",
        "https://u:p@chat.example.com",
        "https://x/?a=1",
        "chat.example.com",
    ] {
        let mut settings = Settings::defaults();
        settings.host = "127.0.0.1".into();
        settings.port = 0;
        settings.public_url = Some(bad.into());
        let error = match Application::build(settings, CancellationToken::new()).await {
            Ok(_) => panic!("{bad} was accepted"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("PUBLIC_URL"), "{bad}: {error}");
    }
}

#[tokio::test]
async fn demo_responses_carry_csp_nosniff_and_frame_ancestors() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    for path in ["/demo", "/demo/", "/demo/app.js", "/demo/style.css"] {
        let answer = get(gw, path, None).await;
        assert_eq!(answer.status, 200, "{path}");
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path} has no {name}"))
                .to_owned()
        };
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
    // The page is still the page, and the API answers as before.
    let page = get(gw, "/demo", None).await;
    assert!(page.body.as_str().unwrap().contains("Chat gateway demo"));
    assert_eq!(get(gw, "/", None).await.status, 200);
}
