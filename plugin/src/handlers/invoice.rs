//! on-invoice-finalized: link the customer, charge the card on file when
//! auto-charge is on, and otherwise (or after a decline) attach the stable pay link.

use super::collect::{self, Charge};
use super::{customer, health, invalid, update};
use crate::contract::{Invoice, Merchant, PaymentLink, PaymentOption, PluginError, Transition};
use crate::payment_state::PayState;
use crate::record::{self, InvoiceRecord, Stop};
use crate::{imports, money};

/// An unguessable token for the invoice's pay link: a MAC of the account and
/// invoice under the merchant's pay-link key (held by the host), so no one can
/// derive another's. Stored on first use, so a later key rotation does not
/// break old links.
fn pay_token(m: &Merchant, invoice_id: &str) -> Result<String, PluginError> {
    let tag = imports::pay_link_mac(format!("paylink.{}/{invoice_id}", m.account_id).as_bytes())?;
    Ok(hex::encode(&tag[..16]))
}

pub fn on_invoice_finalized(m: &Merchant, inv: &Invoice) -> Result<Vec<Transition>, PluginError> {
    let mut out = finalize(m, inv)?;
    report_status(&inv.id, &mut out)?;
    Ok(out)
}

/// Ends with the invoice's status as its record has it, unless the call
/// already told one (every move of the state tells it): a try that failed
/// after the record moved (a decline, then a 429 on the link) told the host
/// nothing, and its retry has nothing new to say. The host keeps a status
/// only if its revision is newer.
fn report_status(invoice_id: &str, out: &mut Vec<Transition>) -> Result<(), PluginError> {
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(());
    };
    let told = out
        .iter()
        .any(|t| matches!(t, Transition::StatusChanged(_)));
    if rec.state != PayState::Open && !told {
        out.push(Transition::StatusChanged(super::settle::status(
            invoice_id, &rec,
        )));
    }
    Ok(())
}

fn finalize(m: &Merchant, inv: &Invoice) -> Result<Vec<Transition>, PluginError> {
    if !inv
        .payment_options
        .iter()
        .any(|o| matches!(o, PaymentOption::Stripe))
    {
        return stop_if_collected(m, &inv.id, Stop::StripeRemoved);
    }
    // A bad amount is refused before anything is sent to Stripe.
    let due = money::to_minor(&inv.currency, &inv.amount_due).map_err(invalid)?;
    if due == 0 {
        return stop_if_collected(m, &inv.id, Stop::NothingDue);
    }
    let mut out = Vec::new();
    if let Some(stop) = stopped_before_recorded(&inv.id)? {
        out.push(Transition::CollectionStopped(update::stopped(
            &inv.id, stop,
        )));
        return Ok(out);
    }
    let stripe_customer = customer::ensure_linked(m, &inv.customer, &mut out)?;
    let c = &inv.customer;
    let emails = if c.billing_emails.is_empty() {
        c.email.iter().cloned().collect()
    } else {
        c.billing_emails.clone()
    };
    let currency = inv.currency.to_ascii_uppercase();
    let rec = record::create(
        &inv.id,
        InvoiceRecord {
            rev: 1,
            state: PayState::Open,
            number: inv.number.clone(),
            currency: currency.clone(),
            due,
            paid: 0,
            refunded: 0,
            payments: Vec::new(),
            attempt: 1,
            charge_sent_ms: None,
            session: None,
            token: pay_token(m, &inv.id)?,
            customer_id: c.id.clone(),
            stripe_customer,
            emails,
            auto_charge: inv.auto_charge,
            refunds: Vec::new(),
            failed_refs: Vec::new(),
            disputes: Vec::new(),
            flagged: Vec::new(),
            declined_methods: Vec::new(),
            stopped: None,
            in_flight: None,
            outcome_ref: None,
            told_excess: 0,
            retries_done: 0,
            first_failed_ms: None,
            next_retry_ms: None,
            retry_running: false,
        },
    )?;
    if let Some(stop) = update::resume(&inv.id, &mut out)? {
        // Voided, paid another way or written off: sending again changes
        // nothing; the link still says so.
        out.push(Transition::CollectionStopped(update::stopped(
            &inv.id, stop,
        )));
        if m.show_payment_link {
            stable_link(m, &inv.id, &mut out)?;
        }
        return Ok(out);
    }
    if rec.due != due || rec.currency != currency {
        reprice(m, &inv.id, &rec, due, &currency, &mut out)?;
    }
    // The invoice as sent now decides whether its link may charge a card.
    if rec.auto_charge != inv.auto_charge {
        record::update(&inv.id, &mut |r| {
            r.auto_charge = inv.auto_charge;
            true
        })?;
    }
    if health::restricted(m)? {
        // Stripe would refuse the charge and the session: held until the
        // account is restored; the link says payment is unavailable.
        out.push(health::held(&inv.id));
        if m.show_payment_link {
            stable_link(m, &inv.id, &mut out)?;
        }
        return Ok(out);
    }
    let charge = if m.auto_charge && inv.auto_charge {
        collect::auto_charge(m, &inv.id, &mut out)?
    } else {
        Charge::NoCard
    };
    if m.show_payment_link {
        match charge {
            // Paid (or money on its way) when sent: the invoice still carries
            // its stable link, which says so; no session is opened.
            Charge::Done => stable_link(m, &inv.id, &mut out)?,
            Charge::NoCard | Charge::NeedsLink => {
                attach_link(m, &inv.id, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// A stop the platform decided before the plugin had a record of the
/// invoice (its first finalize failed early, then it was voided).
fn stopped_before_recorded(invoice_id: &str) -> Result<Option<Stop>, PluginError> {
    if record::load(invoice_id)?.is_some() {
        return Ok(None);
    }
    update::early_stop(invoice_id)
}

/// An invoice sent again with nothing due, or without Stripe: if the plugin
/// was collecting it, collection stops and its session is expired.
fn stop_if_collected(
    m: &Merchant,
    invoice_id: &str,
    why: Stop,
) -> Result<Vec<Transition>, PluginError> {
    let mut out = Vec::new();
    if record::load(invoice_id)?.is_some() {
        update::stop_collection(m, invoice_id, why, &mut out)?;
    }
    Ok(out)
}

/// The invoice was sent again for another amount. Until money has moved, the
/// new amount is what is due: a charge of unknown outcome is resolved first,
/// the open session for the old amount is closed, so it cannot take the
/// wrong amount, and the next payment gets a new attempt.
fn reprice(
    m: &Merchant,
    invoice_id: &str,
    rec: &InvoiceRecord,
    due: u64,
    currency: &str,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    record::with_lease(invoice_id, &mut || {
        collect::resolve_unknown_charge(m, invoice_id, out)?;
        let rec = record::load(invoice_id)?.unwrap_or_else(|| rec.clone());
        let nothing_moved = matches!(
            rec.state,
            PayState::Open | PayState::Failed | PayState::ActionRequired
        );
        if !nothing_moved || rec.paid > 0 {
            return Err(invalid(format!(
                "invoice {invoice_id} has a payment under way or made; its amount can no longer change ({} minor units of {} stay due)",
                rec.due, rec.currency
            )));
        }
        if collect::close_session(m, invoice_id, &rec, out)? {
            return Err(invalid(format!(
                "invoice {invoice_id} was just paid through its open session; its amount can no longer change"
            )));
        }
        record::update(invoice_id, &mut |r| {
            r.due = due;
            r.currency = currency.to_string();
            r.next_attempt();
            true
        })?;
        Ok(())
    })
}

/// Reports the invoice's stable pay link with no session behind it.
fn stable_link(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<(), PluginError> {
    if let Some(rec) = record::load(invoice_id)? {
        out.push(Transition::PaymentLinkAttached(PaymentLink {
            invoice_id: invoice_id.into(),
            url: super::settle::pay_url(m, &rec),
            checkout_session_id: None,
            expires_at: None,
        }));
    }
    Ok(())
}

/// Opens (or reuses) the session behind the stable link and reports the link.
pub fn attach_link(
    m: &Merchant,
    invoice_id: &str,
    out: &mut Vec<Transition>,
) -> Result<Option<String>, PluginError> {
    let Some(session) = collect::open_session(m, invoice_id, out)? else {
        return Ok(None);
    };
    let Some(rec) = record::load(invoice_id)? else {
        return Ok(None);
    };
    out.push(Transition::PaymentLinkAttached(PaymentLink {
        invoice_id: invoice_id.into(),
        url: super::settle::pay_url(m, &rec),
        checkout_session_id: Some(session.id().to_string()),
        expires_at: Some(session.expires_at()),
    }));
    Ok(session.url)
}
