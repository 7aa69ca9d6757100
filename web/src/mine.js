// "My auctions", without the DOM: the lots the account bid on put into groups, the watchlist kept
// in this browser, and what a seller's lot and its payment come to, in words.

import { formatDuration } from './clock.js';
import { showEth } from './wei.js';

const WATCHLIST = 'gavel.watchlist.v1';
/** Lots kept in the watchlist at most. */
export const MAX_WATCHED = 50;

/**
 * The account's lots (`GET /api/auction/bidders/me/lots`) in the page's groups: `bidding` (open
 * or coming up, leading or not), `won`, and `ended` (lost, or not sold).
 */
export function groupMyLots(lots) {
  const groups = { bidding: [], won: [], ended: [] };
  for (const lot of lots ?? []) {
    if (lot.status === 'open' || lot.status === 'scheduled') groups.bidding.push(lot);
    else if (lot.won) groups.won.push(lot);
    else groups.ended.push(lot);
  }
  return groups;
}

/** How a lot the account bid on and did not win ended. */
export function endedLine(lot) {
  if (lot.status === 'cancelled') return 'Withdrawn by the seller';
  switch (lot.outcome) {
    case 'sold':
      return `Sold to another bidder for ${showEth(lot.price)}`;
    case 'reserve_not_met':
      return `Ended below the reserve at ${showEth(lot.price)}: not sold`;
    default:
      return 'Ended';
  }
}

/** What a winner's payment comes to: `{state, text}`; `payment` null while it is unknown. */
export function wonLine(payment) {
  if (!payment) return { state: 'unknown', text: 'Payment: checking…' };
  switch (payment.status) {
    case 'confirmed':
      return { state: 'paid', text: 'Paid' };
    case 'defaulted':
      return { state: 'defaulted', text: 'Not paid in time: the sale is void' };
    default:
      return { state: 'to_pay', text: `To pay: ${showEth(payment.amount)}` };
  }
}

/**
 * A seller's lot (the lots API's view) in words, with its payment once sold: `{state, text,
 * withdrawable}`. A lot can be withdrawn while it has no bid and has not ended.
 */
export function sellingLine(lot, payment = null) {
  const bids = Number(lot.summary?.bid_count ?? 0);
  const price = lot.summary?.price ?? null;
  const withdrawable = (lot.status === 'open' || lot.status === 'scheduled') && bids === 0;
  switch (lot.status) {
    case 'scheduled':
      return { state: 'scheduled', text: 'Coming up', withdrawable };
    case 'open':
      return bids
        ? { state: 'open', text: `${bids} ${bids === 1 ? 'bid' : 'bids'}, now ${showEth(price)}`, withdrawable }
        : { state: 'open', text: 'Open, no bids yet', withdrawable };
    case 'cancelled':
      return { state: 'withdrawn', text: 'Withdrawn', withdrawable: false };
    case 'closed':
      if (lot.summary?.outcome !== 'sold') {
        return { state: 'unsold', text: lot.summary?.outcome === 'reserve_not_met' ? 'Ended below the reserve: not sold' : 'Ended without a bid', withdrawable: false };
      }
      if (payment?.status === 'confirmed') return { state: 'paid', text: `Sold for ${showEth(price)}: paid`, withdrawable: false };
      if (payment?.status === 'defaulted') return { state: 'defaulted', text: `Sold for ${showEth(price)}: not paid in time`, withdrawable: false };
      return { state: 'awaiting', text: `Sold for ${showEth(price)}, awaiting payment`, withdrawable: false };
    default:
      return { state: lot.status, text: lot.status, withdrawable: false };
  }
}

/** "ends in 5m 00s", "ending" once past, '' for no end. */
export function endsIn(iso, now) {
  const left = Date.parse(iso) - now;
  return Number.isNaN(left) ? '' : left > 0 ? `ends in ${formatDuration(left)}` : 'ending';
}

/** A watched lot's state (the bids snapshot, or null while unknown) in a few words. */
export function watchingLine(state, now) {
  if (!state) return '';
  switch (state.status) {
    case 'open': {
      const ends = endsIn(state.ends_at, now);
      return `${state.price ? `now ${showEth(state.price)}` : 'no bids yet'}${ends ? `, ${ends}` : ''}`;
    }
    case 'scheduled':
      return 'coming up';
    case 'cancelled':
      return 'withdrawn';
    default:
      return 'ended';
  }
}

/** The lots watched from this browser: [{lotId, title}], the most recently added first. */
export function watched(storage = globalThis.localStorage) {
  try {
    const list = JSON.parse(storage.getItem(WATCHLIST) ?? '[]');
    return Array.isArray(list) ? list.filter((item) => typeof item?.lotId === 'string') : [];
  } catch {
    return [];
  }
}

export function isWatched(lotId, storage = globalThis.localStorage) {
  return watched(storage).some((item) => item.lotId === lotId);
}

/** Adds the lot to the watchlist or takes it out; answers whether it is watched now. */
export function toggleWatch(lotId, title, storage = globalThis.localStorage) {
  const list = watched(storage);
  const present = list.some((item) => item.lotId === lotId);
  const next = present ? list.filter((item) => item.lotId !== lotId) : [{ lotId, title: title ?? null }, ...list].slice(0, MAX_WATCHED);
  storage.setItem(WATCHLIST, JSON.stringify(next));
  return !present;
}
