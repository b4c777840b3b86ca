//! Faults on request: a plan of chosen or seeded failures on `/v1` calls,
//! the way a bad day at Stripe looks from a client.
//!
//! - 500 `api_error` with `Stripe-Should-Retry: true`;
//! - 429 `rate_limit` with `Retry-After`, and 429 `lock_timeout` (Stripe
//!   answers lock timeouts with 429, and its SDKs retry them:
//!   https://docs.stripe.com/rate-limits,
//!   https://docs.stripe.com/error-low-level#server-errors);
//! - no answer: a timeout (the client gives up) or a connection reset;
//! - each either before the work is done or after it (the answer is lost).

use crate::error::{Kind, stripe_error};
use crate::{Emulator, Reply, lock};
use std::time::Duration;

/// One kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    ServerError,
    RateLimited,
    LockTimeout,
    Timeout,
    Reset,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::ServerError,
        Fault::RateLimited,
        Fault::LockTimeout,
        Fault::Timeout,
        Fault::Reset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::ServerError => "500",
            Fault::RateLimited => "429 rate_limit",
            Fault::LockTimeout => "429 lock_timeout",
            Fault::Timeout => "timeout",
            Fault::Reset => "connection reset",
        }
    }

    /// The answer Stripe gives for an answering fault; `None` for no answer.
    fn reply(self) -> Option<Reply> {
        let mut r = match self {
            Fault::ServerError => stripe_error(
                500,
                Kind::Api,
                None,
                "An unknown error occurred (injected by the emulator's fault plan).",
                None,
            ),
            Fault::RateLimited => {
                let mut r = stripe_error(
                    429,
                    Kind::InvalidRequest,
                    Some("rate_limit"),
                    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                    None,
                );
                r.headers.push(("Retry-After".into(), "1".into()));
                r
            }
            Fault::LockTimeout => stripe_error(
                429,
                Kind::InvalidRequest,
                Some("lock_timeout"),
                "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request.",
                None,
            ),
            Fault::Timeout | Fault::Reset => return None,
        };
        r.headers
            .push(("Stripe-Should-Retry".into(), "true".into()));
        Some(r)
    }
}

/// Before the request is applied, or after (its answer is lost or replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    BeforeWork,
    AfterWork,
}

/// What the client sees.
#[derive(Debug, Clone)]
pub enum Outcome {
    Answer(Reply),
    /// No answer: the client times out, or the connection is reset.
    Lost(Fault),
}

impl Outcome {
    /// For callers that want an HTTP answer whatever happened: a lost answer
    /// reads as 504 (a gateway would say so).
    pub fn into_reply(self) -> Reply {
        match self {
            Outcome::Answer(r) => r,
            Outcome::Lost(f) => stripe_error(
                504,
                Kind::Api,
                None,
                &format!("No answer ({}).", f.name()),
                None,
            ),
        }
    }
}

/// One rule: the next `times` requests whose path starts with `path` fail
/// (only those acting for `account`, when it is set: a bad day for one
/// connected account).
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<String>,
    pub account: Option<String>,
    pub path: String,
    pub fault: Fault,
    pub when: When,
    pub times: u32,
}

/// Something the plan did, for the simulation's report.
#[derive(Debug, Clone)]
pub struct Injected {
    pub method: String,
    pub path: String,
    pub fault: Fault,
    pub when: When,
}

/// A seeded share of requests fails at random (reproducibly).
#[derive(Debug, Clone)]
pub struct Seeded {
    pub rng: u64,
    pub per_mille: u32,
}

#[derive(Default)]
pub struct Plan {
    rules: Vec<Rule>,
    seeded: Option<Seeded>,
    /// (path prefix, delay, times left): answers that arrive late.
    slow: Vec<(String, Duration, u32)>,
    injected: Vec<Injected>,
}

impl Plan {
    fn pick(&mut self, method: &str, path: &str, account: &str) -> Option<(Fault, When)> {
        if let Some(rule) = self.rules.iter_mut().find(|r| {
            r.times > 0
                && path.starts_with(r.path.as_str())
                && r.method.as_deref().is_none_or(|m| m == method)
                && r.account.as_deref().is_none_or(|a| a == account)
        }) {
            rule.times -= 1;
            return Some((rule.fault, rule.when));
        }
        let seeded = self.seeded.as_mut()?;
        let roll = next(&mut seeded.rng);
        if (roll % 1000) as u32 >= seeded.per_mille {
            return None;
        }
        let fault = Fault::ALL[((roll >> 10) % Fault::ALL.len() as u64) as usize];
        let when = if (roll >> 20) & 1 == 0 {
            When::BeforeWork
        } else {
            When::AfterWork
        };
        Some((fault, when))
    }

    fn delay(&mut self, path: &str) -> Option<Duration> {
        let hit = self
            .slow
            .iter_mut()
            .find(|(p, _, left)| *left > 0 && path.starts_with(p.as_str()))?;
        hit.2 -= 1;
        Some(hit.1)
    }
}

/// A rule from a test route's form: `path`, `fault` (500, rate_limit,
/// lock_timeout, timeout, reset), `when` (before|after), optional `method`,
/// `account` and `times` (default 1).
pub(crate) fn rule_from(params: &serde_json::Value) -> Result<Rule, Reply> {
    let bad = |what: &str| crate::error::invalid(None, what, None);
    let fault = match params["fault"].as_str() {
        Some("500") => Fault::ServerError,
        Some("rate_limit") => Fault::RateLimited,
        Some("lock_timeout") => Fault::LockTimeout,
        Some("timeout") => Fault::Timeout,
        Some("reset") => Fault::Reset,
        _ => {
            return Err(bad(
                "fault must be 500, rate_limit, lock_timeout, timeout or reset",
            ));
        }
    };
    let when = match params["when"].as_str() {
        Some("before") | None => When::BeforeWork,
        Some("after") => When::AfterWork,
        Some(_) => return Err(bad("when must be before or after")),
    };
    let Some(path) = params["path"].as_str().filter(|p| p.starts_with("/v1/")) else {
        return Err(bad("path must start with /v1/"));
    };
    Ok(Rule {
        method: params["method"].as_str().map(str::to_ascii_uppercase),
        account: params["account"].as_str().map(String::from),
        path: path.to_string(),
        fault,
        when,
        times: params["times"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or(1),
    })
}

/// splitmix64: small, seeded, reproducible.
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Emulator {
    /// Adds a rule to the plan.
    pub fn inject(&self, rule: Rule) {
        lock(&self.faults).rules.push(rule);
    }

    /// Makes `per_mille` of all later `/v1` requests fail, chosen by `seed`.
    pub fn inject_seeded(&self, seed: u64, per_mille: u32) {
        lock(&self.faults).seeded = Some(Seeded {
            rng: seed,
            per_mille,
        });
    }

    /// Clears every rule and the seeded share.
    pub fn heal(&self) {
        let mut plan = lock(&self.faults);
        plan.rules.clear();
        plan.seeded = None;
        plan.slow.clear();
    }

    /// Every fault injected so far.
    pub fn injected(&self) -> Vec<Injected> {
        lock(&self.faults).injected.clone()
    }

    /// Makes the next `times` answers under `path` arrive `delay` late (the
    /// request is applied first, so a client that gives up loses the answer).
    pub fn slow_down(&self, path: &str, delay: Duration, times: u32) {
        lock(&self.faults)
            .slow
            .push((path.to_string(), delay, times));
    }

    /// Handles a request under the fault plan: what a client would see.
    pub fn exchange(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Outcome {
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        let account = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("stripe-account"))
            .map_or("", |(_, v)| v.as_str());
        if path.starts_with("/v1/") {
            let now_ms = i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX);
            if !lock(&self.rate).admit(account, now_ms) {
                return Fault::RateLimited
                    .reply()
                    .map_or(Outcome::Lost(Fault::RateLimited), Outcome::Answer);
            }
        }
        let planned = if path.starts_with("/v1/") {
            lock(&self.faults).pick(method, path, account)
        } else {
            None
        };
        if let Some((fault, When::BeforeWork)) = planned {
            self.record(method, path, fault, When::BeforeWork);
            return fault.reply().map_or(Outcome::Lost(fault), Outcome::Answer);
        }
        let reply = self.handle_plain(method, target, headers, body);
        match planned {
            Some((fault, when)) => {
                self.record(method, path, fault, when);
                fault.reply().map_or(Outcome::Lost(fault), Outcome::Answer)
            }
            None => Outcome::Answer(reply),
        }
    }

    /// Waits as `slow_down` asks, once the work under `path` is done (an
    /// idempotency key stays in use meanwhile, as on a slow Stripe).
    pub(crate) fn pause_after_work(&self, path: &str) {
        let delay = lock(&self.faults).delay(path);
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
    }

    fn record(&self, method: &str, path: &str, fault: Fault, when: When) {
        lock(&self.faults).injected.push(Injected {
            method: method.to_string(),
            path: path.to_string(),
            fault,
            when,
        });
    }
}
