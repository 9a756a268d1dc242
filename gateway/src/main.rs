//! `gateway`: see the crate docs. With no `REDIS_URL` it runs embedded.

use anyhow::Context;
use gateway::{Application, Settings, StartError};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env();
    let telemetry = shared::telemetry::init("chat-gateway", "info")
        .unwrap_or_else(|error| shared::config::exit_on_bad_setting(error));
    let served = serve(settings).await;
    // Spans still buffered go out before the process ends (SIGTERM included).
    telemetry.shutdown().await;
    served
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let app = match Application::build(settings, shutdown.clone()).await {
        Ok(app) => app,
        // A bad setting ends the process the way a bad flag does: one line, exit 2.
        Err(StartError::Config(error)) => shared::config::exit_on_bad_setting(error),
        Err(error) => return Err(error).context("starting the gateway"),
    };
    tokio::spawn(async move {
        shared::shutdown::signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await.context("serving")?;
    Ok(())
}
