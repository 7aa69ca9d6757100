import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  addressOf,
  normaliseSignature,
  parseSecretKey,
  personalSign,
  recoverPersonalSigner,
  siweMessage,
  toChecksumAddress,
} from '../src/eth.js';

// anvil's public test key #0 (never use it elsewhere).
const KEY0 = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

test('addresses are derived and checksummed (EIP-55)', () => {
  assert.equal(addressOf(parseSecretKey(KEY0)), '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
  assert.equal(toChecksumAddress('0x70997970c51812dc3a010c7d01b50e0d17dc79c8'), '0x70997970C51812dc3A010C7d01b50e0d17dc79C8');
  assert.throws(() => toChecksumAddress('0x1234'));
});

test('personal_sign matches what a wallet answers (EIP-191, v = 27/28)', () => {
  // The signature anvil's own personal_sign returns for "hello" with key #0.
  const expected =
    '0xf16ea9a3478698f695fd1401bfe27e9e4a7e8e3da94aa72b021125e31fa899cc573c48ea3fe1d4ab61a9db10c19032026e3ed2dbccba5a178235ac27f94504311c';
  const signature = personalSign(parseSecretKey(KEY0), 'hello');
  assert.equal(signature, expected);
  assert.equal(recoverPersonalSigner('hello', signature), '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
  const v = parseInt(signature.slice(-2), 16);
  assert.ok(v === 27 || v === 28);
});

test('wallet signatures with v = 0/1 are normalised', () => {
  const signature = personalSign(parseSecretKey(KEY0), 'x');
  const low = signature.slice(0, -2) + (parseInt(signature.slice(-2), 16) - 27).toString(16).padStart(2, '0');
  assert.equal(normaliseSignature(low), signature);
  assert.throws(() => normaliseSignature('0x1234'));
});

test('the SIWE message is laid out like the demo seeder signs it', () => {
  const message = siweMessage({
    domain: 'localhost:8080',
    address: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266',
    statement: 'Sign in to Gavel',
    uri: 'http://localhost:8080',
    chainId: 31337,
    nonce: 'abcdefghijklmnopqrstuvwxyz012345',
    issuedAt: new Date('2026-11-23T12:00:00.678Z'),
  });
  assert.equal(
    message,
    [
      'localhost:8080 wants you to sign in with your Ethereum account:',
      '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266',
      '',
      'Sign in to Gavel',
      '',
      'URI: http://localhost:8080',
      'Version: 1',
      'Chain ID: 31337',
      'Nonce: abcdefghijklmnopqrstuvwxyz012345',
      'Issued At: 2026-11-23T12:00:00Z',
    ].join('\n'),
  );
});
