//! An Ethereum account address. Parsed from `0x` + 40 hex digits; mixed case must be a valid
//! EIP-55 checksum (it catches typos), all-lower or all-upper case is accepted as is. Displayed
//! with the checksum; stored in lowercase.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::Address;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EthAddress(Address);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("an address is 0x followed by 40 hexadecimal digits")]
    Malformed,
    #[error("the address's mixed-case checksum (EIP-55) is wrong; check for a typo")]
    BadChecksum,
}

impl EthAddress {
    pub const fn from_alloy(address: Address) -> Self {
        Self(address)
    }

    pub const fn as_alloy(&self) -> Address {
        self.0
    }

    /// `0x` and 40 lowercase hex digits: the stored form.
    pub fn to_lowercase_hex(&self) -> String {
        format!("{:#x}", self.0)
    }
}

impl FromStr for EthAddress {
    type Err = AddressError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let digits = raw.strip_prefix("0x").ok_or(AddressError::Malformed)?;
        if digits.len() != 40 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(AddressError::Malformed);
        }
        let lower = digits.bytes().all(|byte| !byte.is_ascii_uppercase());
        let upper = digits.bytes().all(|byte| !byte.is_ascii_lowercase());
        if lower || upper {
            return Address::from_str(digits)
                .map(Self)
                .map_err(|_| AddressError::Malformed);
        }
        Address::parse_checksummed(raw, None)
            .map(Self)
            .map_err(|_| AddressError::BadChecksum)
    }
}

impl fmt::Display for EthAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_checksum(None))
    }
}

impl fmt::Debug for EthAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EthAddress({self})")
    }
}

impl Serialize for EthAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EthAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKSUMMED: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    #[test]
    fn checksummed_lower_and_upper_case_forms_parse_to_one_address() {
        let a: EthAddress = CHECKSUMMED.parse().expect("checksummed");
        let b: EthAddress = CHECKSUMMED.to_lowercase().parse().expect("lowercase");
        let c: EthAddress = format!("0x{}", CHECKSUMMED[2..].to_uppercase())
            .parse()
            .expect("uppercase");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.to_string(), CHECKSUMMED);
        assert_eq!(a.to_lowercase_hex(), CHECKSUMMED.to_lowercase());
    }

    #[test]
    fn a_mixed_case_typo_fails_the_checksum() {
        let typo = CHECKSUMMED.replace("aA", "Aa");
        assert_eq!(typo.parse::<EthAddress>(), Err(AddressError::BadChecksum));
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "0x",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0xZZAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ] {
            assert_eq!(
                bad.parse::<EthAddress>(),
                Err(AddressError::Malformed),
                "{bad:?}"
            );
        }
    }
}
