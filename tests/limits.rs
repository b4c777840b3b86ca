//! The host survives a plugin that traps, loops forever or grabs memory: each
//! gets an error for that call, within a bounded time, and the next call is
//! served normally. And the plugin can reach no host but the Stripe API base.

use e2e_tests::*;
use host_runtime::bindings::PluginError;
use host_runtime::bindings::Transition;
use host_runtime::bindings::billing::stripe_plugin::http::{HttpError, Request, Response};
use host_runtime::imports::HttpBackend;
use host_runtime::runtime::{Limits, Reuse};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rogue_invoice(id: &str) -> host_runtime::bindings::Invoice {
    let mut inv = invoice();
    inv.id = id.into();
    inv
}

#[test]
fn traps_loops_and_memory_grabs_fail_that_call_only() {
    let limits = Limits {
        deadline_ms: 500,
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let h = Harness::with(ROGUE_WASM, limits, None);
    for misbehaviour in ["trap", "loop", "grab"] {
        let start = Instant::now();
        let result =
            h.runtime
                .on_invoice_finalized(TENANT, &h.merchant, &rogue_invoice(misbehaviour));
        let err = result.expect_err(misbehaviour);
        // A liveness bound, not a benchmark: without limits "loop" never returns.
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{misbehaviour} took {:?}",
            start.elapsed()
        );
        eprintln!("{misbehaviour}: {err:#}");
        // The harness serves the next call normally.
        let ok = h
            .runtime
            .on_invoice_finalized(TENANT, &h.merchant, &rogue_invoice("fine"))
            .unwrap();
        assert_eq!(ok.unwrap().len(), 0, "after {misbehaviour}");
    }
}

/// What the rogue plugin's `count` says: how many calls its instance served.
fn count(h: &Harness, tenant: &str) -> String {
    match h
        .runtime
        .on_invoice_finalized(tenant, &h.merchant, &rogue_invoice("count"))
    {
        Ok(Ok(ts)) => match ts.as_slice() {
            [Transition::CustomerUnlinked(said)] => said.clone(),
            other => panic!("count said {}", other.len()),
        },
        _ => panic!("count failed"),
    }
}

/// An instance is reused only for its own merchant, and never after it
/// trapped or hit a limit. The rogue plugin keeps a call counter in a static
/// (the real plugin keeps nothing), so it shows which instance served a call.
#[test]
fn an_instance_serves_one_merchant_and_is_dropped_after_a_trap_or_a_limit() {
    let limits = Limits {
        deadline_ms: 500,
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let h = Harness::with(ROGUE_WASM, limits, None);
    // Two merchants, even on one account: instances are a merchant's own.
    let (a, b) = (TENANT, "other-merchant");
    assert_eq!(count(&h, a), "call 1 of this instance");
    assert_eq!(
        count(&h, a),
        "call 2 of this instance",
        "A's instance is reused"
    );
    assert_eq!(
        count(&h, b),
        "call 1 of this instance",
        "B never gets A's instance"
    );
    assert_eq!(count(&h, a), "call 3 of this instance");
    for misbehaviour in ["trap", "loop", "grab"] {
        h.runtime
            .on_invoice_finalized(a, &h.merchant, &rogue_invoice(misbehaviour))
            .expect_err(misbehaviour);
        assert_eq!(
            count(&h, a),
            "call 1 of this instance",
            "after {misbehaviour}"
        );
        assert_eq!(count(&h, a), "call 2 of this instance");
    }
    assert_eq!(count(&h, b), "call 2 of this instance");

    let mut fresh = Harness::with(ROGUE_WASM, limits, None);
    fresh.runtime.set_reuse(Reuse::Never);
    assert_eq!(count(&fresh, a), "call 1 of this instance");
    assert_eq!(count(&fresh, a), "call 1 of this instance");
}

/// Counts what would have gone out; any call is a failure of the gate.
struct Tripwire(std::sync::atomic::AtomicUsize);

impl HttpBackend for Tripwire {
    fn send(&self, _: &Request) -> Result<Response, HttpError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(HttpError::Other("tripwire".into()))
    }
}

#[test]
fn the_plugin_reaches_nothing_but_the_stripe_api_base() {
    let tripwire = Arc::new(Tripwire(Default::default()));
    let h = Harness::with(ROGUE_WASM, Limits::default(), Some(tripwire.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let elsewhere = format!("http://{}/", listener.local_addr().unwrap());
    for url in [
        elsewhere.as_str(),
        "https://api.stripe.com.evil.test/v1/customers",
        "http://api.stripe.com/v1/customers",
    ] {
        let result = h
            .runtime
            .on_invoice_finalized(TENANT, &h.merchant, &rogue_invoice(&format!("fetch:{url}")))
            .unwrap();
        let Err(PluginError::InvalidInput(message)) = result else {
            panic!("{result:?}")
        };
        assert!(message.contains("Denied("), "{url}: {message}");
    }
    assert!(
        listener.accept().is_err(),
        "nothing connected to the listener"
    );
    assert_eq!(tripwire.0.load(std::sync::atomic::Ordering::SeqCst), 0);

    // The real plugin, told by a (wrong) merchant record to use another base, is refused too.
    let real = Harness::with(
        host_runtime::runtime::PLUGIN_WASM,
        Limits::default(),
        Some(tripwire.clone()),
    );
    let mut m = real.merchant.clone();
    m.stripe_api_base = elsewhere.clone();
    let result = real
        .runtime
        .on_invoice_finalized(TENANT, &m, &invoice())
        .unwrap();
    assert!(
        matches!(&result, Err(PluginError::InvalidInput(msg)) if msg.contains("host denied")),
        "{result:?}"
    );
    assert_eq!(tripwire.0.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn the_component_is_small_and_speaks_only_our_contract() {
    let wasm = host_runtime::runtime::PLUGIN_WASM;
    assert!(
        wasm.len() <= 256 * 1024,
        "component is {} bytes, over the 256 KiB budget (built without binaryen's wasm-opt? tests/run installs it)",
        wasm.len()
    );

    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, wasm).unwrap();
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports: Vec<String> = ty
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(exports, ["billing:stripe-plugin/handlers@0.3.0"]);
    for ours in ["http", "kv", "email", "clock", "mac"] {
        let name = format!("billing:stripe-plugin/{ours}@0.3.0");
        assert!(
            imports.contains(&name),
            "missing import {name} in {imports:?}"
        );
    }
    // Nothing else: no WASI, only what the contract grants (and its types).
    let mut names = imports.clone();
    names.sort();
    assert_eq!(
        names,
        [
            "clock", "email", "errors", "http", "kv", "mac", "outcomes", "payments", "platform"
        ]
        .map(|i| format!("billing:stripe-plugin/{i}@0.3.0")),
        "only the contract's interfaces are imported"
    );
    eprintln!("imports: {imports:?}");
}

/// Secrets never enter the sandbox: no type or function of the contract
/// carries one (the plugin asks the host's `mac` import for MACs instead).
#[test]
fn no_secret_is_in_any_type_or_argument_of_the_contract() {
    let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");
    for entry in std::fs::read_dir(wit).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wit") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line
                .split("//")
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            assert!(
                !code.contains("secret") && !code.contains("api-key") && !code.contains("password"),
                "{}:{}: {line}",
                path.display(),
                n + 1
            );
        }
    }
}

/// Garbage in never traps the plugin: mutated event bodies and headers, and
/// invoices with odd amounts, get an answer or an error, never a crash.
#[test]
fn the_plugin_answers_garbage_without_trapping() {
    let h = Harness::new();
    let event = serde_json::to_vec(&serde_json::json!({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
        "account": ACCOUNT, "livemode": false, "data": {"object": {"id": "pi_1", "amount": 100, "amount_received": 100,
        "currency": "gbp", "metadata": {"billing_stripe_plugin_invoice": "inv_01"}, "customer": {"id": "cus_1"}}}})).unwrap();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..300 {
        let mut body = event.clone();
        for _ in 0..(1 + next() % 8) {
            let i = (next() as usize) % body.len();
            body[i] = (next() % 256) as u8;
        }
        if round % 7 == 0 {
            body.truncate((next() as usize) % body.len());
        }
        let mut req = h.delivery(&body, SECRET);
        if round % 5 == 0 {
            req.headers[1].1 = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        }
        let answer = h.runtime.on_webhook(TENANT, &h.merchant, &req);
        assert!(
            answer.is_ok(),
            "round {round}: the plugin trapped: {answer:?}"
        );
    }
    for (currency, amount) in [
        ("GBP", "٣"),
        ("", ""),
        ("GBPX", "1"),
        ("JPY", "99999999999999999999999"),
        ("KWD", "0.0005"),
        ("USD", "1."),
    ] {
        let mut inv = invoice();
        inv.currency = currency.into();
        inv.amount_due = amount.into();
        let answer = h.runtime.on_invoice_finalized(TENANT, &h.merchant, &inv);
        assert!(
            matches!(answer, Ok(Err(_)) | Ok(Ok(_))),
            "{currency} {amount:?}: {answer:?}"
        );
    }
    let opened = h
        .runtime
        .on_pay_link_opened(TENANT, &h.merchant, "\u{0}💥/../..");
    assert!(matches!(opened, Ok(Ok(_))), "{opened:?}");
}

/// A Stripe that answers after 100 ms.
struct Slow;

impl HttpBackend for Slow {
    fn send(&self, _: &Request) -> Result<Response, HttpError> {
        std::thread::sleep(std::time::Duration::from_millis(100));
        Ok(Response {
            status: 200,
            headers: vec![],
            body: br#"{"id":"cus_1","object":"customer"}"#.to_vec(),
        })
    }
}

/// Security review S7: time in imports is off the guest's clock, so a
/// plugin that only waits on the host never reached its deadline. Each call
/// now has a wall-time cap, imports included, and quotas of kv operations,
/// emails and Stripe requests; going over one fails the call (nothing it
/// returned is applied), within moments, and the host says which cap.
#[test]
fn a_call_has_a_wall_time_cap_and_quotas_on_what_it_asks_of_the_host() {
    let limits = Limits {
        deadline_ms: 200,
        wall_ms: 2_000,
        ..Limits::default()
    };
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let h = Harness::with(ROGUE_WASM, limits, Some(Arc::new(Slow)));
        for id in ["kvloop", "stripeloop", "mailflood"] {
            let started = std::time::Instant::now();
            let r = h
                .runtime
                .on_invoice_finalized(TENANT, &h.merchant, &rogue_invoice(id));
            let took = started.elapsed();
            let error = match r {
                Err(e) => format!("{e:#}"),
                Ok(other) => format!("answered {other:?}"),
            };
            done.send((id, took, error)).unwrap();
        }
        let sent = h.records().outbox(TENANT).unwrap();
        done.send(("outbox", Default::default(), sent.len().to_string()))
            .unwrap();
    });
    for expected in ["kv operations", "wall time", "emails"] {
        let (id, took, error) = finished
            .recv_timeout(std::time::Duration::from_secs(15))
            .expect("a rogue call was never stopped");
        assert!(error.contains(expected), "{id}: {error}");
        assert!(
            took < std::time::Duration::from_secs(5),
            "{id} took {took:?}"
        );
    }
    let (_, _, sent) = finished
        .recv_timeout(std::time::Duration::from_secs(15))
        .unwrap();
    // An email goes only to the merchant or to one of its customers.
    assert_eq!(sent, "0", "emails to a stranger were queued");
}

/// Security review S8: the `mac` import is never an oracle for the
/// platform's webhook secret. A plugin asking for a webhook-signing MAC
/// (with which anyone could forge a Connect event for every merchant here,
/// and for any other system verifying the same endpoint secret) is refused;
/// the pay-link key, the plugin's own, still signs.
#[test]
fn the_plugin_cannot_sign_a_webhook() {
    let h = Harness::with(ROGUE_WASM, Limits::default(), None);
    let ask = |id: &str| match h
        .runtime
        .on_invoice_finalized(TENANT, &h.merchant, &rogue_invoice(id))
        .unwrap()
    {
        Err(PluginError::InvalidInput(m)) => m,
        other => panic!("{id}: {other:?}"),
    };
    let webhook = ask("sign:webhook-signing");
    assert!(webhook.starts_with("refused: "), "{webhook}");
    assert_eq!(ask("sign:pay-link"), "signed: 32 bytes");
}

/// What reached "Stripe": each request's method, path and Stripe-Account.
struct Recorder(std::sync::Mutex<Vec<String>>);

impl HttpBackend for Recorder {
    fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let account = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("stripe-account"))
            .map_or("-", |(_, v)| v.as_str());
        let path = req.url.trim_start_matches("https://api.stripe.com");
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {path} {account}", req.method.as_str()));
        Ok(Response {
            status: 200,
            headers: vec![],
            body: br#"{"id":"acct_CreatedNow","object":"account"}"#.to_vec(),
        })
    }
}

/// Issue 8, defect 10: a plugin running for one merchant can act only on
/// that merchant's account, and only through the calls the plugin makes.
/// The host pins Stripe-Account; anything else is denied before it leaves.
#[test]
fn the_host_pins_the_merchants_account_and_allows_only_the_plugins_calls() {
    let seen = Arc::new(Recorder(Default::default()));
    let h = Harness::with(ROGUE_WASM, Limits::default(), Some(seen.clone()));
    let answer = |result: Result<(), PluginError>, call: &str| match result {
        Err(PluginError::InvalidInput(m)) => m,
        other => panic!("{call}: {other:?}"),
    };
    let ask = |call: &str| -> String {
        let r = h
            .runtime
            .on_invoice_finalized(
                TENANT,
                &h.merchant,
                &rogue_invoice(&format!("stripe:{call}")),
            )
            .unwrap();
        answer(r.map(drop), call)
    };
    let onboard_as = |m: &host_runtime::bindings::Merchant, call: &str| -> String {
        let req = host_runtime::bindings::OnboardingRequest {
            merchant_ref: format!("stripe:{call}"),
            email: "m@example.com".into(),
            country: "GB".into(),
            refresh_url: "https://platform.example/refresh".into(),
            return_url: "https://platform.example/return".into(),
        };
        answer(
            h.runtime
                .start_onboarding(TENANT, m, &req)
                .unwrap()
                .map(drop),
            call,
        )
    };
    let onboard = |call: &str| onboard_as(&h.merchant, call);
    let denied = [
        "GET /v1/customers/cus_1 acct_SomeoneElse",
        "POST /v1/refunds?payment_intent=pi_1 -",
        "POST /v1/payment_intents/pi_1/cancel -",
        "GET /v1/balance -",
        "POST /v1/accounts/acct_TestMerchant -",
        "POST /v1/transfers?amount=1 -",
        "DELETE /v1/customers/cus_1 -",
        "POST /v1/account_links?account=acct_SomeoneElse -",
        "POST /v1/accounts acct_TestMerchant",
        // Security review S14: the platform only from start-onboarding.
        "POST /v1/accounts -",
        // S3: an allow-list of headers.
        "GET /v1/customers/cus_1 - header:Stripe-Context:acct_SomeoneElse",
        "GET /v1/customers/cus_1 - header:X-Anything:1",
        // S13: what is sent is what was checked.
        "GET /v1/balance/../customers/cus_1 -",
        "GET /v1/customers/cus_1%2F..%2Fbalance -",
    ];
    for call in denied {
        let answer = ask(call);
        assert!(answer.starts_with("denied: "), "{call}: {answer}");
    }
    // S2: an Account Link names exactly one account of this merchant's,
    // also for a merchant on the platform's own account ("").
    let mut on_platform = h.merchant.clone();
    on_platform.account_id = String::new();
    for call in [
        "POST /v1/account_links?account=acct_SomeoneElse - keep-query",
        "POST /v1/account_links - body:account=acct_TestMerchant&account=acct_SomeoneElse",
        "POST /v1/account_links - body:type=account_onboarding",
        "POST /v1/account_links - body:account=",
    ] {
        for answer in [onboard(call), onboard_as(&on_platform, call)] {
            assert!(answer.starts_with("denied: "), "{call}: {answer}");
        }
    }
    assert!(
        seen.0.lock().unwrap().is_empty(),
        "{:?}",
        seen.0.lock().unwrap()
    );
    for call in [
        "GET /v1/customers/cus_1 -",
        "GET /v1/customers/cus_1 acct_TestMerchant",
        "GET /v1/customers/cus_1 - header:Idempotency-Key:k",
    ] {
        assert_eq!(ask(call), "answered 200", "{call}");
    }
    for call in [
        "POST /v1/accounts -",
        "POST /v1/account_links?account=acct_TestMerchant -",
    ] {
        assert_eq!(onboard(call), "answered 200", "{call}");
    }
    assert_eq!(
        *seen.0.lock().unwrap(),
        [
            "GET /v1/customers/cus_1 acct_TestMerchant",
            "GET /v1/customers/cus_1 acct_TestMerchant",
            "GET /v1/customers/cus_1 acct_TestMerchant",
            "POST /v1/accounts -",
            "POST /v1/account_links -",
        ],
        "the merchant's account is pinned on its calls; platform calls carry none"
    );
}

/// A host engineer reads the contract in five minutes: every type, field,
/// case and function of every .wit file has a doc comment.
#[test]
fn every_item_of_the_contract_has_a_doc_comment() {
    let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(wit).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wit") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let s = line.trim();
            let skip = s.is_empty()
                || s.starts_with("//")
                || s.starts_with('}')
                || ["use ", "package ", "import ", "export "]
                    .iter()
                    .any(|p| s.starts_with(p));
            let named = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
            if skip || !named {
                continue;
            }
            let documented = n > 0 && lines[n - 1].trim().starts_with("///");
            if !documented {
                missing.push(format!(
                    "{}:{}: {s}",
                    path.file_name().unwrap().to_string_lossy(),
                    n + 1
                ));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
}
