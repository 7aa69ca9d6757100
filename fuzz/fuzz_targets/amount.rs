//! Amounts in wei, as every API and the WebSocket take them: whatever parses prints back to the
//! same value, and the JSON form agrees with the text form.
#![no_main]

use gavel_types::Wei;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = text.parse::<Wei>();
    if let Ok(wei) = parsed {
        assert_eq!(wei.to_string().parse::<Wei>(), Ok(wei), "{text:?}");
    }
    let json = serde_json::Value::String(text.to_owned());
    let from_json = serde_json::from_value::<Wei>(json);
    assert_eq!(
        from_json.ok(),
        parsed.ok(),
        "JSON and text disagree on {text:?}"
    );
});
