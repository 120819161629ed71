//! Money: [`Usd`], an exact amount of US dollars, and [`CostSource`], where a cost came from.
//!
//! Amounts are integers of micro-dollars, so sums are exact (floats added up drift at the
//! cent after a few million additions). They are written as JSON numbers of dollars, which
//! read back exactly for amounts below a billion dollars (15 significant digits); larger ones
//! keep their cents.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub};
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An exact amount of US dollars, in micro-dollars (a millionth of a dollar).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(i64);

/// Why a text is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an amount of USD: expected a decimal number such as 12.34")]
pub struct UsdError(pub String);

const MICROS_PER_DOLLAR: i64 = 1_000_000;

impl Usd {
    /// Nothing.
    pub const ZERO: Usd = Usd(0);

    /// An amount of whole cents.
    pub const fn from_cents(cents: i64) -> Usd {
        Usd(cents.saturating_mul(10_000))
    }

    /// An amount of micro-dollars.
    pub const fn from_micros(micros: i64) -> Usd {
        Usd(micros)
    }

    /// The amount in micro-dollars.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// A float amount of dollars rounded to the micro-dollar; `None` for NaN and infinities.
    pub fn from_dollars(dollars: f64) -> Option<Usd> {
        let micros = (dollars * MICROS_PER_DOLLAR as f64).round();
        (micros.is_finite() && micros.abs() < i64::MAX as f64).then_some(Usd(micros as i64))
    }

    /// The amount rounded to whole cents, halves away from zero.
    pub fn cents(self) -> i64 {
        let cents = (i128::from(self.0).abs() + 5_000) / 10_000;
        // A micro-dollar amount's cents always fit: they are 10,000 times fewer.
        let cents = cents as i64;
        if self.0 < 0 { -cents } else { cents }
    }

    /// The amount as a float of dollars, for charts and ratios (never for sums).
    pub fn as_dollars(self) -> f64 {
        self.0 as f64 / MICROS_PER_DOLLAR as f64
    }

    /// The amount rounded to cents, as a float of dollars: what reports show.
    pub fn rounded_dollars(self) -> f64 {
        self.cents() as f64 / 100.0
    }

    /// Whether the amount is below zero (credits, refunds).
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// The amount rounded to cents, as plain digits for files: `12345.68`, `-0.50`.
    pub fn cents_text(self) -> String {
        let cents = self.cents();
        let sign = if cents < 0 { "-" } else { "" };
        format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
    }

    /// The amount with thousands separators and cents: `$12,345.68`, `-$0.50`.
    pub fn display(self) -> String {
        let cents = self.cents();
        let (sign, cents) = if cents < 0 {
            ("-", -cents)
        } else {
            ("", cents)
        };
        let dollars = (cents / 100).to_string();
        let mut grouped = String::with_capacity(dollars.len() + dollars.len() / 3);
        for (i, c) in dollars.chars().enumerate() {
            if i > 0 && (dollars.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{sign}${grouped}.{:02}", cents % 100)
    }
}

impl FromStr for Usd {
    type Err = UsdError;
    /// Parses a decimal amount exactly (`12.34`, `-0.000001`, `1.5E-7` as Cost Explorer
    /// sometimes writes); digits beyond the micro-dollar are rounded, halves away from zero.
    fn from_str(text: &str) -> Result<Usd, UsdError> {
        let bad = || UsdError(text.to_string());
        let trimmed = text.trim();
        let (mantissa, exponent) = match trimmed.find(['e', 'E']) {
            Some(at) => (
                &trimmed[..at],
                trimmed[at + 1..].parse::<i32>().map_err(|_| bad())?,
            ),
            None => (trimmed, 0),
        };
        let (negative, digits) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || fraction.len() > 1_000
        {
            return Err(bad());
        }
        // All digits as one integer, and the power of ten that scales it to micro-dollars.
        let all: String = whole.chars().chain(fraction.chars()).collect();
        let all = all.trim_start_matches('0');
        if all.is_empty() {
            return Ok(Usd::ZERO);
        }
        // Beyond these exponents an amount is either zero or too large, and the arithmetic
        // below must not overflow.
        if !(-2_000..=2_000).contains(&exponent) {
            return if exponent < 0 {
                Ok(Usd::ZERO)
            } else {
                Err(bad())
            };
        }
        let scale = 6 + exponent - fraction.len() as i32;
        // With a negative scale, the last `-scale` digits are below a micro-dollar: the first
        // of them rounds, the rest are dropped.
        let dropped = if scale < 0 { (-scale) as usize } else { 0 };
        let keep = all.len().saturating_sub(dropped);
        let rounding_digit = match all.len().checked_sub(dropped) {
            Some(at) if at < all.len() => all.as_bytes()[at] - b'0',
            _ => 0,
        };
        let mut value: i128 = 0;
        for b in all.bytes().take(keep) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or_else(bad)?;
        }
        if scale > 0 {
            value = value
                .checked_mul(10i128.checked_pow(scale as u32).ok_or_else(bad)?)
                .ok_or_else(bad)?;
        }
        if rounding_digit >= 5 {
            value += 1;
        }
        let micros = i64::try_from(value).map_err(|_| bad())?;
        Ok(Usd(if negative { -micros } else { micros }))
    }
}

impl fmt::Display for Usd {
    /// The exact amount in dollars, without trailing zeros: `12.34`, `-0.000001`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / MICROS_PER_DOLLAR as u64;
        let fraction = abs % MICROS_PER_DOLLAR as u64;
        if fraction == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let digits = format!("{fraction:06}");
            write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, other: Usd) {
        *self = *self + other;
    }
}

impl Sub for Usd {
    type Output = Usd;
    fn sub(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }
}

impl Neg for Usd {
    type Output = Usd;
    fn neg(self) -> Usd {
        Usd(self.0.saturating_neg())
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Usd> for Usd {
    fn sum<I: Iterator<Item = &'a Usd>>(iter: I) -> Usd {
        iter.copied().sum()
    }
}

impl Serialize for Usd {
    /// A JSON number of dollars: the float nearest the exact amount, which prints as the exact
    /// decimal below a billion dollars.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_dollars())
    }
}

impl<'de> Deserialize<'de> for Usd {
    /// A number of dollars, or a decimal string (as AWS writes amounts).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Usd, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of USD, as a number or a decimal string")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Usd, E> {
                Usd::from_dollars(v).ok_or_else(|| E::custom(format!("{v} is not an amount")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Usd, E> {
                v.checked_mul(MICROS_PER_DOLLAR)
                    .map(Usd)
                    .ok_or_else(|| E::custom(format!("{v} dollars is too large")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Usd, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} dollars is too large")))
                    .and_then(|v| self.visit_i64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Usd, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Usd {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Usd".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "number",
            "description": "An amount in US dollars."
        })
    }
}

/// Where a resource's monthly cost comes from. Every cost figure carries one, so that a
/// reader knows how far to trust it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CostSource {
    /// Billed to the resource itself (resource-level billing data).
    Actual,
    /// The resource's share of billed spend, by a stated rule.
    Allocated,
    /// Computed from list prices and the resource's configuration, not from billing.
    Estimated,
    /// Not known; the cost is absent, never zero.
    #[default]
    Unknown,
}

crate::domain::string_enum!(CostSource "a cost source" {
    Actual => "actual",
    Allocated => "allocated",
    Estimated => "estimated",
    Unknown => "unknown",
});

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals_parse_exactly() {
        let parse = |s: &str| s.parse::<Usd>().unwrap().micros();
        assert_eq!(parse("12.34"), 12_340_000);
        assert_eq!(parse("-0.000001"), -1);
        assert_eq!(parse("0.0000004"), 0);
        assert_eq!(parse("0.0000005"), 1, "halves away from zero");
        assert_eq!(parse("0.00000006"), 0, "the first dropped digit rounds");
        assert_eq!(parse("0.0000016"), 2);
        assert_eq!(parse("1.5E-7"), 0);
        assert_eq!(parse("1.5E-6"), 2);
        assert_eq!(parse("3e2"), 300_000_000);
        assert_eq!(parse("7"), 7_000_000);
        assert_eq!(parse(".5"), 500_000);
        assert_eq!(parse("0.1234567890123"), 123_457);
        for bad in [
            "",
            "-",
            "1.2.3",
            "12a",
            "$5",
            "1e",
            "NaN",
            "1e2147483647",
            "1e30",
        ] {
            assert!(bad.parse::<Usd>().is_err(), "{bad}");
        }
        // Extreme exponents neither overflow nor wrap.
        assert_eq!(parse("0e50"), 0);
        assert_eq!(parse("0.0000000e-2147483648"), 0);
        assert_eq!(parse("1e-2147483648"), 0);
        assert_eq!(parse("5e-7"), 1);
    }

    #[test]
    fn display_and_cents() {
        assert_eq!(Usd::from_cents(1_234_567).display(), "$12,345.67");
        assert_eq!(Usd::from_micros(-500_000).display(), "-$0.50");
        assert_eq!(Usd::from_micros(4_999).cents(), 0);
        assert_eq!(Usd::from_micros(5_000).cents(), 1);
        assert_eq!(Usd::from_micros(-5_000).cents(), -1);
        assert_eq!(Usd::from_micros(12_340_000).to_string(), "12.34");
        assert_eq!(Usd::from_micros(-1).to_string(), "-0.000001");
        assert_eq!(Usd::ZERO.to_string(), "0");
        assert_eq!(Usd::from_micros(-500_000).cents_text(), "-0.50");
        assert_eq!(Usd::from_cents(123_456).cents_text(), "1234.56");
        // Sums saturated at the largest amount still print.
        let huge = Usd::from_micros(i64::MAX);
        assert!(huge.display().starts_with('$'));
        assert!(!(-huge).cents_text().is_empty());
    }

    proptest! {
        /// Below a billion dollars, an amount written as JSON reads back to the micro-dollar,
        /// and its text form parses back exactly.
        #[test]
        fn amounts_round_trip(micros in -999_999_999_999_999i64..999_999_999_999_999) {
            let usd = Usd::from_micros(micros);
            let json = serde_json::to_string(&usd).unwrap();
            prop_assert_eq!(serde_json::from_str::<Usd>(&json).unwrap(), usd, "{}", json);
            prop_assert_eq!(usd.to_string().parse::<Usd>().unwrap(), usd);
        }

        /// Sums are exact: adding amounts equals adding their micro-dollars.
        #[test]
        fn sums_are_exact(items in proptest::collection::vec(-10_000_000_000i64..10_000_000_000, 0..200)) {
            let total: Usd = items.iter().map(|&m| Usd::from_micros(m)).sum();
            prop_assert_eq!(total.micros(), items.iter().sum::<i64>());
        }
    }
}
