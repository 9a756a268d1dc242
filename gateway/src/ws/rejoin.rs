//! Where a client that attaches with no `last_seq` starts reading the log.
//!
//! The history holds an answer only once it is complete, so a fresh client (a page
//! reload, a new tab) that attaches while one is being generated would otherwise see
//! the question and then only the chunks still to come. Instead it gets every retained
//! event of that answer, from its first (`typing`), before the live ones: with the
//! history, nothing shown is missing or doubled.

use shared::backend::{Backend, StoreError};
use shared::ids::SessionId;
use shared::model::Replay;
use shared::wire::{Status, StreamEvent};

/// What a client with no `last_seq` is sent first, and the position it starts after.
/// The whole log is read only when its newest event is part of an answer still going.
pub async fn replay(backend: &Backend, id: &SessionId) -> Result<(Replay, u64), StoreError> {
    let newest = backend.replay(id, u64::MAX).await?;
    if newest.last_seq == 0 {
        return Ok((newest, 0));
    }
    let tail = backend.replay(id, newest.last_seq - 1).await?;
    if tail.events.last().is_none_or(|line| ends_turn(line)) {
        let last_seq = tail.last_seq;
        return Ok((tail, last_seq));
    }
    let all = backend.replay(id, 0).await?;
    match answer_start(&all.events) {
        Some(start) => {
            let events = all
                .events
                .into_iter()
                .filter(|line| shared::backend::seq_of(line).is_some_and(|seq| seq > start))
                .collect();
            Ok((Replay { events, ..all }, start))
        }
        None => {
            let last_seq = all.last_seq;
            Ok((all, last_seq))
        }
    }
}

/// True when `line` ends a user message's turn: after it, nothing of that answer is
/// left to rebuild (the history has the answer, or the error said why there is none).
pub fn ends_turn(line: &str) -> bool {
    matches!(
        serde_json::from_str::<StreamEvent>(line),
        Ok(StreamEvent::Complete(_)
            | StreamEvent::Error(_)
            | StreamEvent::Status(shared::wire::StatusEvent {
                status: Status::Ready,
                ..
            }))
    )
}

/// The position to replay from so the answer in progress is sent whole: just before
/// the first retained event of the message the newest event belongs to, when that
/// newest event does not end its turn. `None`: nothing is in progress.
pub fn answer_start(events: &[String]) -> Option<u64> {
    let newest = events.last()?;
    if ends_turn(newest) {
        return None;
    }
    let message = message_of(newest)?;
    events
        .iter()
        .filter_map(|line| serde_json::from_str::<StreamEvent>(line).ok())
        .find(|event| message_id(event) == Some(message))
        .and_then(|event| event.seq())
        .map(|seq| seq.saturating_sub(1))
}

fn message_of(line: &str) -> Option<shared::ids::MessageId> {
    let event = serde_json::from_str::<StreamEvent>(line).ok()?;
    message_id(&event)
}

fn message_id(event: &StreamEvent) -> Option<shared::ids::MessageId> {
    match event {
        StreamEvent::Status(e) => e.message_id,
        StreamEvent::FunctionCalled(e) => e.message_id,
        StreamEvent::Chunk(e) => e.message_id,
        StreamEvent::Complete(e) => e.message_id,
        StreamEvent::Error(e) => e.message_id,
        StreamEvent::Pong {} => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "7d0c2f7e-1b8a-4d39-a0a4-6c3c1c9b0e21";
    const B: &str = "3e5a7c9b-2d4f-4a6b-8c0d-1e2f3a4b5c6d";

    fn status(seq: u64, status: &str, message: &str) -> String {
        format!(
            r#"{{"type":"status","seq":{seq},"status":"{status}","message_id":"{message}","timestamp":"t"}}"#
        )
    }

    fn chunk(seq: u64, message: &str) -> String {
        format!(
            r#"{{"type":"chunk","seq":{seq},"content":"x","message_id":"{message}","timestamp":"t"}}"#
        )
    }

    fn complete(seq: u64, message: &str) -> String {
        format!(
            r#"{{"type":"complete","seq":{seq},"full_response":"x","message_id":"{message}","timestamp":"t"}}"#
        )
    }

    #[test]
    fn an_answer_in_progress_is_replayed_from_its_first_event() {
        let log = vec![
            status(1, "typing", A),
            chunk(2, A),
            complete(3, A),
            status(4, "ready", A),
            status(5, "typing", B),
            chunk(6, B),
            status(7, "restarted", B),
            chunk(8, B),
        ];
        assert_eq!(answer_start(&log), Some(4));
    }

    #[test]
    fn nothing_is_replayed_when_the_newest_event_ends_a_turn() {
        assert_eq!(answer_start(&[]), None);
        let log = vec![status(1, "typing", A), chunk(2, A), complete(3, A)];
        assert_eq!(answer_start(&log), None);
        let mut log = log;
        log.push(status(4, "ready", A));
        assert_eq!(answer_start(&log), None);
        let error = format!(
            r#"{{"type":"error","seq":5,"error":"e","code":"llm_error","message_id":"{B}","timestamp":"t"}}"#
        );
        assert!(ends_turn(&error));
    }

    #[test]
    fn a_trimmed_log_replays_what_is_left_of_the_answer() {
        // The answer's `typing` is no longer retained: start at its oldest retained event.
        let log = vec![chunk(40, B), chunk(41, B)];
        assert_eq!(answer_start(&log), Some(39));
    }
}
