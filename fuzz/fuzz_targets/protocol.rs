//! The gateway's decoder of client frames: any text is either a typed request that keeps the
//! protocol's promises, or a refusal that is itself a valid JSON `error` message.
#![no_main]

use gavel_protocol::{Request, parse};
use gavel_types::Wei;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(Request::Bid(bid)) => {
            assert!(bid.amount > Wei::ZERO, "a bid of zero was accepted: {text}");
            assert!(bid.max_amount.is_none_or(|max| max >= bid.amount));
            assert!((1..=64).contains(&bid.id.len()));
        }
        Ok(Request::Subscribe { since, .. }) => assert!(since.is_none_or(|since| since >= 0)),
        Ok(_) => {}
        Err(refusal) => {
            let message: serde_json::Value =
                serde_json::from_str(&refusal.to_message()).expect("the refusal is JSON");
            assert_eq!(message["type"], "error");
        }
    }
});
