//! The accept loop: HTTP/1.1 with upgrades (WebSockets), served by hyper directly so
//! every connection has a header-read deadline.
//!
//! `axum::serve` sets none, so a client that trickles a request's headers (or a
//! socket's handshake) byte by byte holds a connection forever (slowloris). Here hyper's
//! `header_read_timeout` drops it after `HTTP_HEADER_READ_TIMEOUT_SECS`, which also
//! bounds how long an idle keep-alive connection is kept. hyper-util's version-sniffing
//! "auto" builder is not used: it reads the first bytes (to detect an HTTP/2 preface)
//! with no deadline at all, which is the same hole one step earlier; HTTP/2 in clear
//! text was never used by either client (TLS ends at the ingress).
//!
//! Each accepted connection gets a bounded kernel send buffer (`SO_SNDBUF`,
//! `TCP_SEND_BUFFER_BYTES`): with autotuning a client that never reads pinned up to
//! ~4 MB of kernel memory per connection before the slow-client close (1013); now
//! what it can hold is this buffer plus the socket's bounded write buffer.
//!
//! Stopping: when the token fires the listener closes, idle connections close, each
//! busy one after its current response, and [`serve`] returns once all have; upgraded
//! sockets are not connections any more and close themselves (1012) on the same token.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    pub header_read_timeout: Duration,
    /// `SO_SNDBUF` of every connection; `None`: the kernel's default.
    pub send_buffer_bytes: Option<u32>,
}

/// Serves `router` on `listener` until `shutdown` fires and every connection is done.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServerOptions,
    shutdown: CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if let Some(bytes) = options.send_buffer_bytes
            && let Err(error) = socket2::SockRef::from(&stream).set_send_buffer_size(bytes as usize)
        {
            tracing::warn!(%error, "could not set the connection's send buffer");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = outcome {
                // Timeouts, resets and bad requests: the client's business.
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
