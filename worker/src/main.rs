//! `worker`: answers messages from the Redis inbox. See the crate docs.

use anyhow::Context;
use clap::Parser;
use shared::backend::Backend;
use shared::config::StoreSettings;
use tokio_util::sync::CancellationToken;
use worker::settings::{ConsumerSettings, LlmSettings};

/// Every answer allocates and frees the prompt, the request body and the stream's
/// buffers; glibc's allocator spent ~11 % of the worker's CPU on them (perf, 1-delta
/// answers), much of it consolidating freed chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Chat gateway worker: consumes the inbox stream and streams LLM answers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Settings {
    #[command(flatten)]
    store: StoreSettings,
    #[command(flatten)]
    llm: LlmSettings,
    #[command(flatten)]
    consumer: ConsumerSettings,
    /// Address of the probe port (`/livez`, `/readyz`).
    #[arg(long, env = "WORKER_HTTP_HOST", default_value = "0.0.0.0")]
    worker_http_host: String,
    /// Probe port; 0 picks a free one.
    #[arg(long, env = "WORKER_HTTP_PORT", default_value_t = 8003)]
    worker_http_port: u16,
    /// Consumer name in the `workers` group (default: host name + random suffix).
    #[arg(long, env = "WORKER_ID")]
    worker_id: Option<String>,
    /// Threads of the async runtime. With 1 every task runs on the main thread: a
    /// worker mostly waits on the model and Redis, and each streamed chunk wakes
    /// several tasks (the HTTP connection, the SSE reader, the answer, the Redis
    /// client), which on one thread costs no cross-thread wake-up. More threads let
    /// one worker use more cores; more workers (KEDA) scale out either way.
    #[arg(long, env = "WORKER_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: u16,
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let runtime = match settings.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        threads => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.into())
            .enable_all()
            .build(),
    }
    .context("starting the async runtime")?;
    runtime.block_on(run(settings))
}

async fn run(mut settings: Settings) -> anyhow::Result<()> {
    if let Err(error) = settings.llm.load_agent() {
        shared::config::exit_on_bad_setting(error);
    }
    if let Err(error) = settings.store.load_tls() {
        shared::config::exit_on_bad_setting(error);
    }
    let telemetry = shared::telemetry::init("chat-worker", "info")
        .unwrap_or_else(|error| shared::config::exit_on_bad_setting(error));
    let served = serve(settings).await;
    // Spans still buffered go out before the process ends (SIGTERM included).
    telemetry.shutdown().await;
    served
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    if settings.store.redis_url.is_none() {
        anyhow::bail!(
            "REDIS_URL is not set: a standalone worker needs Redis (the gateway runs its own worker when embedded)"
        );
    }
    let backend = Backend::connect(&settings.store)
        .await
        .context("connecting to Redis (REDIS_URL)")?;
    let listener = tokio::net::TcpListener::bind((
        settings.worker_http_host.as_str(),
        settings.worker_http_port,
    ))
    .await
    .context("binding WORKER_HTTP_HOST:WORKER_HTTP_PORT")?;
    let name = settings
        .worker_id
        .unwrap_or_else(worker::default_consumer_name);
    tracing::info!(
        consumer = %name,
        probes = %listener.local_addr()?,
        llm = %settings.llm.base_url_for_display(),
        model = %settings.llm.llm_model,
        agent = %settings.llm.agent_name,
        "worker starting"
    );

    let shutdown = CancellationToken::new();
    let consumer = worker::spawn(
        backend.clone(),
        settings.llm,
        settings.consumer,
        name,
        shutdown.clone(),
    )?;
    let probes = tokio::spawn({
        let shutdown = shutdown.clone();
        let app = worker::probes::router(backend, consumer.reading.clone());
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
    });
    shared::shutdown::signal().await;
    tracing::info!("stopping: no new messages; finishing in-flight answers");
    shutdown.cancel();
    consumer.task.await?;
    probes.await??;
    Ok(())
}
