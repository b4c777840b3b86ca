//! `host-harness stripe-setup` against the emulator over loopback: the two
//! webhook endpoints registered with the plugin's own event types and API
//! version, their secrets kept in a private file beside the database, a
//! second run that changes nothing, and `serve` paid through them.

use host_server::config::{ApiKey, Flags, Settings};
use host_server::http_server::RunningServer;
use host_server::stripe_setup::{self, Change, Role};
use host_tools::demo::{DEMO_KEY, INVOICE_JSON, Offline, TempDir, Webhooks};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;
use stripe_emulator::Emulator;
use stripe_emulator::server::RunningEmulator;

const ACCOUNT: &str = "acct_SetupMerchant";

fn flags(dir: &Path, emulator: &RunningEmulator) -> Flags {
    Flags {
        db: Some(dir.join("host.db")),
        stripe_api_base: Some(emulator.base_url.clone()),
        account: Some(ACCOUNT.into()),
        ..Flags::default()
    }
}

fn settings(flags: &Flags) -> Settings {
    let mut s = Settings::resolve(flags).expect("settings");
    s.api_key = Some(ApiKey(DEMO_KEY.into()));
    // Its requests join the suite's, for the check against stripe-python's
    // parameter types (tests/run).
    s.record_http = std::env::var_os("STRIPE_PLUGIN_RECORD_DIR").map(|dir| {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::fs::create_dir_all(&dir).expect("the record directory");
        Path::new(&dir).join(format!("stripe-setup-{}-{n}.jsonl", std::process::id()))
    });
    s
}

/// The endpoints as the emulator keeps them (secrets included), by id.
fn endpoints(emulator: &Emulator) -> Vec<Value> {
    let mut all: Vec<Value> = emulator
        .objects("webhook_endpoint")
        .into_iter()
        .filter(|e| e["deleted"] != true)
        .collect();
    all.sort_by_key(|e| e["id"].as_str().unwrap_or_default().to_string());
    all
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("stripe-setup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn start_emulator() -> RunningEmulator {
    let emulator = RunningEmulator::start(
        Emulator::new(stripe_emulator::Clock::system()),
        "127.0.0.1:0",
    )
    .expect("emulator");
    emulator.emulator.connect_existing(ACCOUNT, "Setup Ltd");
    emulator
}

#[test]
fn two_endpoints_are_registered_once_and_serve_is_paid_through_them() {
    let dir = temp_dir("registered");
    let emulator = start_emulator();
    let server = RunningServer::bind("127.0.0.1:0").unwrap();
    let flags = flags(&dir.0, &emulator);
    let url = format!("{}/webhooks/stripe", server.base_url);
    let first = stripe_setup::run(&settings(&flags), &server.base_url).expect("first run");

    let made = endpoints(&emulator.emulator);
    assert_eq!(made.len(), 2, "{made:?}");
    let wanted = e2e_tests::Harness::new().runtime.describe().unwrap();
    assert_eq!(wanted.stripe_api_version, "2024-06-20");
    assert_eq!(wanted.event_types.len(), 19);
    for e in &made {
        assert_eq!(e["url"], url.as_str());
        assert_eq!(e["api_version"], "2024-06-20");
        let types: Vec<&str> = e["enabled_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(types, wanted.event_types, "exactly the plugin's types");
    }
    let connect: Vec<bool> = made.iter().map(|e| e["_connect"] == true).collect();
    assert!(
        connect.contains(&true) && connect.contains(&false),
        "{made:?}"
    );
    assert!(
        first.endpoints.iter().all(|e| e.change == Change::Created),
        "{first:?}"
    );

    let file = host_server::secrets::webhook_secrets_file_of(&dir.0.join("host.db"));
    assert_eq!(first.secrets_file, file);
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o077, 0, "0600");
    let kept = std::fs::read_to_string(&file).unwrap();
    for e in &made {
        assert!(kept.contains(e["_secret"].as_str().unwrap()), "{kept}");
    }
    let lines: Vec<&str> = first.permissions.iter().map(String::as_str).collect();
    for resource in [
        "Customers",
        "PaymentIntents",
        "Checkout Sessions",
        "Webhook Endpoints",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(resource)),
            "{resource} in {lines:?}"
        );
    }

    // Running it again changes nothing: same endpoints, same file.
    let second = stripe_setup::run(&settings(&flags), &server.base_url).expect("second run");
    assert!(
        second
            .endpoints
            .iter()
            .all(|e| e.change == Change::Unchanged),
        "{second:?}"
    );
    assert_eq!(endpoints(&emulator.emulator), made);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), kept);

    // serve, given no secret, takes the stored ones and is paid through
    // the registered Connect endpoint alone.
    let off = Offline::start_with(emulator, server, &flags, Webhooks::Registered).expect("serve");
    off.host("POST", "/invoices", Some(INVOICE_JSON)).unwrap();
    let (status, inv) = off.host("POST", "/invoices/inv_01/finalize", None).unwrap();
    assert_eq!(status, 200, "{inv}");
    let session = inv["checkoutSessionId"].as_str().unwrap();
    assert_eq!(off.pay_session(session, "4242424242424242").unwrap(), 200);
    let paid = off
        .wait_for_status("inv_01", "PAID", Duration::from_secs(20))
        .expect("paid through the registered endpoint");
    assert_eq!(paid["amountPaid"], "1200.00");
}

#[test]
fn a_moved_url_is_updated_in_place_and_a_key_of_the_wrong_mode_changes_nothing() {
    let dir = temp_dir("moved");
    let emulator = start_emulator();
    let flags = flags(&dir.0, &emulator);
    stripe_setup::run(&settings(&flags), "https://old.example").unwrap();
    let before = endpoints(&emulator.emulator);
    let file = host_server::secrets::webhook_secrets_file_of(&dir.0.join("host.db"));
    let kept = std::fs::read_to_string(&file).unwrap();

    let moved = stripe_setup::run(&settings(&flags), "https://new.example").unwrap();
    assert!(
        moved.endpoints.iter().all(|e| e.change == Change::Updated),
        "{moved:?}"
    );
    let after = endpoints(&emulator.emulator);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b["id"], &b["_secret"]), (&a["id"], &a["_secret"]));
        assert_eq!(a["url"], "https://new.example/webhooks/stripe");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), kept);

    let live = Flags {
        livemode: Some(true),
        ..flags.clone()
    };
    let err = stripe_setup::run(&settings(&live), "https://new.example").unwrap_err();
    assert!(format!("{err:#}").contains("test-mode key"), "{err:#}");
    assert_eq!(endpoints(&emulator.emulator), after);
    assert!(matches!(
        moved.endpoints[0].role,
        Role::Platform | Role::Connect
    ));
}
