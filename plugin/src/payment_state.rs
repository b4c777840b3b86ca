//! An invoice's payment state as a small state machine. Webhooks arrive at
//! least once and in any order; this table decides which facts may move an
//! invoice, so that a late failure never un-pays it and a duplicate changes
//! nothing. Every (state, fact) pair has a defined step.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayState {
    Open,
    Processing,
    ActionRequired,
    Failed,
    PartiallyPaid,
    Paid,
    PartiallyRefunded,
    Refunded,
    Disputed,
    DisputeLost,
}

/// What Stripe reported about a payment of the invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    Processing,
    ActionRequired,
    Failed,
    Canceled,
    /// Money arrived, but the invoice is still short.
    PaidShort,
    /// Money arrived and covers the invoice.
    PaidFull,
    RefundedPartly,
    RefundedFully,
    DisputeOpened,
    DisputeWon,
    DisputeLost,
}

/// The outcome of a fact in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Legal: the invoice moves (possibly to the same state: a repeat is idempotent).
    To(PayState),
    /// Out of order or contradictory: nothing changes, and it is reported.
    Ignore,
}

impl PayState {
    pub const ALL: [PayState; 10] = [
        PayState::Open,
        PayState::Processing,
        PayState::ActionRequired,
        PayState::Failed,
        PayState::PartiallyPaid,
        PayState::Paid,
        PayState::PartiallyRefunded,
        PayState::Refunded,
        PayState::Disputed,
        PayState::DisputeLost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PayState::Open => "open",
            PayState::Processing => "processing",
            PayState::ActionRequired => "action_required",
            PayState::Failed => "failed",
            PayState::PartiallyPaid => "partially_paid",
            PayState::Paid => "paid",
            PayState::PartiallyRefunded => "partially_refunded",
            PayState::Refunded => "refunded",
            PayState::Disputed => "disputed",
            PayState::DisputeLost => "dispute_lost",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The contract's name for this state.
    pub fn status(self) -> crate::bindings::billing::stripe_plugin::types::PaymentStatus {
        use crate::bindings::billing::stripe_plugin::types::PaymentStatus as P;
        match self {
            PayState::Open => P::Open,
            PayState::Processing => P::Processing,
            PayState::ActionRequired => P::ActionRequired,
            PayState::Failed => P::Failed,
            PayState::PartiallyPaid => P::PartiallyPaid,
            PayState::Paid => P::Paid,
            PayState::PartiallyRefunded => P::PartiallyRefunded,
            PayState::Refunded => P::Refunded,
            PayState::Disputed => P::Disputed,
            PayState::DisputeLost => P::DisputeLost,
        }
    }

    /// Still waiting for (the rest of) its money.
    pub fn collecting(self) -> bool {
        matches!(
            self,
            PayState::Open
                | PayState::Processing
                | PayState::ActionRequired
                | PayState::Failed
                | PayState::PartiallyPaid
        )
    }

    /// Money arrived at some point (refunds and disputes come after that).
    pub fn settled(self) -> bool {
        !self.collecting()
    }
}

pub fn next(state: PayState, fact: Fact) -> Step {
    use Fact as F;
    use PayState as S;
    let to = match (fact, state) {
        (
            F::Processing,
            S::Open | S::Failed | S::ActionRequired | S::Processing | S::PartiallyPaid,
        ) => S::Processing,
        (F::ActionRequired, S::Open | S::Failed | S::ActionRequired) => S::ActionRequired,
        (F::Failed, S::Open | S::Failed | S::ActionRequired | S::Processing) => S::Failed,
        // A failed top-up leaves what was paid in place.
        (F::Failed, S::PartiallyPaid) => S::PartiallyPaid,
        (F::Canceled, S::Open | S::Failed | S::ActionRequired | S::Processing) => S::Open,
        (F::Canceled, S::PartiallyPaid) => S::PartiallyPaid,
        (F::PaidShort, s) if s.collecting() => S::PartiallyPaid,
        (F::PaidFull, s) if s.collecting() => S::Paid,
        (F::PaidFull, S::Paid) => S::Paid,
        (F::RefundedPartly, S::Paid | S::PartiallyPaid | S::PartiallyRefunded) => {
            S::PartiallyRefunded
        }
        (F::RefundedFully, S::Paid | S::PartiallyPaid | S::PartiallyRefunded | S::Refunded) => {
            S::Refunded
        }
        (F::DisputeOpened, S::Paid | S::PartiallyPaid | S::PartiallyRefunded | S::Disputed) => {
            S::Disputed
        }
        (F::DisputeWon, S::Disputed | S::Paid) => S::Paid,
        (F::DisputeLost, S::Disputed | S::DisputeLost) => S::DisputeLost,
        _ => return Step::Ignore,
    };
    Step::To(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACTS: [Fact; 11] = [
        Fact::Processing,
        Fact::ActionRequired,
        Fact::Failed,
        Fact::Canceled,
        Fact::PaidShort,
        Fact::PaidFull,
        Fact::RefundedPartly,
        Fact::RefundedFully,
        Fact::DisputeOpened,
        Fact::DisputeWon,
        Fact::DisputeLost,
    ];

    fn code(s: PayState) -> &'static str {
        match s {
            PayState::Open => "open",
            PayState::Processing => "proc",
            PayState::ActionRequired => "actn",
            PayState::Failed => "fail",
            PayState::PartiallyPaid => "part",
            PayState::Paid => "paid",
            PayState::PartiallyRefunded => "prfd",
            PayState::Refunded => "rfnd",
            PayState::Disputed => "disp",
            PayState::DisputeLost => "lost",
        }
    }

    /// The whole table, one row per state, one column per fact, "-" = ignored.
    /// Columns: processing, action, failed, canceled, paid-short, paid-full,
    /// refunded-partly, refunded-fully, dispute-opened, dispute-won, dispute-lost.
    const TABLE: &str = "
open  proc actn fail open part paid -    -    -    -    -
proc  proc -    fail open part paid -    -    -    -    -
actn  proc actn fail open part paid -    -    -    -    -
fail  proc actn fail open part paid -    -    -    -    -
part  proc -    part part part paid prfd rfnd disp -    -
paid  -    -    -    -    -    paid prfd rfnd disp paid -
prfd  -    -    -    -    -    -    prfd rfnd disp -    -
rfnd  -    -    -    -    -    -    -    rfnd -    -    -
disp  -    -    -    -    -    -    -    -    disp paid lost
lost  -    -    -    -    -    -    -    -    -    -    lost";

    #[test]
    fn every_state_and_fact_has_the_step_the_table_gives() {
        let rows: Vec<Vec<&str>> = TABLE
            .trim()
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows.len(), PayState::ALL.len());
        for (row, state) in rows.iter().zip(PayState::ALL) {
            assert_eq!(row[0], code(state));
            for (cell, fact) in row[1..].iter().zip(FACTS) {
                let got = match next(state, fact) {
                    Step::To(s) => code(s),
                    Step::Ignore => "-",
                };
                assert_eq!(got, *cell, "{state:?} + {fact:?}");
            }
        }
    }

    #[test]
    fn a_late_failure_never_unpays_and_repeats_are_idempotent() {
        assert_eq!(next(PayState::Paid, Fact::Failed), Step::Ignore);
        assert_eq!(next(PayState::Paid, Fact::Processing), Step::Ignore);
        assert_eq!(
            next(PayState::Paid, Fact::PaidFull),
            Step::To(PayState::Paid)
        );
        assert_eq!(next(PayState::Refunded, Fact::PaidFull), Step::Ignore);
    }
}
