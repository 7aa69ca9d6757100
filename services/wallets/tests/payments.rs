//! Settlement against real transactions on a dev chain: the winner's hold is captured when the
//! auction closes, and only a confirmed, successful payment of the right amount from the winner to
//! the seller settles it.

mod common;

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use common::{Options, TestApp, funded_wallet, publish, spawn_with, wait_for_sql};
use gavel_events::{AuctionClosed, Outcome};
use gavel_messaging::Envelope;
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use serde_json::{Value, json};

const ETHER: u128 = 1_000_000_000_000_000_000;
/// Runtime code `PUSH0 PUSH0 REVERT` behind a constructor that returns it: every call reverts.
const REVERTING_CONTRACT: &str = "0x625f5ffd5f526003601df3";

struct Sale {
    lot: LotId,
    token: String,
    winner: PrivateKeySigner,
    seller: String,
    /// The seller's access token: sellers follow the payment for what they sold.
    seller_token: String,
    price: u128,
}

/// A winner who signed in, held funds and won `price`; `seller` is where they must pay.
async fn sell(app: &TestApp, seller: &str, price: u128) -> Sale {
    let winner = funded_wallet(&app.chain, &(100 * ETHER).to_string()).await;
    sell_to(app, seller, price, winner, chrono::Utc::now()).await
}

/// [`sell`] to a given winner, the auction having closed at `closed_at`.
async fn sell_to(
    app: &TestApp,
    seller: &str,
    price: u128,
    winner: PrivateKeySigner,
    closed_at: chrono::DateTime<chrono::Utc>,
) -> Sale {
    let (token, signed_in) = app.sign_in(&winner).await;
    let account: AccountId = AccountId(
        signed_in["account_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid"),
    );
    let (seller_token, seller_signed_in) = app.sign_in(&PrivateKeySigner::random()).await;
    let seller_account = AccountId(
        seller_signed_in["account_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid"),
    );
    let loser = funded_wallet(&app.chain, &(100 * ETHER).to_string()).await;
    let lot = LotId::new();
    let bid = BidId::new();
    for (key, wallet, amount, bid_id) in [
        ("winner", &winner, price + ETHER, bid),
        ("loser", &loser, price - ETHER, BidId::new()),
    ] {
        let body = json!({"wallet": wallet.address().to_checksum(None), "lot_id": lot, "amount": amount.to_string(), "bid_id": bid_id});
        let (status, answer, _) = app.hold("place", &format!("{lot}-{key}"), body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let closed = AuctionClosed {
        lot_id: lot,
        seller: seller_account,
        seller_wallet: seller.parse().expect("address"),
        outcome: Outcome::Sold {
            winner: account,
            winner_wallet: EthAddress::from_alloy(winner.address()),
            price: Wei::from_u128(price),
            winning_bid: bid,
        },
        closed_at,
        reason: None,
    };
    publish(
        app,
        &Envelope::new(lot.to_string(), Some(9), &closed).expect("serializable"),
    )
    .await;
    wait_for_sql(
        app,
        "the payment to await",
        &format!("SELECT EXISTS (SELECT 1 FROM payments WHERE lot_id = '{lot}')"),
    )
    .await;

    let holds = app.holds(&format!("lot_id={lot}")).await;
    let state = |wallet: &PrivateKeySigner| {
        holds
            .iter()
            .find(|hold| hold["wallet"] == wallet.address().to_checksum(None))
            .map(|hold| (hold["status"].clone(), hold["amount"].clone()))
    };
    assert_eq!(
        state(&winner),
        Some((json!("captured"), json!(price.to_string()))),
        "the winner's hold is captured at the price"
    );
    assert_eq!(
        state(&loser).map(|(status, _)| status),
        Some(json!("released")),
        "the others are released"
    );
    Sale {
        lot,
        token,
        winner,
        seller: seller.to_owned(),
        seller_token,
        price,
    }
}

async fn submit(app: &TestApp, sale: &Sale, tx_hash: &str) -> (u16, Value) {
    app.post(
        &format!("/payments/{}", sale.lot),
        Some(&sale.token),
        json!({"tx_hash": tx_hash}),
    )
    .await
}

#[tokio::test]
async fn only_a_confirmed_successful_payment_of_the_price_to_the_seller_settles_the_sale() {
    let app = spawn_with(Options {
        confirmations: 3,
        ..Options::default()
    })
    .await;
    let seller = PrivateKeySigner::random().address().to_checksum(None);
    let sale = sell(&app, &seller, 5 * ETHER).await;
    let from = sale.winner.address().to_checksum(None);

    let short = app
        .chain
        .send(&from, &sale.seller, &(sale.price - 1).to_string(), None)
        .await;
    let elsewhere = app
        .chain
        .send(
            &from,
            &PrivateKeySigner::random().address().to_checksum(None),
            &sale.price.to_string(),
            None,
        )
        .await;
    let stranger = funded_wallet(&app.chain, &(10 * ETHER).to_string()).await;
    let by_stranger = app
        .chain
        .send(
            &stranger.address().to_checksum(None),
            &sale.seller,
            &sale.price.to_string(),
            None,
        )
        .await;
    let unknown = format!("0x{}", "ab".repeat(32));
    for (hash, code) in [
        (short.as_str(), "amount_too_low"),
        (elsewhere.as_str(), "wrong_recipient"),
        (by_stranger.as_str(), "wrong_sender"),
        (unknown.as_str(), "transaction_not_found"),
    ] {
        let (status, problem) = submit(&app, &sale, hash).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some(code)),
            "{problem}"
        );
        assert_eq!(problem["field"], "tx_hash");
    }
    let (status, problem) = submit(&app, &sale, "0x1234").await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("tx_hash")),
        "{problem}"
    );

    let paid = app
        .chain
        .send(&from, &sale.seller, &sale.price.to_string(), None)
        .await;
    let (status, problem) = submit(&app, &sale, &paid).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("not_enough_confirmations")),
        "{problem}"
    );
    app.chain.mine(2).await;
    let (status, payment) = submit(&app, &sale, &paid).await;
    assert_eq!(
        (status, payment["status"].as_str()),
        (200, Some("confirmed")),
        "{payment}"
    );
    let (status, again) = submit(&app, &sale, &paid).await;
    assert_eq!(
        (status, again),
        (200, payment.clone()),
        "resubmitting the same hash is harmless"
    );
    let path = format!("/payments/{}", sale.lot);
    let (status, seen_by_seller) = app.get(&path, &sale.seller_token).await;
    assert_eq!(
        (status, seen_by_seller),
        (200, payment),
        "the seller follows the payment"
    );

    let events: Vec<String> = sqlx::query_scalar("SELECT routing_key FROM outbox")
        .fetch_all(&app.db.pool)
        .await
        .expect("outbox");
    assert_eq!(events, ["payment.confirmed"]);
    let holds = app.holds(&format!("lot_id={}", sale.lot)).await;
    assert!(
        holds.iter().any(|hold| hold["status"] == "settled"),
        "{holds:?}"
    );

    let (other_token, _) = app.sign_in(&PrivateKeySigner::random()).await;
    let (status, _) = app
        .post(
            &format!("/payments/{}", sale.lot),
            Some(&other_token),
            json!({"tx_hash": paid}),
        )
        .await;
    assert_eq!(status, 403, "only the winner pays");
    let (status, _) = app.get(&path, &other_token).await;
    assert_eq!(
        status, 403,
        "only the winner and the seller see the payment"
    );
    let (status, _) = app
        .post(&path, Some(&sale.seller_token), json!({"tx_hash": paid}))
        .await;
    assert_eq!(status, 403, "the seller does not pay for its own lot");
    app.stop().await;
}

#[tokio::test]
async fn a_reverted_payment_does_not_settle() {
    let app = spawn_with(Options::default()).await;
    let deployer = funded_wallet(&app.chain, &ETHER.to_string()).await;
    let contract = app
        .chain
        .deploy(&deployer.address().to_checksum(None), REVERTING_CONTRACT)
        .await;
    let seller = EthAddress::from_alloy(contract.parse().expect("address")).to_string();
    let sale = sell(&app, &seller, 2 * ETHER).await;
    let failed = app
        .chain
        .send(
            &sale.winner.address().to_checksum(None),
            &sale.seller,
            &sale.price.to_string(),
            None,
        )
        .await;
    let (status, problem) = submit(&app, &sale, &failed).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("transaction_failed")),
        "{problem}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_missed_deadline_defaults_the_payment_and_releases_the_capture() {
    let app = spawn_with(Options {
        payment_window: Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    let sale = sell(
        &app,
        &PrivateKeySigner::random().address().to_checksum(None),
        3 * ETHER,
    )
    .await;
    wait_for_sql(
        &app,
        "the payment to default",
        &format!(
            "SELECT status = 'defaulted' FROM payments WHERE lot_id = '{}'",
            sale.lot
        ),
    )
    .await;
    let holds = app.holds(&format!("lot_id={}", sale.lot)).await;
    assert!(
        holds.iter().all(|hold| hold["status"] == "released"),
        "{holds:?}"
    );
    let events: Vec<String> = sqlx::query_scalar("SELECT routing_key FROM outbox")
        .fetch_all(&app.db.pool)
        .await
        .expect("outbox");
    assert_eq!(events, ["payment.defaulted"]);
    let (status, problem) = submit(&app, &sale, &format!("0x{}", "cd".repeat(32))).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("payment_closed")),
        "{problem}"
    );
    app.stop().await;
}

/// Scenario 5 of the money-path review: a transfer mined before the auction closed (made in
/// advance, or for something else entirely) does not pay for the lot; one mined after it does.
#[tokio::test]
async fn a_transfer_mined_before_the_close_does_not_pay_for_the_lot() {
    let app = spawn_with(Options::default()).await;
    let seller = PrivateKeySigner::random().address().to_checksum(None);
    let winner = funded_wallet(&app.chain, &(100 * ETHER).to_string()).await;
    let from = winner.address().to_checksum(None);
    let early = app
        .chain
        .send(&from, &seller, &(2 * ETHER).to_string(), None)
        .await;
    let receipt = app.chain.receipt(&early).await;
    let block = app
        .chain
        .rpc(
            "eth_getBlockByNumber",
            json!([receipt["blockNumber"], false]),
        )
        .await;
    let mined_at = i64::from_str_radix(
        block["timestamp"]
            .as_str()
            .expect("a quantity")
            .trim_start_matches("0x"),
        16,
    )
    .expect("hex");
    let closed_at = chrono::DateTime::from_timestamp(mined_at + 2, 0).expect("a time");
    let sale = sell_to(&app, &seller, 2 * ETHER, winner, closed_at).await;

    let (status, problem) = submit(&app, &sale, &early).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("transaction_before_close")),
        "{problem}"
    );
    app.chain
        .rpc("evm_setNextBlockTimestamp", json!([mined_at + 3]))
        .await;
    let paid = app
        .chain
        .send(&from, &seller, &(2 * ETHER).to_string(), None)
        .await;
    let (status, payment) = submit(&app, &sale, &paid).await;
    assert_eq!(
        (status, payment["status"].as_str()),
        (200, Some("confirmed")),
        "{payment}"
    );
    app.stop().await;
}
