//! The error of a setting that cannot work, shared by every module that checks settings
//! at start-up (auth, limits, socket URLs). A leaf module: it imports none of them, so
//! none of them has to import another to report a bad value.

use thiserror::Error;

/// A setting that cannot work; the message starts with the variable's name.
#[derive(Debug, Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable,
            message: message.into(),
        }
    }
}
