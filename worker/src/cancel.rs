//! Cancellation of generations running in this process: each answer registers a
//! token under its message id; cancel requests from the bus fire it.

use shared::backend::Backend;
use shared::ids::MessageId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Tokens of the answers running here, by message.
#[derive(Clone, Default)]
pub struct CancelRegistry {
    tokens: Arc<Mutex<HashMap<MessageId, CancellationToken>>>,
}

impl CancelRegistry {
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, CancellationToken>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, message_id: MessageId) -> CancellationToken {
        let token = CancellationToken::new();
        self.tokens().insert(message_id, token.clone());
        token
    }

    pub fn unregister(&self, message_id: MessageId) {
        self.tokens().remove(&message_id);
    }

    /// Fires the token of `message_id` if it runs here; true when it did.
    pub fn cancel(&self, message_id: MessageId) -> bool {
        match self.tokens().get(&message_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Listens to cancel requests until `shutdown`. If the subscription cannot be made,
    /// cancels still take effect at the answer's next publish (the store refuses it).
    pub async fn listen(self, backend: Backend, shutdown: CancellationToken) {
        let mut requests = match backend.cancel_requests().await {
            Ok(requests) => requests,
            Err(error) => {
                tracing::warn!(%error, "no cancel subscription; cancels apply at the next chunk");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                request = requests.recv() => match request {
                    Some(request) => {
                        if self.cancel(request.message_id) {
                            tracing::info!(session_id = %request.session_id, "generation cancelled");
                        }
                    }
                    None => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_only_registered_tokens() {
        let registry = CancelRegistry::default();
        let id = MessageId::new_random();
        let token = registry.register(id);
        assert!(!registry.cancel(MessageId::new_random()));
        assert!(registry.cancel(id));
        assert!(token.is_cancelled());
        registry.unregister(id);
        assert!(!registry.cancel(id));
    }
}
