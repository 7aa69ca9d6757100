//! The photo sniffer and stripper: on any bytes they answer without panicking; what they keep is
//! an image of the type they named, and cleaning it again changes nothing.
#![no_main]

use bytes::Bytes;
use gavel_photos::{Limits, clean, sniff};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_side: 8000,
    max_pixels: 40_000_000,
};

fuzz_target!(|data: &[u8]| {
    let kind = sniff(data);
    let Ok(cleaned) = clean(Bytes::copy_from_slice(data), &LIMITS) else {
        return;
    };
    assert_eq!(
        Some(cleaned.kind),
        kind,
        "cleaned as another type than sniffed"
    );
    assert_eq!(
        sniff(&cleaned.bytes),
        kind,
        "the cleaned file is not what it claims"
    );
    let again = clean(Bytes::from(cleaned.bytes.clone()), &LIMITS)
        .expect("a cleaned photo stays acceptable");
    assert_eq!(again.bytes, cleaned.bytes, "cleaning is not idempotent");
    assert_eq!((again.width, again.height), (cleaned.width, cleaned.height));
});
