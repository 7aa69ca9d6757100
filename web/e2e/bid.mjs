// End-to-end, through the gateway and real services, in three browsers:
// - an anonymous watcher (B) and a bidder (A) on the same open lot: A signs in with a fresh demo
//   key, is funded on the dev chain, bids the minimum; A sees its bid accepted, B sees the new price
//   and a new history row live, without reloading;
// - A puts a lot up with a photo; C signs in through an injected EIP-1193 wallet (anvil signs);
// - C outbids A: A's page says "outbid" at once, offers the new minimum and says so in the tab title;
// - two short lots of A's close: C wins one and pays through the injected wallet
//   (`eth_sendTransaction`, anvil answers), B (now signed in with a demo key) wins the other and
//   pays with a transfer the page signs itself; each page follows its payment to "paid", and the
//   seller's page shows "paid"; after a reload an ended lot still says how it ended;
// - a card in the catalogue moves live; the phone's bid bar stays on screen;
// - D signs in at a second allowed origin (and sees photos through it), and is refused, with where
//   to go instead, at a host name that is not allowed.
//
//   node web/e2e/bid.mjs
//
// GAVEL_WEB_URL  the gateway (default http://localhost:8080; `localhost`, the SIWE domain)
// GAVEL_RPC_URL  the dev chain's JSON-RPC, anvil (default http://127.0.0.1:8545)
// GAVEL_SECOND_ORIGIN  the gateway under a second allowed origin (default: 127.0.0.1 for localhost)
// CHROMIUM       the browser (default /usr/bin/chromium)
// Screenshots go to web/e2e/artifacts/. Exits non-zero, with the reason, on failure.

import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const WEB_URL = (process.env.GAVEL_WEB_URL || 'http://localhost:8080').replace(/\/+$/, '');
const RPC_URL = process.env.GAVEL_RPC_URL || 'http://127.0.0.1:8545';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), 'artifacts');
const FUNDS_WEI = 10n * 10n ** 18n;
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const OVERALL_MS = 300_000;
/** The gateway again under a second, allowed origin (`sign_in.origins` in scripts/up). */
const SECOND_ORIGIN = process.env.GAVEL_SECOND_ORIGIN || WEB_URL.replace('//localhost', '//127.0.0.1');
/** A name that resolves to the gateway but is not an allowed origin. */
const ELSEWHERE_HOST = 'gavel-elsewhere.test';

class Failure extends Error {}

const started = Date.now();
const log = (message) => console.log(`[e2e +${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);

/** Polls `check` until it returns something truthy; throws with `what` (and the last value) at the deadline. */
async function until(what, check, { timeout = 20_000, interval = 250 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      if (error instanceof Failure) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const seen = lastError ? `; last error: ${lastError.message}` : last !== undefined ? `; last value: ${JSON.stringify(last)}` : '';
      throw new Failure(`timed out after ${timeout} ms waiting for ${what}${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

async function rpc(method, params) {
  let response;
  try {
    response = await fetch(RPC_URL, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
  } catch (error) {
    throw new Failure(`the dev chain at ${RPC_URL} cannot be reached (${error.cause?.code ?? error.message}): is anvil running?`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok || !body || body.error) {
    throw new Failure(`${method} on ${RPC_URL} failed: ${JSON.stringify(body?.error ?? body ?? response.status)}`);
  }
  return body.result;
}

/** Records what a page says and does, for the failure report. */
function watchPage(page, name, journal) {
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      journal.push(`${name} console.${message.type()}: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => {
    journal.push(`${name} UNCAUGHT: ${error.message}`);
    journal.uncaught.push(`${name}: ${error.message}`);
  });
  page.on('requestfailed', (request) => journal.push(`${name} request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText ?? ''}`));
  page.on('websocket', (ws) => {
    journal.push(`${name} websocket ${ws.url()}`);
    ws.on('framesent', (frame) => journal.frames.push(`${name} → ${redact(String(frame.payload))}`));
    ws.on('framereceived', (frame) => journal.frames.push(`${name} ← ${String(frame.payload).slice(0, 400)}`));
    ws.on('close', () => journal.push(`${name} websocket closed`));
  });
}

function redact(text) {
  return text.replace(/"token":"[^"]+"/, '"token":"…"');
}

const testid = (page, id) => page.locator(`[data-testid="${id}"]`);

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** A real `width`×`height` RGB PNG (a blue gradient) for the seller's upload. */
function png(width, height) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x += 1) row.set([40, 60 + y, 120 + x], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function attribute(locator, name) {
  return (await locator.count()) ? locator.first().getAttribute(name) : null;
}

/** Places the minimum bid on the lot page `page` shows; answers the amount in wei. */
async function bidTheMinimum(page, name, { fund = false } = {}) {
  await until(`${name} subscribed (a snapshot applied)`, async () => {
    const sequence = await attribute(testid(page, 'lot-price'), 'data-sequence');
    return sequence && sequence !== '0' ? sequence : null;
  });
  if (fund) {
    let lastRefresh = 0;
    await until(`${name} to see its funds`, async () => {
      const wei = await attribute(testid(page, 'balance'), 'data-wei');
      if (wei && BigInt(wei) >= 10n ** 18n) return wei;
      if (Date.now() - lastRefresh > 1_000) {
        lastRefresh = Date.now();
        await testid(page, 'balance-refresh').click();
      }
      return null;
    });
  }
  await until(`${name}'s minimum button to be ready`, async () => !(await testid(page, 'bid-min').isDisabled()));
  await testid(page, 'bid-min').click();
  const wei = await attribute(testid(page, 'bid-min'), 'data-wei');
  await testid(page, 'bid-submit').click();
  const state = await until(`an answer to ${name}'s bid`, async () => {
    const shown = await attribute(testid(page, 'bid-status'), 'data-state');
    return shown === 'accepted' || shown === 'error' ? shown : null;
  });
  if (state !== 'accepted') {
    throw new Failure(`${name}'s bid was refused (${await attribute(testid(page, 'bid-status'), 'data-code')}): ${await testid(page, 'bid-status').textContent()}`);
  }
  return wei;
}

/**
 * A lot of the seller's (REST, with its token) that opened a moment ago and ends in `endsInMs`
 * (30 s by default: the shortest auction is a minute, and its start may be up to a minute back).
 */
async function putUp(token, what, { endsInMs = 30_000 } = {}) {
  const now = Date.now();
  const body = {
    title: `Lot ${what} ${now}`,
    description: 'Put up by the browser test.',
    asset: 'ETH',
    start_price: '10000000000000000',
    increment: { kind: 'absolute', wei: '5000000000000000' },
    starts_at: new Date(now - 35_000).toISOString(),
    ends_at: new Date(now + endsInMs).toISOString(),
    snipe_window_secs: 0,
    extension_secs: 0,
  };
  const response = await fetch(`${WEB_URL}/api/lots`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => null);
  if (response.status !== 201) throw new Failure(`POST /api/lots answered ${response.status}: ${JSON.stringify(answer)}`);
  return { id: answer.id, title: body.title, endsAt: body.ends_at };
}

async function main() {
  const host = new URL(WEB_URL).hostname;
  if (host !== 'localhost') {
    log(`warning: GAVEL_WEB_URL's host is ${host}; sign-in messages name the page's host and the local stack expects localhost:8080`);
  }
  await mkdir(ARTIFACTS, { recursive: true });
  for (const stale of await readdir(ARTIFACTS)) {
    if (stale.startsWith('failure')) await rm(join(ARTIFACTS, stale), { force: true });
  }

  const journal = [];
  journal.frames = [];
  journal.uncaught = [];
  const browser = await chromium
    .launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // A host name the site is not configured for, to see its sign-in refused clearly.
        `--host-resolver-rules=MAP ${ELSEWHERE_HOST} 127.0.0.1`,
      ],
    })
    .catch((error) => {
      throw new Failure(`chromium could not be started from ${CHROMIUM}: ${error.message.split('\n')[0]}`);
    });

  const pages = {};
  const overall = setTimeout(() => {
    console.error(`e2e: FAILED: the whole run took more than ${OVERALL_MS / 1000} s`);
    process.exit(1);
  }, OVERALL_MS);
  try {
    // --- B: an anonymous watcher opens the first open lot -------------------------------------
    const contextB = await browser.newContext({ viewport: DESKTOP, baseURL: WEB_URL });
    const b = await contextB.newPage();
    pages.b = b;
    watchPage(b, 'B', journal);
    const answer = await b.goto(`${WEB_URL}/`).catch((error) => {
      throw new Failure(`the client at ${WEB_URL} cannot be loaded: ${error.message.split('\n')[0]}`);
    });
    if (!answer?.ok()) throw new Failure(`GET ${WEB_URL}/ answered ${answer?.status()}`);
    const firstOpen = b.locator('[data-testid="lot-link"][data-status="open"]').first();
    await until('an open lot in the catalogue (are the demo lots seeded?)', async () => (await firstOpen.count()) > 0);
    const lotId = await firstOpen.getAttribute('data-lot-id');
    const lotTitle = (await firstOpen.locator('h2').textContent())?.trim();
    log(`B opens the first open lot: "${lotTitle}" (${lotId})`);
    await firstOpen.click();
    await until('B on the lot page', async () => new URL(b.url()).pathname === `/lots/${lotId}`);
    await until('B subscribed (a snapshot applied)', async () => {
      const sequence = await attribute(testid(b, 'lot-price'), 'data-sequence');
      return sequence && sequence !== '0' ? sequence : null;
    });
    await until('B connected (indicator "live")', async () => (await attribute(testid(b, 'connection'), 'data-state')) === 'live');
    await until('B counted among the watchers', async () => {
      const count = await attribute(testid(b, 'watchers'), 'data-count');
      return count && Number(count) >= 1 ? count : null;
    });
    // Marks this document: if B reloads, the mark is gone.
    await b.evaluate(() => {
      window.__gavelE2eMark = 'B-not-reloaded';
    });
    // History comes over REST while the snapshot comes over the socket; let it settle.
    const bidCount = Number((await testid(b, 'bid-count').textContent())?.match(/\d+/)?.[0] ?? 0);
    await until(`B's history to show the lot's bids (${bidCount})`, async () => (await testid(b, 'bid-row').count()) >= Math.min(bidCount, 100), { timeout: 10_000 });
    const priceBefore = (await attribute(testid(b, 'lot-price'), 'data-wei')) || '0';
    const rowsBefore = await testid(b, 'bid-row').count();
    log(`B sees price ${priceBefore} wei, ${rowsBefore} bid(s) in the history`);

    // --- A: signs in with a new demo key, gets funds, opens the same lot ---------------------
    const contextA = await browser.newContext({ viewport: DESKTOP, baseURL: WEB_URL });
    const a = await contextA.newPage();
    pages.a = a;
    watchPage(a, 'A', journal);
    await a.goto(`${WEB_URL}/`);
    await testid(a, 'sign-in').click();
    await testid(a, 'demo-key').click();
    const address = await until(
      'A signed in (signed-in-address)',
      async () => {
        const error = testid(a, 'sign-in-error');
        if (await error.count()) throw new Failure(`sign-in failed: ${await error.textContent()}`);
        const shown = await attribute(testid(a, 'signed-in-address'), 'data-address');
        return shown || null;
      },
      { timeout: 20_000 },
    ).catch(async (error) => {
      const shown = await testid(a, 'sign-in-error').textContent().catch(() => null);
      throw shown ? new Failure(`sign-in failed: ${shown}`) : error;
    });
    if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new Failure(`signed-in-address is not an address: ${address}`);
    const shownText = (await testid(a, 'signed-in-address').textContent())?.trim();
    if (shownText !== address) throw new Failure(`signed-in-address shows "${shownText}", its data-address is ${address}`);
    log(`A signed in as ${address}`);

    await rpc('anvil_setBalance', [address, `0x${FUNDS_WEI.toString(16)}`]);
    const onChain = BigInt(await rpc('eth_getBalance', [address, 'latest']));
    if (onChain < FUNDS_WEI) throw new Failure(`funding ${address} did not take: balance ${onChain}`);
    log(`A funded with ${FUNDS_WEI} wei on ${RPC_URL}`);

    // A direct URL: the gateway serves index.html for client routes.
    await a.goto(`${WEB_URL}/lots/${lotId}`);
    await until('A subscribed (a snapshot applied)', async () => {
      const sequence = await attribute(testid(a, 'lot-price'), 'data-sequence');
      return sequence && sequence !== '0' ? sequence : null;
    });
    await until('A connected (indicator "live")', async () => (await attribute(testid(a, 'connection'), 'data-state')) === 'live');
    // Balances are cached for a moment by `wallets`: refresh until the funds show.
    let lastRefresh = 0;
    await until('A to see its funds (balance)', async () => {
      const wei = await attribute(testid(a, 'balance'), 'data-wei');
      if (wei && BigInt(wei) >= 10n ** 18n) return wei;
      if (Date.now() - lastRefresh > 1_000) {
        lastRefresh = Date.now();
        await testid(a, 'balance-refresh').click();
      }
      return null;
    });

    await until('the minimum button to be ready', async () => !(await testid(a, 'bid-min').isDisabled()));
    await testid(a, 'bid-min').click();
    const amountEth = await testid(a, 'bid-amount').inputValue();
    if (!amountEth) throw new Failure('the minimum button filled no amount');
    const minimumWei = await attribute(testid(a, 'bid-min'), 'data-wei');
    log(`A bids the minimum: ${amountEth} ETH (${minimumWei} wei)`);
    await testid(a, 'bid-submit').click();
    const outcome = await until('an answer to A\'s bid (bid-status)', async () => {
      const state = await attribute(testid(a, 'bid-status'), 'data-state');
      return state === 'accepted' || state === 'error' ? state : null;
    });
    const statusText = (await testid(a, 'bid-status').textContent())?.trim();
    if (outcome !== 'accepted') {
      const code = await attribute(testid(a, 'bid-status'), 'data-code');
      throw new Failure(`A's bid was refused (${code}): ${statusText}`);
    }
    const result = await attribute(testid(a, 'bid-status'), 'data-result');
    const bidId = await attribute(testid(a, 'bid-status'), 'data-bid-id');
    log(`A's bid accepted (${result}): ${statusText}`);

    // --- B sees it live, without reloading ---------------------------------------------------
    const priceAfter = await until('B to show a higher price', async () => {
      const wei = await attribute(testid(b, 'lot-price'), 'data-wei');
      return wei && BigInt(wei) > BigInt(priceBefore) ? wei : null;
    });
    if (BigInt(priceAfter) < BigInt(minimumWei)) {
      throw new Failure(`B shows price ${priceAfter}, below A's bid of ${minimumWei}`);
    }
    await until('a new row in B\'s bid history', async () => (await testid(b, 'bid-row').count()) > rowsBefore);
    if (bidId) {
      await until(`A's bid (${bidId}) in B's history`, async () => (await b.locator(`[data-testid="bid-row"][data-bid-id="${bidId}"]`).count()) === 1);
    }
    const mark = await b.evaluate(() => window.__gavelE2eMark);
    if (mark !== 'B-not-reloaded') throw new Failure('B reloaded its page: the update did not come live');
    const priceA = await until('A to show the same price', async () => {
      const wei = await attribute(testid(a, 'lot-price'), 'data-wei');
      return wei === priceAfter ? wei : null;
    });
    log(`B sees price ${priceAfter} wei and ${await testid(b, 'bid-row').count()} bid(s), live; A sees ${priceA}`);

    // --- Telegram alerts: a link code through the gateway from the notifier -------------------
    if (!(await testid(a, 'telegram-link').isVisible())) await testid(a, 'signed-in-address').click();
    await testid(a, 'telegram-link').click();
    const code = await until('A to get a Telegram link code', async () => {
      const error = testid(a, 'telegram-error');
      if (await error.count() && await error.isVisible()) throw new Failure(`link code failed: ${await error.textContent()}`);
      return attribute(testid(a, 'telegram-code'), 'data-code');
    });
    if (!/^[A-HJ-NP-Z2-9]{8}$/.test(code)) throw new Failure(`the link code looks wrong: ${code}`);
    const explained = (await testid(a, 'telegram-explanation').textContent())?.trim() ?? '';
    // The local run has no bot token: the panel must say so rather than name a bot.
    if (!/runs its Telegram bot dry|Send this to @/.test(explained)) throw new Failure(`the Telegram panel does not say where to send the code: "${explained}"`);
    log(`A got the Telegram link code ${code}: "${explained}"`);
    await a.screenshot({ path: join(ARTIFACTS, 'bidder-telegram.png'), fullPage: true });

    // --- the seller page: a lot with a photo, through the gateway to lots and S3 -------------
    const sellTitle = `Browser test lot ${Date.now()}`;
    await a.goto(`${WEB_URL}/sell`);
    await testid(a, 'sell-title').fill(sellTitle);
    await testid(a, 'sell-description').fill('Put up for auction by the browser test.');
    await testid(a, 'sell-start-price').fill('0.01');
    await testid(a, 'sell-increment').fill('0.005');
    await testid(a, 'sell-photos').setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: png(64, 48) });
    await testid(a, 'sell-submit').click();
    await until('the lot and its photo to be created', async () => {
      const errors = a.locator('[data-testid^="field-error-"]:visible');
      if (await errors.count()) throw new Failure(`the seller form refused: ${await errors.allTextContents()}`);
      // On success the client goes to the new lot; a link stays if it could not.
      if (await testid(a, 'sell-go-to-lot').count()) return 'link';
      return /\/lots\/[0-9a-f-]{36}$/.test(new URL(a.url()).pathname) ? 'moved' : null;
    }, { timeout: 30_000 });
    if (await testid(a, 'sell-go-to-lot').count()) await testid(a, 'sell-go-to-lot').click();
    await until('the new lot page', async () => (await testid(a, 'lot-title').textContent()) === sellTitle || null);
    const width = await until('the new lot to show its photo', () =>
      a.evaluate(() => {
        const image = document.querySelector('[data-testid="lot-photo"]');
        return image && image.complete && image.naturalWidth > 0 ? image.naturalWidth : null;
      }),
    );
    await until('the new lot to open for bidding', async () =>
      (await attribute(testid(a, 'lot-status'), 'data-status')) === 'open' || null,
    { timeout: 30_000 });
    const sellLotId = new URL(a.url()).pathname.split('/').pop();
    log(`A put up "${sellTitle}" with a ${width} px wide photo; it is open`);
    await a.screenshot({ path: join(ARTIFACTS, 'seller-lot.png'), fullPage: true });

    // --- an injected EIP-1193 wallet: anvil's dev account #2 signs, as MetaMask would ----------
    const walletAccount = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
    const contextC = await browser.newContext({ viewport: DESKTOP, baseURL: WEB_URL });
    await contextC.addInitScript(({ rpcUrl, account }) => {
      let id = 0;
      window.ethereum = {
        isE2eWallet: true,
        on() {},
        removeListener() {},
        async request({ method, params }) {
          if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [account];
          id += 1;
          const response = await fetch(rpcUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
          });
          const body = await response.json();
          if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code });
          return body.result;
        },
      };
    }, { rpcUrl: RPC_URL, account: walletAccount });
    const c = await contextC.newPage();
    pages.c = c;
    watchPage(c, 'C', journal);
    await c.goto(`${WEB_URL}/`);
    await testid(c, 'sign-in').click();
    await testid(c, 'sign-in-wallet').click();
    const walletShown = await until('C signed in with the injected wallet', async () => {
      const error = testid(c, 'sign-in-error');
      if (await error.count() && await error.isVisible()) throw new Failure(`wallet sign-in failed: ${await error.textContent()}`);
      return attribute(testid(c, 'signed-in-address'), 'data-address');
    });
    if (walletShown !== walletAccount) throw new Failure(`C signed in as ${walletShown}, not the wallet's ${walletAccount}`);
    log(`C signed in through an injected EIP-1193 wallet (anvil signs personal_sign) as ${walletShown}`);


    // --- B signs in with a demo key; A puts up lots for B and C to fight over ------------------
    await b.goto(`${WEB_URL}/`);
    await testid(b, 'sign-in').click();
    await testid(b, 'demo-key').click();
    const addressB = await until('B signed in with a demo key', async () => attribute(testid(b, 'signed-in-address'), 'data-address'));
    await rpc('anvil_setBalance', [addressB, `0x${FUNDS_WEI.toString(16)}`]);
    const sellerToken = await a.evaluate(() => JSON.parse(localStorage.getItem('gavel.session.v1') ?? 'null')?.token);
    if (!sellerToken) throw new Failure('A has no access token in localStorage (gavel.session.v1)');
    const contested = await putUp(sellerToken, 'contested', { endsInMs: 3_600_000 });

    // --- C outbids B: B's page says so at once, without reloading ------------------------------
    await b.goto(`${WEB_URL}/lots/${contested.id}`);
    await bidTheMinimum(b, 'B', { fund: true });
    await until('B to see that it leads', async () => (await attribute(testid(b, 'standing'), 'data-standing')) === 'leading' || null);
    await b.evaluate(() => {
      window.__gavelE2eMark = 'B-not-reloaded';
    });
    await c.goto(`${WEB_URL}/lots/${contested.id}`);
    const outbidBy = await bidTheMinimum(c, 'C');
    await until('B to be told it was outbid', async () => (await attribute(testid(b, 'standing'), 'data-standing')) === 'outbid' || null);
    const newMinimum = await until('B\'s form to offer a new minimum', async () => {
      const wei = await attribute(testid(b, 'bid-min'), 'data-wei');
      return wei && BigInt(wei) > BigInt(outbidBy) ? wei : null;
    });
    const tabTitle = await b.title();
    if (!tabTitle.startsWith('Outbid')) throw new Failure(`B's tab title does not say it was outbid: "${tabTitle}"`);
    if ((await b.evaluate(() => window.__gavelE2eMark)) !== 'B-not-reloaded') throw new Failure('B reloaded: the outbid was not live');
    log(`B sees "${(await testid(b, 'standing').textContent())?.trim()}", min ${newMinimum} wei, tab "${tabTitle}"`);
    await b.screenshot({ path: join(ARTIFACTS, 'bidder-outbid.png'), fullPage: true });

    // B leads again and goes to the catalogue; outbid there, it hears of it in a toast.
    await bidTheMinimum(b, 'B');
    await until('B to lead again', async () => (await attribute(testid(b, 'standing'), 'data-standing')) === 'leading' || null);
    // The newest first: the contested lot's card is on screen, and follows its lot live.
    await b.goto(`${WEB_URL}/?sort=newest`);
    await until('B connected (indicator "live")', async () => (await attribute(testid(b, 'connection'), 'data-state')) === 'live');
    const cardPrice = b.locator(`[data-testid="lot-link"][data-lot-id="${contested.id}"] [data-testid="lot-card-price"]`);
    const priceShown = await until('the contested lot\'s card in the catalogue', async () => attribute(cardPrice, 'data-wei'));
    const raisedTo = await bidTheMinimum(c, 'C');
    const toastText = await until('B to be told in a toast, on another page', async () => {
      const texts = await b.locator('.toast').allTextContents();
      return texts.find((text) => text.includes('outbid') && text.includes(contested.title)) ?? null;
    });
    await until(`the card's price to move live from ${priceShown} to ${raisedTo} wei`, async () => (await attribute(cardPrice, 'data-wei')) === raisedTo || null);
    log(`B on the catalogue: "${toastText}"; the card moved live to ${raisedTo} wei`);
    await b.screenshot({ path: join(ARTIFACTS, 'catalogue-live.png') });

    // --- two short lots of A's: C and B win one each and pay, each their own way ----------------
    const short = [await putUp(sellerToken, 'paid by a browser wallet'), await putUp(sellerToken, 'paid with a demo key')];
    log(`A put up two short lots ending ${short[0].endsAt}: ${short.map((lot) => lot.id).join(', ')}`);
    await Promise.all([c.goto(`${WEB_URL}/lots/${short[0].id}`), b.goto(`${WEB_URL}/lots/${short[1].id}`)]);
    await Promise.all([bidTheMinimum(c, 'C'), bidTheMinimum(b, 'B')]);
    log('C and B lead one short lot each; waiting for them to close');
    for (const [page, name] of [[c, 'C'], [b, 'B']]) {
      await until(`${name}'s lot to close and ${name} to be told it won`, async () => (await attribute(testid(page, 'standing'), 'data-standing')) === 'won' || null, { timeout: 60_000 });
      if (await testid(page, 'bid-form').isVisible()) throw new Failure(`${name}'s ended lot still shows the bid form`);
      await until(`${name}'s payment to be ready`, async () => (await attribute(testid(page, 'payment-panel'), 'data-state')) === 'to_pay' || null);
    }
    await c.screenshot({ path: join(ARTIFACTS, 'winner-to-pay.png'), fullPage: true });
    for (const [page, name] of [[c, 'C (browser wallet)'], [b, 'B (demo key)']]) {
      await testid(page, 'pay-button').click();
      await until(`${name}'s payment to be confirmed`, async () => {
        const error = testid(page, 'payment-error');
        if (await error.isVisible()) throw new Failure(`${name}'s payment failed: ${await error.textContent()}`);
        return (await attribute(testid(page, 'payment-panel'), 'data-state')) === 'paid' || null;
      }, { timeout: 30_000 });
      log(`${name}: "${(await testid(page, 'payment-text').textContent())?.trim()}"`);
    }
    await b.screenshot({ path: join(ARTIFACTS, 'winner-paid.png'), fullPage: true });

    // The seller follows the payment; after a reload the ended lot says how it ended.
    await a.goto(`${WEB_URL}/lots/${short[0].id}`);
    await until("the seller's page to show the lot paid", async () => (await attribute(testid(a, 'payment-panel'), 'data-state')) === 'paid' || null);
    await b.reload();
    const told = await until('B\'s reloaded ended lot to say it was sold, and to whom', async () => {
      const text = (await testid(b, 'outcome').textContent())?.trim();
      return text?.startsWith('Sold for') && text.includes(addressB.slice(0, 6)) ? text : null;
    });
    if (await testid(b, 'bid-form').isVisible()) throw new Failure('the reloaded ended lot shows the bid form');
    log(`the seller sees the lot paid; B's reloaded page says "${told}"`);
    await a.screenshot({ path: join(ARTIFACTS, 'seller-paid.png'), fullPage: true });

    // --- my auctions: each account's lots, where it stands, what it won, what it sells ---------
    const mineRow = (page, section, lot) => page.locator(`[data-testid="mine-${section}"] [data-testid="mine-row"][data-lot-id="${lot}"]`);
    await b.goto(`${WEB_URL}/lots/${contested.id}`);
    await testid(b, 'watch-toggle').click();
    await b.goto(`${WEB_URL}/me`);
    await until('B\'s auctions: outbid on the contested lot, watching it, the demo-key lot won and paid', async () =>
      (await attribute(mineRow(b, 'bidding', contested.id).locator('[data-testid="mine-standing"]'), 'data-standing')) === 'outbid'
      && (await mineRow(b, 'watching', contested.id).count()) === 1
      && (await attribute(mineRow(b, 'won', short[1].id).locator('[data-testid="mine-state"]'), 'data-state')) === 'paid');
    await b.screenshot({ path: join(ARTIFACTS, 'my-auctions-bidder.png'), fullPage: true });
    await c.goto(`${WEB_URL}/me`);
    await until('C\'s auctions: leading the contested lot, the browser-wallet lot won and paid', async () =>
      (await attribute(mineRow(c, 'bidding', contested.id).locator('[data-testid="mine-standing"]'), 'data-standing')) === 'leading'
      && (await attribute(mineRow(c, 'won', short[0].id).locator('[data-testid="mine-state"]'), 'data-state')) === 'paid');
    await a.goto(`${WEB_URL}/me`);
    await until('A\'s auctions: the sold lot paid, the lot without bids withdrawable', async () =>
      (await attribute(mineRow(a, 'selling', short[0].id).locator('[data-testid="mine-state"]'), 'data-state')) === 'paid'
      && (await mineRow(a, 'selling', sellLotId).locator('[data-testid="mine-withdraw"]').count()) === 1);
    if (await mineRow(a, 'selling', contested.id).locator('[data-testid="mine-withdraw"]').count()) {
      throw new Failure('a lot with bids offers to be withdrawn');
    }
    await mineRow(a, 'selling', sellLotId).locator('[data-testid="mine-withdraw"]').click();
    await mineRow(a, 'selling', sellLotId).locator('[data-testid="mine-withdraw"]').click();
    await until('the lot withdrawn', async () => (await attribute(mineRow(a, 'selling', sellLotId).locator('[data-testid="mine-state"]'), 'data-state')) === 'withdrawn');
    await a.screenshot({ path: join(ARTIFACTS, 'my-auctions-seller.png'), fullPage: true });
    await a.goto(`${WEB_URL}/lots/${sellLotId}`);
    await until('the withdrawn lot to say so', async () => (await attribute(testid(a, 'lot-status'), 'data-status')) === 'cancelled' || null);
    log('my auctions: B outbid and watching, C leading, both paid; A withdrew the lot without bids');

    // --- one origin: sign-in from a second allowed address works, from another fails clearly ---
    const contextD = await browser.newContext({ viewport: DESKTOP });
    const d = await contextD.newPage();
    pages.d = d;
    watchPage(d, 'D', journal);
    await d.goto(`${SECOND_ORIGIN}/lots/${sellLotId}`);
    await testid(d, 'sign-in').click();
    await testid(d, 'demo-key').click();
    const addressD = await until(`D signed in at ${SECOND_ORIGIN}`, async () => {
      const error = testid(d, 'sign-in-error');
      if (await error.count() && await error.isVisible()) throw new Failure(`sign-in at ${SECOND_ORIGIN} failed: ${await error.textContent()}`);
      return attribute(testid(d, 'signed-in-address'), 'data-address');
    });
    await until(`the photo, through ${SECOND_ORIGIN} alone`, () =>
      d.evaluate(() => {
        const image = document.querySelector('[data-testid="lot-photo"]');
        return image && image.complete && image.naturalWidth > 0 && new URL(image.src).origin === window.location.origin;
      }),
    );
    const elsewhere = new URL(WEB_URL);
    elsewhere.hostname = ELSEWHERE_HOST;
    await d.goto(`${elsewhere.origin}/`);
    await testid(d, 'sign-in').click();
    await testid(d, 'demo-key').click();
    const refusal = await until(`a clear refusal at ${elsewhere.origin}`, async () => {
      const error = testid(d, 'sign-in-error');
      return (await error.count()) && (await error.isVisible()) ? (await error.textContent())?.trim() : null;
    });
    if (!refusal.includes(elsewhere.host) || !refusal.includes('open Gavel at')) {
      throw new Failure(`the refusal at ${elsewhere.origin} does not say where to go: "${refusal}"`);
    }
    log(`D signed in at ${SECOND_ORIGIN} as ${addressD} and saw the photo there; at ${elsewhere.origin}: "${refusal}"`);
    await d.screenshot({ path: join(ARTIFACTS, 'sign-in-elsewhere.png') });

    if (journal.uncaught.length) throw new Failure(`uncaught errors in the pages: ${journal.uncaught.join('; ')}`);

    // --- screenshots -------------------------------------------------------------------------
    await a.screenshot({ path: join(ARTIFACTS, 'bidder-desktop.png'), fullPage: true });
    await b.screenshot({ path: join(ARTIFACTS, 'watcher-desktop.png'), fullPage: true });
    await b.setViewportSize(PHONE);
    await a.setViewportSize(PHONE);
    await b.screenshot({ path: join(ARTIFACTS, 'watcher-phone.png'), fullPage: true });
    await a.screenshot({ path: join(ARTIFACTS, 'bidder-phone.png'), fullPage: true });
    // On a phone the bid bar stays on screen below an open lot, wherever the page is scrolled.
    await c.setViewportSize(PHONE);
    await c.goto(`${WEB_URL}/lots/${contested.id}`);
    await until('C\'s phone bid bar', async () => (await testid(c, 'bid-bar').isVisible()) || null);
    await c.evaluate(() => window.scrollTo(0, 0));
    const bar = await testid(c, 'bid-bar').boundingBox();
    if (!bar || bar.y + bar.height > PHONE.height + 1 || bar.y < PHONE.height - 120) {
      throw new Failure(`the bid bar is not at the bottom of a phone screen: ${JSON.stringify(bar)}`);
    }
    await c.screenshot({ path: join(ARTIFACTS, 'bidder-phone-bid-bar.png') });
    await testid(c, 'bid-bar-button').click();
    await until('the bid bar to bring the form, filled with the minimum', async () => (await testid(c, 'bid-amount').inputValue()) || null);
    const overflow = await b.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) throw new Failure(`the lot page is ${overflow} px wider than a 390 px phone screen`);
    log(`screenshots in ${ARTIFACTS}`);
    console.log('e2e: 1 passed, 0 failed');
  } catch (error) {
    console.error(`e2e: FAILED: ${error instanceof Failure ? error.message : error.stack ?? error}`);
    for (const [name, page] of Object.entries(pages)) {
      await page.screenshot({ path: join(ARTIFACTS, `failure-${name}.png`), fullPage: true }).catch(() => {});
    }
    const report = [...journal, '--- WebSocket frames (last 80) ---', ...journal.frames.slice(-80)].join('\n');
    await writeFile(join(ARTIFACTS, 'failure.log'), `${report}\n`).catch(() => {});
    if (journal.length) console.error(`what the pages said (also in ${join(ARTIFACTS, 'failure.log')}):\n${journal.slice(-30).join('\n')}`);
    console.log('e2e: 0 passed, 1 failed');
    process.exitCode = 1;
  } finally {
    clearTimeout(overall);
    await browser.close().catch(() => {});
  }
}

main().catch((error) => {
  console.error(`e2e: FAILED: ${error instanceof Failure ? error.message : error.stack ?? error}`);
  process.exit(1);
});
