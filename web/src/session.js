// Who is signed in: Sign-In with Ethereum (EIP-4361) with an injected wallet (EIP-1193) or with a
// demo key kept in this browser; the access token and its expiry are kept in localStorage.

import { api, setTokenSource } from './api.js';
import { addRoughSample, hasPingSample, serverNow } from './clock.js';
import { Emitter } from './dom.js';
import {
  addressOf,
  newSecretKey,
  normaliseSignature,
  parseSecretKey,
  personalSign,
  siweMessage,
  toChecksumAddress,
  utf8Hex,
} from './eth.js';

const SESSION_KEY = 'gavel.session.v1';
const DEMO_KEY = 'gavel.demo-key.v1';
/** A token this close to its expiry is not used any more. */
const EXPIRY_MARGIN_MS = 30_000;
const STATEMENT = 'Sign in to Gavel';

function readJson(key) {
  try {
    return JSON.parse(localStorage.getItem(key) ?? 'null');
  } catch {
    return null;
  }
}

export class SignInError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'SignInError';
    this.code = code;
  }
}

class Session extends Emitter {
  config = { chain_id: 31337, rpc_url: null, protocol: 1 };
  #current = null; // {token, expiresAt, accountId, wallet, method: 'demo' | 'wallet'}
  #expiryTimer = null;
  #busy = null;

  constructor() {
    super();
    setTokenSource(() => this.token);
    window.addEventListener('storage', (event) => {
      if (event.key === SESSION_KEY || event.key === DEMO_KEY) {
        this.#restore();
        this.emit('change', this.current);
      }
    });
  }

  async init() {
    try {
      this.config = { ...this.config, ...(await api.config()) };
    } catch (error) {
      console.warn('no /api/config; assuming chain 31337', error);
    }
    this.#restore();
    if (window.ethereum?.on) {
      window.ethereum.on('accountsChanged', (accounts) => {
        const current = this.#current;
        if (current?.method !== 'wallet') return;
        const next = accounts?.[0] ? toChecksumAddress(accounts[0]) : null;
        if (next !== current.wallet) this.signOut();
      });
    }
  }

  #restore() {
    const stored = readJson(SESSION_KEY);
    this.#current =
      stored && typeof stored.token === 'string' && stored.expiresAt > Date.now() + EXPIRY_MARGIN_MS
        ? stored
        : null;
    this.#scheduleExpiry();
  }

  #scheduleExpiry() {
    clearTimeout(this.#expiryTimer);
    if (!this.#current) return;
    const due = this.#current.expiresAt - EXPIRY_MARGIN_MS - Date.now();
    this.#expiryTimer = setTimeout(() => this.#expired(), Math.max(0, Math.min(due, 2 ** 31 - 1)));
  }

  async #expired() {
    const was = this.#current;
    // A demo key signs again by itself (the old token still has its margin meanwhile); a browser
    // wallet would need a click, so that session simply ends.
    if (was?.method === 'demo' && this.demoAddress === was.wallet) {
      try {
        await this.signInWithDemoKey();
        return;
      } catch (error) {
        console.warn('renewing the demo sign-in failed', error);
      }
    }
    if (this.#current === was) this.#set(null);
  }

  #set(current) {
    this.#current = current;
    if (current) localStorage.setItem(SESSION_KEY, JSON.stringify(current));
    else localStorage.removeItem(SESSION_KEY);
    this.#scheduleExpiry();
    this.emit('change', current);
  }

  /** {token, expiresAt, accountId, wallet, method} or null. */
  get current() {
    return this.#current;
  }

  get token() {
    const current = this.#current;
    return current && current.expiresAt - EXPIRY_MARGIN_MS > Date.now() ? current.token : null;
  }

  get busy() {
    return this.#busy !== null;
  }

  get hasInjectedWallet() {
    return typeof window.ethereum?.request === 'function';
  }

  /** The stored demo key's address, or null. */
  get demoAddress() {
    const hex = localStorage.getItem(DEMO_KEY);
    if (!hex) return null;
    try {
      return addressOf(parseSecretKey(hex));
    } catch {
      return null;
    }
  }

  /** The demo key while signed in with it (to pay on the dev chain), else null. */
  get demoSecretKey() {
    if (this.#current?.method !== 'demo') return null;
    try {
      return parseSecretKey(localStorage.getItem(DEMO_KEY));
    } catch {
      return null;
    }
  }

  /** Signs in with the demo key, creating one first if this browser has none. */
  signInWithDemoKey() {
    return this.#exclusive(async () => {
      let hex = localStorage.getItem(DEMO_KEY);
      let key;
      try {
        key = hex ? parseSecretKey(hex) : null;
      } catch {
        key = null;
      }
      if (!key) {
        hex = newSecretKey();
        localStorage.setItem(DEMO_KEY, hex);
        key = parseSecretKey(hex);
      }
      const address = addressOf(key);
      await this.#signIn(address, async (message) => personalSign(key, message), 'demo');
    });
  }

  /** Forgets the demo key (and signs out if it is the one signed in). */
  forgetDemoKey() {
    const address = this.demoAddress;
    localStorage.removeItem(DEMO_KEY);
    if (this.#current?.method === 'demo' || this.#current?.wallet === address) this.signOut();
    else this.emit('change', this.#current);
  }

  /** Signs in with the browser's wallet (window.ethereum). */
  signInWithWallet() {
    return this.#exclusive(async () => {
      const ethereum = window.ethereum;
      if (!ethereum?.request) throw new SignInError('No browser wallet was found', 'no_wallet');
      let accounts;
      try {
        accounts = await ethereum.request({ method: 'eth_requestAccounts' });
      } catch (error) {
        throw walletError(error);
      }
      if (!accounts?.length) throw new SignInError('The wallet shared no account', 'no_account');
      const address = toChecksumAddress(accounts[0]);
      await this.#signIn(
        address,
        async (message) => {
          try {
            const signature = await ethereum.request({
              method: 'personal_sign',
              params: [utf8Hex(message), address],
            });
            return normaliseSignature(signature);
          } catch (error) {
            throw walletError(error);
          }
        },
        'wallet',
      );
    });
  }

  signOut() {
    this.#set(null);
  }

  async #exclusive(task) {
    if (this.#busy) return this.#busy;
    this.emit('busy', true);
    this.#busy = task().finally(() => {
      this.#busy = null;
      this.emit('busy', false);
    });
    return this.#busy;
  }

  async #signIn(address, sign, method) {
    const { data, response } = await api.nonce();
    if (!hasPingSample()) {
      const date = response.headers.get('Date');
      if (date) addRoughSample(new Date(date).toISOString());
    }
    // On the server's clock, a little in the past: `Issued At` may not lie in the future.
    const issuedAt = new Date(serverNow() - 2000);
    const message = siweMessage({
      domain: window.location.host,
      address,
      statement: STATEMENT,
      uri: window.location.origin,
      chainId: this.config.chain_id ?? 31337,
      nonce: data.nonce,
      issuedAt,
    });
    const signature = await sign(message);
    const answer = await api.signIn(message, signature);
    const expiresIn = Number(answer.expires_in) > 0 ? Number(answer.expires_in) : 900;
    this.#set({
      token: answer.access_token,
      expiresAt: Date.now() + expiresIn * 1000,
      accountId: answer.account_id,
      wallet: answer.wallet ? toChecksumAddress(answer.wallet) : address,
      method,
    });
  }
}

function walletError(error) {
  if (error?.code === 4001) return new SignInError('You declined the request in your wallet', 'rejected');
  if (error?.code === -32002) {
    return new SignInError('Your wallet already has a request open: look at it', 'pending');
  }
  return new SignInError(error?.message || 'The wallet refused', 'wallet');
}

export const session = new Session();
