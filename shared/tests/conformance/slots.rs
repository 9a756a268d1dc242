//! Conformance of the bounded holder sets (`backend::counters`): the cross-pod
//! "at most N sockets / sessions per user" counters. Same cases on Redis (real time)
//! and memory (paused clock), like every other case of the suite.

use crate::helpers::*;
use shared::backend::{Backend, SlotOutcome};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(60);

async fn slots_hold_at_most_the_limit(backend: Backend, _ctx: &Ctx) {
    let scope = "sockets:user:alice";
    assert_eq!(backend.slots_held(scope).await.unwrap(), 0);
    let acquire = |holder: &'static str| backend.acquire_slot(scope, holder, 2, TTL);
    assert_eq!(
        acquire("s1").await.unwrap(),
        SlotOutcome::Acquired { held: 1 }
    );
    assert_eq!(
        acquire("s2").await.unwrap(),
        SlotOutcome::Acquired { held: 2 }
    );
    assert_eq!(acquire("s3").await.unwrap(), SlotOutcome::Full { held: 2 });
    // A holder that has a slot keeps it when it asks again, even at the limit.
    assert_eq!(
        acquire("s1").await.unwrap(),
        SlotOutcome::Acquired { held: 2 }
    );
    assert_eq!(backend.slots_held(scope).await.unwrap(), 2);

    backend.release_slot(scope, "s1").await.unwrap();
    backend.release_slot(scope, "never-held").await.unwrap();
    assert_eq!(backend.slots_held(scope).await.unwrap(), 1);
    assert_eq!(
        acquire("s3").await.unwrap(),
        SlotOutcome::Acquired { held: 2 }
    );
    assert!(
        !backend.refresh_slot(scope, "s1", TTL).await.unwrap(),
        "released"
    );

    // Scopes are independent, including ones that look like hash-tag escapes.
    for other in [
        "sockets:user:bob",
        "sockets:user:alice}",
        "sockets:user:{alice}",
    ] {
        assert_eq!(backend.slots_held(other).await.unwrap(), 0, "{other}");
        assert_eq!(
            backend.acquire_slot(other, "s1", 1, TTL).await.unwrap(),
            SlotOutcome::Acquired { held: 1 },
            "{other}"
        );
    }
    assert_eq!(backend.slots_held(scope).await.unwrap(), 2);

    // Releasing everything leaves nothing behind.
    backend.release_slot(scope, "s2").await.unwrap();
    backend.release_slot(scope, "s3").await.unwrap();
    assert_eq!(backend.slots_held(scope).await.unwrap(), 0);
}

/// The crash case: a holder that stops refreshing (its pod died) loses its slot after
/// the TTL, so a user is never locked out for longer than that. Real seconds on Redis,
/// virtual ones on memory: TTL 2 s, `live` refreshed at 1.0 s.
async fn unrefreshed_slots_lapse(backend: Backend, _ctx: &Ctx) {
    let scope = "sessions:user:carol";
    let ttl = Duration::from_secs(2);
    for holder in ["live", "crashed"] {
        let outcome = backend.acquire_slot(scope, holder, 2, ttl).await.unwrap();
        assert!(
            matches!(outcome, SlotOutcome::Acquired { .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(
        backend.acquire_slot(scope, "new", 2, ttl).await.unwrap(),
        SlotOutcome::Full { held: 2 }
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(backend.refresh_slot(scope, "live", ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_400)).await;
    assert_eq!(
        backend.slots_held(scope).await.unwrap(),
        1,
        "crashed lapsed"
    );
    assert!(!backend.refresh_slot(scope, "crashed", ttl).await.unwrap());
    assert_eq!(
        backend.acquire_slot(scope, "new", 2, ttl).await.unwrap(),
        SlotOutcome::Acquired { held: 2 }
    );
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(backend.slots_held(scope).await.unwrap(), 0, "all lapsed");
}

conformance!(slots_hold_at_most_the_limit, unrefreshed_slots_lapse);
