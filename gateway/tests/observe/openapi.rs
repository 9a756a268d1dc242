//! The served OpenAPI document: valid by `openapi-spec-validator`, complete (the
//! WebSocket frames and the error body are in it), and true of a live gateway by
//! `schemathesis`, with authentication off and on.

use crate::procs::GatewayProc;
use crate::python;
use serde_json::Value;
use std::process::Command;

/// Validates the OpenAPI document on stdin; prints its version.
const VALIDATE: &str = r#"
import json, sys
from openapi_spec_validator import validate
spec = json.load(sys.stdin)
validate(spec)
print(spec["openapi"])
"#;

/// Examples per operation and phase: enough to reach every documented status, small
/// enough for CI (a run takes seconds). The seed makes runs repeatable.
const EXAMPLES: &str = "25";
const SEED: &str = "20261201";

async fn served_spec(gateway: &GatewayProc) -> (String, Value) {
    let response = reqwest::get(format!("{}/openapi.json", gateway.url()))
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let spec = serde_json::from_str(&text).expect("the document is JSON");
    (text, spec)
}

/// Runs schemathesis against `gateway` with `headers`; panics with its report on
/// any failure.
fn schemathesis(gateway: &GatewayProc, headers: &[String]) {
    let python = python::python();
    let bin = python.parent().expect("venv bin");
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/observe/schemathesis.toml"
    );
    // Run in a folder of its own: hypothesis keeps its example database in the cwd.
    let workdir = std::env::temp_dir().join(format!("schemathesis-{}", gateway.port));
    std::fs::create_dir_all(&workdir).expect("work dir");
    let mut command = Command::new(bin.join("schemathesis"));
    command
        .current_dir(&workdir)
        .args(["--no-color", "--config-file", config, "run"])
        .arg(format!("{}/openapi.json", gateway.url()))
        .args(["--max-examples", EXAMPLES, "--seed", SEED, "--workers", "1"])
        .args(["--report-dir"])
        .arg(workdir.join("report"));
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.output().expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && l.starts_with('='))
        .unwrap_or_default()
        .to_owned();
    println!("schemathesis: {summary}");
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Limits that would make a fuzzer see mostly 429s are lifted (they are tested elsewhere).
const FUZZABLE: [(&str, &str); 3] = [
    ("RATE_LIMIT_PER_MINUTE", "0"),
    ("CREATE_SESSION_PER_MINUTE", "0"),
    ("MAX_SESSIONS_PER_USER", "0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_spec_is_valid_complete_and_true_without_auth() {
    worker::llm::install_crypto_provider();
    let gateway = GatewayProc::start(&FUZZABLE);
    let (text, spec) = served_spec(&gateway).await;
    let version = python::run(VALIDATE, &[], &text);
    assert!(version.trim().starts_with("3.1"), "{version}");

    let paths = spec["paths"].as_object().expect("paths");
    for path in [
        "/",
        "/health",
        "/livez",
        "/status",
        "/metrics",
        "/openapi.json",
        "/asyncapi.json",
        "/docs",
        "/api/create-session",
        "/api/session/{id}/info",
        "/api/session/{id}/messages",
        "/api/session/{id}",
        "/api/session/{id}/cancel",
        "/ws/{id}",
        "/demo",
    ] {
        assert!(paths.contains_key(path), "{path} is not in the document");
    }
    // A created session links to the operations on it (schemathesis's stateful phase
    // follows these), by ids the document has.
    let links = &spec["paths"]["/api/create-session"]["post"]["responses"]["201"]["links"];
    for operation in [
        "session_info",
        "session_messages",
        "cancel_generation",
        "delete_session",
    ] {
        assert_eq!(links[operation]["operationId"], operation, "{links}");
        assert_eq!(
            links[operation]["parameters"]["id"],
            "$response.body#/session_id"
        );
    }
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    for schema in ["ClientFrameWire", "StreamEvent", "SimpleEvent", "ErrorBody"] {
        assert!(schemas.contains_key(schema), "no schema {schema}");
    }
    // The interactive page is served from the binary, with no outside address in it.
    let page = reqwest::get(format!("{}/docs/", gateway.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(
        !page.contains("https://"),
        "the page loads something from outside"
    );
    let init = reqwest::get(format!("{}/docs/swagger-initializer.js", gateway.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");

    schemathesis(&gateway, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_spec_is_true_with_auth_on() {
    worker::llm::install_crypto_provider();
    let secret = "observe-test-secret-of-at-least-32-bytes!";
    let mut env = FUZZABLE.to_vec();
    env.push(("JWT_SECRET", secret));
    let gateway = GatewayProc::start(&env);
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "fuzzer", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    // Public routes answer without a token; the rest refuse without one.
    let status = reqwest::get(format!("{}/openapi.json", gateway.url()))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let status = reqwest::get(format!("{}/status", gateway.url()))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    schemathesis(&gateway, &[format!("Authorization: Bearer {token}")]);
}

/// What the gateway answers where axum's extractors would answer 400, 413, 415 or 422
/// in plain text: the error body, with a status the operation documents (404 and 405,
/// which belong to no operation, are in the document's description).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_framework_s_rejections_are_the_documented_error_body() {
    worker::llm::install_crypto_provider();
    let gateway = GatewayProc::start(&[("MAX_BODY_BYTES", "1024")]);
    let (_, spec) = served_spec(&gateway).await;
    let codes: Vec<Value> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", gateway.url());
    let big = format!("{{\"metadata\":{{\"a\":\"{}\"}}}}", "x".repeat(2000));
    let cases = [
        // (what, request, operation path and method, expected status, expected code)
        (
            "a JSON body sent as text/plain is read as JSON (no 415)",
            client
                .post(url("/api/create-session"))
                .header("content-type", "text/plain")
                .body("{}"),
            ("/api/create-session", "post"),
            201,
            None,
        ),
        (
            "a body with no content type at all",
            client.post(url("/api/create-session")).body("{}"),
            ("/api/create-session", "post"),
            201,
            None,
        ),
        (
            "a field of the wrong type is a 400 (no 422)",
            client
                .post(url("/api/create-session"))
                .header("content-type", "application/json")
                .body(r#"{"protocol": 5}"#),
            ("/api/create-session", "post"),
            400,
            Some("invalid_request"),
        ),
        (
            "a body that is not JSON",
            client
                .post(url("/api/create-session"))
                .header("content-type", "application/json")
                .body("{not json"),
            ("/api/create-session", "post"),
            400,
            Some("invalid_request"),
        ),
        (
            "a body over MAX_BODY_BYTES",
            client
                .post(url("/api/create-session"))
                .header("content-type", "application/json")
                .body(big),
            ("/api/create-session", "post"),
            413,
            Some("payload_too_large"),
        ),
        (
            "a path whose escapes are not UTF-8",
            client.get(url("/api/session/%FF/info")),
            ("/api/session/{id}/info", "get"),
            400,
            Some("invalid_request"),
        ),
        (
            "a query value of the wrong type",
            client.get(url("/api/session/abc/messages?limit=many")),
            ("/api/session/{id}/messages", "get"),
            400,
            Some("invalid_request"),
        ),
        (
            "a plain request to the socket route",
            client.get(url("/ws/abc")),
            ("/ws/{id}", "get"),
            400,
            Some("invalid_request"),
        ),
    ];
    for (what, request, (path, method), status, code) in cases {
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{what}");
        let documented = &spec["paths"][path][method]["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{what}: {path} documents no {status}"
        );
        let Some(code) = code else { continue };
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "application/json", "{what}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(codes.contains(&body["error"]), "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert_eq!(body.as_object().unwrap().len(), 2, "{what}: {body}");
        assert_eq!(
            documented["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{what}"
        );
    }
    for (what, request, status, code) in [
        (
            "an unknown route",
            client.get(url("/no/such/route")),
            404,
            "not_found",
        ),
        (
            "a wrong method",
            client.put(url("/health")),
            405,
            "invalid_request",
        ),
    ] {
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{what}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"], code, "{what}: {body}");
        let description = spec["info"]["description"].as_str().unwrap();
        assert!(description.contains(&status.to_string()), "{what}");
    }
}
