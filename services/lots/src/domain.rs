//! A seller's lot description, validated into typed rules. Every refusal names the field at
//! fault; nothing reaches the database unvalidated.

use chrono::{DateTime, Duration, Utc};
use gavel_events::{Increment, LotRules};
use gavel_types::Wei;
use serde::Deserialize;
use utoipa::ToSchema;

/// What a seller sends to create or replace a lot.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LotInput {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: String,
    /// Only `ETH` for now.
    pub asset: String,
    /// Wei, as a decimal string.
    #[schema(value_type = String, example = "100000000000000000")]
    pub start_price: Wei,
    pub increment: IncrementInput,
    /// Hidden from bidders; at least the start price.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reserve: Option<Wei>,
    /// Above the reserve and the start price.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub buy_now: Option<Wei>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// A bid this close to the end extends it (0: no anti-sniping).
    #[serde(default)]
    pub snipe_window_secs: u32,
    /// By how much such a bid extends the end.
    #[serde(default)]
    pub extension_secs: u32,
    /// Extensions never go past this; defaults to one hour after `ends_at` with anti-sniping,
    /// `ends_at` without.
    #[serde(default)]
    pub latest_end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IncrementInput {
    Absolute {
        #[schema(value_type = String)]
        wei: Wei,
    },
    BasisPoints {
        bps: u32,
    },
}

/// Text from a user: at most `max` characters, and no control characters (a NUL cannot even be
/// stored), except line breaks and tabs where `multiline`.
pub fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
    multiline: bool,
) -> Result<(), Invalid> {
    if text.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(invalid(
            field,
            "control characters (such as NUL) are not allowed",
        ));
    }
    Ok(())
}

/// A validated lot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LotSpec {
    pub title: String,
    pub description: String,
    pub asset: String,
    pub rules: LotRules,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

pub const MIN_DURATION: Duration = Duration::minutes(1);
pub const MAX_DURATION: Duration = Duration::days(30);
pub const MAX_START_DELAY: Duration = Duration::days(90);
pub const MAX_WINDOW_SECS: u32 = 3600;
pub const MAX_LATE_END: Duration = Duration::days(7);
/// Clock difference tolerated for a start "now".
const START_SLACK: Duration = Duration::minutes(1);

impl LotInput {
    pub fn validate(self, now: DateTime<Utc>) -> Result<LotSpec, Invalid> {
        let title = self.title.trim().to_owned();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(invalid("title", "1 to 200 characters"));
        }
        check_text("title", &title, 200, false)?;
        check_text("description", &self.description, 10_000, true)?;
        let asset = match self.asset.as_str() {
            "ETH" => "ETH".to_owned(),
            other => {
                return Err(invalid(
                    "asset",
                    format!("unknown asset `{other}`; only ETH is supported"),
                ));
            }
        };
        if self.start_price.is_zero() {
            return Err(invalid("start_price", "must be more than zero wei"));
        }
        let increment = match self.increment {
            IncrementInput::Absolute { wei } if wei.is_zero() => {
                return Err(invalid("increment", "must be more than zero wei"));
            }
            IncrementInput::Absolute { wei } => Increment::Absolute { wei },
            IncrementInput::BasisPoints { bps } if bps == 0 || bps > 10_000 => {
                return Err(invalid(
                    "increment",
                    "basis points must be between 1 and 10000",
                ));
            }
            IncrementInput::BasisPoints { bps } => Increment::BasisPoints { bps },
        };
        if let Some(reserve) = self.reserve
            && reserve < self.start_price
        {
            return Err(invalid(
                "reserve",
                "the reserve cannot be below the start price",
            ));
        }
        if let Some(buy_now) = self.buy_now {
            let floor = self
                .reserve
                .unwrap_or(self.start_price)
                .max(self.start_price);
            if buy_now <= floor {
                return Err(invalid(
                    "buy_now",
                    "the buy-now price must be above the reserve and the start price",
                ));
            }
        }
        if self.starts_at < now - START_SLACK {
            return Err(invalid("starts_at", "the start is in the past"));
        }
        if self.starts_at > now + MAX_START_DELAY {
            return Err(invalid("starts_at", "the start is more than 90 days away"));
        }
        if self.ends_at <= self.starts_at {
            return Err(invalid("ends_at", "the end must be after the start"));
        }
        let duration = self.ends_at - self.starts_at;
        if duration < MIN_DURATION || duration > MAX_DURATION {
            return Err(invalid(
                "ends_at",
                "an auction lasts between 1 minute and 30 days",
            ));
        }
        if self.snipe_window_secs > MAX_WINDOW_SECS {
            return Err(invalid("snipe_window_secs", "at most 3600 seconds"));
        }
        if self.extension_secs > MAX_WINDOW_SECS {
            return Err(invalid("extension_secs", "at most 3600 seconds"));
        }
        if (self.snipe_window_secs == 0) != (self.extension_secs == 0) {
            return Err(invalid(
                "extension_secs",
                "anti-sniping needs both a window and an extension, or neither",
            ));
        }
        let default_latest = if self.snipe_window_secs == 0 {
            self.ends_at
        } else {
            self.ends_at + Duration::hours(1)
        };
        let latest_end = self.latest_end.unwrap_or(default_latest);
        if latest_end < self.ends_at || latest_end > self.ends_at + MAX_LATE_END {
            return Err(invalid("latest_end", "between the end and 7 days after it"));
        }
        Ok(LotSpec {
            title,
            description: self.description,
            asset,
            rules: LotRules {
                start_price: self.start_price,
                increment,
                reserve: self.reserve,
                buy_now: self.buy_now,
                starts_at: self.starts_at,
                ends_at: self.ends_at,
                latest_end,
                snipe_window_secs: self.snipe_window_secs,
                extension_secs: self.extension_secs,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(now: DateTime<Utc>) -> LotInput {
        LotInput {
            title: "A lamp".into(),
            description: "Brass".into(),
            asset: "ETH".into(),
            start_price: Wei::from_u128(100),
            increment: IncrementInput::Absolute {
                wei: Wei::from_u128(10),
            },
            reserve: Some(Wei::from_u128(200)),
            buy_now: Some(Wei::from_u128(1000)),
            starts_at: now,
            ends_at: now + Duration::hours(1),
            snipe_window_secs: 60,
            extension_secs: 120,
            latest_end: None,
        }
    }

    #[test]
    fn a_sound_lot_validates_with_defaults_filled_in() {
        let now = Utc::now();
        let spec = input(now).validate(now).expect("valid");
        assert_eq!(spec.rules.latest_end, now + Duration::hours(2));
    }

    #[test]
    fn each_bad_field_is_named() {
        let now = Utc::now();
        type Spoil = Box<dyn Fn(&mut LotInput)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("title", Box::new(|i| i.title = "  ".into())),
            ("asset", Box::new(|i| i.asset = "BTC".into())),
            ("start_price", Box::new(|i| i.start_price = Wei::ZERO)),
            (
                "increment",
                Box::new(|i| i.increment = IncrementInput::BasisPoints { bps: 0 }),
            ),
            (
                "reserve",
                Box::new(|i| i.reserve = Some(Wei::from_u128(50))),
            ),
            (
                "buy_now",
                Box::new(|i| i.buy_now = Some(Wei::from_u128(200))),
            ),
            (
                "starts_at",
                Box::new(move |i| i.starts_at = now - Duration::hours(1)),
            ),
            (
                "ends_at",
                Box::new(move |i| i.ends_at = now - Duration::minutes(1)),
            ),
            (
                "ends_at",
                Box::new(move |i| i.ends_at = now + Duration::seconds(30)),
            ),
            (
                "ends_at",
                Box::new(move |i| i.ends_at = now + Duration::days(31)),
            ),
            (
                "snipe_window_secs",
                Box::new(|i| i.snipe_window_secs = 7200),
            ),
            ("extension_secs", Box::new(|i| i.extension_secs = 0)),
            ("latest_end", Box::new(move |i| i.latest_end = Some(now))),
        ];
        for (field, spoil) in cases {
            let mut bad = input(now);
            spoil(&mut bad);
            let error = bad.validate(now).expect_err(field);
            assert_eq!(error.field, field, "{error}");
        }
    }
}
