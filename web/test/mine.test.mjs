import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStorage } from './storage.mjs';
import { endedLine, groupMyLots, isWatched, MAX_WATCHED, sellingLine, toggleWatch, watched, watchingLine, wonLine } from '../src/mine.js';


const ETH = 10n ** 18n;

test('the lots an account bid on fall into bidding, won and ended', () => {
  const lots = [
    { lot_id: 'a', status: 'open', leading: true },
    { lot_id: 'b', status: 'scheduled', leading: false },
    { lot_id: 'c', status: 'closed', outcome: 'sold', won: true },
    { lot_id: 'd', status: 'closed', outcome: 'sold', won: false, price: String(ETH) },
    { lot_id: 'e', status: 'cancelled', won: false },
  ];
  const groups = groupMyLots(lots);
  assert.deepEqual(
    Object.fromEntries(Object.entries(groups).map(([name, list]) => [name, list.map((lot) => lot.lot_id)])),
    { bidding: ['a', 'b'], won: ['c'], ended: ['d', 'e'] },
  );
  assert.equal(endedLine(lots[3]), 'Sold to another bidder for 1 ETH');
  assert.equal(endedLine(lots[4]), 'Withdrawn by the seller');
  assert.deepEqual(wonLine({ status: 'awaiting', amount: String(ETH / 10n) }), { state: 'to_pay', text: 'To pay: 0.1 ETH' });
  assert.equal(wonLine({ status: 'confirmed' }).state, 'paid');
  assert.equal(wonLine(null).state, 'unknown');
});

test('a seller sees each lot in words, and may withdraw only one without bids that is not over', () => {
  const lot = (status, summary = {}) => ({ status, summary: { bid_count: 0, price: null, ...summary } });
  assert.deepEqual(sellingLine(lot('open')), { state: 'open', text: 'Open, no bids yet', withdrawable: true });
  assert.equal(sellingLine(lot('scheduled')).withdrawable, true);
  assert.deepEqual(sellingLine(lot('open', { bid_count: 2, price: String(ETH) })), { state: 'open', text: '2 bids, now 1 ETH', withdrawable: false });
  const sold = lot('closed', { bid_count: 1, price: String(ETH), outcome: 'sold' });
  assert.equal(sellingLine(sold).text, 'Sold for 1 ETH, awaiting payment');
  assert.equal(sellingLine(sold, { status: 'confirmed' }).state, 'paid');
  assert.equal(sellingLine(sold, { status: 'defaulted' }).state, 'defaulted');
  assert.equal(sellingLine(lot('closed', { outcome: 'unsold' })).text, 'Ended without a bid');
  assert.equal(sellingLine(lot('cancelled')).state, 'withdrawn');
});

test('the watchlist toggles, keeps the newest first and stays bounded', () => {
  const storage = new MemoryStorage();
  assert.equal(toggleWatch('l1', 'Lamp', storage), true);
  assert.equal(toggleWatch('l2', 'Chair', storage), true);
  assert.deepEqual(watched(storage).map((item) => item.lotId), ['l2', 'l1']);
  assert.equal(toggleWatch('l1', 'Lamp', storage), false);
  assert.equal(isWatched('l1', storage), false);
  for (let i = 0; i < MAX_WATCHED + 3; i += 1) toggleWatch(`many-${i}`, null, storage);
  assert.equal(watched(storage).length, MAX_WATCHED);
  storage.setItem('gavel.watchlist.v1', '{broken');
  assert.deepEqual(watched(storage), []);
});

test('a watched lot is put in a few words', () => {
  const now = Date.parse('2026-12-06T10:00:00Z');
  assert.equal(watchingLine({ status: 'open', price: String(ETH), ends_at: '2026-12-06T10:05:00Z' }, now), 'now 1 ETH, ends in 5m 00s');
  assert.equal(watchingLine({ status: 'open', price: null, ends_at: '2026-12-06T09:00:00Z' }, now), 'no bids yet, ending');
  assert.equal(watchingLine({ status: 'closed' }, now), 'ended');
  assert.equal(watchingLine(null, now), '');
});
