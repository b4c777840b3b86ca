//! The money invariants, checked at the end against the emulator's own
//! ledger (its PaymentIntents), each host's records and outbox, and the
//! plugin's own records in each host's database:
//! - no invoice charged more than the customer chose to pay;
//! - every succeeded PaymentIntent reflected in its invoice;
//! - every host status equal to the plugin's record;
//! - no email sent twice;
//! - no failure email after the invoice was paid;
//! - no secret in any log, record, email or error.

use crate::args::Args;
use crate::customers::{Case, Outcome};
use crate::hosts::{Fleet, Merchant, agent};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use stripe_emulator::Emulator;

pub struct Report {
    pub ledger: String,
    pub converged_after: Duration,
    pub violations: Vec<String>,
}

pub fn count_by(items: impl Iterator<Item = String>) -> String {
    let mut by = BTreeMap::<String, usize>::new();
    for i in items {
        *by.entry(i).or_default() += 1;
    }
    by.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Succeeded PaymentIntents by invoice: (id, amount).
fn ledger(emu: &Emulator) -> BTreeMap<String, Vec<(String, i64)>> {
    let mut by = BTreeMap::<String, Vec<(String, i64)>>::new();
    for pi in emu.objects("payment_intent") {
        if pi["status"] == "succeeded"
            && let Some(inv) = pi["metadata"]["billing_stripe_plugin_invoice"].as_str()
        {
            by.entry(inv.to_string()).or_default().push((
                pi["id"].as_str().unwrap_or_default().to_string(),
                pi["amount"].as_i64().unwrap_or(0),
            ));
        }
    }
    by
}

/// The plugin's own status of an invoice, from its record in the host's kv.
fn plugin_status(m: &Merchant, invoice: &str) -> Option<String> {
    let conn =
        rusqlite::Connection::open_with_flags(&m.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    let raw: Vec<u8> = conn
        .query_row(
            // Each serve here runs one merchant, the default one.
            "SELECT value FROM kv WHERE ns = 'default' AND key = ?1",
            [&format!("invoice:{invoice}")],
            |r| r.get(0),
        )
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let state = text.split('&').find_map(|kv| kv.strip_prefix("state="))?;
    Some(match state {
        "open" => "FINAL".into(),
        "failed" => "PAYMENT_FAILED".into(),
        s => s.to_ascii_uppercase(),
    })
}

/// What still differs between Stripe, the host and the plugin (converging).
fn unsettled(fleet: &Fleet, emu: &Emulator, plan: &[Case]) -> Vec<String> {
    let agent = agent();
    let ledger = ledger(emu);
    let mut out = Vec::new();
    for c in plan {
        let m = &fleet.merchants[c.merchant];
        let (_, view) = m.host(&agent, "GET", &format!("/invoices/{}", c.invoice), None);
        let host = view["status"].as_str().unwrap_or("?").to_string();
        let plugin = plugin_status(m, &c.invoice).unwrap_or_else(|| "no record".into());
        // Stopped before its send ever completed (the queued send is then
        // cancelled): the host keeps DRAFT while the plugin's record is open.
        let never_sent = host == "DRAFT" && view["collectionStopped"].is_string();
        if host != plugin && !(never_sent && (plugin == "FINAL" || plugin == "no record")) {
            out.push(format!(
                "{}: host says {host}, the plugin's record says {plugin}",
                c.invoice
            ));
        }
        let refs: HashSet<&str> = view["payments"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["stripeRef"].as_str()).collect())
            .unwrap_or_default();
        for (pi, _) in ledger.get(&c.invoice).into_iter().flatten() {
            if !refs.contains(pi.as_str()) {
                out.push(format!(
                    "{}: succeeded {pi} is not among the invoice's payments",
                    c.invoice
                ));
            }
        }
    }
    out
}

fn emails(fleet: &Fleet, plan: &[Case], out: &mut Vec<String>) -> usize {
    let agent = agent();
    let mut total = 0;
    for m in &fleet.merchants {
        let (_, outbox) = m.host(&agent, "GET", "/outbox", None);
        let list = outbox["data"].as_array().cloned().unwrap_or_default();
        total += list.len();
        let mut seen = HashSet::new();
        for e in &list {
            let key = (
                e["to"].to_string(),
                e["subject"].to_string(),
                e["text"].to_string(),
            );
            if !seen.insert(key) {
                out.push(format!("{}: email sent twice: {}", m.account, e["subject"]));
            }
        }
        for c in plan
            .iter()
            .filter(|c| fleet.merchants[c.merchant].account == m.account)
        {
            let (_, view) = m.host(&agent, "GET", &format!("/invoices/{}", c.invoice), None);
            let Some(paid_at) = view["paidAtMs"].as_i64() else {
                continue;
            };
            let prefix = format!("payment-failed:{}:", c.invoice);
            for e in &list {
                let late = e["createdMs"].as_i64().unwrap_or(0) > paid_at;
                if late
                    && e["dedupeKey"]
                        .as_str()
                        .is_some_and(|k| k.starts_with(&prefix))
                {
                    out.push(format!(
                        "{}: failure email after it was paid: {}",
                        c.invoice, e["subject"]
                    ));
                }
            }
        }
    }
    total
}

/// What the platform changed holds: money taken on an invoice it voided or
/// recorded as paid another way is reported as an overpayment (the host's
/// `overpaid`, and an email to the merchant); a credited invoice is paid what
/// was left, never the old amount.
fn platform_changes(
    fleet: &Fleet,
    ledger: &BTreeMap<String, Vec<(String, i64)>>,
    outcome: &Outcome,
    out: &mut Vec<String>,
) {
    let agent = agent();
    let stopped = outcome
        .stopped
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for m in &fleet.merchants {
        let (_, outbox) = m.host(&agent, "GET", "/outbox", None);
        let keys: Vec<String> = outbox["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["dedupeKey"].as_str().map(str::to_string))
            .collect();
        for inv in &stopped {
            let taken = ledger.get(inv).map_or(0, Vec::len);
            let (status, view) = m.host(&agent, "GET", &format!("/invoices/{inv}"), None);
            if status != 200 || taken == 0 {
                continue;
            }
            let told = keys
                .iter()
                .any(|k| k.starts_with(&format!("overpaid:{inv}:")));
            if view["overpaid"].is_null() || !told {
                out.push(format!(
                    "{inv}: money taken after the platform stopped it, but overpaid is {} and the merchant {}",
                    view["overpaid"],
                    if told { "was told" } else { "was never told" }
                ));
            }
        }
    }
    let credited = outcome
        .credited
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for (inv, left) in credited {
        for (pi, amount) in ledger.get(&inv).into_iter().flatten() {
            if *amount != left {
                out.push(format!(
                    "{inv}: {pi} took {amount}, but {left} was left to pay after the credit"
                ));
            }
        }
    }
}

fn secrets(fleet: &Fleet, out: &mut Vec<String>) {
    let mut needles = vec![fleet.api_key.clone()];
    needles.extend(fleet.merchants.iter().map(|m| m.secret.clone()));
    let agent = agent();
    for m in &fleet.merchants {
        let mut haystacks = vec![
            ("log", std::fs::read(&m.log).unwrap_or_default()),
            ("database", std::fs::read(&m.db).unwrap_or_default()),
        ];
        let (_, outbox) = m.host(&agent, "GET", "/outbox", None);
        haystacks.push(("outbox", outbox.to_string().into_bytes()));
        for (what, bytes) in haystacks {
            let text = String::from_utf8_lossy(&bytes);
            for n in &needles {
                if text.contains(n.as_str()) {
                    out.push(format!("{}: a secret appears in its {what}", m.account));
                }
            }
        }
    }
}

pub fn check(
    args: &Args,
    fleet: &Fleet,
    emu: &Emulator,
    plan: &[Case],
    outcome: &Outcome,
    _given_up: usize,
) -> Report {
    let start = Instant::now();
    let mut pending = unsettled(fleet, emu, plan);
    while !pending.is_empty() && start.elapsed() < Duration::from_secs(args.settle_secs) {
        std::thread::sleep(Duration::from_secs(1));
        pending = unsettled(fleet, emu, plan);
    }
    let converged_after = start.elapsed();
    let mut violations = pending;
    let ledger = ledger(emu);
    let accepted = outcome
        .payments_accepted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for c in plan {
        let charged = ledger.get(&c.invoice).map_or(0, Vec::len);
        let chose = c
            .scenario
            .intended_payments()
            .max(accepted.get(&c.invoice).copied().unwrap_or(0));
        if charged > chose {
            violations.push(format!(
                "{} ({}): charged {charged} times, the customer chose {chose}",
                c.invoice,
                c.scenario.name()
            ));
        }
    }
    platform_changes(fleet, &ledger, outcome, &mut violations);
    let sent = emails(fleet, plan, &mut violations);
    secrets(fleet, &mut violations);
    violations.extend(
        outcome
            .surprises
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| format!("unexpected: {s}")),
    );
    let payments: usize = ledger.values().map(Vec::len).sum();
    Report {
        ledger: format!(
            "{payments} succeeded PaymentIntents over {} invoices; {sent} emails",
            ledger.len()
        ),
        converged_after,
        violations,
    }
}
