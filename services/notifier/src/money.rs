//! Amounts as people write them in chats: ETH with a decimal point, exact to the wei.

use gavel_types::Wei;

const DECIMALS: usize = 18;

/// An amount read back from the database's `column`; an unreadable one is an error, never zero.
pub fn stored(column: &'static str, raw: &str) -> Result<Wei, sqlx::Error> {
    gavel_common::db::parse_column(column, raw)
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// `1500000000000000000` wei → `1.5`.
pub fn eth(wei: &Wei) -> String {
    let digits = wei.to_string();
    let padded = format!("{digits:0>width$}", width = DECIMALS + 1);
    let (whole, fraction) = padded.split_at(padded.len() - DECIMALS);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    }
}

/// `0.25` → 250000000000000000 wei; `None` for anything but a plain non-negative decimal with at
/// most 18 places.
pub fn parse_eth(text: &str) -> Option<Wei> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let valid = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !valid(whole)
        || !valid(fraction)
        || fraction.len() > DECIMALS
    {
        return None;
    }
    let digits = format!("{whole}{fraction:0<DECIMALS$}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(Wei::ZERO);
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_exactly() {
        let cases = [
            ("0", "0"),
            ("1", "0.000000000000000001"),
            ("1500000000000000000", "1.5"),
            ("10000000000000000", "0.01"),
            ("123000000000000000000", "123"),
        ];
        for (wei, text) in cases {
            let wei: Wei = wei.parse().expect("wei");
            assert_eq!(eth(&wei), text);
            assert_eq!(parse_eth(text), Some(wei), "{text}");
        }
        assert_eq!(parse_eth(".5"), parse_eth("0.5"));
        for bad in [
            "",
            ".",
            "-1",
            "1e3",
            "0x10",
            "1.2.3",
            "0.0000000000000000001",
            "abc",
        ] {
            assert_eq!(parse_eth(bad), None, "{bad}");
        }
    }
}
