//! The one place the host meets the Stripe emulator: its HTTP import can
//! carry requests to an in-process emulator (deterministic tests and the
//! offline demo), with the emulator's faults mapped to the contract's errors.

use crate::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
use crate::imports::{Clock, HttpBackend};
use stripe_emulator::Emulator;
use stripe_emulator::faults::{Fault, Outcome};

/// The emulator's clock follows the host's (tests move both at once).
pub fn emulator_clock(clock: &Clock) -> stripe_emulator::Clock {
    let clock = clock.clone();
    stripe_emulator::Clock::from_fn(move || clock.now_ms())
}

/// An emulator on the host's clock.
pub fn emulator(clock: &Clock) -> Emulator {
    Emulator::new(emulator_clock(clock))
}

/// Carries the plugin's requests to an in-process emulator.
pub struct InProcess(pub Emulator);

impl HttpBackend for InProcess {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let url = url::Url::parse(&req.url).map_err(|e| HttpError::Other(e.to_string()))?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        match self
            .0
            .exchange(req.method.as_str(), &target, &req.headers, &req.body)
        {
            Outcome::Answer(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Outcome::Lost(Fault::Reset) => {
                Err(HttpError::Connection("connection reset by peer".into()))
            }
            Outcome::Lost(_) => Err(HttpError::Timeout),
        }
    }
}
