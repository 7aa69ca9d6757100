//! Domain types parsed at the edge and shared by every service: exact amounts ([`Wei`]), Ethereum
//! addresses ([`EthAddress`]), and typed ids. Each parses from untrusted input with an error that
//! says what was wrong, and serializes to the form clients send back.

mod address;
mod ids;
mod wei;

pub use address::{AddressError, EthAddress};
pub use ids::{AccountId, BidId, LotId};
pub use wei::{Wei, WeiError};
