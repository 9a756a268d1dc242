//! Property tests of the client-frame parser (`shared::wire::parse_client_frame`), the
//! first code to touch every byte a stranger sends over a socket: it must never panic,
//! and it must classify frames exactly as `docs/protocol.md` says, whatever the input.
//!
//! Runs in the normal `cargo test` (256 cases per property by default; set
//! `PROPTEST_CASES` for a longer run).

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shared::wire::{ClientFrame, FrameError, MAX_CLIENT_MESSAGE_ID_LEN, parse_client_frame};

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object keys, biased towards the ones the parser looks at.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("type".to_owned()),
        Just("message".to_owned()),
        Just("token".to_owned()),
        Just("client_message_id".to_owned()),
        ".{0,12}",
    ]
}

/// Whether a `client_message_id` value is one the contract accepts (absent, null, or a
/// non-empty string of at most the maximum length).
fn usable_client_id(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(id)) => !id.is_empty() && id.len() <= MAX_CLIENT_MESSAGE_ID_LEN,
        Some(_) => false,
    }
}

/// Any object, as a map.
fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), json_value(), 0..8).prop_map(|m| m.into_iter().collect())
}

proptest! {
    /// Arbitrary text never panics; it is either a frame or one of the two errors.
    #[test]
    fn any_text_is_classified_without_panicking(text in ".{0,256}") {
        let _ = parse_client_frame(&text);
    }

    /// Arbitrary bytes, decoded as a socket would hand them over (lossily), likewise.
    #[test]
    fn any_bytes_are_classified_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_client_frame(&text);
    }

    /// Text that is not JSON is `invalid_json`, never a frame.
    #[test]
    fn non_json_is_invalid_json(text in ".{0,128}") {
        prop_assume!(serde_json::from_str::<Value>(&text).is_err());
        prop_assert_eq!(parse_client_frame(&text), Err(FrameError::InvalidJson));
    }

    /// JSON that is not an object is `invalid_message`.
    #[test]
    fn non_objects_are_invalid_messages(value in json_value()) {
        prop_assume!(!value.is_object());
        prop_assert_eq!(parse_client_frame(&value.to_string()), Err(FrameError::InvalidMessage));
    }

    /// `cancel` and `ping` are what they say, whatever else the object holds.
    #[test]
    fn control_types_win(mut map in object(), cancel in any::<bool>()) {
        let kind = if cancel { "cancel" } else { "ping" };
        map.insert("type".into(), json!(kind));
        let expected = if cancel { ClientFrame::Cancel } else { ClientFrame::Ping };
        prop_assert_eq!(parse_client_frame(&Value::Object(map).to_string()), Ok(expected));
    }

    /// `auth` needs a string `token`, passed on exactly; anything else is refused.
    #[test]
    fn auth_needs_a_string_token(mut map in object(), token in prop::option::of(json_value())) {
        map.insert("type".into(), json!("auth"));
        match &token {
            Some(token) => { map.insert("token".into(), token.clone()); }
            None => { map.remove("token"); }
        }
        let parsed = parse_client_frame(&Value::Object(map).to_string());
        match token {
            Some(Value::String(token)) => prop_assert_eq!(parsed, Ok(ClientFrame::Auth { token })),
            _ => prop_assert_eq!(parsed, Err(FrameError::InvalidMessage)),
        }
    }

    /// With no control `type`, an object is a message exactly when `message` is a
    /// string and any `client_message_id` is usable; the frame carries both as sent.
    #[test]
    fn other_objects_are_messages_or_invalid(mut map in object()) {
        if matches!(map.get("type").and_then(Value::as_str), Some("cancel" | "ping" | "auth")) {
            map.remove("type");
        }
        let parsed = parse_client_frame(&Value::Object(map.clone()).to_string());
        let message = map.get("message").and_then(Value::as_str);
        let id_ok = usable_client_id(map.get("client_message_id"));
        match (message, id_ok) {
            (Some(text), true) => {
                let client_message_id = map
                    .get("client_message_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                prop_assert_eq!(
                    parsed,
                    Ok(ClientFrame::Message { text: text.to_owned(), client_message_id })
                );
            }
            _ => prop_assert_eq!(parsed, Err(FrameError::InvalidMessage)),
        }
    }

    /// `client_message_id`: empty or over the limit refuses the message; otherwise it
    /// is carried as sent.
    #[test]
    fn client_ids_are_checked(
        text in ".{1,40}",
        id in prop_oneof![Just(String::new()), "[a-z0-9-]{1,128}", ".{129,200}"],
    ) {
        let frame = json!({"message": text, "client_message_id": id});
        let parsed = parse_client_frame(&frame.to_string());
        if usable_client_id(Some(&json!(id))) {
            prop_assert_eq!(parsed, Ok(ClientFrame::Message { text, client_message_id: Some(id) }));
        } else {
            prop_assert_eq!(parsed, Err(FrameError::InvalidMessage));
        }
    }

    /// A user message keeps its text exactly, whatever it contains, and the seeds'
    /// extra fields do not change it.
    #[test]
    fn messages_round_trip(text in ".{0,200}", user in ".{0,20}", session in ".{0,20}") {
        let frame = json!({"message": text, "user_id": user, "session_id": session});
        prop_assert_eq!(
            parse_client_frame(&frame.to_string()),
            Ok(ClientFrame::Message { text, client_message_id: None })
        );
    }

    /// Deep nesting is refused by the JSON reader's recursion limit, not a stack overflow.
    #[test]
    fn deep_nesting_is_refused(depth in 100usize..2_000) {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let parsed = parse_client_frame(&text);
        prop_assert!(parsed.is_err());
        let text = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        prop_assert!(parse_client_frame(&text).is_err());
    }
}
