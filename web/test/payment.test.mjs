import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hexToBytes } from '@noble/hashes/utils.js';
import { describePayment, describePaymentError, FINAL, NOT_YET, PAY_MARGIN_MS, payWithBrowserWallet, payWithDemoKey } from '../src/payment.js';
import { signTransfer } from '../src/tx.js';

const payment = {
  lot_id: 'lot',
  winner_wallet: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  seller_wallet: '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266',
  amount: '110000000000000000',
  deadline: '2026-12-07T10:00:00Z',
  status: 'awaiting',
  tx_hash: null,
};
const before = Date.parse('2026-12-06T10:00:00Z');

test('the winner is asked to pay, then waits, then is told it paid; the seller follows along', () => {
  assert.equal(describePayment(payment, { role: 'winner', now: before }).state, 'to_pay');
  assert.match(describePayment(payment, { role: 'winner', now: before }).text, /^You won: pay 0\.11 ETH to the seller by /);
  assert.equal(describePayment(payment, { role: 'winner', sent: '0xab', now: before }).state, 'confirming');
  assert.equal(describePayment(payment, { role: 'winner', now: Date.parse('2026-12-08T00:00:00Z') }).state, 'late', 'past the deadline the sweep decides');
  const nearly = Date.parse(payment.deadline) - PAY_MARGIN_MS + 1000;
  assert.equal(describePayment(payment, { role: 'winner', now: nearly }).state, 'late', 'no Pay button a moment before the deadline');
  assert.match(describePayment(payment, { role: 'seller', now: before }).text, /^Sold, awaiting payment of 0\.11 ETH by /);
  const paid = { ...payment, status: 'confirmed', tx_hash: `0x${'1'.repeat(64)}` };
  assert.deepEqual(describePayment(paid, { role: 'winner' }), { state: 'paid', text: 'Paid: your 0.11 ETH reached the seller. The lot is yours.' });
  assert.deepEqual(describePayment(paid, { role: 'seller' }), { state: 'paid', text: 'Paid: 0.11 ETH reached your wallet.' });
  assert.equal(describePayment({ ...payment, status: 'defaulted' }, { role: 'seller' }).state, 'defaulted');
});

test('refusals are put in words; the ones that mean "not yet" are known', () => {
  for (const code of ['transaction_not_found', 'transaction_not_mined', 'not_enough_confirmations']) assert.ok(NOT_YET.has(code));
  assert.ok(!NOT_YET.has('wrong_sender'));
  // Only answers about the transaction itself forget a sent hash; outages and sign-ins never do.
  for (const code of ['upstream_unavailable', 'rate_limited', 'unauthorized', 'http_500', 'network', 'chain_unavailable']) {
    assert.ok(!FINAL.has(code), code);
  }
  assert.ok(FINAL.has('wrong_sender') && FINAL.has('payment_closed'));
  assert.match(describePaymentError('wrong_recipient'), /seller/);
  assert.equal(describePaymentError('something_new', 'As the server said.'), 'As the server said.');
});

test('a browser wallet is asked for a plain transfer of the price to the seller', async () => {
  const asked = [];
  const ethereum = {
    async request(call) {
      asked.push(call);
      return `0x${'AB'.repeat(32)}`;
    },
  };
  const hash = await payWithBrowserWallet(ethereum, { from: payment.winner_wallet, to: payment.seller_wallet, amount: payment.amount });
  assert.equal(hash, `0x${'ab'.repeat(32)}`);
  assert.deepEqual(asked, [
    { method: 'eth_sendTransaction', params: [{ from: payment.winner_wallet, to: payment.seller_wallet, value: '0x186cc6acd4b0000', gas: '0x5208' }] },
  ]);
  await assert.rejects(payWithBrowserWallet({ request: async () => null }, { from: 'a', to: 'b', amount: '1' }), /no transaction hash/);
  await assert.rejects(payWithBrowserWallet(undefined, { from: 'a', to: 'b', amount: '1' }), /No browser wallet/);
});

test('with a demo key the page signs the transfer itself with the chain\'s nonce, price and id', async () => {
  const secretKey = hexToBytes('ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80');
  const calls = [];
  let answerHash = null;
  const fetchImpl = async (_url, init) => {
    const { id, method, params } = JSON.parse(init.body);
    calls.push({ method, params });
    const results = { eth_getTransactionCount: '0x7', eth_gasPrice: '0x3b9aca00', eth_chainId: '0x7a69', eth_sendRawTransaction: answerHash };
    return new Response(JSON.stringify({ jsonrpc: '2.0', id, result: results[method] }), { headers: { 'content-type': 'application/json' } });
  };
  const from = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
  const expected = signTransfer({ secretKey, nonce: 7n, gasPrice: 1_000_000_000n, to: payment.seller_wallet, value: 110000000000000000n, chainId: 31337n });
  answerHash = expected.hash;
  let heard = null;
  const hash = await payWithDemoKey('http://chain', { secretKey, from, to: payment.seller_wallet, amount: payment.amount, fetchImpl, onSigned: (signed) => { heard = signed; } });
  assert.equal(hash, expected.hash);
  assert.equal(heard, expected.hash, 'the hash is known before the transfer is sent');
  const sent = calls.find((call) => call.method === 'eth_sendRawTransaction').params[0];
  assert.equal(sent, expected.raw);
  // Another wallet's key never signs for the winner.
  await assert.rejects(
    payWithDemoKey('http://chain', { secretKey, from: payment.winner_wallet, to: payment.seller_wallet, amount: payment.amount, fetchImpl }),
    /not the winning wallet/,
  );
  assert.deepEqual(calls.find((call) => call.method === 'eth_getTransactionCount').params, [from, 'pending']);
});
