//! The binary as a developer meets it: `demo` tells the whole story and exits 0
//! with serve's log lines kept out of it, `--help` lists every setting.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_host-harness");

#[test]
fn demo_runs_the_story_offline_and_exits_zero() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "POST /v1/customers",
        "POST /v1/checkout/sessions",
        "payment link attached",
        "PAID 1200.00 GBP",
        "Done: INV-0001 \"PARTIALLY_REFUNDED\", INV-0002 \"PAID\", INV-0003 \"PAYMENT_FAILED\", INV-0004 \"PAID\".",
        "Stripe holds 1 refund for",
        "Payment successful",
        "amount=5000 \"jpy\"",
    ] {
        assert!(
            stdout.contains(expected),
            "timeline lacks {expected:?}:\n{stdout}"
        );
    }
    // serve's log lines go to a file the first line names, not between the story's.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "the demo wove log lines in:\n{stderr}");
    assert!(stdout.starts_with("(serve's log: "), "{stdout}");
}

#[test]
fn help_lists_every_setting() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--listen",
        "--stripe-api-base",
        "--api-key-env",
        "--db",
        "--account",
        "--webhook-secret",
        "--auto-charge",
        "--show-payment-link",
        "--stripe-receipts",
        "--pay-link-base",
        "--notification-email",
        "--webhook-tolerance-secs",
        "--livemode",
        "--record-http",
        "--cache-dir",
        "--deadline-ms",
        "--memory-mib",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}
