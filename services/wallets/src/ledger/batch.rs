//! Releasing many holds at once, in one transaction with one commit: `bids` sends the releases
//! that are due in one request.
//!
//! The usual path is set-based: the batch's wallets are locked in address order, the stored
//! answers and the holds are read, each release is decided in order by the rule a single one
//! follows ([`rules::release`]), and the holds and the answers are written with one statement
//! each — a handful of statements for the whole batch instead of eight per release. If that
//! fails (a statement failing because of one release, a key stored meanwhile by another
//! request), the batch runs again one release at a time, each in a savepoint, so that a release
//! that fails fails alone.

use std::collections::HashMap;

use gavel_common::idempotency::StoredAnswer;
use gavel_types::{BidId, EthAddress, LotId};
use serde_json::{Value, json};
use sqlx::{Acquire, PgPool};
use tracing::warn;

use super::rules::{self, Hold, Operation};
use super::{HOLD_COLUMNS, HoldRow, LedgerError, execute_in};

/// How many releases [`release_many`] takes at once.
pub const MAX_BATCH: usize = 100;

/// A release of the hold on `wallet` for `lot_id` (only while it backs `bid_id`, when given),
/// run once per `key`.
#[derive(Debug, Clone)]
pub struct KeyedRelease {
    pub key: String,
    pub wallet: EthAddress,
    pub lot_id: LotId,
    pub bid_id: Option<BidId>,
}

impl KeyedRelease {
    pub fn operation(&self) -> Operation {
        Operation::Release {
            wallet: self.wallet,
            lot_id: self.lot_id,
            bid_id: self.bid_id,
        }
    }
}

type Answers = Vec<Result<StoredAnswer, LedgerError>>;

/// The answers to a batch, and whether the set-based path did it.
#[derive(Debug)]
pub struct Released {
    pub answers: Answers,
    pub together: bool,
}

/// Runs each release once per its key, all in one transaction, and answers each as the single
/// route would have, in the order given. `Err` means nothing was done.
pub async fn release_many(
    pool: &PgPool,
    releases: &[KeyedRelease],
) -> Result<Released, LedgerError> {
    for attempt in 1..=3 {
        match released_together(pool, releases).await {
            Ok(answers) => {
                return Ok(Released {
                    answers,
                    together: true,
                });
            }
            // Another transaction holding these wallets' locks in another order: go again.
            Err(LedgerError::Database(error))
                if attempt < 3 && gavel_common::db::is_lock_conflict(&error) => {}
            Err(error) if one_release_may_cause(&error) => {
                warn!(
                    error = %gavel_common::error_chain(&error),
                    "releasing a batch together failed; releasing one at a time"
                );
                break;
            }
            // The database itself failing (a lost connection, a full pool, a failed commit):
            // going one at a time would only add work. The caller retries the whole batch.
            Err(error) => return Err(error),
        }
    }
    let operations: Vec<(String, Operation)> = releases
        .iter()
        .map(|release| (release.key.clone(), release.operation()))
        .collect();
    Ok(Released {
        answers: execute_many(pool, &operations).await?,
        together: false,
    })
}

/// Whether `error` may come from one release of the batch (a stored value this version cannot
/// read, a key stored meanwhile, a statement refusing one row), so that going one at a time
/// lets the others through.
fn one_release_may_cause(error: &LedgerError) -> bool {
    match error {
        LedgerError::Database(sqlx::Error::Database(error)) => {
            // Data exceptions, integrity violations, raised exceptions, internal errors.
            let code = error.code().unwrap_or_default();
            ["22", "23", "P0", "XX"]
                .iter()
                .any(|class| code.starts_with(class))
        }
        // A stored value that does not decode: that release's row.
        LedgerError::Database(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => true,
        LedgerError::Database(_) => false,
        LedgerError::Corrupt(_) | LedgerError::KeyReused | LedgerError::MissingBalance => true,
    }
}

/// The set-based path: the whole batch or nothing.
async fn released_together(
    pool: &PgPool,
    releases: &[KeyedRelease],
) -> Result<Answers, LedgerError> {
    let mut tx = pool.begin().await?;
    let mut wallets: Vec<String> = releases
        .iter()
        .map(|release| release.wallet.to_lowercase_hex())
        .collect();
    wallets.sort();
    wallets.dedup();
    sqlx::query(
        "INSERT INTO ledger_wallets (address) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(&wallets)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "SELECT 1 FROM ledger_wallets WHERE address = ANY($1)
         ORDER BY address COLLATE \"C\" FOR UPDATE",
    )
    .bind(&wallets)
    .execute(&mut *tx)
    .await?;

    let keys: Vec<&str> = releases
        .iter()
        .map(|release| release.key.as_str())
        .collect();
    let mut stored: HashMap<String, (String, i16, Value)> =
        sqlx::query_as::<_, (String, String, i16, Value)>(
            "SELECT idempotency_key, fingerprint, status_code, response FROM hold_requests
         WHERE idempotency_key = ANY($1)",
        )
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(key, fingerprint, status, body)| (key, (fingerprint, status, body)))
        .collect();
    let (hold_wallets, hold_lots): (Vec<String>, Vec<uuid::Uuid>) = releases
        .iter()
        .map(|release| (release.wallet.to_lowercase_hex(), release.lot_id.0))
        .unzip();
    // Locked now, in one order: the rows an event consumer may be changing under no wallet lock
    // (a bid recorded, a lot closed) are waited for before anything is decided.
    let rows: Vec<HoldRow> = sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds
         WHERE (wallet, lot_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
         ORDER BY wallet COLLATE \"C\", lot_id FOR UPDATE"
    ))
    .bind(&hold_wallets)
    .bind(&hold_lots)
    .fetch_all(&mut *tx)
    .await?;
    let mut holds = HashMap::with_capacity(rows.len());
    for row in rows {
        let hold = Hold::try_from(row)?;
        holds.insert((hold.wallet, hold.lot_id), hold);
    }

    let mut answers = Vec::with_capacity(releases.len());
    let (mut released_wallets, mut released_lots) = (Vec::new(), Vec::new());
    let (mut new_keys, mut fingerprints, mut statuses, mut bodies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for release in releases {
        let fingerprint = release.operation().fingerprint();
        if let Some((earlier, status, body)) = stored.get(&release.key) {
            answers.push(if *earlier == fingerprint {
                Ok(StoredAnswer {
                    status: status.unsigned_abs(),
                    body: body.clone(),
                    replayed: true,
                })
            } else {
                Err(LedgerError::KeyReused)
            });
            continue;
        }
        let place = (release.wallet, release.lot_id);
        let (answer, changes) = rules::release(
            holds.get(&place),
            release.wallet,
            release.lot_id,
            release.bid_id,
        );
        let (status, body) = match answer {
            Ok(hold) => {
                if changes {
                    released_wallets.push(release.wallet.to_lowercase_hex());
                    released_lots.push(release.lot_id.0);
                    holds.insert(place, hold.clone());
                }
                (200i16, json!({ "hold": hold }))
            }
            Err(refusal) => (409, refusal.body()),
        };
        stored.insert(
            release.key.clone(),
            (fingerprint.clone(), status, body.clone()),
        );
        new_keys.push(release.key.as_str());
        fingerprints.push(fingerprint);
        statuses.push(status);
        bodies.push(body.clone());
        answers.push(Ok(StoredAnswer::fresh(status.unsigned_abs(), body)));
    }

    if !released_wallets.is_empty() {
        sqlx::query(
            "UPDATE holds SET status = 'released', updated_at = now()
             FROM unnest($1::text[], $2::uuid[]) AS due(wallet, lot_id)
             WHERE holds.wallet = due.wallet AND holds.lot_id = due.lot_id
               AND holds.status = 'active'",
        )
        .bind(&released_wallets)
        .bind(&released_lots)
        .execute(&mut *tx)
        .await?;
    }
    if !new_keys.is_empty() {
        let inserted = sqlx::query(
            "INSERT INTO hold_requests
                 (idempotency_key, operation, fingerprint, status_code, response)
             SELECT key, 'release', fingerprint, status, response
             FROM unnest($1::text[], $2::text[], $3::int2[], $4::jsonb[])
                 AS answer(key, fingerprint, status, response)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&new_keys)
        .bind(&fingerprints)
        .bind(&statuses)
        .bind(&bodies)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != new_keys.len() as u64 {
            // A key stored meanwhile (for another wallet, which we did not lock): let the
            // one-at-a-time path answer it.
            return Err(LedgerError::KeyReused);
        }
    }
    tx.commit().await?;
    Ok(answers)
}

/// Runs each operation once per its key, all in one transaction with one commit: each in a
/// savepoint of its own, so one that fails (a reused key, a failing statement) leaves the others
/// standing. The answers come in the order given. Wallets are locked in address order, so two
/// batches never wait on each other in a circle; a batch the database still chose as a deadlock's
/// victim (against a consumer's batch) is run again, up to three times.
async fn execute_many(
    pool: &PgPool,
    operations: &[(String, Operation)],
) -> Result<Vec<Result<StoredAnswer, LedgerError>>, sqlx::Error> {
    let mut order: Vec<usize> = (0..operations.len()).collect();
    order.sort_by_key(|&at| (operations[at].1.wallet().to_lowercase_hex(), at));
    let mut attempt = 1;
    loop {
        match execute_in_order(pool, operations, &order).await {
            Err(error) if attempt < 3 && gavel_common::db::is_lock_conflict(&error) => {
                attempt += 1;
            }
            done => return done,
        }
    }
}

async fn execute_in_order(
    pool: &PgPool,
    operations: &[(String, Operation)],
    order: &[usize],
) -> Result<Vec<Result<StoredAnswer, LedgerError>>, sqlx::Error> {
    let mut answers: Vec<Option<Result<StoredAnswer, LedgerError>>> =
        operations.iter().map(|_| None).collect();
    let mut tx = pool.begin().await?;
    for &at in order {
        let (key, operation) = &operations[at];
        let mut savepoint = Acquire::begin(&mut *tx).await?;
        match execute_in(&mut savepoint, key, operation, None).await {
            // A lock conflict dooms the whole transaction: run the batch again.
            Err(LedgerError::Database(error)) if gavel_common::db::is_lock_conflict(&error) => {
                return Err(error);
            }
            answer => {
                if matches!(&answer, Ok(answer) if !answer.replayed) {
                    savepoint.commit().await?;
                } else {
                    savepoint.rollback().await?;
                }
                answers[at] = Some(answer);
            }
        }
    }
    tx.commit().await?;
    Ok(answers
        .into_iter()
        // `order` is a permutation of the operations: each ran once and left its answer.
        .map(|answer| answer.expect("every operation ran"))
        .collect())
}
