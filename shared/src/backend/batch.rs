//! The text form of a published batch, in one place for both backends (and the
//! gateway): events are JSON objects whose first field is `"seq"`, spliced in front of
//! the event's own JSON by the store, and a batch is its events joined by newlines.
//! `redis/publish_batch.lua` splices the same prefix inside Redis (Lua cannot call this
//! code); the conformance suite checks both backends produce lines [`seq_of`] reads.

/// What every client event line starts with; control lines never do.
pub const SEQ_PREFIX: &str = "{\"seq\":";

/// `event_json` (a JSON object) with `"seq":seq` as its first field.
pub fn splice_seq(seq: u64, event_json: &str) -> String {
    let body = event_json.strip_prefix('{').unwrap_or(event_json);
    format!("{SEQ_PREFIX}{seq},{body}")
}

/// The `seq` of an event line as the store writes it, without parsing it all.
pub fn seq_of(line: &str) -> Option<u64> {
    let rest = line.strip_prefix(SEQ_PREFIX)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// Whether a line is a client event (carries a seq) rather than an internal control.
pub fn is_event_line(line: &str) -> bool {
    line.starts_with(SEQ_PREFIX)
}

/// Splits a published batch into `(seq, event json)` lines.
pub fn split_batch(payload: &str) -> impl Iterator<Item = (Option<u64>, &str)> {
    payload.split('\n').map(|line| (seq_of(line), line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_read_from_the_line_prefix() {
        assert_eq!(seq_of(r#"{"seq":42,"type":"chunk"}"#), Some(42));
        assert_eq!(seq_of(r#"{"type":"session_deleted"}"#), None);
        assert_eq!(seq_of(r#"{"seq":x,"type":"chunk"}"#), None);
    }

    #[test]
    fn spliced_lines_read_back() {
        let line = splice_seq(7, r#"{"type":"chunk","content":"a"}"#);
        assert_eq!(line, r#"{"seq":7,"type":"chunk","content":"a"}"#);
        assert_eq!(seq_of(&line), Some(7));
        assert!(is_event_line(&line));
        let seqs: Vec<_> = split_batch(&format!("{line}\n{}", splice_seq(8, "{\"a\":1}")))
            .map(|(seq, _)| seq)
            .collect();
        assert_eq!(seqs, [Some(7), Some(8)]);
    }
}
