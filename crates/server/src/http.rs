//! The connection loop: HTTP/1.1 with a header-read timeout that also closes kept-alive
//! connections left idle, so slow or silent clients cannot hold connections forever (nor more
//! of them than the connection limits allow, nor much memory with unfinished headers), and a
//! graceful stop: on the stop signal `/ready` turns 503 and new requests get 503 (so a load
//! balancer moves on) while those in flight finish, up to the shutdown timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use axum::Extension;

use crate::connections::ConnectionLimits;
use crate::tls::TlsAcceptor;
use crate::{router, App, ClientAddr};

/// The most a connection may buffer of a request's head (its request line and headers):
/// hyper's default, about 400 KB, would let 1000 unfinished requests hold 400 MB.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// How often the drain looks whether requests are still in flight.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// How long requests cut at the shutdown timeout have to send their error and audit entry.
const CUT_GRACE: Duration = Duration::from_secs(2);

/// Serve `app` on `listener` (over TLS when given an acceptor) until `stop` completes, then
/// drain.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    stop: impl Future<Output = ()>,
) {
    let config = app.config.clone();
    let routes = router(app.clone());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let limits = ConnectionLimits::new(config.max_connections, config.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    let mut drain_until: Option<Instant> = None;
    let mut cut = false;
    let mut drain_tick = tokio::time::interval(DRAIN_POLL);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer, admitted) = match accepted {
                    // Over a limit: closed at once (dropped).
                    Ok((stream, peer)) => match limits.admit(peer.ip()) {
                        Some(admitted) => (stream, peer, admitted),
                        None => continue,
                    },
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(routes.clone().layer(Extension(ClientAddr(peer.ip()))));
                let (builder, watcher) = (builder.clone(), graceful.watcher());
                let handshake_timeout = config.header_timeout;
                let tls = tls.clone();
                // Errors here are a client's broken connection or handshake: nothing to answer.
                tokio::spawn(async move {
                    let _admitted = admitted;
                    match tls {
                        None => {
                            let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                        }
                        Some(tls) => {
                            let Ok(Ok(stream)) = tokio::time::timeout(handshake_timeout, tls.accept(stream)).await else {
                                return;
                            };
                            let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                        }
                    }
                });
            }
            () = &mut stop, if drain_until.is_none() => {
                app.stop_accepting();
                tracing::info!(in_flight = app.requests_in_flight(), "stopping: finishing requests in flight");
                drain_until = Some(Instant::now() + config.shutdown_timeout);
            }
            _ = drain_tick.tick(), if drain_until.is_some() => {
                if app.requests_in_flight() == 0 {
                    break;
                }
                if drain_until.is_some_and(|t| Instant::now() >= t) {
                    if cut {
                        break;
                    }
                    tracing::warn!(
                        in_flight = app.requests_in_flight(),
                        timeout_s = config.shutdown_timeout.as_secs(),
                        "requests still running at the shutdown timeout; ending them"
                    );
                    // They end with an error to their clients and an audit entry each.
                    app.cut_requests();
                    cut = true;
                    drain_until = Some(Instant::now() + CUT_GRACE);
                }
            }
        }
    }
    drop(listener);
    // What is left are idle kept-alive connections (or requests past the timeout).
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}
