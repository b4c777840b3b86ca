//! Decimal strings to Stripe minor units, by Stripe's rules rather than ISO 4217's.
//! Integer arithmetic only: an amount never passes through floating point.

use core::fmt;

/// Why an amount cannot be charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyError {
    UnknownCurrency(String),
    NotADecimal(String),
    TooPrecise {
        amount: String,
        currency: String,
        decimals: u32,
    },
    NotWhole {
        amount: String,
        currency: String,
    },
    TooLarge(String),
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCurrency(c) => write!(f, "currency \"{c}\" is not one Stripe charges in"),
            Self::NotADecimal(a) => {
                write!(f, "amount \"{a}\" is not a plain decimal such as \"12.50\"")
            }
            Self::TooPrecise {
                amount,
                currency,
                decimals,
            } => {
                write!(
                    f,
                    "amount {amount} has more than {decimals} decimal places for {currency}"
                )
            }
            Self::NotWhole { amount, currency } => {
                write!(
                    f,
                    "amount {amount} {currency} must be a whole number for Stripe"
                )
            }
            Self::TooLarge(a) => write!(f, "amount {a} is too large"),
        }
    }
}

/// How Stripe counts a currency's minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// JPY 500 -> 500.
    ZeroDecimal,
    /// USD 10.00 -> 1000.
    TwoDecimal,
    /// KWD 5.124 -> 5120: three decimals, last digit 0.
    ThreeDecimal,
    /// ISK, UGX: sent as two-decimal, must be divisible by 100.
    TwoDecimalWhole,
}

impl Unit {
    fn decimals(self) -> u32 {
        match self {
            Unit::ZeroDecimal => 0,
            Unit::TwoDecimal | Unit::TwoDecimalWhole => 2,
            Unit::ThreeDecimal => 3,
        }
    }
}

const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF",
    "XOF", "XPF",
];
const THREE_DECIMAL: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];
const TWO_DECIMAL_WHOLE: &[&str] = &["ISK", "UGX"];
/// Stripe's other presentment currencies (two-decimal, HUF and TWD included).
const TWO_DECIMAL: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CNY",
    "COP", "CRC", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "JMD",
    "KES", "KGS", "KHR", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MKD",
    "MMK", "MNT", "MOP", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR",
    "SBD", "SCR", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "STD", "SZL", "THB", "TJS", "TOP",
    "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "UYU", "UZS", "WST", "XCD", "YER", "ZAR", "ZMW",
];

fn unit_of(currency: &str) -> Option<Unit> {
    let is = |list: &[&str]| list.iter().any(|c| c.eq_ignore_ascii_case(currency));
    if is(TWO_DECIMAL) {
        Some(Unit::TwoDecimal)
    } else if is(ZERO_DECIMAL) {
        Some(Unit::ZeroDecimal)
    } else if is(THREE_DECIMAL) {
        Some(Unit::ThreeDecimal)
    } else if is(TWO_DECIMAL_WHOLE) {
        Some(Unit::TwoDecimalWhole)
    } else {
        None
    }
}

/// Converts a decimal string in the major unit (`"12.50"`) to Stripe's minor units.
pub fn to_minor(currency: &str, amount: &str) -> Result<u64, MoneyError> {
    let unit =
        unit_of(currency).ok_or_else(|| MoneyError::UnknownCurrency(currency.to_string()))?;
    let not_decimal = || MoneyError::NotADecimal(amount.to_string());
    let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits(whole)
        || !digits(frac)
        || (amount.contains('.') && frac.is_empty())
    {
        return Err(not_decimal());
    }
    let upper = currency.to_ascii_uppercase();
    // Digits past what the input unit allows are only accepted as trailing zeros
    // ("500.00" JPY), except for three-decimal currencies which get rounded below.
    let input_decimals = match unit {
        Unit::TwoDecimalWhole => 0,
        u => u.decimals(),
    };
    let (kept, dropped) = frac.split_at(frac.len().min(input_decimals as usize));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(match unit {
            Unit::TwoDecimalWhole => MoneyError::NotWhole {
                amount: amount.to_string(),
                currency: upper,
            },
            _ => MoneyError::TooPrecise {
                amount: amount.to_string(),
                currency: upper,
                decimals: input_decimals,
            },
        });
    }
    let too_large = || MoneyError::TooLarge(amount.to_string());
    let mut minor: u64 = 0;
    for b in whole.bytes().chain(kept.bytes()) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    let pad = unit.decimals() - kept.len() as u32;
    minor = minor.checked_mul(10u64.pow(pad)).ok_or_else(too_large)?;
    if unit == Unit::ThreeDecimal {
        // Stripe wants the last of three decimals to be 0: round half up to a multiple of 10.
        minor = (minor.checked_add(5).ok_or_else(too_large)? / 10) * 10;
    }
    Ok(minor)
}

/// Formats Stripe minor units back as a decimal string in the major unit.
pub fn to_decimal(currency: &str, minor: u64) -> Result<String, MoneyError> {
    let unit =
        unit_of(currency).ok_or_else(|| MoneyError::UnknownCurrency(currency.to_string()))?;
    let decimals = unit.decimals();
    if decimals == 0 {
        return Ok(minor.to_string());
    }
    let scale = 10u64.pow(decimals);
    Ok(format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = decimals as usize
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_by_stripes_rules() {
        let cases = [
            ("USD", "10.00", 1000),
            ("usd", "10", 1000),
            ("USD", "0.5", 50),
            ("GBP", "1200.00", 120000),
            ("JPY", "500", 500),
            ("JPY", "500.00", 500),
            ("KWD", "5.124", 5120),
            ("KWD", "5.125", 5130),
            ("BHD", "1", 1000),
            ("ISK", "5", 500),
            ("UGX", "5", 500),
            ("UGX", "5.00", 500),
            ("HUF", "10.50", 1050),
            ("TWD", "10.50", 1050),
            ("EUR", "10.000", 1000),
        ];
        for (currency, amount, minor) in cases {
            assert_eq!(to_minor(currency, amount), Ok(minor), "{currency} {amount}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_charge_exactly() {
        for amount in [
            "1e3", "-1", "+1", "", ".5", "5.", "1,000.00", " 1", "0x10", "١٢",
        ] {
            assert!(
                matches!(to_minor("USD", amount), Err(MoneyError::NotADecimal(_))),
                "{amount:?}"
            );
        }
        assert!(matches!(
            to_minor("USD", "10.001"),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            to_minor("JPY", "500.5"),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            to_minor("ISK", "5.50"),
            Err(MoneyError::NotWhole { .. })
        ));
        assert!(matches!(
            to_minor("XYZ", "1.00"),
            Err(MoneyError::UnknownCurrency(_))
        ));
        assert!(matches!(
            to_minor("USD", "99999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_minor_units_back() {
        assert_eq!(to_decimal("GBP", 120000).as_deref(), Ok("1200.00"));
        assert_eq!(to_decimal("JPY", 500).as_deref(), Ok("500"));
        assert_eq!(to_decimal("KWD", 5120).as_deref(), Ok("5.120"));
        assert_eq!(to_decimal("USD", 5).as_deref(), Ok("0.05"));
    }
}
