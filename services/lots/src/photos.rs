//! Photos are checked and cleaned by `gavel-photos`, a crate of its own so that the sniffer and
//! the stripper can be fuzzed without the service (`fuzz/`).

pub use gavel_photos::{Clean, Kind, Rejected, clean, sniff};
