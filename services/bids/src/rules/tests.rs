//! The rules as tables: each row a situation and what must come of it.

use chrono::{Duration, TimeZone};
use gavel_events::Increment;

use super::*;

const ETH: u128 = 1_000_000_000_000_000_000;

fn wei(ether_tenths: u128) -> Wei {
    Wei::from_u128(ether_tenths * ETH / 10)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("a valid time")
}

fn who(n: u8) -> (AccountId, EthAddress) {
    let account = AccountId(uuid::Uuid::from_bytes([n; 16]));
    let wallet = EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(n));
    (account, wallet)
}

fn lot() -> Lot {
    Lot {
        seller: who(99).0,
        rules: LotRules {
            start_price: wei(10),
            increment: Increment::Absolute { wei: wei(1) },
            reserve: None,
            buy_now: None,
            starts_at: t0() - Duration::hours(1),
            ends_at: t0() + Duration::hours(1),
            latest_end: t0() + Duration::hours(2),
            snipe_window_secs: 120,
            extension_secs: 300,
        },
        status: Status::Open,
        price: None,
        leader: None,
        ends_at: t0() + Duration::hours(1),
        bid_count: 0,
    }
}

fn offer(n: u8, amount: u128, max: Option<u128>) -> Offer {
    let (bidder, wallet) = who(n);
    Offer {
        bid_id: BidId::new(),
        bidder,
        wallet,
        amount: wei(amount),
        max: max.map(wei),
    }
}

/// Applies `offer` and returns the new lot, as the engine would store it.
fn apply(lot: &Lot, offer: &Offer, now: DateTime<Utc>) -> (Lot, Accepted) {
    let accepted = decide(lot, offer, now).expect("accepted");
    let next = Lot {
        price: Some(accepted.price),
        leader: Some(accepted.leader),
        ends_at: accepted.ends_at,
        bid_count: lot.bid_count + accepted.recorded.len() as i64,
        status: if accepted.closes {
            Status::Closed
        } else {
            lot.status
        },
        ..lot.clone()
    };
    (next, accepted)
}

#[test]
fn the_first_bid_must_meet_the_start_price_and_later_ones_the_increment() {
    let lot = lot();
    assert_eq!(
        decide(&lot, &offer(1, 9, None), t0()),
        Err(Refusal::TooLow { minimum: wei(10) })
    );
    let (lot, accepted) = apply(&lot, &offer(1, 10, None), t0());
    assert_eq!(
        (accepted.result, accepted.price),
        (Result::Accepted, wei(10))
    );
    assert_eq!(
        decide(&lot, &offer(2, 10, None), t0()),
        Err(Refusal::TooLow { minimum: wei(11) })
    );
    let (_, accepted) = apply(&lot, &offer(2, 11, None), t0());
    assert_eq!(
        accepted.displaced.map(|leader| leader.bidder),
        Some(who(1).0)
    );
}

#[test]
fn basis_point_increments_scale_with_the_price() {
    let mut lot = lot();
    lot.rules.increment = Increment::BasisPoints { bps: 500 }; // 5 %
    lot.price = Some(wei(100));
    lot.leader = Some(Leader {
        bidder: who(1).0,
        wallet: who(1).1,
        max: wei(100),
        hold_bid: BidId::new(),
    });
    assert_eq!(minimum_next(&lot), wei(105));
    lot.price = Some(Wei::from_u128(3));
    assert_eq!(minimum_next(&lot), Wei::from_u128(4), "at least one wei");
}

#[test]
fn the_seller_cannot_bid_and_nobody_bids_outside_the_auction() {
    let mut lot = lot();
    let seller = Offer {
        bidder: lot.seller,
        ..offer(1, 20, None)
    };
    assert_eq!(decide(&lot, &seller, t0()), Err(Refusal::OwnLot));
    assert_eq!(
        decide(&lot, &offer(1, 20, None), lot.ends_at),
        Err(Refusal::Closed),
        "the end itself is closed"
    );
    lot.status = Status::Scheduled;
    lot.rules.starts_at = t0() + Duration::minutes(5);
    assert_eq!(
        decide(&lot, &offer(1, 20, None), t0()),
        Err(Refusal::NotOpen)
    );
    lot.status = Status::Cancelled;
    assert_eq!(
        decide(&lot, &offer(1, 20, None), t0()),
        Err(Refusal::Closed)
    );
}

/// Proxy bidding. Each row: the leader's (bidder, amount, max), the challenger's (bidder,
/// amount, max), then who leads, at what price, the challenger's result, and the recorded amounts.
#[test]
fn proxy_bidding_table() {
    type Row = (
        (u8, u128, Option<u128>),
        (u8, u128, Option<u128>),
        u8,
        u128,
        Result,
        &'static [u128],
    );
    let rows: &[Row] = &[
        // The leader's maximum covers the challenger: the proxy answers one increment above.
        (
            (1, 10, Some(50)),
            (2, 20, None),
            1,
            21,
            Result::OutbidByProxy,
            &[20, 21],
        ),
        // The proxy answers at most its maximum.
        (
            (1, 10, Some(50)),
            (2, 11, Some(50)),
            1,
            50,
            Result::OutbidByProxy,
            &[11, 50],
        ),
        // A tie of maximums: the earlier one wins, at that maximum, with no extra bid.
        (
            (1, 10, Some(30)),
            (2, 30, None),
            1,
            30,
            Result::OutbidByProxy,
            &[30],
        ),
        // Maximum reached: the challenger beats the proxy by one increment over its maximum.
        (
            (1, 10, Some(30)),
            (2, 11, Some(60)),
            2,
            31,
            Result::Accepted,
            &[30, 31],
        ),
        // Proxy against proxy: the higher maximum wins, paying just above the other maximum.
        (
            (1, 10, Some(40)),
            (2, 12, Some(45)),
            2,
            41,
            Result::Accepted,
            &[40, 41],
        ),
        // The higher maximum is barely higher: the price stops at it.
        (
            (1, 10, Some(40)),
            (2, 12, Some(40)),
            1,
            40,
            Result::OutbidByProxy,
            &[12, 40],
        ),
        // A plain leader: a plain bid simply takes over.
        ((1, 10, None), (2, 15, None), 2, 15, Result::Accepted, &[15]),
        // A challenger's explicit amount above what is needed is what they bid.
        (
            (1, 10, Some(20)),
            (2, 35, Some(60)),
            2,
            35,
            Result::Accepted,
            &[20, 35],
        ),
    ];
    for ((l, la, lm), (c, ca, cm), leader, price, result, recorded) in rows {
        let (lot, _) = apply(&lot(), &offer(*l, *la, *lm), t0());
        let accepted = decide(&lot, &offer(*c, *ca, *cm), t0()).expect("accepted");
        let row = format!("leader {l}:{la}/{lm:?} vs {c}:{ca}/{cm:?}");
        assert_eq!(accepted.leader.bidder, who(*leader).0, "{row}: leader");
        assert_eq!(accepted.price, wei(*price), "{row}: price");
        assert_eq!(accepted.result, *result, "{row}: result");
        let amounts: Vec<Wei> = accepted.recorded.iter().map(|bid| bid.amount).collect();
        let expected: Vec<Wei> = recorded.iter().map(|amount| wei(*amount)).collect();
        assert_eq!(amounts, expected, "{row}: recorded");
        assert_eq!(
            accepted.release_own,
            *result == Result::OutbidByProxy,
            "{row}: own hold released when not leading"
        );
        let displaced = accepted.displaced.map(|leader| leader.bidder);
        let expected_displaced = (*leader == *c).then(|| who(*l).0);
        assert_eq!(displaced, expected_displaced, "{row}: displaced");
    }
}

#[test]
fn buy_now_ends_the_auction_at_its_price_even_against_a_higher_proxy() {
    let mut lot = lot();
    lot.rules.buy_now = Some(wei(80));
    let (lot, _) = apply(&lot, &offer(1, 10, Some(100)), t0());
    // A bid below buy-now is an ordinary bid, answered by the proxy.
    let ordinary = decide(&lot, &offer(2, 50, None), t0()).expect("accepted");
    assert!(!ordinary.closes);
    // An explicit amount at buy-now ends it, at buy-now, though the proxy's maximum is higher.
    let bought = decide(&lot, &offer(2, 90, None), t0()).expect("accepted");
    assert!(bought.closes);
    assert_eq!(
        (bought.price, bought.leader.bidder, bought.result),
        (wei(80), who(2).0, Result::Accepted)
    );
    assert_eq!(bought.ends_at, t0());
    assert_eq!(bought.displaced.map(|leader| leader.bidder), Some(who(1).0));
}

#[test]
fn a_bid_below_the_reserve_is_accepted_but_marked() {
    let mut lot = lot();
    lot.rules.reserve = Some(wei(25));
    let (lot, first) = apply(&lot, &offer(1, 10, None), t0());
    assert_eq!(first.result, Result::AcceptedBelowReserve);
    let (_, second) = apply(&lot, &offer(2, 25, None), t0());
    assert_eq!(second.result, Result::Accepted);
}

#[test]
fn anti_sniping_extends_inside_the_window_and_never_past_the_latest_end() {
    let lot = lot(); // ends t0+1h, window 120 s, extension 300 s, latest end t0+2h
    let end = lot.ends_at;
    let cases = [
        (end - Duration::seconds(121), end, "just outside the window"),
        (
            end - Duration::seconds(120),
            end + Duration::seconds(300),
            "at the window's edge",
        ),
        (
            end - Duration::seconds(1),
            end + Duration::seconds(300),
            "in the last second",
        ),
    ];
    for (now, expected, what) in cases {
        assert_eq!(
            decide(&lot, &offer(1, 10, None), now).expect(what).ends_at,
            expected,
            "{what}"
        );
    }
    let mut capped = lot.clone();
    capped.ends_at = capped.rules.latest_end - Duration::seconds(60);
    let accepted = decide(
        &capped,
        &offer(1, 10, None),
        capped.ends_at - Duration::seconds(10),
    )
    .expect("accepted");
    assert_eq!(
        accepted.ends_at, capped.rules.latest_end,
        "capped at the latest end"
    );
    capped.ends_at = capped.rules.latest_end;
    let accepted = decide(
        &capped,
        &offer(1, 10, None),
        capped.ends_at - Duration::seconds(10),
    )
    .expect("accepted");
    assert_eq!(
        accepted.ends_at, capped.rules.latest_end,
        "at the cap, no more extension"
    );
}

#[test]
fn a_leader_raising_their_own_bid_keeps_the_lead_and_the_larger_maximum() {
    let (lot, _) = apply(&lot(), &offer(1, 10, Some(40)), t0());
    let again = Offer {
        bid_id: BidId::new(),
        ..offer(1, 12, None)
    };
    let accepted = decide(&lot, &again, t0()).expect("accepted");
    assert_eq!(
        (accepted.leader.bidder, accepted.leader.max, accepted.price),
        (who(1).0, wei(40), wei(12))
    );
    assert_eq!(accepted.displaced, None);
}

#[test]
fn buy_now_is_gone_once_proxies_carry_the_price_to_it() {
    // Start 1.0, buy-now 8.0: A's proxy (10.0) and B's (9.0) take the price to 9.1.
    let mut lot = lot();
    lot.rules.buy_now = Some(wei(80));
    assert_eq!(buy_now_available(&lot), Some(wei(80)));
    let (lot, _) = apply(&lot, &offer(1, 10, Some(100)), t0());
    let (lot, accepted) = apply(&lot, &offer(2, 11, Some(90)), t0());
    assert_eq!(accepted.price, wei(91));
    assert_eq!(buy_now_available(&lot), None);
    // C's 9.2 is an ordinary bid now: A's proxy answers, nothing closes.
    let (lot, accepted) = apply(&lot, &offer(3, 92, None), t0());
    assert_eq!(
        (accepted.closes, accepted.result, accepted.price),
        (false, Result::OutbidByProxy, wei(93))
    );
    assert_eq!(lot.leader.map(|leader| leader.bidder), Some(who(1).0));
}

#[test]
fn a_leader_bidding_from_another_wallet_moves_the_lead_and_frees_the_old_hold() {
    let (lot, first) = apply(&lot(), &offer(1, 10, None), t0());
    let (_, other_wallet) = who(7);
    let again = Offer {
        wallet: other_wallet,
        ..offer(1, 20, None)
    };
    let (lot, accepted) = apply(&lot, &again, t0());
    let leader = lot.leader.expect("a leader");
    assert_eq!(
        (leader.bidder, leader.wallet, leader.hold_bid),
        (who(1).0, other_wallet, again.bid_id)
    );
    assert_eq!(
        accepted.displaced.map(|old| (old.wallet, old.hold_bid)),
        Some((who(1).1, first.leader.hold_bid)),
        "the first wallet's hold is released"
    );
    // From the same wallet again, nothing is displaced: the hold is raised in place.
    let (_, accepted) = apply(
        &lot,
        &Offer {
            wallet: other_wallet,
            ..offer(1, 30, None)
        },
        t0(),
    );
    assert_eq!(accepted.displaced, None);
}
