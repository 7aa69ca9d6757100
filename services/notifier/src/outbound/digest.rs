//! Digests for heavy subscribers. A chat subscribed to everything gets at most one message per
//! `chat_interval`, so a burst of new lots would reach it minutes late, one by one. When more than
//! `telegram.digest_after` new-lot messages wait for one chat, they are folded, in one
//! transaction, into a single digest listing the lots: the digest is queued like any message
//! (durable, sent once), and the folded rows become `digested`, pointing at it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use teloxide::utils::html::escape;
use uuid::Uuid;

use crate::money::{eth, stored};

/// Telegram's limit is 4,096 characters a message; lots beyond this stay queued for the next
/// digest.
const MAX_DIGEST_CHARS: usize = 3_800;

/// One waiting new-lot message, with what the digest says of its lot.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Waiting {
    id: i64,
    lot_id: Uuid,
    title: String,
    price: String,
    ends_at: DateTime<Utc>,
    status: String,
}

/// Folds the waiting new-lot messages of every chat that has more than `after` into digests.
/// Returns how many digests were queued.
pub async fn fold(pool: &PgPool, after: usize, public_url: &url::Url) -> Result<u64, sqlx::Error> {
    let chats: Vec<i64> = sqlx::query_scalar(
        "SELECT chat_id FROM outbound
         WHERE status = 'pending' AND kind = 'new_lot' AND next_attempt_at <= now()
         GROUP BY chat_id HAVING count(*) > $1",
    )
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    let mut digests = 0;
    for chat in chats {
        let mut tx = pool.begin().await?;
        let waiting: Vec<Waiting> = sqlx::query_as(
            "SELECT o.id, o.lot_id, l.title, coalesce(l.price, l.start_price)::text AS price,
                    l.ends_at, l.status
             FROM outbound o JOIN lots l ON l.lot_id = o.lot_id
             WHERE o.chat_id = $1 AND o.status = 'pending' AND o.kind = 'new_lot'
             ORDER BY o.id FOR UPDATE OF o",
        )
        .bind(chat)
        .fetch_all(&mut *tx)
        .await?;
        if waiting.len() <= after {
            continue;
        }
        let (text, folded) = digest_text(&waiting, public_url)?;
        let digest: i64 = sqlx::query_scalar(
            "INSERT INTO outbound (event_id, chat_id, kind, text) VALUES ($1, $2, 'digest', $3)
             RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(chat)
        .bind(&text)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE outbound SET status = 'digested', digest = $2 WHERE id = ANY($1)")
            .bind(&folded)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        digests += 1;
    }
    Ok(digests)
}

/// The digest's text, and the ids of the messages it stands for (as many as fit).
fn digest_text(
    waiting: &[Waiting],
    public_url: &url::Url,
) -> Result<(String, Vec<i64>), sqlx::Error> {
    let base = public_url.as_str().trim_end_matches('/');
    let mut lines = Vec::new();
    let mut folded = Vec::new();
    let mut length = 0;
    for lot in waiting {
        let price = stored("lots.price", &lot.price)?;
        let state = match lot.status.as_str() {
            "open" | "scheduled" => format!("ends {}", lot.ends_at.format("%Y-%m-%d %H:%M UTC")),
            _ => "already ended".to_owned(),
        };
        let line = format!(
            "• <a href=\"{base}/lots/{}\">{}</a> — {} ETH, {state}",
            lot.lot_id,
            escape(&lot.title),
            eth(&price)
        );
        if length + line.len() > MAX_DIGEST_CHARS && !folded.is_empty() {
            break;
        }
        length += line.len() + 1;
        lines.push(line);
        folded.push(lot.id);
    }
    let text = format!(
        "🔨 {} new lots since the last message:\n{}",
        folded.len(),
        lines.join("\n")
    );
    Ok((text, folded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(id: i64, title: &str) -> Waiting {
        Waiting {
            id,
            lot_id: Uuid::from_u128(id as u128),
            title: title.to_owned(),
            price: "100000000000000000".to_owned(),
            ends_at: DateTime::from_timestamp(1_800_000_000, 0).expect("a time"),
            status: "open".to_owned(),
        }
    }

    #[test]
    fn a_digest_lists_each_lot_with_its_link_and_fits_one_message() {
        let url: url::Url = "https://gavel.test".parse().expect("url");
        let (text, folded) =
            digest_text(&[waiting(1, "Brass <lamp>"), waiting(2, "Clock")], &url).expect("text");
        assert_eq!(folded, vec![1, 2]);
        assert!(text.starts_with("🔨 2 new lots"), "{text}");
        assert!(
            text.contains("Brass &lt;lamp&gt;</a> — 0.1 ETH, ends 2027-01-15"),
            "{text}"
        );
        assert!(text.contains("https://gavel.test/lots/00000000-0000-0000-0000-000000000002"));

        let many: Vec<Waiting> = (0..200).map(|id| waiting(id, &"x".repeat(100))).collect();
        let (text, folded) = digest_text(&many, &url).expect("text");
        assert!(
            text.chars().count() <= 4096,
            "{} characters",
            text.chars().count()
        );
        assert!(folded.len() < 200 && !folded.is_empty());
    }

    #[test]
    fn an_unreadable_price_is_an_error_not_zero() {
        let mut bad = waiting(1, "Lamp");
        bad.price = "lots".to_owned();
        let url: url::Url = "https://gavel.test".parse().expect("url");
        assert!(digest_text(&[bad], &url).is_err());
    }
}
