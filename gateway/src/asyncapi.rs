//! The WebSocket protocol as an AsyncAPI 3.0 document, derived from the OpenAPI
//! document (so from the same Rust types): the frame schemas are its components, one
//! message per frame `type` is read from the `oneOf` of `ClientFrameWire`,
//! `StreamEvent` and `SimpleEvent`, and the socket's query parameters are those of
//! the `/ws/{id}` operation. Served at `/asyncapi.json`.

use serde_json::{Map, Value, json};

/// Where the document is served.
pub const PATH: &str = "/asyncapi.json";

/// The channel every frame travels on.
const CHANNEL: &str = "session";

/// The frame schemas and the message-name prefix their variants get.
const FRAMES: [(&str, &str, &str); 3] = [
    (
        "ClientFrameWire",
        "client",
        "Text frames (JSON) from the client.",
    ),
    (
        "StreamEvent",
        "stream",
        "Events of the `stream` protocol (the default of sessions made over REST).",
    ),
    (
        "SimpleEvent",
        "simple",
        "Events of the `simple` protocol (the default of sessions a socket created).",
    ),
];

/// The AsyncAPI document of the socket, from the gateway's OpenAPI document.
pub fn document(openapi: &Value) -> Value {
    let schemas = openapi["components"]["schemas"].clone();
    let mut messages = Map::new();
    let mut by_frame: Vec<(&str, Vec<String>)> = Vec::new();
    for (schema, prefix, _) in FRAMES {
        let mut names = Vec::new();
        for (name, message) in variants(&schemas, schema) {
            let id = format!("{prefix}_{name}");
            messages.insert(id.clone(), message);
            names.push(id);
        }
        by_frame.push((prefix, names));
    }
    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|id| {
            (
                id.clone(),
                json!({"$ref": format!("#/components/messages/{id}")}),
            )
        })
        .collect();
    let mut operations = Map::new();
    for ((_, prefix, description), (_, names)) in FRAMES.iter().zip(&by_frame) {
        let (id, action) = if *prefix == "client" {
            ("receiveClientFrames".to_owned(), "receive")
        } else {
            (format!("send{}Events", capitalized(prefix)), "send")
        };
        let refs: Vec<Value> = names
            .iter()
            .map(|n| json!({"$ref": format!("#/channels/{CHANNEL}/messages/{n}")}))
            .collect();
        operations.insert(
            id,
            json!({
                "action": action,
                "channel": {"$ref": format!("#/channels/{CHANNEL}")},
                "description": description,
                "messages": refs,
            }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "chat-gateway WebSocket",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The streaming socket of the chat gateway, from the gateway's side: it \
                receives the client's frames and sends events in the socket's protocol. \
                Close codes, resume and guarantees are written out in docs/protocol.md of the \
                repository; the REST API is /openapi.json.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "channels": {
            CHANNEL: {
                "address": "/ws/{id}",
                "title": "A session's socket",
                "parameters": {"id": {"description": parameter(openapi, "path", "id")["description"]}},
                "messages": channel_messages,
                "bindings": {"ws": {"method": "GET", "query": query(openapi), "bindingVersion": "0.1.0"}},
            }
        },
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    })
}

/// One AsyncAPI message per variant of the `oneOf` schema `schema`, named by its
/// `type` (or `message` for the user message, which has none).
fn variants(schemas: &Value, schema: &str) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for variant in schemas[schema]["oneOf"].as_array().into_iter().flatten() {
        // A variant that is a reference to another `oneOf` (ControlFrame) is opened up.
        if let Some(target) = reference(variant)
            && schemas[target]["oneOf"].is_array()
        {
            found.extend(variants(schemas, target));
            continue;
        }
        let name = type_tag(variant).unwrap_or_else(|| "message".to_owned());
        let description = description(schemas, variant);
        found.push((
            name.clone(),
            json!({
                "name": name,
                "summary": description,
                "contentType": "application/json",
                "payload": variant,
            }),
        ));
    }
    found
}

/// The `type` constant a variant carries, directly or in one part of its `allOf`.
fn type_tag(variant: &Value) -> Option<String> {
    if let Some(tag) = variant["properties"]["type"]["enum"][0].as_str() {
        return Some(tag.to_owned());
    }
    variant["allOf"].as_array()?.iter().find_map(type_tag)
}

/// The variant's description, or that of the schema it refers to.
fn description(schemas: &Value, variant: &Value) -> String {
    let own = variant["description"].as_str().or_else(|| {
        variant["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(reference)
            .find_map(|target| schemas[target]["description"].as_str())
    });
    let own = own.or_else(|| reference(variant).and_then(|t| schemas[t]["description"].as_str()));
    own.unwrap_or_default().replace('\n', " ")
}

fn reference(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()?
        .strip_prefix("#/components/schemas/")
}

/// The `/ws/{id}` parameter `name` in `location`.
fn parameter<'a>(openapi: &'a Value, location: &str, name: &str) -> &'a Value {
    ws_parameters(openapi)
        .find(|p| p["in"] == location && p["name"] == name)
        .unwrap_or(&Value::Null)
}

fn ws_parameters(openapi: &Value) -> impl Iterator<Item = &Value> {
    openapi["paths"]["/ws/{id}"]["get"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
}

/// The socket's query parameters as the object schema the `ws` binding wants.
fn query(openapi: &Value) -> Value {
    let properties: Map<String, Value> = ws_parameters(openapi)
        .filter(|p| p["in"] == "query")
        .filter_map(|p| {
            let mut schema = p["schema"].clone();
            if let (Some(object), Some(description)) =
                (schema.as_object_mut(), p["description"].as_str())
            {
                // A `$ref` takes no siblings in draft 7: wrap it.
                if object.contains_key("$ref") {
                    schema = json!({"allOf": [schema], "description": description});
                } else {
                    object.insert("description".into(), description.into());
                }
            }
            Some((p["name"].as_str()?.to_owned(), schema))
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
