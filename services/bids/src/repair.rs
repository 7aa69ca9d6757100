//! Repairing holds whose bid `wallets` has not seen recorded.
//!
//! `wallets` learns that a bid was recorded from `auction.bid_accepted`. When that event is late
//! (a broker outage, a retry queue, a dead-lettered message) or the bid was never recorded (a
//! crash between the hold and the commit), the hold stays unconfirmed. `wallets` never guesses
//! which: every `repair.interval`, this task asks it for holds unconfirmed for longer than
//! `repair.after`, and decides each **under the lot's row lock**, where no bid of that lot is in
//! flight:
//!
//! - the bid is in `bids`: **recorded**;
//! - it is not: it never will be (a bid id lives only in the transaction that chose it, and that
//!   transaction has ended), so it is **abandoned**, and the wallet's hold goes back to the
//!   account's recorded lead on the lot with that wallet, or is released.
//!
//! The verdict is delivered while the lock is still held, so no later bid on the lot can
//! interleave with it. Every replica runs this task; verdicts are idempotent.

use std::time::Duration;

use gavel_common::BoxError;
use gavel_common::metrics::Metrics;
use prometheus::IntCounterVec;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::RepairConfig;
use crate::rules::Status;
use crate::store::{self, StoreError};
use crate::wallets::{Restore, Unconfirmed, Verdict, Wallets, WalletsError};

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Wallets(#[from] WalletsError),
}

impl From<sqlx::Error> for RepairError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

#[derive(Clone, Debug)]
pub struct Repair {
    pub pool: PgPool,
    pub wallets: Wallets,
    pub config: RepairConfig,
    verdicts: IntCounterVec,
}

impl Repair {
    pub fn new(pool: PgPool, wallets: Wallets, config: RepairConfig, metrics: &Metrics) -> Self {
        let verdicts = IntCounterVec::new(
            prometheus::Opts::new(
                "bids_hold_repairs_total",
                "Unconfirmed holds decided by the repair, by verdict (recorded, abandoned).",
            ),
            &["verdict"],
        )
        .expect("static metric definition is valid");
        for verdict in ["recorded", "abandoned"] {
            verdicts.with_label_values(&[verdict]);
        }
        metrics.register(verdicts.clone());
        Self {
            pool,
            wallets,
            config,
            verdicts,
        }
    }

    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                _ = ticker.tick() => {}
            }
            if let Err(error) = self.pass().await {
                warn!(error = %gavel_common::error_chain(&error), "repairing unconfirmed holds failed; will retry");
            }
        }
    }

    /// One pass: every hold unconfirmed for longer than the grace, decided. Returns how many.
    pub async fn pass(&self) -> Result<usize, RepairError> {
        let holds = self.wallets.unconfirmed(self.config.after, 100).await?;
        for hold in &holds {
            self.decide(hold).await?;
        }
        Ok(holds.len())
    }

    async fn decide(&self, hold: &Unconfirmed) -> Result<Verdict, RepairError> {
        let mut tx = self.pool.begin().await?;
        let stored = store::load(&mut *tx, hold.lot_id, true).await?;
        let recorded: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM bids WHERE bid_id = $1)")
                .bind(hold.bid_id.0)
                .fetch_one(&mut *tx)
                .await?;
        let verdict = if recorded {
            Verdict::Recorded
        } else {
            // A cancelled lot needs no hold at all: `wallets` does not follow `auction.cancelled`
            // (nobody pays), so a hold restored there would stay active for good.
            let restore = stored
                .filter(|stored| stored.lot.status != Status::Cancelled)
                .and_then(|stored| stored.lot.leader)
                .filter(|leader| leader.wallet == hold.wallet)
                .map(|leader| Restore {
                    amount: leader.max,
                    bid_id: leader.hold_bid,
                });
            Verdict::Abandoned { restore }
        };
        // Delivered under the lot's lock: see the module's documentation.
        self.wallets.verdict(hold, verdict).await?;
        tx.commit().await?;
        let label = match verdict {
            Verdict::Recorded => "recorded",
            Verdict::Abandoned { .. } => "abandoned",
        };
        self.verdicts.with_label_values(&[label]).inc();
        if let Verdict::Abandoned { restore } = verdict {
            info!(wallet = %hold.wallet, lot = %hold.lot_id, bid = %hold.bid_id, restored = restore.is_some(),
                "a hold's bid was never recorded; wallets repaired it");
        }
        Ok(verdict)
    }
}

/// The default grace: a bid's hold is looked at once it has been unconfirmed this long.
pub const DEFAULT_AFTER: Duration = Duration::from_secs(60);
