// The dev chain helpers: wei <-> JSON-RPC quantities, JSON-RPC calls against a fake fetch, adding
// test funds (read, then set balance + 10 ETH), and polling with a deadline on a fake clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  addTestFunds,
  describeDevFundsError,
  devChainUrl,
  fromQuantity,
  pollUntil,
  RpcError,
  rpcCall,
  TEST_FUNDS_WEI,
  toQuantity,
} from '../src/devchain.js';

const ETH = 10n ** 18n;

test('wei becomes a JSON-RPC quantity: 0x, lowercase hex, no leading zeros', () => {
  assert.equal(toQuantity(0n), '0x0');
  assert.equal(toQuantity(1n), '0x1');
  assert.equal(toQuantity(255n), '0xff');
  assert.equal(toQuantity(ETH), '0xde0b6b3a7640000');
  assert.equal(toQuantity(TEST_FUNDS_WEI), '0x8ac7230489e80000');
  assert.equal(toQuantity(10_000n * ETH + TEST_FUNDS_WEI), '0x21ea4a7ecbf3c280000');
  assert.equal(toQuantity(2n ** 256n - 1n), `0x${'f'.repeat(64)}`);
  assert.throws(() => toQuantity(-1n), RangeError);
  assert.throws(() => toQuantity(2n ** 256n), RangeError);
  assert.throws(() => toQuantity(1), TypeError);
  assert.throws(() => toQuantity('0x1'), TypeError);
});

test('quantities parse back to exact wei', () => {
  assert.equal(fromQuantity('0x0'), 0n);
  assert.equal(fromQuantity('0x21E19E0C9BAB2400000'), 10_000n * ETH);
  for (const wei of [0n, 1n, ETH, 123456789123456789123456789n, 2n ** 256n - 1n]) {
    assert.equal(fromQuantity(toQuantity(wei)), wei);
  }
  for (const bad of ['', '0x', '12', '0xg', ' 0x1', null, 16]) {
    assert.throws(() => fromQuantity(bad), RpcError, String(bad));
  }
});

test('only http(s) URLs count as a dev chain', () => {
  assert.equal(devChainUrl(' http://127.0.0.1:8545 '), 'http://127.0.0.1:8545');
  assert.equal(devChainUrl('https://dev.example/rpc'), 'https://dev.example/rpc');
  for (const none of [null, undefined, '', '  ', 'not a url', 'javascript:alert(1)', 'ws://127.0.0.1:8545', 42]) {
    assert.equal(devChainUrl(none), null, String(none));
  }
});

/** A fake anvil: answers from `handlers[method](params)`; records the calls. */
function fakeChain(handlers) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    const body = JSON.parse(init.body);
    calls.push({ url, init, body });
    assert.equal(init.method, 'POST');
    assert.equal(init.headers['Content-Type'], 'application/json');
    assert.equal(body.jsonrpc, '2.0');
    const handler = handlers[body.method];
    const answer = handler
      ? { jsonrpc: '2.0', id: body.id, ...handler(body.params) }
      : { jsonrpc: '2.0', id: body.id, error: { code: -32601, message: `Method not found: ${body.method}` } };
    return { ok: true, status: 200, json: async () => answer };
  };
  return { calls, fetchImpl };
}

test('addTestFunds reads the balance, then sets balance + 10 ETH', async () => {
  const address = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
  let onChain = 3n * ETH + 5n;
  const { calls, fetchImpl } = fakeChain({
    eth_getBalance: ([who, block]) => {
      assert.equal(who, address);
      assert.equal(block, 'latest');
      return { result: toQuantity(onChain) };
    },
    anvil_setBalance: ([who, hex]) => {
      assert.equal(who, address);
      assert.match(hex, /^0x[0-9a-f]+$/);
      onChain = BigInt(hex);
      return { result: null };
    },
  });
  const answer = await addTestFunds('http://127.0.0.1:8545', address, { fetchImpl });
  assert.deepEqual(answer, { before: 3n * ETH + 5n, after: 13n * ETH + 5n });
  assert.equal(onChain, 13n * ETH + 5n);
  assert.deepEqual(calls.map((call) => call.body.method), ['eth_getBalance', 'anvil_setBalance']);
  assert.ok(calls.every((call) => call.url === 'http://127.0.0.1:8545'));
  assert.notEqual(calls[0].body.id, calls[1].body.id);
});

test('RPC failures become RpcError with words', async () => {
  const refused = fakeChain({ eth_getBalance: () => ({ result: '0x1' }) });
  await assert.rejects(addTestFunds('http://x', '0x0', { fetchImpl: refused.fetchImpl }), (error) => {
    assert.ok(error instanceof RpcError);
    assert.equal(error.kind, 'rpc');
    assert.equal(error.code, -32601);
    assert.match(describeDevFundsError(error), /not an anvil dev chain/);
    return true;
  });

  const down = async () => {
    throw new TypeError('Failed to fetch');
  };
  await assert.rejects(rpcCall('http://127.0.0.1:8545', 'eth_chainId', [], { fetchImpl: down }), (error) => {
    assert.equal(error.kind, 'network');
    assert.match(describeDevFundsError(error), /cannot be reached: is anvil running\?/);
    return true;
  });

  const http = async () => ({ ok: false, status: 500, json: async () => ({}) });
  await assert.rejects(rpcCall('http://x', 'eth_chainId', [], { fetchImpl: http }), { kind: 'http' });

  const garbage = async () => ({ ok: true, status: 200, json: async () => { throw new SyntaxError('bad'); } });
  await assert.rejects(rpcCall('http://x', 'eth_chainId', [], { fetchImpl: garbage }), { kind: 'invalid' });

  const noResult = async () => ({ ok: true, status: 200, json: async () => ({ jsonrpc: '2.0', id: 1 }) });
  await assert.rejects(rpcCall('http://x', 'eth_chainId', [], { fetchImpl: noResult }), { kind: 'invalid' });

  const notQuantity = fakeChain({ eth_getBalance: () => ({ result: 'lots' }) });
  await assert.rejects(addTestFunds('http://x', '0x0', { fetchImpl: notQuantity.fetchImpl }), { kind: 'invalid' });
  assert.equal(notQuantity.calls.length, 1, 'nothing is set after an unreadable balance');

  const huge = fakeChain({ eth_getBalance: () => ({ result: toQuantity(2n ** 256n - 1n) }) });
  await assert.rejects(addTestFunds('http://x', '0x0', { fetchImpl: huge.fetchImpl }), (error) => {
    assert.ok(error instanceof RangeError);
    assert.match(describeDevFundsError(error), /cannot grow/);
    return true;
  });
  assert.equal(huge.calls.length, 1);
});

/** A clock that only moves when the poller sleeps. */
function fakeClock() {
  let t = 1_000_000;
  const sleeps = [];
  return {
    now: () => t,
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
    sleeps,
  };
}

test('pollUntil answers the first truthy result', async () => {
  const clock = fakeClock();
  let calls = 0;
  const result = await pollUntil(async () => (++calls === 3 ? { seen: true } : null), {
    timeoutMs: 10_000,
    intervalMs: 500,
    ...clock,
  });
  assert.deepEqual(result, { seen: true });
  assert.equal(calls, 3);
  assert.deepEqual(clock.sleeps, [500, 500]);
});

test('pollUntil gives up at the deadline, never sleeping past it', async () => {
  const clock = fakeClock();
  let calls = 0;
  const result = await pollUntil(
    () => {
      calls += 1;
      return false;
    },
    { timeoutMs: 1_200, intervalMs: 500, ...clock },
  );
  assert.equal(result, null);
  assert.deepEqual(clock.sleeps, [500, 500, 200]);
  assert.equal(calls, 4, 'one last look at the deadline');
});

test('pollUntil with an immediate answer does not sleep', async () => {
  const clock = fakeClock();
  assert.equal(await pollUntil(() => 'yes', clock), 'yes');
  assert.deepEqual(clock.sleeps, []);
});
