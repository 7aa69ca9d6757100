// The payment panel on a sold lot's page: the winner sees the amount, the seller's wallet and the
// deadline and pays with one click; the page follows the payment to "paid" (or "defaulted"). The
// seller sees "sold, awaiting payment" turn into "paid".
//
// A sent payment is never dropped and never sent twice: its hash is kept (localStorage, per lot)
// before or as it is sent and forgotten only when `wallets` settles it or refuses it for a reason
// about the transaction itself; before paying the panel reads the payment again and looks for a
// hash another tab kept.

import { ApiError, api } from '../api.js';
import { balance, openSignIn } from '../app.js';
import { formatWhen, serverNow } from '../clock.js';
import { devChainUrl } from '../devchain.js';
import { h, replace, shortAddress } from '../dom.js';
import {
  FINAL,
  NOT_YET,
  PAY_MARGIN_MS,
  describePayment,
  describePaymentError,
  payWithBrowserWallet,
  payWithDemoKey,
  sendingKey,
  sentKey,
} from '../payment.js';
import { session } from '../session.js';
import { showEth } from '../wei.js';

/** While `wallets` has not recorded the sale yet (it follows auction.closed), or a hash waits. */
const RETRY_MS = 2_000;
/** The longest wait between two tries of a hash, after repeated failures. */
const RETRY_MAX_MS = 30_000;
/** How often an open payment is read again (a payment from another tab or device shows). */
const POLL_MS = 5_000;

/** `role`: 'winner' or 'seller'. Answers {element, dispose}. */
export function paymentPanel({ lotId, role }) {
  const text = h('p', { class: 'payment-text', 'data-testid': 'payment-text' }, 'Loading the payment…');
  const facts = h('dl', { class: 'facts payment-facts' });
  const error = h('p', { class: 'error small', 'data-testid': 'payment-error', role: 'alert', hidden: true });
  const pay = h('button', { class: 'button button-primary wide', type: 'button', 'data-testid': 'pay-button', hidden: true });
  const how = h('p', { class: 'muted small', hidden: true });
  // Paid some other way (or the page lost track of a transfer): the hash can be given by hand.
  const hashInput = h('input', { type: 'text', name: 'tx_hash', placeholder: '0x…', spellcheck: 'false', autocomplete: 'off', 'data-testid': 'payment-hash' });
  const hashSubmit = h('button', { class: 'button button-small', type: 'submit' }, 'Check it');
  const manual = h(
    'details',
    { class: 'payment-manual', hidden: true },
    h('summary', { class: 'small' }, 'Paid from another wallet or app? Give the transaction hash'),
    h('form', { class: 'input-row' }, hashInput, hashSubmit),
  );
  const element = h('section', { class: 'payment-panel', 'data-testid': 'payment-panel', 'data-state': 'loading', 'aria-live': 'polite' }, text, facts, pay, how, manual, error);

  let payment = null;
  let timer = null;
  let paying = false;
  let disposed = false;
  let failures = 0;

  const sent = () => localStorage.getItem(sentKey(lotId));
  const sending = () => localStorage.getItem(sendingKey(lotId));

  function later(run, ms) {
    clearTimeout(timer);
    if (!disposed) timer = setTimeout(run, ms);
  }

  function showError(message) {
    error.textContent = message ?? '';
    error.hidden = !message;
  }

  /** How this browser can pay: 'wallet' (EIP-1193), 'demo' (demo key on the dev chain) or null. */
  function method() {
    const rpc = devChainUrl(session.config?.rpc_url);
    if (session.current?.method === 'demo') return rpc && session.demoSecretKey ? 'demo' : null;
    return session.hasInjectedWallet ? 'wallet' : null;
  }

  const mine = () => Boolean(payment && session.current && session.current.accountId === payment.winner);

  function render() {
    if (!payment) return;
    const described = describePayment(payment, { role, sent: sent(), now: serverNow() });
    const unsure = role === 'winner' && described.state === 'to_pay' && sending();
    element.dataset.state = unsure ? 'unsure' : described.state;
    text.textContent = unsure
      ? 'A payment may have been sent from this browser and its hash was not kept: look in your wallet’s activity before paying again, and give its hash below.'
      : described.text;
    replace(
      facts,
      h('dt', {}, 'Amount'),
      h('dd', { 'data-testid': 'payment-amount', 'data-wei': payment.amount }, showEth(payment.amount)),
      h('dt', {}, role === 'seller' ? 'Paid to' : 'Pay to'),
      h('dd', { class: 'mono', title: payment.seller_wallet, 'data-testid': 'payment-seller' }, shortAddress(payment.seller_wallet)),
      h('dt', {}, 'Deadline'),
      h('dd', { 'data-testid': 'payment-deadline' }, formatWhen(payment.deadline)),
      payment.tx_hash ? [h('dt', {}, 'Transaction'), h('dd', { class: 'mono', title: payment.tx_hash }, shortAddress(payment.tx_hash))] : null,
    );
    const way = method();
    pay.hidden = described.state !== 'to_pay' || Boolean(unsure) || !mine();
    pay.disabled = paying || !way;
    pay.textContent = paying ? 'Paying…' : `Pay ${showEth(payment.amount)}`;
    how.hidden = pay.hidden;
    how.textContent = way === 'demo'
      ? 'Signed with your demo key and sent on the local dev chain.'
      : way === 'wallet'
        ? 'Your browser wallet will ask you to confirm the transfer.'
        : `Send ${showEth(payment.amount)} from ${shortAddress(payment.winner_wallet)} to the seller’s wallet above with your wallet: sign in with a browser wallet to pay from here.`;
    manual.hidden = !(role === 'winner' && mine() && (described.state === 'to_pay' || described.state === 'late') && !sent());
  }

  async function load() {
    try {
      payment = await api.payment(lotId);
      showError(null);
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 404) {
        // The sale is a moment old: wallets records it when it hears of the close.
        text.textContent = 'Preparing the payment…';
        later(load, RETRY_MS);
        return;
      }
      if (failure instanceof ApiError && (failure.status === 403 || failure.status === 401)) {
        element.hidden = true;
        return;
      }
      showError(failure.message);
      later(load, RETRY_MS * 5);
      return;
    }
    render();
    if (payment.status !== 'awaiting') {
      localStorage.removeItem(sentKey(lotId));
      localStorage.removeItem(sendingKey(lotId));
      return;
    }
    if (role === 'winner' && sent()) confirm();
    else later(load, POLL_MS);
  }

  /** Hands the sent hash to wallets until it settles the payment or refuses it for good. */
  async function confirm() {
    const hash = sent();
    if (!hash || disposed) return;
    try {
      payment = await api.submitPayment(lotId, hash);
      failures = 0;
      showError(null);
      if (payment.status !== 'awaiting') localStorage.removeItem(sentKey(lotId));
      render();
      balance.refresh();
      if (payment.status === 'awaiting') later(confirm, RETRY_MS);
    } catch (failure) {
      const code = failure instanceof ApiError ? failure.code : null;
      if (FINAL.has(code)) {
        localStorage.removeItem(sentKey(lotId));
        showError(describePaymentError(code, failure.message));
        render();
        later(load, POLL_MS);
        return;
      }
      // Not yet, or not now (wallets restarting, rate limits, the network, an expired sign-in):
      // the hash stays and is tried again; the transfer it names may well pay.
      failures += 1;
      if (code === 'unauthorized' || (failure instanceof ApiError && failure.status === 401)) {
        showError('Your payment was sent; sign in again so that it can be checked.');
        render();
        return; // a new sign-in rebuilds the panel, which picks the hash up again
      }
      showError(NOT_YET.has(code) ? null : `Still checking your payment: ${describePaymentError(code, failure.message)}`);
      render();
      later(confirm, Math.min(RETRY_MS * 2 ** Math.min(failures, 4), RETRY_MAX_MS));
    }
  }

  async function send() {
    const order = { from: payment.winner_wallet, to: payment.seller_wallet, amount: payment.amount };
    if (method() === 'demo') {
      return payWithDemoKey(devChainUrl(session.config.rpc_url), {
        ...order,
        secretKey: session.demoSecretKey,
        onSigned: (hash) => localStorage.setItem(sentKey(lotId), hash),
      });
    }
    localStorage.setItem(sendingKey(lotId), String(Date.now()));
    const hash = await payWithBrowserWallet(window.ethereum, order);
    localStorage.setItem(sentKey(lotId), hash);
    localStorage.removeItem(sendingKey(lotId));
    return hash;
  }

  pay.addEventListener('click', async () => {
    if (paying || !payment) return;
    if (!mine()) {
      openSignIn('Sign in with the winning wallet to pay.');
      return;
    }
    paying = true;
    showError(null);
    render();
    try {
      // Another tab (or this one, before a reload) may have paid already; the deadline may be near.
      if (sent()) {
        paying = false;
        render();
        await confirm();
        return;
      }
      payment = await api.payment(lotId);
      const left = Date.parse(payment.deadline) - serverNow();
      if (payment.status !== 'awaiting' || left <= PAY_MARGIN_MS) {
        paying = false;
        render();
        return;
      }
      await send();
      paying = false;
      render();
      await confirm();
    } catch (failure) {
      paying = false;
      // A browser wallet that refused sent nothing.
      if (!sent()) localStorage.removeItem(sendingKey(lotId));
      showError(failure?.code === 4001 ? 'You declined the transfer in your wallet.' : `The payment was not sent: ${failure?.message ?? failure}`);
      render();
      if (sent()) later(confirm, RETRY_MS);
    }
  });

  manual.querySelector('form').addEventListener('submit', (event) => {
    event.preventDefault();
    const hash = hashInput.value.trim();
    if (!/^0x[0-9a-fA-F]{64}$/.test(hash)) {
      showError('A transaction hash is 0x and 64 hex digits.');
      return;
    }
    localStorage.setItem(sentKey(lotId), hash.toLowerCase());
    localStorage.removeItem(sendingKey(lotId));
    hashInput.value = '';
    showError(null);
    render();
    confirm();
  });

  // The Pay button goes away before the deadline comes too close.
  const tick = setInterval(render, 15_000);
  load();
  return {
    element,
    dispose() {
      disposed = true;
      clearTimeout(timer);
      clearInterval(tick);
    },
  };
}
