//! `echo-baseline`: the bare axum WebSocket echo the benchmarks compare the gateway
//! with: same axum and tungstenite, the same 4 KiB socket buffers and TCP settings,
//! and nothing else (no store, no hub, no JSON). Text and binary frames come back as
//! they came.
//!
//! Prints exactly one line to stdout, `echo-baseline listening on http://ADDR`, once
//! bound (`--port 0` picks a free port). Stops on SIGINT or SIGTERM.

use std::io::Write;

use anyhow::Context;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use clap::Parser;
use tokio::net::TcpListener;

/// Bare WebSocket echo (the benchmarks' baseline).
#[derive(Debug, Clone, Parser)]
#[command(name = "echo-baseline", version, about)]
struct Settings {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Read and write buffer of each socket, in bytes (the gateway's `WS_BUFFER_BYTES`).
    #[arg(long, default_value_t = 4096)]
    buffer_bytes: usize,
    /// Largest message, in bytes (the gateway's `WS_MAX_MESSAGE_BYTES`).
    #[arg(long, default_value_t = 65_536)]
    max_message_bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    let listener = TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
    let addr = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "echo-baseline listening on http://{addr}")?;
        stdout.flush()?;
    }
    let app = Router::new()
        .route("/ws/{id}", get(upgrade))
        .with_state(settings);
    // The same TCP setting as the gateway: no Nagle delay on small frames.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn upgrade(
    State(settings): State<Settings>,
    Path(_id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let bytes = settings.buffer_bytes;
    ws.max_message_size(settings.max_message_bytes)
        .max_frame_size(settings.max_message_bytes)
        .read_buffer_size(bytes)
        .write_buffer_size(bytes)
        .max_write_buffer_size(bytes.max(settings.max_message_bytes) * 4)
        .on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if socket.send(message).await.is_err() {
                    return;
                }
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
