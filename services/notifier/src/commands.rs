//! The bot's commands. Each update is handled in one transaction that also records it as done
//! and queues the reply, so an update is applied once and answered once, whatever restarts.

use chrono::{DateTime, Utc};
use gavel_types::Wei;
use sqlx::{PgConnection, PgPool};
use teloxide::types::{ChatKind, PublicChatKind, Update, UpdateKind};
use teloxide::utils::command::BotCommands;
use teloxide::utils::html::escape;
use uuid::Uuid;

use crate::alerts::wake;
use crate::money::{eth, parse_eth, stored};

/// The commands, with the descriptions of the menu Telegram shows (`setMyCommands`).
#[derive(BotCommands, Debug, Clone, PartialEq, Eq)]
#[command(rename_rule = "lowercase")]
pub enum Command {
    #[command(description = "welcome and what I do")]
    Start,
    #[command(description = "the commands, with examples")]
    Help,
    #[command(description = "new lots (add words and a price range to filter)")]
    Subscribe(String),
    #[command(description = "no more new-lot messages")]
    Unsubscribe,
    #[command(description = "open lots and their current prices")]
    Lots,
    #[command(description = "link this chat to your Gavel account")]
    Link(String),
    #[command(description = "forget the linked account")]
    Unlink,
    #[command(description = "what this chat gets")]
    Settings,
}

pub const HELP: &str = "I tell you about Gavel auctions.\n\
/subscribe — every new lot\n\
/subscribe brass lamp 0.01-0.5 — lots whose title has all the words, starting between 0.01 and 0.5 ETH (either bound may be left out: 0.1- or -2)\n\
/unsubscribe — no more new-lot messages\n\
/lots — open lots and their current prices\n\
/link CODE — link this chat to your Gavel account (get the code in the web client) for outbid, won and payment alerts\n\
/unlink — forget the account\n\
/settings — what this chat gets";

/// What a `/subscribe` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    pub keywords: Vec<String>,
    pub min: Option<Wei>,
    pub max: Option<Wei>,
}

/// Parses `/subscribe` arguments: words, and at most one `MIN-MAX` range in ETH.
pub fn parse_filter(arguments: &str) -> Result<Filter, String> {
    let mut filter = Filter::default();
    let mut ranged = false;
    for word in arguments.split_whitespace() {
        let looks_like_range = word.contains('-')
            && word
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b'.' || byte == b'-');
        if looks_like_range {
            let (low, high) = word.split_once('-').unwrap_or((word, ""));
            if ranged || high.contains('-') {
                return Err("give at most one price range, like 0.1-2".to_owned());
            }
            ranged = true;
            let bound = |text: &str| -> Result<Option<Wei>, String> {
                if text.is_empty() {
                    return Ok(None);
                }
                parse_eth(text)
                    .map(Some)
                    .ok_or_else(|| format!("{text} is not an amount in ETH"))
            };
            filter.min = bound(low)?;
            filter.max = bound(high)?;
            if let (Some(min), Some(max)) = (filter.min, filter.max)
                && min > max
            {
                return Err("the range's lower end is above its upper end".to_owned());
            }
            if filter.min.is_none() && filter.max.is_none() {
                return Err("a range needs at least one end, like 0.1- or -2".to_owned());
            }
        } else {
            let keyword = word.to_lowercase();
            if keyword.chars().count() > 50 || filter.keywords.len() >= 10 {
                return Err("up to 10 words of up to 50 characters".to_owned());
            }
            if !filter.keywords.contains(&keyword) {
                filter.keywords.push(keyword);
            }
        }
    }
    Ok(filter)
}

/// The chat an update comes from, its kind, and the text of its message.
fn message_of(update: &Update) -> Option<(i64, &'static str, String)> {
    let UpdateKind::Message(message) = &update.kind else {
        return None;
    };
    let kind = match &message.chat.kind {
        ChatKind::Private(_) => "private",
        ChatKind::Public(public) => match public.kind {
            PublicChatKind::Group => "group",
            PublicChatKind::Supergroup(_) => "supergroup",
            PublicChatKind::Channel(_) => "channel",
        },
    };
    Some((message.chat.id.0, kind, message.text()?.to_owned()))
}

/// Applies one update, once: returns `false` when it had been applied before.
pub async fn handle_update(
    pool: &PgPool,
    update: &Update,
    bot_name: &str,
    public_url: &url::Url,
) -> Result<bool, sqlx::Error> {
    let update_id = i64::from(update.id.0);
    let mut tx = pool.begin().await?;
    // The last update applied; an update at or below it is a repeat.
    let done: Option<i64> =
        sqlx::query_scalar("SELECT value FROM telegram_state WHERE key = 'last_update' FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await?;
    if done.is_some_and(|done| update_id <= done) {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO telegram_state (key, value) VALUES ('last_update', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(update_id)
    .execute(&mut *tx)
    .await?;
    if let Some((chat_id, kind, text)) = message_of(update)
        && text.starts_with('/')
    {
        // Writing to the bot again after blocking it: the chat is back, but not re-subscribed.
        let was_blocked: bool = sqlx::query_scalar(
            "SELECT blocked_at IS NOT NULL FROM chats WHERE chat_id = $1 FOR UPDATE",
        )
        .bind(chat_id)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(false);
        sqlx::query(
            "INSERT INTO chats (chat_id, kind) VALUES ($1, $2)
             ON CONFLICT (chat_id) DO UPDATE SET kind = EXCLUDED.kind, blocked_at = NULL",
        )
        .bind(chat_id)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
        let reply = match Command::parse(&text, bot_name) {
            Ok(Command::Start) if was_blocked => format!(
                "Welcome back! You are no longer subscribed: blocking the bot ended your \
                 subscription. Send /subscribe to hear about new lots again.\n{HELP}"
            ),
            Ok(command) => run(&mut tx, chat_id, command, public_url).await?,
            Err(_) => format!(
                "I don't know {}. Send /help for the commands.",
                escape(text.split_whitespace().next().unwrap_or(""))
            ),
        };
        // The reply's key: one per update ("telegram" in the high half, the update id below; no
        // event id, a UUIDv7, can look like it).
        let event_id = Uuid::from_u64_pair(0x7465_6c65_6772_616d, update_id as u64);
        let queued = sqlx::query(
            "INSERT INTO outbound (event_id, chat_id, kind, text) VALUES ($1, $2, 'reply', $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(event_id)
        .bind(chat_id)
        .bind(&reply)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        wake(&mut tx, queued).await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn run(
    tx: &mut PgConnection,
    chat_id: i64,
    command: Command,
    public_url: &url::Url,
) -> Result<String, sqlx::Error> {
    Ok(match command {
        Command::Start => format!("Welcome to Gavel!\n{HELP}"),
        Command::Help => HELP.to_owned(),
        Command::Subscribe(arguments) => match parse_filter(&arguments) {
            Err(problem) => format!("Not subscribed: {}. Try /help.", escape(&problem)),
            Ok(filter) => {
                sqlx::query(
                    "UPDATE chats SET subscribed = TRUE, keywords = $2, min_price = $3::numeric, max_price = $4::numeric
                     WHERE chat_id = $1",
                )
                .bind(chat_id)
                .bind(&filter.keywords)
                .bind(filter.min.map(|min| min.to_string()))
                .bind(filter.max.map(|max| max.to_string()))
                .execute(&mut *tx)
                .await?;
                format!("Subscribed to {}.", describe(&filter))
            }
        },
        Command::Unsubscribe => {
            sqlx::query("UPDATE chats SET subscribed = FALSE WHERE chat_id = $1")
                .bind(chat_id)
                .execute(&mut *tx)
                .await?;
            "Unsubscribed: no more new-lot messages. Alerts for a linked account continue until /unlink.".to_owned()
        }
        Command::Lots => {
            let lots: Vec<OpenLot> = sqlx::query_as(
                "SELECT lot_id, title, start_price::text AS start_price, price::text AS price, bids, ends_at
                 FROM lots WHERE status = 'open' ORDER BY ends_at LIMIT 10",
            )
            .fetch_all(&mut *tx)
            .await?;
            if lots.is_empty() {
                "No lot is open right now.".to_owned()
            } else {
                let base = public_url.as_str().trim_end_matches('/');
                let mut lines = Vec::new();
                for OpenLot {
                    lot_id: id,
                    title,
                    start_price: start,
                    price,
                    bids,
                    ends_at: ends,
                } in &lots
                {
                    let price = match (price, bids) {
                        (Some(price), 1..) => format!(
                            "now {} ETH ({bids} bid{})",
                            eth(&stored("lots.price", price)?),
                            if *bids == 1 { "" } else { "s" }
                        ),
                        _ => format!(
                            "from {} ETH, no bids yet",
                            eth(&stored("lots.start_price", start)?)
                        ),
                    };
                    lines.push(format!(
                        "• <a href=\"{base}/lots/{id}\">{}</a> — {price}, ends {}",
                        escape(title),
                        ends.format("%Y-%m-%d %H:%M UTC")
                    ));
                }
                format!("Open lots:\n{}", lines.join("\n"))
            }
        }
        Command::Link(code) => {
            let code = code.trim().to_uppercase();
            if code.is_empty() {
                return Ok("Send /link followed by the code from the web client.".to_owned());
            }
            let account: Option<Uuid> = sqlx::query_scalar(
                "UPDATE link_codes SET used_at = now()
                 WHERE code = $1 AND used_at IS NULL AND expires_at > now() RETURNING account_id",
            )
            .bind(&code)
            .fetch_optional(&mut *tx)
            .await?;
            match account {
                Some(account) => {
                    sqlx::query("UPDATE chats SET account_id = $2 WHERE chat_id = $1")
                        .bind(chat_id)
                        .bind(account)
                        .execute(&mut *tx)
                        .await?;
                    "Linked: this chat now gets your outbid, won and payment alerts.".to_owned()
                }
                None => "That code is wrong, used or expired. Get a new one in the web client (codes last 10 minutes).".to_owned(),
            }
        }
        Command::Unlink => {
            let unlinked = sqlx::query(
                "UPDATE chats SET account_id = NULL WHERE chat_id = $1 AND account_id IS NOT NULL",
            )
            .bind(chat_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if unlinked == 0 {
                "This chat is not linked to an account.".to_owned()
            } else {
                "Unlinked: no more personal alerts here.".to_owned()
            }
        }
        Command::Settings => {
            let (subscribed, keywords, min, max, account): (
                bool,
                Vec<String>,
                Option<String>,
                Option<String>,
                Option<Uuid>,
            ) = sqlx::query_as(
                "SELECT subscribed, keywords, min_price::text, max_price::text, account_id
                 FROM chats WHERE chat_id = $1",
            )
            .bind(chat_id)
            .fetch_one(&mut *tx)
            .await?;
            let filter = Filter {
                keywords,
                min: min.map(|min| stored("chats.min_price", &min)).transpose()?,
                max: max.map(|max| stored("chats.max_price", &max)).transpose()?,
            };
            let lots = if subscribed {
                format!("New lots: {}.", describe(&filter))
            } else {
                "New lots: off (/subscribe).".to_owned()
            };
            let link = match account {
                Some(_) => "Personal alerts: on (linked to an account; /unlink).",
                None => "Personal alerts: off (/link CODE).",
            };
            format!("{lots}\n{link}")
        }
    })
}

/// A line of `/lots`.
#[derive(sqlx::FromRow)]
struct OpenLot {
    lot_id: Uuid,
    title: String,
    start_price: String,
    price: Option<String>,
    bids: i32,
    ends_at: DateTime<Utc>,
}

fn describe(filter: &Filter) -> String {
    let mut parts = Vec::new();
    if filter.keywords.is_empty() {
        parts.push("every new lot".to_owned());
    } else {
        parts.push(format!(
            "new lots with “{}” in the title",
            escape(&filter.keywords.join(" "))
        ));
    }
    match (filter.min, filter.max) {
        (Some(min), Some(max)) => {
            parts.push(format!("starting at {}–{} ETH", eth(&min), eth(&max)))
        }
        (Some(min), None) => parts.push(format!("starting at {} ETH or more", eth(&min))),
        (None, Some(max)) => parts.push(format!("starting at up to {} ETH", eth(&max))),
        (None, None) => {}
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wei(eth: &str) -> Option<Wei> {
        parse_eth(eth)
    }

    #[test]
    fn filters_parse_words_and_one_range() {
        let cases = [
            ("", Ok(Filter::default())),
            (
                "Lamp brass lamp",
                Ok(Filter {
                    keywords: vec!["lamp".into(), "brass".into()],
                    ..Filter::default()
                }),
            ),
            (
                "watch 0.1-2",
                Ok(Filter {
                    keywords: vec!["watch".into()],
                    min: wei("0.1"),
                    max: wei("2"),
                }),
            ),
            (
                "0.5-",
                Ok(Filter {
                    min: wei("0.5"),
                    ..Filter::default()
                }),
            ),
            (
                "-3",
                Ok(Filter {
                    max: wei("3"),
                    ..Filter::default()
                }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_filter(text), expected, "{text}");
        }
        for bad in ["2-1", "1-2 3-4", "-", "1.2.3-4", "0.1-2-3"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_help_and_the_menu_match_the_documented_commands() {
        let docs = include_str!("../../../docs/notifier.md");
        for line in HELP.lines().filter(|line| line.starts_with('/')) {
            let example = line.split(" — ").next().unwrap_or(line);
            assert!(
                docs.contains(&format!("`{example}`")),
                "docs/notifier.md does not show `{example}` from the help"
            );
        }
        for command in Command::bot_commands() {
            assert!(
                docs.contains(&format!("`/{}", command.command.trim_start_matches('/'))),
                "docs/notifier.md does not list /{}",
                command.command
            );
            assert!(!command.description.is_empty(), "{}", command.command);
        }
    }

    #[test]
    fn commands_parse_in_lower_case_with_arguments() {
        assert_eq!(
            Command::parse("/subscribe lamp 0.1-2", "gavel_bot").ok(),
            Some(Command::Subscribe("lamp 0.1-2".to_owned()))
        );
        assert_eq!(
            Command::parse("/link@gavel_bot AB12CD34", "gavel_bot").ok(),
            Some(Command::Link("AB12CD34".to_owned()))
        );
        assert_eq!(
            Command::parse("/start", "gavel_bot").ok(),
            Some(Command::Start)
        );
        assert!(Command::parse("/dance", "gavel_bot").is_err());
    }
}
