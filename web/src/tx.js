// A plain ETH transfer signed in the browser with the demo key: how a winner who signed in with a
// demo key pays for a lot on the local dev chain. Legacy transaction with EIP-155 replay
// protection, RLP-encoded as the Yellow Paper (appendix B) lays it out. No DOM, no network.

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';

/** A plain transfer's gas. */
export const TRANSFER_GAS = 21_000n;

/** A non-negative integer as minimal big-endian bytes (zero is the empty string). */
export function integerBytes(value) {
  if (typeof value !== 'bigint' || value < 0n) throw new RangeError(`not a non-negative BigInt: ${value}`);
  if (value === 0n) return new Uint8Array(0);
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return hexToBytes(hex);
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function lengthPrefix(length, short) {
  if (length < 56) return Uint8Array.of(short + length);
  const size = integerBytes(BigInt(length));
  return concat([Uint8Array.of(short + 55 + size.length), size]);
}

/** RLP of a byte string (Uint8Array) or a list of items. */
export function rlp(item) {
  if (Array.isArray(item)) {
    const body = concat(item.map(rlp));
    return concat([lengthPrefix(body.length, 0xc0), body]);
  }
  if (!(item instanceof Uint8Array)) throw new TypeError('RLP takes byte strings and lists');
  if (item.length === 1 && item[0] < 0x80) return item;
  return concat([lengthPrefix(item.length, 0x80), item]);
}

function addressBytes(address) {
  const hex = String(address).replace(/^0x/, '');
  if (!/^[0-9a-fA-F]{40}$/.test(hex)) throw new Error(`not an Ethereum address: ${address}`);
  return hexToBytes(hex);
}

/**
 * Signs a transfer of `value` wei to `to`: answers `{raw, hash}` (0x-hex), `raw` being what
 * `eth_sendRawTransaction` takes and `hash` the transaction's hash.
 */
export function signTransfer({ secretKey, nonce, gasPrice, gasLimit = TRANSFER_GAS, to, value, chainId }) {
  const fields = [integerBytes(nonce), integerBytes(gasPrice), integerBytes(gasLimit), addressBytes(to), integerBytes(value), new Uint8Array(0)];
  const chain = BigInt(chainId);
  const digest = keccak_256(rlp([...fields, integerBytes(chain), new Uint8Array(0), new Uint8Array(0)]));
  // 'recovered' is the recovery id (0/1) followed by r || s; low-s, as Ethereum requires.
  const signature = secp256k1.sign(digest, secretKey, { prehash: false, format: 'recovered' });
  const v = chain * 2n + 35n + BigInt(signature[0]);
  const r = BigInt(`0x${bytesToHex(signature.subarray(1, 33))}`);
  const s = BigInt(`0x${bytesToHex(signature.subarray(33, 65))}`);
  const raw = rlp([...fields, integerBytes(v), integerBytes(r), integerBytes(s)]);
  return { raw: `0x${bytesToHex(raw)}`, hash: `0x${bytesToHex(keccak_256(raw))}` };
}
