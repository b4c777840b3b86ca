//! on-webhook: size bound, signature over the raw bytes, account and mode
//! routing, then the event's facts offered to the invoice's state machine.
//! Deliveries come at least once and in any order: a redelivery recomputes the
//! same transitions (the host applies them idempotently) and sends no email
//! again; the seen-marker is written only after every effect succeeded, so a
//! crash in between cannot lose an event.

use super::settle::{self, Settled};
use super::{collect, health};
use crate::bindings::billing::stripe_plugin::mac::KeyPurpose;
use crate::contract::{
    AccountStatus, CardOnFile, DisputeStatus, Merchant, PluginError, Transition, WebhookOutcome,
    WebhookRequest,
};
use crate::events::{
    AccountNews, CardNews, DisputeNews, Event, EventKind, PaymentNews, RefundNews, SessionNews,
};
use crate::host::kv;
use crate::imports::{self, kv_failure};
use crate::notify::{self, Reason, Tell};
use crate::record;
use crate::signature::{self, SignatureError};
use crate::stripe::{objects::Obj, request};

/// Bodies above this are refused before any work (Stripe's events are a few KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

fn outcome(status: u16, reason: &str, event: Option<&Event>) -> WebhookOutcome {
    WebhookOutcome {
        status,
        reason: reason.to_string(),
        event_id: event.map(|e| e.id.clone()),
        event_type: event.map(|e| e.kind.clone()),
        transitions: Vec::new(),
    }
}

pub fn on_webhook(m: &Merchant, req: &WebhookRequest) -> Result<WebhookOutcome, PluginError> {
    if req.body.len() > MAX_BODY_BYTES {
        return Ok(outcome(413, "payload too large", None));
    }
    let header = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("stripe-signature"))
        .map(|(_, v)| v.as_str());
    match signature::verify(
        header,
        &req.body,
        &imports::HostKeys(KeyPurpose::WebhookSigning),
        imports::now_secs(),
        m.webhook_tolerance_secs,
    ) {
        Ok(_) => {}
        Err(SignatureError::KeysUnavailable) => {
            return Err(PluginError::HostUnavailable(
                SignatureError::KeysUnavailable.to_string(),
            ));
        }
        Err(e) => return Ok(outcome(400, &e.to_string(), None)),
    }
    let Some(event) = Event::parse(&req.body) else {
        return unreadable(&req.body);
    };
    let applied = apply_event(m, &event)?;
    Ok(WebhookOutcome {
        transitions: applied.settled.transitions,
        ..outcome(200, &applied.settled.note, Some(&event))
    })
}

/// A signed body the plugin cannot read as an event it handles: an event of
/// a type it does not handle is acknowledged and counted (so Stripe never
/// disables the endpoint over it); anything else is a 400.
fn unreadable(body: &[u8]) -> Result<WebhookOutcome, PluginError> {
    let envelope: Option<crate::events::Envelope> = crate::stripe::objects::parse(body).ok();
    match envelope.and_then(|e| e.kind) {
        Some(kind) if EventKind::parse(&kind) == EventKind::Other => {
            imports::count("unreadable-events")?;
            Ok(outcome(
                200,
                "event of a type this plugin does not handle; ignored",
                None,
            ))
        }
        _ => Ok(outcome(400, "body is not a Stripe event", None)),
    }
}

/// An event applied: what it changed, and whether it had been applied before.
pub struct Applied {
    pub settled: Settled,
    pub before: Seen,
}

/// Whether an event had been applied before (a redelivery, or a sync of an
/// event a webhook brought).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Before,
    New,
}

/// One verified event, from a webhook or from a sync: account and mode
/// routing, then its effects; its seen-marker is written last, so that a
/// failure in between loses nothing.
pub fn apply_event(m: &Merchant, event: &Event) -> Result<Applied, PluginError> {
    let ignored = |note: &str| Applied {
        settled: Settled {
            transitions: Vec::new(),
            note: note.to_string(),
        },
        before: Seen::New,
    };
    let expected_account = (!m.account_id.is_empty()).then_some(m.account_id.as_str());
    // Answered 200 so that Stripe stops sending it, counted, and reported in the reason.
    if event.account.as_deref() != expected_account {
        imports::count("foreign-account-events")?;
        return Ok(ignored("event for another account; ignored"));
    }
    if event.livemode() != m.livemode {
        imports::count("other-mode-events")?;
        return Ok(ignored("event for the other mode (live/test); ignored"));
    }
    let seen_key = format!("event:{}", event.id);
    let before = if kv::get(&seen_key).map_err(kv_failure)?.is_some() {
        Seen::Before
    } else {
        Seen::New
    };
    // A redelivery recomputes the same transitions but tells no one again.
    let tell = match before {
        Seen::Before => Tell::Nobody,
        Seen::New => Tell::Both,
    };
    let mut settled = effects(m, event, tell)?;
    // Written last: if anything above failed, Stripe's redelivery redoes it all.
    if before == Seen::New {
        let keep = imports::Keep::StripesEventWindow.ttl_ms();
        kv::compare_and_swap(&seen_key, None, b"1", keep).map_err(kv_failure)?;
    } else {
        settled.note = format!("duplicate delivery; {}", settled.note);
    }
    Ok(Applied { settled, before })
}

fn not_ours() -> Result<Settled, PluginError> {
    imports::count("not-ours-events")?;
    Ok(Settled {
        transitions: Vec::new(),
        note: "not an invoice of this plugin; ignored".into(),
    })
}

/// Money arrived for the invoice: any other open session is expired, and
/// what that reveals (a session paid meanwhile) is reported too.
fn with_leftover_closed(
    m: &Merchant,
    invoice: &str,
    paid_session: Option<&str>,
    mut settled: Settled,
) -> Result<Settled, PluginError> {
    collect::close_leftover_session(m, invoice, paid_session, &mut settled.transitions)?;
    Ok(settled)
}

/// Whether `news` about PaymentIntent `pi` contradicts what the record
/// already knows of it: processing or a request for action after it failed
/// (Checkout retries a declined PaymentIntent in the same session, or the
/// event is late), or a failure while it is the debit in flight (a late
/// decline of an earlier try).
fn contradicts(invoice: &str, pi: &str, news: PaymentNews) -> Result<bool, PluginError> {
    // Only these can contradict: the record is not read for the others
    // (`succeeded` is the hot path).
    let after_failure = matches!(news, PaymentNews::Processing | PaymentNews::RequiresAction);
    if !after_failure && !news.ends_it() {
        return Ok(false);
    }
    let Some(rec) = record::load(invoice)? else {
        return Ok(false);
    };
    Ok(if news.ends_it() {
        rec.in_flight.as_deref() == Some(pi)
    } else {
        rec.failed_refs.iter().any(|f| f == pi)
    })
}

/// Whether `news` (a failure, a request for action, a cancel) is about a
/// payment of an attempt the invoice has moved past (an off-session charge,
/// or a Checkout Session since closed): the invoice moved to a new attempt
/// when that was heard, so a late copy of it must not undo what the newer
/// attempt did. (Money is never ignored: success and processing are not asked.)
fn overtaken_attempt(invoice: &str, o: &Obj, news: PaymentNews) -> Result<bool, PluginError> {
    if !matches!(
        news,
        PaymentNews::Failed | PaymentNews::RequiresAction | PaymentNews::Canceled
    ) {
        return Ok(false);
    }
    let Some(attempt) = o
        .metadata
        .as_ref()
        .and_then(|md| md.attempt.as_deref())
        .and_then(|a| a.parse::<u32>().ok())
    else {
        return Ok(false);
    };
    // The outcome that set the state itself (a decline heard when it was
    // made) is not stale: recomputing it changes nothing.
    Ok(record::load(invoice)?
        .is_some_and(|r| attempt < r.attempt && r.outcome_ref.as_deref() != Some(o.id())))
}

/// News about a PaymentIntent of the invoice. Events are snapshots that
/// arrive in any order: one that contradicts the record is checked against
/// the PaymentIntent as Stripe holds it now, which decides.
fn payment_intent_news(
    m: &Merchant,
    invoice: &str,
    event_object: &Obj,
    news: PaymentNews,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let pi_id = event_object.payment_ref();
    if overtaken_attempt(invoice, event_object, news)? {
        return Ok(Settled {
            transitions: Vec::new(),
            note: format!("ignored: {} of an earlier attempt ({pi_id})", news.name()),
        });
    }
    if !contradicts(invoice, &pi_id, news)? {
        return payment_intent_effects(m, invoice, event_object, news, tell);
    }
    let current = imports::stripe(m, &request::retrieve_payment_intent(&pi_id))?;
    match current.status().and_then(PaymentNews::of_status) {
        Some(now) => payment_intent_effects(m, invoice, &current, now, tell),
        None => Ok(Settled {
            transitions: Vec::new(),
            note: format!(
                "ignored: {} ({pi_id}) is not what Stripe holds now",
                news.name()
            ),
        }),
    }
}

fn payment_intent_effects(
    m: &Merchant,
    invoice: &str,
    o: &Obj,
    news: PaymentNews,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let amount = o.amount_taken().unwrap_or(0);
    // A decline on Checkout's page: the customer is still there and can try
    // again, so no one is emailed (a failed debit is told by the session's
    // async_payment_failed, with the emails).
    let tell = if o.via_checkout() { Tell::Nobody } else { tell };
    match news {
        PaymentNews::Succeeded => {
            let s = settle::paid(m, invoice, o.id(), amount, o.currency(), tell)?;
            if o.via_checkout() {
                let _kept = collect::keep_saved_method(m, invoice, o)?;
            }
            with_leftover_closed(m, invoice, None, s)
        }
        PaymentNews::Processing => {
            let s = settle::processing(invoice, o.id(), amount)?;
            with_leftover_closed(m, invoice, None, s)
        }
        PaymentNews::Canceled => settle::canceled(invoice, o.id()),
        PaymentNews::RequiresAction => settle::action_required(
            m,
            invoice,
            o.id(),
            "the bank asks the customer to confirm",
            tell,
        ),
        PaymentNews::Failed => payment_failed(m, invoice, o, tell),
    }
}

/// A PaymentIntent failed: counted after any payment the invoice's current
/// session took meanwhile.
fn payment_failed(
    m: &Merchant,
    invoice: &str,
    o: &Obj,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let mut found = Vec::new();
    collect::settle_current_session(m, invoice, &mut found)?;
    Ok(after(found, settle::intent_failed(m, invoice, o, tell)?))
}

/// The invoice a PaymentIntent names in its metadata, asked of Stripe; a
/// PaymentIntent Stripe does not know is nobody's.
fn payment_intent_invoice(m: &Merchant, pi: &str) -> Result<Option<String>, PluginError> {
    match imports::call(m, &request::retrieve_payment_intent(pi)) {
        Ok(p) => Ok(p
            .invoice_id()
            .or_else(|| p.legacy_invoice_id())
            .map(str::to_string)),
        Err(imports::CallError::Stripe(f)) if f.error.status == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `found` (what Stripe showed first), then what the event itself settled.
fn after(mut found: Vec<Transition>, settled: Settled) -> Settled {
    found.extend(settled.transitions);
    Settled {
        transitions: found,
        note: settled.note,
    }
}

fn noted(t: Transition, note: &str) -> Result<Settled, PluginError> {
    Ok(Settled {
        transitions: vec![t],
        note: note.into(),
    })
}

/// The invoice a payment-related object belongs to: the plugin's metadata
/// (or 0.1's plain key), else the payment it was made by. Only an invoice the
/// plugin collects for this merchant counts: anything else is acknowledged
/// and ignored, never refused, since Stripe disables an endpoint that keeps
/// failing and that would stop all reconciliation.
fn invoice_of(m: &Merchant, o: &Obj) -> Result<Option<String>, PluginError> {
    let named = match o.invoice_id().or_else(|| o.legacy_invoice_id()) {
        Some(id) => Some(id.to_string()),
        None => match o.payment_intent() {
            Some(pi) => match settle::invoice_of_payment(pi)? {
                Some(id) => Some(id),
                // The map is kept for Stripe's event window; a dispute can
                // come months later: the PaymentIntent's metadata says.
                None => payment_intent_invoice(m, pi)?,
            },
            None => None,
        },
    };
    match named {
        Some(id) if record::load(&id)?.is_some() => Ok(Some(id)),
        _ => Ok(None),
    }
}

/// What the event changes, by its family.
fn effects(m: &Merchant, e: &Event, tell: Tell) -> Result<Settled, PluginError> {
    let o = e.object();
    match e.kind() {
        EventKind::Session(news) => session_effects(m, o, news, tell),
        EventKind::PaymentIntent(news) => match invoice_of(m, o)? {
            Some(invoice) => payment_intent_news(m, &invoice, o, news, tell),
            None => not_ours(),
        },
        EventKind::Refund(news) => refund_effects(m, o, news),
        EventKind::Dispute(news) => dispute_effects(m, o, news),
        EventKind::CardOnFile(news) => card_on_file_effects(m, e, news),
        EventKind::Account(news) => account_effects(m, e, news),
        EventKind::Other => ignored(&e.kind),
    }
}

fn session_effects(
    m: &Merchant,
    o: &Obj,
    news: SessionNews,
    tell: Tell,
) -> Result<Settled, PluginError> {
    let Some(invoice) = invoice_of(m, o)? else {
        return not_ours();
    };
    let invoice = invoice.as_str();
    let pi = o.payment_ref();
    match news {
        SessionNews::Expired => {
            record::drop_session(invoice, o.id())?;
            Ok(Settled {
                transitions: Vec::new(),
                note: "session expired; the pay link will open a new one".into(),
            })
        }
        SessionNews::AsyncPaymentFailed => {
            let mut found = Vec::new();
            collect::settle_current_session(m, invoice, &mut found)?;
            let reason = Reason {
                invoice_id: invoice,
                attempt_ref: &pi,
                message: "the delayed payment (bank debit) failed",
                code: Some("async_payment_failed"),
                decline_code: None,
                advice_code: None,
            };
            let how = crate::dunning::Failed {
                channel: crate::dunning::Channel::Checkout,
                soft: false,
                retry: 0,
            };
            Ok(after(found, settle::failed(m, &reason, how, tell)?))
        }
        SessionNews::AsyncPaymentSucceeded => {
            let s = settle::paid(m, invoice, &pi, o.amount_total(), o.currency(), tell)?;
            with_leftover_closed(m, invoice, Some(o.id()), s)
        }
        // A debit submitted in a session whose earlier card try was
        // declined: Stripe's PaymentIntent says whether it still stands.
        SessionNews::Completed
            if o.payment_status() == Some("unpaid")
                && contradicts(invoice, &pi, PaymentNews::Processing)? =>
        {
            payment_intent_news(m, invoice, o, PaymentNews::Processing, tell)
        }
        SessionNews::Completed => {
            let s = settle::session_completed(m, invoice, o, tell)?;
            with_leftover_closed(m, invoice, Some(o.id()), s)
        }
    }
}

/// Events carry a snapshot, and arrive in any order: the charge as Stripe
/// holds it now has the latest cumulative refunded amount.
fn refund_effects(m: &Merchant, o: &Obj, news: RefundNews) -> Result<Settled, PluginError> {
    let charge_id = match news {
        RefundNews::ChargeRefunded => Some(o.id()),
        RefundNews::RefundUpdated => o.charge(),
    };
    let Some(charge_id) = charge_id.filter(|c| !c.is_empty()) else {
        return not_ours();
    };
    if invoice_of(m, o)?.is_none() {
        return not_ours();
    }
    let charge = imports::stripe(m, &request::retrieve_charge(charge_id))?;
    let Some(invoice) = invoice_of(m, &charge)? else {
        return not_ours();
    };
    settle::refunded(&invoice, &charge.payment_ref(), charge.amount_refunded())
}

fn dispute_effects(m: &Merchant, o: &Obj, news: DisputeNews) -> Result<Settled, PluginError> {
    let Some(invoice) = invoice_of(m, o)? else {
        return not_ours();
    };
    // Closed with the money kept: won, an inquiry closed without a
    // chargeback (warning_closed), prevented, or answered by a refund
    // (the refund's own event counts that money).
    // https://docs.stripe.com/api/disputes/object#dispute_object-status
    let status = match (news, o.status()) {
        (DisputeNews::Created, _) => DisputeStatus::Opened,
        (_, Some("won" | "warning_closed" | "prevented" | "charge_refunded")) => DisputeStatus::Won,
        (_, Some("lost")) => DisputeStatus::Lost,
        _ => {
            return Ok(Settled {
                transitions: Vec::new(),
                note: "dispute closed without a verdict".into(),
            });
        }
    };
    settle::disputed(
        &invoice,
        o.id(),
        &o.payment_ref(),
        status,
        o.amount().unwrap_or(0),
    )
}

fn card_on_file_effects(m: &Merchant, e: &Event, news: CardNews) -> Result<Settled, PluginError> {
    let o = e.object();
    let (customer, method, note) = match news {
        CardNews::Saved => (o.customer(), o.payment_method(), "card on file saved"),
        CardNews::Removed => {
            let before = e
                .data
                .previous_attributes
                .as_ref()
                .and_then(|p| p.customer());
            (o.customer().or(before), None, "card on file removed")
        }
        CardNews::Renewed => (o.customer(), Some(o.id()), "card on file renewed"),
    };
    let Some(customer) = customer else {
        return not_ours();
    };
    if let (CardNews::Saved, Some(card)) = (news, method)
        && o.channel() == Some(request::CARD_PAGE)
    {
        // Saved on the customer's card page: it replaces the default.
        imports::stripe(m, &request::set_default_payment_method(customer, card))?;
    }
    if news == CardNews::Renewed {
        // A decline of the card before this no longer bars it (`collect`).
        imports::kv_set(&collect::renewal_key(o.id()), &e.id, imports::Keep::Always)?;
        let default = imports::stripe(m, &request::retrieve_customer(customer))?;
        if default
            .default_payment_method()
            .is_some_and(|d| Some(d) != method)
        {
            return Ok(Settled {
                transitions: Vec::new(),
                note: "a card renewed that is not the default".into(),
            });
        }
    }
    noted(
        Transition::CardOnFileChanged(CardOnFile {
            stripe_customer_id: customer.into(),
            payment_method_id: method.map(Into::into),
        }),
        note,
    )
}

fn account_effects(m: &Merchant, e: &Event, news: AccountNews) -> Result<Settled, PluginError> {
    let o = e.object();
    match news {
        AccountNews::Updated => account_updated(m, o),
        AccountNews::Deauthorized => {
            let account = e.account.clone().unwrap_or_else(|| m.account_id.clone());
            noted(
                Transition::AccountDisconnected(account),
                "merchant disconnected the platform",
            )
        }
    }
}

/// Stripe's news of a connected account: reported to the host, and, for
/// the merchant's own account, collection paused while it is restricted
/// (the merchant emailed once, with a fresh Account Link) and resumed when
/// charges are enabled again.
fn account_updated(m: &Merchant, o: &Obj) -> Result<Settled, PluginError> {
    let charges_enabled = o.charges_enabled == Some(true);
    let past_due = o
        .requirements
        .as_ref()
        .and_then(|r| r.past_due.clone())
        .unwrap_or_default();
    let restricted = health::restricted_by(charges_enabled, &past_due);
    let transitions = vec![Transition::AccountUpdated(AccountStatus {
        account_id: o.id().into(),
        charges_enabled,
        details_submitted: o.details_submitted == Some(true),
        restricted,
    })];
    if o.id() != m.account_id || m.account_id.is_empty() {
        return Ok(Settled {
            transitions,
            note: "account updated".into(),
        });
    }
    let moved = health::note(o.id(), restricted, &mut |episode| {
        let base = m.pay_link_base.trim_end_matches('/');
        let back = format!("{base}/onboarding");
        let link = super::onboarding::account_link(m, &m.account_id, &back)?;
        notify::account_restricted(m, o.id(), &past_due, &link.0, episode)
    })?;
    let note = match moved {
        health::Moved::Restricted(_) => "account restricted",
        health::Moved::Restored => "account restored",
        health::Moved::Same => "account updated",
    };
    Ok(Settled {
        transitions,
        note: note.into(),
    })
}

fn ignored(kind: &str) -> Result<Settled, PluginError> {
    imports::count(&format!("ignored-events:{kind}"))?;
    Ok(Settled {
        transitions: Vec::new(),
        note: format!("{kind} is not handled; ignored"),
    })
}
