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

/// What Stripe reported about an attempt to pay the invoice. (Refunds and
/// disputes are not facts of this machine: once money is in, the state is
/// derived from the money and the disputes by `settled_state`.)
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
    pub fn status(self) -> crate::contract::PaymentStatus {
        use crate::contract::PaymentStatus as P;
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
        _ => return Step::Ignore,
    };
    Step::To(to)
}

/// What an invoice holds once money has arrived, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holdings {
    pub due: u64,
    pub paid: u64,
    pub refunded: u64,
    /// Disputed in disputes still open.
    pub disputed: u64,
    /// Gone back through the bank in disputes that were lost.
    pub lost: u64,
}

impl Holdings {
    /// What the merchant keeps: paid, less refunds and lost disputes.
    pub fn kept(&self) -> u64 {
        self.paid
            .saturating_sub(self.refunded)
            .saturating_sub(self.lost)
    }
}

/// Where an invoice stands once money has arrived. It is derived from the
/// money and the disputes' amounts, never from the order in which Stripe's
/// news came, so every delivery order ends in the same state. What is kept
/// is what was paid less refunds and lost disputes: refunding an
/// overpayment leaves it paid, and so does losing a dispute of a duplicate
/// payment while the rest still covers the invoice.
pub fn settled_state(h: Holdings) -> PayState {
    let kept = h.kept();
    if h.disputed > 0 && kept.saturating_sub(h.disputed) < h.due {
        PayState::Disputed
    } else if h.lost > 0 && kept < h.due {
        PayState::DisputeLost
    } else if h.refunded > 0 && kept == 0 {
        PayState::Refunded
    } else if kept >= h.due {
        PayState::Paid
    } else if h.refunded > 0 {
        PayState::PartiallyRefunded
    } else {
        PayState::PartiallyPaid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACTS: [Fact; 6] = [
        Fact::Processing,
        Fact::ActionRequired,
        Fact::Failed,
        Fact::Canceled,
        Fact::PaidShort,
        Fact::PaidFull,
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
    /// Columns: processing, action, failed, canceled, paid-short, paid-full.
    const TABLE: &str = "
open  proc actn fail open part paid
proc  proc -    fail open part paid
actn  proc actn fail open part paid
fail  proc actn fail open part paid
part  proc -    part part part paid
paid  -    -    -    -    -    paid
prfd  -    -    -    -    -    -
rfnd  -    -    -    -    -    -
disp  -    -    -    -    -    -
lost  -    -    -    -    -    -";

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

    /// Every combination of the money and the disputes, with the state it
    /// derives: due 100; paid, refunded, disputed (open), lost.
    #[test]
    fn the_settled_state_follows_the_money_and_the_disputes() {
        let h = |paid, refunded, disputed, lost| Holdings {
            due: 100,
            paid,
            refunded,
            disputed,
            lost,
        };
        let cases = [
            (h(40, 0, 0, 0), PayState::PartiallyPaid),
            (h(100, 0, 0, 0), PayState::Paid),
            (h(200, 0, 0, 0), PayState::Paid),
            (h(100, 30, 0, 0), PayState::PartiallyRefunded),
            (h(40, 10, 0, 0), PayState::PartiallyRefunded),
            (h(100, 100, 0, 0), PayState::Refunded),
            (h(200, 100, 0, 0), PayState::Paid),
            (h(200, 200, 0, 0), PayState::Refunded),
            (h(40, 0, 40, 0), PayState::Disputed),
            (h(100, 30, 100, 0), PayState::Disputed),
            (h(100, 0, 100, 100), PayState::Disputed),
            (h(100, 0, 0, 100), PayState::DisputeLost),
            // Paid twice, the duplicate disputed: the first still covers it.
            (h(200, 0, 100, 0), PayState::Paid),
            (h(200, 0, 0, 100), PayState::Paid),
            // ... unless part of the first was refunded meanwhile.
            (h(200, 30, 0, 100), PayState::DisputeLost),
            (h(200, 30, 100, 0), PayState::Disputed),
        ];
        for (holdings, state) in cases {
            assert_eq!(settled_state(holdings), state, "{holdings:?}");
        }
    }
}
