//! `gateway`: see the crate docs. With no `REDIS_URL` it runs embedded.

use anyhow::Context;
use gateway::{Application, Settings};
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
    let app = Application::build(settings, shutdown.clone())
        .await
        .context("starting the gateway")?;
    tokio::spawn(async move {
        shared::shutdown::signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await.context("serving")?;
    Ok(())
}
