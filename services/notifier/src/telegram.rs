//! Talking to the Bot API through teloxide, and what each failure means for a message.

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{InputFile, LinkPreviewOptions, ParseMode};
use teloxide::{ApiError, RequestError};
use tracing::info;

use crate::config::TelegramConfig;

/// How a send failed, sorted by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// 429: not delivered; wait this long before sending anything.
    RetryAfter(Duration),
    /// 403: the chat blocked the bot (or is gone); unsubscribe it.
    Blocked(String),
    /// Certainly not delivered (no connection, an unreadable answer): try again later.
    Transient(String),
    /// The request may have reached Telegram (a timeout after sending): never resent.
    Uncertain(String),
    /// Telegram refused this message for good (bad request, chat not found).
    Permanent(String),
}

/// The bot, or a dry run that only logs (no token configured).
#[derive(Debug, Clone)]
pub enum Telegram {
    Bot(Bot),
    DryRun,
}

impl Telegram {
    /// A client for sending, or `None` when no token is configured (dry run).
    pub fn for_sending(config: &TelegramConfig) -> Result<Self, String> {
        match &config.token {
            None => Ok(Telegram::DryRun),
            Some(token) => bot(config, token.expose(), config.request_timeout).map(Telegram::Bot),
        }
    }

    pub async fn send(
        &self,
        chat_id: i64,
        text: &str,
        photo: Option<url::Url>,
    ) -> Result<(), SendError> {
        let bot = match self {
            Telegram::DryRun => {
                info!(
                    chat_id,
                    photo = photo.as_ref().map(url::Url::as_str),
                    text,
                    "dry run: message not sent"
                );
                return Ok(());
            }
            Telegram::Bot(bot) => bot,
        };
        let result = match photo {
            Some(url) => bot
                .send_photo(ChatId(chat_id), InputFile::url(url))
                .caption(text)
                .parse_mode(ParseMode::Html)
                .await
                .map(|_| ()),
            None => bot
                .send_message(ChatId(chat_id), text)
                .parse_mode(ParseMode::Html)
                .link_preview_options(LinkPreviewOptions {
                    is_disabled: true,
                    url: None,
                    prefer_small_media: false,
                    prefer_large_media: false,
                    show_above_text: false,
                })
                .await
                .map(|_| ()),
        };
        result.map_err(classify)
    }
}

/// A teloxide bot on `config.api_url` whose requests time out after `timeout`.
pub fn bot(config: &TelegramConfig, token: &str, timeout: Duration) -> Result<Bot, String> {
    let client = teloxide::net::default_reqwest_settings()
        .timeout(timeout)
        .build()
        .map_err(|error| error.to_string())?;
    Ok(Bot::with_client(token, client).set_api_url(config.api_url.clone()))
}

pub fn classify(error: RequestError) -> SendError {
    match error {
        RequestError::RetryAfter(seconds) => SendError::RetryAfter(seconds.duration()),
        RequestError::Api(
            ApiError::BotBlocked
            | ApiError::UserDeactivated
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel,
        ) => SendError::Blocked(error.to_string()),
        RequestError::Api(ApiError::Unknown(description))
            if description.starts_with("Forbidden") =>
        {
            SendError::Blocked(description)
        }
        // Telegram's own 5xx answers (teloxide keeps only the description): not delivered.
        RequestError::Api(ApiError::Unknown(description)) if is_outage(&description) => {
            SendError::Transient(description)
        }
        RequestError::Api(api) => SendError::Permanent(api.to_string()),
        RequestError::Network(network) if network.is_connect() => {
            SendError::Transient(network.to_string())
        }
        RequestError::Network(network) => SendError::Uncertain(network.to_string()),
        RequestError::MigrateToChatId(chat) => {
            SendError::Permanent(format!("the group moved to chat {chat}"))
        }
        other => SendError::Transient(other.to_string()),
    }
}

/// The descriptions of the Bot API's server-side failures.
fn is_outage(description: &str) -> bool {
    [
        "Internal Server Error",
        "Bad Gateway",
        "Service Unavailable",
        "Gateway Timeout",
    ]
    .iter()
    .any(|outage| description.starts_with(outage))
}
