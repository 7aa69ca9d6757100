// The lots this browser has bid on, per account, so that being outbid on any of them is told
// wherever the bidder is on the site (a toast), not only on that lot's page. Kept in localStorage;
// the lots are watched over the tab's one WebSocket until they end.

import { wasOutbid } from './lotstate.js';
import { showEth } from './wei.js';

const KEY = 'gavel.my-bids.v1';
/** Lots remembered at most: the gateway bounds a connection's subscriptions (32), which the
 * catalogue's live cards (16) and the open lot page share. */
export const MAX_LOTS = 12;

/** The remembered lots of `accountId`: [{lotId, title, ended}], the most recent first. */
export function myBidLots(accountId, storage = globalThis.localStorage) {
  if (!accountId) return [];
  try {
    const all = JSON.parse(storage.getItem(KEY) ?? '{}');
    const lots = all?.[accountId];
    return Array.isArray(lots) ? lots.filter((lot) => typeof lot?.lotId === 'string') : [];
  } catch {
    return [];
  }
}

function save(accountId, lots, storage) {
  let all;
  try {
    all = JSON.parse(storage.getItem(KEY) ?? '{}') ?? {};
  } catch {
    all = {};
  }
  if (lots.length) all[accountId] = lots;
  else delete all[accountId];
  storage.setItem(KEY, JSON.stringify(all));
}

/**
 * Remembers that `accountId` bid on `lotId` (first in the list). Beyond MAX_LOTS the oldest ended
 * lots go first, then the oldest open ones.
 */
export function rememberBid(accountId, lotId, title, storage = globalThis.localStorage) {
  if (!accountId || !lotId) return;
  const lots = myBidLots(accountId, storage).filter((lot) => lot.lotId !== lotId);
  lots.unshift({ lotId, title: title ?? null });
  while (lots.length > MAX_LOTS) {
    const ended = lots.findLastIndex((lot) => lot.ended);
    lots.splice(ended >= 0 ? ended : lots.length - 1, 1);
  }
  save(accountId, lots, storage);
}

/** Marks a lot as ended: there is nothing left to be outbid on, so it is no longer watched. */
export function markEnded(accountId, lotId, storage = globalThis.localStorage) {
  if (!accountId) return;
  const lots = myBidLots(accountId, storage);
  save(accountId, lots.map((lot) => (lot.lotId === lotId ? { ...lot, ended: true } : lot)), storage);
}

/**
 * Watches the signed-in account's remembered lots: `tell({lotId, title, price})` when someone
 * takes the lead from it on one of them. `shownLot()` is the lot whose page is open (its page
 * tells by itself). Follows sign-in changes and new bids (`changed` emitter 'remembered').
 */
export function watchMyBids({ socket, session, tell, shownLot, changed }) {
  const watching = new Map(); // lotId -> {stop, last}
  let owner = null; // the account the watches are for

  function sync() {
    const me = session.current?.accountId ?? null;
    if (me !== owner) {
      // Another account: its own lots, its own standing in them.
      for (const entry of watching.values()) entry.stop();
      watching.clear();
      owner = me;
    }
    const wanted = new Map(myBidLots(me).filter((lot) => !lot.ended).map((lot) => [lot.lotId, lot]));
    for (const [lotId, entry] of watching) {
      if (!wanted.has(lotId)) {
        entry.stop();
        watching.delete(lotId);
      }
    }
    for (const [lotId, lot] of wanted) {
      if (watching.has(lotId)) continue;
      const entry = { last: null, stop: null };
      entry.stop = socket.watch(lotId, (feed, message) => {
        const state = feed.state;
        if (!state) return;
        const before = entry.last;
        entry.last = state;
        if (message.type === 'event' && wasOutbid(before, state, me) && shownLot() !== lotId) {
          tell({ lotId, title: lot.title, price: showEth(state.price) });
        }
        if (state.status === 'closed' || state.status === 'cancelled') {
          // Nothing to be outbid on any more; the lot's page still shows how it ended.
          queueMicrotask(() => {
            markEnded(me, lotId);
            sync();
          });
        }
      });
      watching.set(lotId, entry);
    }
  }

  const stops = [session.on('change', sync), changed.on('remembered', sync)];
  sync();
  return () => {
    for (const stop of stops) stop();
    for (const entry of watching.values()) entry.stop();
    watching.clear();
  };
}
