//! Builds the model's prompt: the system prompt, then the session's exchanges up to
//! the message being answered.
//!
//! History is stored in the order things happened, so with queued messages it may
//! read `u1 u2 a1`. Answers are produced strictly in order, so every assistant
//! message present when `uN` is answered belongs to an earlier question; the prompt
//! puts each answer right after its question and leaves out questions asked after
//! `uN`.
//!
//! An answer that used tools is preceded by its tool turns, in the order providers
//! require: per turn, an assistant message carrying the turn's `tool_calls`, then one
//! `tool` message per call (also for calls that failed: a call without its result
//! makes every later request of the session fail at the provider).

use crate::llm::{ChatMessage, ToolCall};
use serde_json::Value;
use shared::ids::MessageId;
use shared::model::{FunctionCall, Role, StoredMessage, Work};

/// One prompt message, independent of the LLM client's types.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptMessage {
    System(String),
    User(String),
    Assistant(String),
    /// One model turn that called tools, with every call's result.
    ToolTurn(Vec<FunctionCall>),
}

/// The prompt as Chat Completions messages (a tool turn is several).
pub fn to_chat(prompt: &[PromptMessage]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(prompt.len());
    for message in prompt {
        match message {
            PromptMessage::System(text) => messages.push(ChatMessage::System {
                content: text.clone(),
            }),
            PromptMessage::User(text) => messages.push(ChatMessage::User {
                content: text.clone(),
            }),
            PromptMessage::Assistant(text) => messages.push(ChatMessage::assistant(text.clone())),
            PromptMessage::ToolTurn(calls) => messages.extend(tool_turn(None, calls)),
        }
    }
    messages
}

/// The messages of one tool turn: the assistant's calls (with the text it said
/// before them, if any), then each call's result, in the provider's order.
pub fn tool_turn(text: Option<String>, calls: &[FunctionCall]) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::Assistant {
        content: text.filter(|t| !t.is_empty()),
        tool_calls: calls
            .iter()
            .map(|c| ToolCall::new(c.call_id.clone(), c.name.clone(), c.arguments.clone()))
            .collect(),
    }];
    messages.extend(calls.iter().map(|c| ChatMessage::Tool {
        tool_call_id: c.call_id.clone(),
        content: result_text(c.result.as_ref()),
    }));
    messages
}

/// A tool result as the `tool` message's text: strings as they are, JSON as JSON.
fn result_text(result: Option<&Value>) -> String {
    match result {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => r#"{"error":"the tool call did not finish"}"#.to_owned(),
    }
}

/// An answer's calls grouped by turn, in run order.
pub fn turns(calls: &[FunctionCall]) -> Vec<Vec<FunctionCall>> {
    let mut turns: Vec<Vec<FunctionCall>> = Vec::new();
    for call in calls {
        match turns.last_mut() {
            Some(turn) if turn[0].round == call.round => turn.push(call.clone()),
            _ => turns.push(vec![call.clone()]),
        }
    }
    turns
}

/// An answer as prompt messages: its tool turns, then its text.
fn answer_messages(answer: &StoredMessage) -> impl Iterator<Item = PromptMessage> {
    turns(&answer.function_calls)
        .into_iter()
        .map(PromptMessage::ToolTurn)
        .chain(std::iter::once(PromptMessage::Assistant(
            answer.content.clone(),
        )))
}

/// The prompt for `work`.
pub fn build(system_prompt: &str, work: &Work) -> Vec<PromptMessage> {
    let history = &work.history;
    let current = work.message.id;
    // The window is the history's tail: when it does not reach back to the current
    // message, every question in it was asked later.
    let position = history.iter().position(|m| m.id == current).unwrap_or(0);
    let users_before_or_at: Vec<&StoredMessage> = history[..position]
        .iter()
        .filter(|m| m.role == Role::User)
        .collect();
    let user_ids: Vec<MessageId> = users_before_or_at.iter().map(|m| m.id).collect();
    let answer_to = |id: MessageId| {
        history
            .iter()
            .filter(move |m| m.role == Role::Assistant && m.reply_to == Some(id))
    };

    let mut prompt = vec![PromptMessage::System(system_prompt.to_owned())];
    // Answers whose question fell out of the window still give context.
    for orphan in history
        .iter()
        .filter(|m| m.role == Role::Assistant && !m.reply_to.is_some_and(|q| user_ids.contains(&q)))
    {
        prompt.extend(answer_messages(orphan));
    }
    for question in users_before_or_at {
        prompt.push(PromptMessage::User(question.content.clone()));
        for answer in answer_to(question.id) {
            prompt.extend(answer_messages(answer));
        }
    }
    prompt.push(PromptMessage::User(work.message.content.clone()));
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(message: &StoredMessage, history: Vec<StoredMessage>) -> Work {
        Work {
            message: message.clone(),
            trace: Default::default(),
            attempt: 1,
            tries: 1,
            cancelled: false,
            history,
            tool_calls: Vec::new(),
            user_id: None,
            metadata: serde_json::json!({}),
            log: Default::default(),
            charge: None,
            announced: false,
        }
    }

    #[test]
    fn queued_questions_get_only_earlier_exchanges() {
        let u1 = StoredMessage::user("one");
        let u2 = StoredMessage::user("two");
        let u3 = StoredMessage::user("three");
        let a1 = StoredMessage::assistant("ans one", u1.id, false);
        let history = vec![u1.clone(), u2.clone(), u3.clone(), a1.clone()];
        let prompt = build("sys", &work(&u2, history));
        assert_eq!(
            prompt,
            vec![
                PromptMessage::System("sys".into()),
                PromptMessage::User("one".into()),
                PromptMessage::Assistant("ans one".into()),
                PromptMessage::User("two".into()),
            ]
        );
    }

    fn call(round: u32, index: u32, result: Value) -> FunctionCall {
        FunctionCall {
            name: "kb".into(),
            call_id: format!("c{round}{index}"),
            arguments: "{}".into(),
            result: Some(result),
            round,
            index,
        }
    }

    #[test]
    fn earlier_tool_turns_come_back_in_provider_order() {
        let u1 = StoredMessage::user("book it");
        let mut a1 = StoredMessage::assistant("booked", u1.id, false);
        a1.function_calls = vec![
            call(0, 0, "free".into()),
            call(0, 1, serde_json::json!({"error": "down"})),
            call(1, 0, serde_json::json!({"id": 7})),
        ];
        let u2 = StoredMessage::user("thanks");
        let prompt = build("sys", &work(&u2, vec![u1, a1, u2.clone()]));
        let chat = serde_json::to_value(to_chat(&prompt)).unwrap();
        let roles: Vec<&str> = chat
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            [
                "system",
                "user",
                "assistant",
                "tool",
                "tool",
                "assistant",
                "tool",
                "assistant",
                "user"
            ]
        );
        assert_eq!(chat[2]["content"], Value::Null);
        assert_eq!(chat[2]["tool_calls"][1]["id"], "c01");
        assert_eq!(chat[3]["tool_call_id"], "c00");
        assert_eq!(chat[3]["content"], "free");
        assert_eq!(chat[4]["content"], r#"{"error":"down"}"#);
        assert_eq!(chat[6]["content"], r#"{"id":7}"#);
        assert_eq!(chat[7]["content"], "booked");
    }

    #[test]
    fn first_message_has_just_the_question() {
        let u1 = StoredMessage::user("hi");
        let prompt = build("sys", &work(&u1, vec![u1.clone()]));
        assert_eq!(prompt.len(), 2);
        assert_eq!(prompt[1], PromptMessage::User("hi".into()));
    }

    #[test]
    fn message_outside_the_window_is_still_asked() {
        let u1 = StoredMessage::user("old");
        let later = StoredMessage::user("later");
        let prompt = build("sys", &work(&u1, vec![later]));
        assert_eq!(prompt.last(), Some(&PromptMessage::User("old".into())));
        assert!(!prompt.contains(&PromptMessage::User("later".into())));
    }

    #[test]
    fn orphan_answers_are_kept_first() {
        let lost_question = StoredMessage::user("trimmed");
        let a0 = StoredMessage::assistant("old answer", lost_question.id, false);
        let u1 = StoredMessage::user("now");
        let prompt = build("sys", &work(&u1, vec![a0, u1.clone()]));
        assert_eq!(prompt[1], PromptMessage::Assistant("old answer".into()));
        assert_eq!(prompt[2], PromptMessage::User("now".into()));
    }
}
