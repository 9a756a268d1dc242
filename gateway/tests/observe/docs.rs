//! `docs/protocol.md` kept honest, and the served AsyncAPI document with it:
//!
//! - every frame example (`json client`, `json stream`, `json simple`) is what the
//!   serializers of `shared::wire` read and write back, field for field, and is valid
//!   by its message's schema in `/asyncapi.json`; refused frames (`json
//!   client-refused <code>`) are refused by the parser with that code;
//! - every REST example (`json rest <operation> <status>`, `json rest-body
//!   <operation>`) is valid by the served `/openapi.json`, with no field the schema
//!   does not name;
//! - the agent file example (`yaml agent`) is read by the agent file's parser;
//! - every frame type, status, session operation, close code (`ws::close`) and error
//!   code (`ErrorCode`) has its example or its row;
//! - `/asyncapi.json` passes the AsyncAPI project's parser (`tests/asyncapi`).

use crate::procs::GatewayProc;
use crate::python;
use serde_json::{Value, json};
use shared::wire::{ClientFrameWire, SimpleEvent, StreamEvent, parse_client_frame};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const PROTOCOL_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");

/// One fenced example: its info string's words after `json`, its JSON and its line.
struct Example {
    kind: String,
    args: Vec<String>,
    text: String,
    line: usize,
}

impl Example {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("docs/protocol.md:{}: not JSON: {e}", self.line))
    }

    fn at(&self) -> String {
        format!("docs/protocol.md:{}", self.line)
    }
}

fn examples(markdown: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut open: Option<(Vec<String>, usize, String)> = None;
    for (number, line) in markdown.lines().enumerate() {
        match open.take() {
            None => {
                if let Some(info) = line
                    .strip_prefix("```json")
                    .or(line.strip_prefix("```yaml"))
                {
                    let words = info.split_whitespace().map(str::to_owned).collect();
                    open = Some((words, number + 1, String::new()));
                }
            }
            Some((words, start, text)) if line.starts_with("```") => {
                let mut words = words.into_iter();
                found.push(Example {
                    kind: words.next().unwrap_or_default(),
                    args: words.collect(),
                    text,
                    line: start,
                });
            }
            Some((words, start, mut text)) => {
                text.push_str(line);
                text.push('\n');
                open = Some((words, start, text));
            }
        }
    }
    assert!(open.is_none(), "an unclosed code block in docs/protocol.md");
    found
}

/// The message a frame is in `/asyncapi.json`: `<prefix>_<type>` (`message` for the
/// user message, which has no `type`).
fn message_name(prefix: &str, frame: &Value) -> String {
    format!("{prefix}_{}", frame["type"].as_str().unwrap_or("message"))
}

/// Validates the REST examples against `/openapi.json` (closed: a field the schema
/// does not name fails) and the frames against their AsyncAPI message payloads.
/// Prints one line per failure; stdout empty means all passed.
const VALIDATE: &str = r#"
import copy, json, sys
from jsonschema import Draft202012Validator, Draft7Validator
job = json.load(sys.stdin)
spec, asyncapi = job["openapi"], job["asyncapi"]

def closed(node):
    # Objects that list their properties take no others (utoipa leaves them open).
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            closed(value)
    elif isinstance(node, list):
        for value in node:
            closed(value)

components = copy.deepcopy(spec["components"])
closed(components)
operations = {}
for path, methods in spec["paths"].items():
    for method, operation in methods.items():
        operations[operation["operationId"]] = operation

failures = []
for at, operation_id, status, example in job["rest"]:
    operation = operations.get(operation_id)
    if operation is None:
        failures.append(f"{at}: no operation {operation_id}")
        continue
    if status == "body":
        content = operation["requestBody"]["content"]
    else:
        response = operation["responses"].get(status)
        if response is None:
            failures.append(f"{at}: {operation_id} documents no {status}")
            continue
        content = response["content"]
    schema = copy.deepcopy(content["application/json"]["schema"])
    closed(schema)
    validator = Draft202012Validator(dict(schema, components=components))
    for error in validator.iter_errors(example):
        failures.append(f"{at}: {operation_id} {status}: {error.message} at {list(error.absolute_path)}")

messages = asyncapi["components"]["messages"]
for at, name, frame in job["frames"]:
    message = messages.get(name)
    if message is None:
        failures.append(f"{at}: no message {name} in /asyncapi.json")
        continue
    validator = Draft7Validator(dict(message["payload"], components=asyncapi["components"]))
    for error in validator.iter_errors(frame):
        failures.append(f"{at}: {name}: {error.message} at {list(error.absolute_path)}")
print("\n".join(failures))
"#;

async fn get_json(url: String) -> Value {
    let response = reqwest::get(&url).await.expect("GET");
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_example_is_what_the_code_sends_and_its_schemas_say() {
    worker::llm::install_crypto_provider();
    let markdown = std::fs::read_to_string(PROTOCOL_MD).expect("docs/protocol.md");
    let gateway = GatewayProc::start(&[]);
    let openapi = get_json(format!("{}/openapi.json", gateway.url())).await;
    let asyncapi = get_json(format!("{}/asyncapi.json", gateway.url())).await;

    let mut rest = Vec::new();
    let mut frames = Vec::new();
    let mut seen = BTreeSet::new();
    for example in examples(&markdown) {
        let at = example.at();
        if example.kind == "agent" {
            let base = std::env::temp_dir();
            shared::agent::Agent::parse(&example.text, false, &base)
                .unwrap_or_else(|e| panic!("{at}: the agent file's parser refuses it: {e:?}"));
            seen.insert("agent".to_owned());
            continue;
        }
        let value = example.json();
        match example.kind.as_str() {
            "client" => {
                let parsed = parse_client_frame(&example.text)
                    .unwrap_or_else(|e| panic!("{at}: the parser refuses it: {e}"));
                let wire = parsed.to_wire();
                // Read as the documented type, it is what the parser made of it.
                let read: ClientFrameWire = serde_json::from_value(value.clone())
                    .unwrap_or_else(|e| panic!("{at}: not a ClientFrameWire: {e}"));
                assert_eq!(read, wire, "{at}");
                // Every field the frame's type has is in the example as written.
                let written = serde_json::to_value(&wire).unwrap();
                for (key, field) in written.as_object().unwrap() {
                    assert_eq!(&value[key], field, "{at}: field {key}");
                }
                seen.insert(format!(
                    "client {}",
                    value["type"].as_str().unwrap_or("message")
                ));
                frames.push(json!([at, message_name("client", &value), value]));
            }
            "client-refused" => {
                let code = example.args.first().expect("client-refused <code>");
                let refused = parse_client_frame(&example.text)
                    .expect_err(&format!("{at}: the parser takes it"));
                assert_eq!(refused.code().as_str(), code, "{at}");
            }
            "stream" => {
                let event: StreamEvent = serde_json::from_value(value.clone())
                    .unwrap_or_else(|e| panic!("{at}: not a StreamEvent: {e}"));
                assert_eq!(
                    serde_json::to_value(&event).unwrap(),
                    value,
                    "{at}: written back"
                );
                let kind = value["type"].as_str().unwrap();
                seen.insert(format!("stream {kind}"));
                if let Some(status) = value["status"].as_str() {
                    seen.insert(format!("status {status}"));
                }
                frames.push(json!([at, message_name("stream", &value), value]));
            }
            "simple" => {
                let event: SimpleEvent = serde_json::from_value(value.clone())
                    .unwrap_or_else(|e| panic!("{at}: not a SimpleEvent: {e}"));
                assert_eq!(
                    serde_json::to_value(&event).unwrap(),
                    value,
                    "{at}: written back"
                );
                seen.insert(format!("simple {}", value["type"].as_str().unwrap()));
                frames.push(json!([at, message_name("simple", &value), value]));
            }
            "rest" => {
                let [operation, status] = &example.args[..] else {
                    panic!("{at}: rest <operation> <status>");
                };
                seen.insert(format!("rest {operation} {status}"));
                rest.push(json!([at, operation, status, value]));
            }
            "rest-body" => {
                let operation = example.args.first().expect("rest-body <operation>");
                rest.push(json!([at, operation, "body", value]));
            }
            // The webhook's request body (its shape is the worker's tools' tests' job).
            "" => {}
            other => panic!("{at}: unknown example kind {other:?}"),
        }
    }

    // Every frame type and status the code has is shown.
    let mut wanted: Vec<String> = Vec::new();
    for (prefix, names) in [
        ("client", asyncapi_types(&asyncapi, "client")),
        ("stream", asyncapi_types(&asyncapi, "stream")),
        ("simple", asyncapi_types(&asyncapi, "simple")),
    ] {
        assert!(!names.is_empty(), "no {prefix} messages in /asyncapi.json");
        wanted.extend(names.into_iter().map(|n| format!("{prefix} {n}")));
    }
    let statuses = openapi["components"]["schemas"]["Status"]["enum"]
        .as_array()
        .expect("Status enum");
    wanted.extend(
        statuses
            .iter()
            .map(|s| format!("status {}", s.as_str().unwrap())),
    );
    // Every session operation's success, and the error body.
    for methods in openapi["paths"].as_object().unwrap().values() {
        for operation in methods.as_object().unwrap().values() {
            if operation["tags"][0] == "sessions" {
                let success = operation["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .find(|s| s.starts_with('2'))
                    .unwrap();
                let id = operation["operationId"].as_str().unwrap();
                wanted.push(format!("rest {id} {success}"));
            }
        }
    }
    wanted.push("rest session_info 404".into());
    wanted.push("agent".into());
    let missing: Vec<&String> = wanted.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(
        missing.is_empty(),
        "docs/protocol.md shows no example of {missing:?}"
    );

    let job = json!({"openapi": openapi, "asyncapi": asyncapi, "rest": rest, "frames": frames});
    let failures = python::run(VALIDATE, &[], &job.to_string());
    assert!(failures.trim().is_empty(), "{failures}");

    // Every error code has its place.
    for code in openapi["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode enum")
    {
        let code = format!("`{}`", code.as_str().unwrap());
        assert!(
            markdown.contains(&code),
            "docs/protocol.md never names {code}"
        );
    }
}

/// The frame `type`s of the AsyncAPI messages named `<prefix>_...`.
fn asyncapi_types(asyncapi: &Value, prefix: &str) -> Vec<String> {
    asyncapi["components"]["messages"]
        .as_object()
        .expect("messages")
        .keys()
        .filter_map(|name| name.strip_prefix(&format!("{prefix}_")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_close_code_table_is_the_code_s_list() {
    let markdown = std::fs::read_to_string(PROTOCOL_MD).expect("docs/protocol.md");
    let section = markdown
        .split("### Close codes")
        .nth(1)
        .expect("a Close codes section")
        .split("\n#")
        .next()
        .unwrap();
    let documented: BTreeSet<u16> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split(' ').next()?.parse().ok())
        .collect();
    // The constants of `gateway::ws::close`, read from their source.
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/ws/mod.rs"))
        .expect("ws/mod.rs");
    let module = source
        .split("pub mod close {")
        .nth(1)
        .expect("mod close")
        .split("\n}")
        .next()
        .unwrap();
    let coded: BTreeSet<u16> = module
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const ")?.split("= ").nth(1))
        .filter_map(|v| v.trim_end_matches(';').parse().ok())
        .collect();
    assert!(coded.len() >= 9, "{coded:?}");
    assert!(coded.contains(&gateway::ws::close::TOO_MANY_CONNECTIONS));
    assert_eq!(documented, coded, "docs/protocol.md's close codes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_asyncapi_document_passes_the_asyncapi_parser() {
    worker::llm::install_crypto_provider();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/asyncapi");
    assert!(
        dir.join("node_modules").exists(),
        "run `npm ci` in {} first (scripts/test.sh does)",
        dir.display()
    );
    let gateway = GatewayProc::start(&[]);
    let document = reqwest::get(format!("{}/asyncapi.json", gateway.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut child = Command::new("node")
        .arg("validate.js")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the AsyncAPI parser refuses /asyncapi.json:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("3.0.0"));
    let operations: BTreeSet<&str> = lines.collect();
    let expected: BTreeSet<&str> = [
        "receive /ws/{id} cancel,ping,auth,message",
        "send /ws/{id} status,function_called,chunk,complete,error,pong",
        "send /ws/{id} typing,assistant,error,pong",
    ]
    .into();
    assert_eq!(operations, expected);
}

/// The README and the documents link only to files of the repository, and the seed
/// clients cite their source documents by name, not by a path of some machine.
#[test]
fn documents_link_only_to_files_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap();
    for document in ["README.md", "BENCHMARKS.md", "docs/protocol.md"] {
        let file = root.join(document);
        let Ok(text) = std::fs::read_to_string(&file) else {
            assert_ne!(document, "README.md", "no README.md");
            continue;
        };
        for target in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
        {
            if target.starts_with('#') || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap();
            let resolved = file.parent().unwrap().join(path).canonicalize();
            assert!(
                resolved.as_ref().is_ok_and(|p| p.starts_with(&root)),
                "{document} links {target}, which is no file of the repository"
            );
        }
    }
    for seed in std::fs::read_dir(root.join("tests/seeds")).unwrap() {
        let path = seed.unwrap().path();
        if path.extension().is_some_and(|e| e == "js") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("/work/") && !text.contains("../shared"),
                "{} names a path outside the repository",
                path.display()
            );
        }
    }
}
