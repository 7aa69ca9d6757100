//! Serving a router on a TCP listener, with the limits a public door needs and `axum::serve`
//! cannot set: a deadline for request headers, an idle deadline for kept-alive connections, a
//! cap on connections served at once, the client's address for rate limits, WebSocket upgrades,
//! and a graceful stop that lets in-flight requests finish.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::{debug, warn};

use crate::config::ListenConfig;

/// How connections on one listener are treated.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: std::time::Duration,
    pub max_connections: usize,
    /// `SO_SNDBUF` of every accepted connection, when set.
    pub send_buffer: Option<usize>,
}

impl ConnectionLimits {
    pub fn of(config: &ListenConfig) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections.max(1),
            send_buffer: None,
        }
    }
}

/// Serves `router` on `listener` until `stop` fires, then stops accepting and waits for the open
/// connections to finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        // A full house waits here, leaving further clients in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            () = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors, a connection reset before accept: the
                    // listener itself is fine; pause a moment rather than spin.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        if let Some(bytes) = limits.send_buffer
            && let Err(error) = socket2::SockRef::from(&stream).set_send_buffer_size(bytes)
        {
            warn!(%error, "cannot set the send buffer size");
        }
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = tower::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let started = Instant::now();
        let last_read = Arc::new(AtomicU64::new(0));
        let watched = Watched {
            inner: stream,
            started,
            last_read: last_read.clone(),
        };
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(watched),
                TowerToHyperService::new(service),
            )
            .into_owned();
        let (stop, idle) = (stop.clone(), limits.header_read_timeout);
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            // Ended by the client, by the service's stop, or by a client silent for `idle` (which
            // only closes between requests: a request in flight is finished first).
            let mut closing = false;
            loop {
                let silent_since =
                    started + std::time::Duration::from_millis(last_read.load(Ordering::Relaxed));
                let deadline = tokio::time::Instant::from_std(silent_since + idle);
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(error) = ended {
                            debug!(%peer, error = %error, "connection ended with an error");
                        }
                        break;
                    }
                    () = stop.cancelled(), if !closing => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    () = tokio::time::sleep_until(deadline), if !closing => {
                        if Instant::now().duration_since(silent_since) >= idle {
                            closing = true;
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    // Every connection holds a slot until it ends: holding them all means all have ended.
    let _all = slots
        .acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// A connection's stream that notes when the client last sent anything.
struct Watched {
    inner: tokio::net::TcpStream,
    started: Instant,
    /// Milliseconds after `started`.
    last_read: Arc<AtomicU64>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_read.store(elapsed, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The client's address as the listener saw it (the peer of the TCP connection).
pub fn peer(request: &axum::http::request::Parts) -> Option<SocketAddr> {
    request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
