// The catalogue. By default: open lots first (ending soonest), then the ones coming up, then
// recently ended; or one status in one order (ending soon, newest, price). Cards on screen follow
// their lots live over the tab's WebSocket: price, bid count, countdown, and how they ended.

import { api } from '../api.js';
import { socket } from '../app.js';
import { formatDuration, serverNow } from '../clock.js';
import { h, replace } from '../dom.js';
import { cardPrice, withLiveState } from '../lotstate.js';
import { navigate } from '../router.js';
import { showEth } from '../wei.js';

const STATUS_LABEL = { open: 'Open', scheduled: 'Coming up', closed: 'Ended', cancelled: 'Withdrawn' };
const SORTS = [
  ['', 'Ending soon'],
  ['newest', 'Newest'],
  ['price_low', 'Price: low to high'],
  ['price_high', 'Price: high to low'],
];
const SHOWS = [
  ['', 'Open, coming up, ended'],
  ['open', 'Open'],
  ['scheduled', 'Coming up'],
  ['closed', 'Ended'],
];
/** Cards followed live at once: the gateway bounds a connection's subscriptions (32), which the
 * lot page and the bidder's own lots share. */
const LIVE_CARDS = 16;

export function listView(container) {
  const abort = new AbortController();
  const params = new URLSearchParams(window.location.search);
  const query = params.get('q') ?? '';
  const sort = SORTS.some(([value]) => value === params.get('sort')) ? params.get('sort') : '';
  const show = SHOWS.some(([value]) => value === params.get('status')) ? params.get('status') : '';
  const grid = h('div', { class: 'lot-grid', 'data-testid': 'lot-list', 'aria-busy': 'true' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading lots…');
  const more = h('div', { class: 'more' });
  const cards = new Map(); // lot id -> {lot, element, time, stop}
  const search = h('input', {
    type: 'search',
    name: 'q',
    placeholder: 'Search lots',
    value: query,
    'aria-label': 'Search lots',
    'data-testid': 'search',
  });

  replace(
    container,
    h(
      'section',
      { class: 'list-head' },
      h('h1', {}, query ? `Lots matching “${query}”` : 'Live auctions'),
      h(
        'form',
        {
          class: 'search',
          role: 'search',
          onsubmit: (event) => {
            event.preventDefault();
            const next = new URLSearchParams(window.location.search);
            const q = search.value.trim();
            if (q) next.set('q', q);
            else next.delete('q');
            const text = next.toString();
            navigate(text ? `/?${text}` : '/');
          },
        },
        search,
        h('button', { class: 'button', type: 'submit' }, 'Search'),
      ),
      h(
        'div',
        { class: 'list-controls' },
        choice('Show', 'status', show, SHOWS, 'list-status'),
        choice('Sort', 'sort', sort, SORTS, 'list-sort'),
      ),
    ),
    status,
    grid,
    more,
  );

  /** A select that reloads the catalogue with `name` set (the other choices kept). */
  function choice(label, name, current, options, testid) {
    const select = h(
      'select',
      {
        name,
        'aria-label': label,
        'data-testid': testid,
        onchange: () => {
          const next = new URLSearchParams(window.location.search);
          if (select.value) next.set(name, select.value);
          else next.delete(name);
          const text = next.toString();
          navigate(text ? `/?${text}` : '/');
        },
      },
      options.map(([value, text]) => h('option', { value, selected: value === current }, text)),
    );
    return h('label', { class: 'list-choice small' }, `${label} `, select);
  }

  // Live cards: those on screen (and not ended) follow their lot over the socket.
  const onScreen = new Set();
  const liveObserver =
    'IntersectionObserver' in window
      ? new IntersectionObserver((entries) => {
          for (const entry of entries) {
            const id = entry.target.dataset.lotId;
            if (entry.isIntersecting) onScreen.add(id);
            else onScreen.delete(id);
          }
          followVisible();
        })
      : null;

  function followVisible() {
    for (const [id, entry] of cards) {
      const ended = entry.lot.status === 'closed' || entry.lot.status === 'cancelled';
      if (entry.stop && (!onScreen.has(id) || ended)) {
        entry.stop();
        entry.stop = null;
      }
    }
    let following = [...cards.values()].filter((entry) => entry.stop).length;
    for (const id of onScreen) {
      const entry = cards.get(id);
      if (!entry || entry.stop || following >= LIVE_CARDS) continue;
      if (entry.lot.status === 'closed' || entry.lot.status === 'cancelled') continue;
      following += 1;
      entry.stop = socket.watch(id, (feed) => {
        if (!feed.state) return;
        entry.lot = withLiveState(entry.lot, feed.state);
        renderCard(entry);
        if (entry.lot.status === 'closed' || entry.lot.status === 'cancelled') queueMicrotask(followVisible);
      });
    }
  }

  // Thumbnails: the catalogue lists no photos, so each visible card asks for its lot.
  const observer =
    'IntersectionObserver' in window
      ? new IntersectionObserver(
          (entries) => {
            for (const entry of entries) {
              if (!entry.isIntersecting) continue;
              observer.unobserve(entry.target);
              loadThumb(entry.target);
            }
          },
          { rootMargin: '200px' },
        )
      : null;
  let thumbsRunning = 0;
  const thumbQueue = [];
  function loadThumb(card) {
    thumbQueue.push(card);
    pumpThumbs();
  }
  function pumpThumbs() {
    while (thumbsRunning < 4 && thumbQueue.length) {
      const card = thumbQueue.shift();
      thumbsRunning += 1;
      api
        .lot(card.dataset.lotId, abort.signal)
        .then((lot) => {
          const photo = [...(lot.photos ?? [])].sort((a, b) => a.position - b.position)[0];
          if (photo) setThumb(card, photo.url, lot.title);
        })
        .catch(() => {})
        .finally(() => {
          thumbsRunning -= 1;
          pumpThumbs();
        });
    }
  }

  function setThumb(card, url, title) {
    const holder = card.querySelector('.thumb');
    const img = h('img', { src: url, alt: title, loading: 'lazy', decoding: 'async', 'data-testid': 'lot-thumb' });
    img.addEventListener('error', () => img.remove());
    holder.replaceChildren(img);
  }

  function card(lot) {
    const time = h('span', { class: 'time-left' });
    const priceLabel = h('span', { class: 'muted small' });
    const price = h('strong', { 'data-testid': 'lot-card-price' });
    const bids = h('span', { class: 'lot-card-bids', 'data-testid': 'lot-card-bids' });
    const badge = h('span', { class: 'badge' });
    const element = h(
      'a',
      {
        class: `lot-card status-${lot.status}`,
        href: `/lots/${lot.id}`,
        'data-testid': 'lot-link',
        'data-lot-id': lot.id,
        'data-status': lot.status,
      },
      h('div', { class: 'thumb', 'aria-hidden': 'true' }, h('span', { class: 'thumb-placeholder' }, lot.title.slice(0, 1).toUpperCase())),
      h(
        'div',
        { class: 'lot-card-body' },
        h('h2', { class: 'lot-card-title' }, lot.title),
        h('p', { class: 'lot-card-price' }, priceLabel, price),
        h('p', { class: 'lot-card-meta' }, badge, bids, time),
      ),
    );
    const photo = lot.photos?.[0];
    if (photo) setThumb(element, photo.url, lot.title);
    else if (observer) observer.observe(element);
    else loadThumb(element);
    const entry = { lot, element, time, priceLabel, price, bids, badge, stop: null };
    cards.set(lot.id, entry);
    renderCard(entry);
    liveObserver?.observe(element);
    return element;
  }

  function renderCard(entry) {
    const { lot, element } = entry;
    const shown = cardPrice(lot);
    element.className = `lot-card status-${lot.status}`;
    element.dataset.status = lot.status;
    entry.badge.className = `badge badge-${lot.status}`;
    entry.badge.textContent = STATUS_LABEL[lot.status] ?? lot.status;
    entry.priceLabel.textContent = shown.label;
    const wei = shown.wei ?? '';
    if (entry.price.dataset.wei && entry.price.dataset.wei !== wei) {
      entry.price.classList.remove('flash');
      void entry.price.offsetWidth; // restart the animation
      entry.price.classList.add('flash');
    }
    entry.price.dataset.wei = wei;
    entry.price.textContent = showEth(wei);
    const count = Number(lot.summary?.bid_count ?? 0);
    entry.bids.textContent = count ? `${count} ${count === 1 ? 'bid' : 'bids'}` : '';
    entry.bids.dataset.count = String(count);
  }

  function tick() {
    const now = serverNow();
    for (const { lot, time } of cards.values()) {
      const ends = Date.parse(lot.summary?.ends_at ?? lot.ends_at);
      const starts = Date.parse(lot.starts_at);
      let text = '';
      if (lot.status === 'scheduled' || (lot.status !== 'closed' && lot.status !== 'cancelled' && now < starts)) {
        text = now < starts ? `starts in ${formatDuration(starts - now)}` : 'starting';
      } else if (lot.status === 'open') {
        text = now < ends ? `${formatDuration(ends - now)} left` : 'ending';
      }
      if (lot.status === 'open' && now >= ends) text = 'ending';
      if (time.textContent !== text) time.textContent = text;
    }
  }

  let openCursor = null;
  let moreQuery = { status: 'open', sort: 'ending', limit: 24 };
  const seen = new Set();
  function add(items) {
    const fresh = items.filter((lot) => !seen.has(lot.id));
    for (const lot of fresh) seen.add(lot.id);
    grid.append(...fresh.map(card));
    tick();
  }

  function showMore() {
    replace(
      more,
      openCursor
        ? h(
            'button',
            {
              class: 'button',
              type: 'button',
              onclick: async (event) => {
                event.target.disabled = true;
                try {
                  const page = await api.lots({ ...moreQuery, cursor: openCursor }, abort.signal);
                  openCursor = page.next_cursor ?? null;
                  add(page.items ?? []);
                } catch (error) {
                  if (error.name !== 'AbortError') status.textContent = `Could not load more lots: ${error.message}`;
                }
                showMore();
              },
            },
            'More lots',
          )
        : null,
    );
  }

  (async () => {
    try {
      if (show || sort) {
        // One status (or all) in one order, straight from the API, page by page.
        // Ended lots read best newest first; the others soonest-ending first.
        const order = sort || (show === 'closed' ? 'newest' : 'ending');
        moreQuery = { q: query || undefined, status: show || undefined, sort: order, limit: 24 };
        const page = await api.lots(moreQuery, abort.signal);
        openCursor = page.next_cursor ?? null;
        add(page.items ?? []);
        showMore();
      } else if (query) {
        const page = await api.lots({ q: query, limit: 50 }, abort.signal);
        const order = { open: 0, scheduled: 1, closed: 2, cancelled: 3 };
        add([...(page.items ?? [])].sort((a, b) => (order[a.status] ?? 9) - (order[b.status] ?? 9)));
      } else {
        const [open, upcoming, ended] = await Promise.all([
          api.lots({ status: 'open', sort: 'ending', limit: 24 }, abort.signal),
          api.lots({ status: 'scheduled', limit: 12 }, abort.signal).catch(() => ({ items: [] })),
          api.lots({ status: 'closed', limit: 12 }, abort.signal).catch(() => ({ items: [] })),
        ]);
        openCursor = open.next_cursor ?? null;
        add(open.items ?? []);
        add(upcoming.items ?? []);
        add(ended.items ?? []);
        showMore();
      }
      grid.setAttribute('aria-busy', 'false');
      status.textContent = seen.size ? '' : query ? 'No lot matches.' : 'No lots yet. Put the first one up!';
      status.hidden = seen.size > 0;
    } catch (error) {
      if (error.name === 'AbortError') return;
      grid.setAttribute('aria-busy', 'false');
      status.textContent = `Could not load the lots: ${error.message}`;
      status.classList.add('error');
    }
  })();

  const timer = setInterval(tick, 1000);
  return () => {
    abort.abort();
    clearInterval(timer);
    observer?.disconnect();
    liveObserver?.disconnect();
    for (const entry of cards.values()) entry.stop?.();
  };
}
