// A lot: photos, description, the live auction (price, status, countdown on the server's clock,
// watchers, bid history) and the bid form.

import { api, ApiError } from '../api.js';
import { balance, noteBid, openSignIn, socket, toast } from '../app.js';
import { formatDuration, formatTime, formatWhen, serverNow } from '../clock.js';
import { h, replace, shortAddress } from '../dom.js';
import { bidFromEvent, endedText, standing, wasOutbid } from '../lotstate.js';
import { session } from '../session.js';
import { BidError } from '../socket.js';
import { ethForInput, minimumNext, parseEth, showEth, toWei } from '../wei.js';
import { devFundsControl } from './devfunds.js';
import { paymentPanel } from './payment.js';
import { isWatched, toggleWatch } from '../mine.js';
import { myBidLots } from '../mybids.js';

const BALANCE_EVERY_MS = 15_000;

export function lotView(container, { id }) {
  const abort = new AbortController();
  const cleanups = [];
  let lot = null; // the lots API's view: title, photos, rules, summary
  let feed = null; // the socket's feed: state (live), watchers
  const history = new Map(); // bid_id -> row
  let pending = false;
  let serverMinimum = null; // {wei, sequence}: a too_low answer's minimum
  let lastPrice = null;
  let snapshots = 0;
  let lastState = null; // the live state before the latest event: who led
  let payment = null; // the payment panel, once the lot is sold to or by the signed-in account

  // --- skeleton -----------------------------------------------------------------------------
  const title = h('h1', { class: 'lot-title', 'data-testid': 'lot-title' }, 'Loading…');
  const statusBadge = h('span', { class: 'badge', 'data-testid': 'lot-status' });
  const watchToggle = h('button', { class: 'button button-small watch-toggle', type: 'button', 'data-testid': 'watch-toggle' });
  const gallery = h('section', { class: 'gallery', 'aria-label': 'Photos' });
  const priceLabel = h('span', { class: 'muted small' }, 'Current bid');
  const price = h('strong', { class: 'price', 'data-testid': 'lot-price', 'aria-live': 'polite' }, '…');
  const bidCount = h('span', { class: 'muted small', 'data-testid': 'bid-count' });
  const countdown = h('span', { class: 'countdown', 'data-testid': 'countdown' });
  const endsAtLine = h('span', { class: 'muted small' });
  const watchers = h('span', { class: 'watchers', 'data-testid': 'watchers', title: 'People watching this lot now' }, '');
  const standingNote = h('p', { class: 'standing', 'data-testid': 'standing', hidden: true });
  const reserve = h('span', { class: 'small', 'data-testid': 'reserve' });
  const outcome = h('p', { class: 'outcome', 'data-testid': 'outcome', hidden: true });
  const snipeHint = h('p', { class: 'muted small', hidden: true });

  const amount = h('input', {
    id: 'bid-amount',
    name: 'amount',
    type: 'text',
    inputmode: 'decimal',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: '0.00',
    'aria-describedby': 'bid-status',
    'data-testid': 'bid-amount',
  });
  const maxAmount = h('input', {
    id: 'bid-max',
    name: 'max_amount',
    type: 'text',
    inputmode: 'decimal',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'optional',
    'data-testid': 'bid-max',
  });
  const minButton = h('button', { class: 'button button-small', type: 'button', 'data-testid': 'bid-min' }, 'Minimum');
  const buyNowButton = h('button', { class: 'button button-small', type: 'button', 'data-testid': 'buy-now-fill', hidden: true });
  const submit = h('button', { class: 'button button-primary wide', type: 'submit', 'data-testid': 'bid-submit' }, 'Place bid');
  const bidStatus = h('div', { class: 'bid-status', id: 'bid-status', 'data-testid': 'bid-status', 'data-state': 'idle', role: 'status', 'aria-live': 'polite' });
  const formNote = h('p', { class: 'muted small form-note' });
  const balanceValue = h('strong', { 'data-testid': 'balance' }, '…');
  const balanceRefresh = h('button', { class: 'icon-button', type: 'button', 'data-testid': 'balance-refresh', title: 'Refresh balance', 'aria-label': 'Refresh balance' }, '↻');
  const balanceLine = h('p', { class: 'balance-line small', hidden: true }, 'Available to bid: ', balanceValue, ' ', balanceRefresh);
  // Only on a local dev chain (config.rpc_url) and signed in: it hides itself otherwise.
  const devFunds = devFundsControl({ testid: 'dev-funds' });

  const form = h(
    'form',
    { class: 'bid-form', 'data-testid': 'bid-form', novalidate: true },
    h('label', { for: 'bid-amount' }, 'Your bid (ETH)'),
    h('div', { class: 'input-row' }, amount, minButton),
    buyNowButton,
    h(
      'details',
      { class: 'proxy' },
      h('summary', {}, 'Automatic bidding'),
      h('p', { class: 'muted small' }, 'Give a maximum and Gavel bids for you, one increment at a time, up to it. The whole maximum is held from your balance while you lead.'),
      h('label', { for: 'bid-max' }, 'Maximum (ETH)'),
      maxAmount,
    ),
    submit,
    bidStatus,
    formNote,
    balanceLine,
    devFunds.element,
  );

  // On a phone the form scrolls away with the photos: this bar keeps the price and a way back to
  // the form on screen while the auction is open.
  const barPrice = h('strong', { class: 'bid-bar-price', 'data-testid': 'bid-bar-price' });
  const barButton = h('button', { class: 'button button-primary', type: 'button', 'data-testid': 'bid-bar-button' }, 'Bid');
  const bidBar = h('div', { class: 'bid-bar', 'data-testid': 'bid-bar', hidden: true }, h('span', { class: 'bid-bar-label muted small' }, 'Current bid'), barPrice, barButton);

  const historyList = h('ol', { class: 'history', 'data-testid': 'bid-history', 'aria-live': 'polite' });
  const historyEmpty = h('p', { class: 'muted' }, 'No bids yet.');
  const details = h('section', { class: 'details' });

  const page = h(
    'article',
    { class: 'lot-page', 'data-lot-id': id },
    h('nav', { class: 'crumbs' }, h('a', { href: '/' }, '← All lots')),
    h('header', { class: 'lot-head' }, title, statusBadge, watchToggle),
    h(
      'div',
      { class: 'lot-layout' },
      gallery,
      h(
        'aside',
        { class: 'live-panel', 'aria-label': 'Auction' },
        h('div', { class: 'price-block' }, priceLabel, price, bidCount),
        h('div', { class: 'time-block' }, countdown, endsAtLine),
        h('div', { class: 'meta-row' }, watchers, reserve),
        snipeHint,
        outcome,
        standingNote,
        form,
      ),
      h('section', { class: 'history-block' }, h('h2', {}, 'Bids'), historyEmpty, historyList),
      details,
    ),
    bidBar,
  );
  replace(container, page);

  // --- state --------------------------------------------------------------------------------

  const rules = () => (lot ? { increment: lot.increment, start_price: lot.start_price } : null);

  /** The live state: the socket's once it has one, else the lots API's summary. */
  function live() {
    if (feed?.state) return feed.state;
    if (!lot) return null;
    const summary = lot.summary ?? {};
    return {
      status: lot.status,
      price: summary.price ?? null,
      leader: null,
      bidCount: Number(summary.bid_count ?? 0),
      minimumNext: null,
      endsAt: summary.ends_at ?? lot.ends_at,
      startsAt: lot.starts_at,
      buyNow: lot.buy_now,
      reserveMet: summary.reserve_met ?? null,
      outcome: summary.outcome ?? null,
      winner: null,
      winnerWallet: null,
      sequence: 0,
    };
  }

  function minimum(state) {
    if (!state) return null;
    let value = toWei(state.minimumNext);
    if (value === null && lot) {
      value = minimumNext({ price: state.price, startPrice: lot.start_price, increment: lot.increment });
    }
    if (serverMinimum && serverMinimum.sequence === state.sequence) {
      const hinted = toWei(serverMinimum.wei);
      if (value === null || hinted > value) value = hinted;
    }
    return value;
  }

  const isSeller = () => Boolean(lot && session.current && session.current.accountId === lot.seller);
  /** Whether the signed-in account has bid on this lot (its rows in the history, or a bid here). */
  const haveBid = () => {
    const me = session.current?.accountId;
    if (!me) return false;
    // The history holds the last 100 bids; the remembered lots cover an older bid of ours.
    return [...history.values()].some((row) => row.bidder === me) || myBidLots(me).some((entry) => entry.lotId === id);
  };

  // --- rendering ----------------------------------------------------------------------------

  function renderLive() {
    const state = live();
    if (!state) return;
    const status = state.status;
    statusBadge.textContent = { open: 'Open', scheduled: 'Coming up', closed: 'Ended', cancelled: 'Withdrawn' }[status] ?? status;
    statusBadge.className = `badge badge-${status}`;
    statusBadge.dataset.status = status;

    const current = state.price ?? null;
    const ended = endedText(state, { buyNow: lot?.buy_now ?? null });
    priceLabel.textContent = ended ? ended.label : current ? 'Current bid' : 'Starting price';
    const shown = current ?? lot?.start_price ?? null;
    price.textContent = shown ? showEth(shown) : '…';
    price.dataset.wei = current ?? '';
    price.dataset.sequence = String(state.sequence ?? 0);
    if (lastPrice !== null && current !== null && current !== lastPrice) {
      price.classList.remove('flash');
      void price.offsetWidth; // restart the animation
      price.classList.add('flash');
    }
    lastPrice = current;
    bidCount.textContent = `${state.bidCount} ${state.bidCount === 1 ? 'bid' : 'bids'}`;

    if (lot?.has_reserve) {
      reserve.textContent = state.reserveMet ? 'Reserve met' : 'Reserve not met yet';
      reserve.className = `small ${state.reserveMet ? 'ok' : 'muted'}`;
      if (lot.reserve) reserve.textContent += ` (yours: ${showEth(lot.reserve)})`;
    } else {
      reserve.textContent = lot ? 'No reserve' : '';
      reserve.className = 'small muted';
    }

    const min = minimum(state);
    renderStanding(state, min);

    outcome.hidden = !ended;
    outcome.textContent = ended?.text ?? '';
    // An ended lot has nothing to bid on: the form and buy-now go, the outcome stays.
    form.hidden = Boolean(ended);
    renderPayment(state);

    minButton.textContent = min !== null ? `Min ${showEth(min)}` : 'Minimum';
    minButton.dataset.wei = min !== null ? min.toString() : '';
    minButton.disabled = min === null || status !== 'open';

    // Only the engine's live state counts: buy-now is gone once the price reached it.
    const buyNow = state.buyNow;
    buyNowButton.hidden = !(buyNow && status === 'open');
    if (buyNow) {
      buyNowButton.textContent = `Buy now: ${showEth(buyNow)}`;
      buyNowButton.dataset.wei = buyNow;
    }

    renderForm();
    renderCountdown();
    renderBar(state, min);
  }

  function renderStanding(state, min) {
    const where = standing(state, session.current?.accountId, haveBid());
    standingNote.hidden = !where;
    standingNote.dataset.standing = where ?? '';
    standingNote.className = `standing standing-${where}`;
    const texts = {
      leading: 'You are the highest bidder',
      outbid: `You have been outbid${min !== null ? `: bid at least ${showEth(min)} to lead again` : ''}`,
      won: 'You won this lot',
      lost: 'You did not win this lot',
    };
    standingNote.textContent = texts[where] ?? '';
    // The tab says it too, for a bidder looking at another tab.
    if (lot) document.title = `${where === 'outbid' ? 'Outbid · ' : ''}${lot.title} · Gavel`;
  }

  function renderPayment(state) {
    if (payment || state.status !== 'closed' || state.outcome !== 'sold' || !session.current) return;
    const me = session.current.accountId;
    const role = (state.winner ?? state.leader) === me ? 'winner' : isSeller() ? 'seller' : null;
    if (!role) return;
    payment = paymentPanel({ lotId: id, role });
    standingNote.after(payment.element);
  }

  function renderBar(state, min) {
    bidBar.hidden = !(state.status === 'open' && !isSeller());
    barPrice.textContent = state.price ? showEth(state.price) : lot ? showEth(lot.start_price) : '…';
    barButton.textContent = min !== null ? `Bid ${showEth(min)}` : 'Bid';
  }

  function renderForm() {
    const state = live();
    const status = state?.status;
    let note = '';
    let disabled = pending;
    if (!state) disabled = true;
    else if (isSeller()) {
      note = 'This is your lot: you cannot bid on it.';
      disabled = true;
    } else if (status === 'scheduled') {
      note = `Bidding opens ${formatWhen(state.startsAt)}.`;
      disabled = true;
    } else if (status === 'closed' || status === 'cancelled') {
      note = 'Bidding is closed.';
      disabled = true;
    } else if (!session.current) {
      note = 'Sign in to bid.';
    }
    submit.disabled = disabled;
    if (isSeller()) minButton.disabled = true;
    buyNowButton.disabled = isSeller();
    amount.disabled = Boolean(state && (isSeller() || status === 'closed' || status === 'cancelled'));
    maxAmount.disabled = amount.disabled;
    submit.textContent = pending ? 'Placing bid…' : 'Place bid';
    formNote.textContent = note;
    formNote.hidden = !note;
    balanceLine.hidden = !session.current;
  }

  function renderCountdown() {
    const state = live();
    if (!state) return;
    const now = serverNow();
    const ends = Date.parse(state.endsAt);
    const starts = Date.parse(state.startsAt);
    let text;
    if (state.status === 'scheduled') {
      text = now < starts ? `Starts in ${formatDuration(starts - now)}` : 'Starting…';
      endsAtLine.textContent = Number.isNaN(starts) ? '' : formatWhen(state.startsAt);
    } else if (state.status === 'open') {
      text = now < ends ? `Ends in ${formatDuration(ends - now)}` : 'Closing…';
      endsAtLine.textContent = Number.isNaN(ends) ? '' : `ends ${formatWhen(state.endsAt)}`;
    } else if (state.status === 'cancelled') {
      text = 'Withdrawn';
      endsAtLine.textContent = '';
    } else {
      text = 'Ended';
      endsAtLine.textContent = Number.isNaN(ends) ? '' : formatWhen(state.endsAt);
    }
    countdown.textContent = text;
    countdown.dataset.endsAt = state.endsAt ?? '';
    countdown.classList.toggle('urgent', state.status === 'open' && ends - now < 60_000);
    const window = (lot?.snipe_window_secs ?? 0) * 1000;
    const inWindow = state.status === 'open' && window > 0 && now < ends && ends - now <= window;
    snipeHint.hidden = !inWindow;
    if (inWindow) snipeHint.textContent = `A bid now extends the end by ${lot.extension_secs} s.`;
  }

  function renderWatchers() {
    const count = feed?.watchers;
    watchers.textContent = typeof count === 'number' ? `${count} watching` : '';
    watchers.dataset.count = typeof count === 'number' ? String(count) : '';
  }

  /** The same name for a bidder whether the row came from the history or from an event. */
  function bidderName(row) {
    if (session.current && row.bidder === session.current.accountId) return 'You';
    return `Bidder ${String(row.bidder ?? '').replace(/-/g, '').slice(-5)}`;
  }

  function renderHistory() {
    const rows = [...history.values()].sort((a, b) => b.seq - a.seq).slice(0, 200);
    historyEmpty.hidden = rows.length > 0;
    const status = live()?.status;
    historyList.replaceChildren(
      ...rows.map((row, index) =>
        h(
          'li',
          {
            class: `history-row${index === 0 && status !== 'cancelled' ? ' top' : ''}${
              session.current && row.bidder === session.current.accountId ? ' mine' : ''
            }`,
            'data-testid': 'bid-row',
            'data-bid-id': row.bid_id,
            'data-seq': String(row.seq),
          },
          h('span', { class: 'history-amount' }, showEth(row.amount)),
          h('span', { class: 'history-who', title: row.wallet ?? '' }, h('span', { class: 'history-name' }, bidderName(row)), row.proxy ? h('span', { class: 'tag', title: 'Placed automatically, up to the bidder’s maximum' }, 'auto') : null),
          h('time', { class: 'history-time muted small', datetime: row.placed_at, title: formatWhen(row.placed_at) }, formatTime(row.placed_at)),
        ),
      ),
    );
  }

  function renderGallery() {
    const photos = [...(lot.photos ?? [])].sort((a, b) => a.position - b.position);
    if (!photos.length) {
      replace(gallery, h('div', { class: 'photo-main photo-empty' }, h('span', {}, 'No photos')));
      return;
    }
    const main = h('img', {
      class: 'photo-main',
      src: photos[0].url,
      alt: lot.title,
      width: photos[0].width,
      height: photos[0].height,
      'data-testid': 'lot-photo',
    });
    const thumbs = photos.length > 1
      ? h(
          'div',
          { class: 'photo-thumbs' },
          photos.map((photo, index) =>
            h(
              'button',
              {
                type: 'button',
                class: `photo-thumb${index === 0 ? ' selected' : ''}`,
                'aria-label': `Photo ${index + 1}`,
                onclick: (event) => {
                  main.src = photo.url;
                  main.width = photo.width;
                  main.height = photo.height;
                  for (const other of event.currentTarget.parentElement.children) other.classList.remove('selected');
                  event.currentTarget.classList.add('selected');
                },
              },
              h('img', { src: photo.url, alt: '', loading: 'lazy' }),
            ),
          ),
        )
      : null;
    replace(gallery, main, thumbs);
  }

  function renderDetails() {
    const increment = lot.increment?.kind === 'absolute'
      ? showEth(lot.increment.wei)
      : lot.increment?.kind === 'basis_points'
        ? `${(lot.increment.bps / 100).toString()} % of the price`
        : '—';
    const facts = [
      ['Seller', h('span', { class: 'mono', title: lot.seller_wallet }, shortAddress(lot.seller_wallet))],
      ['Starting price', showEth(lot.start_price)],
      ['Bid increment', increment],
      lot.buy_now ? ['Buy now', showEth(lot.buy_now)] : null,
      ['Started', formatWhen(lot.starts_at)],
      lot.snipe_window_secs > 0
        ? ['Anti-sniping', `a bid in the last ${lot.snipe_window_secs} s extends the end by ${lot.extension_secs} s (at most until ${formatWhen(lot.latest_end)})`]
        : null,
    ].filter(Boolean);
    replace(
      details,
      h('h2', {}, 'About this lot'),
      lot.description ? h('p', { class: 'description', 'data-testid': 'lot-description' }, lot.description) : h('p', { class: 'muted' }, 'No description.'),
      h('dl', { class: 'facts' }, facts.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)])),
    );
  }

  function renderBalance() {
    const value = balance.value;
    balanceValue.textContent = value ? showEth(value.available) : balance.error ? 'unknown' : '…';
    balanceValue.dataset.wei = value ? String(value.available) : '';
  }

  // --- bidding ------------------------------------------------------------------------------

  function setBidStatus(state, content, { result = null, code = null, bidId = null } = {}) {
    bidStatus.dataset.state = state;
    if (bidId) bidStatus.dataset.bidId = bidId;
    else delete bidStatus.dataset.bidId;
    if (result) bidStatus.dataset.result = result;
    else delete bidStatus.dataset.result;
    if (code) bidStatus.dataset.code = code;
    else delete bidStatus.dataset.code;
    bidStatus.className = `bid-status bid-status-${state}`;
    replace(bidStatus, content);
  }

  function fieldError(input, message) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    setBidStatus('error', message, { code: 'invalid' });
  }

  async function placeBid(event) {
    event.preventDefault();
    if (pending) return;
    amount.removeAttribute('aria-invalid');
    maxAmount.removeAttribute('aria-invalid');
    let wei;
    let max = null;
    try {
      wei = parseEth(amount.value);
    } catch (error) {
      fieldError(amount, error.message);
      return;
    }
    if (wei <= 0n) {
      fieldError(amount, 'A bid is more than zero.');
      return;
    }
    if (maxAmount.value.trim()) {
      try {
        max = parseEth(maxAmount.value);
      } catch (error) {
        fieldError(maxAmount, `Maximum: ${error.message}`);
        return;
      }
      if (max < wei) {
        fieldError(maxAmount, 'The maximum cannot be below your bid.');
        return;
      }
    }
    if (!session.token) {
      setBidStatus('error', signInPrompt('Sign in to bid.'), { code: 'unauthorized' });
      return;
    }
    pending = true;
    renderForm();
    setBidStatus('pending', `Placing your bid of ${showEth(wei)}…`);
    try {
      const answer = await socket.bid({ lotId: id, amount: wei.toString(), maxAmount: max?.toString() });
      const result = answer.result ?? {};
      noteBid(id, lot?.title);
      setBidStatus('accepted', describeResult(answer, wei), { result: result.result ?? 'accepted', bidId: result.bid_id });
      amount.value = '';
      maxAmount.value = '';
    } catch (error) {
      if (error instanceof BidError) {
        setBidStatus('error', describeBidError(error.frame), { code: error.code });
        if (error.code === 'too_low') {
          const hinted = pick(error.frame, 'minimum');
          if (hinted) serverMinimum = { wei: hinted, sequence: live()?.sequence ?? 0 };
        }
        if (error.code === 'unauthorized' && session.current) {
          // The gateway refused the token: it expired or was revoked.
          session.signOut();
        }
      } else {
        console.error(error);
        setBidStatus('error', error.message || 'The bid failed.', { code: 'error' });
      }
    } finally {
      pending = false;
      renderLive();
      balance.refresh();
    }
  }

  function describeResult(answer, wei) {
    const result = answer.result ?? {};
    const placed = showEth(result.amount ?? wei);
    // status 200 is a replay (the same bid id sent again after a reconnect): the same bid.
    const replayed = '';
    if (result.closed) return `You bought it for ${showEth(result.price ?? wei)}!${replayed}`;
    switch (result.result) {
      case 'outbid_by_proxy':
        return `Your bid of ${placed} was placed, but another bidder's automatic bid is higher: the price is now ${showEth(result.price)}.${replayed}`;
      case 'accepted_below_reserve':
        return `Your bid of ${placed} is ${result.leading ? 'leading' : 'placed'}, but still below the seller's reserve.${replayed}`;
      default:
        return result.leading === false
          ? `Your bid of ${placed} was accepted; the price is ${showEth(result.price)}.${replayed}`
          : `Your bid of ${placed} is the highest.${replayed}`;
    }
  }

  function describeBidError(frame) {
    switch (frame.code) {
      case 'too_low': {
        const min = pick(frame, 'minimum');
        return min
          ? [`Too low: the minimum is now ${showEth(min)}. `, fillButton(min, 'Bid the minimum')]
          : 'Too low: the price has moved. Press “Min” for the new minimum.';
      }
      case 'insufficient_funds': {
        const available = pick(frame, 'available');
        const needed = pick(frame, 'needed');
        return [
          available !== null && available !== undefined
            ? `Not enough funds: your wallet can cover ${showEth(available)} on this lot`
            : 'Not enough funds in your wallet for this bid',
          needed ? `, this bid needs ${showEth(needed)}.` : '.',
          // A local dev chain (config.rpc_url) can mint test funds; production has none.
          devFunds.element.hidden ? '' : ' On this dev chain, “Add 10 test ETH” below funds your wallet.',
        ].join('');
      }
      case 'unauthorized':
        return signInPrompt('Your sign-in has expired or is missing: sign in to bid.');
      case 'not_open': {
        const starts = pick(frame, 'starts_at');
        return starts ? `Bidding has not opened yet: it opens ${formatWhen(starts)}.` : 'Bidding has not opened yet.';
      }
      case 'closed':
        return 'The auction has ended: no more bids.';
      case 'own_lot':
        return 'You cannot bid on your own lot.';
      case 'rate_limited':
        return 'Too many bids in a short time: wait a moment and try again.';
      case 'too_many_bids':
        return 'Your previous bids are still being answered: wait a moment.';
      case 'upstream_unavailable':
        return 'The auction service cannot be reached right now: try again in a moment.';
      case 'engine_busy':
        return 'The auction service is very busy: try again in a moment.';
      case 'holds_unavailable':
        return 'Your funds cannot be checked right now: try again in a moment.';
      case 'busy':
        return 'The auction is busy: try again shortly.';
      case 'lot_not_found':
        return 'This lot does not exist (any more).';
      case 'invalid':
        return `Invalid ${frame.field ?? 'bid'}: ${frame.detail && typeof frame.detail === 'string' ? frame.detail : frame.message ?? ''}`;
      case 'idempotency_key_reused':
        return 'This bid id was already used for another bid: try again.';
      default:
        return frame.message || frame.title || `The bid was refused (${frame.code}).`;
    }
  }

  function fillButton(wei, label) {
    return h(
      'button',
      {
        class: 'link-button',
        type: 'button',
        onclick: () => {
          amount.value = ethForInput(wei);
          amount.focus();
        },
      },
      label,
    );
  }

  function signInPrompt(text) {
    return [text, ' ', h('button', { class: 'link-button', type: 'button', 'data-testid': 'bid-sign-in', onclick: () => openSignIn('Sign in to bid on this lot.') }, 'Sign in')];
  }

  form.addEventListener('submit', placeBid);
  minButton.addEventListener('click', () => {
    const min = minimum(live());
    if (min !== null) {
      amount.value = ethForInput(min);
      amount.removeAttribute('aria-invalid');
      amount.focus();
    }
  });
  buyNowButton.addEventListener('click', () => {
    amount.value = ethForInput(buyNowButton.dataset.wei);
    setBidStatus('idle', `A bid of ${showEth(buyNowButton.dataset.wei)} buys the lot at once.`);
    amount.focus();
  });
  balanceRefresh.addEventListener('click', () => balance.refresh());
  // The watchlist lives in this browser; "My auctions" lists it.
  function renderWatch() {
    const on = isWatched(id);
    watchToggle.textContent = on ? '★ Watching' : '☆ Watch';
    watchToggle.setAttribute('aria-pressed', String(on));
  }
  watchToggle.addEventListener('click', () => {
    toggleWatch(id, lot?.title);
    renderWatch();
  });
  renderWatch();
  barButton.addEventListener('click', () => {
    const min = minimum(live());
    if (min !== null && !amount.value) amount.value = ethForInput(min);
    form.scrollIntoView({ behavior: 'smooth', block: 'center' });
    amount.focus({ preventScroll: true });
  });

  // --- wiring -------------------------------------------------------------------------------

  cleanups.push(devFunds.dispose);

  const unwatch = socket.watch(id, (current, message) => {
    feed = current;
    const before = lastState;
    lastState = current.state;
    switch (message.type) {
      case 'snapshot':
        snapshots += 1;
        // A reset after a long absence: the history may have missed rows.
        if (snapshots > 1) loadHistory();
        renderLive();
        renderHistory();
        break;
      case 'event':
        if (message.event.event === 'auction.bid_accepted') {
          const row = bidFromEvent(message.event);
          if (row.bid_id) history.set(row.bid_id, row);
          renderHistory();
        }
        renderLive();
        if (wasOutbid(before, current.state, session.current?.accountId)) {
          toast(`You have been outbid: the price is now ${showEth(current.state.price)}.`, { kind: 'warning' });
        }
        if (message.event.event === 'auction.closed' || message.event.event === 'auction.cancelled') renderHistory();
        break;
      case 'subscribed':
      case 'presence':
        renderWatchers();
        break;
      case 'error':
        if (message.error.code === 'lot_not_found' && !lot) notFound();
        else if (message.error.code === 'too_many_subscriptions') {
          setBidStatus('error', 'Too many lots are open in this tab for live updates.', { code: message.error.code });
        }
        break;
      default:
        break;
    }
  });
  cleanups.push(unwatch);

  async function loadHistory() {
    try {
      const rows = await api.bidHistory(id, abort.signal);
      for (const row of rows ?? []) {
        const known = history.get(row.bid_id);
        history.set(row.bid_id, { ...row, wallet: known?.wallet ?? null });
      }
      renderHistory();
      renderLive(); // whether the signed-in account bid here shows in its standing
    } catch (error) {
      if (error.name !== 'AbortError') console.warn('bid history', error);
    }
  }

  function notFound() {
    replace(
      container,
      h('section', { class: 'empty-state' }, h('h1', {}, 'No such lot'), h('p', {}, 'It may have been withdrawn.'), h('a', { class: 'button', href: '/' }, 'See all lots')),
    );
  }

  (async () => {
    try {
      lot = await api.lot(id, abort.signal);
    } catch (error) {
      if (error.name === 'AbortError') return;
      if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
        notFound();
        return;
      }
      title.textContent = 'This lot could not be loaded';
      replace(details, h('p', { class: 'error' }, error.message), h('button', { class: 'button', type: 'button', onclick: () => window.location.reload() }, 'Try again'));
      return;
    }
    document.title = `${lot.title} · Gavel`;
    title.textContent = lot.title;
    socket.setRules(id, rules());
    renderGallery();
    renderDetails();
    renderLive();
    renderWatchers();
  })();
  loadHistory();

  cleanups.push(
    session.on('change', () => {
      serverMinimum = null;
      // The panel is the signed-in account's (winner or seller): another account gets its own.
      payment?.dispose();
      payment?.element.remove();
      payment = null;
      renderLive();
      renderHistory();
      renderBalance();
      if (session.current) balance.refresh();
    }),
  );
  cleanups.push(balance.on('change', renderBalance));
  cleanups.push(
    socket.on('bids-waiting', () => {
      if (pending) setBidStatus('pending', 'Connection lost: your bid will be sent again (same bid, never twice) as soon as it is back…');
    }),
  );
  cleanups.push(socket.on('clock', renderCountdown));
  renderBalance();
  if (session.current) balance.refresh();

  const tick = setInterval(renderCountdown, 500);
  const balanceTimer = setInterval(() => {
    if (session.current && document.visibilityState === 'visible') balance.refresh();
  }, BALANCE_EVERY_MS);

  return () => {
    abort.abort();
    payment?.dispose();
    clearInterval(tick);
    clearInterval(balanceTimer);
    for (const cleanup of cleanups) cleanup();
    document.title = 'Gavel';
  };
}

/** A member of an `error` frame, at its top level or inside an object `detail`. */
function pick(frame, key) {
  if (frame[key] !== undefined) return frame[key];
  if (frame.detail && typeof frame.detail === 'object') return frame.detail[key];
  return null;
}
