//! The emulator over loopback, as `serve` workers reach it: many keep-alive
//! clients at once, every request answered; a request with no answer (a
//! timeout or reset fault) closes its connection without a response.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use stripe_emulator::server::RunningEmulator;
use stripe_emulator::{Clock, Emulator};

const ACCOUNT: &str = "acct_ServerTest";

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

fn create_customer(agent: &ureq::Agent, base: &str) -> Result<u16, ureq::Error> {
    agent
        .post(format!("{base}/v1/customers"))
        .header("Authorization", "Bearer sk_test_server_fake")
        .header("Stripe-Account", ACCOUNT)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("name=Keep+Alive")
        .map(|r| r.status().as_u16())
}

fn running() -> RunningEmulator {
    let emulator = Emulator::new(Clock::system());
    emulator.connect_existing(ACCOUNT, "Server Test Ltd");
    RunningEmulator::start(emulator, "127.0.0.1:0").expect("emulator")
}

/// 32 clients, each on its own keep-alive connection, 40 requests each, all
/// at once: every one is answered 200 (none left waiting for 10 s).
#[test]
fn every_request_of_many_keep_alive_clients_is_answered() {
    let stripe = running();
    let failures = std::sync::Mutex::new(Vec::new());
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                let agent = agent(Duration::from_secs(10));
                for _ in 0..40 {
                    match create_customer(&agent, &stripe.base_url) {
                        Ok(200) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(status) => failures.lock().unwrap().push(format!("status {status}")),
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} unanswered or failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(done.into_inner(), 32 * 40);
    assert_eq!(stripe.emulator.objects("customer").len(), 32 * 40);
}

/// A reset fault: the client gets no response at all, and the next request
/// is served as usual.
#[test]
fn a_lost_answer_is_no_response_at_all() {
    let stripe = running();
    stripe.emulator.handle(
        "POST",
        "/_test/faults",
        &[],
        b"path=/v1/customers&fault=reset&when=after",
    );
    let agent = agent(Duration::from_secs(10));
    let lost = create_customer(&agent, &stripe.base_url);
    assert!(
        matches!(&lost, Err(e) if !matches!(e, ureq::Error::Timeout(_))),
        "a reset ends the connection; the client must not wait out its timeout: {lost:?}"
    );
    assert_eq!(
        stripe.emulator.objects("customer").len(),
        1,
        "the work was done"
    );
    assert_eq!(create_customer(&agent, &stripe.base_url).ok(), Some(200));
}
