//! What the plugin remembers of each invoice it collects, in kv: its payment
//! state, amounts in minor units, the payments counted, the attempt number
//! that keys idempotent requests, its open session and its pay-link token.
//! Updates go through compare-and-swap, so concurrent handlers never lose one.

use crate::contract::PluginError;
use crate::host::kv;
use crate::imports::kv_failure;
use crate::payment_state::{Fact, Holdings, PayState, Step, next, settled_state};

/// Where one dispute stands. A closed one never reopens: a late "created"
/// for it is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeStage {
    Open,
    /// Closed with the money kept (won, or an inquiry closed without a chargeback).
    Won,
    /// Closed with the money gone back through the bank.
    Lost,
}

impl DisputeStage {
    fn name(self) -> &'static str {
        match self {
            DisputeStage::Open => "open",
            DisputeStage::Won => "won",
            DisputeStage::Lost => "lost",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [DisputeStage::Open, DisputeStage::Won, DisputeStage::Lost]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// Why collection through Stripe stopped (the contract's `collection-stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    NothingDue,
    StripeRemoved,
    Void,
    PaidOutsideStripe,
    Uncollectible,
}

impl Stop {
    const ALL: [Stop; 5] = [
        Stop::NothingDue,
        Stop::StripeRemoved,
        Stop::Void,
        Stop::PaidOutsideStripe,
        Stop::Uncollectible,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stop::NothingDue => "nothing_due",
            Stop::StripeRemoved => "stripe_removed",
            Stop::Void => "void",
            Stop::PaidOutsideStripe => "paid_outside_stripe",
            Stop::Uncollectible => "uncollectible",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// A decision of the platform's about the invoice itself (voided, paid
    /// another way, written off): sending the invoice again never undoes
    /// it; only an explicit reopen (`OPEN` with an amount) does.
    pub fn for_good(self) -> bool {
        matches!(
            self,
            Stop::Void | Stop::PaidOutsideStripe | Stop::Uncollectible
        )
    }

    /// Whether, once stopped this way, nothing more is owed through Stripe:
    /// money arriving after it is an overpayment.
    pub fn nothing_owed(self) -> bool {
        self != Stop::StripeRemoved
    }
}

/// One dispute of one of the invoice's payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeEntry {
    pub id: String,
    pub stage: DisputeStage,
    /// What the dispute holds back (minor units). Records written before
    /// amounts were kept have none: such a dispute counts as all the money.
    pub amount: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    /// Grows by one with every stored change; `status-changed` carries it so
    /// that a host can drop a status that a newer one has overtaken.
    pub rev: u64,
    pub state: PayState,
    pub number: String,
    pub currency: String,
    /// Amount due when finalized, in Stripe's minor units.
    pub due: u64,
    pub paid: u64,
    pub refunded: u64,
    /// Payments counted in `paid`, in the order they were counted, with their
    /// amounts: a redelivery counts nothing twice.
    pub payments: Vec<(String, u64)>,
    /// Keys idempotent requests; bumped after a declined charge or an expired session.
    pub attempt: u32,
    /// When this attempt's off-session charge was first sent (ms): Stripe
    /// keeps an idempotency key for 24 hours, so after that the key must not
    /// be sent again before Stripe is asked what the first request did.
    pub charge_sent_ms: Option<u64>,
    /// The Checkout Session behind the pay link, while one may be open.
    pub session: Option<String>,
    pub token: String,
    pub customer_id: String,
    pub stripe_customer: String,
    /// Where customer emails go (billing emails, else the contact email).
    pub emails: Vec<String>,
    /// The invoice's own auto-charge switch.
    pub auto_charge: bool,
    /// Cumulative refunded amount per payment, as Stripe reports it.
    pub refunds: Vec<(String, u64)>,
    /// Attempts that failed at some point. Checkout retries a declined
    /// PaymentIntent in the same session, so a later "processing" of one is
    /// checked against Stripe before it is believed or dropped.
    pub failed_refs: Vec<String>,
    /// The PaymentIntent whose money is on its way (a bank debit): only its
    /// own failure can end the processing state.
    pub in_flight: Option<String>,
    /// Every dispute of the invoice's payments, where it stands and its amount.
    pub disputes: Vec<DisputeEntry>,
    /// Payments flagged and not counted (another currency): their refunds
    /// and disputes are acknowledged, never waited for.
    pub flagged: Vec<String>,
    /// Set when the platform voided, settled or emptied the invoice: nothing
    /// is collected through Stripe until it is sent again with an amount due.
    pub stopped: Option<Stop>,
    /// The excess (money kept beyond what is owed) the merchant was told of.
    pub told_excess: u64,
    /// The PaymentIntent whose failure or request for action set the state
    /// (a late copy of another, older attempt's is stale).
    pub outcome_ref: Option<String>,
    /// Payment methods that were declined or refused for this invoice: never
    /// charged off-session for it again (the customer can still use them in Checkout).
    pub declined_methods: Vec<String>,
    /// Dunning: retries of a soft-declined off-session charge made so far.
    pub retries_done: u32,
    /// When the first of those declines happened (ms): the schedule's start.
    pub first_failed_ms: Option<u64>,
    /// When the next retry is due (ms); none when none is scheduled.
    pub next_retry_ms: Option<u64>,
    /// A retry is under way (counted in `retries_done`, its outcome not yet
    /// heard): one whose answer was lost is resumed (same key), never made
    /// twice, and its charge says which retry it is.
    pub retry_running: bool,
}

impl InvoiceRecord {
    /// Whether `stripe_ref` is one of the payments counted for the invoice.
    pub fn counted(&self, stripe_ref: &str) -> bool {
        self.payments.iter().any(|(r, _)| r == stripe_ref)
    }

    /// What was counted before `stripe_ref` (all of it if it is not counted).
    pub fn paid_before(&self, stripe_ref: &str) -> u64 {
        self.payments
            .iter()
            .take_while(|(r, _)| r != stripe_ref)
            .map(|(_, a)| a)
            .sum()
    }

    /// The money and the disputes, from which a settled state is derived.
    pub fn holdings(&self) -> Holdings {
        let held = |s| {
            self.disputes
                .iter()
                .filter(|d| d.stage == s)
                .map(|d| d.amount.unwrap_or(self.paid))
                .fold(0u64, u64::saturating_add)
        };
        Holdings {
            due: self.due,
            paid: self.paid,
            refunded: self.refunded,
            disputed: held(DisputeStage::Open),
            lost: held(DisputeStage::Lost),
        }
    }

    /// What the merchant keeps of what was paid (less refunds and lost disputes).
    pub fn kept(&self) -> u64 {
        self.holdings().kept()
    }

    /// What Stripe may still rightly take in all: nothing once the platform
    /// stopped collection (voided, paid another way, nothing due).
    pub fn owed(&self) -> u64 {
        match self.stopped {
            Some(s) if s.nothing_owed() => 0,
            _ => self.due,
        }
    }

    /// Money kept beyond what is owed: what the merchant should refund.
    pub fn excess(&self) -> u64 {
        self.kept().saturating_sub(self.owed())
    }

    /// This attempt's off-session charge was sent and its outcome never
    /// heard: Stripe may have taken the money. Nothing else may charge or
    /// open a link for the invoice until that is known.
    pub fn charge_unknown(&self) -> bool {
        self.charge_sent_ms.is_some()
            && self.state.collecting()
            && self.state != PayState::Processing
    }

    /// After money moved: the state the money and the disputes say. A debit
    /// still in flight for the rest keeps a partly paid invoice processing.
    pub fn settle_state(&mut self) {
        if self.paid == 0 {
            return;
        }
        let derived = settled_state(self.holdings());
        self.state = if derived == PayState::PartiallyPaid && self.in_flight.is_some() {
            PayState::Processing
        } else {
            derived
        };
    }

    /// Records where dispute `id` stands and what it holds; a closed
    /// dispute never reopens.
    pub fn set_dispute(&mut self, id: &str, stage: DisputeStage, amount: u64) -> DisputeStage {
        match self.disputes.iter_mut().find(|d| d.id == id) {
            Some(d) if d.stage == DisputeStage::Open || stage != DisputeStage::Open => {
                d.stage = stage;
                d.amount = Some(amount);
                stage
            }
            Some(d) => d.stage,
            None => {
                self.disputes.push(DisputeEntry {
                    id: id.to_string(),
                    stage,
                    amount: Some(amount),
                });
                stage
            }
        }
    }

    /// Whether a charge may be made or a session opened for the invoice now:
    /// collection not stopped, money still due, and none on its way.
    /// A new attempt: fresh idempotency keys, nothing sent under them yet.
    pub fn next_attempt(&mut self) {
        self.attempt += 1;
        self.charge_sent_ms = None;
    }

    /// Whether this attempt's charge key may be sent (again) as it is.
    pub fn charge_key_age(&self, now_ms: u64) -> KeyAge {
        match self.charge_sent_ms {
            None => KeyAge::Unused,
            Some(t) if now_ms.saturating_sub(t) < KEY_KEPT_MS => KeyAge::Kept,
            Some(_) => KeyAge::Forgotten,
        }
    }

    pub fn takes_payment(&self) -> bool {
        self.stopped.is_none() && self.state.collecting() && self.state != PayState::Processing
    }

    pub fn outstanding(&self) -> u64 {
        self.due.saturating_sub(self.paid)
    }

    /// Total refunded if `stripe_ref`'s cumulative refund were `amount`.
    pub fn refunded_with(&self, stripe_ref: &str, amount: u64) -> u64 {
        self.refunds
            .iter()
            .filter(|(r, _)| r != stripe_ref)
            .map(|(_, a)| a)
            .sum::<u64>()
            + amount
    }

    pub fn set_refund(&mut self, stripe_ref: &str, amount: u64) {
        self.refunded = self.refunded_with(stripe_ref, amount);
        self.refunds.retain(|(r, _)| r != stripe_ref);
        self.refunds.push((stripe_ref.to_string(), amount));
    }

    /// Stored form-encoded: a format the plugin already carries a crate for.
    pub fn encode(&self) -> Vec<u8> {
        let mut f = form_urlencoded::Serializer::new(String::new());
        let num = |n: u64| n.to_string();
        f.append_pair("rev", &num(self.rev))
            .append_pair("state", self.state.name())
            .append_pair("number", &self.number)
            .append_pair("currency", &self.currency)
            .append_pair("due", &num(self.due))
            .append_pair("paid", &num(self.paid))
            .append_pair("refunded", &num(self.refunded))
            .append_pair("attempt", &num(u64::from(self.attempt)))
            .append_pair("token", &self.token)
            .append_pair("customer_id", &self.customer_id)
            .append_pair("stripe_customer", &self.stripe_customer)
            .append_pair("auto_charge", if self.auto_charge { "1" } else { "0" });
        if let Some(s) = &self.session {
            f.append_pair("session", s);
        }
        if let Some(p) = &self.in_flight {
            f.append_pair("in_flight", p);
        }
        if let Some(p) = &self.outcome_ref {
            f.append_pair("outcome", p);
        }
        if self.told_excess > 0 {
            f.append_pair("told_excess", &num(self.told_excess));
        }
        if let Some(t) = self.charge_sent_ms {
            f.append_pair("charge_sent", &num(t));
        }
        if let Some(s) = self.stopped {
            f.append_pair("stopped", s.name());
        }
        for (r, a) in &self.payments {
            f.append_pair("payment", &format!("{r} {a}"));
        }
        for (r, a) in &self.refunds {
            f.append_pair("refund", &format!("{r} {a}"));
        }
        for e in &self.emails {
            f.append_pair("email", e);
        }
        for r in &self.failed_refs {
            f.append_pair("failed_ref", r);
        }
        for d in &self.disputes {
            let entry = match d.amount {
                Some(a) => format!("{} {} {a}", d.id, d.stage.name()),
                None => format!("{} {}", d.id, d.stage.name()),
            };
            f.append_pair("dispute", &entry);
        }
        for p in &self.flagged {
            f.append_pair("flagged", p);
        }
        for m in &self.declined_methods {
            f.append_pair("declined_method", m);
        }
        if self.retries_done > 0 {
            f.append_pair("retries_done", &num(u64::from(self.retries_done)));
        }
        if let Some(t) = self.first_failed_ms {
            f.append_pair("first_failed", &num(t));
        }
        if let Some(t) = self.next_retry_ms {
            f.append_pair("next_retry", &num(t));
        }
        if self.retry_running {
            f.append_pair("retry_running", "1");
        }
        f.finish().into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = InvoiceRecord {
            rev: 0,
            state: PayState::Open,
            number: String::new(),
            currency: String::new(),
            due: 0,
            paid: 0,
            refunded: 0,
            payments: Vec::new(),
            attempt: 1,
            charge_sent_ms: None,
            session: None,
            token: String::new(),
            customer_id: String::new(),
            stripe_customer: String::new(),
            emails: Vec::new(),
            auto_charge: false,
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
        };
        for (k, v) in form_urlencoded::parse(bytes) {
            let v = v.into_owned();
            match k.as_ref() {
                "rev" => r.rev = v.parse().ok()?,
                "state" => r.state = PayState::from_name(&v)?,
                "number" => r.number = v,
                "currency" => r.currency = v,
                "due" => r.due = v.parse().ok()?,
                "paid" => r.paid = v.parse().ok()?,
                "refunded" => r.refunded = v.parse().ok()?,
                "attempt" => r.attempt = v.parse().ok()?,
                "token" => r.token = v,
                "customer_id" => r.customer_id = v,
                "stripe_customer" => r.stripe_customer = v,
                "auto_charge" => r.auto_charge = v == "1",
                "session" => r.session = Some(v),
                "stopped" => r.stopped = Some(Stop::from_name(&v)?),
                "in_flight" => r.in_flight = Some(v),
                "outcome" => r.outcome_ref = Some(v),
                "told_excess" => r.told_excess = v.parse().ok()?,
                "charge_sent" => r.charge_sent_ms = Some(v.parse().ok()?),
                "payment" => {
                    let (id, amount) = v.rsplit_once(' ')?;
                    r.payments.push((id.to_string(), amount.parse().ok()?));
                }
                "refund" => {
                    let (id, amount) = v.rsplit_once(' ')?;
                    r.refunds.push((id.to_string(), amount.parse().ok()?));
                }
                "email" => r.emails.push(v),
                "failed_ref" => r.failed_refs.push(v),
                "dispute" => r.disputes.push(decode_dispute(&v)?),
                "flagged" => r.flagged.push(v),
                "declined_method" => r.declined_methods.push(v),
                "retries_done" => r.retries_done = v.parse().ok()?,
                "first_failed" => r.first_failed_ms = Some(v.parse().ok()?),
                "next_retry" => r.next_retry_ms = Some(v.parse().ok()?),
                "retry_running" => r.retry_running = v == "1",
                _ => {}
            }
        }
        Some(r)
    }
}

/// A dispute as stored: `{id} {stage}`, then ` {amount}` since amounts are kept.
fn decode_dispute(v: &str) -> Option<DisputeEntry> {
    let (head, last) = v.rsplit_once(' ')?;
    if let Some(stage) = DisputeStage::from_name(last) {
        return Some(DisputeEntry {
            id: head.to_string(),
            stage,
            amount: None,
        });
    }
    let (id, stage) = head.rsplit_once(' ')?;
    Some(DisputeEntry {
        id: id.to_string(),
        stage: DisputeStage::from_name(stage)?,
        amount: Some(last.parse().ok()?),
    })
}

/// Stripe keeps an idempotency key for at least 24 hours
/// (https://docs.stripe.com/api/idempotent_requests); the plugin trusts it
/// for 23, so that a clock a little apart never replays a forgotten key.
pub const KEY_KEPT_MS: u64 = 23 * 3600 * 1000;

/// How old the current attempt's charge key is, as Stripe sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAge {
    /// Never sent.
    Unused,
    /// Sent, and Stripe still replays it.
    Kept,
    /// Sent too long ago: Stripe may have forgotten it.
    Forgotten,
}

pub fn key(invoice_id: &str) -> String {
    format!("invoice:{invoice_id}")
}

pub fn token_key(token: &str) -> String {
    format!("paylink:{token}")
}

pub fn load(invoice_id: &str) -> Result<Option<InvoiceRecord>, PluginError> {
    Ok(load_raw(invoice_id)?.map(|(_, r)| r))
}

fn load_raw(invoice_id: &str) -> Result<Option<(Vec<u8>, InvoiceRecord)>, PluginError> {
    let Some(raw) = kv::get(&key(invoice_id)).map_err(kv_failure)? else {
        return Ok(None);
    };
    let rec = InvoiceRecord::decode(&raw).ok_or_else(|| {
        PluginError::HostUnavailable(format!("kv record of {invoice_id} is unreadable"))
    })?;
    Ok(Some((raw, rec)))
}

/// Stores `rec` unless a record exists; returns the stored one either way.
/// The pay-link index is written first: a crash in between leaves a link that
/// answers "not found" until the retried call stores the record, never a
/// stored record whose link is lost.
pub fn create(invoice_id: &str, rec: InvoiceRecord) -> Result<InvoiceRecord, PluginError> {
    index_token(&rec.token, invoice_id)?;
    if kv::compare_and_swap(&key(invoice_id), None, &rec.encode(), None).map_err(kv_failure)? {
        return Ok(rec);
    }
    let stored = load(invoice_id)?
        .ok_or_else(|| PluginError::HostUnavailable(format!("record of {invoice_id} vanished")))?;
    // Records stored before the index came first may lack it: repaired here.
    if stored.token != rec.token {
        index_token(&stored.token, invoice_id)?;
    }
    Ok(stored)
}

fn index_token(token: &str, invoice_id: &str) -> Result<(), PluginError> {
    let key = token_key(token);
    if kv::get(&key).map_err(kv_failure)?.as_deref() != Some(invoice_id.as_bytes()) {
        kv::set(&key, invoice_id.as_bytes(), None).map_err(kv_failure)?;
    }
    Ok(())
}

/// Applies `change` with compare-and-swap, retrying when another handler won
/// the race. `change` returns false to leave the record as it is.
/// (`dyn`, not generic: one copy of this loop in the component, not one per caller.)
pub fn update(
    invoice_id: &str,
    change: &mut dyn FnMut(&mut InvoiceRecord) -> bool,
) -> Result<Option<InvoiceRecord>, PluginError> {
    for _ in 0..8 {
        let Some((raw, mut rec)) = load_raw(invoice_id)? else {
            return Ok(None);
        };
        if !change(&mut rec) {
            return Ok(Some(rec));
        }
        // A repeat (a redelivered event) often changes nothing: no write then.
        if rec.encode() == raw {
            return Ok(Some(rec));
        }
        rec.rev += 1;
        if kv::compare_and_swap(&key(invoice_id), Some(&raw), &rec.encode(), None)
            .map_err(kv_failure)?
        {
            return Ok(Some(rec));
        }
    }
    Err(PluginError::HostUnavailable(format!(
        "record of {invoice_id} kept changing; retry"
    )))
}

/// Forgets a session that can no longer take money (expired or closed); the
/// next one gets a new attempt number, so its idempotency key is fresh.
pub fn drop_session(invoice_id: &str, session_id: &str) -> Result<(), PluginError> {
    update(invoice_id, &mut |r| {
        let ours = r.session.as_deref() == Some(session_id);
        if ours {
            r.session = None;
            r.next_attempt();
        }
        ours
    })?;
    Ok(())
}

/// How long a call may hold an invoice's lease: longer than any one Stripe
/// call may take, short enough that a crashed holder blocks only briefly.
const LEASE_MS: u64 = 120_000;

/// Runs `work` holding the invoice's lease, so that one call at a time charges
/// it or opens a session for it: an auto-charge never runs beside a session
/// being opened. A call that finds the lease held gets `not-ready`, and its
/// retry finds the outcome. The lease is a kv entry taken by compare-and-swap,
/// with a time to live, so a crashed holder cannot keep it.
pub fn with_lease<T>(
    invoice_id: &str,
    work: &mut dyn FnMut() -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    let key = format!("lease:{invoice_id}");
    // An expired lease reads as absent, so a crashed holder's is free again.
    let mine = crate::imports::now_ms().to_string().into_bytes();
    if !kv::compare_and_swap(&key, None, &mine, Some(LEASE_MS)).map_err(kv_failure)? {
        return Err(PluginError::NotReady(format!(
            "invoice {invoice_id} is being charged or linked by another call; retry shortly"
        )));
    }
    let out = work();
    // Released only if still ours; a failure to release just lets it expire.
    if kv::get(&key).ok().flatten().as_deref() == Some(&mine[..]) {
        let _ = kv::delete(&key);
    }
    out
}

/// The result of offering a fact to an invoice's state machine.
pub enum Advanced {
    /// Legal: the record after the move (`before` is the state it left).
    Moved {
        rec: InvoiceRecord,
        before: PayState,
    },
    /// Out of order: nothing changed.
    Ignored { state: PayState },
}

/// Moves the invoice by `fact`, and lets `adjust` update amounts in the same swap.
/// An invoice the plugin has no record of is `not-ready`: Stripe will redeliver.
pub fn advance(
    invoice_id: &str,
    fact: &dyn Fn(&InvoiceRecord) -> Fact,
    adjust: &dyn Fn(&mut InvoiceRecord),
) -> Result<Advanced, PluginError> {
    let mut outcome = None;
    let rec = update(invoice_id, &mut |rec| {
        let before = rec.state;
        match next(before, fact(rec)) {
            Step::To(state) => {
                rec.state = state;
                // After the move, so that amounts can refine the state (a won
                // dispute returns to "partially refunded" if refunds were made).
                adjust(rec);
                outcome = Some(before);
                true
            }
            Step::Ignore => {
                outcome = None;
                false
            }
        }
    })?
    .ok_or_else(|| {
        PluginError::NotReady(format!(
            "invoice {invoice_id} has not been finalized here yet"
        ))
    })?;
    Ok(match outcome {
        Some(before) => Advanced::Moved { rec, before },
        None => Advanced::Ignored { state: rec.state },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_its_encoding() {
        let mut rec =
            InvoiceRecord::decode(b"state=paid&number=INV+1&currency=GBP&due=120000").unwrap();
        rec.paid = 120000;
        rec.payments = vec![("pi_1".into(), 100000), ("pi&2".into(), 20000)];
        rec.session = Some("cs_1".into());
        rec.emails = vec!["a@example.com".into(), "b=c@example.com".into()];
        rec.set_refund("pi_1", 500);
        rec.auto_charge = true;
        rec.failed_refs = vec!["pi_0".into()];
        rec.disputes = vec![
            DisputeEntry {
                id: "dp_1".into(),
                stage: DisputeStage::Won,
                amount: Some(500),
            },
            DisputeEntry {
                id: "dp 2".into(),
                stage: DisputeStage::Open,
                amount: None,
            },
        ];
        rec.flagged = vec!["pi_usd".into()];
        rec.declined_methods = vec!["pm_1".into()];
        rec.stopped = Some(Stop::PaidOutsideStripe);
        rec.in_flight = Some("pi_3".into());
        rec.outcome_ref = Some("pi_0".into());
        rec.told_excess = 700;
        rec.retries_done = 2;
        rec.first_failed_ms = Some(1_000);
        rec.next_retry_ms = Some(2_000);
        rec.retry_running = true;
        assert_eq!(InvoiceRecord::decode(&rec.encode()), Some(rec));
        assert_eq!(InvoiceRecord::decode(b"state=bogus"), None);
    }
}
