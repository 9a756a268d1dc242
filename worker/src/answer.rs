//! Answers one inbox delivery: takes the session's oldest pending message, streams
//! the model's answer as `chunk` events (tokens arriving close together are coalesced
//! into one event, one Redis round trip), and ends it with one atomic finish.
//!
//! Every publish carries the fence (attempt + message id): if another worker has
//! taken the message over, or the session was deleted, this one stops at its next
//! publish; if the message was cancelled, it stops and finishes with what it has.
//! A message started before (its worker died) is announced with `status: restarted`;
//! one started too often is dead-lettered and answered with an `error`.
//!
//! With tools, an answer is a loop of model turns: a turn that ends in tool calls
//! has them run ([`crate::tool_turn`]) and asks the model again with their results,
//! up to `max_tool_rounds` turns; then the model is asked once more with no tools
//! offered, so it must answer. The text of every turn streams as chunks, and
//! `complete` carries all of it. A restarted message first replays the tool turns an
//! earlier try stored, so finished calls are not made again.

use crate::cancel::CancelRegistry;
use crate::coalesce::{Coalescer, Decision};
use crate::llm::wire::Usage;
use crate::llm::{ChatMessage, Llm, LlmError, LlmEvent, Tool};
use crate::prompt;
use crate::settings::{ConsumerSettings, LlmSettings};
use crate::usage::Tally;
use futures_util::StreamExt;
use shared::backend::{Backend, Charge, Exceeded, PublishOutcome, StoreError};
use shared::clock;
use shared::ids::SessionId;
use shared::metrics::{self, AnswerOutcome, LlmOutcome};
use shared::model::{Begin, Delivery, Finish, FinishOutcome, FunctionCall, StoredMessage, Work};
use shared::telemetry::{self, KeyValue};
use shared::wire::{ChunkEvent, CompleteEvent, ErrorCode, Status, StreamEvent};
use std::time::{Duration, SystemTime};
use thiserror::Error;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why an answer stopped without a finish of its own.
#[derive(Debug, Error)]
pub enum AnswerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Another attempt owns the message, or the session is gone: nothing more to do.
    #[error("superseded")]
    Superseded,
}

/// A publish was refused because the message was cancelled.
pub(crate) struct Cancelled;

/// How one streaming attempt ended.
enum Streamed {
    /// The turn's text, the tool calls it ended with (none: a final answer) and the
    /// usage the provider reported for it.
    Done(String, Vec<crate::llm::ToolCall>, Option<Usage>),
    Cancelled(String),
    /// Broke before finishing; `retryable` when starting over may help.
    Broken {
        text: String,
        finish: Finish,
        retryable: bool,
    },
}

/// Everything one answer needs; cheap to clone.
#[derive(Clone)]
pub struct Answerer {
    pub backend: Backend,
    pub llm: Llm,
    pub llm_settings: LlmSettings,
    pub consumer: ConsumerSettings,
    pub cancels: CancelRegistry,
    pub tools: crate::tools::Toolbox,
}

impl Answerer {
    /// Handles one delivery to its end. Store errors leave the entry pending, to be
    /// retried or reclaimed.
    pub async fn handle(&self, delivery: Delivery) {
        let context = self.llm_settings.llm_context_messages as usize;
        let work = match self.backend.begin(&delivery, context).await {
            Ok(Begin::Work(work)) => *work,
            Ok(Begin::SessionGone | Begin::Idle) => return,
            Err(error) => {
                tracing::error!(%error, session_id = %delivery.session_id, "could not start answering");
                return;
            }
        };
        let span = answer_span(&delivery, &work);
        self.answer_traced(&delivery, &work).instrument(span).await
    }

    async fn answer_traced(&self, delivery: &Delivery, work: &Work) {
        let cancel = self.cancels.register(work.message.id);
        let outcome = self.answer(delivery, work, &cancel).await;
        self.cancels.unregister(work.message.id);
        match outcome {
            Ok(FinishOutcome::Done) => {}
            Ok(outcome) => tracing::info!(?outcome, "finish not applied"),
            Err(AnswerError::Superseded) => tracing::info!("answer superseded"),
            Err(AnswerError::Store(error)) => tracing::error!(%error, "answer interrupted"),
        }
    }

    async fn answer(
        &self,
        delivery: &Delivery,
        work: &Work,
        cancel: &CancellationToken,
    ) -> Result<FinishOutcome, AnswerError> {
        let session = &delivery.session_id;
        if work.tries > self.consumer.worker_max_tries {
            return self.give_up(delivery, work).await;
        }
        if work.cancelled {
            return self
                .finish(
                    delivery,
                    work,
                    answered(String::new(), true),
                    work.tool_calls.clone(),
                )
                .await;
        }
        // Who pays (named by the gateway when budgets are on; `begin` read it). A
        // message queued before its payer's budget ran out (the gateway checked it
        // then) is refused here, before the model is called.
        let charge = &work.charge;
        if let Some(charge) = charge
            && let Some(exceeded) = self.backend.over_budget(charge).await?
        {
            return self.refuse_over_budget(delivery, work, exceeded).await;
        }
        if work.tries > 1 {
            tracing::warn!(
                tries = work.tries,
                "restarting a message whose worker stopped"
            );
            if self.announce_restart(session, work).await?.is_err() {
                return self
                    .finish(
                        delivery,
                        work,
                        answered(String::new(), true),
                        work.tool_calls.clone(),
                    )
                    .await;
            }
        }
        let mut messages = tracing::info_span!("prompt.build", messages = tracing::field::Empty)
            .in_scope(|| {
                let messages =
                    prompt::to_chat(&prompt::build(&self.llm_settings.system_prompt, work));
                tracing::Span::current().record("messages", messages.len() as i64);
                messages
            });
        // `begin` already published `typing` on a first try with no budget to check.
        let mut typing = (!work.announced)
            .then(|| StreamEvent::status(Status::Typing, session, Some(work.message.id)));
        // Tool turns an earlier try stored: their finished results are reused.
        let mut calls: Vec<FunctionCall> = Vec::new();
        for turn in prompt::turns(&work.tool_calls) {
            match crate::tool_turn::run(
                &self.backend,
                &self.tools,
                work,
                session,
                turn,
                false,
                cancel,
            )
            .await?
            {
                Ok(done) => {
                    messages.extend(prompt::tool_turn(None, &done));
                    calls.extend(done);
                }
                Err(Cancelled) => {
                    return self
                        .finish(delivery, work, answered(String::new(), true), calls)
                        .await;
                }
            }
        }
        let mut round = calls.last().map_or(0, |c| c.round + 1);
        let offered: Vec<Tool> = self
            .tools
            .definitions()
            .into_iter()
            .map(|t| {
                Tool::function(
                    t.name,
                    Some(t.description).filter(|d| !d.is_empty()),
                    t.parameters,
                )
            })
            .collect();
        let max_rounds = self.llm_settings.max_tool_rounds();
        // Text of earlier turns, already sent as chunks.
        let mut said = String::new();
        let mut tally = Tally::default();
        let outcome = loop {
            let tools = if round < max_rounds {
                offered.clone()
            } else {
                Vec::new()
            };
            let (text, requested, usage) = match self
                .stream_turn(session, work, &messages, &tools, &mut typing, cancel)
                .await?
            {
                Ok(turn) => turn,
                Err(Finish::Answered { text, cancelled }) => {
                    // Stopped mid-turn: the provider sends no usage, the tokens still cost.
                    tally.add_turn(&messages, &text, None);
                    break answered(format!("{said}{text}"), cancelled);
                }
                Err(failed) => break failed,
            };
            tally.add_turn(&messages, &text, usage.as_ref());
            said.push_str(&text);
            if requested.is_empty() || tools.is_empty() {
                if !requested.is_empty() {
                    tracing::warn!(
                        "the model called tools none were offered for; answering with its text"
                    );
                }
                break answered(said, false);
            }
            let turn: Vec<FunctionCall> = requested
                .into_iter()
                .enumerate()
                .map(|(index, call)| FunctionCall {
                    name: call.function.name,
                    call_id: call.id,
                    arguments: call.function.arguments,
                    result: None,
                    round,
                    index: index as u32,
                })
                .collect();
            match crate::tool_turn::run(
                &self.backend,
                &self.tools,
                work,
                session,
                turn,
                true,
                cancel,
            )
            .await?
            {
                Ok(done) => {
                    messages.extend(prompt::tool_turn(Some(text), &done));
                    calls.extend(done);
                }
                Err(Cancelled) => break answered(said, true),
            }
            round += 1;
        };
        // Charged before the finish: the finish lets the session's next message begin,
        // and its budget check must see these tokens. The provider spent them whether
        // or not this try's finish applies.
        if let Some(charge) = charge
            && tally.total() > 0
        {
            self.charge(charge, tally.total()).await;
        }
        self.finish_with(delivery, work, outcome, calls, tally)
            .await
    }

    /// Charges an answer's tokens to whoever the gateway named for the session. A
    /// failure is logged: the answer itself still finishes.
    async fn charge(&self, charge: &Charge, tokens: u64) {
        match self.backend.add_usage(&charge.scope, tokens).await {
            Ok(_) => metrics::tokens_charged(tokens),
            Err(error) => tracing::warn!(%error, tokens, "could not charge an answer's tokens"),
        }
    }

    /// One model turn, started over (within `LLM_STREAM_RETRIES`) when its stream
    /// breaks: its text and tool calls, or how the answer ends.
    async fn stream_turn(
        &self,
        session: &SessionId,
        work: &Work,
        messages: &[ChatMessage],
        tools: &[Tool],
        typing: &mut Option<StreamEvent>,
        cancel: &CancellationToken,
    ) -> Result<Result<(String, Vec<crate::llm::ToolCall>, Option<Usage>), Finish>, AnswerError>
    {
        let mut restarts_left = self.llm_settings.llm_stream_retries;
        let outcome = loop {
            let announce = typing.take();
            let span = tracing::info_span!(
                "llm.request",
                tools = tools.len() as i64,
                time_to_first_token_ms = tracing::field::Empty,
                tool_calls = tracing::field::Empty,
                outcome = tracing::field::Empty,
            );
            let streamed = self
                .stream_answer(session, work, messages, tools, announce, cancel)
                .instrument(span.clone())
                .await?;
            span.record(
                "outcome",
                match &streamed {
                    Streamed::Done(..) => "ok",
                    Streamed::Cancelled(_) => "cancelled",
                    Streamed::Broken {
                        finish: Finish::Failed { code, .. },
                        ..
                    } => code.as_str(),
                    Streamed::Broken { .. } => "broken",
                },
            );
            if let Streamed::Done(_, calls, _) = &streamed {
                span.record("tool_calls", calls.len() as i64);
            }
            match streamed {
                Streamed::Done(text, calls, usage) => return Ok(Ok((text, calls, usage))),
                Streamed::Cancelled(text) => break answered(text, true),
                Streamed::Broken {
                    text,
                    finish,
                    retryable,
                } => {
                    if !retryable || restarts_left == 0 {
                        break finish;
                    }
                    restarts_left -= 1;
                    // Chunks already went out: say the answer starts over.
                    if !text.is_empty() && self.announce_restart(session, work).await?.is_err() {
                        break answered(text, true);
                    }
                }
            }
        };
        Ok(Err(outcome))
    }

    /// Ends the message: `complete` (or `error`) and `ready`, stored and acknowledged.
    async fn finish(
        &self,
        delivery: &Delivery,
        work: &Work,
        outcome: Finish,
        function_calls: Vec<FunctionCall>,
    ) -> Result<FinishOutcome, AnswerError> {
        self.finish_with(delivery, work, outcome, function_calls, Tally::default())
            .await
    }

    /// [`Self::finish`] of an answer whose model turns cost `tally` (on `complete`).
    async fn finish_with(
        &self,
        delivery: &Delivery,
        work: &Work,
        outcome: Finish,
        function_calls: Vec<FunctionCall>,
        tally: Tally,
    ) -> Result<FinishOutcome, AnswerError> {
        let session = &delivery.session_id;
        let message_id = work.message.id;
        let ready = StreamEvent::status(Status::Ready, session, Some(message_id));
        let measured = match &outcome {
            Finish::Answered {
                cancelled: false, ..
            } => AnswerOutcome::Complete,
            Finish::Answered {
                cancelled: true, ..
            } => AnswerOutcome::Cancelled,
            Finish::Failed { .. } => AnswerOutcome::Error,
        };
        let (answer, last) = match outcome {
            Finish::Answered { text, cancelled } => {
                let complete = StreamEvent::Complete(CompleteEvent {
                    seq: None,
                    full_response: text.clone(),
                    message_id: Some(message_id),
                    cancelled,
                    usage: tally.reported(),
                    timestamp: clock::now_rfc3339(),
                });
                let mut answer = StoredMessage::assistant(text, message_id, cancelled);
                answer.function_calls = function_calls;
                (Some(answer), complete)
            }
            Finish::Failed { code, error } => {
                (None, StreamEvent::error(code, error, Some(message_id)))
            }
        };
        tracing::Span::current().record("outcome", measured.as_str());
        let finished = self
            .backend
            .finish(delivery, work, answer.as_ref(), &[last, ready])
            .instrument(tracing::info_span!("store.finish"))
            .await?;
        if finished == FinishOutcome::Done {
            metrics::answer_finished(&work.message.created_at, measured);
        }
        Ok(finished)
    }

    /// Ends a message whose payer's token budget is used up with `budget_exceeded`
    /// (and when it resets), without calling the model.
    async fn refuse_over_budget(
        &self,
        delivery: &Delivery,
        work: &Work,
        exceeded: Exceeded,
    ) -> Result<FinishOutcome, AnswerError> {
        let message_id = work.message.id;
        let mut refusal = StreamEvent::error(
            ErrorCode::BudgetExceeded,
            exceeded.message(),
            Some(message_id),
        );
        if let StreamEvent::Error(error) = &mut refusal {
            error.retry_after_ms = Some(exceeded.retry_after_ms());
        }
        let ready = StreamEvent::status(Status::Ready, &delivery.session_id, Some(message_id));
        tracing::Span::current().record("outcome", "budget_exceeded");
        let finished = self
            .backend
            .finish(delivery, work, None, &[refusal, ready])
            .instrument(tracing::info_span!("store.finish"))
            .await?;
        if finished == FinishOutcome::Done {
            metrics::limit_checked("budget", "refused");
            metrics::answer_finished(&work.message.created_at, AnswerOutcome::Error);
        }
        Ok(finished)
    }

    /// A message started more often than allowed: dead-letter it and tell the client.
    async fn give_up(
        &self,
        delivery: &Delivery,
        work: &Work,
    ) -> Result<FinishOutcome, AnswerError> {
        let tries = work.tries - 1;
        tracing::error!(tries, message_id = %work.message.id, "giving up on a message");
        self.backend
            .dead_letter(delivery, work, &format!("abandoned after {tries} tries"))
            .await?;
        metrics::dead_lettered();
        let failed = Finish::Failed {
            code: ErrorCode::Internal,
            error: format!(
                "The assistant could not answer this message after {tries} attempts; please try again."
            ),
        };
        self.finish(delivery, work, failed, Vec::new()).await
    }

    async fn announce_restart(
        &self,
        session: &SessionId,
        work: &Work,
    ) -> Result<Result<(), Cancelled>, AnswerError> {
        let restarted = StreamEvent::status(Status::Restarted, session, Some(work.message.id));
        self.publish(session, work, restarted).await
    }

    async fn publish(
        &self,
        session: &SessionId,
        work: &Work,
        event: StreamEvent,
    ) -> Result<Result<(), Cancelled>, AnswerError> {
        self.publish_all(session, work, &[event]).await
    }

    /// Publishes events as one batch (one Redis call), fenced.
    async fn publish_all(
        &self,
        session: &SessionId,
        work: &Work,
        events: &[StreamEvent],
    ) -> Result<Result<(), Cancelled>, AnswerError> {
        match self
            .backend
            .publish(session, events, Some(work.fence()))
            .await?
        {
            PublishOutcome::Published { .. } => Ok(Ok(())),
            PublishOutcome::Cancelled => Ok(Err(Cancelled)),
            PublishOutcome::SessionGone | PublishOutcome::Fenced => Err(AnswerError::Superseded),
        }
    }

    /// One attempt at streaming the model's answer as chunk events. `announce` (the
    /// `typing` status) is published while the model request goes out, not before
    /// it: the first token waits for neither, and no chunk is published until the
    /// announcement is in.
    async fn stream_answer(
        &self,
        session: &SessionId,
        work: &Work,
        messages: &[ChatMessage],
        tools: &[Tool],
        announce: Option<StreamEvent>,
        cancel: &CancellationToken,
    ) -> Result<Streamed, AnswerError> {
        let started = Instant::now();
        let total_deadline = started + self.llm_settings.total_timeout();
        let first_deadline = started + self.llm_settings.first_token_timeout();

        let open = tokio::time::timeout_at(
            first_deadline,
            self.llm
                .stream_chat(messages.to_vec(), tools.to_vec(), None),
        );
        let (announced, opened) = tokio::select! {
            _ = cancel.cancelled() => {
                return Ok(cancelled(String::new()));
            }
            both = async {
                match announce {
                    Some(event) => {
                        let (announced, opened) = tokio::join!(self.publish(session, work, event), open);
                        (Some(announced), opened)
                    }
                    None => (None, open.await),
                }
            } => both,
        };
        // Cancelled before it began: nothing was said, nothing more is asked of the model.
        if let Some(announced) = announced
            && announced?.is_err()
        {
            return Ok(cancelled(String::new()));
        }
        // Tokens that are already waiting come out together (one Redis call for all of
        // them), whatever their number: under load the worker catches up in batches.
        let mut stream = match opened {
            Ok(Ok(stream)) => stream.ready_chunks(READY_BATCH),
            Ok(Err(error)) => return Ok(broken(String::new(), llm_failure(&error), false)),
            Err(_) => return Ok(broken(String::new(), timeout_failure(), true)),
        };
        let mut first_token = true;
        let mut requested = Vec::new();
        let mut usage = None;

        // `sent` is what clients have (published chunks); `pending` holds the chunk
        // events not yet published (one growing chunk when coalescing, one per token
        // when not). A cancelled answer is what was sent: `complete` equals the chunks.
        let mut sent = String::new();
        let mut pending: Vec<String> = Vec::new();
        let coalesce = self.consumer.coalesce();
        // One cancel waiter and two timers for the whole stream, reset when their
        // deadline moves: made anew for every token, they were a timer-wheel insert
        // and removal and a waiter registration per token.
        let cancelled_fut = cancel.cancelled();
        tokio::pin!(cancelled_fut);
        let deadline_timer = tokio::time::sleep_until(first_deadline.min(total_deadline));
        tokio::pin!(deadline_timer);
        let flush_timer = tokio::time::sleep_until(total_deadline);
        tokio::pin!(flush_timer);
        let mut flush_armed = false;
        let mut coalescer = Coalescer::new(coalesce);
        loop {
            let deadline = if sent.is_empty() && pending.is_empty() {
                first_deadline.min(total_deadline)
            } else {
                total_deadline
            };
            if deadline_timer.deadline() != deadline {
                deadline_timer.as_mut().reset(deadline);
            }
            // Biased: a due flush goes out before more tokens are read, and a token
            // that is ready when the deadline passes still counts (as with a timeout
            // around the read).
            tokio::select! {
                biased;
                _ = &mut cancelled_fut => {
                    return Ok(cancelled(sent));
                }
                _ = &mut flush_timer, if flush_armed => {
                    if self.flush(session, work, &mut pending, &mut sent).await?.is_err() {
                        return Ok(cancelled(sent));
                    }
                    coalescer.published(Instant::now());
                    flush_armed = false;
                }
                item = stream.next() => match item {
                    None => break,
                    Some(items) => {
                        if std::mem::take(&mut first_token) {
                            let waited = started.elapsed();
                            metrics::llm_first_token(waited);
                            tracing::Span::current()
                                .record("time_to_first_token_ms", waited.as_secs_f64() * 1000.0);
                        }
                        let mut failure = None;
                        for item in items {
                            match item {
                                Ok(LlmEvent::Text(text)) => add_token(&mut pending, text, coalesce.is_zero()),
                                Ok(LlmEvent::End(ending)) => (requested, usage) = (ending.tool_calls, ending.usage),
                                Err(error) => {
                                    failure = Some(error);
                                    break;
                                }
                            }
                        }
                        if let Some(error) = failure {
                            if self.flush(session, work, &mut pending, &mut sent).await?.is_err() {
                                return Ok(cancelled(sent));
                            }
                            return Ok(broken(sent, llm_failure(&error), true));
                        }
                        // The first chunk goes out at once (time to first chunk is what
                        // a user waits for), and so does one after a quiet window.
                        let full = pending.last().is_some_and(|c| c.len() >= MAX_CHUNK_BYTES);
                        match coalescer.on_token(Instant::now()) {
                            Decision::At(end) if !full => {
                                if !flush_armed {
                                    flush_timer.as_mut().reset(end);
                                    flush_armed = true;
                                }
                            }
                            _ => {
                                if self.flush(session, work, &mut pending, &mut sent).await?.is_err() {
                                    return Ok(cancelled(sent));
                                }
                                coalescer.published(Instant::now());
                                flush_armed = false;
                            }
                        }
                    }
                },
                () = &mut deadline_timer => {
                    if self.flush(session, work, &mut pending, &mut sent).await?.is_err() {
                        return Ok(cancelled(sent));
                    }
                    // Only a silent start is worth another try; a slow answer is not.
                    let retryable = sent.is_empty();
                    return Ok(broken(sent, timeout_failure(), retryable));
                }
            }
        }
        if self
            .flush(session, work, &mut pending, &mut sent)
            .await?
            .is_err()
        {
            return Ok(cancelled(sent));
        }
        metrics::llm_request(LlmOutcome::Ok);
        Ok(Streamed::Done(sent, requested, usage))
    }

    /// Publishes the pending chunk events in one batch and moves them to `sent`.
    async fn flush(
        &self,
        session: &SessionId,
        work: &Work,
        pending: &mut Vec<String>,
        sent: &mut String,
    ) -> Result<Result<(), Cancelled>, AnswerError> {
        if pending.is_empty() {
            return Ok(Ok(()));
        }
        let contents = std::mem::take(pending);
        let timestamp = clock::now_rfc3339();
        let chunks: Vec<StreamEvent> = contents
            .iter()
            .map(|content| {
                StreamEvent::Chunk(ChunkEvent {
                    seq: None,
                    content: content.clone(),
                    message_id: Some(work.message.id),
                    timestamp: timestamp.clone(),
                })
            })
            .collect();
        let published = self.publish_all(session, work, &chunks).await?;
        if published.is_ok() && sent.is_empty() {
            metrics::first_chunk(&work.message.created_at);
        }
        if published.is_ok() {
            contents.iter().for_each(|content| sent.push_str(content));
        }
        Ok(published)
    }
}

/// The span of one try at answering a message: a child of the gateway's span for
/// it (the trace context it was queued with), whichever worker and try this is, with
/// the wait in the queue (accepted → taken by this worker) as its first child.
fn answer_span(delivery: &Delivery, work: &Work) -> tracing::Span {
    let taken = SystemTime::now();
    let span = tracing::info_span!(
        parent: None,
        "chat.answer",
        session_id = %delivery.session_id,
        message_id = %work.message.id,
        // i64: the OpenTelemetry layer turns u64 fields into strings.
        attempt = work.attempt as i64,
        tries = work.tries as i64,
        outcome = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    work.trace.continue_in(&span);
    telemetry::record_trace_id(&span);
    if let Ok(accepted) = chrono::DateTime::parse_from_rfc3339(&work.message.created_at) {
        telemetry::record_past_span(
            "queue.wait",
            &span,
            accepted.with_timezone(&chrono::Utc).into(),
            taken,
            vec![KeyValue::new("tries", work.tries as i64)],
        );
    }
    span
}

/// Tokens taken from the model's stream at once when they are already waiting.
const READY_BATCH: usize = 64;

/// Adds a token to the pending chunk events: its own event, or appended to the chunk
/// being coalesced.
fn add_token(pending: &mut Vec<String>, text: String, separate: bool) {
    match pending.last_mut() {
        Some(chunk) if !separate => chunk.push_str(&text),
        _ => pending.push(text),
    }
}

/// Upper bound on one coalesced chunk, so a fast model still streams visibly.
const MAX_CHUNK_BYTES: usize = 2048;

fn answered(text: String, cancelled: bool) -> Finish {
    Finish::Answered { text, cancelled }
}

/// The model request was stopped by a cancel, however it was noticed (the token, or a
/// publish the store refused because the message was cancelled): counted once here.
fn cancelled(sent: String) -> Streamed {
    metrics::llm_request(LlmOutcome::Cancelled);
    Streamed::Cancelled(sent)
}

fn broken(text: String, finish: Finish, retryable: bool) -> Streamed {
    Streamed::Broken {
        text,
        finish,
        retryable,
    }
}

fn llm_failure(error: &LlmError) -> Finish {
    tracing::warn!(%error, "LLM failed");
    metrics::llm_request(LlmOutcome::Error);
    Finish::Failed {
        code: ErrorCode::LlmError,
        error: "The assistant could not answer: the language model request failed.".into(),
    }
}

fn timeout_failure() -> Finish {
    tracing::warn!("LLM timed out");
    metrics::llm_request(LlmOutcome::Timeout);
    Finish::Failed {
        code: ErrorCode::LlmTimeout,
        error: "The assistant could not answer in time: the language model did not respond.".into(),
    }
}

/// How long a worker blocks on an empty inbox before checking for shutdown.
pub const INBOX_BLOCK: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_coalesced_or_kept_apart() {
        let mut coalesced = Vec::new();
        for token in ["a", "b", "c"] {
            add_token(&mut coalesced, token.into(), false);
        }
        assert_eq!(coalesced, ["abc"]);
        let mut separate = Vec::new();
        for token in ["a", "b", "c"] {
            add_token(&mut separate, token.into(), true);
        }
        assert_eq!(separate, ["a", "b", "c"]);
    }
}
