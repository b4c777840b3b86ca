//! serve's HTTP stack: axum's router on hyper (tokio), a maintained,
//! production-grade server. tiny_http, before it, aborted the whole process
//! on one request declaring `Content-Length: 99999999999` (it allocated the
//! declared length to drain the body). Here a body over the limit is refused
//! with 413 from its declared length, before anything is read; a request
//! must finish within a timeout; hyper answers malformed requests (bad
//! chunking, oversized headers, a TLS hello) with 4xx or closes the
//! connection. The App is blocking (wasm calls, SQLite): each request runs
//! on tokio's blocking pool, never on the async workers.
//!
//! The accept loop is ours rather than `axum::serve`, which gives hyper no
//! timer, so that its header-read timeout never fired (security review
//! S9): a client that never finishes its headers is closed after
//! `HEADER_READ_TIMEOUT`; at most `MAX_CONNECTIONS` are open per listener
//! (one more is closed at once); and a request that would wait behind more
//! than `MAX_PENDING` others for the App is answered 503 with `Retry-After`
//! at once, instead of queueing without bound.

use crate::access::{self, Door};
use crate::app::{App, Doorway, MAX_BODY, Reply};
use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a request may take, body included, before it is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once on one listener.
pub const MAX_CONNECTIONS: usize = 1024;

/// Requests waiting for, or in, the App per blocking thread.
const PENDING_PER_THREAD: usize = 16;

/// When serve stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// On SIGTERM or Ctrl-C: stop accepting, finish the calls in flight, exit
    /// (the `serve` command).
    OnSignal,
    /// When the `RunningServer` is dropped (the demo and tests).
    OnDrop,
}

/// A running `serve` on a loopback port.
pub struct RunningServer {
    pub base_url: String,
    pub addr: std::net::SocketAddr,
    listener: Mutex<Option<std::net::TcpListener>>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl RunningServer {
    /// Binds first, so that the address is known before the app is built.
    pub fn bind(listen: &str) -> Result<Self> {
        let listener =
            std::net::TcpListener::bind(listen).with_context(|| format!("listen on {listen}"))?;
        let addr = listener.local_addr()?;
        Ok(Self {
            addr,
            base_url: format!("http://{addr}"),
            listener: Mutex::new(Some(listener)),
            stop: Mutex::new(None),
            thread: Mutex::new(None),
        })
    }

    /// Serves `app` on its own tokio runtime, with up to `blocking` calls of
    /// the App at once, as the `door` listener: the public one, or the
    /// platform's, which answers to `hosts` (none: its own address).
    pub fn run(
        &self,
        app: Arc<App>,
        blocking: usize,
        shutdown: Shutdown,
        door: Door,
        hosts: &[String],
    ) -> Result<()> {
        let hosts = if hosts.is_empty() {
            access::default_hosts(self.addr)
        } else {
            hosts.to_vec()
        };
        let doorway = Arc::new(Doorway { door, hosts });
        let pending = Arc::new(tokio::sync::Semaphore::new(
            blocking.max(1) * PENDING_PER_THREAD,
        ));
        let listener = lock(&self.listener)
            .take()
            .context("this server is already running")?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(blocking.max(1))
            .enable_all()
            .build()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        *lock(&self.stop) = Some(tx);
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    tracing::error!("could not listen");
                    return;
                };
                let stopped = async move {
                    match shutdown {
                        Shutdown::OnSignal => signalled().await,
                        Shutdown::OnDrop => drop(rx.await),
                    }
                };
                let state = Served {
                    app,
                    doorway,
                    pending,
                };
                accept_loop(listener, router(state), stopped).await;
            });
        });
        *lock(&self.thread) = Some(thread);
        Ok(())
    }

    /// Waits until the server has stopped (after SIGTERM, with the calls in
    /// flight finished).
    pub fn wait(&self) {
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = lock(&self.stop).take() {
            let _ = tx.send(());
        }
        self.wait();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// SIGTERM, or Ctrl-C.
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => drop(tokio::signal::ctrl_c().await),
        }
    }
    #[cfg(not(unix))]
    drop(tokio::signal::ctrl_c().await);
    tracing::info!("shutting down: no new connections; finishing the calls in flight");
}

/// Accepts connections until `stopped`, each served by hyper with a timer
/// (the header-read timeout holds), at most `MAX_CONNECTIONS` at once; then
/// lets the calls in flight finish.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    stopped: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stopped);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, most likely: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("connection cap reached; a new connection closed");
            continue;
        };
        // Responses go out at once (TCP_NODELAY), not after a delayed ACK.
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let conn =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    // The calls in flight finish; a connection still open after the
    // longest request could take is not waited for.
    if tokio::time::timeout(REQUEST_TIMEOUT + HEADER_READ_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown were dropped");
    }
}

/// What each request's handler is given: the App, its listener, and the
/// room left for requests waiting on the App.
#[derive(Clone)]
struct Served {
    app: Arc<App>,
    doorway: Arc<Doorway>,
    pending: Arc<tokio::sync::Semaphore>,
}

fn router(state: Served) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY as usize))
        // A declared length over the limit is refused at once, unread.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY as usize,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
}

/// Every route: the body read within its limit, then the App on the
/// blocking pool.
async fn handle(
    State(Served {
        app,
        doorway,
        pending,
    }): State<Served>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    let Ok(waiting) = pending.try_acquire_owned() else {
        // The App is saturated: say so now rather than queue without bound.
        let mut busy = Reply::error(503, "busy; try again shortly", true);
        busy.headers.push(("Retry-After".into(), "1".into()));
        return to_response(busy);
    };
    let reply = tokio::task::spawn_blocking(move || {
        let reply = app.handle_at(&doorway, method.as_str(), &target, &headers, &body);
        drop(waiting);
        reply
    })
    .await
    .unwrap_or_else(|_| Reply::error(500, "the call failed", true));
    to_response(reply)
}

fn to_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}
