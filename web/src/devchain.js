// The local dev chain (anvil) that `/api/config` names in `rpc_url` on local runs (null in
// production): JSON-RPC calls to it, and minting test ETH with `anvil_setBalance`. No DOM here.

import { WEI_PER_ETH } from './wei.js';

/** What "Add test ETH" adds. */
export const TEST_FUNDS_WEI = 10n * WEI_PER_ETH;
const MAX_U256 = 2n ** 256n - 1n;

export class RpcError extends Error {
  /** kind: 'network' | 'http' | 'invalid' | 'rpc'; code: the JSON-RPC error code, if any. */
  constructor(message, kind, code = null) {
    super(message);
    this.name = 'RpcError';
    this.kind = kind;
    this.code = code;
  }
}

/** A usable dev chain URL (http or https), or null: anything else is never called. */
export function devChainUrl(value) {
  if (typeof value !== 'string' || !value.trim()) return null;
  const text = value.trim();
  try {
    const { protocol } = new URL(text);
    return protocol === 'http:' || protocol === 'https:' ? text : null;
  } catch {
    return null;
  }
}

/** A wei amount (BigInt) as a JSON-RPC QUANTITY: "0x" + hex without leading zeros ("0x0"). */
export function toQuantity(wei) {
  if (typeof wei !== 'bigint') throw new TypeError(`not a BigInt: ${wei}`);
  if (wei < 0n || wei > MAX_U256) throw new RangeError(`out of the uint256 range: ${wei}`);
  return `0x${wei.toString(16)}`;
}

/** A JSON-RPC QUANTITY ("0x1bc16d674ec80000") as a BigInt. */
export function fromQuantity(hex) {
  if (typeof hex !== 'string' || !/^0x[0-9a-fA-F]+$/.test(hex)) {
    throw new RpcError(`not a quantity: ${JSON.stringify(hex)}`, 'invalid');
  }
  return BigInt(hex);
}

let nextId = 1;

/** One JSON-RPC 2.0 call; answers `result`, throws RpcError. */
export async function rpcCall(url, method, params, { fetchImpl = (...args) => fetch(...args), signal } = {}) {
  let response;
  try {
    response = await fetchImpl(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
      signal,
    });
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new RpcError(`The dev chain at ${url} cannot be reached`, 'network');
  }
  if (!response.ok) throw new RpcError(`The dev chain answered HTTP ${response.status}`, 'http');
  let body;
  try {
    body = await response.json();
  } catch {
    throw new RpcError('The dev chain answered something that is not JSON', 'invalid');
  }
  if (body?.error) {
    throw new RpcError(body.error.message || `The dev chain refused ${method}`, 'rpc', body.error.code ?? null);
  }
  if (!body || !('result' in body)) throw new RpcError(`The dev chain gave no result for ${method}`, 'invalid');
  return body.result;
}

/**
 * Adds `amount` wei to `address` on an anvil chain: reads its balance at "latest", then sets it to
 * that plus `amount`. Answers {before, after} in wei.
 */
export async function addTestFunds(url, address, { amount = TEST_FUNDS_WEI, fetchImpl, signal } = {}) {
  const options = { fetchImpl, signal };
  const before = fromQuantity(await rpcCall(url, 'eth_getBalance', [address, 'latest'], options));
  const after = before + amount;
  await rpcCall(url, 'anvil_setBalance', [address, toQuantity(after)], options);
  return { before, after };
}

/**
 * Calls `check` until it answers something truthy (answered) or `timeoutMs` has passed (null),
 * waiting `intervalMs` between calls, never past the deadline.
 */
export async function pollUntil(
  check,
  {
    timeoutMs = 10_000,
    intervalMs = 500,
    now = () => Date.now(),
    sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  } = {},
) {
  const deadline = now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result) return result;
    const left = deadline - now();
    if (left <= 0) return null;
    await sleep(Math.min(intervalMs, left));
  }
}

/** Words for a failure of `addTestFunds`. */
export function describeDevFundsError(error) {
  if (error instanceof RpcError) {
    if (error.kind === 'network') return `${error.message}: is anvil running?`;
    if (error.kind === 'rpc' && error.code === -32601) {
      return 'This chain does not accept anvil_setBalance: it is not an anvil dev chain.';
    }
    return error.message;
  }
  if (error instanceof RangeError) return 'This balance cannot grow any more.';
  return error?.message || String(error);
}
