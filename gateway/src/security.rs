//! The protections of a deployment, built once from its settings: token verification
//! (`auth`), the trusted proxies that reveal client addresses, the allowed origins and
//! the instance's socket cap (`limits`). Built once, by `startup`, after logging is up
//! (so its warnings are logged); building it is also the start-up check of their
//! settings: a bad value or combination is a [`ConfigError`] naming the variable.
//! It depends on `settings`, never the reverse: settings are plain data.

use crate::auth::jwt::Verifier;
use crate::config_error::ConfigError;
use crate::limits::budget::Budget;
use crate::limits::client_ip::TrustedProxies;
use crate::limits::origin::OriginPolicy;
use crate::limits::settings::ProtectionSettings;
use crate::limits::sockets::{ConnectionCap, SlotKeeper};
use crate::settings::Settings;
use crate::socket_url::SocketUrls;

/// What stands between a stranger and the bill; one per instance, shared by `AppState`.
pub struct Security {
    /// `None`: authentication is off.
    pub verifier: Option<Verifier>,
    pub trusted_proxies: TrustedProxies,
    pub origins: OriginPolicy,
    pub connections: ConnectionCap,
    pub settings: ProtectionSettings,
    /// The sockets' slot upkeep (refresh, then release when the socket ends); a
    /// stopping instance waits for it so its sockets' slots are freed, not left to lapse.
    pub slots: SlotKeeper,
    /// The configured token budget (`BUDGET_TOKENS_PER_*`), before a token's own claim.
    pub budget: Budget,
    /// What `websocket_url` is built from (`PUBLIC_URL`, checked at start-up).
    pub socket_urls: SocketUrls,
}

impl Security {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let verifier = settings
            .auth
            .verifier(settings.limits.max_user_id_chars as usize)?;
        let protection = &settings.protection;
        let trusted_proxies = TrustedProxies::parse(
            protection.trusted_proxies.as_deref(),
            protection.client_ip_header,
        )?;
        let origins =
            OriginPolicy::parse(settings.cors_allowed_origins.as_deref(), verifier.is_some())?;
        if verifier.is_some() && origins.allows_any() {
            tracing::warn!(
                "CORS_ALLOWED_ORIGINS=* with authentication on: any web page may call the API and open sockets with a token it holds"
            );
        }
        Ok(Self {
            verifier,
            trusted_proxies,
            origins,
            connections: ConnectionCap::new(protection.max_connections),
            settings: protection.clone(),
            slots: SlotKeeper::default(),
            budget: protection.budget(),
            socket_urls: SocketUrls::parse(settings.public_url.as_deref())?,
        })
    }

    pub fn auth_enabled(&self) -> bool {
        self.verifier.is_some()
    }
}
