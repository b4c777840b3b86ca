//! The emulator's own binary: it listens where it is told, with the account
//! it is given connected, and answers Stripe's API as the library does.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_binary_serves_the_api_with_its_connected_account() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-emulator"))
        .args(["--listen", "127.0.0.1:0", "--account", "acct_BinaryTest"])
        .env("STRIPE_PLUGIN_WEBHOOK_SECRETS", "whsec_binary_test")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("Stripe emulator listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let answer = ureq::get(&format!("{base}/v1/customers"))
        .header("Authorization", "Bearer sk_test_binary")
        .header("Stripe-Account", "acct_BinaryTest")
        .call();
    let unknown = ureq::get(&format!("{base}/v1/customers"))
        .header("Authorization", "Bearer sk_test_binary")
        .header("Stripe-Account", "acct_NotConnected")
        .call();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(answer.expect("an answer").status(), 200);
    assert!(
        unknown.is_err(),
        "an account that was never connected is refused"
    );
}
