//! The one shared state of the app: cheap handles only.

use crate::security::Security;
use crate::settings::Settings;
use crate::ws::hub::Hub;
use shared::backend::Backend;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub backend: Backend,
    pub hub: Hub,
    /// This instance's name in `/status` (host name + random suffix).
    pub instance: Arc<str>,
    /// Cancelled when the instance stops: sockets close with 1012.
    pub shutdown: CancellationToken,
    /// Token verification, trusted proxies, origins, the socket cap.
    pub security: Arc<Security>,
}
