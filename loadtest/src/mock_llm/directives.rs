//! Fault directives: `[mock:...]` tags written into the last user message, so one test
//! can make one request fail, hang, stall or call a tool without restarting the mock.
//!
//! A tag is `[mock:` up to the next `]`, holding space-separated `key` or `key=value`
//! items; several tags may be combined and all their items are read together, so
//! `[mock:status=429 retry_after=3]` and `[mock:status=429][mock:retry_after=3]` mean
//! the same. Unknown keys and bad values are logged and ignored: a typo in a test
//! should show in the log, not crash the mock. Tags are stripped from the text the
//! answer quotes (see [`strip`]).

use std::ops::Range;

use super::deviation::{Deviation, Deviations};

/// Opens a directive tag.
const OPEN: &str = "[mock:";

/// What the last user message asks the mock to do instead of (or on top of) answering.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Directives {
    /// `status=CODE`: answer this HTTP status with an OpenAI error body.
    pub status: Option<u16>,
    /// `retry_after=SECS`: the `retry-after` header of the error (429 defaults to 1).
    pub retry_after: Option<u64>,
    /// `quota`: a 429 that means "out of quota" (`insufficient_quota`), which clients
    /// must not retry.
    pub quota: bool,
    /// `hang`: accept the request and never answer.
    pub hang: bool,
    /// `cut=N`: send N content pieces, then drop the connection.
    pub cut: Option<usize>,
    /// `slow=MS`: delay between tokens for this request.
    pub slow_ms: Option<u64>,
    /// `first=MS`: delay before the first token for this request.
    pub first_ms: Option<u64>,
    /// `pieces=N`: stream the same text as N content deltas (consecutive tokens
    /// joined), so a benchmark can vary the deltas per answer and keep the bytes.
    pub pieces: Option<usize>,
    /// `tool=NAME` (repeatable): answer with calls to these tools, in order.
    pub tools: Vec<String>,
    /// `tool_rounds=N`: call the tools in each of the first N model turns after the
    /// user message (default 1: answer as soon as a result came back).
    pub tool_rounds: Option<usize>,
    /// `bad_args`: the tool calls' arguments are not valid JSON.
    pub bad_args: bool,
    /// `arg=NAME`: the name of the one argument the calls pass (default `query`), so
    /// a tool whose schema requires another one can be driven.
    pub arg: Option<String>,
    /// `deviate=NAME` (repeatable): answer in a shape that differs from the
    /// specification the way some real servers do (see [`Deviation`]).
    pub deviations: Deviations,
}

impl Directives {
    /// Reads every directive tag in `text`.
    pub(crate) fn parse(text: &str) -> Self {
        let mut directives = Self::default();
        for range in tags(text) {
            let body = &text[range.start + OPEN.len()..range.end - 1];
            for item in body.split_whitespace() {
                directives.apply(item);
            }
        }
        directives
    }

    /// Whether any directive is present.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn apply(&mut self, item: &str) {
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (item, None),
        };
        match (key, value) {
            ("status", Some(v)) => self.status = number(item, v).filter(|code| valid_status(*code)),
            ("retry_after" | "retry-after", Some(v)) => self.retry_after = number(item, v),
            ("quota", None) => self.quota = true,
            ("hang", None) => self.hang = true,
            ("cut", Some(v)) => self.cut = number(item, v),
            ("slow", Some(v)) => self.slow_ms = number(item, v),
            ("first", Some(v)) => self.first_ms = number(item, v),
            ("pieces", Some(v)) => self.pieces = number(item, v).filter(|n| *n > 0),
            ("tool", Some(name)) if !name.is_empty() => self.tools.push(name.to_owned()),
            ("tool_rounds", Some(v)) => self.tool_rounds = number(item, v),
            ("bad_args", None) => self.bad_args = true,
            ("arg", Some(name)) if !name.is_empty() => self.arg = Some(name.to_owned()),
            ("deviate", Some(name)) => match Deviation::from_name(name) {
                Some(deviation) => self.deviations.add(deviation),
                None => tracing::warn!(item, "ignoring unknown mock deviation"),
            },
            _ => tracing::warn!(item, "ignoring unknown mock directive"),
        }
    }
}

/// `text` with every directive tag removed (whitespace around them is kept; callers
/// trim).
pub(crate) fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for range in tags(text) {
        out.push_str(&text[from..range.start]);
        from = range.end;
    }
    out.push_str(&text[from..]);
    out
}

/// Byte ranges of the complete tags in `text`, `[` to `]` inclusive, in order. An
/// opening without its `]` is plain text.
fn tags(text: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut at = 0;
    while let Some(start) = text[at..].find(OPEN).map(|i| at + i) {
        let Some(len) = text[start..].find(']') else {
            break;
        };
        let end = start + len + 1;
        ranges.push(start..end);
        at = end;
    }
    ranges
}

fn number<T: std::str::FromStr>(item: &str, value: &str) -> Option<T> {
    let parsed = value.parse().ok();
    if parsed.is_none() {
        tracing::warn!(item, "ignoring mock directive with a bad number");
    }
    parsed
}

/// Statuses the mock can answer: HTTP's informational to server-error range.
pub(crate) fn valid_status(code: u16) -> bool {
    (100..=599).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_directives() {
        assert!(Directives::parse("hello [world] [mock").is_empty());
    }

    #[test]
    fn reads_each_directive() {
        let d = Directives::parse(
            "[mock:status=429 retry_after=3 quota] hi [mock:hang][mock:cut=2] \
             [mock:slow=15][mock:first=40 pieces=4][mock:tool=search][mock:tool=weather] \
             [mock:deviate=crlf deviate=bare deviate=crlf][mock:tool_rounds=3 bad_args arg=exam]",
        );
        let mut deviations = Deviations::default();
        deviations.add(Deviation::Crlf);
        deviations.add(Deviation::Bare);
        assert_eq!(
            d,
            Directives {
                status: Some(429),
                retry_after: Some(3),
                quota: true,
                hang: true,
                cut: Some(2),
                slow_ms: Some(15),
                first_ms: Some(40),
                pieces: Some(4),
                tools: vec!["search".into(), "weather".into()],
                tool_rounds: Some(3),
                bad_args: true,
                arg: Some("exam".into()),
                deviations,
            }
        );
    }

    #[test]
    fn bad_values_and_unknown_keys_are_ignored() {
        let d = Directives::parse(
            "[mock:status=abc cut=-1 status=42 bogus tool= deviate=odd pieces=0]",
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn strip_removes_complete_tags_only() {
        assert_eq!(strip("[mock:hang] hi [mock:cut=1]there"), " hi there");
        assert_eq!(strip("a [mock:cut=1 b"), "a [mock:cut=1 b");
        assert_eq!(strip("no tags"), "no tags");
    }
}
