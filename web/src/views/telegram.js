// The account panel's "Telegram alerts": asks the notifier (through the gateway) for a one-time
// code, shows the `/link CODE` command to send to the bot with a copy button, and counts down its
// validity on the server's clock. One element, kept across renders of the panel.

import { api } from '../api.js';
import { openSignIn } from '../app.js';
import { formatDuration, serverNow } from '../clock.js';
import { h, replace } from '../dom.js';
import { session } from '../session.js';
import { describeLinkCodeError, parseLinkCode, remainingMs, sendTo } from '../telegram.js';

const COPIED_SHOWN_MS = 2_000;

export function telegramBlock() {
  let link = null; // {code, command, expiresAt} of the last code
  let ttlMinutes = 10; // the code's validity when it was issued, for the explanation
  let error = null; // {text, signIn}
  let busy = false;
  let ticker = null;
  let copiedTimer = null;
  let owner = session.current?.accountId ?? null;
  let generation = 0; // bumps on reset: answers to an older request are dropped

  const button = h('button', { type: 'button', 'data-testid': 'telegram-link', onclick: () => getCode() });
  const explanation = h('p', { class: 'small', 'data-testid': 'telegram-explanation' });
  const command = h('code', { class: 'code-box-text', 'data-testid': 'telegram-code' });
  const copyButton = h(
    'button',
    { class: 'button button-small', type: 'button', 'data-testid': 'telegram-copy', onclick: () => copy() },
    'Copy',
  );
  const box = h('div', { class: 'code-box' }, command, copyButton);
  const validity = h('p', { class: 'small muted code-validity' });
  const copyNote = h('p', { class: 'small muted', role: 'status' });
  const codeBlock = h('div', { class: 'telegram-code', hidden: true }, explanation, box, validity, copyNote);
  const errorLine = h('p', { class: 'error small', 'data-testid': 'telegram-error', role: 'alert', hidden: true });
  const intro = h('p', { class: 'muted small' }, 'Get outbid, won and payment alerts from the Gavel bot on Telegram.');

  const element = h(
    'section',
    { class: 'account-section telegram', 'aria-label': 'Telegram alerts' },
    h('h3', {}, 'Telegram alerts'),
    intro,
    codeBlock,
    errorLine,
    button,
  );

  const expired = () => !link || remainingMs(link.expiresAt, serverNow()) <= 0;

  function render() {
    const active = link && !expired();
    intro.hidden = Boolean(link);
    button.className = `button wide${active ? '' : ' button-primary'}`;
    button.disabled = busy;
    button.setAttribute('aria-busy', String(busy));
    button.textContent = busy ? 'Getting a code…' : link ? 'Get a new code' : 'Get Telegram alerts';

    codeBlock.hidden = !link;
    if (link) {
      command.textContent = link.command;
      command.dataset.code = link.code;
      command.dataset.expiresAt = new Date(link.expiresAt).toISOString();
      box.classList.toggle('expired', !active);
      command.dataset.expired = String(!active);
      copyButton.disabled = !active;
      renderValidity();
    }

    errorLine.hidden = !error;
    if (error) {
      replace(
        errorLine,
        error.text,
        error.signIn
          ? [' ', h('button', { class: 'link-button', type: 'button', onclick: signInAgain }, 'Sign in again')]
          : null,
      );
    }
  }

  function renderValidity() {
    if (!link) return;
    const left = remainingMs(link.expiresAt, serverNow());
    if (left > 0) {
      // Whole seconds rounded up: "0s" never shows while the code still works.
      validity.textContent = `Valid for ${formatDuration(Math.ceil(left / 1000) * 1000)}`;
      validity.className = `small code-validity ${left < 60_000 ? 'warn' : 'muted'}`;
    } else {
      validity.textContent = 'This code has expired: get a new one.';
      validity.className = 'small code-validity error';
    }
  }

  function tick() {
    if (!link) return stopTicker();
    if (expired()) {
      stopTicker();
      render();
    } else {
      renderValidity();
    }
  }

  function stopTicker() {
    clearInterval(ticker);
    ticker = null;
  }

  async function getCode() {
    if (busy) return;
    const mine = generation;
    busy = true;
    error = null;
    render();
    try {
      const fresh = parseLinkCode(await api.linkCode());
      if (mine !== generation) return;
      const left = remainingMs(fresh.expiresAt, serverNow());
      ttlMinutes = Math.max(1, Math.round(left / 60_000));
      link = fresh;
      copyNote.textContent = '';
      resetCopyButton();
      stopTicker();
      ticker = setInterval(tick, 1000);
      replace(
        explanation,
        sendTo(fresh, ttlMinutes),
        fresh.botUrl ? [' ', h('a', { href: fresh.botUrl, target: '_blank', rel: 'noopener', 'data-testid': 'telegram-bot-link' }, `Open @${fresh.bot}`)] : null,
      );
      explanation.dataset.bot = fresh.bot ?? '';
    } catch (failure) {
      if (mine !== generation) return;
      console.warn('link code', failure);
      error = describeLinkCodeError(failure);
    } finally {
      if (mine === generation) {
        busy = false;
        render();
      }
    }
  }

  function signInAgain() {
    session.signOut();
    openSignIn('Sign in again to get Telegram alerts.');
  }

  function resetCopyButton() {
    clearTimeout(copiedTimer);
    copyButton.textContent = 'Copy';
  }

  async function copy() {
    if (!link || expired()) return;
    const text = link.command;
    let done = false;
    try {
      if (navigator.clipboard?.writeText) {
        await navigator.clipboard.writeText(text);
        done = true;
      }
    } catch {
      done = false;
    }
    if (!done) done = copyWithSelection(text);
    resetCopyButton();
    if (done) {
      copyButton.textContent = 'Copied';
      copyNote.textContent = 'Copied: paste it into your chat with the Gavel bot.';
      copiedTimer = setTimeout(() => {
        copyButton.textContent = 'Copy';
        copyNote.textContent = '';
      }, COPIED_SHOWN_MS);
    } else {
      // No clipboard access (an http page that is not localhost, say): select it for the person.
      window.getSelection()?.selectAllChildren(command);
      copyNote.textContent = 'Copying is not allowed here: the command is selected, copy it yourself.';
    }
  }

  /** Resets everything (another account signed in, or signed out). */
  function reset() {
    generation += 1;
    link = null;
    error = null;
    busy = false;
    copyNote.textContent = '';
    resetCopyButton();
    stopTicker();
    render();
  }

  session.on('change', () => {
    const next = session.current?.accountId ?? null;
    if (next !== owner) {
      owner = next;
      reset();
    }
  });

  render();
  return { element, reset };
}

/** The old way, for pages without the Clipboard API: a selected textarea and execCommand. */
function copyWithSelection(text) {
  const area = h('textarea', { readonly: true, 'aria-hidden': 'true', class: 'offscreen' });
  area.value = text;
  document.body.append(area);
  try {
    area.select();
    return document.execCommand('copy');
  } catch {
    return false;
  } finally {
    area.remove();
  }
}
