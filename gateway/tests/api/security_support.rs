//! What the security tests share: signed test tokens (HS256 with a test secret, RS256
//! and ES256 with the throw-away keys in `tests/fixtures/`), requests with a token or
//! extra headers, sockets opened with extra headers, and the "nothing changed" check
//! every refused case ends with.

use crate::helpers::{EVENT_TIMEOUT, Mode, TestEnv, TestGateway, TestSocket};
use gateway::Settings;
use gateway::auth::settings::JwtAlgorithm;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::PathBuf;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The HS256 secret the test gateways trust (test-only, 32+ bytes).
pub const SECRET: &str = "test-only-secret-0123456789abcdef";

/// A file in `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims of a good token for `user`, valid for five minutes.
pub fn claims(user: &str) -> Value {
    json!({"sub": user, "exp": now() + 300, "iat": now()})
}

pub fn sign(algorithm: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("token signs")
}

pub fn hs256_with(secret: &str, claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
        claims,
    )
}

/// An HS256 token signed with the gateways' secret.
pub fn hs256(claims: &Value) -> String {
    hs256_with(SECRET, claims)
}

/// A good token for `user`.
pub fn token(user: &str) -> String {
    hs256(&claims(user))
}

/// An RS256 token signed with fixture key `a` (trusted) or `b` (not).
pub fn rs256(which: &str, kid: Option<&str>, claims: &Value) -> String {
    let pem = std::fs::read(fixture(&format!("test_rsa_{which}_private.pem"))).unwrap();
    sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
        kid,
        claims,
    )
}

pub fn es256(claims: &Value) -> String {
    let pem = std::fs::read(fixture("test_ec_private.pem")).unwrap();
    sign(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(&pem).unwrap(),
        None,
        claims,
    )
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Settings with HS256 authentication on.
pub fn hs256_auth(s: &mut Settings) {
    s.auth.jwt_secret = Some(SECRET.into());
}

/// Settings with RS256 authentication on (fixture key `a`).
pub fn rs256_auth(s: &mut Settings) {
    s.auth.jwt_public_key_file = Some(fixture("test_rsa_a_public.pem"));
    s.auth.jwt_algorithm = Some(JwtAlgorithm::Rs256);
}

/// An embedded gateway with HS256 authentication and `tweak` on top.
pub async fn auth_env(tweak: impl Fn(&mut Settings) + 'static) -> TestEnv {
    auth_env_on(Mode::Embedded, tweak).await
}

pub async fn auth_env_on(mode: Mode, tweak: impl Fn(&mut Settings) + 'static) -> TestEnv {
    TestEnv::builder(mode)
        .settings(move |s| {
            hs256_auth(s);
            tweak(s);
        })
        .start()
        .await
}

/// A REST answer: status, JSON body (or the text as a string), headers.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// Asserts the contract's error shape with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], code, "{}", self.body);
        let message = self.body["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{}", self.body);
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        body,
        headers,
    }
}

/// `method path` with `Authorization: Bearer <token>` when given.
pub async fn call(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> Answer {
    let mut request = gw.http.request(method, gw.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

pub async fn get(gw: &TestGateway, path: &str, token: Option<&str>) -> Answer {
    call(gw, reqwest::Method::GET, path, token).await
}

/// `POST /api/create-session` as `token`'s user; returns the new id.
pub async fn create_as(gw: &TestGateway, token: &str) -> String {
    let answer = send(
        gw.http
            .post(gw.url("/api/create-session"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["session_id"].as_str().unwrap().to_owned()
}

/// The session's `message_count`, read as `token`'s user.
pub async fn count_as(gw: &TestGateway, id: &str, token: &str) -> u64 {
    let info = get(gw, &format!("/api/session/{id}/info"), Some(token)).await;
    assert_eq!(info.status, 200, "{}", info.body);
    info.body["message_count"].as_u64().expect("message_count")
}

/// Opens `path` with extra request headers; `Err` when the upgrade is refused.
pub async fn connect_with(
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<
    (
        TestSocket,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    String,
> {
    let mut request = gw
        .ws_url(path)
        .into_client_request()
        .expect("a client request");
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let connecting = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(EVENT_TIMEOUT, connecting).await {
        Ok(Ok((ws, response))) => Ok((TestSocket { ws }, response)),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Opens `/ws/{id}?token=<token>` and reads `connected` (`id` may carry a query).
pub async fn open_as(gw: &TestGateway, id: &str, token: &str) -> TestSocket {
    let separator = if id.contains('?') { '&' } else { '?' };
    let mut socket = gw
        .connect(&format!("/ws/{id}{separator}token={token}"))
        .await;
    let connected = socket.recv().await;
    assert_eq!(connected["status"], "connected", "{connected}");
    socket
}

/// Asserts the socket gets one `error` event with `code`, then closes with `close`.
pub async fn assert_refused(socket: &mut TestSocket, code: &str, close: u16) {
    let event = socket.recv().await;
    assert_eq!(event["type"], "error", "{event}");
    assert_eq!(event["code"], code, "{event}");
    assert_eq!(socket.closed().await, Some(close), "after {event}");
}

/// Opens `path` and asserts it is refused with `code` and `close`.
pub async fn assert_socket_refused(gw: &TestGateway, path: &str, code: &str, close: u16) {
    let mut socket = gw.connect(path).await;
    assert_refused(&mut socket, code, close).await;
}

/// The socket still answers a ping.
pub async fn still_open(socket: &mut TestSocket) {
    socket.send_text(r#"{"type":"ping"}"#).await;
    loop {
        let event = socket.recv().await;
        if event["type"] == "pong" {
            return;
        }
    }
}

/// What must not change when a request is refused: the live sessions, and the
/// gateway still answering.
pub async fn live_sessions(gw: &TestGateway) -> u64 {
    let (status, health) = gw.get("/health").await;
    assert_eq!(status, 200, "{health}");
    health["active_sessions"].as_u64().expect("active_sessions")
}
