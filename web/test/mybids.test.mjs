import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStorage } from './storage.mjs';
import { MAX_LOTS, markEnded, myBidLots, rememberBid, watchMyBids } from '../src/mybids.js';
import { Emitter } from '../src/dom.js';


test('the lots an account bid on are remembered per account, newest first, bounded', () => {
  const storage = new MemoryStorage();
  rememberBid('me', 'lot-1', 'Lamp', storage);
  rememberBid('me', 'lot-2', 'Chair', storage);
  rememberBid('you', 'lot-3', 'Desk', storage);
  rememberBid('me', 'lot-1', 'Lamp', storage);
  assert.deepEqual(myBidLots('me', storage).map((lot) => lot.lotId), ['lot-1', 'lot-2']);
  assert.deepEqual(myBidLots('you', storage).map((lot) => lot.lotId), ['lot-3']);
  assert.deepEqual(myBidLots(null, storage), []);
  markEnded('me', 'lot-2', storage);
  assert.equal(myBidLots('me', storage).find((lot) => lot.lotId === 'lot-2').ended, true);
  for (let i = 0; i < MAX_LOTS + 5; i += 1) rememberBid('me', `many-${i}`, null, storage);
  assert.equal(myBidLots('me', storage).length, MAX_LOTS);
  // Ended lots make room first: an open lot bid on long ago stays while an ended one goes.
  const fresh = new MemoryStorage();
  rememberBid('me', 'old-open', null, fresh);
  rememberBid('me', 'ended', null, fresh);
  markEnded('me', 'ended', fresh);
  for (let i = 0; i < MAX_LOTS - 1; i += 1) rememberBid('me', `new-${i}`, null, fresh);
  const kept = myBidLots('me', fresh).map((lot) => lot.lotId);
  assert.ok(kept.includes('old-open') && !kept.includes('ended'), kept.join(','));
  storage.setItem('gavel.my-bids.v1', 'not json');
  assert.deepEqual(myBidLots('me', storage), [], 'a damaged list is an empty one');
});

test('being outbid on a watched lot is told once, and not for the lot on screen', async () => {
  const storage = new MemoryStorage();
  globalThis.localStorage = storage;
  rememberBid('me', 'lot-1', 'Lamp');
  rememberBid('me', 'lot-2', 'Chair');
  const listeners = new Map();
  const socket = {
    watch(lotId, listener) {
      listeners.set(lotId, listener);
      return () => listeners.delete(lotId);
    },
  };
  const session = new Emitter();
  session.current = { accountId: 'me' };
  const changed = new Emitter();
  const told = [];
  let shown = 'lot-2';
  const stop = watchMyBids({ socket, session, changed, tell: (what) => told.push(what), shownLot: () => shown });
  assert.deepEqual([...listeners.keys()].sort(), ['lot-1', 'lot-2']);

  const state = (leader, price, status = 'open') => ({ status, leader, price: String(price) });
  for (const lotId of ['lot-1', 'lot-2']) {
    listeners.get(lotId)({ state: state('me', 10n ** 17n) }, { type: 'snapshot' });
    listeners.get(lotId)({ state: state('them', 2n * 10n ** 17n) }, { type: 'event' });
    listeners.get(lotId)({ state: state('third', 3n * 10n ** 17n) }, { type: 'event' });
  }
  assert.deepEqual(told, [{ lotId: 'lot-1', title: 'Lamp', price: '0.2 ETH' }]);

  listeners.get('lot-1')({ state: state('them', 2n * 10n ** 17n, 'closed') }, { type: 'event' });
  await new Promise((resolve) => queueMicrotask(resolve));
  assert.deepEqual([...listeners.keys()], ['lot-2'], 'an ended lot is no longer watched');

  // Another account that also bid on lot-2: its watch is made again, for that account.
  rememberBid('other', 'lot-2', 'Chair');
  session.current = { accountId: 'other' };
  session.emit('change');
  assert.deepEqual([...listeners.keys()], ['lot-2']);
  shown = null;
  listeners.get('lot-2')({ state: state('other', 4n * 10n ** 17n) }, { type: 'snapshot' });
  listeners.get('lot-2')({ state: state('me', 5n * 10n ** 17n) }, { type: 'event' });
  assert.equal(told.length, 2, 'the new account is told when it loses the lead');
  assert.equal(told[1].lotId, 'lot-2');
  session.current = { accountId: 'third' };
  session.emit('change');
  assert.equal(listeners.size, 0, 'an account that bid on nothing watches nothing');
  stop();
});
