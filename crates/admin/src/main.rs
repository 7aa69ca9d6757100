//! `gavel-admin`: the operator's tools (docs/operations.md).
//!
//! ```text
//! gavel-admin dead-letters list CONSUMER [--limit N]
//! gavel-admin dead-letters replay CONSUMER [--event EVENT_ID]
//! gavel-admin unrouted list [--limit N]
//! gavel-admin unrouted replay [--event EVENT_ID]
//! gavel-admin dead-letters|unrouted expire [CONSUMER] --older-than AGE
//! gavel-admin releases list [--limit N]
//! gavel-admin releases retry [--id N]
//! gavel-admin reconcile [--repair] [--grace DURATION]
//! gavel-admin lots close|cancel LOT --reason TEXT
//! gavel-admin check --acks FILE [--settle DURATION]
//! ```
//!
//! It reads its settings as the services do (`GAVEL_BROKER__URL`, `GAVEL_DATABASE__URL`, or the
//! file in `GAVEL_CONFIG`), so in a cluster it runs with a service's Secret, e.g. `kubectl exec`.

mod check;
mod database;

use std::process::ExitCode;

use anyhow::{Context, bail};
use gavel_common::config::ServiceConfig;
use gavel_messaging::parked::{self, Parked, Parking};
use gavel_messaging::{Broker, BrokerConfig};
use serde::Deserialize;
use uuid::Uuid;

const USAGE: &str = "usage:
  gavel-admin dead-letters list CONSUMER [--limit N]     what waits in CONSUMER.dlq (left in place)
  gavel-admin dead-letters replay CONSUMER [--event ID]  back to CONSUMER's queue, attempts reset
  gavel-admin unrouted list [--limit N]                  what waits in gavel.unrouted
  gavel-admin unrouted replay [--event ID]               back to the events exchange
  gavel-admin dead-letters expire CONSUMER --older-than AGE   delete parked events older than AGE
  gavel-admin unrouted expire --older-than AGE           (e.g. 30d); prints each one deleted
The broker comes from GAVEL_BROKER__URL (or GAVEL_CONFIG's file), as for the services.";

/// The youngest parked events `expire` may delete.
const MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
struct Config {
    broker: BrokerConfig,
}

impl ServiceConfig for Config {}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    List {
        parking: Parking,
        limit: usize,
    },
    Replay {
        parking: Parking,
        only: Option<Uuid>,
    },
    Expire {
        parking: Parking,
        older_than: std::time::Duration,
    },
}

fn parse(args: &[String], exchange: &str) -> anyhow::Result<Command> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let (parking, action, rest) = match words.as_slice() {
        ["dead-letters", action, consumer, rest @ ..] => (
            Parking::DeadLetters {
                consumer: (*consumer).to_owned(),
            },
            *action,
            rest,
        ),
        ["unrouted", action, rest @ ..] => (
            Parking::Unrouted {
                exchange: exchange.to_owned(),
            },
            *action,
            rest,
        ),
        _ => bail!("{USAGE}"),
    };
    match (action, rest) {
        ("list", []) => Ok(Command::List { parking, limit: 50 }),
        ("list", ["--limit", limit]) => Ok(Command::List {
            parking,
            limit: limit
                .parse()
                .with_context(|| format!("--limit {limit:?} is not a number\n{USAGE}"))?,
        }),
        ("expire", ["--older-than", age]) => {
            let older_than =
                humantime_serde::re::humantime::parse_duration(age).with_context(|| {
                    format!("--older-than {age:?} is not a duration (e.g. 30d)\n{USAGE}")
                })?;
            // A slip of the unit (30s for 30d) would delete events consumers still need.
            if older_than < MIN_AGE {
                bail!(
                    "--older-than {age:?} is less than an hour: parked events that young are still being looked at"
                );
            }
            Ok(Command::Expire {
                parking,
                older_than,
            })
        }
        ("replay", []) => Ok(Command::Replay {
            parking,
            only: None,
        }),
        ("replay", ["--event", id]) => {
            Ok(Command::Replay {
                parking,
                only: Some(id.parse().with_context(|| {
                    format!("--event {id:?} is not an event id (a UUID)\n{USAGE}")
                })?),
            })
        }
        _ => bail!("{USAGE}"),
    }
}

fn describe(message: &Parked) -> String {
    let what = match &message.event {
        Some(event) => format!(
            "{} {} {} (aggregate {}, sequence {})",
            event.id,
            event.event_type,
            event.occurred_at.to_rfc3339(),
            event.aggregate_id,
            event
                .sequence
                .map_or_else(|| "none".to_owned(), |sequence| sequence.to_string()),
        ),
        None => format!(
            "not an event: {:?}",
            message.raw.as_deref().unwrap_or_default()
        ),
    };
    let attempts = message
        .attempts
        .map_or_else(|| "?".to_owned(), |attempts| attempts.to_string());
    format!(
        "{what}\n    routing key {}, {attempts} attempts, last error: {}",
        message.routing_key,
        message.error.as_deref().unwrap_or("none recorded")
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if matches!(words.first(), Some(&("--help" | "-h" | "help"))) {
        println!("{USAGE}{}", database::USAGE);
        return Ok(ExitCode::SUCCESS);
    }
    if let ["check", "--acks", acks, rest @ ..] = words.as_slice() {
        let settle = match rest {
            [] => std::time::Duration::from_secs(90),
            ["--settle", raw] => humantime_serde::re::humantime::parse_duration(raw)
                .with_context(|| format!("--settle {raw:?} is not a duration"))?,
            _ => bail!("{USAGE}{}", database::USAGE),
        };
        let clean = check::run(std::path::Path::new(acks), settle).await?;
        return Ok(if clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if let Some(command) = database::parse(&words) {
        let command =
            command.map_err(|error| anyhow::anyhow!("{error}\n{USAGE}{}", database::USAGE))?;
        let clean = database::run(command).await?;
        return Ok(if clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let config: Config = gavel_common::config::load().context("reading the broker's settings")?;
    let command = parse(&args, &config.broker.exchange)?;
    let inbox_retention = config.broker.inbox_retention;
    let broker = Broker::new(config.broker, "gavel-admin");
    match command {
        Command::List { parking, limit } => {
            let found = parked::list(&broker, &parking, limit)
                .await
                .with_context(|| format!("reading {}", parking.queue()))?;
            println!(
                "{} message(s) in {} (shown, left in place):",
                found.len(),
                parking.queue()
            );
            for message in &found {
                println!("{}", describe(message));
            }
        }
        Command::Replay { parking, only } => {
            let done = parked::replay(&broker, &parking, only)
                .await
                .with_context(|| format!("replaying {}", parking.queue()))?;
            println!(
                "replayed {} message(s) from {}; {} left there",
                done.replayed,
                parking.queue(),
                done.left
            );
            if let Some(oldest) = done.oldest
                && chrono::Utc::now()
                    .signed_duration_since(oldest)
                    .to_std()
                    .unwrap_or_default()
                    > inbox_retention
            {
                println!(
                    "warning: an event from {} was replayed; consumers forget handled events after \
                     broker.inbox_retention ({} days), so one that handled it before may handle it again",
                    oldest.to_rfc3339(),
                    inbox_retention.as_secs() / 86_400
                );
            }
            if only.is_some() && done.replayed == 0 {
                bail!("no message with that event id waits in {}", parking.queue());
            }
        }
        Command::Expire {
            parking,
            older_than,
        } => {
            let done = parked::expire(&broker, &parking, older_than, |message| {
                println!("deleted {}", describe(message));
            })
            .await
            .with_context(|| format!("expiring {}", parking.queue()))?;
            println!(
                "deleted {} message(s) from {}; {} kept",
                done.dropped,
                parking.queue(),
                done.kept
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_parse_and_anything_else_is_a_usage_error() {
        let consumer = || Parking::DeadLetters {
            consumer: "wallets.auction-events".to_owned(),
        };
        assert_eq!(
            parse(
                &args("dead-letters list wallets.auction-events"),
                "gavel.events"
            )
            .expect("ok"),
            Command::List {
                parking: consumer(),
                limit: 50
            }
        );
        assert_eq!(
            parse(&args("dead-letters replay wallets.auction-events --event 0196f1c2-7a2b-7c00-8000-000000000001"), "gavel.events").expect("ok"),
            Command::Replay {
                parking: consumer(),
                only: Some("0196f1c2-7a2b-7c00-8000-000000000001".parse().expect("uuid")),
            }
        );
        assert_eq!(
            parse(&args("unrouted list --limit 5"), "gavel.events").expect("ok"),
            Command::List {
                parking: Parking::Unrouted {
                    exchange: "gavel.events".to_owned()
                },
                limit: 5
            }
        );
        assert_eq!(
            parse(&args("unrouted expire --older-than 30d"), "gavel.events").expect("ok"),
            Command::Expire {
                parking: Parking::Unrouted {
                    exchange: "gavel.events".to_owned()
                },
                older_than: std::time::Duration::from_secs(30 * 86_400)
            }
        );
        for bad in [
            "",
            "dead-letters",
            "dead-letters list",
            "dead-letters drop wallets",
            "unrouted list --limit many",
            "unrouted replay --event 42",
            "unrouted replay extra",
            "unrouted expire",
            "unrouted expire --older-than soon",
            "unrouted expire --older-than 30s",
        ] {
            assert!(parse(&args(bad), "gavel.events").is_err(), "{bad:?}");
        }
    }
}
