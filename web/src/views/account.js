// The header's account corner and its panel: sign in with a browser wallet or a demo key, the
// signed-in address and balance (with test funds on a dev chain), Telegram alerts, forget the demo
// key, sign out.

import { balance, onOpenSignIn } from '../app.js';
import { ApiError } from '../api.js';
import { h, replace, shortAddress } from '../dom.js';
import { session } from '../session.js';
import { showEth } from '../wei.js';
import { devFundsControl } from './devfunds.js';
import { telegramBlock } from './telegram.js';

export function mountAccount(corner, panel) {
  let open = false;
  let error = null;
  let reason = null;
  // Kept across renders (they have their own state and timers); the panel re-attaches them.
  // The lot page's dev funds button is `dev-funds`; this one has its own testid.
  const devFunds = devFundsControl({ testid: 'account-dev-funds' });
  const telegram = telegramBlock();

  const setOpen = (value) => {
    open = value;
    panel.hidden = !open;
    if (open && session.current) balance.refresh();
    if (!open) {
      error = null;
      reason = null;
    }
    render();
  };

  const run = async (task) => {
    error = null;
    render();
    try {
      await task();
      setOpen(false);
    } catch (failure) {
      error = describeSignInError(failure);
      render();
    }
  };

  function render() {
    const current = session.current;
    const demo = session.demoAddress;
    const busy = session.busy;
    if (current) {
      replace(
        corner,
        h(
          'button',
          {
            class: 'account-button',
            type: 'button',
            'aria-expanded': String(open),
            'aria-controls': 'account-panel',
            onclick: () => setOpen(!open),
          },
          h('span', { class: 'dot dot-ok', 'aria-hidden': 'true' }),
          h(
            'span',
            { class: 'address', 'data-testid': 'signed-in-address', 'data-address': current.wallet, title: current.wallet },
            current.wallet,
          ),
        ),
      );
    } else {
      replace(
        corner,
        h(
          'button',
          {
            class: 'button button-primary',
            type: 'button',
            'data-testid': 'sign-in',
            'aria-expanded': String(open),
            'aria-controls': 'account-panel',
            disabled: busy,
            onclick: () => setOpen(!open),
          },
          busy ? 'Signing in…' : 'Sign in',
        ),
      );
    }

    if (!open) return;
    const close = h('button', { class: 'icon-button panel-close', type: 'button', 'aria-label': 'Close', onclick: () => setOpen(false) }, '×');
    const errorLine = error ? h('p', { class: 'error', 'data-testid': 'sign-in-error', role: 'alert' }, error) : null;

    if (current) {
      const value = balance.value;
      replace(
        panel,
        close,
        h('h2', {}, 'Your account'),
        h('p', { class: 'mono wrap' }, current.wallet),
        h(
          'p',
          { class: 'muted' },
          current.method === 'demo' ? 'Signed in with the demo key of this browser.' : 'Signed in with your browser wallet.',
        ),
        h(
          'p',
          {},
          'Available to bid: ',
          h('strong', { 'data-testid': 'account-balance' }, value ? showEth(value.available) : balance.error ? 'unknown' : '…'),
          value && value.held !== '0' ? h('span', { class: 'muted' }, ` (${showEth(value.held)} held for bids)`) : null,
        ),
        devFunds.element,
        telegram.element,
        demoKeyBlock(demo, current),
        errorLine,
        h(
          'div',
          { class: 'row' },
          h('button', { class: 'button', type: 'button', 'data-testid': 'sign-out', onclick: () => { session.signOut(); setOpen(false); } }, 'Sign out'),
        ),
      );
      return;
    }

    replace(
      panel,
      close,
      h('h2', {}, 'Sign in'),
      reason ? h('p', { class: 'notice' }, reason) : null,
      h('p', { class: 'muted' }, 'Gavel signs you in with an Ethereum signature (Sign-In with Ethereum): nothing is sent on chain.'),
      session.hasInjectedWallet
        ? h(
            'button',
            { class: 'button button-primary wide', type: 'button', 'data-testid': 'sign-in-wallet', disabled: busy, onclick: () => run(() => session.signInWithWallet()) },
            'Use my browser wallet',
          )
        : h('p', { class: 'muted small' }, 'No browser wallet (like MetaMask) was found in this browser.'),
      h('div', { class: 'divider' }, h('span', {}, 'or')),
      demo
        ? h(
            'div',
            { class: 'demo-key' },
            h('p', {}, 'Demo key of this browser: ', h('span', { class: 'mono wrap', 'data-testid': 'demo-key-address' }, demo)),
            h(
              'div',
              { class: 'row' },
              h('button', { class: 'button button-primary', type: 'button', 'data-testid': 'demo-key', disabled: busy, onclick: () => run(() => session.signInWithDemoKey()) }, 'Sign in with the demo key'),
              h('button', { class: 'button button-quiet', type: 'button', 'data-testid': 'forget-key', onclick: () => { session.forgetDemoKey(); render(); } }, 'Forget key'),
            ),
          )
        : h(
            'div',
            { class: 'demo-key' },
            h(
              'button',
              { class: 'button wide', type: 'button', 'data-testid': 'demo-key', disabled: busy, onclick: () => run(() => session.signInWithDemoKey()) },
              'Create a demo key and sign in',
            ),
          ),
      h('p', { class: 'muted small' }, 'A demo key is generated and kept in this browser, for trying Gavel on a development chain. Never send real funds to it.'),
      errorLine,
    );
  }

  function demoKeyBlock(demo, current) {
    if (!demo) return null;
    return h(
      'div',
      { class: 'demo-key' },
      current.wallet !== demo ? h('p', { class: 'muted small' }, 'Demo key of this browser: ', h('span', { class: 'mono wrap' }, demo)) : null,
      h(
        'button',
        {
          class: 'button button-quiet',
          type: 'button',
          'data-testid': 'forget-key',
          onclick: () => {
            if (window.confirm('Forget the demo key? Its address and anything on it cannot be used again from this browser.')) {
              session.forgetDemoKey();
              setOpen(false);
            }
          },
        },
        'Forget demo key',
      ),
    );
  }

  session.on('change', () => {
    balance.reset();
    if (session.current) balance.refresh();
    render();
  });
  session.on('busy', render);
  balance.on('change', () => open && render());
  onOpenSignIn((why) => {
    if (session.current) return;
    reason = why ?? null;
    open = true;
    panel.hidden = false;
    render();
    panel.querySelector('button.button-primary, button[data-testid="demo-key"]')?.focus();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && open) setOpen(false);
  });
  document.addEventListener('routechange', () => open && setOpen(false));
  panel.hidden = true;
  render();
  if (session.current) balance.refresh();
}

export function describeSignInError(error) {
  if (error instanceof ApiError) {
    if (error.code === 'sign_in_refused') {
      const detail = error.detail || error.title || '';
      // "sign-in is not accepted for `host`: open Gavel at …" needs no prefix, only a capital.
      if (/^sign-in /i.test(detail)) return `${detail[0].toUpperCase()}${detail.slice(1)}.`;
      return `Sign-in refused: ${detail}`;
    }
    if (error.code === 'network' || error.status === 502) return 'The server cannot be reached; try again.';
    return error.detail || error.title || error.message;
  }
  return error?.message || String(error);
}

