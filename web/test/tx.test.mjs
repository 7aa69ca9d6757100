import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { integerBytes, rlp, signTransfer } from '../src/tx.js';

const hex = (bytes) => bytesToHex(bytes);
const utf8 = (text) => new TextEncoder().encode(text);

test('RLP encodes strings, integers and lists as the Yellow Paper examples', () => {
  assert.equal(hex(rlp(utf8('dog'))), '83646f67');
  assert.equal(hex(rlp([utf8('cat'), utf8('dog')])), 'c88363617483646f67');
  assert.equal(hex(rlp(new Uint8Array(0))), '80');
  assert.equal(hex(rlp([])), 'c0');
  assert.equal(hex(rlp(integerBytes(0n))), '80');
  assert.equal(hex(rlp(integerBytes(15n))), '0f');
  assert.equal(hex(rlp(integerBytes(1024n))), '820400');
  assert.equal(hex(rlp([[], [[]], [[], [[]]]])), 'c7c0c1c0c3c0c1c0');
  const long = utf8('Lorem ipsum dolor sit amet, consectetur adipisicing elit');
  assert.equal(hex(rlp(long)).slice(0, 4), 'b838', 'a string of 56 bytes takes a length of its own');
  assert.throws(() => integerBytes(-1n));
  assert.throws(() => rlp('text'));
});

test('a transfer is signed exactly like the EIP-155 example', () => {
  // The example in EIP-155: nonce 9, 20 gwei, 21000 gas, 1 ETH to 0x3535…35, chain id 1, key 0x4646…46.
  const signed = signTransfer({
    secretKey: hexToBytes('46'.repeat(32)),
    nonce: 9n,
    gasPrice: 20_000_000_000n,
    gasLimit: 21_000n,
    to: `0x${'35'.repeat(20)}`,
    value: 10n ** 18n,
    chainId: 1,
  });
  assert.equal(
    signed.raw,
    '0xf86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83',
  );
  assert.match(signed.hash, /^0x[0-9a-f]{64}$/);
  assert.throws(() => signTransfer({ secretKey: hexToBytes('46'.repeat(32)), nonce: 0n, gasPrice: 1n, to: '0x12', value: 1n, chainId: 1 }));
});
