//! The emulator on a loopback port: hyper's HTTP/1 server on a tokio runtime
//! of its own. The emulator's work is synchronous; it runs on the runtime's
//! blocking pool, so a slow request never holds up the others. A lost
//! answer (a timeout or reset fault) closes the connection without a
//! response, as a network fault does: the client sees the connection end,
//! or (a timeout) waits first.

use crate::faults::{Fault, Outcome};
use crate::{Emulator, Reply};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Bodies beyond this are refused (Stripe's own limit is far lower).
const MAX_BODY: usize = 1 << 20;

/// How long a "timeout" fault holds the connection before dropping it, by
/// default: longer than Stripe's SDKs wait (30 s). A client with a shorter
/// timeout can be matched with `hold_timeouts_for`.
const TIMEOUT_HOLD: Duration = Duration::from_secs(35);

/// A running emulator; dropping it stops the server.
pub struct RunningEmulator {
    pub emulator: Emulator,
    pub base_url: String,
    hold: Arc<Mutex<Duration>>,
    stop: Option<oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunningEmulator {
    pub fn start(emulator: Emulator, listen: &str) -> Result<Self, String> {
        let fail = |e: std::io::Error| format!("emulator: {e}");
        let listener = std::net::TcpListener::bind(listen).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let base_url = format!("http://{}", listener.local_addr().map_err(fail)?);
        emulator.set_public_base(&base_url);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stripe-emulator")
            .enable_all()
            .build()
            .map_err(fail)?;
        let listener = {
            let _in_runtime = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(fail)?
        };
        let hold = Arc::new(Mutex::new(TIMEOUT_HOLD));
        let (stop, stopped) = oneshot::channel();
        runtime.spawn(accept(listener, emulator.clone(), hold.clone(), stopped));
        Ok(Self {
            emulator,
            base_url,
            hold,
            stop: Some(stop),
            runtime: Some(runtime),
        })
    }

    /// How long a timeout fault keeps the client waiting.
    pub fn hold_timeouts_for(&self, hold: Duration) {
        *crate::lock(&self.hold) = hold;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Accepts connections until told to stop; each is served on its own task.
async fn accept(
    listener: tokio::net::TcpListener,
    emulator: Emulator,
    hold: Arc<Mutex<Duration>>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        // Small answers go out at once, not after the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let (emulator, hold) = (emulator.clone(), hold.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, emulator.clone(), hold.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The answer was lost: hyper closes the connection without a response.
#[derive(Debug)]
struct Lost(Fault);

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "answer lost ({})", self.0.name())
    }
}

impl std::error::Error for Lost {}

async fn answer(
    req: hyper::Request<Incoming>,
    emulator: Emulator,
    hold: Arc<Mutex<Duration>>,
) -> Result<hyper::Response<Full<Bytes>>, Lost> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let refused = crate::error::invalid(None, "The request body could not be read.", None);
            return Ok(response(refused));
        }
    };
    let method = parts.method.as_str().to_string();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), v)
        })
        .collect();
    let outcome =
        tokio::task::spawn_blocking(move || emulator.exchange(&method, &target, &headers, &body))
            .await
            .map_err(|_| Lost(Fault::ServerError))?;
    match outcome {
        Outcome::Answer(reply) => Ok(response(reply)),
        Outcome::Lost(fault) => {
            if fault == Fault::Timeout {
                let hold = *crate::lock(&hold);
                tokio::time::sleep(hold).await;
            }
            Err(Lost(fault))
        }
    }
}

fn response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| {
            let mut broken = hyper::Response::new(Full::new(Bytes::new()));
            *broken.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            broken
        })
}
