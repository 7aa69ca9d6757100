// Ethereum bits the client needs: keccak-256, EIP-55 addresses, EIP-191 personal_sign with a local
// key, and the EIP-4361 (Sign-In with Ethereum) message the `wallets` service verifies.

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';

export { bytesToHex, hexToBytes };

/** EIP-55 mixed-case checksum of a 20-byte address given as hex (with or without 0x). */
export function toChecksumAddress(address) {
  const hex = String(address).toLowerCase().replace(/^0x/, '');
  if (!/^[0-9a-f]{40}$/.test(hex)) throw new Error(`not an Ethereum address: ${address}`);
  const hash = bytesToHex(keccak_256(utf8ToBytes(hex)));
  let out = '0x';
  for (let i = 0; i < 40; i += 1) {
    out += parseInt(hash[i], 16) >= 8 ? hex[i].toUpperCase() : hex[i];
  }
  return out;
}

/** The checksummed address of a secp256k1 secret key (32 bytes). */
export function addressOf(secretKey) {
  const publicKey = secp256k1.getPublicKey(secretKey, false); // 0x04 || X || Y
  const hash = keccak_256(publicKey.subarray(1));
  return toChecksumAddress(bytesToHex(hash.subarray(12)));
}

/** A fresh random secret key, as 0x-hex. */
export function newSecretKey() {
  const { secretKey } = secp256k1.keygen();
  return `0x${bytesToHex(secretKey)}`;
}

/** Parses a 0x-hex secret key, throwing if it is not a valid secp256k1 scalar. */
export function parseSecretKey(hex) {
  const bytes = hexToBytes(String(hex).replace(/^0x/, ''));
  if (bytes.length !== 32 || !secp256k1.utils.isValidSecretKey(bytes)) {
    throw new Error('not a secp256k1 secret key');
  }
  return bytes;
}

/** keccak256("\x19Ethereum Signed Message:\n" + len(message) + message), EIP-191 version 0x45. */
export function personalMessageHash(message) {
  const body = utf8ToBytes(message);
  const prefix = utf8ToBytes(`\x19Ethereum Signed Message:\n${body.length}`);
  const joined = new Uint8Array(prefix.length + body.length);
  joined.set(prefix);
  joined.set(body, prefix.length);
  return keccak_256(joined);
}

/** personal_sign with a local key: 0x || r (32) || s (32) || v (27 or 28), as wallets return it. */
export function personalSign(secretKey, message) {
  const hash = personalMessageHash(message);
  // 'recovered' is the recovery id (0/1) followed by r || s.
  const recovered = secp256k1.sign(hash, secretKey, { prehash: false, format: 'recovered' });
  const out = new Uint8Array(65);
  out.set(recovered.subarray(1, 65), 0);
  out[64] = 27 + recovered[0];
  return `0x${bytesToHex(out)}`;
}

/** Normalises a wallet's signature to 65 bytes with v = 27/28 (some wallets answer 0/1). */
export function normaliseSignature(signature) {
  const hex = String(signature).replace(/^0x/, '');
  if (!/^[0-9a-fA-F]{130}$/.test(hex)) throw new Error('the wallet returned a malformed signature');
  const bytes = hexToBytes(hex);
  if (bytes[64] < 27) bytes[64] += 27;
  return `0x${bytesToHex(bytes)}`;
}

/** The address that signed `message` (personal_sign) with `signature`, checksummed. */
export function recoverPersonalSigner(message, signature) {
  const bytes = hexToBytes(normaliseSignature(signature).slice(2));
  const recovered = new Uint8Array(65);
  recovered[0] = bytes[64] - 27;
  recovered.set(bytes.subarray(0, 64), 1);
  const publicKey = secp256k1.recoverPublicKey(recovered, personalMessageHash(message), {
    prehash: false,
  });
  const point = secp256k1.Point.fromBytes(publicKey).toBytes(false);
  return toChecksumAddress(bytesToHex(keccak_256(point.subarray(1)).subarray(12)));
}

/** RFC 3339 UTC with whole seconds, as the SIWE parser and the demo seeder write it. */
export function rfc3339Seconds(date) {
  return new Date(Math.floor(date.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * The EIP-4361 message, laid out exactly like `crates/demo` signs it:
 *
 *   {domain} wants you to sign in with your Ethereum account:
 *   {address}
 *
 *   {statement}
 *
 *   URI: {uri}
 *   Version: 1
 *   Chain ID: {chainId}
 *   Nonce: {nonce}
 *   Issued At: {issuedAt}
 */
export function siweMessage({ domain, address, statement, uri, chainId, nonce, issuedAt }) {
  const lines = [
    `${domain} wants you to sign in with your Ethereum account:`,
    toChecksumAddress(address),
    '',
  ];
  if (statement) lines.push(statement, '');
  lines.push(
    `URI: ${uri}`,
    'Version: 1',
    `Chain ID: ${chainId}`,
    `Nonce: ${nonce}`,
    `Issued At: ${rfc3339Seconds(issuedAt)}`,
  );
  return lines.join('\n');
}

/** UTF-8 text as 0x-hex, the form `personal_sign` takes in EIP-1193 wallets. */
export function utf8Hex(text) {
  return `0x${bytesToHex(utf8ToBytes(text))}`;
}
