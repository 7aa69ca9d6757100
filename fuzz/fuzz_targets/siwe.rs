//! Sign-In with Ethereum messages as `wallets` parses them (with the `siwe` crate, before any
//! check of ours): any text is refused or parsed, never a panic, and a parsed message prints
//! back to one that parses to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = text.parse::<siwe::Message>() else {
        return;
    };
    let printed = message.to_string();
    let again: siwe::Message = printed.parse().expect("a printed message parses");
    assert_eq!(again.to_string(), printed);
});
