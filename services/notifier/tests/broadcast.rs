//! New-lot broadcasts and personal alerts: matching, Telegram's limits, 429 storms, blocked
//! chats, and a sender killed mid-broadcast.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{DEADLINE, World, world};
use gavel_events::{AuctionClosed, BidAccepted, Outcome, PaymentConfirmed};
use gavel_test_support::{Sent, wait_until_async};
use gavel_types::{AccountId, BidId, EthAddress, Wei};

const ETH: u128 = 1_000_000_000_000_000_000;

fn address() -> EthAddress {
    EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x11))
}

/// No window of one second holds more than `limit` sends.
fn max_per_second(sends: &[Sent]) -> usize {
    let mut most = 0;
    let mut start = 0;
    for end in 0..sends.len() {
        while sends[end].at.duration_since(sends[start].at) >= Duration::from_secs(1) {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

async fn event_rows(world: &World, chat_count: usize) -> HashMap<i64, String> {
    wait_until_async("the broadcast to be queued", DEADLINE, || async {
        let queued: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbound WHERE kind = 'new_lot'")
                .fetch_one(&world.db.pool)
                .await
                .expect("count");
        queued as usize >= chat_count
    })
    .await;
    sqlx::query_as("SELECT chat_id, status FROM outbound WHERE kind = 'new_lot'")
        .fetch_all(&world.db.pool)
        .await
        .expect("rows")
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_lot_reaches_exactly_the_matching_subscribers() {
    let world = world(&[]).await;
    let filters = [
        (1, "{}", None, None, true),                 // everything
        (2, "{brass,lamp}", None, None, true),       // both words in the title
        (3, "{brass,chair}", None, None, false),     // one word missing
        (4, "{}", Some(ETH / 100), Some(ETH), true), // 0.01–1 ETH
        (5, "{}", Some(ETH), None, false),           // from 1 ETH
        (6, "{}", None, Some(ETH / 1000), false),    // up to 0.001 ETH
    ];
    for (chat, keywords, min, max, _) in filters {
        sqlx::query(
            "INSERT INTO chats (chat_id, kind, subscribed, keywords, min_price, max_price)
             VALUES ($1, 'private', TRUE, $2::text[], $3::numeric, $4::numeric)",
        )
        .bind(chat)
        .bind(keywords)
        .bind(min.map(|min: u128| min.to_string()))
        .bind(max.map(|max: u128| max.to_string()))
        .execute(&world.db.pool)
        .await
        .expect("chat");
    }
    // Not subscribed: nothing.
    sqlx::query("INSERT INTO chats (chat_id, kind) VALUES (7, 'private')")
        .execute(&world.db.pool)
        .await
        .expect("chat");

    let lot = world
        .open_lot("Brass desk LAMP, 1920s", ETH / 20, AccountId::new())
        .await;
    let expected: HashSet<i64> = filters
        .iter()
        .filter(|filter| filter.4)
        .map(|filter| filter.0)
        .collect();
    let rows = event_rows(&world, expected.len()).await;
    assert_eq!(rows.keys().copied().collect::<HashSet<_>>(), expected);
    let sent = world.delivered(expected.len()).await;
    assert_eq!(
        sent.iter().map(|sent| sent.chat_id).collect::<HashSet<_>>(),
        expected
    );
    let text = &sent[0].text;
    assert!(
        text.contains("New lot: <b>Brass desk LAMP, 1920s</b>"),
        "{text}"
    );
    assert!(text.contains("From 0.05 ETH"), "{text}");
    assert!(
        text.contains(&format!("http://gavel.test/lots/{lot}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_account_hears_it_was_outbid_won_and_paid() {
    let world = world(&[]).await;
    let (bidder, rival, seller) = (AccountId::new(), AccountId::new(), AccountId::new());
    for (chat, account) in [(11, bidder), (12, seller)] {
        sqlx::query("INSERT INTO chats (chat_id, kind, account_id) VALUES ($1, 'private', $2)")
            .bind(chat)
            .bind(account.0)
            .execute(&world.db.pool)
            .await
            .expect("chat");
    }
    let lot = world
        .open_lot("Signed first edition", ETH / 100, seller)
        .await;
    let bid =
        |bidder: AccountId, previous: Option<AccountId>, price: u128, count: i64| BidAccepted {
            lot_id: lot,
            bid_id: BidId::new(),
            bidder,
            wallet: address(),
            amount: Wei::from_u128(price),
            held: Wei::from_u128(price),
            proxy: false,
            at: chrono::Utc::now(),
            price: Wei::from_u128(price),
            leader: bidder,
            previous_leader: previous,
            bid_count: count,
            ends_at: chrono::Utc::now() + chrono::Duration::hours(1),
            reserve_met: true,
        };
    let aggregate = lot.to_string();
    world
        .publish(&aggregate, Some(2), &bid(bidder, None, ETH / 100, 1))
        .await;
    let outbid = world
        .publish(&aggregate, Some(3), &bid(rival, Some(bidder), ETH / 50, 2))
        .await;
    // Redelivered: still one message.
    world.vhost.publish(&outbid, "notifier.events").await;
    world
        .publish(&aggregate, Some(4), &bid(bidder, Some(rival), ETH / 25, 3))
        .await;
    world
        .publish(
            &aggregate,
            Some(5),
            &AuctionClosed {
                lot_id: lot,
                seller,
                seller_wallet: address(),
                outcome: Outcome::Sold {
                    winner: bidder,
                    winner_wallet: address(),
                    price: Wei::from_u128(ETH / 25),
                    winning_bid: BidId::new(),
                },
                closed_at: chrono::Utc::now(),
                reason: None,
            },
        )
        .await;
    world
        .publish(
            &aggregate,
            None,
            &PaymentConfirmed {
                lot_id: lot,
                winner: bidder,
                winner_wallet: address(),
                seller_wallet: address(),
                amount: Wei::from_u128(ETH / 25),
                tx_hash: "0xabc".to_owned(),
            },
        )
        .await;

    let bidder_hears = [
        "You have been outbid on <b>Signed first edition</b>: the price is now 0.02 ETH.",
        "🎉 You won <b>Signed first edition</b> for 0.04 ETH.",
        "✅ Payment of 0.04 ETH for <b>Signed first edition</b> is confirmed.",
    ];
    for (index, expected) in bidder_hears.into_iter().enumerate() {
        let text = world.reply(11, index).await;
        assert!(text.contains(expected), "{text}");
    }
    let seller_hears = [
        "Your lot <b>Signed first edition</b> sold for 0.04 ETH.",
        "✅ Payment of 0.04 ETH",
    ];
    for (index, expected) in seller_hears.into_iter().enumerate() {
        let text = world.reply(12, index).await;
        assert!(text.contains(expected), "{text}");
    }
    let bidder_messages: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbound WHERE chat_id = 11")
            .fetch_one(&world.db.pool)
            .await
            .expect("count");
    assert_eq!(bidder_messages, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_get_one_message_each_within_telegrams_limits() {
    let world = world(&[]).await;
    world.subscribers(1_000_001, 1000).await;
    // A few chats also talk to the bot meanwhile: their replies share the per-chat pace.
    for chat in 1_000_001..1_000_004 {
        for _ in 0..3 {
            world.telegram.user_says(chat, "/help");
        }
    }
    world.open_lot("Hot lot", ETH / 10, AccountId::new()).await;
    let sent = world.delivered(1009).await;

    let mut per_chat: HashMap<i64, Vec<&Sent>> = HashMap::new();
    for message in &sent {
        per_chat.entry(message.chat_id).or_default().push(message);
    }
    assert_eq!(per_chat.len(), 1000);
    let new_lot: Vec<i64> = sent
        .iter()
        .filter(|message| message.text.contains("New lot"))
        .map(|message| message.chat_id)
        .collect();
    assert_eq!(new_lot.len(), 1000, "one new-lot message per subscriber");
    assert_eq!(new_lot.iter().collect::<HashSet<_>>().len(), 1000);
    let busiest = max_per_second(&sent);
    assert!(busiest <= 30, "{busiest} messages in one second");
    for messages in per_chat.values() {
        for pair in messages.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(
                gap >= Duration::from_secs(1),
                "two messages to one chat {gap:?} apart"
            );
        }
    }
    println!(
        "1009 messages in {:.1}s, at most {busiest} in any second",
        sent.last()
            .expect("sent")
            .at
            .duration_since(sent[0].at)
            .as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_ridden_out_without_loss() {
    let world = world(&[]).await;
    world.subscribers(2_000_001, 60).await;
    world.telegram.throttle(15, 1);
    world
        .open_lot("Throttled lot", ETH / 10, AccountId::new())
        .await;
    let delivered = world.delivered(60).await;
    assert_eq!(
        delivered
            .iter()
            .map(|sent| sent.chat_id)
            .collect::<HashSet<_>>()
            .len(),
        60
    );
    assert_eq!(delivered.len(), 60, "nothing delivered twice");
    // After each 429, nothing was sent for its retry_after.
    let sends = world.telegram.sends();
    assert_eq!(sends.iter().filter(|sent| sent.status == 429).count(), 15);
    for (index, refused) in sends
        .iter()
        .enumerate()
        .filter(|(_, sent)| sent.status == 429)
    {
        // Requests already in flight when the 429 came back may land just after it.
        let in_flight = 8;
        for later in sends.iter().skip(index + 1 + in_flight) {
            assert!(
                later.at.duration_since(refused.at) >= Duration::from_millis(1000),
                "a send {:?} after a 429 asking for 1s",
                later.at.duration_since(refused.at)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_that_blocked_the_bot_is_unsubscribed() {
    let world = world(&[]).await;
    world.subscribers(3_000_001, 5).await;
    let blocked = 3_000_003;
    world.telegram.block(blocked);
    world
        .open_lot("First lot", ETH / 10, AccountId::new())
        .await;
    world.delivered(4).await;
    wait_until_async("the blocked chat to be unsubscribed", DEADLINE, || async {
        let subscribed: bool = sqlx::query_scalar(
            "SELECT subscribed AND blocked_at IS NULL FROM chats WHERE chat_id = $1",
        )
        .bind(blocked)
        .fetch_one(&world.db.pool)
        .await
        .expect("chat");
        !subscribed
    })
    .await;
    let status: String = sqlx::query_scalar("SELECT status FROM outbound WHERE chat_id = $1")
        .bind(blocked)
        .fetch_one(&world.db.pool)
        .await
        .expect("row");
    assert_eq!(status, "dropped");

    // The next lot does not even queue a message for it.
    let second = world
        .open_lot("Second lot", ETH / 10, AccountId::new())
        .await;
    world.delivered(8).await;
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbound o JOIN lots l ON l.lot_id = o.lot_id
         WHERE o.chat_id = $1 AND l.lot_id = $2",
    )
    .bind(blocked)
    .bind(second.0)
    .fetch_one(&world.db.pool)
    .await
    .expect("count");
    assert_eq!(queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_broadcast_it_neither_repeats_nor_skips_anyone() {
    let mut world = world(&[]).await;
    world.subscribers(4_000_001, 200).await;
    // The 80th message reaches Telegram, but the answer never comes back: the notifier is
    // killed while that request is in flight.
    let held = world.telegram.hold(80);
    world
        .open_lot("Interrupted lot", ETH / 10, AccountId::new())
        .await;
    tokio::time::timeout(DEADLINE, held)
        .await
        .expect("80 messages in time")
        .expect("signalled");
    world.kill().await;
    let before = world.telegram.delivered().len();
    assert!(before >= 80);
    assert!(before < 200, "the broadcast was not interrupted");

    world.start().await;
    let delivered = world.delivered(200).await;
    let chats: Vec<i64> = delivered.iter().map(|sent| sent.chat_id).collect();
    let unique: HashSet<i64> = chats.iter().copied().collect();
    assert_eq!(unique.len(), 200, "every subscriber got the message");
    assert_eq!(chats.len(), 200, "nobody got it twice");
    // The one in flight is recorded as uncertain, not sent again.
    let uncertain: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbound WHERE status = 'uncertain'")
            .fetch_one(&world.db.pool)
            .await
            .expect("count");
    assert!(uncertain >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_messages_are_logged_not_sent() {
    let mut world = world(&[("GAVEL_TELEGRAM__TOKEN", "")]).await;
    world.subscribers(5_000_001, 3).await;
    world.open_lot("Dry lot", ETH / 10, AccountId::new()).await;
    wait_until_async("the dry run to go through the queue", DEADLINE, || async {
        let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbound WHERE status = 'sent'")
            .fetch_one(&world.db.pool)
            .await
            .expect("count");
        sent == 3
    })
    .await;
    assert!(
        world.telegram.sends().is_empty(),
        "nothing reached Telegram"
    );
    // The browser is told there is no bot to name.
    let issued = world.link_code(AccountId::new()).await;
    assert_eq!(
        (&issued["bot"], &issued["bot_url"]),
        (&serde_json::Value::Null, &serde_json::Value::Null),
        "{issued}"
    );
    let logs = world.terminate().await;
    let logged = logs
        .iter()
        .filter(|line| line.contains("dry run: message not sent") && line.contains("Dry lot"))
        .count();
    assert_eq!(logged, 3, "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_with_backoff_until_it_passes() {
    let world = world(&[]).await;
    world.subscribers(6_000_001, 1).await;
    world.telegram.outage(2);
    world
        .open_lot("Patient lot", ETH / 10, AccountId::new())
        .await;
    let delivered = world.delivered(1).await;
    assert_eq!(delivered.len(), 1);
    let sends = world.telegram.sends();
    let statuses: Vec<u16> = sends.iter().map(|sent| sent.status).collect();
    assert_eq!(statuses, [502, 502, 200]);
    // Backoff: 2 s after the first failure, 4 s after the second (teloxide itself also waits
    // 10 s on any 5xx before reporting it).
    assert!(sends[1].at.duration_since(sends[0].at) >= Duration::from_secs(2));
    assert!(sends[2].at.duration_since(sends[1].at) >= Duration::from_secs(4));
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM outbound WHERE chat_id = 6000001")
        .fetch_one(&world.db.pool)
        .await
        .expect("row");
    assert_eq!(attempts, 3);
}

/// Issue 17: after a 429 the whole sender waits its `retry_after` — every request, including
/// those already queued behind the one refused — and then goes on at the normal pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_window_is_waited_out_by_every_send_and_left_at_the_normal_pace() {
    let world = world(&[("GAVEL_TELEGRAM__MESSAGES_PER_SECOND", "10")]).await;
    world.subscribers(7_000_001, 50).await;
    world.telegram.flood(Duration::from_millis(1500));
    world
        .open_lot("Flooded lot", ETH / 10, AccountId::new())
        .await;
    let delivered = world.delivered(50).await;
    let chats: HashSet<i64> = delivered.iter().map(|sent| sent.chat_id).collect();
    assert_eq!(
        (delivered.len(), chats.len()),
        (50, 50),
        "one each, none twice"
    );

    let sends = world.telegram.sends();
    let refusals: Vec<&Sent> = sends.iter().filter(|sent| sent.status == 429).collect();
    assert!(!refusals.is_empty(), "the flood window refused a send");
    for refused in &refusals {
        let wait = Duration::from_secs(u64::from(refused.retry_after.expect("retry_after")));
        let early: Vec<Duration> = sends
            .iter()
            .filter(|sent| sent.at > refused.at && sent.at.duration_since(refused.at) < wait)
            .map(|sent| sent.at.duration_since(refused.at))
            .collect();
        assert!(
            early.is_empty(),
            "sends {early:?} after a 429 that asked for {wait:?}"
        );
    }
    // After the pause: no burst, at most the configured 10 a second (one more at a window's edge).
    let last_refusal = refusals.last().expect("a refusal").at;
    let after: Vec<Sent> = sends
        .iter()
        .filter(|sent| sent.at > last_refusal)
        .cloned()
        .collect();
    let busiest = max_per_second(&after);
    assert!(
        busiest <= 11,
        "{busiest} sends in one second after the pause"
    );
    println!(
        "{} refused, then 50 delivered; busiest second after the pause: {busiest}",
        refusals.len()
    );
}

/// Issue 17: a chat subscribed to everything gets one digest for a backlog of new lots instead
/// of one message per lot at Telegram's per-chat pace, and every lot is in exactly one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_new_lots_for_one_chat_goes_as_a_digest() {
    let world = world(&[
        ("GAVEL_TELEGRAM__DIGEST_AFTER", "3"),
        ("GAVEL_TELEGRAM__CHAT_INTERVAL", "3s"),
    ])
    .await;
    let chat = 7_100_001;
    world.subscribers(chat, 1).await;
    world
        .open_lot("Opening lot", ETH / 10, AccountId::new())
        .await;
    world.delivered(1).await;
    // The chat just got a message: the next may only go in 3 s, and eight lots open meanwhile.
    let titles: Vec<String> = (1..=8).map(|n| format!("Backlog lot number {n}")).collect();
    for title in &titles {
        world.open_lot(title, ETH / 10, AccountId::new()).await;
    }
    wait_until_async("every lot to be told", DEADLINE, || async {
        let told = world
            .to_chat(chat)
            .iter()
            .map(|sent| {
                titles
                    .iter()
                    .filter(|title| sent.text.contains(*title))
                    .count()
            })
            .sum::<usize>();
        told >= titles.len()
    })
    .await;
    let messages = world.to_chat(chat);
    for title in &titles {
        let holding = messages
            .iter()
            .filter(|sent| sent.text.contains(&format!("{title}<")))
            .count();
        assert_eq!(holding, 1, "{title} in {holding} messages");
    }
    let digests: Vec<&Sent> = messages
        .iter()
        .filter(|sent| sent.text.contains("new lots since the last message"))
        .collect();
    assert!(!digests.is_empty(), "a digest was sent: {messages:#?}");
    // At worst two digests of four and three single messages after the first one.
    assert!(
        messages.len() <= 6,
        "{} messages for 9 lots",
        messages.len()
    );
    let digested: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbound WHERE status = 'digested' AND digest IS NOT NULL",
    )
    .fetch_one(&world.db.pool)
    .await
    .expect("count");
    assert!(digested > 3, "{digested} messages folded");
}
