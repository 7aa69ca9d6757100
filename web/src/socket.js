// The one WebSocket of this tab (`/ws/v1`, protocol version 1, docs/gateway.md).
//
// - After connecting: `auth` when signed in, `subscribe` for every watched lot (with `since` = the
//   last sequence applied, once there is one), and a `ping` to learn the server's clock.
// - Per lot, events are applied strictly in sequence order: sequence <= last is ignored, a gap is
//   buffered and filled from the bids log over REST, a `snapshot` is a reset.
// - A dropped connection reconnects with jittered exponential backoff; even the first attempt
//   waits a random moment (up to a second), so that thousands of tabs dropped together by a
//   restarting gateway do not all come back in the same instant.
// - A bid has a client-chosen id; unanswered bids are sent again, same id, after reconnecting
//   (the id is the idempotency key: never a second bid).

import { api } from './api.js';
import { addPingSample, addRoughSample } from './clock.js';
import { Emitter } from './dom.js';
import { applyEvent, eventFromEnvelope, fromSnapshot } from './lotstate.js';

const PING_EVERY_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;
const STABLE_AFTER_MS = 5_000;
const MAX_BACKOFF_MS = 30_000;
/** The first reconnect comes within this, at a random moment. */
const FIRST_SPREAD_MS = 1_000;

/**
 * How long to wait before reconnecting after `failures` failed attempts, for a close `code`;
 * `random` is a number in [0, 1). Exported for tests.
 */
export function reconnectDelay(code, failures, random = Math.random()) {
  if (code === 1008) {
    // Too many messages: come back slowly.
    const ceiling = Math.min(MAX_BACKOFF_MS, 5_000 * 2 ** Math.min(failures, 3));
    return ceiling / 2 + (random * ceiling) / 2;
  }
  if (failures === 0) return random * FIRST_SPREAD_MS;
  const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** (failures - 1));
  return ceiling / 2 + (random * ceiling) / 2;
}
const UPSTREAM_RETRIES = 3;

export class BidError extends Error {
  constructor(frame) {
    super(frame.message || frame.title || frame.code || 'The bid was refused');
    this.name = 'BidError';
    this.code = frame.code ?? 'error';
    this.frame = frame;
  }
}

/** A bid id: 1–64 of [A-Za-z0-9_-]. */
export function newBidId() {
  if (typeof crypto.randomUUID === 'function') return `b-${crypto.randomUUID()}`;
  // randomUUID exists only in secure contexts (https, localhost); a phone on http://192.168… has not.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `b-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** One watched lot: its ordered event stream and the state it leads to. */
class LotFeed {
  constructor(lotId) {
    this.lotId = lotId;
    this.last = null; // last sequence applied
    this.state = null;
    this.rules = null; // {increment, start_price} from the lots API, for the next minimum
    this.buffer = new Map(); // sequence -> event frame that came early
    this.listeners = new Set();
    this.acked = false; // `subscribed` seen on the current connection
    this.watchers = null;
    this.filling = null;
  }
}

export class LiveSocket extends Emitter {
  /** The source of reconnect jitter (tests pin it). */
  static random = Math.random;

  state = 'idle'; // 'connecting' | 'live' | 'reconnecting' | 'offline'
  authenticated = null; // {account_id, wallet, expires_at} once `authenticated`
  limits = null;
  #url;
  #getToken;
  #ws = null;
  #failures = 0;
  #openedAt = 0;
  #reconnectTimer = null;
  #pingTimer = null;
  #pings = new Map(); // ping id -> {sentAt, timeout}
  #pingCount = 0;
  #feeds = new Map();
  #bids = new Map(); // id -> {frame, resolve, reject, sent, retries}
  #sentToken = null;
  #everConnected = false;
  #stopped = false;

  constructor({ url, getToken }) {
    super();
    this.#url = url;
    this.#getToken = getToken;
    window.addEventListener('online', () => {
      if (!this.#ws) this.#connectNow();
    });
    window.addEventListener('offline', () => this.#setState('offline'));
  }

  start() {
    this.#stopped = false;
    if (!this.#ws && !this.#reconnectTimer) this.#connect();
  }

  // --- connection -------------------------------------------------------------------------

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  #connectNow() {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#connect();
  }

  #connect() {
    this.#reconnectTimer = null;
    if (this.#stopped) return;
    if (navigator.onLine === false) {
      this.#setState('offline');
      return; // the `online` event connects
    }
    this.#setState(this.#everConnected ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.#url);
    } catch (error) {
      console.error('cannot open the WebSocket', error);
      this.#scheduleReconnect(1006);
      return;
    }
    this.#ws = ws;
    ws.onopen = () => this.#onOpen(ws);
    ws.onmessage = (message) => this.#onMessage(ws, message);
    ws.onclose = (event) => this.#onClose(ws, event.code, event.reason);
    ws.onerror = () => {}; // a `close` follows with the code
  }

  #onOpen(ws) {
    if (ws !== this.#ws) return;
    this.#openedAt = Date.now();
    this.#everConnected = true;
    this.authenticated = null;
    this.#sentToken = null;
    this.#sendAuth();
    for (const feed of this.#feeds.values()) this.#sendSubscribe(feed);
    this.#ping();
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => this.#ping(), PING_EVERY_MS);
  }

  #onClose(ws, code, reason) {
    if (ws !== this.#ws) return;
    this.#detach(ws);
    if (code === 1009 || code === 1003) {
      console.error(`the gateway closed the socket: ${code} ${reason} (a client bug)`);
    }
    this.#scheduleReconnect(code);
  }

  /** Forgets `ws` (and everything tied to that connection) without waiting for its close. */
  #detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (this.#ws === ws) this.#ws = null;
    clearInterval(this.#pingTimer);
    for (const ping of this.#pings.values()) clearTimeout(ping.timeout);
    this.#pings.clear();
    this.authenticated = null;
    this.#sentToken = null;
    for (const feed of this.#feeds.values()) feed.acked = false;
    let waiting = 0;
    for (const bid of this.#bids.values()) {
      if (bid.sent) waiting += 1;
      bid.sent = false; // sent again, same id, once authenticated on the next connection
    }
    if (waiting) this.emit('bids-waiting', waiting);
  }

  #scheduleReconnect(code) {
    if (this.#reconnectTimer || this.#stopped) return;
    const lived = this.#openedAt ? Date.now() - this.#openedAt : 0;
    this.#openedAt = 0;
    if (lived >= STABLE_AFTER_MS) this.#failures = 0;
    const delay = reconnectDelay(code, this.#failures, LiveSocket.random());
    this.#failures += 1;
    this.#setState(navigator.onLine === false ? 'offline' : 'reconnecting');
    this.emit('reconnect-in', delay);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  /** Closes the connection for good (no reconnecting). */
  stop() {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    const ws = this.#ws;
    if (ws) {
      this.#detach(ws);
      try {
        ws.close(1000, 'bye');
      } catch {
        /* already closing */
      }
    }
    this.#setState('idle');
  }

  /** Drops the current connection and opens a new one at once (e.g. after signing out). */
  restart() {
    const ws = this.#ws;
    if (ws) {
      this.#detach(ws);
      try {
        ws.close(1000, 'restart');
      } catch {
        /* already closing */
      }
    }
    this.#failures = 0;
    this.#connectNow();
  }

  #send(frame) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    const text = JSON.stringify(frame);
    if (this.limits?.max_frame_bytes && new TextEncoder().encode(text).length > this.limits.max_frame_bytes) {
      console.error('frame over the gateway limit, not sent', frame.type);
      return false;
    }
    ws.send(text);
    return true;
  }

  #ping() {
    this.#pingCount += 1;
    const id = `p${this.#pingCount}`;
    const sentAt = Date.now();
    if (!this.#send({ type: 'ping', id })) return;
    const ws = this.#ws;
    const timeout = setTimeout(() => {
      // No answer: the connection is dead even if the browser has not noticed.
      if (this.#ws === ws) {
        this.#detach(ws);
        try {
          ws.close(4000, 'no pong');
        } catch {
          /* ignore */
        }
        this.#scheduleReconnect(1006);
      }
    }, PONG_TIMEOUT_MS);
    this.#pings.set(id, { sentAt, timeout });
  }

  // --- authentication ---------------------------------------------------------------------

  #sendAuth() {
    const token = this.#getToken();
    if (!token || token === this.#sentToken) return;
    if (this.#send({ type: 'auth', token })) this.#sentToken = token;
  }

  /** The session changed: authenticate with the new token, or start anonymous again. */
  sessionChanged() {
    const token = this.#getToken();
    if (!token) {
      for (const [id, bid] of this.#bids) {
        this.#bids.delete(id);
        bid.reject(new BidError({ code: 'unauthorized', message: 'Signed out' }));
      }
      if (this.authenticated || this.#sentToken) this.restart();
      return;
    }
    if (this.#sentToken && token !== this.#sentToken) {
      // Another identity (or a renewed token): start a clean connection rather than re-`auth`
      // over an authenticated one; subscriptions resume with `since`, waiting bids are resent.
      this.restart();
      return;
    }
    this.#sendAuth();
  }

  // --- messages ---------------------------------------------------------------------------

  #onMessage(ws, message) {
    if (ws !== this.#ws) return;
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      console.warn('not JSON from the gateway', message.data);
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    switch (frame.type) {
      case 'welcome':
        this.limits = frame.limits ?? null;
        if (frame.server_time) addRoughSample(frame.server_time);
        if (frame.protocol !== undefined && frame.protocol !== 1) {
          console.warn(`the gateway speaks protocol ${frame.protocol}; this client speaks 1`);
        }
        this.#setState('live');
        this.emit('welcome', frame);
        break;
      case 'pong': {
        const ping = this.#pings.get(frame.id);
        if (ping) {
          clearTimeout(ping.timeout);
          this.#pings.delete(frame.id);
          addPingSample(frame.server_time, ping.sentAt, Date.now());
          this.emit('clock');
        }
        if (this.state !== 'live') this.#setState('live');
        break;
      }
      case 'authenticated':
        this.authenticated = {
          account_id: frame.account_id,
          wallet: frame.wallet,
          expires_at: frame.expires_at,
        };
        this.emit('authenticated', this.authenticated);
        this.#flushBids();
        break;
      case 'snapshot':
        this.#onSnapshot(frame);
        break;
      case 'event':
        this.#onEvent(frame);
        break;
      case 'subscribed':
        this.#onSubscribed(frame);
        break;
      case 'presence': {
        const feed = this.#feeds.get(frame.lot_id);
        if (feed) {
          feed.watchers = frame.watchers;
          this.#notify(feed, { type: 'presence', watchers: frame.watchers });
        }
        break;
      }
      case 'unsubscribed':
        break;
      case 'bid_result':
        this.#onBidResult(frame);
        break;
      case 'error':
        this.#onError(frame);
        break;
      default:
        console.debug('unknown message from the gateway', frame.type);
    }
  }

  #onError(frame) {
    if (frame.id && this.#bids.has(frame.id)) {
      this.#onBidError(frame);
      return;
    }
    if (frame.code === 'unauthorized' && !frame.id) {
      // The token was refused (expired, or signed by another key).
      this.#sentToken = null;
      this.authenticated = null;
      for (const [id, bid] of this.#bids) {
        this.#bids.delete(id);
        bid.reject(new BidError(frame));
      }
      this.emit('auth-refused', frame);
      return;
    }
    const feed = frame.lot_id ? this.#feeds.get(frame.lot_id) : null;
    const affected = feed ? [feed] : [...this.#feeds.values()].filter((f) => !f.acked);
    if (['lot_not_found', 'too_many_subscriptions', 'upstream_unavailable', 'invalid'].includes(frame.code) && affected.length) {
      for (const f of affected) {
        this.#notify(f, { type: 'error', error: frame });
        if (frame.code === 'upstream_unavailable') {
          // The snapshot could not be read: ask again shortly.
          setTimeout(() => {
            if (this.#feeds.get(f.lotId) === f && !f.acked) this.#sendSubscribe(f);
          }, 2_000);
        }
      }
      return;
    }
    console.warn('gateway error', frame);
    this.emit('error', frame);
  }

  // --- lots -------------------------------------------------------------------------------

  /**
   * Watches `lotId`: `listener(feed, message)` is called with the feed (its `state`, `watchers`)
   * after every change; `message` says what changed. Returns the function that stops watching.
   */
  watch(lotId, listener) {
    let feed = this.#feeds.get(lotId);
    if (!feed) {
      feed = new LotFeed(lotId);
      this.#feeds.set(lotId, feed);
      this.#sendSubscribe(feed);
    } else if (feed.state) {
      queueMicrotask(() => listener(feed, { type: 'snapshot' }));
    }
    feed.listeners.add(listener);
    return () => {
      feed.listeners.delete(listener);
      if (feed.listeners.size === 0 && this.#feeds.get(lotId) === feed) {
        this.#feeds.delete(lotId);
        this.#send({ type: 'unsubscribe', lot_id: lotId });
      }
    };
  }

  /** Gives a watched lot its rules, so the next minimum can follow bids without a snapshot. */
  setRules(lotId, rules) {
    const feed = this.#feeds.get(lotId);
    if (!feed) return;
    feed.rules = rules;
  }

  #sendSubscribe(feed) {
    const frame = { type: 'subscribe', lot_id: feed.lotId };
    if (feed.last !== null) frame.since = feed.last;
    this.#send(frame);
  }

  #notify(feed, message) {
    for (const listener of [...feed.listeners]) {
      try {
        listener(feed, message);
      } catch (error) {
        console.error('lot listener failed', error);
      }
    }
  }

  #onSnapshot(frame) {
    const feed = this.#feeds.get(frame.lot_id);
    if (!feed) return;
    if (frame.lot?.server_time) addRoughSample(frame.lot.server_time);
    this.#reset(feed, frame.lot ?? {}, frame.sequence);
  }

  /** A snapshot resets the lot: what came before it no longer matters. */
  #reset(feed, lot, sequence) {
    feed.state = fromSnapshot(lot, sequence);
    feed.last = feed.state.sequence;
    for (const seq of [...feed.buffer.keys()]) if (seq <= feed.last) feed.buffer.delete(seq);
    this.#notify(feed, { type: 'snapshot' });
    this.#drain(feed);
  }

  #onEvent(frame) {
    const feed = this.#feeds.get(frame.lot_id);
    if (!feed) return;
    this.#accept(feed, frame);
  }

  /** Takes one event: applies it if it is the next, keeps it if early, ignores it if old. */
  #accept(feed, frame) {
    const sequence = Number(frame.sequence);
    if (!Number.isInteger(sequence)) return;
    if (feed.last !== null && sequence <= feed.last) return; // seen already
    if (feed.state === null || sequence !== feed.last + 1) {
      feed.buffer.set(sequence, frame);
      if (feed.state !== null) this.#fillGap(feed);
      return;
    }
    this.#apply(feed, frame);
    this.#drain(feed);
  }

  #apply(feed, frame) {
    feed.state = applyEvent(feed.state, frame, feed.rules);
    feed.last = feed.state.sequence;
    this.#notify(feed, { type: 'event', event: frame });
  }

  #drain(feed) {
    while (feed.last !== null && feed.buffer.has(feed.last + 1)) {
      const frame = feed.buffer.get(feed.last + 1);
      feed.buffer.delete(feed.last + 1);
      this.#apply(feed, frame);
    }
    for (const seq of [...feed.buffer.keys()]) if (seq <= feed.last) feed.buffer.delete(seq);
    if (feed.buffer.size) this.#fillGap(feed);
  }

  #onSubscribed(frame) {
    const feed = this.#feeds.get(frame.lot_id);
    if (!feed) return;
    feed.acked = true;
    if (typeof frame.watchers === 'number') feed.watchers = frame.watchers;
    this.#notify(feed, { type: 'subscribed', watchers: feed.watchers });
    const sent = Number(frame.sequence);
    if (feed.state === null || (Number.isInteger(sent) && sent > feed.last)) this.#fillGap(feed);
  }

  /**
   * The gateway promises no gaps; should one appear all the same (or a subscription come without
   * its snapshot), the missing events are read from the bids log, in order.
   */
  #fillGap(feed) {
    if (feed.filling) return;
    feed.filling = (async () => {
      try {
        if (feed.state === null) {
          const lot = await api.auctionState(feed.lotId);
          if (this.#feeds.get(feed.lotId) !== feed) return;
          if (feed.state === null) this.#reset(feed, lot, lot.sequence);
        }
        for (let round = 0; round < 10 && this.#feeds.get(feed.lotId) === feed; round += 1) {
          const needed = feed.buffer.size ? Math.min(...feed.buffer.keys()) : null;
          if (needed === null || needed === feed.last + 1) break;
          const page = await api.auctionEvents(feed.lotId, feed.last);
          const events = (page?.events ?? []).map((envelope) => eventFromEnvelope(envelope, feed.lotId));
          if (!events.length) break;
          for (const frame of events) if (!feed.buffer.has(frame.sequence)) feed.buffer.set(frame.sequence, frame);
          const before = feed.last;
          this.#drainQuietly(feed);
          if (feed.last === before) break;
        }
      } catch (error) {
        console.warn('filling a gap from the bids log failed', error);
        await new Promise((resolve) => setTimeout(resolve, 2_000));
      } finally {
        feed.filling = null;
      }
      if (this.#feeds.get(feed.lotId) === feed && feed.buffer.size) {
        setTimeout(() => this.#fillGap(feed), 1_000);
      }
    })();
  }

  #drainQuietly(feed) {
    while (feed.last !== null && feed.buffer.has(feed.last + 1)) {
      const frame = feed.buffer.get(feed.last + 1);
      feed.buffer.delete(feed.last + 1);
      this.#apply(feed, frame);
    }
    for (const seq of [...feed.buffer.keys()]) if (seq <= feed.last) feed.buffer.delete(seq);
  }

  // --- bids -------------------------------------------------------------------------------

  /**
   * Places a bid; resolves with the `bid_result` message ({id, status, result}), rejects with a
   * BidError (its `code` and `frame` are the gateway's `error`). While the connection is down the
   * bid waits, and it is sent again with the same id after reconnecting.
   */
  bid({ lotId, amount, maxAmount, id = newBidId() }) {
    if (!this.#getToken()) {
      return Promise.reject(new BidError({ code: 'unauthorized', message: 'Sign in to bid' }));
    }
    const frame = { type: 'bid', id, lot_id: lotId, amount: String(amount) };
    if (maxAmount !== undefined && maxAmount !== null) frame.max_amount = String(maxAmount);
    return new Promise((resolve, reject) => {
      this.#bids.set(id, { frame, resolve, reject, sent: false, retries: 0 });
      this.#flushBids();
    });
  }

  /** How many bids are waiting for their answer. */
  get bidsInFlight() {
    return this.#bids.size;
  }

  #flushBids() {
    if (!this.authenticated) {
      this.#sendAuth();
      return;
    }
    for (const bid of this.#bids.values()) {
      if (!bid.sent && !bid.retryTimer) bid.sent = this.#send(bid.frame);
    }
  }

  #onBidResult(frame) {
    const bid = this.#bids.get(frame.id);
    if (!bid) return;
    this.#bids.delete(frame.id);
    bid.resolve(frame);
  }

  #onBidError(frame) {
    const bid = this.#bids.get(frame.id);
    const retryable = frame.code === 'upstream_unavailable' || frame.code === 'engine_busy';
    if (retryable && bid.retries < UPSTREAM_RETRIES) {
      // The same id again is safe: the first answer, never a second bid.
      bid.retries += 1;
      bid.sent = false;
      bid.retryTimer = setTimeout(() => {
        bid.retryTimer = null;
        this.#flushBids();
      }, 1_000 * 2 ** (bid.retries - 1));
      return;
    }
    this.#bids.delete(frame.id);
    bid.reject(new BidError(frame));
  }
}

export function socketUrl() {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${window.location.host}/ws/v1`;
}
