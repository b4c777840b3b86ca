//! `http`: the plugin's only way out, and it leads to Stripe alone. The gate
//! denies every origin but the configured API base, and every call but the
//! ones the plugin makes (`scope_of`); it pins `Stripe-Account` to the merchant
//! the call runs for, and adds `Authorization` itself, so the secret key
//! never enters the plugin and one merchant's plugin call cannot touch
//! another merchant's account or the platform's.

use super::{HostState, PlatformCalls};
use crate::bindings::billing::stripe_plugin::http::{Host, HttpError, Method, Request, Response};
use crate::ports::Turn;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Something that can carry a request: a real client, or an in-process emulator.
pub trait HttpBackend: Send + Sync {
    fn send(&self, req: &Request) -> Result<Response, HttpError>;
}

/// Only requests under `base` pass; they leave with the API key attached.
pub struct StripeGate {
    pub base: Url,
    pub api_key: Option<String>,
    pub backend: Arc<dyn HttpBackend>,
}

impl StripeGate {
    /// Same scheme, host and port as the base, and a path under the base's path.
    /// Compared as parsed URLs: `https://api.stripe.com.evil.test` is not a prefix match.
    pub fn allows(&self, url: &str) -> bool {
        let Ok(u) = Url::parse(url) else { return false };
        u.scheme() == self.base.scheme()
            && u.host_str() == self.base.host_str()
            && u.port_or_known_default() == self.base.port_or_known_default()
            && u.username().is_empty()
            && u.password().is_none()
            && u.path().starts_with(self.base.path().trim_end_matches('/'))
    }

    /// Sends `req` for the merchant whose connected account is `account`
    /// ("" for the platform's own). `created` holds accounts made earlier in
    /// the same call (onboarding links only those, or the merchant's own);
    /// `platform` says whether the call may act on the platform at all;
    /// `refundable`, the PaymentIntents this call may refund (those of the
    /// invoice a platform's refund is for; none for any other call).
    pub(crate) fn send(
        &self,
        mut req: Request,
        account: &str,
        created: &mut Vec<String>,
        platform: PlatformCalls,
        refundable: &[String],
    ) -> (Result<Response, HttpError>, Request) {
        if !self.allows(&req.url) {
            let why = format!(
                "only {} is reachable",
                self.base.as_str().trim_end_matches('/')
            );
            return (Err(HttpError::Denied(why)), req);
        }
        let checked = canonical(&req).and_then(|url| {
            check_headers(&req)?;
            req.url = url;
            self.pin(&mut req, account, created, platform)?;
            refund_allowed(
                &req,
                &self.path_of(&req.url).unwrap_or_default(),
                refundable,
            )
        });
        if let Err(why) = checked {
            return (Err(HttpError::Denied(why)), req);
        }
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        let logged = req.clone();
        if let Some(key) = &self.api_key {
            req.headers
                .push(("Authorization".into(), format!("Bearer {key}")));
        }
        let result = self.backend.send(&req);
        if let Ok(r) = &result
            && r.status == 200
            && req.method == Method::Post
            && self.path_of(&req.url).as_deref() == Some("/v1/accounts")
        {
            let made: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            if let Some(id) = made["id"].as_str() {
                created.push(id.to_string());
            }
        }
        (result, logged)
    }

    /// The path under the API base.
    fn path_of(&self, url: &str) -> Option<String> {
        let u = Url::parse(url).ok()?;
        let base = self.base.path().trim_end_matches('/');
        Some(u.path().strip_prefix(base)?.to_string())
    }

    /// Checks the call against what the plugin may do, and sets
    /// `Stripe-Account`: the merchant's on merchant calls, none on platform ones.
    fn pin(
        &self,
        req: &mut Request,
        account: &str,
        created: &[String],
        platform: PlatformCalls,
    ) -> Result<(), String> {
        let path = self.path_of(&req.url).unwrap_or_default();
        let what = format!("{} {path}", req.method.as_str());
        let scope = scope_of(req.method.as_str(), &path)
            .ok_or_else(|| format!("{what} is not a call this plugin makes"))?;
        let asked = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("stripe-account"))
            .map(|(_, v)| v.clone());
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("stripe-account"));
        match scope {
            Scope::Merchant => {
                if let Some(a) = asked.filter(|a| a != account) {
                    return Err(format!("{what}: Stripe-Account {a} is not this merchant's"));
                }
                if !account.is_empty() {
                    req.headers
                        .push(("Stripe-Account".into(), account.to_string()));
                }
            }
            Scope::Platform => {
                let own_link_only = platform == PlatformCalls::OwnAccountLinkOnly;
                if platform == PlatformCalls::Denied
                    || (own_link_only && path != "/v1/account_links")
                {
                    return Err(format!(
                        "{what} acts on the platform: only start-onboarding may"
                    ));
                }
                if own_link_only && account.is_empty() {
                    return Err(format!(
                        "{what}: the platform's own account has no Account Link"
                    ));
                }
                let created = if own_link_only { &[][..] } else { created };
                if asked.is_some() {
                    return Err(format!(
                        "{what} is made on the platform, without Stripe-Account"
                    ));
                }
                if path == "/v1/account_links" {
                    linked_account(&req.body, account, created)
                        .map_err(|why| format!("{what}: {why}"))?;
                }
            }
        }
        Ok(())
    }
}

/// Request headers a plugin may set. The host alone sets `Authorization`
/// (the plugin's is dropped) and `Stripe-Account` (checked and pinned);
/// anything else is refused: `Stripe-Context` supersedes `Stripe-Account`
/// (https://docs.stripe.com/context), and an allow-list never meets a header
/// it did not expect.
const PLUGIN_HEADERS: [&str; 4] = [
    "idempotency-key",
    "stripe-version",
    "content-type",
    "accept",
];

fn check_headers(req: &Request) -> Result<(), String> {
    let host_only = ["authorization", "stripe-account"];
    let other = req.headers.iter().map(|(k, _)| k).find(|k| {
        let k = k.to_ascii_lowercase();
        !PLUGIN_HEADERS.contains(&k.as_str()) && !host_only.contains(&k.as_str())
    });
    match other {
        Some(k) => Err(format!("header {k} is not one the plugin may set")),
        None => Ok(()),
    }
}

/// The URL to send: `req.url` parsed and serialised again, so that what is
/// sent is what was checked. A path that is not in its plain form (dot
/// segments, encoded dots, slashes or backslashes) is refused, and so is a
/// POST with a query string (its parameters belong in the body).
fn canonical(req: &Request) -> Result<String, String> {
    let parsed = Url::parse(&req.url).map_err(|_| "not a URL".to_string())?;
    let after_scheme = req.url.split_once("://").map_or("", |(_, rest)| rest);
    let raw = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let raw_path = raw.split(['?', '#']).next().unwrap_or_default();
    let lower = raw_path.to_ascii_lowercase();
    let dotted = raw_path.split('/').any(|s| s == "." || s == "..");
    if dotted
        || ["%2e", "%2f", "%5c", "\\"]
            .iter()
            .any(|b| lower.contains(b))
    {
        return Err(format!("path {raw_path} is not in its plain form"));
    }
    if req.method == Method::Post && parsed.query().is_some() {
        return Err("a POST carries its parameters in the body, not the URL".into());
    }
    Ok(parsed.to_string())
}

/// A refund names exactly one PaymentIntent (never a charge), and one this
/// call may refund: the platform asked to refund that invoice.
fn refund_allowed(req: &Request, path: &str, refundable: &[String]) -> Result<(), String> {
    if path != "/v1/refunds" || req.method != Method::Post {
        return Ok(());
    }
    let named: Vec<(String, String)> = form_urlencoded::parse(&req.body)
        .filter(|(k, _)| k == "payment_intent" || k == "charge")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match named.as_slice() {
        [(k, pi)] if k == "payment_intent" && refundable.contains(pi) => Ok(()),
        [(k, pi)] if k == "payment_intent" => Err(format!(
            "POST /v1/refunds: {pi} is not a payment of the invoice the platform asked to refund"
        )),
        _ => Err("POST /v1/refunds must name exactly one PaymentIntent".into()),
    }
}

/// The one account an Account Link names: the merchant's, or one made in
/// this call. None, an empty one, or the key twice is refused.
fn linked_account(body: &[u8], account: &str, created: &[String]) -> Result<(), String> {
    let named: Vec<String> = form_urlencoded::parse(body)
        .filter(|(k, _)| k == "account")
        .map(|(_, v)| v.into_owned())
        .collect();
    match named.as_slice() {
        [one] if one.is_empty() => Err("an Account Link naming an empty account".into()),
        [one] if one == account || created.contains(one) => Ok(()),
        [one] => Err(format!(
            "account {one} is neither this merchant's nor one made in this call"
        )),
        [] => Err("an Account Link naming no account".into()),
        _ => Err("an Account Link naming its account more than once".into()),
    }
}

/// On whose behalf a call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// In the merchant's connected account (Stripe-Account pinned by the host).
    Merchant,
    /// On the platform itself: creating a connected account and its onboarding link.
    Platform,
}

/// The Stripe resources the gate lets the plugin reach, named as a
/// restricted key's permissions name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Customers,
    PaymentMethods,
    PaymentIntents,
    Charges,
    Events,
    CheckoutSessions,
    /// Connected accounts and their Account Links.
    Connect,
    /// Only the refunds the platform asks for.
    Refunds,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Customers => "Customers",
            Resource::PaymentMethods => "PaymentMethods",
            Resource::PaymentIntents => "PaymentIntents",
            Resource::Charges => "Charges",
            Resource::Events => "Events",
            Resource::CheckoutSessions => "Checkout Sessions",
            Resource::Connect => "Connect (Accounts, Account Links)",
            Resource::Refunds => "Refunds",
        }
    }
}

/// What a restricted key must allow on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// One request of every kind the gate lets through: the permissions a
/// restricted key needs are read off these (a test below checks that each
/// passes, so a new arm without its example fails there).
const EVERY_CALL: &[(&str, &str)] = &[
    ("GET", "/v1/customers/cus_1"),
    ("POST", "/v1/customers"),
    ("POST", "/v1/customers/cus_1"),
    ("GET", "/v1/payment_methods"),
    ("GET", "/v1/payment_methods/pm_1"),
    ("GET", "/v1/payment_intents"),
    ("GET", "/v1/payment_intents/pi_1"),
    ("POST", "/v1/payment_intents"),
    ("GET", "/v1/charges/ch_1"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/evt_1"),
    ("GET", "/v1/checkout/sessions/cs_1"),
    ("POST", "/v1/checkout/sessions"),
    ("POST", "/v1/checkout/sessions/cs_1/expire"),
    ("POST", "/v1/accounts"),
    ("POST", "/v1/account_links"),
    ("GET", "/v1/refunds"),
    ("POST", "/v1/refunds"),
];

/// The permissions of a restricted key that can make every call the gate
/// allows, one per resource, in a fixed order.
pub fn restricted_key_permissions() -> Vec<(Resource, Access)> {
    let mut needed = std::collections::BTreeMap::new();
    for (method, path) in EVERY_CALL {
        if let Some((_, resource)) = gate(method, path) {
            let access = if *method == "GET" {
                Access::Read
            } else {
                Access::Write
            };
            let slot = needed.entry(resource).or_insert(access);
            *slot = (*slot).max(access);
        }
    }
    needed.into_iter().collect()
}

/// The calls the plugin makes, and nothing else.
fn scope_of(method: &str, path: &str) -> Option<Scope> {
    gate(method, path).map(|(scope, _)| scope)
}

/// On whose behalf, and on which resource, a call the plugin may make is.
fn gate(method: &str, path: &str) -> Option<(Scope, Resource)> {
    use Resource::*;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resource = match (method, segments.as_slice()) {
        ("GET", ["v1", "customers", _])
        | ("POST", ["v1", "customers"] | ["v1", "customers", _]) => Customers,
        ("GET", ["v1", "payment_methods"] | ["v1", "payment_methods", _]) => PaymentMethods,
        ("GET", ["v1", "payment_intents"] | ["v1", "payment_intents", _])
        | ("POST", ["v1", "payment_intents"]) => PaymentIntents,
        ("GET", ["v1", "charges", _]) => Charges,
        ("GET", ["v1", "events"] | ["v1", "events", _]) => Events,
        ("GET" | "POST", ["v1", "refunds"]) => Refunds,
        ("GET", ["v1", "checkout", "sessions", _])
        | ("POST", ["v1", "checkout", "sessions"] | ["v1", "checkout", "sessions", _, "expire"]) => {
            CheckoutSessions
        }
        ("POST", ["v1", "accounts"] | ["v1", "account_links"]) => {
            return Some((Scope::Platform, Connect));
        }
        _ => return None,
    };
    Some((Scope::Merchant, resource))
}

impl HostState {
    /// Waits for the account's turn when pacing is on; the refusal to
    /// answer instead when the turn is too far away. A store that cannot say
    /// lets the request go: Stripe's own limit still holds.
    fn wait_turn(&mut self, account: &str) -> Option<Response> {
        let pacer = self.env.pacer.clone()?;
        let now = i64::try_from(self.env.clock.now_ms()).unwrap_or(i64::MAX);
        let turn = self.off_the_clock(|_| pacer.turn(account, now));
        match turn {
            Ok(Turn::After(wait)) => {
                self.off_the_clock(|_| std::thread::sleep(wait));
                None
            }
            Ok(Turn::Refused { retry_after }) => Some(held_back(retry_after)),
            Err(e) => {
                tracing::warn!(error = %e, "pacing unavailable; sending unpaced");
                None
            }
        }
    }
}

impl Host for HostState {
    fn fetch(&mut self, req: Request) -> Result<Response, HttpError> {
        if let Err(cap) = self.take(super::Use::StripeRequest) {
            return Err(HttpError::Denied(format!(
                "over this call's cap of {}",
                cap.name()
            )));
        }
        let account = self.stripe_account.clone();
        if let Some(refused) = self.wait_turn(&account) {
            self.env.observer.stripe_held_back();
            return Ok(refused);
        }
        // What Stripe answers may follow from changes made meanwhile: the
        // call's reads go to the store again (see `kv`).
        self.snapshot.clear();
        // Write-ahead: what this call wrote is on disk before Stripe hears
        // of it. A store that cannot say so sends nothing (nothing left the
        // host, so the plugin may try again).
        if let Err(e) = self.off_the_clock(|s| s.env.store.make_durable()) {
            tracing::error!(error = %e, "the store could not make this call's writes durable; the request was not sent");
            return Err(HttpError::Connection(
                "the host's storage is unavailable; the request was not sent".into(),
            ));
        }
        let tapped = self.tap.as_ref().map(|_| req.clone());
        let mut created = std::mem::take(&mut self.created_accounts);
        let platform = self.platform_calls;
        let refundable = std::mem::take(&mut self.refundable);
        let (result, logged) = self.off_the_clock(|s| {
            s.env
                .stripe
                .send(req, &account, &mut created, platform, &refundable)
        });
        self.refundable = refundable;
        self.created_accounts = created;
        if let Err(HttpError::Denied(why)) = &result {
            tracing::warn!(reason = %why, "the Stripe gate refused a request of the plugin");
            self.env.observer.gate_refusal("denied");
        }
        self.env.observer.stripe_exchange(&logged, &result);
        if let (Some(tap), Some(req)) = (&self.tap, tapped) {
            tap.answer(&req, &result);
        }
        result
    }
}

/// The answer a request held back by pacing gets: Stripe's own 429 shape,
/// with the wait in `Retry-After`.
pub fn held_back(retry_after: Duration) -> Response {
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let body = serde_json::json!({"error": {
        "type": "invalid_request_error",
        "code": "rate_limit",
        "message": format!(
            "Held back by the host before reaching Stripe: this account's request rate is \
             taken for the next {} ms. Retry after {secs} s.",
            retry_after.as_millis()
        ),
    }});
    Response {
        status: 429,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Retry-After".into(), secs.to_string()),
        ],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// Real HTTP with ureq: timeouts on connect and on the whole call, and any
/// status returned as data rather than an error.
pub struct UreqBackend {
    agent: ureq::Agent,
}

impl UreqBackend {
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Self { agent }
    }
}

impl HttpBackend for UreqBackend {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let mut builder = ureq::http::Request::builder()
            .method(req.method.as_str())
            .uri(req.url.as_str());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder
            .body(req.body.clone())
            .map_err(|e| HttpError::Other(e.to_string()))?;
        let response = self.agent.run(request).map_err(|e| match e {
            ureq::Error::Timeout(_) => HttpError::Timeout,
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => HttpError::Timeout,
            ureq::Error::Io(io) => HttpError::Connection(io.to_string()),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                HttpError::Connection(e.to_string())
            }
            other => HttpError::Other(other.to_string()),
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| HttpError::Connection(e.to_string()))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refusal_reads_as_stripes_rate_limit() {
        let r = held_back(Duration::from_millis(1_040));
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("Retry-After".into(), "2".into())));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"]["code"], "rate_limit");
    }

    use super::*;

    struct Never;
    impl HttpBackend for Never {
        fn send(&self, _: &Request) -> Result<Response, HttpError> {
            panic!("a denied request reached the network")
        }
    }

    fn request(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method,
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// Security review S13: the URL sent is the URL checked.
    #[test]
    fn what_is_sent_is_the_url_that_was_checked() {
        let base = "https://api.stripe.com";
        let get = |path: &str| canonical(&request(Method::Get, &format!("{base}{path}"), &[], ""));
        assert_eq!(
            get("/v1/customers/cus_1").as_deref(),
            Ok("https://api.stripe.com/v1/customers/cus_1")
        );
        assert!(get("/v1/events?types[]=a").is_ok());
        for refused in [
            "/v1/balance/../customers/cus_1",
            "/v1/./customers/cus_1",
            "/v1/customers/cus_1%2F..%2Fbalance",
            "/v1/customers/%2e%2e/balance",
            "/v1/customers/cus_1%5Cx",
        ] {
            assert!(get(refused).is_err(), "{refused}");
        }
        let post = request(
            Method::Post,
            &format!("{base}/v1/account_links?account=acct_x"),
            &[],
            "",
        );
        assert!(
            canonical(&post).is_err(),
            "a POST's parameters go in its body"
        );
    }

    /// Security review S3: an allow-list of headers; Stripe-Context is refused.
    #[test]
    fn every_example_call_passes_the_gate_and_names_its_permission() {
        for (method, path) in EVERY_CALL {
            assert!(gate(method, path).is_some(), "{method} {path}");
        }
        let lines: Vec<String> = restricted_key_permissions()
            .into_iter()
            .map(|(r, a)| format!("{} {}", r.name(), a.name()))
            .collect();
        assert_eq!(
            lines,
            [
                "Customers write",
                "PaymentMethods read",
                "PaymentIntents write",
                "Charges read",
                "Events read",
                "Checkout Sessions write",
                "Connect (Accounts, Account Links) write",
                "Refunds write"
            ]
        );
        assert!(gate("POST", "/v1/transfers").is_none());
    }

    #[test]
    fn only_the_plugins_headers_pass() {
        let url = "https://api.stripe.com/v1/customers";
        let ok = [
            ("Idempotency-Key", "k"),
            ("Stripe-Version", "2024-06-20"),
            ("content-type", "x"),
            ("Accept", "*/*"),
            ("Stripe-Account", "acct_1"),
            ("Authorization", "x"),
        ];
        assert!(check_headers(&request(Method::Post, url, &ok, "")).is_ok());
        for header in ["Stripe-Context", "X-Anything", "Host", "Cookie"] {
            assert!(
                check_headers(&request(Method::Post, url, &[(header, "v")], "")).is_err(),
                "{header}"
            );
        }
    }

    /// Security review S2: every `account` of an Account Link is read.
    #[test]
    fn an_account_link_names_exactly_one_account_of_this_merchant() {
        let made = vec!["acct_new".to_string()];
        assert!(
            linked_account(
                b"account=acct_mine&type=account_onboarding",
                "acct_mine",
                &[]
            )
            .is_ok()
        );
        assert!(linked_account(b"account=acct_new", "", &made).is_ok());
        for body in [
            "account=",
            "type=account_onboarding",
            "account=acct_mine&account=acct_victim",
            "account=acct_victim",
        ] {
            assert!(
                linked_account(body.as_bytes(), "acct_mine", &made).is_err(),
                "{body}"
            );
        }
        assert!(
            linked_account(b"account=", "", &[]).is_err(),
            "the platform's empty account is no match"
        );
    }

    /// An `account.updated` handler may email a fresh Account Link for the
    /// merchant's own account, and do nothing else on the platform.
    #[test]
    fn on_webhook_may_link_only_the_merchants_own_account() {
        struct Answers;
        impl HttpBackend for Answers {
            fn send(&self, _: &Request) -> Result<Response, HttpError> {
                Ok(Response {
                    status: 200,
                    headers: vec![],
                    body: b"{}".to_vec(),
                })
            }
        }
        let gate = StripeGate {
            base: Url::parse("https://api.stripe.com").unwrap(),
            api_key: Some("sk_test_x".into()),
            backend: Arc::new(Answers),
        };
        let denied = |method, path: &str, body: &str, account: &str| {
            let req = request(method, &format!("https://api.stripe.com{path}"), &[], body);
            let mut made = vec!["acct_made".to_string()];
            matches!(
                gate.send(
                    req,
                    account,
                    &mut made,
                    PlatformCalls::OwnAccountLinkOnly,
                    &[]
                )
                .0,
                Err(HttpError::Denied(_))
            )
        };
        let own = "account=acct_mine&type=account_onboarding";
        assert!(!denied(Method::Post, "/v1/account_links", own, "acct_mine"));
        assert!(denied(
            Method::Post,
            "/v1/account_links",
            "account=acct_made",
            "acct_mine"
        ));
        assert!(denied(
            Method::Post,
            "/v1/account_links",
            "account=acct_victim",
            "acct_mine"
        ));
        assert!(denied(Method::Post, "/v1/account_links", "account=", ""));
        assert!(denied(
            Method::Post,
            "/v1/accounts",
            "type=express",
            "acct_mine"
        ));
    }

    /// A refund only of a PaymentIntent the call was given (the invoice's).
    #[test]
    fn a_refund_names_one_payment_of_the_invoice_asked_for() {
        let ours = vec!["pi_ours".to_string()];
        let check = |body: &str, refundable: &[String]| {
            let req = request(Method::Post, "https://api.stripe.com/v1/refunds", &[], body);
            refund_allowed(&req, "/v1/refunds", refundable)
        };
        assert!(check("payment_intent=pi_ours&amount=100", &ours).is_ok());
        assert!(check("payment_intent=pi_other&amount=100", &ours).is_err());
        assert!(
            check("payment_intent=pi_ours", &[]).is_err(),
            "no refund outside a platform's refund"
        );
        assert!(check("charge=ch_1", &ours).is_err());
        assert!(check("payment_intent=pi_ours&payment_intent=pi_ours", &ours).is_err());
        assert!(check("payment_intent=pi_ours&charge=ch_1", &ours).is_err());
    }

    #[test]
    fn only_the_configured_base_is_reachable() {
        let gate = StripeGate {
            base: Url::parse("https://api.stripe.com").unwrap(),
            api_key: Some("sk_test_x".into()),
            backend: Arc::new(Never),
        };
        assert!(gate.allows("https://api.stripe.com/v1/customers"));
        for url in [
            "https://api.stripe.com.evil.test/v1/customers",
            "http://api.stripe.com/v1/customers",
            "https://api.stripe.com:8443/v1/customers",
            "https://user@api.stripe.com/v1/customers",
            "https://evil.test/?https://api.stripe.com",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(!gate.allows(url), "{url} must be denied");
            let req = Request {
                method: Method::Get,
                url: url.into(),
                headers: vec![],
                body: vec![],
            };
            assert!(matches!(
                gate.send(req, "", &mut Vec::new(), PlatformCalls::Allowed, &[])
                    .0,
                Err(HttpError::Denied(_))
            ));
        }
    }
}
