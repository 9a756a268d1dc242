//! The tokens one answer cost, over all its model turns: the provider's `usage` when
//! it reports one (asked for with `stream_options.include_usage`, as OpenAI wants),
//! else counted here, roughly (a token is about four characters of English), so a
//! provider that reports nothing still spends a budget. Charged once per answer, just
//! before it is finished (`Backend::add_usage` on the payer [`Work::charge`](shared::model::Work) names),
//! off the per-chunk path.

use crate::llm::ChatMessage;
use crate::llm::wire::Usage;

/// Characters per token when counting.
const CHARS_PER_TOKEN: usize = 4;

/// The usage of an answer so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Some turn had no usage from the provider and was counted here.
    pub counted: bool,
}

impl Tally {
    /// Adds one model turn: its prompt, its text, and what the provider reported.
    pub fn add_turn(&mut self, prompt: &[ChatMessage], text: &str, reported: Option<&Usage>) {
        let reported = reported.and_then(|u| Some((u.prompt_tokens?, u.completion_tokens?)));
        match reported {
            Some((prompt_tokens, completion_tokens)) => {
                self.prompt_tokens += prompt_tokens;
                self.completion_tokens += completion_tokens;
            }
            None => {
                let prompt_chars = serde_json::to_string(prompt).map_or(0, |s| s.len());
                self.prompt_tokens += count(prompt_chars);
                self.completion_tokens += count(text.chars().count());
                self.counted = true;
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// What `complete` reports: only figures the provider gave.
    pub fn reported(&self) -> Option<shared::wire::TokenUsage> {
        (!self.counted && self.total() > 0).then_some(shared::wire::TokenUsage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
        })
    }
}

fn count(chars: usize) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_usage_is_summed_and_missing_usage_is_counted() {
        let prompt = vec![ChatMessage::User {
            content: "hello".into(),
        }];
        let mut tally = Tally::default();
        let usage = Usage {
            prompt_tokens: Some(7),
            completion_tokens: Some(3),
            total_tokens: Some(10),
        };
        tally.add_turn(&prompt, "ignored", Some(&usage));
        tally.add_turn(&prompt, "ignored", Some(&usage));
        assert_eq!((tally.prompt_tokens, tally.completion_tokens), (14, 6));
        assert_eq!(tally.reported().map(|u| u.completion_tokens), Some(6));
        let partial = Usage {
            prompt_tokens: Some(7),
            completion_tokens: None,
            total_tokens: None,
        };
        tally.add_turn(&prompt, "12345678", Some(&partial));
        assert!(tally.counted);
        assert_eq!(tally.completion_tokens, 8);
        assert!(tally.prompt_tokens > 14);
        assert_eq!(tally.reported(), None, "an estimate is not reported");
    }
}
