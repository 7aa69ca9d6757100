// A lot's live auction state: built from a `snapshot` and moved on by `event`s, one sequence at a
// time. Pure functions, so the rules are easy to read and to test.

import { shortAddress } from './dom.js';
import { minimumNext, showEth, toWei } from './wei.js';

/**
 * The buy-now price while it is on offer: once the bidding has reached it, buy-now is gone (as
 * the engine rules), so nobody can buy below the standing price.
 */
export function buyNowOffered(buyNow, price) {
  const limit = toWei(buyNow);
  if (limit === null) return null;
  const current = toWei(price);
  return current === null || current < limit ? buyNow : null;
}

/** The state a `snapshot` (or the bids REST snapshot) describes, at `sequence`. */
export function fromSnapshot(lot, sequence) {
  return {
    status: lot.status ?? 'open',
    price: lot.price ?? null,
    leader: lot.leader ?? null,
    bidCount: Number(lot.bid_count ?? 0),
    minimumNext: lot.minimum_next ?? null,
    endsAt: lot.ends_at ?? null,
    startsAt: lot.starts_at ?? null,
    buyNow: buyNowOffered(lot.buy_now ?? null, lot.price ?? null),
    reserveMet: lot.reserve_met ?? null,
    outcome: lot.outcome?.outcome ?? null,
    winner: lot.outcome?.winner ?? null,
    winnerWallet: lot.outcome?.winner_wallet ?? null,
    sequence: Number(sequence ?? lot.sequence ?? 0),
  };
}

/**
 * The state after `frame` (an `event` message: {sequence, event, occurred_at, data}). `rules`
 * ({increment, start_price} from the lots API) lets the next minimum be computed after a bid;
 * without them it is unknown (null) until the next snapshot.
 */
export function applyEvent(state, frame, rules) {
  const data = frame.data ?? {};
  const next = { ...state, sequence: Number(frame.sequence) };
  switch (frame.event) {
    case 'auction.opened':
      next.status = 'open';
      if (data.ends_at) next.endsAt = data.ends_at;
      break;
    case 'auction.bid_accepted':
      if (next.status === 'scheduled') next.status = 'open';
      next.price = data.price ?? next.price;
      next.leader = data.leader ?? next.leader;
      next.bidCount = Number(data.bid_count ?? next.bidCount + 1);
      if (data.ends_at) next.endsAt = data.ends_at;
      if (typeof data.reserve_met === 'boolean' && next.reserveMet !== null) {
        next.reserveMet = data.reserve_met;
      }
      next.minimumNext = rules
        ? minimumNext({ price: next.price, startPrice: rules.start_price, increment: rules.increment })?.toString() ?? null
        : null;
      next.buyNow = buyNowOffered(next.buyNow, next.price);
      break;
    case 'auction.updated':
      // The seller changed the lot before its first bid: new start, end, price rules.
      if (data.starts_at) next.startsAt = data.starts_at;
      if (data.ends_at) next.endsAt = data.ends_at;
      next.buyNow = buyNowOffered(data.buy_now ?? null, next.price);
      if (data.start_price && next.price === null) next.minimumNext = data.start_price;
      if (data.has_reserve === false) next.reserveMet = null;
      break;
    case 'auction.closed':
      next.status = 'closed';
      next.buyNow = null;
      next.outcome = data.outcome ?? null;
      next.winner = data.winner ?? null;
      next.winnerWallet = data.winner_wallet ?? null;
      if (data.outcome === 'sold' && data.price) next.price = data.price;
      if (data.closed_at) next.endsAt = data.closed_at;
      next.minimumNext = null;
      break;
    case 'auction.cancelled':
      next.status = 'cancelled';
      next.minimumNext = null;
      break;
    default:
      break;
  }
  return next;
}

/**
 * Where `me` (an account id) stands on a lot: 'leading' or 'outbid' while it is open, 'won' or
 * 'lost' once it ended; null when `me` is signed out or never bid on it (`haveBid`).
 */
export function standing(state, me, haveBid) {
  if (!state || !me) return null;
  const leads = state.leader === me;
  if (state.status === 'open' || state.status === 'scheduled') {
    if (leads) return 'leading';
    return haveBid ? 'outbid' : null;
  }
  if (state.status === 'closed' && state.outcome === 'sold' && (state.winner ?? state.leader) === me) return 'won';
  return haveBid || leads ? 'lost' : null;
}

/** Whether the step from `before` to `after` took the lead away from `me` while bidding goes on. */
export function wasOutbid(before, after, me) {
  return Boolean(me && before && after && before.leader === me && after.leader !== me && after.status === 'open');
}

/**
 * How an ended lot ended, in words: `{label, text}` (`label` goes above the price), or null while
 * it is not over. `buyNow` is the lot's buy-now price: a sale at it was a purchase, not a win.
 */
export function endedText(state, { buyNow = null } = {}) {
  if (!state) return null;
  if (state.status === 'cancelled') return { label: 'Withdrawn', text: 'The seller withdrew this lot.' };
  if (state.status !== 'closed') return null;
  const price = state.price ? showEth(state.price) : null;
  switch (state.outcome) {
    case 'sold': {
      const to = state.winnerWallet ? ` to ${shortAddress(state.winnerWallet)}` : '';
      // A sale at exactly the buy-now price: a bid of it bought the lot (a proxy raise that reached
      // it would have to stop there exactly, which the increments make rare).
      const limit = toWei(buyNow);
      const current = toWei(state.price);
      if (limit !== null && current !== null && current === limit) {
        return { label: 'Bought now for', text: `Bought now for ${price}${to}.` };
      }
      return { label: 'Sold for', text: `Sold for ${price}${to}.` };
    }
    case 'reserve_not_met':
      return { label: 'Highest bid', text: `Ended below the reserve${price ? ` (highest bid ${price})` : ''}: not sold.` };
    case 'unsold':
      return { label: 'Starting price', text: 'No bids: not sold.' };
    default:
      return { label: 'Final price', text: 'The auction has ended.' };
  }
}

/** A history row from an `auction.bid_accepted` event, shaped like `GET .../bids` rows. */
export function bidFromEvent(frame) {
  const data = frame.data ?? {};
  return {
    bid_id: data.bid_id,
    seq: Number(frame.sequence),
    bidder: data.bidder,
    wallet: data.wallet ?? null,
    amount: data.amount,
    proxy: Boolean(data.proxy),
    placed_at: data.at ?? frame.occurred_at,
  };
}

/** An event from the bids log (`GET .../events`, an envelope) as an `event` message. */
export function eventFromEnvelope(envelope, lotId) {
  return {
    type: 'event',
    lot_id: envelope.aggregate_id ?? lotId,
    sequence: Number(envelope.sequence),
    event: envelope.type,
    occurred_at: envelope.occurred_at,
    data: envelope.payload ?? {},
  };
}

/** A catalogue lot (the lots API's shape) with the live state from the socket laid over it. */
export function withLiveState(lot, state) {
  if (!state) return lot;
  const summary = lot.summary ?? {};
  return {
    ...lot,
    status: state.status ?? lot.status,
    summary: {
      ...summary,
      price: state.price ?? summary.price ?? null,
      bid_count: state.bidCount ?? summary.bid_count ?? 0,
      ends_at: state.endsAt ?? summary.ends_at ?? lot.ends_at,
      outcome: state.outcome ?? summary.outcome ?? null,
    },
  };
}

/** What a catalogue card shows as its price: `{label, wei}`. */
export function cardPrice(lot) {
  const price = lot.summary?.price ?? null;
  if (lot.status === 'closed') {
    switch (lot.summary?.outcome) {
      case 'sold':
        return { label: 'Sold for', wei: price };
      case 'reserve_not_met':
        return { label: 'Not sold, highest bid', wei: price };
      default:
        return { label: 'No bids, started at', wei: lot.start_price };
    }
  }
  if (lot.status === 'cancelled') return { label: 'Withdrawn', wei: price ?? lot.start_price };
  return price ? { label: 'Current bid', wei: price } : { label: 'Starting at', wei: lot.start_price };
}
