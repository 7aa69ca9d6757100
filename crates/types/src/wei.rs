//! An amount of ETH in wei: an exact unsigned 256-bit integer, never a float.
//!
//! On the wire an amount is a decimal string (`"1500000000000000000"`), because JSON numbers lose
//! precision past 2^53 in most clients. Plain JSON integers are accepted too, for convenience;
//! negative numbers, fractions, exponents, hex and empty strings are rejected.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Wei(U256);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeiError {
    #[error("an amount must be a non-negative whole number of wei written in decimal digits")]
    NotAnInteger,
    #[error("the amount does not fit in 256 bits")]
    TooLarge,
}

impl Wei {
    pub const ZERO: Self = Self(U256::ZERO);

    pub const fn from_u256(value: U256) -> Self {
        Self(value)
    }

    pub fn from_u128(value: u128) -> Self {
        Self(U256::from(value))
    }

    /// `ether` whole ETH.
    pub fn from_ether(ether: u64) -> Self {
        Self(U256::from(ether) * U256::from(10u64).pow(U256::from(18u64)))
    }

    pub const fn as_u256(&self) -> U256 {
        self.0
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// `self − other`, or zero when `other` is larger.
    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl FromStr for Wei {
    type Err = WeiError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.is_empty() || !raw.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(WeiError::NotAnInteger);
        }
        U256::from_str_radix(raw, 10)
            .map(Self)
            .map_err(|_| WeiError::TooLarge)
    }
}

impl fmt::Display for Wei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Wei {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Wei {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Wei;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount in wei as a decimal string, e.g. \"1000000000000000000\"")
            }

            fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<Wei, E> {
                raw.parse().map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Wei, E> {
                Ok(Wei(U256::from(value)))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Wei, E> {
                u64::try_from(value)
                    .map(|value| Wei(U256::from(value)))
                    .map_err(|_| E::custom(WeiError::NotAnInteger))
            }

            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Wei, E> {
                Err(E::custom(WeiError::NotAnInteger))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_decimal_strings_parse_exactly() {
        let amount: Wei =
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
                .parse()
                .expect("U256::MAX");
        assert_eq!(amount.as_u256(), U256::MAX);
        assert_eq!(Wei::from_ether(2).to_string(), "2000000000000000000");
    }

    #[test]
    fn anything_but_a_whole_non_negative_number_is_rejected() {
        for bad in ["", "-1", "1.5", "1e18", "0x10", " 1", "ten"] {
            assert_eq!(bad.parse::<Wei>(), Err(WeiError::NotAnInteger), "{bad:?}");
        }
        let too_big = "1".repeat(80);
        assert_eq!(too_big.parse::<Wei>(), Err(WeiError::TooLarge));
    }

    #[test]
    fn json_takes_strings_and_integers_but_not_floats_or_negatives() {
        assert_eq!(
            serde_json::from_str::<Wei>(r#""42""#).expect("string"),
            Wei::from_u128(42)
        );
        assert_eq!(
            serde_json::from_str::<Wei>("42").expect("integer"),
            Wei::from_u128(42)
        );
        assert!(serde_json::from_str::<Wei>("4.2").is_err());
        assert!(serde_json::from_str::<Wei>("-4").is_err());
        assert_eq!(
            serde_json::to_string(&Wei::from_u128(42)).expect("serializes"),
            r#""42""#
        );
    }

    #[test]
    fn arithmetic_never_wraps() {
        assert_eq!(Wei::from_u128(1).checked_sub(Wei::from_u128(2)), None);
        assert_eq!(
            Wei::from_u128(1).saturating_sub(Wei::from_u128(2)),
            Wei::ZERO
        );
        assert_eq!(
            Wei::from_u256(U256::MAX).checked_add(Wei::from_u128(1)),
            None
        );
    }
}
