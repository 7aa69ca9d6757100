//! Talking to the Bot API through teloxide, and what each failure means for a message, told in
//! our own words (never with the request URL: it holds the bot token).

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{FileId, InputFile, LinkPreviewOptions, ParseMode};
use teloxide::{ApiError, RequestError};
use tracing::info;

use crate::config::TelegramConfig;

/// How a send failed, sorted by what to do about it. Each carries a reason for `last_error`.
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

impl SendError {
    /// What happened, in a sentence.
    pub fn reason(&self) -> String {
        match self {
            Self::RetryAfter(wait) => format!(
                "Telegram asked the bot to wait {} s (429 flood control)",
                wait.as_secs()
            ),
            Self::Blocked(reason)
            | Self::Transient(reason)
            | Self::Uncertain(reason)
            | Self::Permanent(reason) => reason.clone(),
        }
    }
}

/// A photo to send with a message.
#[derive(Debug, Clone)]
pub enum Photo {
    /// The image's bytes, uploaded with the message (Telegram never has to fetch a URL of ours).
    Upload { bytes: Vec<u8>, file_name: String },
    /// A photo Telegram already has, by the file id it gave for an earlier upload.
    FileId(String),
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

    /// Sends a text message, or a photo captioned with the text. Returns the file id Telegram
    /// gave the photo, to send it again without uploading.
    pub async fn send(
        &self,
        chat_id: i64,
        text: &str,
        photo: Option<Photo>,
    ) -> Result<Option<String>, SendError> {
        let bot = match self {
            Telegram::DryRun => {
                info!(
                    chat_id,
                    photo = photo.is_some(),
                    text,
                    "dry run: message not sent"
                );
                return Ok(None);
            }
            Telegram::Bot(bot) => bot,
        };
        match photo {
            Some(photo) => {
                let file = match photo {
                    Photo::Upload { bytes, file_name } => {
                        InputFile::memory(bytes).file_name(file_name)
                    }
                    Photo::FileId(id) => InputFile::file_id(FileId(id)),
                };
                let sent = bot
                    .send_photo(ChatId(chat_id), file)
                    .caption(text)
                    .parse_mode(ParseMode::Html)
                    .await
                    .map_err(|error| classify(&error))?;
                // The largest size's id; any of them names the photo.
                Ok(sent
                    .photo()
                    .and_then(|sizes| sizes.last())
                    .map(|size| size.file.id.0.clone()))
            }
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
                .map(|_| None)
                .map_err(|error| classify(&error)),
        }
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

pub fn classify(error: &RequestError) -> SendError {
    match error {
        RequestError::RetryAfter(seconds) => SendError::RetryAfter(seconds.duration()),
        RequestError::Api(
            api @ (ApiError::BotBlocked
            | ApiError::UserDeactivated
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel),
        ) => SendError::Blocked(format!(
            "the chat blocked the bot or is gone (Telegram said: {api})"
        )),
        RequestError::Api(ApiError::Unknown(description))
            if description.starts_with("Forbidden") =>
        {
            SendError::Blocked(format!(
                "the chat blocked the bot or is gone (Telegram said: {description})"
            ))
        }
        // Telegram's own 5xx answers (teloxide keeps only the description): not delivered.
        RequestError::Api(ApiError::Unknown(description)) if is_outage(description) => {
            SendError::Transient(format!(
                "Telegram is failing; trying again later (Telegram said: {description})"
            ))
        }
        RequestError::Api(ApiError::InvalidToken) => SendError::Permanent(
            "Telegram does not know the bot token (401 Unauthorized): check telegram.token"
                .to_owned(),
        ),
        RequestError::Api(api) => SendError::Permanent(format!(
            "Telegram refused the request (Telegram said: {api})"
        )),
        RequestError::Network(network) if network.is_connect() => SendError::Transient(format!(
            "could not reach Telegram at all: {}",
            network_cause(network.as_ref(), network.is_timeout())
        )),
        RequestError::Network(network) if network.is_timeout() => SendError::Uncertain(format!(
            "Telegram did not answer in time; the message may have arrived, so it is not sent again: {}",
            network_cause(network.as_ref(), network.is_timeout())
        )),
        RequestError::Network(network) => SendError::Uncertain(format!(
            "the connection to Telegram failed mid-request; the message may have arrived, so it is not sent again: {}",
            network_cause(network.as_ref(), network.is_timeout())
        )),
        RequestError::MigrateToChatId(chat) => SendError::Permanent(format!(
            "the group became a supergroup (chat {chat}); it must /start the bot again"
        )),
        RequestError::InvalidJson { source, .. } => {
            SendError::Transient(format!("Telegram's answer could not be read: {source}"))
        }
        RequestError::Io(io) => {
            SendError::Transient(format!("the photo could not be read for upload: {io}"))
        }
    }
}

/// The causes of a network error, without the error itself: its text holds the request URL, and
/// with it the bot token.
fn network_cause(error: &(dyn std::error::Error + 'static), timed_out: bool) -> String {
    let mut causes: Vec<String> = Vec::new();
    if timed_out {
        causes.push("timed out".to_owned());
    }
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        causes.push("no further detail".to_owned());
    }
    causes.join(": ")
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
