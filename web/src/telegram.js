// Telegram alerts: the one-time link code the notifier issues (`POST /api/link-codes`, forwarded
// by the gateway), read and put into words. No DOM here.

import { ApiError } from './api.js';

/**
 * The notifier's answer, checked: {code, command, expiresAt (ms since the epoch, server clock),
 * bot (the bot's username, or null when the notifier runs dry), botUrl}. Throws an Error if it
 * is not usable.
 */
export function parseLinkCode(data) {
  const code = typeof data?.code === 'string' ? data.code.trim() : '';
  if (!code) throw new Error('The server answered without a code');
  const expiresAt = Date.parse(data.expires_at);
  if (Number.isNaN(expiresAt)) throw new Error('The server answered without a valid expiry');
  const command = typeof data.command === 'string' && data.command.trim() ? data.command.trim() : `/link ${code}`;
  const bot = typeof data.bot === 'string' && /^[A-Za-z0-9_]{5,32}$/.test(data.bot) ? data.bot : null;
  return { code, command, expiresAt, bot, botUrl: bot ? `https://t.me/${bot}` : null };
}

/** Where to send the code, in words. */
export function sendTo(link, minutes) {
  const within = `within ${minutes} ${minutes === 1 ? 'minute' : 'minutes'}`;
  if (!link.bot) {
    return `This Gavel runs its Telegram bot dry (no bot token, as on a local run): the code works, but no alert leaves. Send it to the bot ${within} where one is configured:`;
  }
  return `Send this to @${link.bot} on Telegram ${within} to get outbid, won and payment alerts:`;
}

/** Milliseconds left before `expiresAt` at `now` (both on the server's clock), never negative. */
export function remainingMs(expiresAt, now) {
  return Math.max(0, expiresAt - now);
}

/** Words for a failure of `POST /api/link-codes`; `signIn` says whether signing in again helps. */
export function describeLinkCodeError(error) {
  if (error instanceof ApiError) {
    if (error.status === 401 || error.code === 'unauthorized') {
      return { text: 'Your sign-in has expired or was refused: sign in again to get a code.', signIn: true };
    }
    if (error.code === 'network' || error.status === 0) {
      return { text: 'The server cannot be reached: check your connection and try again.', signIn: false };
    }
    if (error.code === 'upstream_unavailable' || error.status === 502 || error.status === 503 || error.status === 504) {
      return { text: 'Telegram alerts are unavailable right now: try again in a moment.', signIn: false };
    }
    if (error.status === 429) {
      return { text: 'Too many codes asked for in a short time: wait a moment and try again.', signIn: false };
    }
    const why = String(error.detail || error.title || error.message || '').replace(/\.$/, '');
    return { text: `No code could be made${why ? `: ${why}` : ''}.`, signIn: false };
  }
  return { text: error?.message || String(error), signIn: false };
}
