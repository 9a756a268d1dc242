//! The streamed answer: server-sent events paced by the configured delays, cut short
//! when a test asks for it.
//!
//! A spawned task writes the frames into a small channel that is the response body.
//! Pacing, cutting and shutdown are then plain sequential code, and the task stops as
//! soon as the client goes away (the channel closes). Dropping the connection on
//! purpose is done by sending an error into the body: hyper then aborts the
//! connection without the final chunk, which a client sees as a broken stream, the
//! way a crashed provider looks. Hyper drops whatever it has not flushed yet when a
//! body fails, so [`FrameStream`] holds an error back for one poll: hyper flushes the
//! frames before it first, and the client gets exactly the tokens sent before the
//! cut.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::mpsc;

use super::answer::Answer;
use super::deviation::{self, Deviation, Deviations};
use super::state::Shutdown;
use super::wire::{Envelope, Usage};

/// Frames buffered ahead of a slow client.
const BUFFER: usize = 16;

/// Everything needed to stream one answer.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub envelope: Envelope,
    pub answer: Answer,
    pub usage: Usage,
    /// Send the usage chunk before `[DONE]`.
    pub include_usage: bool,
    /// Wait before the first content delta.
    pub first_delay: Duration,
    /// Wait between two content deltas.
    pub token_delay: Duration,
    /// Drop the connection after this many content deltas.
    pub cut: Option<usize>,
    /// How the answer's shape departs from the specification.
    pub deviations: Deviations,
}

type Frame = Result<Bytes, io::Error>;

/// A `text/event-stream` response streaming `plan`.
pub(crate) fn response(plan: StreamPlan, shutdown: Shutdown) -> Response {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(produce(plan, Sender { tx, shutdown }));
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(FrameStream { rx, held: None }),
    )
        .into_response()
}

/// A response whose headers go out and whose body then breaks: a connection dropped
/// mid-answer, for non-streamed requests with `[mock:cut]`.
pub(crate) fn broken_response() -> Response {
    let (tx, rx) = mpsc::channel(1);
    // Cannot fail: the channel is new and has room for one frame.
    let _ = tx.try_send(Err(cut_error()));
    Body::from_stream(FrameStream { rx, held: None }).into_response()
}

async fn produce(plan: StreamPlan, mut out: Sender) {
    let envelope = &plan.envelope;
    let shape = &plan.deviations;
    let chunk = |delta: Value, finish: Option<&str>| {
        shape.event(&shape.chunk(envelope.chunk(delta, finish)))
    };
    if !out.send_text(shape.filler()).await
        || !out.send_text(chunk(plan.answer.role_delta(), None)).await
    {
        return;
    }
    if shape.has(Deviation::Reasoning) {
        for delta in deviation::reasoning_deltas() {
            if !out.send_text(chunk(delta, None)).await {
                return;
            }
        }
    }
    let deltas = plan.answer.deltas();
    let limit = plan.cut.unwrap_or(usize::MAX);
    let error_after = shape.has(Deviation::ErrorEvent).then_some(2);
    for (i, delta) in deltas.into_iter().take(limit).enumerate() {
        if error_after == Some(i) {
            break;
        }
        let delay = if i == 0 {
            plan.first_delay
        } else {
            plan.token_delay
        };
        if !out.pause(delay).await
            || !out.send_text(chunk(delta, None)).await
            || !out.send_text(shape.filler()).await
        {
            return;
        }
    }
    if plan.cut.is_some() {
        // Awaited: the client is reading, and the error must come after the deltas.
        let _ = out.tx.send(Err(cut_error())).await;
        return;
    }
    if error_after.is_some() {
        // The provider failed mid-answer and said so in the stream, then closed it.
        out.send_text(shape.event(&deviation::error_event())).await;
        return;
    }
    if !out
        .send_text(chunk(
            serde_json::json!({}),
            Some(plan.answer.finish_reason()),
        ))
        .await
    {
        return;
    }
    if plan.include_usage
        && !out
            .send_text(shape.event(&shape.chunk(envelope.usage_chunk(plan.usage))))
            .await
    {
        return;
    }
    if shape.has(Deviation::UsageChunk)
        && !out
            .send_text(shape.event(&serde_json::json!({"usage": plan.usage.to_json()})))
            .await
    {
        return;
    }
    if !shape.has(Deviation::NoDone) {
        out.send_text(shape.lines("data: [DONE]\n\n")).await;
    }
}

/// The body's writer, which gives up when the client leaves and breaks the stream
/// when the server stops.
struct Sender {
    tx: mpsc::Sender<Frame>,
    shutdown: Shutdown,
}

impl Sender {
    /// Sends event text (nothing when empty); false when the stream must stop.
    async fn send_text(&mut self, text: String) -> bool {
        text.is_empty() || self.send(Bytes::from(text)).await
    }

    /// Sends a frame; false when the stream must stop (client gone or shutdown).
    async fn send(&mut self, frame: Bytes) -> bool {
        tokio::select! {
            sent = self.tx.send(Ok(frame)) => sent.is_ok(),
            () = self.shutdown.wait() => {
                self.abort_for_shutdown();
                false
            }
        }
    }

    /// Waits `delay`; false when the stream must stop instead.
    async fn pause(&mut self, delay: Duration) -> bool {
        if delay.is_zero() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.tx.closed() => false,
            () = self.shutdown.wait() => {
                self.abort_for_shutdown();
                false
            }
        }
    }

    /// Breaks the body because the server stops, which makes hyper drop the
    /// connection.
    fn abort_for_shutdown(&self) {
        // `try_send`, not `send`: a client that stopped reading must not hold up the
        // shutdown. With a full buffer the body just ends without `[DONE]`, which a
        // client also sees as an incomplete answer.
        let _ = self
            .tx
            .try_send(Err(io::Error::other("mock-llm is shutting down")));
    }
}

fn cut_error() -> io::Error {
    io::Error::other("mock-llm: connection cut on purpose ([mock:cut])")
}

/// The response body: the producer's frames, an error held back one poll.
struct FrameStream {
    rx: mpsc::Receiver<Frame>,
    held: Option<io::Error>,
}

impl Stream for FrameStream {
    type Item = Frame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        if let Some(error) = self.held.take() {
            return Poll::Ready(Some(Err(error)));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Err(error))) => {
                // Pending makes hyper flush the frames it buffered; the wake brings
                // it straight back for the error.
                self.held = Some(error);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }
}
