//! Reading the chain: confirmed balances (cached briefly in Redis) and payment verification.

use std::time::{Duration, Instant};

use alloy::consensus::Transaction as _;
use alloy::eips::BlockId;
use alloy::network::{ReceiptResponse as _, TransactionResponse as _};
use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use gavel_common::cache::Cache;
use gavel_types::{EthAddress, Wei};
use redis::AsyncCommands;

use crate::config::ChainConfig;
use crate::metrics::ChainMetrics;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the Ethereum node did not answer")]
    Rpc(#[from] alloy::transports::TransportError),
    #[error("the balance cache failed")]
    Cache(#[from] redis::RedisError),
    #[error("the node does not know block {0}, which mined a transaction it reported")]
    MissingBlock(u64),
}

/// A balance as of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub amount: Wei,
    pub block: u64,
}

/// Why a transaction does not settle a payment: each is a 422 naming the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentCheck {
    #[error("no such transaction on chain {0}")]
    NotFound(u64),
    #[error("the transaction is not mined yet")]
    NotMined,
    #[error("the transaction failed (reverted) on chain")]
    Failed,
    #[error("the transaction has {actual} confirmations, {required} are required")]
    NotEnoughConfirmations { actual: u64, required: u64 },
    #[error("the transaction was sent by {actual}, not by the winning wallet {expected}")]
    WrongSender {
        expected: EthAddress,
        actual: EthAddress,
    },
    #[error("the transaction pays {actual}, not the seller's wallet {expected}")]
    WrongRecipient {
        expected: EthAddress,
        actual: String,
    },
    #[error("the transaction pays {actual} wei, the price is {expected} wei")]
    AmountTooLow { expected: Wei, actual: Wei },
    #[error("the transaction was mined at {mined_at}, before the auction closed at {closed_at}")]
    BeforeClose {
        mined_at: chrono::DateTime<chrono::Utc>,
        closed_at: chrono::DateTime<chrono::Utc>,
    },
}

impl PaymentCheck {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "transaction_not_found",
            Self::NotMined => "transaction_not_mined",
            Self::Failed => "transaction_failed",
            Self::NotEnoughConfirmations { .. } => "not_enough_confirmations",
            Self::WrongSender { .. } => "wrong_sender",
            Self::WrongRecipient { .. } => "wrong_recipient",
            Self::AmountTooLow { .. } => "amount_too_low",
            Self::BeforeClose { .. } => "transaction_before_close",
        }
    }
}

/// What a payment must be.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub from: EthAddress,
    pub to: EthAddress,
    pub at_least: Wei,
    /// The auction's close: a transfer mined before it (made in advance, or for something else)
    /// does not pay for the lot. Block times have whole seconds, so the close's second counts.
    pub mined_from: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug)]
pub struct Chain {
    provider: DynProvider,
    chain_id: u64,
    confirmations: u64,
    cache: Cache,
    cache_ttl: Duration,
    metrics: ChainMetrics,
}

impl Chain {
    pub fn new(config: &ChainConfig, cache: Cache, metrics: ChainMetrics) -> Self {
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(config.rpc_url.expose().clone())
            .erased();
        Self {
            provider,
            chain_id: config.chain_id,
            confirmations: config.confirmations.max(1),
            cache,
            cache_ttl: config.balance_cache_ttl,
            metrics,
        }
    }

    /// The balance at `latest − (confirmations − 1)`: what the wallet holds in blocks that will
    /// not be reorganised away. Reused from Redis for the cache TTL.
    pub async fn confirmed_balance(&self, wallet: EthAddress) -> Result<Balance, ChainError> {
        let key = self
            .cache
            .key(&format!("balance:{}", wallet.to_lowercase_hex()));
        let mut connection = self.cache.connection();
        let cached: Option<String> = connection.get(&key).await?;
        if let Some(balance) = cached.as_deref().and_then(parse_cached) {
            return Ok(balance);
        }
        let started = Instant::now();
        let read = self.read_balance(wallet).await;
        self.metrics.observe("balance", started, read.is_ok());
        let (block, amount) = read?;
        let balance = Balance {
            amount: Wei::from_u256(amount),
            block,
        };
        let ttl = u64::try_from(self.cache_ttl.as_millis())
            .unwrap_or(2000)
            .max(1);
        connection
            .pset_ex::<_, _, ()>(&key, format!("{block}:{}", balance.amount), ttl)
            .await?;
        Ok(balance)
    }

    /// The confirmed block and the wallet's balance in it, from the node.
    async fn read_balance(
        &self,
        wallet: EthAddress,
    ) -> Result<(u64, alloy::primitives::U256), ChainError> {
        let latest = self.provider.get_block_number().await?;
        let block = latest.saturating_sub(self.confirmations - 1);
        let amount = self
            .provider
            .get_balance(wallet.as_alloy())
            .block_id(BlockId::number(block))
            .await?;
        Ok((block, amount))
    }

    /// Checks that `tx_hash` is a successful, confirmed transfer matching `expected`.
    pub async fn verify_payment(
        &self,
        tx_hash: B256,
        expected: Expected,
    ) -> Result<Result<(), PaymentCheck>, ChainError> {
        let started = Instant::now();
        let checked = self.check_payment(tx_hash, expected).await;
        self.metrics.observe("payment", started, checked.is_ok());
        checked
    }

    async fn check_payment(
        &self,
        tx_hash: B256,
        expected: Expected,
    ) -> Result<Result<(), PaymentCheck>, ChainError> {
        let Some(transaction) = self.provider.get_transaction_by_hash(tx_hash).await? else {
            return Ok(Err(PaymentCheck::NotFound(self.chain_id)));
        };
        let Some(receipt) = self.provider.get_transaction_receipt(tx_hash).await? else {
            return Ok(Err(PaymentCheck::NotMined));
        };
        let Some(mined_in) = receipt.block_number() else {
            return Ok(Err(PaymentCheck::NotMined));
        };
        let sender = EthAddress::from_alloy(transaction.from());
        if sender != expected.from {
            return Ok(Err(PaymentCheck::WrongSender {
                expected: expected.from,
                actual: sender,
            }));
        }
        match transaction.to() {
            Some(to) if EthAddress::from_alloy(to) == expected.to => {}
            other => {
                let actual = other.map_or_else(
                    || "a contract creation".to_owned(),
                    |to| EthAddress::from_alloy(to).to_string(),
                );
                return Ok(Err(PaymentCheck::WrongRecipient {
                    expected: expected.to,
                    actual,
                }));
            }
        }
        let value = Wei::from_u256(transaction.value());
        if value < expected.at_least {
            return Ok(Err(PaymentCheck::AmountTooLow {
                expected: expected.at_least,
                actual: value,
            }));
        }
        if !receipt.status() {
            return Ok(Err(PaymentCheck::Failed));
        }
        let block = self
            .provider
            .get_block_by_number(mined_in.into())
            .await?
            .ok_or(ChainError::MissingBlock(mined_in))?;
        let mined_at = i64::try_from(block.header.timestamp)
            .ok()
            .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
            .ok_or(ChainError::MissingBlock(mined_in))?;
        if mined_at.timestamp() < expected.mined_from.timestamp() {
            return Ok(Err(PaymentCheck::BeforeClose {
                mined_at,
                closed_at: expected.mined_from,
            }));
        }
        let latest = self.provider.get_block_number().await?;
        let confirmations = latest.saturating_sub(mined_in) + 1;
        if confirmations < self.confirmations {
            return Ok(Err(PaymentCheck::NotEnoughConfirmations {
                actual: confirmations,
                required: self.confirmations,
            }));
        }
        Ok(Ok(()))
    }

    /// The readiness check: the node answers.
    pub async fn ping(self) -> Result<(), String> {
        self.provider
            .get_block_number()
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    }
}

fn parse_cached(raw: &str) -> Option<Balance> {
    let (block, amount) = raw.split_once(':')?;
    Some(Balance {
        amount: amount.parse().ok()?,
        block: block.parse().ok()?,
    })
}
