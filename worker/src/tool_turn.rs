//! Runs the calls of one model turn: announces them (`function_called`, stored in the
//! same step as the calls themselves, before anything runs), runs them concurrently
//! and stores each result the moment it is in, fenced like every write of an answer.
//!
//! Storing before using is what makes a crash safe: a worker that takes the message
//! over gets the stored calls back from `begin`, reuses every result and runs only
//! the calls that never finished, with the same `webhook-id` (it is derived from the
//! message and the call), so a booking server can tell a retry from a new booking.

use crate::answer::{AnswerError, Cancelled};
use crate::tools::{CallContext, Outcome, ToolCall, Toolbox};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use shared::backend::Backend;
use shared::clock;
use shared::metrics::{self, ToolOutcome};
use shared::model::{FunctionCall, SaveOutcome, Work};
use shared::wire::{FunctionCalledEvent, StreamEvent};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Runs `calls` (one turn, in the provider's order) to the end; those that already
/// have a result are kept. With `announce`, the calls are first stored and
/// announced (a restored turn was announced by the try that made it).
pub(crate) async fn run(
    backend: &Backend,
    tools: &Toolbox,
    work: &Work,
    session: &shared::ids::SessionId,
    mut calls: Vec<FunctionCall>,
    announce: bool,
    cancel: &CancellationToken,
) -> Result<Result<Vec<FunctionCall>, Cancelled>, AnswerError> {
    if announce {
        let events: Vec<StreamEvent> = calls
            .iter()
            .map(|call| {
                StreamEvent::FunctionCalled(FunctionCalledEvent {
                    seq: None,
                    function_name: call.name.clone(),
                    call_id: call.call_id.clone(),
                    message_id: Some(work.message.id),
                    timestamp: clock::now_rfc3339(),
                })
            })
            .collect();
        if let Err(cancelled) = save(backend, session, work, &calls, &events).await? {
            return Ok(Err(cancelled));
        }
    }
    let context = CallContext {
        session_id: session.clone(),
        user_id: work.user_id.clone(),
        metadata: work.metadata.clone(),
        message_id: work.message.id,
    };
    let mut running: FuturesUnordered<_> = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| call.result.is_none())
        .map(|(position, call)| {
            let request = ToolCall {
                call_id: call.call_id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            };
            let context = &context;
            let span = tracing::info_span!(
                "tool.call",
                tool = %request.name,
                call_id = %request.call_id,
                outcome = tracing::field::Empty,
            );
            async move {
                let result = tools.run(&request, context).await;
                tracing::Span::current().record("outcome", result.outcome.as_str());
                (position, result)
            }
            .instrument(span)
        })
        .collect();
    loop {
        let finished = tokio::select! {
            _ = cancel.cancelled() => return Ok(Err(Cancelled)),
            finished = running.next() => finished,
        };
        let Some((position, result)) = finished else {
            break;
        };
        let call = &mut calls[position];
        if result.outcome != Outcome::Ok {
            tracing::warn!(tool = %call.name, outcome = result.outcome.as_str(), result = %result.result, "tool call failed");
        }
        metrics::tool_call(
            &call.name,
            if result.outcome == Outcome::Ok {
                ToolOutcome::Ok
            } else {
                ToolOutcome::Error
            },
        );
        call.result = Some(result.result);
        let done = call.clone();
        if let Err(cancelled) = save(backend, session, work, &[done], &[]).await? {
            return Ok(Err(cancelled));
        }
    }
    Ok(Ok(calls))
}

async fn save(
    backend: &Backend,
    session: &shared::ids::SessionId,
    work: &Work,
    calls: &[FunctionCall],
    events: &[StreamEvent],
) -> Result<Result<(), Cancelled>, AnswerError> {
    match backend
        .save_tool_calls(session, work.fence(), calls, events)
        .await?
    {
        SaveOutcome::Saved => Ok(Ok(())),
        SaveOutcome::Cancelled => Ok(Err(Cancelled)),
        SaveOutcome::Fenced | SaveOutcome::SessionGone => Err(AnswerError::Superseded),
    }
}
