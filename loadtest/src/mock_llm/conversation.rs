//! Reading an OpenAI `messages` array: roles, text content, the last user message and
//! the tool results that answer the latest tool calls.
//!
//! Messages stay `serde_json::Value`s rather than typed structs: the mock must accept
//! whatever a client sends (string or part-array content, extra fields, `null`
//! content on tool-calling assistant turns) and only needs a few fields.

use serde_json::Value;

/// The `role` of a message, `""` when missing.
pub(crate) fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// The text of a message's `content`: a string as is, an array of
/// `{"type":"text","text":...}` parts joined with spaces, anything else empty.
pub(crate) fn content_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// How many messages have `role`.
pub(crate) fn count_role(messages: &[Value], wanted: &str) -> usize {
    messages.iter().filter(|m| role(m) == wanted).count()
}

/// Index of the last `user` message.
pub(crate) fn last_user_index(messages: &[Value]) -> Option<usize> {
    messages.iter().rposition(|m| role(m) == "user")
}

/// Raw text of the last user message (directives included), `""` when there is none.
pub(crate) fn last_user_text(messages: &[Value]) -> String {
    last_user_index(messages)
        .map(|i| content_text(&messages[i]))
        .unwrap_or_default()
}

/// Assistant turns with tool calls after the last user message: how many tool
/// rounds this answer has had so far.
pub(crate) fn tool_turns_since_user(messages: &[Value]) -> usize {
    let after_user = last_user_index(messages).map_or(0, |i| i + 1);
    messages[after_user.min(messages.len())..]
        .iter()
        .filter(|m| {
            role(m) == "assistant"
                && m.get("tool_calls")
                    .and_then(Value::as_array)
                    .is_some_and(|calls| !calls.is_empty())
        })
        .count()
}

/// One tool result the model is asked to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolResult {
    /// Function name of the matching call, `unknown` when no call has its id.
    pub name: String,
    /// The `tool` message's text.
    pub content: String,
}

/// The latest tool results after the last user message: the last contiguous run of
/// `tool` messages there (one per call of the assistant turn before it). Empty when
/// the last user message was not followed by a tool result.
pub(crate) fn latest_tool_results(messages: &[Value]) -> Vec<ToolResult> {
    let after_user = last_user_index(messages).map_or(0, |i| i + 1);
    let tail = &messages[after_user.min(messages.len())..];
    let Some(end) = tail.iter().rposition(|m| role(m) == "tool") else {
        return Vec::new();
    };
    let start = tail[..end]
        .iter()
        .rposition(|m| role(m) != "tool")
        .map_or(0, |i| i + 1);
    tail[start..=end]
        .iter()
        .map(|m| ToolResult {
            name: tool_name(messages, m).unwrap_or_else(|| "unknown".to_owned()),
            content: content_text(m).trim().to_owned(),
        })
        .collect()
}

/// The function name of the call a `tool` message answers, found by `tool_call_id`
/// in the assistant messages (latest first).
fn tool_name(messages: &[Value], tool_message: &Value) -> Option<String> {
    let id = tool_message.get("tool_call_id")?.as_str()?;
    messages
        .iter()
        .rev()
        .filter(|m| role(m) == "assistant")
        .filter_map(|m| m.get("tool_calls")?.as_array())
        .flatten()
        .find(|call| call.get("id").and_then(Value::as_str) == Some(id))?
        .pointer("/function/name")?
        .as_str()
        .map(str::to_owned)
}

/// A rough prompt size for `usage`: whitespace-separated words over all messages.
pub(crate) fn prompt_words(messages: &[Value]) -> usize {
    messages
        .iter()
        .map(|m| content_text(m).split_whitespace().count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_may_be_a_string_or_text_parts() {
        assert_eq!(content_text(&json!({"role":"user","content":"hi"})), "hi");
        let parts = json!({"role":"user","content":[
            {"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}
        ]});
        assert_eq!(content_text(&parts), "a b");
        assert_eq!(
            content_text(&json!({"role":"assistant","content":null})),
            ""
        );
    }

    #[test]
    fn latest_tool_results_takes_the_last_run_after_the_last_user_message() {
        let messages = vec![
            json!({"role":"user","content":"q"}),
            json!({"role":"assistant","content":null,"tool_calls":[
                {"id":"c1","type":"function","function":{"name":"a","arguments":"{}"}}]}),
            json!({"role":"tool","tool_call_id":"c1","content":"one"}),
            json!({"role":"assistant","content":null,"tool_calls":[
                {"id":"c2","type":"function","function":{"name":"b","arguments":"{}"}},
                {"id":"c3","type":"function","function":{"name":"c","arguments":"{}"}}]}),
            json!({"role":"tool","tool_call_id":"c2","content":"two"}),
            json!({"role":"tool","tool_call_id":"zz","content":"three"}),
        ];
        let names: Vec<_> = latest_tool_results(&messages)
            .into_iter()
            .map(|r| (r.name, r.content))
            .collect();
        assert_eq!(
            names,
            vec![
                ("b".into(), "two".into()),
                ("unknown".into(), "three".into())
            ]
        );
    }

    #[test]
    fn tool_results_before_the_last_user_message_do_not_count() {
        let messages = vec![
            json!({"role":"tool","tool_call_id":"c1","content":"old"}),
            json!({"role":"user","content":"q"}),
        ];
        assert!(latest_tool_results(&messages).is_empty());
    }

    #[test]
    fn prompt_words_counts_all_messages() {
        let messages = vec![
            json!({"role":"system","content":"be brief"}),
            json!({"role":"user","content":"one two  three"}),
        ];
        assert_eq!(prompt_words(&messages), 5);
    }
}
