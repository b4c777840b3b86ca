//! on-pay-link-opened: the stable link on the invoice. It outlives any one
//! Checkout Session: it redirects to an open session (minting a fresh one when
//! the last expired), charges a card on file when auto-charge is on, and shows
//! "Payment successful" for an invoice already paid.

use super::collect::{self, Charge};
use super::invoice::attach_link;
use super::settle::{money_of, status};
use super::update;
use crate::contract::{Merchant, PayLinkOutcome, PayPage, Payment, PluginError};
use crate::imports;
use crate::payment_state::PayState;
use crate::record::{self, InvoiceRecord};

fn paid_page(invoice_id: &str, rec: &InvoiceRecord) -> PayPage {
    PayPage::Paid(Payment {
        invoice_id: invoice_id.into(),
        stripe_ref: rec
            .payments
            .last()
            .map(|(r, _)| r.clone())
            .unwrap_or_default(),
        amount: money_of(&rec.currency, rec.paid),
        total_paid: money_of(&rec.currency, rec.paid),
    })
}

/// What is true of an invoice the link cannot take money for now: stopped,
/// processing, paid, or paid and then refunded or disputed ("Payment
/// successful" only for the paid one).
fn page_for(invoice_id: &str, rec: &InvoiceRecord) -> PayPage {
    if let Some(why) = rec.stopped {
        return PayPage::NothingDue(update::stopped(invoice_id, why));
    }
    match rec.state {
        PayState::Paid => paid_page(invoice_id, rec),
        PayState::PartiallyRefunded | PayState::Refunded => {
            PayPage::Refunded(status(invoice_id, rec))
        }
        PayState::Disputed | PayState::DisputeLost => PayPage::Disputed(status(invoice_id, rec)),
        _ => PayPage::Processing(rec.number.clone()),
    }
}

pub fn on_pay_link_opened(m: &Merchant, token: &str) -> Result<PayLinkOutcome, PluginError> {
    let not_found = || PayLinkOutcome {
        page: PayPage::NotFound,
        transitions: Vec::new(),
    };
    if token.contains('/') {
        return super::card_page::replace_card(m, token);
    }
    // Tokens are hex; anything else cannot be one of ours.
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(not_found());
    }
    let Some(invoice_id) = imports::kv_get_string(&record::token_key(token))? else {
        return Ok(not_found());
    };
    let Some(rec) = record::load(&invoice_id)? else {
        return Ok(not_found());
    };
    if !rec.takes_payment() {
        return Ok(PayLinkOutcome {
            page: page_for(&invoice_id, &rec),
            transitions: Vec::new(),
        });
    }
    if super::health::restricted(m)? {
        return Ok(PayLinkOutcome {
            page: PayPage::Unavailable(rec.number.clone()),
            transitions: Vec::new(),
        });
    }
    let mut transitions = Vec::new();
    // A card on file is charged only if it was never tried: a declined card is
    // not charged again on every visit; the customer picks another in Checkout.
    if m.auto_charge
        && rec.auto_charge
        && rec.state == PayState::Open
        && collect::auto_charge(m, &invoice_id, &mut transitions)? == Charge::Done
    {
        let rec = record::load(&invoice_id)?.unwrap_or(rec);
        return Ok(PayLinkOutcome {
            page: page_for(&invoice_id, &rec),
            transitions,
        });
    }
    let page = match attach_link(m, &invoice_id, &mut transitions)? {
        Some(url) => PayPage::Redirect(url),
        None => match record::load(&invoice_id)? {
            Some(rec) => page_for(&invoice_id, &rec),
            None => PayPage::NotFound,
        },
    };
    Ok(PayLinkOutcome { page, transitions })
}
