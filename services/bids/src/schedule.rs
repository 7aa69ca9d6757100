//! Opening and closing lots on time, exactly once, whatever the number of replicas.
//!
//! Every replica ticks; each tick claims due lots with `FOR UPDATE SKIP LOCKED` and changes their
//! status in the same transaction as the event it publishes. A lot already claimed by another
//! replica is skipped, a lot already closed no longer matches, and a bid and a close of the same
//! lot serialise on the lot's row lock: so each lot opens once and closes once, within one tick
//! of its time.

use std::time::Duration;

use gavel_common::BoxError;
use gavel_events::AuctionOpened;
use gavel_types::LotId;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::ScheduleMetrics;
use crate::rules::Status;
use crate::store::{self, StoreError};

pub async fn run(
    pool: PgPool,
    tick: Duration,
    metrics: ScheduleMetrics,
    cancel: CancellationToken,
) -> Result<(), BoxError> {
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        match open_due(&pool).await {
            Ok(opened) => metrics.opened.inc_by(opened as u64),
            Err(error) => {
                warn!(error = %gavel_common::error_chain(&error), "opening lots failed; will retry");
            }
        }
        match close_due(&pool).await {
            Ok(lags) => {
                metrics.closed.inc_by(lags.len() as u64);
                for lag in lags {
                    metrics.close_lag.observe(lag);
                }
            }
            Err(error) => {
                warn!(error = %gavel_common::error_chain(&error), "closing lots failed; will retry");
            }
        }
    }
}

/// Opens every scheduled lot whose start has come. Returns how many.
pub async fn open_due(pool: &PgPool) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    let due: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT lot_id FROM lots WHERE status = 'scheduled' AND starts_at <= clock_timestamp()
         ORDER BY starts_at LIMIT 200 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    for lot_id in &due {
        let lot_id = LotId(*lot_id);
        let Some(mut stored) = store::load(&mut *tx, lot_id, false).await? else {
            continue;
        };
        stored.lot.status = Status::Open;
        stored.seq += 1;
        store::append(
            &mut tx,
            lot_id,
            stored.seq,
            &AuctionOpened {
                lot_id,
                ends_at: stored.lot.ends_at,
            },
        )
        .await?;
        store::save(&mut tx, lot_id, &stored.lot, stored.seq).await?;
    }
    tx.commit().await?;
    if !due.is_empty() {
        info!(count = due.len(), "opened lots");
    }
    Ok(due.len())
}

/// Closes every open lot whose end has come. Returns, for each, how many seconds late it closed.
pub async fn close_due(pool: &PgPool) -> Result<Vec<f64>, StoreError> {
    let mut tx = pool.begin().await?;
    let due: Vec<(uuid::Uuid, f64)> = sqlx::query_as(
        "SELECT lot_id, extract(epoch FROM clock_timestamp() - ends_at)::float8
         FROM lots WHERE status = 'open' AND ends_at <= clock_timestamp()
         ORDER BY ends_at LIMIT 200 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (lot_id, _) in &due {
        let lot_id = LotId(*lot_id);
        let Some(mut stored) = store::load(&mut *tx, lot_id, false).await? else {
            continue;
        };
        store::close(&mut tx, lot_id, &mut stored, None).await?;
    }
    tx.commit().await?;
    if !due.is_empty() {
        info!(count = due.len(), "closed lots");
    }
    Ok(due.into_iter().map(|(_, lag)| lag).collect())
}
