//! From a request to the resource that answers it: authentication, the
//! connected account, parameters, idempotency, then the route.

use crate::resources::{
    accounts, charges, checkout_sessions, customers, disputes, events, payment_intents,
    payment_methods, refunds, setup_intents, webhook_endpoints,
};
use crate::{Emulator, Reply, form, lock};
use serde_json::Value;

impl Emulator {
    /// One request, no faults: what Stripe would answer.
    pub(crate) fn handle_plain(
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
        let mut reply = match path.strip_prefix("/v1/") {
            Some(rest) => {
                let params = if method == "GET" || method == "DELETE" {
                    form::parse(query.as_bytes())
                } else {
                    form::parse(body)
                };
                let mut reply = self.api(method, rest, &params, body, header);
                crate::error::say_whether_to_retry(&mut reply);
                reply
            }
            None => {
                let _one_at_a_time = lock(&self.op);
                self.expire_due_sessions();
                crate::testing::route_public(self, method, path, &form::parse(body))
            }
        };
        reply
            .headers
            .push(("Request-Id".into(), self.next_id("req")));
        reply
    }

    fn api<'h>(
        &self,
        method: &str,
        rest: &str,
        params: &Value,
        body: &[u8],
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> Reply {
        let key = match crate::auth::api_key(header("authorization")) {
            Ok(k) => k,
            Err(e) => return e,
        };
        let account = header("stripe-account").unwrap_or("").to_string();
        if !account.is_empty()
            && let Err(e) = self.acting_for(&key, &account)
        {
            return e;
        }
        let run = || {
            let reply = {
                let _one_at_a_time = lock(&self.op);
                self.expire_due_sessions();
                route(self, method, rest, &account, params)
            };
            self.pause_after_work(&format!("/v1/{rest}"));
            reply
        };
        match (method, header("idempotency-key")) {
            ("POST", Some(k)) => self.idempotent(&account, k, rest, body, run),
            _ => run(),
        }
    }
}

/// `/v1/...` by resource.
fn route(emu: &Emulator, method: &str, rest: &str, account: &str, params: &Value) -> Reply {
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["customers", rest @ ..] => customers::route(emu, method, rest, account, params),
        ["payment_methods", rest @ ..] => {
            payment_methods::route(emu, method, rest, account, params)
        }
        ["payment_intents", rest @ ..] => {
            payment_intents::route(emu, method, rest, account, params)
        }
        ["charges", rest @ ..] => charges::route(emu, method, rest, account, params),
        ["refunds", rest @ ..] => refunds::route(emu, method, rest, account, params),
        ["disputes", rest @ ..] => disputes::route(emu, method, rest, account, params),
        ["checkout", "sessions", rest @ ..] => {
            checkout_sessions::route(emu, method, rest, account, params)
        }
        ["setup_intents", rest @ ..] => setup_intents::route(emu, method, rest, account),
        ["events", rest @ ..] => events::route(emu, method, rest, account, params),
        ["accounts", ..] | ["account_links"] => accounts::route(emu, method, &segments, params),
        ["webhook_endpoints", rest @ ..] => webhook_endpoints::route(emu, method, rest, params),
        _ => crate::error::unrecognized(method, &format!("/v1/{rest}")),
    }
}
