//! Token budgets: how many LLM tokens (prompt + completion) one user, or one client
//! address without a token, may spend per UTC day and per minute, over every pod
//! (`BUDGET_TOKENS_PER_DAY`, `BUDGET_TOKENS_PER_MINUTE`; a token's own budget may
//! replace them through the claim `JWT_BUDGET_CLAIM` names).
//!
//! The check is made when a message arrives, before it is queued, so a refused message
//! never reaches the model: `budget_exceeded` with the time until the used-up window
//! resets. Tokens are known only once an answer is done, so the answer that crosses
//! the budget finishes (never cut mid-sentence) and the next message is refused. The
//! gateway names the payer and its budget with the message (`Backend::accept_message`);
//! the worker checks that budget again before it calls the model, so messages queued
//! before the budget ran out are refused too (a `budget_exceeded` error event of the
//! session), and charges each answer's tokens to the payer (`Backend::add_usage`).

use crate::auth::jwt::ClaimedBudget;
use crate::limits::rest::RateKey;
use shared::backend::{Backend, Charge, Exceeded, StoreError, UsageWindow, WindowUsage};

/// Tokens allowed per window; `None`: no limit in that window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    pub per_day: Option<u64>,
    pub per_minute: Option<u64>,
}

impl Budget {
    pub fn is_unlimited(&self) -> bool {
        self.per_day.is_none() && self.per_minute.is_none()
    }

    pub fn limit(&self, window: UsageWindow) -> Option<u64> {
        match window {
            UsageWindow::Day => self.per_day,
            UsageWindow::Minute => self.per_minute,
        }
    }

    /// A caller's budget: what its token claims, window by window, else this one.
    pub fn for_caller(self, claimed: Option<&ClaimedBudget>) -> Self {
        let Some(claimed) = claimed else {
            return self;
        };
        Self {
            per_day: claimed.tokens_per_day.or(self.per_day),
            per_minute: claimed.tokens_per_minute.or(self.per_minute),
        }
    }
}

impl Budget {
    /// What the session of a message from `payer` is charged to (`Backend::accept_message`):
    /// the worker checks it again before calling the model.
    pub fn charge(self, payer: &RateKey) -> Charge {
        Charge {
            scope: scope(payer),
            per_day: self.per_day,
            per_minute: self.per_minute,
        }
    }
}

/// The store scope a payer's tokens are summed under.
pub fn scope(payer: &RateKey) -> String {
    payer.scope("budget")
}

/// The windows `budget` limits, with what `payer` used in each.
pub async fn usage(
    backend: &Backend,
    payer: &RateKey,
    budget: Budget,
) -> Result<Vec<(WindowUsage, u64)>, StoreError> {
    if budget.is_unlimited() {
        return Ok(Vec::new());
    }
    let used = backend.usage(&scope(payer)).await?;
    Ok(used
        .into_iter()
        .filter_map(|w| budget.limit(w.window).map(|limit| (w, limit)))
        .collect())
}

/// The first window `payer` has used up, if any (the longest, whose wait is longest).
pub async fn check(
    backend: &Backend,
    payer: &RateKey,
    budget: Budget,
) -> Result<Option<Exceeded>, StoreError> {
    let used = backend.usage(&scope(payer)).await?;
    let exceeded = budget.charge(payer).exceeded(&used);
    shared::metrics::limit_checked(
        "budget",
        if exceeded.is_some() {
            "refused"
        } else {
            "allowed"
        },
    );
    Ok(exceeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_budget_replaces_the_default_window_by_window() {
        let default = Budget {
            per_day: Some(1_000),
            per_minute: Some(100),
        };
        assert_eq!(default.for_caller(None), default);
        let claimed = ClaimedBudget {
            tokens_per_day: Some(50_000),
            tokens_per_minute: None,
        };
        assert_eq!(
            default.for_caller(Some(&claimed)),
            Budget {
                per_day: Some(50_000),
                per_minute: Some(100)
            }
        );
        assert!(Budget::default().is_unlimited());
        assert!(!Budget::default().for_caller(Some(&claimed)).is_unlimited());
    }
}
