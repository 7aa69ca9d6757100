// "Add 10 test ETH (dev chain)": on local runs `/api/config` names the anvil dev chain
// (`rpc_url`), and the signed-in wallet can mint itself test funds there. Never shown when
// `rpc_url` is null (production). One shared operation, shown by every control (lot page, account).

import { balance } from '../app.js';
import { addTestFunds, describeDevFundsError, devChainUrl, pollUntil, TEST_FUNDS_WEI } from '../devchain.js';
import { Emitter, h } from '../dom.js';
import { session } from '../session.js';
import { formatEth, toWei } from '../wei.js';

const LABEL = `Add ${formatEth(TEST_FUNDS_WEI)} test ETH (dev chain)`;
/** How long the wallets service may take to show the new balance (it caches balances ~2 s). */
const BALANCE_DEADLINE_MS = 10_000;
const BALANCE_POLL_MS = 500;
const DONE_SHOWN_MS = 6_000;

class DevFunds extends Emitter {
  state = 'idle'; // idle | busy | done | error
  message = '';
  #running = null;
  #wallet = null;
  #doneTimer = null;

  constructor() {
    super();
    session.on('change', () => {
      if (session.current?.wallet !== this.#wallet) this.#set('idle', '');
    });
  }

  /** The dev chain's URL when the funds can be added (a dev chain, someone signed in), else null. */
  get url() {
    return session.current ? devChainUrl(session.config?.rpc_url) : null;
  }

  #set(state, message) {
    clearTimeout(this.#doneTimer);
    this.state = state;
    this.message = message;
    if (state === 'done') {
      this.#doneTimer = setTimeout(() => this.#set('idle', ''), DONE_SHOWN_MS);
    }
    this.emit('change');
  }

  add() {
    if (this.#running) return this.#running;
    const url = this.url;
    const wallet = session.current?.wallet;
    if (!url || !wallet) return Promise.resolve(false);
    this.#wallet = wallet;
    this.#running = this.#add(url, wallet).finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #add(url, wallet) {
    const still = () => session.current?.wallet === wallet;
    this.#set('busy', `Adding ${formatEth(TEST_FUNDS_WEI)} test ETH on the dev chain…`);
    let after;
    try {
      ({ after } = await addTestFunds(url, wallet));
    } catch (error) {
      console.warn('adding dev chain funds failed', error);
      if (still()) this.#set('error', describeDevFundsError(error));
      return false;
    }
    if (!still()) return false;
    this.#set('busy', 'Added on the dev chain; updating your balance…');
    // The wallets service reuses a balance for a moment: ask again until it shows the new one.
    const seen = await pollUntil(
      async () => {
        if (!still()) return 'gone';
        const value = await balance.refresh();
        let shown = null;
        try {
          shown = value ? toWei(value.balance ?? value.available) : null;
        } catch {
          shown = null;
        }
        return shown !== null && shown >= after;
      },
      { timeoutMs: BALANCE_DEADLINE_MS, intervalMs: BALANCE_POLL_MS },
    );
    if (!still()) return false;
    this.#set(
      'done',
      seen
        ? `Added ${formatEth(TEST_FUNDS_WEI)} test ETH.`
        : `Added ${formatEth(TEST_FUNDS_WEI)} test ETH on the dev chain; your balance will show it in a moment.`,
    );
    return true;
  }
}

export const devFunds = new DevFunds();

/** The button and its status line; hides itself when there is no dev chain or no one signed in. */
export function devFundsControl({ testid = 'dev-funds' } = {}) {
  const button = h(
    'button',
    { class: 'button button-small', type: 'button', 'data-testid': testid, onclick: () => devFunds.add() },
    LABEL,
  );
  const status = h('span', { class: 'dev-funds-status small', role: 'status' });
  const element = h('div', { class: 'dev-funds', hidden: true }, button, status);

  const render = () => {
    const url = devFunds.url;
    element.hidden = !url;
    if (url) button.title = `Mints test ETH on ${url} (anvil_setBalance); it is worth nothing`;
    const busy = devFunds.state === 'busy';
    button.disabled = busy;
    button.dataset.state = devFunds.state;
    button.setAttribute('aria-busy', String(busy));
    button.textContent = busy ? 'Adding test ETH…' : LABEL;
    status.textContent = devFunds.message;
    status.className = `dev-funds-status small${
      devFunds.state === 'error' ? ' error' : devFunds.state === 'done' ? ' ok' : ' muted'
    }`;
  };
  const offs = [devFunds.on('change', render), session.on('change', render)];
  render();
  return { element, dispose: () => offs.forEach((off) => off()) };
}
