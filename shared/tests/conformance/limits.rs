//! Conformance of the cross-pod limits (`backend::limits`): GCRA rate buckets, token
//! usage windows and the charge a message carries to its answer. Same cases on Redis (real time) and
//! memory (paused clock); the window reset is waited for on memory only (a real minute
//! is too long for the suite), where the paused clock jumps over it.

use crate::helpers::*;
use shared::backend::{Backend, Charge, Rate, RateOutcome, UsageWindow};
use shared::ids::SessionId;
use shared::model::{AcceptOutcome, Begin, FinishOutcome, StoredMessage, Work};
use std::time::Duration;

/// 600 a minute is one every 100 ms; three at once.
const RATE: Rate = Rate {
    per_minute: 600,
    burst: 3,
};

async fn rates_allow_the_burst_then_the_rate(backend: Backend, _ctx: &Ctx) {
    let scope = "rest:user:alice";
    let mut remaining = Vec::new();
    for _ in 0..3 {
        match backend.check_rate(scope, RATE).await.unwrap() {
            RateOutcome::Allowed { remaining: r } => remaining.push(r),
            other => panic!("within the burst: {other:?}"),
        }
    }
    assert_eq!(remaining, [2, 1, 0]);
    let wait = match backend.check_rate(scope, RATE).await.unwrap() {
        RateOutcome::Limited { retry_after } => retry_after,
        other => panic!("over the burst: {other:?}"),
    };
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(100),
        "{wait:?}"
    );
    // A refusal is not counted: after the wait exactly one more passes.
    tokio::time::sleep(wait + Duration::from_millis(5)).await;
    assert!(matches!(
        backend.check_rate(scope, RATE).await.unwrap(),
        RateOutcome::Allowed { .. }
    ));
    assert!(matches!(
        backend.check_rate(scope, RATE).await.unwrap(),
        RateOutcome::Limited { .. }
    ));
    // Scopes are independent, hash-tag look-alikes included.
    for other in ["rest:user:bob", "rest:user:alice}", "rest:user:{alice}"] {
        assert!(
            matches!(
                backend.check_rate(other, RATE).await.unwrap(),
                RateOutcome::Allowed { remaining: 2 }
            ),
            "{other}"
        );
    }
    // A full bucket again after burst * interval.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        backend.check_rate(scope, RATE).await.unwrap(),
        RateOutcome::Allowed { remaining: 2 }
    );
}

async fn usage_sums_per_window_and_resets(backend: Backend, ctx: &Ctx) {
    let scope = "budget:user:alice";
    let before = backend.usage(scope).await.unwrap();
    assert_eq!(
        before
            .iter()
            .map(|w| (w.window, w.used))
            .collect::<Vec<_>>(),
        [(UsageWindow::Day, 0), (UsageWindow::Minute, 0)]
    );
    backend.add_usage(scope, 10).await.unwrap();
    let after = backend.add_usage(scope, 5).await.unwrap();
    assert_eq!(after, backend.usage(scope).await.unwrap());
    let now = shared::clock::now_millis();
    for window in &after {
        assert_eq!(window.used, 15, "{window:?}");
        assert_eq!(
            window.resets_at_ms % window.window.length_ms(),
            0,
            "aligned"
        );
        if ctx.is_redis() {
            // Memory's clock is paused: its "now" is not the wall clock's.
            let ahead = window.resets_at_ms - now;
            assert!(
                ahead > 0 && ahead <= window.window.length_ms() + 1_000,
                "{window:?}"
            );
        }
    }
    assert_eq!(backend.usage("budget:user:bob").await.unwrap()[0].used, 0);
    if ctx.is_redis() {
        return;
    }
    // Past the minute's end the minute starts over; the day goes on (unless the jump
    // crossed midnight too, when it starts over as well).
    let minute = after[1];
    let day = after[0];
    tokio::time::sleep(Duration::from_secs(61)).await;
    let later = backend.add_usage(scope, 1).await.unwrap();
    assert_eq!(later[1].used, 1, "minute reset");
    assert!(later[1].resets_at_ms > minute.resets_at_ms);
    if later[0].resets_at_ms == day.resets_at_ms {
        assert_eq!(later[0].used, 16, "same day");
    } else {
        assert_eq!(later[0].used, 1, "the jump crossed midnight");
    }
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    let next_day = backend.usage(scope).await.unwrap();
    assert_eq!((next_day[0].used, next_day[1].used), (0, 0), "day reset");
}

fn charge(scope: &str, per_day: Option<u64>) -> Charge {
    Charge {
        scope: scope.into(),
        per_day,
        per_minute: None,
    }
}

/// Accepts `text` charged to `charge`, then begins it: the charge the worker gets.
async fn charged_answer(backend: &Backend, id: &SessionId, charge: Option<&Charge>) -> Work {
    let message = StoredMessage::user("charge me");
    let outcome = backend
        .accept_message(id, &message, &Default::default(), None, ROOMY, charge)
        .await
        .unwrap();
    assert_eq!(outcome, AcceptOutcome::Accepted(message.id));
    let delivery = one_delivery(backend).await;
    let Begin::Work(work) = backend.begin(&delivery, 0).await.unwrap() else {
        panic!("work to do");
    };
    assert_eq!(work.message.id, message.id);
    let done = backend.finish(&delivery, &work, None, &[]).await.unwrap();
    assert_eq!(done, FinishOutcome::Done);
    *work
}

async fn answers_are_charged_to_the_named_scope(backend: Backend, _ctx: &Ctx) {
    let id = session(&backend).await;
    let address = charge("budget:addr:10.0.0.7", Some(10));
    let work = charged_answer(&backend, &id, Some(&address)).await;
    assert_eq!(work.charge.as_ref(), Some(&address));
    assert!(
        !work.announced,
        "a charged answer checks the budget before `typing`"
    );
    backend.add_usage(&address.scope, 7).await.unwrap();
    assert_eq!(
        backend.over_budget(&address).await.unwrap(),
        None,
        "7 of 10"
    );
    backend.add_usage(&address.scope, 3).await.unwrap();
    let exceeded = backend
        .over_budget(&address)
        .await
        .unwrap()
        .expect("10 of 10");
    assert_eq!((exceeded.window, exceeded.limit), (UsageWindow::Day, 10));
    // The latest message's caller pays for what follows, under their own budget.
    let carol = charge("budget:user:carol", None);
    let work = charged_answer(&backend, &id, Some(&carol)).await;
    assert_eq!(work.charge.as_ref(), Some(&carol));
    assert_eq!(backend.over_budget(&carol).await.unwrap(), None, "no limit");
    // A message accepted with no budget is charged to no one.
    let work = charged_answer(&backend, &id, None).await;
    assert_eq!(work.charge, None);
    assert!(work.announced);
    // Charges are the session's own.
    let other = session(&backend).await;
    assert_eq!(charged_answer(&backend, &other, None).await.charge, None);
}

conformance!(
    rates_allow_the_burst_then_the_rate,
    usage_sums_per_window_and_resets,
    answers_are_charged_to_the_named_scope
);
