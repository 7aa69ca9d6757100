//! Where commands come from: long polling (`getUpdates`) for local runs, or Telegram's webhook.

use std::time::Duration;

use gavel_common::BoxError;
use sqlx::PgPool;
use teloxide::prelude::*;
use teloxide::types::AllowedUpdate;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::commands::handle_update;

/// The updates the bot handles: messages (commands). Telegram sends nothing else.
pub const ALLOWED: [AllowedUpdate; 1] = [AllowedUpdate::Message];

#[derive(Debug, Clone)]
pub struct Polling {
    pub pool: PgPool,
    pub bot: Bot,
    pub bot_name: String,
    pub poll_timeout: Duration,
    pub public_url: url::Url,
}

impl Polling {
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        // A webhook left set would make getUpdates fail.
        if let Err(error) = self.bot.delete_webhook().await {
            warn!(
                reason = crate::telegram::classify(&error).reason(),
                "cannot delete the webhook before polling"
            );
        }
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT value FROM telegram_state WHERE key = 'last_update'")
                    .fetch_optional(&self.pool)
                    .await?;
            let mut request = self
                .bot
                .get_updates()
                .timeout(u32::try_from(self.poll_timeout.as_secs()).unwrap_or(25))
                .allowed_updates(ALLOWED);
            if let Some(last) = last {
                request = request.offset(i32::try_from(last + 1).unwrap_or(i32::MAX));
            }
            let updates = tokio::select! {
                () = cancel.cancelled() => break,
                updates = request.send() => updates,
            };
            match updates {
                Ok(updates) => {
                    failures = 0;
                    for update in &updates {
                        handle_update(&self.pool, update, &self.bot_name, &self.public_url).await?;
                    }
                }
                Err(error) => {
                    failures += 1;
                    let wait = Duration::from_millis(500 * u64::from(failures.min(20)));
                    warn!(
                        reason = crate::telegram::classify(&error).reason(),
                        ?wait,
                        "getUpdates failed"
                    );
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        info!("polling stopped");
        Ok(())
    }
}
