// "My auctions": the lots the signed-in account is bidding on (leading or outbid), has won (paid or
// to pay), watches, and sells (with their state; one without bids can be withdrawn here).

import { ApiError, api } from '../api.js';
import { openSignIn } from '../app.js';
import { serverNow } from '../clock.js';
import { h, replace } from '../dom.js';
import { endedLine, endsIn, groupMyLots, sellingLine, watched, watchingLine, wonLine } from '../mine.js';
import { session } from '../session.js';
import { showEth } from '../wei.js';

/** How often the page reads everything again while it is on screen. */
const REFRESH_MS = 15_000;

export function mineView(container) {
  const abort = new AbortController();
  const sections = h('div', { class: 'mine' });
  const status = h('p', { class: 'muted', role: 'status' });
  replace(container, h('section', { class: 'list-head' }, h('h1', {}, 'My auctions')), status, sections);

  function lotLink(id, title) {
    return h('a', { href: `/lots/${id}`, class: 'mine-title' }, title ?? 'A lot');
  }

  function section(name, title, rows, empty) {
    return h(
      'section',
      { class: 'mine-section', 'data-testid': `mine-${name}` },
      h('h2', {}, title, rows.length ? h('span', { class: 'muted small' }, ` (${rows.length})`) : null),
      rows.length ? h('ul', { class: 'mine-list' }, rows) : h('p', { class: 'muted small' }, empty),
    );
  }

  function row(lotId, ...content) {
    return h('li', { class: 'mine-row', 'data-testid': 'mine-row', 'data-lot-id': lotId }, ...content);
  }

  /** The payment of each lot in `ids` (null where it cannot be read yet). */
  async function payments(ids) {
    const answers = await Promise.all(ids.map((id) => api.payment(id, abort.signal).catch(() => null)));
    return new Map(ids.map((id, index) => [id, answers[index]]));
  }

  async function withdraw(lot, button, line) {
    if (button.dataset.confirm !== 'yes') {
      button.dataset.confirm = 'yes';
      button.textContent = 'Withdraw for good?';
      return;
    }
    button.disabled = true;
    try {
      await api.withdrawLot(lot.id);
      line.textContent = 'Withdrawn';
      line.dataset.state = 'withdrawn';
      button.remove();
    } catch (failure) {
      button.disabled = false;
      const why = failure instanceof ApiError && failure.status === 409 ? 'it has a bid now' : failure.message;
      line.textContent = `Could not withdraw: ${why}`;
    }
  }

  async function load() {
    const me = session.current;
    if (!me) {
      status.textContent = '';
      replace(
        sections,
        h('p', {}, 'Sign in to see the lots you bid on, won, watch and sell. '),
        h('button', { class: 'button button-primary', type: 'button', onclick: () => openSignIn('Sign in to see your auctions.') }, 'Sign in'),
      );
      return;
    }
    try {
      const [mine, selling] = await Promise.all([
        api.myLots(abort.signal),
        api.lots({ seller: me.accountId, limit: 50 }, abort.signal),
      ]);
      const groups = groupMyLots(mine);
      const sold = (selling.items ?? []).filter((lot) => lot.summary?.outcome === 'sold');
      const [wonPayments, soldPayments] = await Promise.all([payments(groups.won.map((lot) => lot.lot_id)), payments(sold.map((lot) => lot.id))]);
      const watchlist = watched();
      const watchedStates = await Promise.all(watchlist.map((item) => api.auctionState(item.lotId, abort.signal).catch(() => null)));
      if (session.current?.accountId !== me.accountId) return;

      replace(
        sections,
        section(
          'bidding',
          'Bidding',
          groups.bidding.map((lot) =>
            row(
              lot.lot_id,
              lotLink(lot.lot_id, lot.title),
              h('span', { class: `badge ${lot.leading ? 'badge-open' : 'badge-outbid'}`, 'data-testid': 'mine-standing', 'data-standing': lot.leading ? 'leading' : 'outbid' }, lot.leading ? 'Leading' : 'Outbid'),
              h('span', { class: 'small' }, `now ${showEth(lot.price)}, yours ${showEth(lot.highest_bid)}`),
              h('span', { class: 'muted small' }, endsIn(lot.ends_at, serverNow())),
            ),
          ),
          'No open lot you bid on.',
        ),
        section(
          'won',
          'Won',
          groups.won.map((lot) => {
            const line = wonLine(wonPayments.get(lot.lot_id));
            return row(
              lot.lot_id,
              lotLink(lot.lot_id, lot.title),
              h('span', { class: 'small' }, `for ${showEth(lot.price)}`),
              h('span', { class: `mine-state mine-${line.state}`, 'data-testid': 'mine-state', 'data-state': line.state }, line.text),
              line.state === 'to_pay' ? h('a', { class: 'button button-small button-primary', href: `/lots/${lot.lot_id}` }, 'Pay') : null,
            );
          }),
          'Nothing won yet.',
        ),
        section(
          'watching',
          'Watching',
          watchlist.map((item, index) => {
            const state = watchedStates[index];
            return row(item.lotId, lotLink(item.lotId, item.title ?? state?.title), h('span', { class: 'muted small' }, watchingLine(state, serverNow())));
          }),
          'Lots you watch (the ☆ on a lot’s page) show here.',
        ),
        section(
          'selling',
          'Selling',
          (selling.items ?? []).map((lot) => {
            const described = sellingLine(lot, soldPayments.get(lot.id));
            const line = h('span', { class: `mine-state mine-${described.state}`, 'data-testid': 'mine-state', 'data-state': described.state }, described.text);
            const button = described.withdrawable
              ? h('button', { class: 'button button-small', type: 'button', 'data-testid': 'mine-withdraw' }, 'Withdraw')
              : null;
            button?.addEventListener('click', () => withdraw(lot, button, line));
            return row(lot.id, lotLink(lot.id, lot.title), line, button);
          }),
          'Nothing for sale. Put a lot up from “Sell”.',
        ),
        groups.ended.length
          ? section(
              'ended',
              'Ended',
              groups.ended.map((lot) => row(lot.lot_id, lotLink(lot.lot_id, lot.title), h('span', { class: 'muted small' }, endedLine(lot)))),
              '',
            )
          : null,
      );
      status.textContent = '';
      sections.dataset.loaded = String(Date.now());
    } catch (failure) {
      if (failure.name === 'AbortError') return;
      if (failure instanceof ApiError && failure.status === 401) {
        session.signOut();
        return;
      }
      status.textContent = `Could not load your auctions: ${failure.message}`;
    }
  }

  const stop = session.on('change', load);
  const timer = setInterval(() => {
    if (document.visibilityState === 'visible') load();
  }, REFRESH_MS);
  load();
  return () => {
    abort.abort();
    stop();
    clearInterval(timer);
  };
}
