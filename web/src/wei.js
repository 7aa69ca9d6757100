// Exact conversions between ETH decimals (what people type and read) and wei (what the APIs
// speak: decimal strings). BigInt only: a float never touches an amount.

export const WEI_PER_ETH = 10n ** 18n;
const DECIMALS = 18;

/** A wei amount from the API (decimal string, number or bigint) as a BigInt; null if absent. */
export function toWei(value) {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`not an exact wei amount: ${value}`);
    return BigInt(value);
  }
  const text = String(value).trim();
  if (!/^\d+$/.test(text)) throw new Error(`not a wei amount: ${text}`);
  return BigInt(text);
}

/**
 * Parses what a person typed as ETH ("1", "0.25", ".5", "1,5") into wei. Throws an Error with a
 * readable message for anything that is not a non-negative decimal with at most 18 decimals.
 */
export function parseEth(input) {
  const text = String(input ?? '').trim().replace(',', '.');
  if (text === '') throw new Error('Enter an amount in ETH');
  const match = /^(\d*)(?:\.(\d*))?$/.exec(text);
  if (!match || (match[1] === '' && (match[2] ?? '') === '')) {
    throw new Error('Enter a number of ETH, like 0.05');
  }
  const whole = match[1] || '0';
  const fraction = match[2] ?? '';
  if (fraction.length > DECIMALS) throw new Error('ETH has at most 18 decimals');
  return BigInt(whole) * WEI_PER_ETH + BigInt(fraction.padEnd(DECIMALS, '0') || '0');
}

/**
 * Formats wei as an exact ETH decimal without trailing zeros ("0.015", "2", "0.000000000000000001").
 * `maxDecimals` rounds down for compact display; the exact form is the default.
 */
export function formatEth(wei, { maxDecimals = DECIMALS } = {}) {
  const value = toWei(wei);
  if (value === null) return '';
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / WEI_PER_ETH;
  let fraction = (abs % WEI_PER_ETH).toString().padStart(DECIMALS, '0').slice(0, maxDecimals);
  fraction = fraction.replace(/0+$/, '');
  const digits = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009');
  return `${negative ? '-' : ''}${digits}${fraction ? `.${fraction}` : ''}`;
}

/** The exact ETH decimal for an input field (no digit grouping). */
export function ethForInput(wei) {
  return formatEth(wei).replace(/\u2009/g, '');
}

/** `wei` formatted for reading, with its unit: "0.015 ETH"; tiny amounts keep every digit. */
export function showEth(wei) {
  const value = toWei(wei);
  if (value === null) return '—';
  return `${formatEth(value)} ETH`;
}

/** The lot's increment at `price`, as the engine computes it (services/bids/src/rules). */
export function incrementAt(increment, price) {
  if (!increment) return null;
  if (increment.kind === 'absolute') {
    const step = toWei(increment.wei);
    return step > 1n ? step : 1n;
  }
  if (increment.kind === 'basis_points') {
    const step = (toWei(price) * BigInt(increment.bps)) / 10000n;
    return step > 1n ? step : 1n;
  }
  return null;
}

/** The least the next bid may be: the start price before any bid, else price + increment. */
export function minimumNext({ price, startPrice, increment }) {
  const current = toWei(price);
  if (current === null) return toWei(startPrice);
  const step = incrementAt(increment, current);
  return step === null ? null : current + step;
}
