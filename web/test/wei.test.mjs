import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ethForInput, formatEth, incrementAt, minimumNext, parseEth, toWei } from '../src/wei.js';

test('ETH decimals parse to exact wei', () => {
  assert.equal(parseEth('1'), 10n ** 18n);
  assert.equal(parseEth('0.015'), 15_000_000_000_000_000n);
  assert.equal(parseEth('.5'), 500_000_000_000_000_000n);
  assert.equal(parseEth('1,25'), 1_250_000_000_000_000_000n);
  assert.equal(parseEth('0.000000000000000001'), 1n);
  assert.equal(parseEth(' 123456789.123456789123456789 '), 123456789123456789123456789n);
  for (const bad of ['', '.', '-1', '1e18', '0x10', '1.2.3', 'abc', '0.0000000000000000001']) {
    assert.throws(() => parseEth(bad), Error, bad);
  }
});

test('wei formats to exact ETH without trailing zeros', () => {
  assert.equal(formatEth('15000000000000000'), '0.015');
  assert.equal(formatEth('2000000000000000000'), '2');
  assert.equal(formatEth('1'), '0.000000000000000001');
  assert.equal(ethForInput('1234000000000000000000'), '1234');
  assert.equal(formatEth(0n), '0');
  for (const wei of ['1', '999999999999999999', '10000000000000000', '123456789123456789123456789']) {
    assert.equal(parseEth(ethForInput(wei)), BigInt(wei));
  }
});

test('toWei refuses what is not an integer', () => {
  assert.equal(toWei(null), null);
  assert.equal(toWei('42'), 42n);
  assert.throws(() => toWei('1.5'));
  assert.throws(() => toWei(1.5));
});

test('the next minimum follows the engine rules', () => {
  const absolute = { kind: 'absolute', wei: '5000000000000000' };
  assert.equal(minimumNext({ price: null, startPrice: '10000000000000000', increment: absolute }), 10_000_000_000_000_000n);
  assert.equal(minimumNext({ price: '10000000000000000', startPrice: '1', increment: absolute }), 15_000_000_000_000_000n);
  const bps = { kind: 'basis_points', bps: 250 };
  assert.equal(incrementAt(bps, 1000n), 25n);
  assert.equal(incrementAt(bps, 10n), 1n); // at least one wei
  assert.equal(minimumNext({ price: '1000', startPrice: '1', increment: bps }), 1025n);
  assert.equal(minimumNext({ price: '1000', startPrice: '1', increment: null }), null);
});
