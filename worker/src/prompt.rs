//! Builds the model's prompt: the system prompt, then the session's exchanges up to
//! the message being answered.
//!
//! History is stored in the order things happened, so with queued messages it may
//! read `u1 u2 a1`. Answers are produced strictly in order, so every assistant
//! message present when `uN` is answered belongs to an earlier question; the prompt
//! puts each answer right after its question and leaves out questions asked after
//! `uN`.

use shared::ids::MessageId;
use shared::model::{Role, StoredMessage, Work};

/// One prompt message, independent of the LLM client's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptMessage {
    System(String),
    User(String),
    Assistant(String),
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
        prompt.push(PromptMessage::Assistant(orphan.content.clone()));
    }
    for question in users_before_or_at {
        prompt.push(PromptMessage::User(question.content.clone()));
        for answer in answer_to(question.id) {
            prompt.push(PromptMessage::Assistant(answer.content.clone()));
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
            attempt: 1,
            tries: 1,
            cancelled: false,
            history,
            tool_calls: Vec::new(),
            user_id: None,
            metadata: serde_json::json!({}),
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
