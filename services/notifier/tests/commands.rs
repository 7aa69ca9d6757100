//! Every command, through the fake Bot API: long polling in, the outbound queue out.

mod common;

use common::world;
use gavel_events::BidAccepted;
use gavel_test_support::wait_until_async;
use gavel_types::{AccountId, BidId, EthAddress, Wei};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_settings_lots_and_unsubscribing() {
    let world = world(&[]).await;
    let chat = 501;
    let script = [
        ("/start", "Welcome to Gavel"),
        (
            "/subscribe brass Lamp 0.01-0.5",
            "Subscribed to new lots with “brass lamp” in the title, starting at 0.01–0.5 ETH",
        ),
        (
            "/settings",
            "New lots: new lots with “brass lamp” in the title, starting at 0.01–0.5 ETH.\nPersonal alerts: off",
        ),
        (
            "/subscribe 2-1",
            "Not subscribed: the range's lower end is above its upper end",
        ),
        ("/subscribe", "Subscribed to every new lot"),
        ("/lots", "No lot is open right now"),
        ("/unsubscribe", "Unsubscribed"),
        ("/settings", "New lots: off"),
        ("/help", "/subscribe brass lamp 0.01-0.5"),
        (
            "/dance",
            "I don't know /dance. Send /help for the commands.",
        ),
    ];
    for (index, (command, expected)) in script.into_iter().enumerate() {
        world.telegram.user_says(chat, command);
        let reply = world.reply(chat, index).await;
        assert!(reply.contains(expected), "{command}: {reply}");
    }
    // An unknown command gets a one-line hint, not the whole help.
    let hint = world.reply(chat, 9).await;
    assert!(!hint.contains("/subscribe"), "{hint}");
    let subscribed: bool = sqlx::query_scalar("SELECT subscribed FROM chats WHERE chat_id = $1")
        .bind(chat)
        .fetch_one(&world.db.pool)
        .await
        .expect("chat");
    assert!(!subscribed);

    // An open lot shows up in /lots with its link.
    let lot = world
        .open_lot("Mechanical chronograph", 10u128.pow(16), AccountId::new())
        .await;
    wait_until_async("the lot to be open", common::DEADLINE, || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM lots WHERE lot_id = $1")
            .bind(lot.0)
            .fetch_optional(&world.db.pool)
            .await
            .ok()
            .flatten()
            .as_deref()
            == Some("open")
    })
    .await;
    world.telegram.user_says(chat, "/lots");
    let reply = world.reply(chat, 10).await;
    assert!(reply.contains("Mechanical chronograph"), "{reply}");
    assert!(
        reply.contains(&format!("http://gavel.test/lots/{lot}")),
        "{reply}"
    );
    assert!(reply.contains("from 0.01 ETH, no bids yet"), "{reply}");

    // Once bids come, /lots shows the current price.
    let bid = BidAccepted {
        lot_id: lot,
        bid_id: BidId::new(),
        bidder: AccountId::new(),
        wallet: EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x22)),
        amount: Wei::from_u128(25 * 10u128.pow(15)),
        held: Wei::from_u128(25 * 10u128.pow(15)),
        proxy: false,
        at: chrono::Utc::now(),
        price: Wei::from_u128(25 * 10u128.pow(15)),
        leader: AccountId::new(),
        previous_leader: None,
        bid_count: 2,
        ends_at: chrono::Utc::now() + chrono::Duration::hours(1),
        reserve_met: true,
    };
    world.publish(&lot.to_string(), Some(3), &bid).await;
    wait_until_async(
        "the price to reach the notifier",
        common::DEADLINE,
        || async {
            sqlx::query_scalar::<_, i32>("SELECT bids FROM lots WHERE lot_id = $1")
                .bind(lot.0)
                .fetch_one(&world.db.pool)
                .await
                .expect("lot")
                == 2
        },
    )
    .await;
    world.telegram.user_says(chat, "/lots");
    let reply = world.reply(chat, 11).await;
    assert!(reply.contains("now 0.025 ETH (2 bids)"), "{reply}");

    // Replies to one chat keep Telegram's one-per-second pace.
    let replies = world.to_chat(chat);
    for pair in replies.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at).as_millis() >= 1000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_with_a_good_a_wrong_a_used_and_an_expired_code() {
    let world = world(&[]).await;
    let account = AccountId::new();
    let client = reqwest::Client::new();

    // Only a signed-in account gets a code.
    let anonymous = client
        .post(format!("{}/link-codes", world.http()))
        .send()
        .await
        .expect("answers");
    assert_eq!(anonymous.status(), 401);
    let issued = world.link_code(account).await;
    let code = issued["code"].as_str().expect("a code").to_owned();
    assert_eq!(code.len(), 8);
    assert_eq!(issued["command"], json!(format!("/link {code}")));
    assert_eq!(
        (&issued["bot"], &issued["bot_url"]),
        (
            &json!("gavel_test_bot"),
            &json!("https://t.me/gavel_test_bot")
        ),
        "the browser names the bot"
    );

    let (chat, other) = (601, 602);
    world.telegram.user_says(chat, "/link WRONG123");
    assert!(
        world
            .reply(chat, 0)
            .await
            .contains("That code is wrong, used or expired")
    );
    world.telegram.user_says(chat, "/link");
    assert!(
        world
            .reply(chat, 1)
            .await
            .contains("Send /link followed by the code")
    );
    world
        .telegram
        .user_says(chat, &format!("/link {}", code.to_lowercase()));
    assert!(world.reply(chat, 2).await.contains("Linked"));
    let linked: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT account_id FROM chats WHERE chat_id = $1")
            .bind(chat)
            .fetch_one(&world.db.pool)
            .await
            .expect("chat");
    assert_eq!(linked, Some(account.0));

    // A code works once.
    world.telegram.user_says(other, &format!("/link {code}"));
    assert!(
        world
            .reply(other, 0)
            .await
            .contains("wrong, used or expired")
    );

    // An expired code fails the same way.
    sqlx::query("INSERT INTO link_codes (code, account_id, expires_at) VALUES ('EXPIRED2', $1, now() - interval '1 second')")
        .bind(account.0)
        .execute(&world.db.pool)
        .await
        .expect("code");
    world.telegram.user_says(other, "/link EXPIRED2");
    assert!(
        world
            .reply(other, 1)
            .await
            .contains("wrong, used or expired")
    );

    world.telegram.user_says(chat, "/settings");
    assert!(world.reply(chat, 3).await.contains("Personal alerts: on"));
    world.telegram.user_says(chat, "/unlink");
    assert!(world.reply(chat, 4).await.contains("Unlinked"));
    world.telegram.user_says(chat, "/unlink");
    assert!(world.reply(chat, 5).await.contains("not linked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_update_needs_the_secret_and_is_applied_once() {
    let world = world(&[
        ("GAVEL_TELEGRAM__MODE", "webhook"),
        (
            "GAVEL_TELEGRAM__WEBHOOK_URL",
            "https://gavel.test/telegram/webhook",
        ),
        ("GAVEL_TELEGRAM__WEBHOOK_SECRET", "s3cret-token_1"),
    ])
    .await;
    assert_eq!(
        world.telegram.webhook(),
        Some((
            "https://gavel.test/telegram/webhook".to_owned(),
            "s3cret-token_1".to_owned()
        ))
    );
    assert!(
        world
            .telegram
            .allowed_updates()
            .contains(&("setWebhook".to_owned(), json!(["message"]))),
        "{:?}",
        world.telegram.allowed_updates()
    );
    let chat = 701;
    let update = world.telegram.update(
        chat,
        json!({"id": chat, "type": "private", "first_name": "Tester"}),
        "/start",
    );
    let client = reqwest::Client::new();
    let url = format!("{}/telegram/webhook", world.http());
    for secret in [None, Some("wrong")] {
        let mut request = client.post(&url).json(&update);
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        assert_eq!(request.send().await.expect("answers").status(), 401);
    }
    // Telegram retries a delivery it is unsure of: the second is a repeat.
    for _ in 0..2 {
        let answer = client
            .post(&url)
            .header("X-Telegram-Bot-Api-Secret-Token", "s3cret-token_1")
            .json(&update)
            .send()
            .await
            .expect("answers");
        assert_eq!(answer.status(), 200);
    }
    assert!(world.reply(chat, 0).await.contains("Welcome to Gavel"));
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM outbound WHERE chat_id = $1")
        .bind(chat)
        .fetch_one(&world.db.pool)
        .await
        .expect("count");
    assert_eq!(queued, 1);
}

/// Issue 17: the bot registers its command menu, asks Telegram only for the updates it handles,
/// and tells a chat that blocked it and came back that it is no longer subscribed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_menu_the_updates_asked_for_and_a_blocked_chat_coming_back() {
    let world = world(&[]).await;
    let commands = world.telegram.commands().expect("setMyCommands at start");
    let listed: Vec<(String, String)> = commands
        .as_array()
        .expect("a list")
        .iter()
        .map(|command| {
            (
                command["command"].as_str().expect("command").to_owned(),
                command["description"]
                    .as_str()
                    .expect("description")
                    .to_owned(),
            )
        })
        .collect();
    let names: Vec<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "start",
            "help",
            "subscribe",
            "unsubscribe",
            "lots",
            "link",
            "unlink",
            "settings"
        ]
    );
    assert!(
        listed
            .iter()
            .all(|(_, description)| !description.is_empty())
    );

    let chat = 801;
    world.telegram.user_says(chat, "/help");
    world.reply(chat, 0).await;
    let asked = world.telegram.allowed_updates();
    assert!(
        !asked.is_empty()
            && asked
                .iter()
                .all(|(method, allowed)| method == "getUpdates" && *allowed == json!(["message"])),
        "{asked:?}"
    );

    // The chat blocked the bot (the sender saw 403 and unsubscribed it), then comes back.
    sqlx::query("UPDATE chats SET subscribed = FALSE, blocked_at = now() WHERE chat_id = $1")
        .bind(chat)
        .execute(&world.db.pool)
        .await
        .expect("blocked");
    world.telegram.user_says(chat, "/start");
    let reply = world.reply(chat, 1).await;
    assert!(reply.contains("You are no longer subscribed"), "{reply}");
    assert!(reply.contains("/subscribe"), "{reply}");
    // Only once: the next /start is an ordinary welcome.
    world.telegram.user_says(chat, "/start");
    let reply = world.reply(chat, 2).await;
    assert!(reply.starts_with("Welcome to Gavel"), "{reply}");
}
