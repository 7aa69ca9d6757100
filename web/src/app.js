// The pieces every view shares: the tab's one WebSocket, the signed-in wallet's balance, toasts,
// and a way to open the sign-in panel.

import { api } from './api.js';
import { Emitter, h } from './dom.js';
import { rememberBid } from './mybids.js';
import { session } from './session.js';
import { LiveSocket, socketUrl } from './socket.js';

export const socket = new LiveSocket({ url: socketUrl(), getToken: () => session.token });

/** The signed-in wallet's balance ({balance, held, available} in wei), fetched on demand. */
class Balance extends Emitter {
  value = null;
  error = null;
  #wallet = null;
  #loading = null;

  reset() {
    this.value = null;
    this.error = null;
    this.#wallet = null;
    this.emit('change');
  }

  async refresh() {
    const wallet = session.current?.wallet;
    if (!wallet || !session.token) {
      if (this.value || this.error) this.reset();
      return null;
    }
    if (this.#loading && this.#wallet === wallet) return this.#loading;
    this.#wallet = wallet;
    this.#loading = (async () => {
      try {
        const value = await api.balance(wallet);
        if (session.current?.wallet === wallet) {
          this.value = value;
          this.error = null;
        }
      } catch (error) {
        if (session.current?.wallet === wallet) this.error = error;
      } finally {
        this.#loading = null;
        this.emit('change');
      }
      return this.value;
    })();
    return this.#loading;
  }
}

export const balance = new Balance();

const opener = new Emitter();

/** Opens the sign-in panel (from "Sign in to bid" and the like). */
export function openSignIn(reason) {
  opener.emit('open', reason);
}

export function onOpenSignIn(handler) {
  return opener.on('open', handler);
}

/** A short message at the bottom of the screen. */
export function toast(text, { kind = 'info', ms = 5000 } = {}) {
  const host = document.getElementById('toasts');
  if (!host) return;
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  host.append(item);
  setTimeout(() => item.remove(), ms);
}

/** Says 'remembered' when the signed-in account bid on a lot it was not watching yet. */
export const myBids = new Emitter();

/**
 * Remembers the open lots the signed-in account bid on from anywhere (another device too), as
 * `bids` lists them, so that being outbid on one is told here.
 */
export async function syncMyBids() {
  const me = session.current?.accountId;
  if (!me) return;
  try {
    const lots = await api.myLots();
    if (session.current?.accountId !== me) return;
    // Oldest first, so the most recent end up first in the (bounded) list.
    for (const lot of [...lots].filter((row) => row.status === 'open').reverse()) {
      rememberBid(me, lot.lot_id, lot.title);
    }
    myBids.emit('remembered', null);
  } catch (error) {
    console.warn('my lots', error);
  }
}

/** Remembers a bid of the signed-in account, so being outbid on that lot is told anywhere. */
export function noteBid(lotId, title) {
  rememberBid(session.current?.accountId, lotId, title);
  myBids.emit('remembered', lotId);
}
