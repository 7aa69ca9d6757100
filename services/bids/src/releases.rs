//! Delivering queued hold releases to `wallets` until it confirms each one.
//!
//! A batch is claimed in one short statement (each row's next attempt pushed past a lease, so
//! another replica does not take it meanwhile) and sent to `wallets` in one request, which does
//! them in one transaction, each answered on its own; the call runs with no transaction open
//! here, and the delivered rows are deleted in one statement. A release that fails is retried
//! with exponential backoff; after `max_attempts` it is parked with its last error, counted in
//! `gavel_bids_releases_parked`, for an operator. Failing rows never block the others: a batch
//! takes only the rows that are due. A `wallets` without the batch route (older than this
//! replica, during an upgrade) is sent the batch one release at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gavel_common::BoxError;
use gavel_common::metrics::Metrics;
use gavel_types::{BidId, EthAddress, LotId};
use prometheus::{IntCounter, IntGauge};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::config::ReleaseConfig;
use crate::wallets::{Release, Wallets, WalletsError};

/// How long a claimed release is reserved for the replica that claimed it.
const LEASE: Duration = Duration::from_secs(30);
/// Releases claimed and sent at once: at most what `wallets` takes in one request
/// (`ledger::MAX_BATCH` there); more would be refused whole.
const BATCH: i64 = 100;
/// How often at most the pending and parked gauges are counted.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct ReleaseMetrics {
    delivered: IntCounter,
    failed: IntCounter,
    pending: IntGauge,
    parked: IntGauge,
}

impl ReleaseMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            delivered: IntCounter::new(
                "bids_releases_delivered_total",
                "Hold releases wallets confirmed.",
            )
            .expect("static metric definition is valid"),
            failed: IntCounter::new(
                "bids_release_failures_total",
                "Hold release attempts that failed.",
            )
            .expect("static metric definition is valid"),
            pending: IntGauge::new(
                "bids_releases_pending",
                "Hold releases waiting to be delivered.",
            )
            .expect("static metric definition is valid"),
            parked: IntGauge::new(
                "bids_releases_parked",
                "Hold releases parked after too many failed attempts; an operator must look.",
            )
            .expect("static metric definition is valid"),
        };
        metrics.register(this.delivered.clone());
        metrics.register(this.failed.clone());
        metrics.register(this.pending.clone());
        metrics.register(this.parked.clone());
        this
    }
}

/// The release task's handles.
#[derive(Clone, Debug)]
pub struct Releases {
    pub pool: PgPool,
    pub wallets: Wallets,
    pub config: ReleaseConfig,
    pub metrics: ReleaseMetrics,
}

impl Releases {
    pub async fn run(self, wake: Arc<Notify>, cancel: CancellationToken) -> Result<(), BoxError> {
        let mut counted: Option<Instant> = None;
        loop {
            match self.deliver().await {
                // A full batch means more may be due: go again at once.
                Ok(claimed) if claimed as i64 == BATCH => continue,
                Ok(_) => {}
                Err(error) => {
                    warn!(error = %gavel_common::error_chain(&error), "releasing holds failed; will retry");
                }
            }
            // A count per round would be a statement per accepted bid when they come one at a
            // time; the gauges are for an operator's eyes, so once per `GAUGE_EVERY` will do.
            if counted.is_none_or(|at| at.elapsed() >= GAUGE_EVERY) {
                counted = Some(Instant::now());
                if let Err(error) = self.gauge().await {
                    warn!(%error, "cannot count pending releases");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = wake.notified() => {}
                () = tokio::time::sleep(self.config.retry) => {}
            }
        }
    }

    async fn gauge(&self) -> Result<(), sqlx::Error> {
        let (pending, parked): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL)
             FROM pending_releases",
        )
        .fetch_one(&self.pool)
        .await?;
        self.metrics.pending.set(pending);
        self.metrics.parked.set(parked);
        Ok(())
    }

    /// Claims the releases that are due and sends them to `wallets` in one request; returns
    /// how many were claimed.
    pub async fn deliver(&self) -> Result<usize, sqlx::Error> {
        let rows: Vec<(i64, String, uuid::Uuid, uuid::Uuid, i32)> = sqlx::query_as(
            "UPDATE pending_releases SET next_attempt_at = now() + make_interval(secs => $1)
             WHERE id IN (SELECT id FROM pending_releases
                          WHERE parked_at IS NULL AND next_attempt_at <= now()
                          ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, wallet, lot_id, bid_id, attempts",
        )
        .bind(LEASE.as_secs_f64())
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        let claimed = rows.len();
        let mut due = Vec::with_capacity(claimed);
        for (id, wallet, lot_id, bid_id, attempts) in rows {
            let Ok(wallet) = wallet.parse::<EthAddress>() else {
                // No retry can make this row deliverable.
                self.park(id, attempts + 1, &format!("unreadable wallet {wallet:?}"))
                    .await?;
                continue;
            };
            let release = Release {
                key: format!("release-{id}"),
                wallet,
                lot_id: LotId(lot_id),
                bid_id: BidId(bid_id),
            };
            due.push((id, attempts, release));
        }
        if due.is_empty() {
            return Ok(claimed);
        }
        let outcomes = self.send(&due).await;
        let delivered: Vec<i64> = due
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_ok())
            .map(|((id, ..), _)| *id)
            .collect();
        if !delivered.is_empty() {
            sqlx::query("DELETE FROM pending_releases WHERE id = ANY($1)")
                .bind(&delivered)
                .execute(&self.pool)
                .await?;
            self.metrics.delivered.inc_by(delivered.len() as u64);
        }
        for ((id, attempts, _), outcome) in due.iter().zip(outcomes) {
            if let Err(reason) = outcome {
                self.failed(*id, *attempts, &reason).await?;
            }
        }
        Ok(claimed)
    }

    /// Sends `due` in one request, or one by one to a `wallets` without the batch route (older
    /// than this replica, during an upgrade); the outcome of each, in order.
    async fn send(&self, due: &[(i64, i32, Release)]) -> Vec<Result<(), String>> {
        let releases: Vec<Release> = due.iter().map(|(.., release)| release.clone()).collect();
        match self.wallets.release_many(&releases).await {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|outcome| outcome.map_err(|error| gavel_common::error_chain(&error)))
                .collect(),
            Err(WalletsError::Unexpected { status: 404, .. }) => {
                let mut outcomes = Vec::with_capacity(releases.len());
                for release in &releases {
                    outcomes.push(
                        self.wallets
                            .release(release)
                            .await
                            .map_err(|error| gavel_common::error_chain(&error)),
                    );
                }
                outcomes
            }
            Err(error) => {
                // One attempt each, as when they went one by one; the reason kept short, since
                // every row stores it.
                let mut reason = gavel_common::error_chain(&error);
                if reason.len() > 300 {
                    let end = (0..=300).rev().find(|&at| reason.is_char_boundary(at));
                    reason.truncate(end.unwrap_or(0));
                    reason.push('…');
                }
                releases.iter().map(|_| Err(reason.clone())).collect()
            }
        }
    }

    /// Counts a failed attempt of release `id`: retried after a backoff, or parked.
    async fn failed(&self, id: i64, attempts: i32, reason: &str) -> Result<(), sqlx::Error> {
        self.metrics.failed.inc();
        if attempts + 1 >= self.config.max_attempts {
            return self.park(id, attempts + 1, reason).await;
        }
        warn!(id, attempt = attempts + 1, error = %reason, "hold release not delivered; will retry");
        sqlx::query(
            "UPDATE pending_releases SET attempts = $2, last_error = $3,
                 next_attempt_at = now() + make_interval(secs => $4)
             WHERE id = $1",
        )
        .bind(id)
        .bind(attempts + 1)
        .bind(reason)
        .bind(self.config.backoff(attempts).as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn park(&self, id: i64, attempts: i32, reason: &str) -> Result<(), sqlx::Error> {
        error!(id, attempts, error = %reason, "hold release parked; an operator must look");
        sqlx::query(
            "UPDATE pending_releases SET attempts = $2, last_error = $3, parked_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(attempts)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
