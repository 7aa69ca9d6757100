// Paying for a won lot. The winner sends the price to the seller's wallet on chain — through the
// browser's wallet (EIP-1193 `eth_sendTransaction`) or, signed in with a demo key on the local dev
// chain, a transfer this client signs itself — and hands the transaction's hash to `wallets`
// (`POST /api/payments/{lot}`), which checks it on chain. No DOM here.

import { formatWhen } from './clock.js';
import { addressOf } from './eth.js';
import { fromQuantity, rpcCall, toQuantity } from './devchain.js';
import { signTransfer, TRANSFER_GAS } from './tx.js';
import { showEth } from './wei.js';

/** `wallets`' answers to a submitted hash that mean "not yet: ask again in a moment". */
export const NOT_YET = new Set(['transaction_not_found', 'transaction_not_mined', 'not_enough_confirmations']);

/**
 * `wallets`' answers that settle the question for this hash: it does not pay for the lot (or the
 * payment is no longer open). Only these forget a sent hash; any other failure (a restart, a rate
 * limit, an expired sign-in, the network) keeps it and asks again, so a sent payment is never
 * dropped and never sent twice.
 */
export const FINAL = new Set([
  'wrong_sender',
  'wrong_recipient',
  'amount_too_low',
  'transaction_failed',
  'transaction_before_close',
  'transaction_used',
  'payment_closed',
  'invalid',
]);

/** Paying this close to the deadline risks a transfer that confirms too late for the sale. */
export const PAY_MARGIN_MS = 5 * 60_000;

/** The key under which a sent payment's hash waits for its confirmation, across reloads. */
export const sentKey = (lotId) => `gavel.payment.${lotId}.v1`;
/** Set while a browser wallet is asked to send, until its hash is kept: a reload in between
 * must not offer to pay again. */
export const sendingKey = (lotId) => `gavel.payment.${lotId}.sending.v1`;

/**
 * What the page says about `payment` (the `GET /api/payments/{lot}` answer) to `role` ('winner'
 * or 'seller'): `{state, text}`, `state` being one of to_pay, confirming, awaiting, paid, defaulted.
 * `sent` is the hash this browser sent and is waiting on, if any.
 */
export function describePayment(payment, { role, sent = null, now = Date.now() } = {}) {
  const amount = showEth(payment.amount);
  const deadline = new Date(payment.deadline);
  const by = Number.isNaN(deadline.getTime()) ? '' : ` by ${formatWhen(payment.deadline)}`;
  switch (payment.status) {
    case 'confirmed':
      return role === 'seller'
        ? { state: 'paid', text: `Paid: ${amount} reached your wallet.` }
        : { state: 'paid', text: `Paid: your ${amount} reached the seller. The lot is yours.` };
    case 'defaulted':
      return role === 'seller'
        ? { state: 'defaulted', text: 'The winner did not pay in time: the sale is void.' }
        : { state: 'defaulted', text: 'The payment deadline passed: the sale is void.' };
    default:
      if (role === 'seller') return { state: 'awaiting', text: `Sold, awaiting payment of ${amount}${by}.` };
      if (sent) return { state: 'confirming', text: `Payment of ${amount} sent: waiting for the chain to confirm it…` };
      if (deadline.getTime() <= now) return { state: 'late', text: 'The payment deadline has passed: the sale is being voided.' };
      if (deadline.getTime() - now <= PAY_MARGIN_MS) {
        return { state: 'late', text: `The payment deadline${by} is too close to pay safely from here: a transfer might confirm after it.` };
      }
      return { state: 'to_pay', text: `You won: pay ${amount} to the seller${by}.` };
  }
}

/** Sends the payment through the browser's wallet; answers the transaction hash. */
export async function payWithBrowserWallet(ethereum, { from, to, amount }) {
  if (!ethereum?.request) throw new Error('No browser wallet was found');
  const hash = await ethereum.request({
    method: 'eth_sendTransaction',
    params: [{ from, to, value: toQuantity(BigInt(amount)), gas: toQuantity(TRANSFER_GAS) }],
  });
  return checkHash(hash);
}

/**
 * Signs and sends the payment with the demo key on the dev chain at `url`; answers the hash.
 * The key must be the winning wallet's (`from`). `onSigned(hash)` hears the hash before the
 * transfer is sent, so that a reload in between cannot lose it.
 */
export async function payWithDemoKey(url, { secretKey, from, to, amount, fetchImpl, onSigned = () => {} }) {
  if (addressOf(secretKey).toLowerCase() !== String(from).toLowerCase()) {
    throw new Error(`this browser's demo key is not the winning wallet ${from}: sign in with that wallet to pay`);
  }
  const options = { fetchImpl };
  const [nonce, gasPrice, chainId] = await Promise.all([
    rpcCall(url, 'eth_getTransactionCount', [from, 'pending'], options),
    rpcCall(url, 'eth_gasPrice', [], options),
    rpcCall(url, 'eth_chainId', [], options),
  ]);
  const signed = signTransfer({
    secretKey,
    nonce: fromQuantity(nonce),
    gasPrice: fromQuantity(gasPrice),
    to,
    value: BigInt(amount),
    chainId: fromQuantity(chainId),
  });
  onSigned(signed.hash);
  const hash = checkHash(await rpcCall(url, 'eth_sendRawTransaction', [signed.raw], options));
  if (hash !== signed.hash) throw new Error(`the chain named the transfer ${hash}, not ${signed.hash}`);
  return hash;
}

function checkHash(hash) {
  if (typeof hash !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(hash)) {
    throw new Error(`the wallet answered no transaction hash (${JSON.stringify(hash)})`);
  }
  return hash.toLowerCase();
}

/** Words for a refused payment (a 4xx `code` from `wallets`). */
export function describePaymentError(code, fallback) {
  switch (code) {
    case 'wrong_sender':
      return 'That transaction was sent from another wallet than the one that won.';
    case 'wrong_recipient':
      return 'That transaction did not go to the seller’s wallet.';
    case 'amount_too_low':
      return 'That transaction paid less than the price.';
    case 'transaction_failed':
      return 'That transaction failed on chain: nothing was paid.';
    case 'transaction_before_close':
      return 'That transaction was made before the auction closed: it does not pay for this lot.';
    case 'transaction_used':
      return 'That transaction already paid for another lot.';
    case 'payment_closed':
      return 'This payment is already settled or void.';
    case 'chain_unavailable':
      return 'The chain cannot be read right now: your payment will be checked again shortly.';
    default:
      return fallback || 'The payment could not be checked.';
  }
}
