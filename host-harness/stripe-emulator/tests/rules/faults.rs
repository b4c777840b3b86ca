//! The fault plan: a bad day at Stripe, on request.
//! https://docs.stripe.com/error-low-level#server-errors
//! https://docs.stripe.com/rate-limits

use crate::support::*;
use stripe_emulator::faults::{Fault, Outcome, Rule, When};

fn rule(fault: Fault, when: When) -> Rule {
    Rule {
        method: Some("POST".into()),
        account: None,
        path: "/v1/customers".into(),
        fault,
        when,
        times: 1,
    }
}

fn exchange(s: &Stripe) -> Outcome {
    s.emu
        .exchange("POST", "/v1/customers", &s.headers(Some("f")), b"name=A")
}

#[test]
fn answering_faults_carry_stripes_status_and_retry_headers() {
    for (fault, status, code, retry_after) in [
        (Fault::ServerError, 500, None, None),
        (Fault::RateLimited, 429, Some("rate_limit"), Some("1")),
        (Fault::LockTimeout, 429, Some("lock_timeout"), None),
    ] {
        let s = Stripe::new();
        s.emu.inject(rule(fault, When::BeforeWork));
        let Outcome::Answer(r) = exchange(&s) else {
            panic!("{fault:?}: no answer")
        };
        assert_eq!(r.status, status, "{fault:?}");
        assert_eq!(r.json_body()["error"]["code"].as_str(), code, "{fault:?}");
        assert_eq!(r.header("Retry-After"), retry_after, "{fault:?}");
        assert_eq!(r.header("Stripe-Should-Retry"), Some("true"), "{fault:?}");
        assert_eq!(
            s.emu.objects("customer").len(),
            0,
            "{fault:?}: nothing was done"
        );
        let Outcome::Answer(again) = exchange(&s) else {
            panic!()
        };
        assert_eq!(again.status, 200, "{fault:?}: the rule was used up");
    }
}

#[test]
fn a_fault_after_the_work_loses_the_answer_but_not_the_change() {
    for fault in [Fault::Timeout, Fault::Reset, Fault::ServerError] {
        let s = Stripe::new();
        s.emu.inject(rule(fault, When::AfterWork));
        let first = exchange(&s);
        assert!(
            !matches!(&first, Outcome::Answer(r) if r.status == 200),
            "{fault:?}"
        );
        assert_eq!(
            s.emu.objects("customer").len(),
            1,
            "{fault:?}: Stripe did the work"
        );
        // The client retries with the same key: the saved answer comes back.
        let Outcome::Answer(retry) = exchange(&s) else {
            panic!()
        };
        assert_eq!(
            s.emu.objects("customer").len(),
            1,
            "{fault:?}: not done twice"
        );
        assert_eq!(
            retry.header("Idempotent-Replayed"),
            Some("true"),
            "{fault:?}"
        );
    }
}

#[test]
fn a_seeded_plan_is_reproducible() {
    let run = |seed: u64| {
        let s = Stripe::new();
        s.emu.inject_seeded(seed, 300);
        for i in 0..100 {
            s.emu.exchange(
                "POST",
                "/v1/customers",
                &s.headers(Some(&format!("k{i}"))),
                b"name=A",
            );
        }
        s.emu
            .injected()
            .iter()
            .map(|f| format!("{} {:?}", f.fault.name(), f.when))
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(7), run(7));
    assert_eq!(a, b);
    assert!(
        (15..=45).contains(&a.len()),
        "about 30% of 100: {}",
        a.len()
    );
    assert_ne!(a, run(8));
}

#[test]
fn the_plan_can_be_set_through_test_routes() {
    let s = Stripe::new();
    let set = s.test_route(
        "/_test/faults",
        "path=/v1/customers&method=POST&fault=rate_limit&when=before&times=2",
    );
    assert_eq!(set.status, 200);
    assert_eq!(s.call("POST", "/v1/customers", "name=A").0, 429);
    assert_eq!(s.call("POST", "/v1/customers", "name=A").0, 429);
    assert_eq!(s.call("POST", "/v1/customers", "name=A").0, 200);
    assert_eq!(
        s.test_route("/_test/faults", "path=/v1/customers&fault=nonsense")
            .status,
        400
    );
    assert_eq!(
        s.test_route("/_test/faults/seeded", "seed=3&per_mille=1000")
            .status,
        200
    );
    assert_ne!(s.call("GET", "/v1/customers", "").0, 200);
    assert_eq!(s.test_route("/_test/faults/heal", "").status, 200);
    assert_eq!(s.call("GET", "/v1/customers", "").0, 200);
}

#[test]
fn a_rule_for_one_account_leaves_the_others_alone() {
    let s = Stripe::new();
    s.emu.inject(Rule {
        account: Some("acct_troubled".into()),
        ..rule(Fault::ServerError, When::BeforeWork)
    });
    let other = s.emu.exchange(
        "POST",
        "/v1/customers",
        &[("Stripe-Account".into(), "acct_fine".into())],
        b"name=A",
    );
    assert!(
        !matches!(&other, Outcome::Answer(r) if r.status == 500),
        "another account's request is not faulted"
    );
    let troubled = s.emu.exchange(
        "POST",
        "/v1/customers",
        &[("Stripe-Account".into(), "acct_troubled".into())],
        b"name=A",
    );
    assert!(matches!(&troubled, Outcome::Answer(r) if r.status == 500));
}
