//! The holds ledger: what each wallet has promised, per lot.
//!
//! Every change that makes, raises, re-targets or releases a wallet's hold on request first
//! locks that wallet's row in `ledger_wallets`, so those changes to one wallet are serialised
//! whatever the number of replicas, while different wallets proceed in parallel. (Settlement's
//! event handlers only move holds onward — recorded, released by a close, settled — and a
//! release batch also locks the hold rows it reads, so it waits for them.) Under the lock, a
//! hold is admitted only if the wallet is still linked to the bidding account and its other
//! active and captured holds plus the new amount stay within its confirmed balance.
//!
//! Each operation carries an idempotency key. Its answer (success or refusal) is stored with the
//! key in the same transaction, so a retry returns the original answer and changes nothing; the
//! same key with a different request is refused.
//!
//! Layout: this module (running operations under the wallet's lock), `batch` (releases many at
//! once, in one transaction), `rules` (states, operations, refusals, the admission and release
//! rules), [`repair`] (holds whose bid `bids` has not confirmed: `bids` decides, the ledger
//! applies).

mod batch;
pub mod repair;
mod rules;

pub use batch::{KeyedRelease, MAX_BATCH, release_many};
pub use rules::{Hold, HoldStatus, Operation, Refusal, admit};

use gavel_common::db::{CorruptValue, parse_column};
use gavel_common::idempotency::StoredAnswer;
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the idempotency key was already used for a different request")]
    KeyReused,
    #[error("a place operation needs the wallet's balance")]
    MissingBalance,
    #[error(transparent)]
    Corrupt(#[from] CorruptValue),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

/// Runs `operation` once per `key`. `balance` is the wallet's confirmed balance, needed to place.
pub async fn execute(
    pool: &PgPool,
    key: &str,
    operation: &Operation,
    balance: Option<Wei>,
) -> Result<StoredAnswer, LedgerError> {
    let mut tx = pool.begin().await?;
    let answer = execute_in(&mut tx, key, operation, balance).await?;
    if answer.replayed {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(answer)
}

/// Runs `operation` once per `key` in `connection`'s transaction, under the wallet's lock.
pub(super) async fn execute_in(
    connection: &mut PgConnection,
    key: &str,
    operation: &Operation,
    balance: Option<Wei>,
) -> Result<StoredAnswer, LedgerError> {
    let fingerprint = operation.fingerprint();
    lock_wallet(connection, operation.wallet()).await?;
    let previous: Option<(String, i16, Value)> = sqlx::query_as(
        "SELECT fingerprint, status_code, response FROM hold_requests WHERE idempotency_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut *connection)
    .await?;
    if let Some((stored, status, body)) = previous {
        if stored != fingerprint {
            return Err(LedgerError::KeyReused);
        }
        return Ok(StoredAnswer {
            status: status.unsigned_abs(),
            body,
            replayed: true,
        });
    }

    let outcome = match operation {
        Operation::Place {
            account,
            wallet,
            lot_id,
            amount,
            bid_id,
        } => {
            let balance = balance.ok_or(LedgerError::MissingBalance)?;
            let placement = Placement {
                account: *account,
                wallet: *wallet,
                lot_id: *lot_id,
                amount: *amount,
                bid_id: *bid_id,
            };
            place(&mut *connection, &placement, balance).await?
        }
        Operation::Release {
            wallet,
            lot_id,
            bid_id,
        } => release(&mut *connection, *wallet, *lot_id, *bid_id).await?,
        Operation::Capture {
            wallet,
            lot_id,
            amount,
        } => capture(&mut *connection, *wallet, *lot_id, *amount, None).await?,
    };
    let (status, body) = match outcome {
        Ok(body) => (200u16, body),
        Err(refusal) => (409, refusal.body()),
    };
    let stored = sqlx::query(
        "INSERT INTO hold_requests (idempotency_key, operation, fingerprint, status_code, response, bid_id)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(key)
    .bind(operation.name())
    .bind(&fingerprint)
    .bind(i16::try_from(status).unwrap_or(500))
    .bind(&body)
    .bind(match operation {
        Operation::Place { bid_id, .. } => Some(bid_id.0),
        _ => None,
    })
    .execute(&mut *connection)
    .await?;
    if stored.rows_affected() == 0 {
        // The same key, used concurrently for another wallet, committed first.
        return Err(LedgerError::KeyReused);
    }
    Ok(StoredAnswer::fresh(status, body))
}

/// Takes the wallet's ledger lock for the rest of the transaction.
pub async fn lock_wallet(
    connection: &mut PgConnection,
    wallet: EthAddress,
) -> Result<(), sqlx::Error> {
    let address = wallet.to_lowercase_hex();
    let lock = "SELECT 1 FROM ledger_wallets WHERE address = $1 FOR UPDATE";
    let locked = sqlx::query(lock)
        .bind(&address)
        .execute(&mut *connection)
        .await?;
    if locked.rows_affected() == 0 {
        // The wallet's first change: make its row (a concurrent first change waits for ours to
        // commit, then finds it), then lock it.
        sqlx::query("INSERT INTO ledger_wallets (address) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(&address)
            .execute(&mut *connection)
            .await?;
        // Found now in READ COMMITTED (every ledger transaction is): the row committed by us or
        // by the concurrent first change we waited for.
        sqlx::query(lock)
            .bind(&address)
            .fetch_one(connection)
            .await?;
    }
    Ok(())
}

/// The sum of the wallet's active and captured holds, optionally leaving one lot out.
pub async fn committed(
    connection: &mut PgConnection,
    wallet: EthAddress,
    except: Option<LotId>,
) -> Result<Wei, LedgerError> {
    let sum: String = sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount), 0)::text FROM holds
         WHERE wallet = $1 AND status IN ('active', 'captured') AND lot_id IS DISTINCT FROM $2",
    )
    .bind(wallet.to_lowercase_hex())
    .bind(except.map(|lot| lot.0))
    .fetch_one(connection)
    .await?;
    Ok(parse_column("holds.amount", &sum)?)
}

/// A hold row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct HoldRow {
    wallet: String,
    lot_id: uuid::Uuid,
    status: String,
    amount: String,
    bid_id: Option<uuid::Uuid>,
}

pub(super) const HOLD_COLUMNS: &str = "wallet, lot_id, status, amount::text AS amount, bid_id";

impl TryFrom<HoldRow> for Hold {
    type Error = CorruptValue;

    fn try_from(row: HoldRow) -> Result<Self, CorruptValue> {
        Ok(Self {
            wallet: parse_column("holds.wallet", &row.wallet)?,
            lot_id: LotId(row.lot_id),
            status: parse_column("holds.status", &row.status)?,
            amount: parse_column("holds.amount", &row.amount)?,
            bid_id: row.bid_id.map(BidId),
        })
    }
}

async fn current(
    connection: &mut PgConnection,
    wallet: EthAddress,
    lot_id: LotId,
) -> Result<Option<Hold>, LedgerError> {
    let row: Option<HoldRow> = sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE wallet = $1 AND lot_id = $2"
    ))
    .bind(wallet.to_lowercase_hex())
    .bind(lot_id.0)
    .fetch_optional(connection)
    .await?;
    Ok(row.map(Hold::try_from).transpose()?)
}

struct Placement {
    account: AccountId,
    wallet: EthAddress,
    lot_id: LotId,
    amount: Wei,
    bid_id: BidId,
}

/// What placing a hold reads, in one statement: the wallet's owner, whether the bid was
/// abandoned or recorded, the wallet's other holds and its current hold on the lot (`None`
/// columns when it has none).
#[derive(sqlx::FromRow)]
struct PlaceView {
    owner: Option<uuid::Uuid>,
    abandoned: bool,
    recorded: bool,
    others: String,
    wallet: Option<String>,
    lot_id: Option<uuid::Uuid>,
    status: Option<String>,
    amount: Option<String>,
    bid_id: Option<uuid::Uuid>,
}

impl PlaceView {
    fn current(self) -> Result<Option<Hold>, CorruptValue> {
        let (Some(wallet), Some(lot_id), Some(status), Some(amount)) =
            (self.wallet, self.lot_id, self.status, self.amount)
        else {
            return Ok(None);
        };
        Hold::try_from(HoldRow {
            wallet,
            lot_id,
            status,
            amount,
            bid_id: self.bid_id,
        })
        .map(Some)
    }
}

async fn place(
    connection: &mut PgConnection,
    placement: &Placement,
    balance: Wei,
) -> Result<Result<Value, Refusal>, LedgerError> {
    let Placement {
        account,
        wallet,
        lot_id,
        amount,
        bid_id,
    } = *placement;
    // Everything the rules need, read in one statement under the wallet's lock (which unlinking
    // takes too: a wallet unlinked a moment ago cannot back a bid, whatever token the bidder
    // still holds).
    let view: PlaceView = sqlx::query_as(&format!(
        "SELECT (SELECT account_id FROM wallets WHERE address = $1) AS owner,
                EXISTS (SELECT 1 FROM abandoned_bids WHERE bid_id = $3) AS abandoned,
                EXISTS (SELECT 1 FROM recorded_bids WHERE bid_id = $3) AS recorded,
                (SELECT COALESCE(SUM(amount), 0)::text FROM holds
                 WHERE wallet = $1 AND status IN ('active', 'captured')
                   AND lot_id IS DISTINCT FROM $2) AS others,
                current.*
         FROM (SELECT 1) AS one
         LEFT JOIN (SELECT {HOLD_COLUMNS} FROM holds WHERE wallet = $1 AND lot_id = $2) AS current ON true"
    ))
    .bind(wallet.to_lowercase_hex())
    .bind(lot_id.0)
    .bind(bid_id.0)
    .fetch_one(&mut *connection)
    .await?;
    if view.owner != Some(account.0) {
        return Ok(Err(Refusal::WalletNotLinked));
    }
    if view.abandoned {
        return Ok(Err(Refusal::BidAbandoned));
    }
    let recorded = view.recorded;
    let others: Wei = parse_column("holds.amount", &view.others)?;
    let existing = view.current()?;
    if let Err(refusal) = admit(
        balance,
        others,
        existing.as_ref().map(|hold| (hold.status, hold.amount)),
        amount,
    ) {
        return Ok(Err(refusal));
    }
    sqlx::query(
        "INSERT INTO holds (wallet, lot_id, status, amount, bid_id, bid_recorded)
         VALUES ($1, $2, 'active', $3::numeric, $4, $5)
         ON CONFLICT (wallet, lot_id) DO UPDATE SET
             status = 'active', amount = EXCLUDED.amount, bid_id = EXCLUDED.bid_id,
             bid_recorded = EXCLUDED.bid_recorded, payment_deadline = NULL, updated_at = now()",
    )
    .bind(wallet.to_lowercase_hex())
    .bind(lot_id.0)
    .bind(amount.to_string())
    .bind(bid_id.0)
    .bind(recorded)
    .execute(&mut *connection)
    .await?;
    let hold = Hold {
        wallet,
        lot_id,
        status: HoldStatus::Active,
        amount,
        bid_id: Some(bid_id),
    };
    let available = balance.saturating_sub(others).saturating_sub(amount);
    Ok(Ok(json!({"hold": hold, "available": available})))
}

async fn release(
    connection: &mut PgConnection,
    wallet: EthAddress,
    lot_id: LotId,
    only_for: Option<BidId>,
) -> Result<Result<Value, Refusal>, LedgerError> {
    let existing = current(connection, wallet, lot_id).await?;
    let (answer, changes) = rules::release(existing.as_ref(), wallet, lot_id, only_for);
    if changes {
        sqlx::query("UPDATE holds SET status = 'released', updated_at = now() WHERE wallet = $1 AND lot_id = $2")
            .bind(wallet.to_lowercase_hex())
            .bind(lot_id.0)
            .execute(&mut *connection)
            .await?;
    }
    Ok(answer.map(|hold| json!({ "hold": hold })))
}

/// Captures `amount` of the active hold; `deadline` is the payment deadline when settling.
pub async fn capture(
    connection: &mut PgConnection,
    wallet: EthAddress,
    lot_id: LotId,
    amount: Wei,
    deadline: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Result<Value, Refusal>, LedgerError> {
    let Some(hold) = current(connection, wallet, lot_id).await? else {
        return Ok(Err(Refusal::NoActiveHold));
    };
    match hold.status {
        HoldStatus::Captured if hold.amount == amount => {}
        HoldStatus::Captured | HoldStatus::Settled => return Ok(Err(Refusal::AlreadyCaptured)),
        HoldStatus::Released => return Ok(Err(Refusal::NoActiveHold)),
        HoldStatus::Active if amount > hold.amount => {
            return Ok(Err(Refusal::CaptureExceedsHold { held: hold.amount }));
        }
        HoldStatus::Active => {
            sqlx::query(
                "UPDATE holds SET status = 'captured', amount = $3::numeric, payment_deadline = $4, updated_at = now()
                 WHERE wallet = $1 AND lot_id = $2",
            )
            .bind(wallet.to_lowercase_hex())
            .bind(lot_id.0)
            .bind(amount.to_string())
            .bind(deadline)
            .execute(&mut *connection)
            .await?;
        }
    }
    let hold = Hold {
        status: HoldStatus::Captured,
        amount,
        ..hold
    };
    Ok(Ok(json!({ "hold": hold })))
}

/// Holds, filtered by lot and/or wallet, for operators and for `bids`.
pub async fn list(
    pool: &PgPool,
    lot_id: Option<LotId>,
    wallet: Option<EthAddress>,
) -> Result<Vec<Hold>, LedgerError> {
    let rows: Vec<HoldRow> = sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds
         WHERE ($1::uuid IS NULL OR lot_id = $1) AND ($2::text IS NULL OR wallet = $2)
         ORDER BY lot_id, wallet LIMIT 1000"
    ))
    .bind(lot_id.map(|lot| lot.0))
    .bind(wallet.map(|wallet| wallet.to_lowercase_hex()))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(Hold::try_from)
        .collect::<Result<_, _>>()?)
}
