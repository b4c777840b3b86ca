//! An offline Stripe test-mode emulator: stateful, Stripe's paths, form bodies,
//! JSON objects and error shapes, `Stripe-Account` scoping, Idempotency-Key
//! replay, and signed webhook delivery. It covers what the plugin calls; what
//! it does, it does as Stripe documents.

mod api;
mod checkout_page;
mod connect;
pub mod form;
mod payments;
mod testing;
mod webhooks;

use crate::imports::Clock;
use crate::runtime::billing::stripe_plugin::http::{HttpError, Request, Response};
pub use crate::server::Reply;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

pub use webhooks::{WebhookTarget, signature_header};

/// Stripe's error object.
pub fn stripe_error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Reply {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = c.into();
        e["doc_url"] = format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        )
        .into();
    }
    if let Some(p) = param {
        e["param"] = p.into();
    }
    Reply::json(status, &json!({ "error": e }))
}

/// One stored object and the account that owns it ("" is the platform).
#[derive(Debug, Clone)]
struct Stored {
    account: String,
    object: Value,
}

#[derive(Default)]
struct State {
    seq: u64,
    objects: BTreeMap<String, Stored>,
    /// (account, key) -> (request fingerprint, first reply)
    idempotency: HashMap<(String, String), (String, Reply)>,
    events: Vec<Value>,
}

/// The emulator; clone it freely, all clones share one state.
#[derive(Clone)]
pub struct Emulator {
    state: Arc<Mutex<State>>,
    clock: Clock,
    /// Base of the URLs it hands out (Checkout pages).
    public_base: Arc<Mutex<String>>,
    webhook: Arc<Mutex<Option<WebhookTarget>>>,
    /// One request at a time: a check and its change are atomic, as racing a
    /// Checkout payment against an expiry must be.
    op: Arc<Mutex<()>>,
    /// Injected slowness: (path prefix, delay, times left). The request is
    /// applied, then its answer waits, so that a client's timeout loses it.
    faults: Arc<Mutex<Vec<(String, std::time::Duration, u32)>>>,
}

impl Emulator {
    pub fn new(clock: Clock) -> Self {
        Self {
            state: Arc::default(),
            clock,
            public_base: Arc::new(Mutex::new("http://127.0.0.1".into())),
            webhook: Arc::default(),
            op: Arc::default(),
            faults: Arc::default(),
        }
    }

    pub fn set_public_base(&self, base: &str) {
        *lock(&self.public_base) = base.trim_end_matches('/').to_string();
    }

    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        *lock(&self.webhook) = target;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn next_id(&self, prefix: &str) -> String {
        let mut st = self.state();
        st.seq += 1;
        format!("{prefix}_emu{:010}", st.seq)
    }

    /// Every event emitted so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.state().events.clone()
    }

    pub fn event(&self, id: &str) -> Option<Value> {
        self.state().events.iter().find(|e| e["id"] == id).cloned()
    }

    /// Objects of one kind (`"customer"`, `"checkout.session"` ...) across accounts.
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        self.state()
            .objects
            .values()
            .filter(|s| s.object["object"] == kind)
            .map(|s| s.object.clone())
            .collect()
    }

    /// Handles one request: `target` is path plus optional query.
    pub fn handle(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        let reply = {
            let _one_at_a_time = lock(&self.op);
            self.handle_now(method, target, headers, body)
        };
        let delay = {
            let mut faults = lock(&self.faults);
            let hit = faults
                .iter_mut()
                .find(|(p, _, left)| *left > 0 && target.starts_with(p.as_str()));
            hit.map(|(_, d, left)| {
                *left -= 1;
                *d
            })
        };
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        reply
    }

    /// Makes the next `times` answers under `path` arrive `delay` late.
    pub fn slow_down(&self, path: &str, delay: std::time::Duration, times: u32) {
        lock(&self.faults).push((path.to_string(), delay, times));
    }

    fn handle_now(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut reply = if path.starts_with("/v1/") {
            let authorized = header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .is_some_and(|k| k.starts_with("sk_test_") || k.starts_with("rk_test_"));
            if !authorized {
                return stripe_error(
                    401,
                    "invalid_request_error",
                    None,
                    "You did not provide a valid test API key (sk_test_...).",
                    None,
                );
            }
            let account = header("stripe-account").unwrap_or("").to_string();
            let params = if method == "GET" {
                form::parse(query.as_bytes())
            } else {
                form::parse(body)
            };
            match (method, header("idempotency-key")) {
                ("POST", Some(key)) => self.idempotent(&account, key, path, body, || {
                    api::route(self, method, path, &account, &params)
                }),
                _ => api::route(self, method, path, &account, &params),
            }
        } else {
            api::route_public(self, method, path, &form::parse(body))
        };
        reply
            .headers
            .push(("Request-Id".into(), self.next_id("req")));
        reply
    }

    /// Stripe keeps the first reply to a key (5xx included) and replays it; the
    /// same key with other parameters is an `idempotency_error`.
    fn idempotent(
        &self,
        account: &str,
        key: &str,
        path: &str,
        body: &[u8],
        run: impl FnOnce() -> Reply,
    ) -> Reply {
        let fingerprint = format!("{path}\n{}", String::from_utf8_lossy(body));
        let slot = (account.to_string(), key.to_string());
        if let Some((seen, reply)) = self.state().idempotency.get(&slot).cloned() {
            if seen != fingerprint {
                return stripe_error(
                    400,
                    "idempotency_error",
                    None,
                    &format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
                    ),
                    None,
                );
            }
            let mut replay = reply;
            replay
                .headers
                .push(("Idempotent-Replayed".into(), "true".into()));
            return replay;
        }
        let reply = run();
        self.state()
            .idempotency
            .insert(slot, (fingerprint, reply.clone()));
        reply
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lets the host's HTTP import call the emulator in-process (deterministic tests).
impl crate::imports::HttpBackend for Emulator {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let url = url::Url::parse(&req.url).map_err(|e| HttpError::Other(e.to_string()))?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let r = self.handle(&req.method, &target, &req.headers, &req.body);
        Ok(Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}

/// A running emulator on a loopback port.
pub struct RunningEmulator {
    pub emulator: Emulator,
    pub base_url: String,
    server: Arc<tiny_http::Server>,
}

impl RunningEmulator {
    pub fn start(emulator: Emulator, listen: &str) -> anyhow::Result<Self> {
        let server = Arc::new(
            tiny_http::Server::http(listen).map_err(|e| anyhow::anyhow!("emulator: {e}"))?,
        );
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow::anyhow!("emulator: not an IP address"))?;
        let base_url = format!("http://{addr}");
        emulator.set_public_base(&base_url);
        for _ in 0..2 {
            let (server, emulator) = (server.clone(), emulator.clone());
            std::thread::spawn(move || {
                crate::server::serve_loop(&server, |m, t, h, b| emulator.handle(m, t, h, b))
            });
        }
        Ok(Self {
            emulator,
            base_url,
            server,
        })
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(emu: &Emulator, key: &str, account: &str, body: &str) -> Reply {
        let headers = vec![
            ("Authorization".to_string(), "Bearer sk_test_x".to_string()),
            ("Idempotency-Key".to_string(), key.to_string()),
            ("Stripe-Account".to_string(), account.to_string()),
        ];
        emu.handle("POST", "/v1/customers", &headers, body.as_bytes())
    }

    #[test]
    fn idempotency_keys_replay_and_refuse_other_parameters_per_account() {
        let emu = Emulator::new(Clock::fixed(0));
        let first = post(&emu, "k1", "acct_a", "name=A");
        let replay = post(&emu, "k1", "acct_a", "name=A");
        assert_eq!(first.body, replay.body);
        assert!(
            replay
                .headers
                .iter()
                .any(|(k, v)| k == "Idempotent-Replayed" && v == "true")
        );
        let clash = post(&emu, "k1", "acct_a", "name=B");
        assert_eq!(clash.status, 400);
        assert!(String::from_utf8_lossy(&clash.body).contains("idempotency_error"));
        // Keys are per account: the same key elsewhere is a new request.
        assert_eq!(post(&emu, "k1", "acct_b", "name=B").status, 200);
        assert_eq!(emu.objects("customer").len(), 2);
    }

    #[test]
    fn objects_of_one_account_are_missing_from_another_and_keys_are_required() {
        let emu = Emulator::new(Clock::fixed(0));
        let created: serde_json::Value =
            serde_json::from_slice(&post(&emu, "k", "acct_a", "name=A").body).unwrap();
        let id = created["id"].as_str().unwrap();
        let get = |account: &str, auth: &str| {
            let headers = vec![
                ("Authorization".to_string(), auth.to_string()),
                ("Stripe-Account".to_string(), account.to_string()),
            ];
            emu.handle("GET", &format!("/v1/customers/{id}"), &headers, b"")
                .status
        };
        assert_eq!(get("acct_a", "Bearer sk_test_x"), 200);
        assert_eq!(get("acct_b", "Bearer sk_test_x"), 404);
        assert_eq!(
            get("acct_a", "Bearer sk_live_x"),
            401,
            "the emulator is test mode only"
        );
    }

    /// As Stripe's Checkout: a decline on the hosted page keeps the session
    /// open on one PaymentIntent (requires_payment_method, with
    /// payment_intent.payment_failed carrying payment_intent_data's metadata),
    /// and the retry in the same session confirms that same PaymentIntent.
    #[test]
    fn a_checkout_decline_keeps_the_session_open_on_one_payment_intent() {
        let emu = Emulator::new(Clock::fixed(0));
        let headers = vec![("Authorization".to_string(), "Bearer sk_test_x".to_string())];
        let created = emu.handle(
            "POST",
            "/v1/checkout/sessions",
            &headers,
            b"mode=payment&success_url=https://x.test/ok&line_items[0][quantity]=1\
&line_items[0][price_data][currency]=gbp&line_items[0][price_data][unit_amount]=1000\
&line_items[0][price_data][product_data][name]=Invoice&payment_intent_data[metadata][k]=v",
        );
        let session: Value = serde_json::from_slice(&created.body).unwrap();
        let id = session["id"].as_str().unwrap();
        let pay = |card: &str| {
            let body = format!("card={card}");
            emu.handle(
                "POST",
                &format!("/_test/checkout/sessions/{id}/complete"),
                &[],
                body.as_bytes(),
            )
        };
        let declined = pay("4000000000000341");
        assert_eq!(declined.status, 402);
        let after_decline = emu.objects("checkout.session")[0].clone();
        assert_eq!(after_decline["status"], "open");
        let pi = after_decline["payment_intent"]
            .as_str()
            .unwrap()
            .to_string();
        let failed = emu.events();
        assert_eq!(
            failed.last().unwrap()["type"],
            "payment_intent.payment_failed"
        );
        assert_eq!(failed.last().unwrap()["data"]["object"]["id"], pi.as_str());
        assert_eq!(
            failed.last().unwrap()["data"]["object"]["metadata"]["k"],
            "v"
        );
        assert_eq!(pay("4242424242424242").status, 200);
        let intents = emu.objects("payment_intent");
        assert_eq!(intents.len(), 1, "the retry used the same PaymentIntent");
        assert_eq!(
            (intents[0]["id"].as_str(), &intents[0]["status"]),
            (Some(pi.as_str()), &json!("succeeded"))
        );
    }
}
