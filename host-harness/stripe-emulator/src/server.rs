//! The emulator on a loopback port (tiny_http: small and synchronous, which
//! suits a test double that answers one request at a time).

use crate::faults::{Fault, Outcome};
use crate::{Emulator, Reply};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// Bodies beyond this are refused (Stripe's own limit is far lower).
const MAX_BODY: u64 = 1 << 20;

/// How long a "timeout" fault holds the connection before dropping it, by
/// default: longer than Stripe's SDKs wait (30 s). A client with a shorter
/// timeout can be matched with `hold_timeouts_for`.
const TIMEOUT_HOLD: Duration = Duration::from_secs(35);

/// A running emulator; dropping it stops the server.
pub struct RunningEmulator {
    pub emulator: Emulator,
    pub base_url: String,
    server: Arc<tiny_http::Server>,
    hold: Arc<std::sync::Mutex<Duration>>,
}

impl RunningEmulator {
    pub fn start(emulator: Emulator, listen: &str) -> Result<Self, String> {
        let server = Arc::new(
            tiny_http::Server::from_listener(listener_without_nagle(listen)?, None)
                .map_err(|e| format!("emulator: {e}"))?,
        );
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| "emulator: not an IP address".to_string())?;
        let base_url = format!("http://{addr}");
        emulator.set_public_base(&base_url);
        let hold = Arc::new(std::sync::Mutex::new(TIMEOUT_HOLD));
        for _ in 0..8 {
            let (server, emulator, hold) = (server.clone(), emulator.clone(), hold.clone());
            std::thread::spawn(move || serve(&server, &emulator, &hold));
        }
        Ok(Self {
            emulator,
            base_url,
            server,
            hold,
        })
    }

    /// How long a timeout fault keeps the client waiting.
    pub fn hold_timeouts_for(&self, hold: Duration) {
        *crate::lock(&self.hold) = hold;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn serve(server: &tiny_http::Server, emulator: &Emulator, hold: &std::sync::Mutex<Duration>) {
    while let Ok(mut req) = server.recv() {
        let method = req.method().as_str().to_string();
        let target = req.url().to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_string(),
                    h.value.as_str().to_string(),
                )
            })
            .collect();
        let mut body = Vec::new();
        let read = req.as_reader().take(MAX_BODY + 1).read_to_end(&mut body);
        let outcome = if read.is_err() || body.len() as u64 > MAX_BODY {
            Outcome::Answer(crate::error::invalid(
                None,
                "The request body could not be read.",
                None,
            ))
        } else {
            emulator.exchange(&method, &target, &headers, &body)
        };
        match outcome {
            Outcome::Answer(reply) => respond(req, reply),
            Outcome::Lost(fault) => {
                if fault == Fault::Timeout {
                    let hold = *crate::lock(hold);
                    std::thread::sleep(hold);
                }
                // No answer at all: the connection is left without a response.
                drop(req.into_writer());
            }
        }
    }
}

fn respond(req: tiny_http::Request, reply: Reply) {
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    for (k, v) in reply.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = req.respond(response);
}

/// A listener whose accepted sockets send at once (TCP_NODELAY, which Linux
/// accepted sockets inherit). tiny_http writes a response's head and body
/// separately: with Nagle's algorithm the body waited for the client's
/// delayed ACK, about 40 ms per request.
pub fn listener_without_nagle(listen: &str) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(listen).map_err(|e| format!("emulator: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and an int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(format!(
                "emulator: TCP_NODELAY: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(listener)
}
