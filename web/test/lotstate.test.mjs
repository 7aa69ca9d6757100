import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyEvent, bidFromEvent, buyNowOffered, eventFromEnvelope, fromSnapshot } from '../src/lotstate.js';

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
