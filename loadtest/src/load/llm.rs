//! The baseline of "time to first chunk": the same conversation straight to the
//! OpenAI-compatible server (`--url` is its `/v1` base), as a worker would call it,
//! with no gateway, Redis or worker in between.
//!
//! Each session keeps its history (system prompt, user and assistant turns) so the
//! requests grow as the worker's do. Messages are sent in closed loop; `--rate`
//! paces them (a message never starts before the previous answer ended).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::live::Live;
use super::session::{Ctx, SessionResult};
use super::stats::{MessageTimes, Outcome};

/// The worker's default system prompt, so the prompts match.
const SYSTEM_PROMPT: &str = "You are a helpful assistant. Answer concisely.";

/// Runs the session's conversation.
pub async fn drive(ctx: &Ctx, index: usize, started: Instant, result: &mut SessionResult) {
    let base = ctx.settings.url_for(index);
    let url = format!("{base}/chat/completions");
    let mut history = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
    let mut next = started + ctx.settings.first_send_phase(index);
    let mut sent = 0u64;
    while ctx.may_send(sent) {
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        if ctx.stopped() {
            break;
        }
        history.push(json!({"role": "user", "content": ctx.settings.text}));
        sent += 1;
        result.stats.sent += 1;
        Live::add(&ctx.live.messages_sent, 1);
        let sent_at = Instant::now();
        let call = one_answer(ctx, &url, &history, sent_at);
        let (times, outcome, answer) = match tokio::time::timeout(ctx.message_timeout(), call).await
        {
            Ok(Ok((times, answer))) => (times, Outcome::Completed, answer),
            Ok(Err(code)) => (
                MessageTimes::default(),
                Outcome::Failed(code.into()),
                String::new(),
            ),
            Err(_) => (MessageTimes::default(), Outcome::TimedOut, String::new()),
        };
        if outcome != Outcome::Completed {
            Live::add(&ctx.live.errors, 1);
        }
        result.stats.chunks += times.chunks;
        result.stats.chunk_bytes += times.bytes;
        result.stats.message(&times, &outcome);
        Live::add(&ctx.live.messages_done, 1);
        history.push(json!({"role": "assistant", "content": answer}));
        next = match ctx.settings.rate {
            Some(rate) => (next + Duration::from_secs_f64(1.0 / rate)).max(Instant::now()),
            None => Instant::now() + Duration::from_millis(ctx.settings.think_ms),
        };
    }
}

/// One streamed completion: its timings and its text, or an error code.
async fn one_answer(
    ctx: &Ctx,
    url: &str,
    history: &[Value],
    sent_at: Instant,
) -> Result<(MessageTimes, String), &'static str> {
    let body = json!({"model": "mock-model", "stream": true, "messages": history});
    let response = ctx
        .connector
        .http()
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|_| "llm_connect")?;
    if !response.status().is_success() {
        return Err("llm_status");
    }
    let mut times = MessageTimes::default();
    let mut answer = String::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|_| "llm_broken")?;
        buffer.push_str(&String::from_utf8_lossy(&piece));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                times.complete = Some(sent_at.elapsed());
                return Ok((times, answer));
            }
            let Some(content) = delta_content(data) else {
                continue;
            };
            let now = sent_at.elapsed();
            times.first_chunk.get_or_insert(now);
            times.typing.get_or_insert(now);
            times.chunks += 1;
            times.bytes += content.len() as u64;
            answer.push_str(&content);
            Live::add(&ctx.live.chunks, 1);
            Live::add(&ctx.live.events, 1);
        }
    }
    Err("llm_broken")
}

/// The non-empty `choices[0].delta.content` of a chunk.
fn delta_content(data: &str) -> Option<String> {
    let value: Value = serde_json::from_str(data).ok()?;
    let content = value["choices"][0]["delta"]["content"].as_str()?;
    (!content.is_empty()).then(|| content.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_non_empty_content_counts() {
        let chunk = r#"{"choices":[{"index":0,"delta":{"content":" hi"}}]}"#;
        assert_eq!(super::delta_content(chunk).as_deref(), Some(" hi"));
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        assert_eq!(super::delta_content(role), None);
        assert_eq!(super::delta_content(r#"{"choices":[]}"#), None);
    }
}
