//! `wallets`: accounts and their Ethereum wallets, Sign-In with Ethereum and the access tokens
//! every service checks, balances read from the chain, and the holds ledger that keeps a wallet
//! from backing more than it holds.
//!
//! Layout: [`signin`] (EIP-4361 checks), [`nonces`] (Redis), [`tokens`] (JWT minting, JWKS),
//! [`accounts`], [`chain`] (balances and payment checks over JSON-RPC), [`ledger`] (holds),
//! [`settlement`] (auction events, payments, sweeps), [`http`] (the API).

pub mod accounts;
pub mod chain;
pub mod config;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod nonces;
pub mod settlement;
pub mod signin;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;

use std::sync::Arc;

use gavel_common::auth::{AuthConfig, JwtVerifier};
use gavel_common::cache::Cache;
use gavel_common::health::Readiness;
use gavel_common::idempotency::{RetentionConfig, StoredAnswers};
use gavel_common::metrics::Metrics;
use gavel_common::server::{Service, StartError};
use gavel_messaging::consumer::ConsumerMetrics;
use gavel_messaging::outbox::{Relay, RelayMetrics};
use gavel_messaging::{Broker, Consumer};

pub use config::Config;

/// The migrations of `wallets`' own tables (the outbox's come from `gavel-messaging`).
/// Applies the shared messaging tables' migrations and this service's own (what `build` does
/// first, and all that `gavel-wallets migrate` does).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), StartError> {
    gavel_messaging::migrate(pool, &migrator()).await
}

pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// The answers to hold requests kept for retries, pruned after `retention.idempotency`.
pub fn stored_answers(pool: sqlx::PgPool, retention: &RetentionConfig) -> StoredAnswers {
    StoredAnswers {
        pool,
        table: "hold_requests",
        only: "true",
        older_than: retention.idempotency,
    }
}

/// Connects to everything `wallets` needs, migrates its database, and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    let metrics = Metrics::new("wallets");
    let pool = config
        .database
        .pool()
        .map_err(|e| StartError::new("configuring PostgreSQL", e))?;
    migrate(&pool).await?;
    let cache = Cache::connect(&config.redis)
        .await
        .map_err(|e| StartError::new("connecting to Redis", e))?;
    let broker = Broker::new(config.broker.clone(), "wallets");
    let issuer = tokens::TokenIssuer::from_config(&config.tokens)
        .map_err(|e| StartError::new("loading the signing key", e))?;
    let verifier = JwtVerifier::from_config(&AuthConfig {
        issuer: config.tokens.issuer.clone(),
        audience: config.tokens.audience.clone(),
        ..AuthConfig::with_key(issuer.public_key_pem())
    })
    .map_err(|e| StartError::new("deriving the verification key", e))?
    .with_metrics(&metrics);
    let chain = chain::Chain::new(
        &config.chain,
        cache.clone(),
        metrics::ChainMetrics::new(&metrics),
    );
    let wallet_metrics = metrics::WalletMetrics::new(&metrics);

    let state = http::AppState {
        pool: pool.clone(),
        nonces: nonces::Nonces::new(cache.clone(), config.sign_in.nonce_ttl),
        policy: Arc::new(signin::Policy::new(&config.sign_in, config.chain.chain_id)),
        issuer: Arc::new(issuer),
        verifier,
        chain: chain.clone(),
        callers: config.internal.callers(),
        metrics: wallet_metrics.clone(),
    };
    gavel_common::db::watch_pool(&metrics, &pool);
    let readiness = Readiness::default()
        .with_postgres(pool.clone())
        .with_redis(cache)
        .with_check("rabbitmq", broker.check())
        .with_check("ethereum", move || chain.clone().ping());

    let relay = Relay::new(pool.clone(), broker.clone(), RelayMetrics::new(&metrics));
    let consumer = Consumer::new(
        "wallets.auction-events",
        &["auction.bid_accepted", "auction.closed"],
        pool.clone(),
        broker,
        settlement::AuctionEvents {
            payment_window: config.settlement.payment_window,
        },
        ConsumerMetrics::new(&metrics),
    );
    let service = Service::new(http::router(state.clone()), metrics, readiness)
        .with_internal(http::internal_router(state));
    let cancel = service.cancellation();
    let settlement = config.settlement.clone();
    let answers = stored_answers(pool.clone(), &config.retention);
    Ok(service
        .with_task("answers-retention", answers.run(cancel.clone()))
        .with_task("outbox-relay", relay.run(cancel.clone()))
        .with_task("auction-events", consumer.run(cancel.clone()))
        .with_task(
            "sweeps",
            settlement::sweep(pool, settlement.sweep_interval, wallet_metrics, cancel),
        ))
}
