//! The commands that read services' databases: `releases` works on `bids`' database (the one in
//! `GAVEL_DATABASE__URL` of a `bids` pod), `reconcile` compares it with `wallets`' database
//! (`GAVEL_WALLETS_DATABASE__URL`). What they do lives in `gavel_bids::operator`.

use std::time::Duration;

use anyhow::{Context, bail};
use gavel_bids::operator::{self, Difference, Ended};
use gavel_common::config::ServiceConfig;
use gavel_common::db::DatabaseConfig;
use gavel_types::LotId;
use serde::Deserialize;

pub const USAGE: &str = "
  gavel-admin releases list [--limit N]                 hold releases parked after failing (bids)
  gavel-admin releases retry [--id N]                   queue them (or one) again, attempts reset
  gavel-admin reconcile [--repair] [--grace DURATION]   bids' leaders and releases vs wallets' holds
  gavel-admin lots close LOT --reason TEXT              end an open lot now; its rules decide the sale
  gavel-admin lots cancel LOT --reason TEXT             cancel a lot, bids or not; nobody wins
  gavel-admin check --acks FILE [--settle 90s]          the fault suite's invariants (docs/reliability.md)
releases, reconcile and lots read bids' database from GAVEL_DATABASE__URL; reconcile also reads
wallets' from GAVEL_WALLETS_DATABASE__URL. reconcile exits 1 when something needs an operator.";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    ListReleases { limit: i64 },
    RetryReleases { only: Option<i64> },
    Reconcile { repair: bool, grace: Duration },
    CloseLot { lot: LotId, reason: String },
    CancelLot { lot: LotId, reason: String },
}

/// `None` when `words` is not one of these commands.
pub fn parse(words: &[&str]) -> Option<anyhow::Result<Command>> {
    let number = |flag: &str, raw: &str| -> anyhow::Result<i64> {
        raw.parse()
            .with_context(|| format!("{flag} {raw:?} is not a number"))
    };
    let command = match words {
        ["releases", "list"] => Ok(Command::ListReleases { limit: 50 }),
        ["releases", "list", "--limit", limit] => {
            number("--limit", limit).map(|limit| Command::ListReleases { limit })
        }
        ["releases", "retry"] => Ok(Command::RetryReleases { only: None }),
        ["releases", "retry", "--id", id] => {
            number("--id", id).map(|id| Command::RetryReleases { only: Some(id) })
        }
        ["releases", ..] => Err(anyhow::anyhow!("unknown releases command")),
        ["reconcile", rest @ ..] => reconcile(rest),
        [
            "lots",
            action @ ("close" | "cancel"),
            lot,
            "--reason",
            reason,
        ] => lot
            .parse::<uuid::Uuid>()
            .with_context(|| format!("{lot:?} is not a lot id (a UUID)"))
            .map(|lot| {
                let (lot, reason) = (LotId(lot), (*reason).to_owned());
                if *action == "close" {
                    Command::CloseLot { lot, reason }
                } else {
                    Command::CancelLot { lot, reason }
                }
            }),
        ["lots", ..] => Err(anyhow::anyhow!("lots close|cancel LOT --reason TEXT")),
        _ => return None,
    };
    Some(command)
}

fn reconcile(mut rest: &[&str]) -> anyhow::Result<Command> {
    let (mut repair, mut grace) = (false, Duration::from_secs(600));
    loop {
        rest = match rest {
            [] => return Ok(Command::Reconcile { repair, grace }),
            ["--repair", rest @ ..] => {
                repair = true;
                rest
            }
            ["--grace", raw, rest @ ..] => {
                grace = humantime_serde::re::humantime::parse_duration(raw)
                    .with_context(|| format!("--grace {raw:?} is not a duration (e.g. 10m)"))?;
                rest
            }
            [other, ..] => bail!("reconcile does not take {other:?}"),
        };
    }
}

#[derive(Debug, Deserialize)]
struct Bids {
    database: DatabaseConfig,
}

impl ServiceConfig for Bids {}

#[derive(Debug, Deserialize)]
struct Both {
    database: DatabaseConfig,
    wallets_database: DatabaseConfig,
}

impl ServiceConfig for Both {}

/// Runs `command`; `Ok(false)` when it found something an operator must look at.
pub async fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::ListReleases { limit } => {
            let bids = bids_pool()?;
            let parked = operator::parked_releases(&bids, limit)
                .await
                .context("reading bids' parked releases")?;
            println!("{} parked release(s):", parked.len());
            for release in &parked {
                println!("{release}");
            }
        }
        Command::RetryReleases { only } => {
            let bids = bids_pool()?;
            let queued = operator::retry_releases(&bids, only)
                .await
                .context("queueing bids' parked releases again")?;
            println!(
                "queued {queued} parked release(s) again; bids delivers them within its release.retry"
            );
            if only.is_some() && queued == 0 {
                bail!("no parked release has that id");
            }
        }
        Command::Reconcile { repair, grace } => {
            let config: Both = gavel_common::config::load()
                .context("reading GAVEL_DATABASE__URL (bids) and GAVEL_WALLETS_DATABASE__URL")?;
            let bids = config.database.pool().context("bids' database")?;
            let wallets = config
                .wallets_database
                .pool()
                .context("wallets' database")?;
            let found = operator::reconcile(&bids, &wallets, grace, repair)
                .await
                .map_err(|error| anyhow::anyhow!(gavel_common::error_chain(&error)))?;
            for difference in &found.differences {
                let repaired = repair && matches!(difference, Difference::StaleHold { .. });
                println!(
                    "{difference}{}",
                    if repaired { " — release queued" } else { "" }
                );
            }
            let open = found.differences.len() - found.repaired;
            println!(
                "checked {} leader(s) and {} active hold(s) ({} in flight, left alone): {} difference(s), {} repaired",
                found.leaders,
                found.holds,
                found.in_flight,
                found.differences.len(),
                found.repaired
            );
            return Ok(open == 0);
        }
        Command::CloseLot { lot, reason } => {
            let ended = operator::close_now(&bids_pool()?, lot, &reason).await?;
            return said(lot, ended);
        }
        Command::CancelLot { lot, reason } => {
            let ended = operator::cancel(&bids_pool()?, lot, &reason).await?;
            return said(lot, ended);
        }
    }
    Ok(true)
}

/// Tells what an early end did; an error when it changed nothing.
fn said(lot: LotId, ended: Ended) -> anyhow::Result<bool> {
    match ended {
        Ended::Closed(outcome) => {
            println!(
                "closed lot {lot}: {}",
                serde_json::to_string(&outcome).unwrap_or_default()
            );
        }
        Ended::Cancelled { released } => match released {
            Some(wallet) => {
                println!("cancelled lot {lot}; the release of {wallet}'s hold is queued")
            }
            None => println!("cancelled lot {lot}; it had no bids"),
        },
        Ended::AlreadyEnded(status) => bail!("lot {lot} is {}: nothing changed", status.as_str()),
        Ended::NotFound => bail!("bids does not know lot {lot}"),
    }
    Ok(true)
}

fn bids_pool() -> anyhow::Result<sqlx::PgPool> {
    let config: Bids =
        gavel_common::config::load().context("reading GAVEL_DATABASE__URL (bids' database)")?;
    config.database.pool().context("bids' database")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Option<anyhow::Result<Command>> {
        let words: Vec<&str> = line.split_whitespace().collect();
        parse(&words)
    }

    #[test]
    fn database_commands_parse_and_others_are_left_alone() {
        let ok = |line: &str| parsed(line).expect("a database command").expect("valid");
        assert_eq!(ok("releases list"), Command::ListReleases { limit: 50 });
        assert_eq!(
            ok("releases list --limit 7"),
            Command::ListReleases { limit: 7 }
        );
        assert_eq!(ok("releases retry"), Command::RetryReleases { only: None });
        assert_eq!(
            ok("releases retry --id 12"),
            Command::RetryReleases { only: Some(12) }
        );
        assert_eq!(
            ok("reconcile"),
            Command::Reconcile {
                repair: false,
                grace: Duration::from_secs(600)
            }
        );
        assert_eq!(
            ok("reconcile --grace 90s --repair"),
            Command::Reconcile {
                repair: true,
                grace: Duration::from_secs(90)
            }
        );
        for bad in [
            "releases",
            "releases drop",
            "releases retry --id twelve",
            "reconcile --grace soon",
            "reconcile --fix",
        ] {
            assert!(parsed(bad).expect("ours").is_err(), "{bad:?}");
        }
        assert_eq!(
            parse(&[
                "lots",
                "cancel",
                "0196f1c2-7a2b-7c00-8000-000000000001",
                "--reason",
                "stolen goods"
            ])
            .expect("ours")
            .expect("valid"),
            Command::CancelLot {
                lot: LotId(
                    "0196f1c2-7a2b-7c00-8000-000000000001"
                        .parse()
                        .expect("uuid")
                ),
                reason: "stolen goods".to_owned()
            }
        );
        for bad in [
            "lots close 0196f1c2-7a2b-7c00-8000-000000000001",
            "lots close lamp --reason fake",
            "lots sell 0196f1c2-7a2b-7c00-8000-000000000001 --reason x",
        ] {
            assert!(parsed(bad).expect("ours").is_err(), "{bad:?}");
        }
        assert!(parsed("dead-letters list x").is_none());
    }
}
