//! `notifier`: the Telegram bot. It keeps subscribers, account links and preferences in
//! PostgreSQL, turns `lot.*`, `auction.*` and `payment.*` events into messages, and sends them
//! through a durable outbound queue that respects Telegram's limits (`docs/notifier.md`).

pub mod alerts;
pub mod commands;
pub mod config;
pub mod http;
pub mod money;
pub mod outbound;
pub mod telegram;
pub mod updates;

use gavel_common::auth::JwtVerifier;
use gavel_common::health::Readiness;
use gavel_common::metrics::Metrics;
use gavel_common::server::{Service, StartError};
use gavel_messaging::consumer::ConsumerMetrics;
use gavel_messaging::{Broker, Consumer};
use teloxide::prelude::Requester;
use teloxide::utils::command::BotCommands as _;
use tracing::info;

pub use config::Config;

use crate::config::Mode;
use crate::telegram::Telegram;

/// The migrations of the notifier's own tables (the inbox's come from `gavel-messaging`).
/// Applies the shared messaging tables' migrations and this service's own (what `build` does
/// first, and all that `gavel-notifier migrate` does).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), StartError> {
    gavel_messaging::migrate(pool, &migrator()).await
}

pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// Connects to everything `notifier` needs, migrates, and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    let metrics = Metrics::new("notifier");
    let verifier = JwtVerifier::from_config(&config.auth)
        .map_err(|e| StartError::new("loading the JWT key", e))?
        .with_metrics(&metrics);
    let pool = config
        .database
        .pool()
        .map_err(|e| StartError::new("configuring PostgreSQL", e))?;
    migrate(&pool).await?;
    let broker = Broker::new(config.broker.clone(), "notifier");
    gavel_common::db::watch_pool(&metrics, &pool);
    let readiness = Readiness::default()
        .with_postgres(pool.clone())
        .with_check("rabbitmq", broker.check());

    let telegram_config = &config.telegram;
    let telegram = Telegram::for_sending(telegram_config)
        .map_err(|e| StartError::new("creating the Telegram client", e))?;
    // The bot's username, for commands addressed as `/cmd@name`.
    let bot_name = match &telegram {
        Telegram::DryRun => {
            info!("no telegram.token: dry run, messages are logged, not sent");
            String::new()
        }
        Telegram::Bot(bot) => {
            let me = bot.get_me().await.map_err(|error| {
                StartError::new(
                    "asking Telegram who the bot is (getMe)",
                    telegram::classify(&error).reason(),
                )
            })?;
            // The command menu Telegram shows under the message field.
            // Telegram names commands without the slash.
            let menu = commands::Command::bot_commands()
                .into_iter()
                .map(|mut command| {
                    command.command = command.command.trim_start_matches('/').to_owned();
                    command
                });
            if let Err(error) = bot.set_my_commands(menu).await {
                tracing::warn!(
                    reason = telegram::classify(&error).reason(),
                    "cannot register the command menu (setMyCommands)"
                );
            }
            me.username.clone().unwrap_or_default()
        }
    };

    let outcomes = gavel_common::metrics::counter_vec(
        "telegram_messages_total",
        "Outbound messages by outcome (sent, retry_after, retry, blocked, failed, uncertain).",
        "outcome",
        &[
            "sent",
            "retry_after",
            "retry",
            "blocked",
            "failed",
            "uncertain",
        ],
    );
    metrics.register(outcomes.clone());
    let queue_depth = prometheus::IntGauge::new(
        "telegram_queue_depth",
        "Outbound Telegram messages waiting to be sent, retries included.",
    )
    .expect("static metric definition is valid");
    let queue_oldest = prometheus::Gauge::new(
        "telegram_oldest_pending_age_seconds",
        "Age of the oldest outbound message still waiting; 0 when none waits.",
    )
    .expect("static metric definition is valid");
    metrics.register(queue_depth.clone());
    metrics.register(queue_oldest.clone());

    let mut webhook = None;
    let mut polling = None;
    if let (Telegram::Bot(bot), Some(token)) = (&telegram, &telegram_config.token) {
        match telegram_config.mode {
            Mode::Webhook => {
                let (Some(url), Some(secret)) = (
                    &telegram_config.webhook_url,
                    &telegram_config.webhook_secret,
                ) else {
                    return Err(StartError::new(
                        "configuring the webhook",
                        "webhook mode needs telegram.webhook_url and telegram.webhook_secret",
                    ));
                };
                use teloxide::payloads::SetWebhookSetters;
                bot.set_webhook(url.clone())
                    .secret_token(secret.expose().to_owned())
                    .allowed_updates(updates::ALLOWED.to_vec())
                    .await
                    .map_err(|error| {
                        StartError::new(
                            "registering the webhook (setWebhook)",
                            telegram::classify(&error).reason(),
                        )
                    })?;
                webhook = Some((secret.expose().to_owned(), bot_name.clone()));
            }
            Mode::Polling => {
                let poll_bot = telegram::bot(
                    telegram_config,
                    token.expose(),
                    telegram_config.request_timeout + telegram_config.poll_timeout,
                )
                .map_err(|e| StartError::new("creating the Telegram client", e))?;
                polling = Some(updates::Polling {
                    pool: pool.clone(),
                    bot: poll_bot,
                    bot_name: bot_name.clone(),
                    poll_timeout: telegram_config.poll_timeout,
                    public_url: config.links.public_url.clone(),
                });
            }
        }
    }

    let consumer = Consumer::new(
        "notifier.events",
        &alerts::BINDINGS,
        pool.clone(),
        broker,
        alerts::Alerts {
            public_url: config.links.public_url.clone(),
        },
        ConsumerMetrics::new(&metrics),
    );
    let sender = outbound::Sender {
        pool: pool.clone(),
        telegram,
        config: telegram_config.clone(),
        lots_url: config.links.lots_url.clone(),
        public_url: config.links.public_url.clone(),
        outcomes,
    };
    let queue_pool = pool.clone();
    let router = http::router(http::AppState {
        pool,
        verifier,
        links: config.links.clone(),
        webhook,
        bot: (!bot_name.is_empty()).then(|| bot_name.clone()),
    });
    let service = Service::new(router, metrics, readiness);
    let cancel = service.cancellation();
    let mut service = service
        .with_task("events", consumer.run(cancel.clone()))
        .with_task("sender", sender.run(cancel.clone()))
        .with_task(
            "queue-depth",
            outbound::measure_queue(queue_pool, queue_depth, queue_oldest, cancel.clone()),
        );
    if let Some(polling) = polling {
        service = service.with_task("polling", polling.run(cancel));
    }
    Ok(service)
}
