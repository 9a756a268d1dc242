//! The deterministic answer: what the mock says to a conversation, and how it is cut
//! into streamed tokens.
//!
//! The answer quotes the last user message and counts the turns, so a test can tell
//! from the reply alone which prompt the client built (history kept, order right,
//! tool results passed back). Tests compute the expected text with [`reply_text`]
//! instead of copying strings.

use serde_json::Value;

use super::conversation::{self, ToolResult};
use super::directives;

/// The full answer the mock streams for `messages` (an OpenAI `messages` array),
/// padded to at least `tokens` tokens.
///
/// With `u` user messages, `a` assistant messages and `last` the last user message
/// without its `[mock:...]` directives, trimmed, the base text is
/// `Reply {u} to "{last}" after {u-1} earlier user and {a} assistant messages.`
/// When tool results follow the last user message it is instead
/// `Tool {name} said: {content}.` for each result of the latest run, joined by
/// spaces. Directives only get stripped here, never applied: with `[mock:tool=..]`
/// the server answers with a tool call, but this function still gives the text.
pub fn reply_text(messages: &[Value], tokens: usize) -> String {
    reply_tokens(messages, tokens).concat()
}

/// [`reply_text`] as the streamed tokens: the base text split on spaces, every token
/// but the first with its leading space (`"Reply"`, `" 1"`, `" to"`, ...), then
/// fillers `" w1"`, `" w2"`, ... up to `tokens` tokens. Their concatenation is
/// exactly [`reply_text`].
pub fn reply_tokens(messages: &[Value], tokens: usize) -> Vec<String> {
    tokenize(&base_text(messages), tokens)
}

/// `tokens` joined into `pieces` consecutive groups whose sizes differ by at most
/// one (unchanged when there are no more tokens than pieces); the concatenation
/// stays the same.
pub(crate) fn regroup(tokens: Vec<String>, pieces: usize) -> Vec<String> {
    if pieces == 0 || tokens.len() <= pieces {
        return tokens;
    }
    let (per, extra) = (tokens.len() / pieces, tokens.len() % pieces);
    let mut tokens = tokens.into_iter();
    (0..pieces)
        .map(|i| tokens.by_ref().take(per + usize::from(i < extra)).collect())
        .collect()
}

fn base_text(messages: &[Value]) -> String {
    let results = conversation::latest_tool_results(messages);
    if !results.is_empty() {
        return tool_text(&results);
    }
    let users = conversation::count_role(messages, "user");
    let assistants = conversation::count_role(messages, "assistant");
    let last = last_user_query(messages);
    format!(
        "Reply {users} to \"{last}\" after {} earlier user and {assistants} assistant messages.",
        users.saturating_sub(1)
    )
}

fn tool_text(results: &[ToolResult]) -> String {
    results
        .iter()
        .map(|r| format!("Tool {} said: {}.", r.name, r.content))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last user message without directives, trimmed: what the answer quotes and
/// what a mock tool call passes as its `query`.
pub(crate) fn last_user_query(messages: &[Value]) -> String {
    directives::strip(&conversation::last_user_text(messages))
        .trim()
        .to_owned()
}

fn tokenize(text: &str, min_tokens: usize) -> Vec<String> {
    let mut tokens: Vec<String> = text
        .split(' ')
        .enumerate()
        .map(|(i, word)| {
            if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            }
        })
        .collect();
    let words = tokens.len();
    tokens.extend((1..=min_tokens.saturating_sub(words)).map(|n| format!(" w{n}")));
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(text: &str) -> Value {
        json!({"role":"user","content":text})
    }

    fn assistant(text: &str) -> Value {
        json!({"role":"assistant","content":text})
    }

    #[test]
    fn first_message_is_quoted_and_padded() {
        let messages = [user("Hello there")];
        assert_eq!(
            reply_text(&messages, 0),
            "Reply 1 to \"Hello there\" after 0 earlier user and 0 assistant messages."
        );
        // 13 words, then 3 fillers.
        let tokens = reply_tokens(&messages, 16);
        assert_eq!(tokens.len(), 16);
        assert_eq!(&tokens[..3], ["Reply", " 1", " to"]);
        assert_eq!(&tokens[12..], [" messages.", " w1", " w2", " w3"]);
        assert_eq!(
            reply_text(&messages, 16),
            "Reply 1 to \"Hello there\" after 0 earlier user and 0 assistant messages. w1 w2 w3"
        );
    }

    #[test]
    fn tokens_regroup_into_pieces_with_the_same_text() {
        let tokens = reply_tokens(&[user("Hello there")], 16);
        let four = regroup(tokens.clone(), 4);
        assert_eq!(four.len(), 4);
        assert_eq!(four.concat(), tokens.concat());
        assert_eq!(four[0], "Reply 1 to \"Hello");
        assert_eq!(regroup(tokens.clone(), 1), [tokens.concat()]);
        assert_eq!(
            regroup(tokens.clone(), 5)
                .iter()
                .map(String::len)
                .filter(|l| *l > 0)
                .count(),
            5
        );
        assert_eq!(regroup(tokens.clone(), 40), tokens);
    }

    #[test]
    fn long_answers_are_not_truncated() {
        let messages = [user("a b c d e f g h i j k l m n o p")];
        let tokens = reply_tokens(&messages, 3);
        assert_eq!(tokens.len(), 27);
        assert_eq!(tokens.concat(), reply_text(&messages, 0));
    }

    #[test]
    fn counts_users_and_assistants_and_ignores_system() {
        let messages = [
            json!({"role":"system","content":"sys"}),
            user("one"),
            assistant("a1"),
            user("two"),
            assistant("a2"),
            user("  three [mock:slow=5] "),
        ];
        assert_eq!(
            reply_text(&messages, 0),
            "Reply 3 to \"three\" after 2 earlier user and 2 assistant messages."
        );
    }

    #[test]
    fn directives_are_stripped_from_the_quote() {
        let messages = [user("[mock:tool=search][mock:cut=2] find cats")];
        assert_eq!(
            reply_text(&messages, 0),
            "Reply 1 to \"find cats\" after 0 earlier user and 0 assistant messages."
        );
    }

    #[test]
    fn text_parts_are_read() {
        let messages = [json!({"role":"user","content":[{"type":"text","text":"hi"}]})];
        assert!(reply_text(&messages, 0).starts_with("Reply 1 to \"hi\""));
    }

    #[test]
    fn tool_results_are_reported() {
        let messages = [
            user("weather? [mock:tool=get_weather]"),
            json!({"role":"assistant","content":null,"tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}),
            json!({"role":"tool","tool_call_id":"call_1","content":"sunny"}),
        ];
        assert_eq!(reply_text(&messages, 0), "Tool get_weather said: sunny.");
        assert_eq!(
            reply_tokens(&messages, 6),
            ["Tool", " get_weather", " said:", " sunny.", " w1", " w2"]
        );
    }

    #[test]
    fn no_user_message_still_answers() {
        assert_eq!(
            reply_text(&[], 0),
            "Reply 0 to \"\" after 0 earlier user and 0 assistant messages."
        );
    }

    #[test]
    fn concatenation_keeps_repeated_spaces() {
        let messages = [user("a  b")];
        let tokens = reply_tokens(&messages, 0);
        assert!(tokens.concat().contains("\"a  b\""));
    }
}
