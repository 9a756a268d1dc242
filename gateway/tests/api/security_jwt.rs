//! Security matrix, part 1: tokens. Every case is one test with its expected answer
//! (status and error code on REST, error event and close code on the socket), and
//! ends by checking nothing changed and the gateway still answers.

use crate::helpers::{Mode, TestEnv};
use crate::security_support::*;
use gateway::auth::settings::JwtAlgorithm;
use gateway::{Application, Settings};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const INFO: &str = "/api/session/any-id/info";

/// A protected REST route refuses `token` with 401 `unauthorized` and changes nothing.
async fn rest_refuses(env: &TestEnv, token: Option<&str>) {
    let gw = env.gw();
    let before = live_sessions(gw).await;
    let answer = get(gw, INFO, token).await;
    answer.assert_error(401, "unauthorized");
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    let create = send({
        let request = gw.http.post(gw.url("/api/create-session")).body("{}");
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    })
    .await;
    create.assert_error(401, "unauthorized");
    assert_eq!(live_sessions(gw).await, before, "nothing was created");
}

// ---------------------------------------------------------------------------
// REST

#[tokio::test]
async fn rest_without_a_token_is_401() {
    let env = auth_env(|_| {}).await;
    rest_refuses(&env, None).await;
    let answer = get(env.gw(), INFO, None).await;
    assert!(answer.body["message"].as_str().unwrap().contains("Bearer"));
}

#[tokio::test]
async fn rest_with_a_malformed_token_is_401() {
    let env = auth_env(|_| {}).await;
    let huge = format!("{}.{}.{}", "a".repeat(5_000), "b".repeat(5_000), "c");
    for junk in [
        "not-a-jwt",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        &huge,
    ] {
        rest_refuses(&env, Some(junk)).await;
    }
}

#[tokio::test]
async fn rest_with_a_bad_signature_is_401() {
    let env = auth_env(|_| {}).await;
    let forged = hs256_with("another-secret-that-is-long-enough!", &claims("alice"));
    rest_refuses(&env, Some(&forged)).await;
    // A good token with its payload swapped for another user's.
    let good = token("alice");
    let evil = token("mallory");
    let parts: Vec<&str> = good.split('.').collect();
    let evil_payload = evil.split('.').nth(1).unwrap();
    let spliced = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
    rest_refuses(&env, Some(&spliced)).await;
}

#[tokio::test]
async fn rest_with_a_token_of_the_wrong_key_is_401() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(rs256_auth)
        .start()
        .await;
    let wrong = rs256("b", None, &claims("alice"));
    rest_refuses(&env, Some(&wrong)).await;
    // The right key works (the control).
    let right = rs256("a", None, &claims("alice"));
    assert_eq!(get(env.gw(), "/status", Some(&right)).await.status, 200);
}

#[tokio::test]
async fn rest_with_alg_none_is_401() {
    let env = auth_env(|_| {}).await;
    let payload = b64(claims("alice").to_string().as_bytes());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let unsigned = format!("{}.{payload}.", b64(header.as_bytes()));
        rest_refuses(&env, Some(&unsigned)).await;
    }
}

/// The classic key-confusion attack: an RS256 deployment, and an HS256 token whose
/// "secret" is the (public) RSA key.
#[tokio::test]
async fn rest_with_alg_switched_to_hs256_signed_by_the_public_key_is_401() {
    let env = TestEnv::builder(Mode::Embedded)
        .settings(rs256_auth)
        .start()
        .await;
    let public_pem = std::fs::read_to_string(fixture("test_rsa_a_public.pem")).unwrap();
    let confused = hs256_with(&public_pem, &claims("alice"));
    rest_refuses(&env, Some(&confused)).await;
    // And the other way round: an HS256 deployment never accepts RS256 tokens.
    let env = auth_env(|_| {}).await;
    rest_refuses(&env, Some(&rs256("a", None, &claims("alice")))).await;
}

#[tokio::test]
async fn rest_with_an_expired_token_is_401() {
    let env = auth_env(|s| s.auth.jwt_leeway_secs = 5).await;
    let expired = hs256(&json!({"sub": "alice", "exp": now() - 60}));
    rest_refuses(&env, Some(&expired)).await;
    let answer = get(env.gw(), INFO, Some(&expired)).await;
    assert!(answer.body["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn rest_with_a_token_not_yet_valid_is_401() {
    let env = auth_env(|s| s.auth.jwt_leeway_secs = 5).await;
    let early = hs256(&json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 300}));
    rest_refuses(&env, Some(&early)).await;
}

#[tokio::test]
async fn rest_with_the_wrong_issuer_is_401() {
    let env = auth_env(|s| s.auth.jwt_issuer = Some("https://issuer.example".into())).await;
    let mut wrong = claims("alice");
    wrong["iss"] = json!("https://evil.example");
    rest_refuses(&env, Some(&hs256(&wrong))).await;
    // No `iss` at all is refused too (the library would let it pass by default).
    rest_refuses(&env, Some(&token("alice"))).await;
    let mut right = claims("alice");
    right["iss"] = json!("https://issuer.example");
    assert_eq!(
        get(env.gw(), "/status", Some(&hs256(&right))).await.status,
        200
    );
}

#[tokio::test]
async fn rest_with_the_wrong_audience_is_401() {
    let env = auth_env(|s| s.auth.jwt_audience = Some("chat-gateway".into())).await;
    let mut wrong = claims("alice");
    wrong["aud"] = json!(["billing", "admin"]);
    rest_refuses(&env, Some(&hs256(&wrong))).await;
    rest_refuses(&env, Some(&token("alice"))).await; // no `aud`
    let mut right = claims("alice");
    right["aud"] = json!(["billing", "chat-gateway"]);
    assert_eq!(
        get(env.gw(), "/status", Some(&hs256(&right))).await.status,
        200
    );
}

#[tokio::test]
async fn rest_without_exp_is_401_unless_configured_off() {
    let env = auth_env(|_| {}).await;
    let forever = hs256(&json!({"sub": "alice"}));
    rest_refuses(&env, Some(&forever)).await;
}

#[tokio::test]
async fn rest_with_no_user_claim_is_401() {
    let env = auth_env(|_| {}).await;
    for claims in [
        json!({"exp": now() + 300}),
        json!({"sub": "", "exp": now() + 300}),
        json!({"sub": "   ", "exp": now() + 300}),
        json!({"sub": {"id": "alice"}, "exp": now() + 300}),
        json!({"sub": "x".repeat(300), "exp": now() + 300}),
        // The seed's claim name is not the configured one.
        json!({"userId": "alice", "exp": now() + 300}),
    ] {
        rest_refuses(&env, Some(&hs256(&claims))).await;
    }
}

#[tokio::test]
async fn rest_token_in_the_wrong_place_is_401() {
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    let good = token("alice");
    // In the query (for sockets only), in a cookie, without the Bearer scheme.
    get(gw, &format!("/status?token={good}"), None)
        .await
        .assert_error(401, "unauthorized");
    for (name, value) in [
        ("cookie", format!("token={good}")),
        ("authorization", good.clone()),
        ("authorization", format!("Basic {good}")),
        ("x-access-token", good.clone()),
    ] {
        send(gw.http.get(gw.url("/status")).header(name, value))
            .await
            .assert_error(401, "unauthorized");
    }
    assert_eq!(get(gw, "/status", Some(&good)).await.status, 200);
}

#[tokio::test]
async fn public_routes_need_no_token_and_the_rest_do() {
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    for path in [
        "/",
        "/health",
        "/livez",
        "/metrics",
        "/demo",
        "/demo/app.js",
    ] {
        assert_eq!(get(gw, path, None).await.status, 200, "{path}");
    }
    for path in ["/status", "/api/session/x/info", "/api/session/x/messages"] {
        get(gw, path, None).await.assert_error(401, "unauthorized");
    }
    let answer = call(gw, reqwest::Method::DELETE, "/api/session/x", None).await;
    answer.assert_error(401, "unauthorized");
    let answer = call(gw, reqwest::Method::POST, "/api/session/x/cancel", None).await;
    answer.assert_error(401, "unauthorized");
}

// ---------------------------------------------------------------------------
// Good tokens of every kind

#[tokio::test]
async fn good_tokens_of_each_algorithm_are_accepted() {
    let env = auth_env(|_| {}).await;
    let id = create_as(env.gw(), &token("alice")).await;
    let info = get(
        env.gw(),
        &format!("/api/session/{id}/info"),
        Some(&token("alice")),
    )
    .await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["user_id"], "alice");

    let env = TestEnv::builder(Mode::Embedded)
        .settings(rs256_auth)
        .start()
        .await;
    create_as(env.gw(), &rs256("a", None, &claims("alice"))).await;

    let env = TestEnv::builder(Mode::Embedded)
        .settings(|s| {
            s.auth.jwt_public_key_file = Some(fixture("test_ec_public.pem"));
            s.auth.jwt_algorithm = Some(JwtAlgorithm::Es256);
        })
        .start()
        .await;
    create_as(env.gw(), &es256(&claims("alice"))).await;
    rest_refuses(&env, Some(&rs256("a", None, &claims("alice")))).await;
}

/// The streaming seed signs `{userId}` with no `exp`: accepted when configured so.
#[tokio::test]
async fn the_seed_style_token_works_when_configured() {
    let env = auth_env(|s| {
        s.auth.jwt_user_claim = "userId".into();
        s.auth.jwt_require_exp = false;
    })
    .await;
    let seed_token = hs256(&json!({"userId": "user_12345", "iat": now()}));
    let id = create_as(env.gw(), &seed_token).await;
    let info = get(
        env.gw(),
        &format!("/api/session/{id}/info"),
        Some(&seed_token),
    )
    .await;
    assert_eq!(info.body["user_id"], "user_12345");
    // ... but an `exp` that is present is still enforced.
    let expired = hs256(&json!({"userId": "user_12345", "exp": now() - 600}));
    rest_refuses(&env, Some(&expired)).await;
}

/// JWKS: keys by `kid`, and a rotation is picked up without a restart.
#[tokio::test]
async fn jwks_keys_are_chosen_by_kid_and_rotate_without_restart() {
    let dir = std::env::temp_dir().join(format!("jwks-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    let jwk = |which: &str, kid: &str| {
        let pem = std::fs::read(fixture(&format!("test_rsa_{which}_private.pem"))).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256)
                .unwrap();
        jwk.common.key_id = Some(kid.into());
        jwk
    };
    let write = |keys: Vec<jsonwebtoken::jwk::Jwk>| {
        std::fs::write(
            &path,
            serde_json::to_string(&json!({"keys": keys})).unwrap(),
        )
        .unwrap();
    };
    write(vec![jwk("a", "key-1")]);
    let jwks_path = path.clone();
    let env = TestEnv::builder(Mode::Embedded)
        .settings(move |s| {
            s.auth.jwt_jwks_file = Some(jwks_path.clone());
            s.auth.jwt_algorithm = Some(JwtAlgorithm::Rs256);
            s.auth.jwt_jwks_reload_secs = 1;
        })
        .start()
        .await;
    let gw = env.gw();
    let by = |which: &str, kid: Option<&str>| rs256(which, kid, &claims("alice"));
    assert_eq!(
        get(gw, "/status", Some(&by("a", Some("key-1"))))
            .await
            .status,
        200
    );
    assert_eq!(
        get(gw, "/status", Some(&by("a", None))).await.status,
        200,
        "the only key"
    );
    // Key b is not published yet: refused, whatever kid it claims.
    rest_refuses(&env, Some(&by("b", Some("key-2")))).await;
    rest_refuses(&env, Some(&by("b", Some("key-1")))).await;

    // Rotation: key-2 is published next to key-1; tokens of both verify at once.
    write(vec![jwk("a", "key-1"), jwk("b", "key-2")]);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(
        get(gw, "/status", Some(&by("b", Some("key-2"))))
            .await
            .status,
        200
    );
    assert_eq!(
        get(gw, "/status", Some(&by("a", Some("key-1"))))
            .await
            .status,
        200
    );
    rest_refuses(&env, Some(&by("a", None))).await; // two keys: a kid is needed

    // key-1 is retired: its tokens stop working within the reload interval.
    write(vec![jwk("b", "key-2")]);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    rest_refuses(&env, Some(&by("a", Some("key-1")))).await;
    assert_eq!(get(gw, "/status", Some(&by("b", None))).await.status, 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------
// Sockets

#[tokio::test]
async fn socket_without_a_token_is_4401() {
    let env = auth_env(|s| s.limits.auto_create_sessions = Some(true)).await;
    let before = live_sessions(env.gw()).await;
    assert_socket_refused(env.gw(), "/ws/chosen-id", "unauthorized", 4401).await;
    assert_eq!(
        live_sessions(env.gw()).await,
        before,
        "nothing auto-created"
    );
}

#[tokio::test]
async fn socket_with_a_bad_token_is_4401() {
    let env = auth_env(|s| s.limits.auto_create_sessions = Some(true)).await;
    let gw = env.gw();
    let id = create_as(gw, &token("alice")).await;
    let expired = hs256(&json!({"sub": "alice", "exp": now() - 600}));
    let forged = hs256_with("another-secret-that-is-long-enough!", &claims("alice"));
    for bad in ["garbage", expired.as_str(), forged.as_str()] {
        assert_socket_refused(gw, &format!("/ws/{id}?token={bad}"), "unauthorized", 4401).await;
        assert_socket_refused(gw, &format!("/ws/new-id?token={bad}"), "unauthorized", 4401).await;
    }
    assert_eq!(live_sessions(gw).await, 1);
    assert_eq!(count_as(gw, &id, &token("alice")).await, 0);
}

#[tokio::test]
async fn socket_token_in_the_wrong_place_is_4401() {
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    let good = token("alice");
    let id = create_as(gw, &good).await;
    for (name, value) in [
        ("cookie", format!("token={good}")),
        ("x-access-token", good.clone()),
        // A bare token as a subprotocol, without `bearer` before it.
        ("sec-websocket-protocol", good.clone()),
    ] {
        let result = connect_with(gw, &format!("/ws/{id}"), &[(name, &value)]).await;
        // The server may refuse the handshake outright (subprotocol mismatch) or
        // upgrade and close with 4401; it never lets the socket in.
        if let Ok((mut socket, _)) = result {
            assert_refused(&mut socket, "unauthorized", 4401).await;
        }
    }
}

#[tokio::test]
async fn socket_token_by_query_or_subprotocol_is_accepted() {
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    let good = token("alice");
    let id = create_as(gw, &good).await;
    let mut by_query = open_as(gw, &id, &good).await;
    still_open(&mut by_query).await;
    let (mut by_protocol, response) = connect_with(
        gw,
        &format!("/ws/{id}"),
        &[("sec-websocket-protocol", &format!("bearer, {good}"))],
    )
    .await
    .expect("upgrade");
    assert_eq!(response.headers()["sec-websocket-protocol"], "bearer");
    assert_eq!(by_protocol.recv().await["status"], "connected");
    still_open(&mut by_protocol).await;
}

/// A token that expires on a live socket closes it with 4401.
#[tokio::test]
async fn socket_whose_token_expires_unrefreshed_is_closed_4401() {
    let env = auth_env(|s| s.auth.jwt_leeway_secs = 0).await;
    let gw = env.gw();
    let id = create_as(gw, &token("alice")).await;
    let short = hs256(&json!({"sub": "alice", "exp": now() + 2}));
    let mut socket = open_as(gw, &id, &short).await;
    let started = std::time::Instant::now();
    assert_refused(&mut socket, "unauthorized", 4401).await;
    assert!(
        started.elapsed() <= std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Refreshing in band keeps a long chat open; another user's token does not.
#[tokio::test]
async fn socket_refreshed_in_band_stays_open() {
    let env = auth_env(|s| s.auth.jwt_leeway_secs = 0).await;
    let gw = env.gw();
    let id = create_as(gw, &token("alice")).await;
    let short = hs256(&json!({"sub": "alice", "exp": now() + 2}));
    let mut socket = open_as(gw, &id, &short).await;

    // Another user's token, or a bad one, is refused; the socket stays.
    for bad in [token("mallory"), "garbage".to_owned()] {
        socket
            .send_json(&json!({"type": "auth", "token": bad}))
            .await;
        let event = socket.recv().await;
        assert_eq!(event["code"], "unauthorized", "{event}");
    }
    socket
        .send_json(&json!({"type": "auth", "token": token("alice")}))
        .await;
    let event = socket.recv().await;
    assert_eq!(event["type"], "status", "{event}");
    assert_eq!(event["status"], "authenticated", "{event}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    still_open(&mut socket).await;
    socket.send_message("still here").await;
    let events = socket.until_ready().await;
    assert!(events.iter().any(|e| e["type"] == "complete"), "{events:?}");
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Issue 10, item 2: a fractional `exp` (a valid NumericDate) once switched socket
/// expiry off. It is accepted on REST and the socket, and the socket closes with 4401
/// at that exact time, also when it arrives in band; nothing else changes.
#[tokio::test]
async fn a_fractional_exp_closes_the_socket_4401_at_its_time() {
    let env = auth_env(|s| s.auth.jwt_leeway_secs = 0).await;
    let gw = env.gw();
    let id = create_as(gw, &token("alice")).await;
    let before = live_sessions(gw).await;
    let fractional = |after_ms: u64| {
        let exp = (now_ms() + after_ms) as f64 / 1000.0 + 0.000_5;
        assert!(exp.fract() != 0.0);
        hs256(&json!({"sub": "alice", "exp": exp}))
    };

    // Opened with it: REST accepts it, and the socket lives until exp, not longer.
    let short = fractional(2_500);
    assert_eq!(get(gw, INFO, Some(&short)).await.status, 404, "accepted");
    let opened = std::time::Instant::now();
    let mut socket = open_as(gw, &id, &short).await;
    still_open(&mut socket).await;
    assert_refused(&mut socket, "unauthorized", 4401).await;
    let lived = opened.elapsed();
    assert!(
        lived >= std::time::Duration::from_millis(2_000)
            && lived <= std::time::Duration::from_millis(4_000),
        "closed at the fractional exp, ~2.5 s: {lived:?}"
    );

    // Refreshed in band to it: a socket with a long token gets the short deadline.
    let mut socket = open_as(gw, &id, &token("alice")).await;
    let refreshed = std::time::Instant::now();
    socket
        .send_json(&json!({"type": "auth", "token": fractional(2_500)}))
        .await;
    assert_eq!(socket.recv().await["status"], "authenticated");
    assert_refused(&mut socket, "unauthorized", 4401).await;
    assert!(refreshed.elapsed() <= std::time::Duration::from_millis(4_000));

    // A fractional exp already past is refused like any expired token.
    let past = hs256(&json!({"sub": "alice", "exp": (now_ms() - 1_500) as f64 / 1000.0}));
    rest_refuses(&env, Some(&past)).await;
    assert_eq!(live_sessions(gw).await, before, "nothing else changed");
    assert_eq!(count_as(gw, &id, &token("alice")).await, 0);
}

/// Issue 10, item 3: `exp: 18446744073709551615` (and floats past it) once overflowed
/// the socket task's deadline (a panic, close 1006). Such a token is a token valid for
/// a very long time: REST and the socket work, and the socket answers.
#[tokio::test]
async fn a_huge_exp_neither_panics_nor_breaks_the_socket() {
    let env = auth_env(|s| s.auth.jwt_leeway_secs = 0).await;
    let gw = env.gw();
    let id = create_as(gw, &token("alice")).await;
    let huge: Vec<String> = vec![
        hs256(&json!({"sub": "alice", "exp": u64::MAX})),
        hs256(&json!({"sub": "alice", "exp": 1e300})),
        // 2^64: no u64 holds it; serde_json reads it as a float.
        hs256(&serde_json::from_str(r#"{"sub": "alice", "exp": 18446744073709551616}"#).unwrap()),
    ];
    for (i, token) in huge.iter().enumerate() {
        assert_eq!(
            get(gw, &format!("/api/session/{id}/info"), Some(token))
                .await
                .status,
            200
        );
        let mut socket = open_as(gw, &id, token).await;
        socket
            .send_json(&json!({"type": "auth", "token": token}))
            .await;
        assert_eq!(socket.recv().await["status"], "authenticated");
        socket.send_message(&format!("still here {i}")).await;
        let events = socket.until_ready().await;
        assert!(events.iter().any(|e| e["type"] == "complete"), "{events:?}");
        still_open(&mut socket).await;
    }
    assert_eq!(count_as(gw, &id, &token("alice")).await, 6);
}

/// Issue 10, item 6: a header whose `crit` names an extension this server does not
/// implement is refused (RFC 7515 §4.1.11), on REST and the socket.
#[tokio::test]
async fn a_crit_header_with_an_unknown_extension_is_refused() {
    let env = auth_env(|_| {}).await;
    let gw = env.gw();
    let id = create_as(gw, &token("alice")).await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.crit = Some(vec!["urn:example:must-understand".into()]);
    let critical = jsonwebtoken::encode(
        &header,
        &claims("alice"),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    rest_refuses(&env, Some(&critical)).await;
    let answer = get(gw, &format!("/api/session/{id}/info"), Some(&critical)).await;
    answer.assert_error(401, "unauthorized");
    assert!(
        answer.body["message"].as_str().unwrap().contains("crit"),
        "{}",
        answer.body
    );
    assert_socket_refused(
        gw,
        &format!("/ws/{id}?token={critical}"),
        "unauthorized",
        4401,
    )
    .await;
    // In band too: the socket keeps its good token and stays.
    let mut socket = open_as(gw, &id, &token("alice")).await;
    socket
        .send_json(&json!({"type": "auth", "token": critical}))
        .await;
    assert_eq!(socket.recv().await["code"], "unauthorized");
    still_open(&mut socket).await;
    assert_eq!(count_as(gw, &id, &token("alice")).await, 0);
}

#[tokio::test]
async fn with_auth_off_tokens_are_ignored_and_auth_frames_answered() {
    let env = TestEnv::builder(Mode::Embedded).start().await;
    let gw = env.gw();
    // Any token, anywhere, changes nothing.
    assert_eq!(get(gw, "/status", Some("garbage")).await.status, 200);
    let (id, mut socket) = gw.open_session().await;
    socket
        .send_json(&json!({"type": "auth", "token": "x"}))
        .await;
    let event = socket.recv().await;
    assert_eq!(event["code"], "invalid_request", "{event}");
    still_open(&mut socket).await;
    assert_eq!(gw.message_count(&id).await, 0);
}

// ---------------------------------------------------------------------------
// Start-up checks

async fn start_error(tweak: impl Fn(&mut Settings)) -> String {
    let mut settings = Settings::defaults();
    settings.host = "127.0.0.1".into();
    settings.port = 0;
    tweak(&mut settings);
    match Application::build(settings, CancellationToken::new()).await {
        Ok(_) => panic!("the gateway started"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn bad_auth_settings_stop_the_start_naming_the_variable() {
    type Tweak = Box<dyn Fn(&mut Settings)>;
    let cases: Vec<(&str, Tweak)> = vec![
        (
            "JWT_ALGORITHM",
            Box::new(|s| {
                hs256_auth(s);
                s.auth.jwt_algorithm = Some(JwtAlgorithm::Rs256);
            }),
        ),
        (
            "JWT_SECRET",
            Box::new(|s| s.auth.jwt_secret = Some("short".into())),
        ),
        (
            "JWT_SECRET",
            Box::new(|s| {
                hs256_auth(s);
                rs256_auth(s);
            }),
        ),
        (
            "JWT_ALGORITHM",
            Box::new(|s| s.auth.jwt_public_key_file = Some(fixture("test_rsa_a_public.pem"))),
        ),
        (
            "JWT_PUBLIC_KEY_FILE",
            Box::new(|s| {
                s.auth.jwt_public_key_file = Some(fixture("test_rsa_a_public.pem"));
                s.auth.jwt_algorithm = Some(JwtAlgorithm::Es256);
            }),
        ),
        (
            "JWT_PUBLIC_KEY_FILE",
            Box::new(|s| {
                s.auth.jwt_public_key_file = Some(fixture("missing.pem"));
                s.auth.jwt_algorithm = Some(JwtAlgorithm::Rs256);
            }),
        ),
        (
            "JWT_JWKS_FILE",
            Box::new(|s| {
                s.auth.jwt_jwks_file = Some(fixture("test_rsa_a_public.pem"));
                s.auth.jwt_algorithm = Some(JwtAlgorithm::Rs256);
            }),
        ),
        (
            "JWT_ISSUER",
            Box::new(|s| s.auth.jwt_issuer = Some("x".into())),
        ),
        (
            "TRUSTED_PROXIES",
            Box::new(|s| s.protection.trusted_proxies = Some("10.0.0.0/33".into())),
        ),
        (
            "CORS_ALLOWED_ORIGINS",
            Box::new(|s| s.cors_allowed_origins = Some("example.com".into())),
        ),
    ];
    for (variable, tweak) in cases {
        let error = start_error(tweak).await;
        assert!(
            error.starts_with(&format!("{variable}: ")),
            "{variable}: {error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
        assert!(!error.contains(SECRET), "{error}");
    }
}
