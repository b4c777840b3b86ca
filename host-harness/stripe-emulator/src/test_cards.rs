//! Stripe's test cards and test bank accounts, with what each one does.
//! https://docs.stripe.com/testing#cards
//! https://docs.stripe.com/testing#declined-payments
//! https://docs.stripe.com/testing#regulatory-cards (3-D Secure)
//! https://docs.stripe.com/testing#sepa-direct-debit
//!
//! Only the decline codes the page lists are used; Stripe documents no
//! `advice_code` for its test cards, so none is made up here.

/// Why a card is declined: Stripe's `code`, `decline_code` and message.
#[derive(Clone, Copy, Debug)]
pub struct Decline {
    pub code: &'static str,
    pub decline_code: Option<&'static str>,
    pub message: &'static str,
}

/// What a test card does.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    Succeeds,
    /// Declined when charged, and when attached to a customer (Stripe checks
    /// a card as it is saved).
    Declines(Decline),
    /// Attaches, then every charge is declined (4000 0000 0000 0341).
    DeclinesAfterAttach(Decline),
    /// Asks for 3-D Secure on every payment (4000 0027 6000 3184): on
    /// session the customer authenticates; off session the bank declines.
    RequiresAuthentication,
}

#[derive(Clone, Copy, Debug)]
pub struct TestCard {
    pub number: &'static str,
    pub brand: &'static str,
    pub funding: &'static str,
    pub behaviour: Behaviour,
}

const fn decline(
    code: &'static str,
    decline_code: Option<&'static str>,
    message: &'static str,
) -> Decline {
    Decline {
        code,
        decline_code,
        message,
    }
}

const GENERIC: Decline = decline(
    "card_declined",
    Some("generic_decline"),
    "Your card was declined.",
);

/// The `authentication_required` decline of an off-session payment.
pub const AUTHENTICATION_REQUIRED: Decline = decline(
    "authentication_required",
    Some("authentication_required"),
    "Your card was declined. This transaction requires authentication.",
);

/// The customer failed or abandoned 3-D Secure.
pub const AUTHENTICATION_FAILED: Decline = decline(
    "payment_intent_authentication_failure",
    None,
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
);

const fn card(
    number: &'static str,
    brand: &'static str,
    funding: &'static str,
    behaviour: Behaviour,
) -> TestCard {
    TestCard {
        number,
        brand,
        funding,
        behaviour,
    }
}

/// The cards, with their `pm_card_*` test tokens.
const CARDS: &[(&str, TestCard)] = &[
    (
        "pm_card_visa",
        card("4242424242424242", "visa", "credit", Behaviour::Succeeds),
    ),
    (
        "pm_card_visa_debit",
        card("4000056655665556", "visa", "debit", Behaviour::Succeeds),
    ),
    (
        "pm_card_mastercard",
        card(
            "5555555555554444",
            "mastercard",
            "credit",
            Behaviour::Succeeds,
        ),
    ),
    (
        "pm_card_amex",
        card("378282246310005", "amex", "credit", Behaviour::Succeeds),
    ),
    (
        "pm_card_chargeDeclined",
        card(
            "4000000000000002",
            "visa",
            "credit",
            Behaviour::Declines(GENERIC),
        ),
    ),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        card(
            "4000000000009995",
            "visa",
            "credit",
            Behaviour::Declines(decline(
                "card_declined",
                Some("insufficient_funds"),
                "Your card has insufficient funds.",
            )),
        ),
    ),
    (
        "pm_card_chargeDeclinedLostCard",
        card(
            "4000000000009987",
            "visa",
            "credit",
            Behaviour::Declines(decline(
                "card_declined",
                Some("lost_card"),
                "Your card was declined.",
            )),
        ),
    ),
    (
        "pm_card_chargeDeclinedStolenCard",
        card(
            "4000000000009979",
            "visa",
            "credit",
            Behaviour::Declines(decline(
                "card_declined",
                Some("stolen_card"),
                "Your card was declined.",
            )),
        ),
    ),
    (
        "pm_card_chargeDeclinedExpiredCard",
        card(
            "4000000000000069",
            "visa",
            "credit",
            Behaviour::Declines(decline(
                "expired_card",
                Some("expired_card"),
                "Your card has expired.",
            )),
        ),
    ),
    (
        "pm_card_chargeDeclinedIncorrectCvc",
        card(
            "4000000000000127",
            "visa",
            "credit",
            Behaviour::Declines(decline(
                "incorrect_cvc",
                Some("incorrect_cvc"),
                "Your card's security code is incorrect.",
            )),
        ),
    ),
    (
        "pm_card_chargeDeclinedProcessingError",
        card(
            "4000000000000119",
            "visa",
            "credit",
            Behaviour::Declines(decline(
                "processing_error",
                Some("processing_error"),
                "An error occurred while processing your card. Try again in a little bit.",
            )),
        ),
    ),
    (
        "pm_card_chargeCustomerFail",
        card(
            "4000000000000341",
            "visa",
            "credit",
            Behaviour::DeclinesAfterAttach(GENERIC),
        ),
    ),
    (
        "pm_card_authenticationRequired",
        card(
            "4000002760003184",
            "visa",
            "credit",
            Behaviour::RequiresAuthentication,
        ),
    ),
];

/// A test card by number (spaces ignored); `None` for a number Stripe would
/// call incorrect.
pub fn by_number(number: &str) -> Option<TestCard> {
    let digits: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    CARDS.iter().map(|(_, c)| *c).find(|c| c.number == digits)
}

/// A test card by its `pm_card_*` token.
pub fn by_token(token: &str) -> Option<TestCard> {
    CARDS.iter().find(|(t, _)| *t == token).map(|(_, c)| *c)
}

/// The decline a charge meets, off or on session.
pub fn charge_decline(card: &TestCard, session: Session) -> Option<Decline> {
    match (card.behaviour, session) {
        (Behaviour::Succeeds, _) => None,
        (Behaviour::Declines(d) | Behaviour::DeclinesAfterAttach(d), _) => Some(d),
        (Behaviour::RequiresAuthentication, Session::Off) => Some(AUTHENTICATION_REQUIRED),
        (Behaviour::RequiresAuthentication, Session::On) => None,
    }
}

/// Why setting `card` up for later is declined: as when it is attached
/// (a card that declines only its charges, 0341, sets up).
pub fn setup_decline(card: &TestCard) -> Option<Decline> {
    match card.behaviour {
        Behaviour::Declines(d) => Some(d),
        _ => None,
    }
}

/// Whether the customer is present (and can authenticate).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Session {
    On,
    Off,
}

/// Stripe's SEPA Debit test IBANs and whether the debit succeeds after
/// processing.
pub fn sepa_debit_succeeds(iban: &str) -> Option<bool> {
    match iban {
        "AT611904300234573201" | "DE89370400440532013000" => Some(true),
        "AT861904300235473202" | "DE62370400440532013001" => Some(false),
        _ => None,
    }
}
