// The payment panel on a sold lot's page: the winner sees the amount, the seller's wallet and the
// deadline and pays with one click; the page follows the payment to "paid" (or "defaulted"). The
// seller sees "sold, awaiting payment" turn into "paid".

import { ApiError, api } from '../api.js';
import { balance } from '../app.js';
import { formatWhen } from '../clock.js';
import { devChainUrl } from '../devchain.js';
import { h, replace, shortAddress } from '../dom.js';
import { describePayment, describePaymentError, NOT_YET, payWithBrowserWallet, payWithDemoKey, sentKey } from '../payment.js';
import { session } from '../session.js';
import { showEth } from '../wei.js';

/** While `wallets` has not recorded the sale yet (it follows auction.closed), or a hash waits. */
const RETRY_MS = 2_000;
/** How often a seller's page asks whether the winner has paid. */
const SELLER_POLL_MS = 5_000;

/** `role`: 'winner' or 'seller'. Answers {element, dispose}. */
export function paymentPanel({ lotId, role }) {
  const text = h('p', { class: 'payment-text', 'data-testid': 'payment-text' }, 'Loading the payment…');
  const facts = h('dl', { class: 'facts payment-facts' });
  const error = h('p', { class: 'error small', 'data-testid': 'payment-error', role: 'alert', hidden: true });
  const pay = h('button', { class: 'button button-primary wide', type: 'button', 'data-testid': 'pay-button', hidden: true });
  const how = h('p', { class: 'muted small', hidden: true });
  const element = h('section', { class: 'payment-panel', 'data-testid': 'payment-panel', 'data-state': 'loading', 'aria-live': 'polite' }, text, facts, pay, how, error);

  let payment = null;
  let timer = null;
  let paying = false;
  let disposed = false;

  const sent = () => localStorage.getItem(sentKey(lotId));

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

  function render() {
    if (!payment) return;
    const described = describePayment(payment, { role, sent: sent() });
    element.dataset.state = described.state;
    text.textContent = described.text;
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
    pay.hidden = described.state !== 'to_pay';
    pay.disabled = paying || !way;
    pay.textContent = paying ? 'Paying…' : `Pay ${showEth(payment.amount)}`;
    how.hidden = pay.hidden;
    how.textContent = way === 'demo'
      ? 'Signed with your demo key and sent on the local dev chain.'
      : way === 'wallet'
        ? 'Your browser wallet will ask you to confirm the transfer.'
        : `Send ${showEth(payment.amount)} from ${shortAddress(payment.winner_wallet)} to the seller’s wallet above with your wallet: sign in with a browser wallet to pay from here.`;
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
      return;
    }
    if (role === 'winner' && sent()) confirm();
    else if (role === 'seller') later(load, SELLER_POLL_MS);
  }

  /** Hands the sent hash to wallets until it settles the payment or refuses it for good. */
  async function confirm() {
    const hash = sent();
    if (!hash || disposed) return;
    try {
      payment = await api.submitPayment(lotId, hash);
      localStorage.removeItem(sentKey(lotId));
      showError(null);
      render();
      balance.refresh();
    } catch (failure) {
      const code = failure instanceof ApiError ? failure.code : null;
      if (NOT_YET.has(code) || code === 'chain_unavailable' || code === 'network') {
        render();
        later(confirm, RETRY_MS);
        return;
      }
      localStorage.removeItem(sentKey(lotId));
      showError(describePaymentError(code, failure.message));
      render();
    }
  }

  pay.addEventListener('click', async () => {
    if (paying || !payment) return;
    paying = true;
    showError(null);
    render();
    try {
      const order = { from: payment.winner_wallet, to: payment.seller_wallet, amount: payment.amount };
      const hash = method() === 'demo'
        ? await payWithDemoKey(devChainUrl(session.config.rpc_url), { ...order, secretKey: session.demoSecretKey })
        : await payWithBrowserWallet(window.ethereum, order);
      localStorage.setItem(sentKey(lotId), hash);
      paying = false;
      render();
      await confirm();
    } catch (failure) {
      paying = false;
      showError(failure?.code === 4001 ? 'You declined the transfer in your wallet.' : `The payment was not sent: ${failure?.message ?? failure}`);
      render();
    }
  });

  load();
  return {
    element,
    dispose() {
      disposed = true;
      clearTimeout(timer);
    },
  };
}
