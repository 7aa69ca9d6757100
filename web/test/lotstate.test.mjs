import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyEvent, bidFromEvent, buyNowOffered, cardPrice, endedText, eventFromEnvelope, fromSnapshot, standing, wasOutbid, withLiveState } from '../src/lotstate.js';

const rules = { start_price: '10000000000000000', increment: { kind: 'absolute', wei: '5000000000000000' } };

test('a bid moves price, leader, count, end and the next minimum', () => {
  const state = fromSnapshot(
    { status: 'open', price: null, bid_count: 0, minimum_next: '10000000000000000', ends_at: '2026-11-23T14:00:00Z' },
    1,
  );
  const frame = {
    type: 'event',
    sequence: 2,
    event: 'auction.bid_accepted',
    occurred_at: '2026-11-23T13:00:00Z',
    data: { bid_id: 'b1', bidder: 'a1', amount: '10000000000000000', price: '10000000000000000', leader: 'a1', bid_count: 1, ends_at: '2026-11-23T14:02:00Z', reserve_met: false, proxy: false, at: '2026-11-23T13:00:00Z' },
  };
  const next = applyEvent(state, frame, rules);
  assert.equal(next.sequence, 2);
  assert.equal(next.price, '10000000000000000');
  assert.equal(next.leader, 'a1');
  assert.equal(next.bidCount, 1);
  assert.equal(next.endsAt, '2026-11-23T14:02:00Z');
  assert.equal(next.minimumNext, '15000000000000000');
  assert.equal(applyEvent(state, frame, null).minimumNext, null);
  assert.deepEqual(bidFromEvent(frame), { bid_id: 'b1', seq: 2, bidder: 'a1', wallet: null, amount: '10000000000000000', proxy: false, placed_at: '2026-11-23T13:00:00Z' });
});

test('closing and cancelling end the auction', () => {
  const state = fromSnapshot({ status: 'open', price: '5', bid_count: 1 }, 3);
  const sold = applyEvent(state, { sequence: 4, event: 'auction.closed', data: { outcome: 'sold', price: '5' } }, rules);
  assert.equal(sold.status, 'closed');
  assert.equal(sold.outcome, 'sold');
  assert.equal(sold.minimumNext, null);
  assert.equal(applyEvent(state, { sequence: 4, event: 'auction.cancelled', data: {} }, rules).status, 'cancelled');
});

test('a log envelope becomes an event message', () => {
  const frame = eventFromEnvelope({ id: 'x', type: 'auction.opened', version: 1, occurred_at: 't', aggregate_id: 'lot', sequence: 1, payload: { ends_at: 'e' } }, 'lot');
  assert.deepEqual(frame, { type: 'event', lot_id: 'lot', sequence: 1, event: 'auction.opened', occurred_at: 't', data: { ends_at: 'e' } });
});

test('buy-now is offered only while the price is below it', () => {
  assert.equal(buyNowOffered('80', null), '80');
  assert.equal(buyNowOffered('80', '79'), '80');
  assert.equal(buyNowOffered('80', '80'), null);
  assert.equal(buyNowOffered(null, '1'), null);
  const state = fromSnapshot({ status: 'open', price: '70', buy_now: '80', bid_count: 2 }, 3);
  assert.equal(state.buyNow, '80');
  const proxies = applyEvent(state, { sequence: 4, event: 'auction.bid_accepted', data: { price: '91', bid_count: 4 } }, null);
  assert.equal(proxies.buyNow, null, 'the button goes once proxies carry the price past buy-now');
});

test('a seller\'s change before the first bid moves the start, the end and the minimum', () => {
  const state = fromSnapshot({ status: 'open', price: null, buy_now: '90', bid_count: 0, minimum_next: '10' }, 1);
  const next = applyEvent(state, { sequence: 2, event: 'auction.updated', data: { start_price: '20', buy_now: null, ends_at: 'e2', starts_at: 's2', has_reserve: true } }, null);
  assert.deepEqual([next.minimumNext, next.buyNow, next.endsAt, next.startsAt], ['20', null, 'e2', 's2']);
});

const ETH = 10n ** 18n;
const bid = (sequence, leader, price) => ({
  type: 'event',
  sequence,
  event: 'auction.bid_accepted',
  occurred_at: '2026-12-06T10:00:00Z',
  data: { bid_id: `b${sequence}`, bidder: leader, price: String(price), leader, bid_count: sequence, proxy: false },
});

test('an outbid bidder is told once, whether a person or a proxy took the lead', () => {
  const open = fromSnapshot({ status: 'open', price: null, bid_count: 0, ends_at: '2026-12-06T11:00:00Z' }, 1);
  const mine = applyEvent(open, bid(2, 'me', ETH), rules);
  assert.equal(standing(mine, 'me', true), 'leading');
  assert.equal(wasOutbid(open, mine, 'me'), false);
  const theirs = applyEvent(mine, bid(3, 'them', 2n * ETH), rules);
  assert.equal(wasOutbid(mine, theirs, 'me'), true);
  assert.equal(standing(theirs, 'me', true), 'outbid');
  assert.equal(theirs.minimumNext, String(2n * ETH + 5000000000000000n), 'the form offers the new minimum');
  // The next bid by someone else: still outbid, but not told again.
  assert.equal(wasOutbid(theirs, applyEvent(theirs, bid(4, 'third', 3n * ETH), rules), 'me'), false);
  assert.equal(standing(theirs, 'someone', false), null, 'nobody who never bid is outbid');
  assert.equal(standing(theirs, null, true), null);
  // A close after my lead is a win, not an outbid.
  const closed = applyEvent(mine, { sequence: 3, event: 'auction.closed', data: { outcome: 'sold', price: String(ETH), winner: 'me', winner_wallet: '0x1111111111111111111111111111111111111111' } }, rules);
  assert.equal(wasOutbid(mine, closed, 'me'), false);
  assert.equal(standing(closed, 'me', true), 'won');
  assert.equal(standing(closed, 'them', true), 'lost');
});

test('an ended lot says how it ended, from a snapshot after a reload as from the live event', () => {
  const sold = fromSnapshot(
    { status: 'closed', price: String(ETH / 10n + ETH / 100n), outcome: { outcome: 'sold', winner: 'w', winner_wallet: '0xAbCdEf0123456789aBcDeF0123456789AbCdEf01', price: '110000000000000000' } },
    7,
  );
  assert.deepEqual(endedText(sold), { label: 'Sold for', text: 'Sold for 0.11 ETH to 0xAbCd…Ef01.' });
  assert.equal(standing(sold, 'w', false), 'won');
  assert.deepEqual(endedText(sold, { buyNow: '110000000000000000' }), { label: 'Bought now for', text: 'Bought now for 0.11 ETH to 0xAbCd…Ef01.' });
  assert.deepEqual(endedText(sold, { buyNow: String(ETH) }).label, 'Sold for');
  assert.deepEqual(endedText(sold, { buyNow: '100000000000000000' }).label, 'Sold for', 'bid past a buy-now that had gone');
  const below = fromSnapshot({ status: 'closed', price: String(ETH), outcome: { outcome: 'reserve_not_met', highest: String(ETH) } }, 3);
  assert.equal(endedText(below).text, 'Ended below the reserve (highest bid 1 ETH): not sold.');
  assert.equal(endedText(fromSnapshot({ status: 'closed', outcome: { outcome: 'unsold' } }, 1)).text, 'No bids: not sold.');
  assert.equal(endedText(fromSnapshot({ status: 'cancelled' }, 2)).label, 'Withdrawn');
  assert.equal(endedText(fromSnapshot({ status: 'open' }, 2)), null);
});

test('a catalogue card follows the live state: price, bids, end, and how it ended', () => {
  const lot = { id: 'l', status: 'open', start_price: '10000000000000000', ends_at: '2026-12-06T11:00:00Z', summary: { price: null, bid_count: 0, ends_at: '2026-12-06T11:00:00Z', outcome: null } };
  assert.deepEqual(cardPrice(lot), { label: 'Starting at', wei: '10000000000000000' });
  assert.equal(withLiveState(lot, null), lot);
  let state = fromSnapshot({ status: 'open', price: null, bid_count: 0, ends_at: '2026-12-06T11:00:00Z' }, 1);
  state = applyEvent(state, { ...bid(2, 'x', 2n * 10n ** 16n), data: { ...bid(2, 'x', 2n * 10n ** 16n).data, ends_at: '2026-12-06T11:02:00Z' } }, rules);
  const live = withLiveState(lot, state);
  assert.deepEqual(cardPrice(live), { label: 'Current bid', wei: '20000000000000000' });
  assert.equal(live.summary.bid_count, 2);
  assert.equal(live.summary.ends_at, '2026-12-06T11:02:00Z', 'an extension moves the countdown');
  const closed = withLiveState(lot, applyEvent(state, { sequence: 3, event: 'auction.closed', data: { outcome: 'sold', price: '20000000000000000' } }, rules));
  assert.equal(closed.status, 'closed');
  assert.deepEqual(cardPrice(closed), { label: 'Sold for', wei: '20000000000000000' });
  assert.equal(cardPrice({ ...lot, status: 'closed', summary: { outcome: 'unsold' } }).label, 'No bids, started at');
  assert.equal(cardPrice({ ...lot, status: 'cancelled' }).label, 'Withdrawn');
});
