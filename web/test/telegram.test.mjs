// The Telegram link code: the notifier's answer checked, the time left, failures in words.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../src/api.js';
import { describeLinkCodeError, parseLinkCode, remainingMs, sendTo } from '../src/telegram.js';

test('a link code answer is read', () => {
  const parsed = parseLinkCode({ code: 'AB12CD34', expires_at: '2030-01-02T03:04:05.678Z', command: '/link AB12CD34' });
  assert.deepEqual(parsed, { code: 'AB12CD34', command: '/link AB12CD34', expiresAt: Date.UTC(2030, 0, 2, 3, 4, 5, 678), bot: null, botUrl: null });
  // An RFC 3339 offset and nanoseconds (chrono) parse too; a missing command is made up.
  const other = parseLinkCode({ code: 'ZZ99YY88', expires_at: '2030-01-02T05:04:05+02:00' });
  assert.equal(other.command, '/link ZZ99YY88');
  assert.equal(other.expiresAt, Date.UTC(2030, 0, 2, 3, 4, 5));
  assert.equal(parseLinkCode({ code: 'A', expires_at: '2030-01-02T03:04:05.123456789Z' }).expiresAt, Date.UTC(2030, 0, 2, 3, 4, 5, 123));
  for (const bad of [null, {}, { code: '' }, { code: 'AB', expires_at: 'soon' }, { code: 7, expires_at: '2030-01-01T00:00:00Z' }]) {
    assert.throws(() => parseLinkCode(bad), Error, JSON.stringify(bad));
  }
});

test('the time left never goes below zero', () => {
  assert.equal(remainingMs(10_000, 4_000), 6_000);
  assert.equal(remainingMs(10_000, 10_000), 0);
  assert.equal(remainingMs(10_000, 99_000), 0);
});

test('failures become words', () => {
  const expired = describeLinkCodeError(new ApiError(401, { code: 'unauthorized', title: 'Unauthorized' }));
  assert.equal(expired.signIn, true);
  assert.match(expired.text, /sign in again/);
  // The client's own "no token" refusal is the same case.
  assert.equal(describeLinkCodeError(new ApiError(401, { code: 'unauthorized', title: 'Sign in first' })).signIn, true);

  const down = describeLinkCodeError(new ApiError(502, { code: 'upstream_unavailable', title: 'Bad gateway' }));
  assert.equal(down.signIn, false);
  assert.match(down.text, /unavailable right now/);
  assert.match(describeLinkCodeError(new ApiError(503, {})).text, /unavailable right now/);

  assert.match(describeLinkCodeError(new ApiError(0, { code: 'network' })).text, /cannot be reached/);
  assert.match(describeLinkCodeError(new ApiError(429, { code: 'rate_limited' })).text, /Too many/);
  assert.equal(
    describeLinkCodeError(new ApiError(404, { code: 'not_found', title: 'Not Found', detail: 'no notifier configured.' })).text,
    'No code could be made: no notifier configured.',
  );
  assert.equal(describeLinkCodeError(new Error('The server answered without a code')).text, 'The server answered without a code');
});

test('the panel names the bot, or says the notifier runs dry', () => {
  const named = parseLinkCode({ code: 'ABCD2345', expires_at: '2026-12-06T10:00:00Z', bot: 'gavel_bot' });
  assert.equal(named.botUrl, 'https://t.me/gavel_bot');
  assert.equal(sendTo(named, 10), 'Send this to @gavel_bot on Telegram within 10 minutes to get outbid, won and payment alerts:');
  const dry = parseLinkCode({ code: 'ABCD2345', expires_at: '2026-12-06T10:00:00Z', bot: null });
  assert.equal(dry.bot, null);
  assert.match(sendTo(dry, 1), /runs its Telegram bot dry .* within 1 minute /);
  assert.equal(parseLinkCode({ code: 'ABCD2345', expires_at: '2026-12-06T10:00:00Z', bot: 'x"><script>' }).bot, null, 'only a Telegram username is named');
});
