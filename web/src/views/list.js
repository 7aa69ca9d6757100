// The catalogue: open lots first (ending soonest), then the ones coming up, then recently ended.

import { api } from '../api.js';
import { formatDuration, serverNow } from '../clock.js';
import { h, replace } from '../dom.js';
import { navigate } from '../router.js';
import { showEth } from '../wei.js';

const STATUS_LABEL = { open: 'Open', scheduled: 'Coming up', closed: 'Ended', cancelled: 'Withdrawn' };

export function listView(container) {
  const abort = new AbortController();
  const query = new URLSearchParams(window.location.search).get('q') ?? '';
  const grid = h('div', { class: 'lot-grid', 'data-testid': 'lot-list', 'aria-busy': 'true' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading lots…');
  const more = h('div', { class: 'more' });
  const cards = new Map(); // lot id -> {lot, time}
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
            const q = search.value.trim();
            const url = q ? `/?q=${encodeURIComponent(q)}` : '/';
            navigate(url);
          },
        },
        search,
        h('button', { class: 'button', type: 'submit' }, 'Search'),
      ),
    ),
    status,
    grid,
    more,
  );

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
    const price = lot.summary?.price ?? null;
    const time = h('span', { class: 'time-left' });
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
        h(
          'p',
          { class: 'lot-card-price' },
          h('span', { class: 'muted small' }, price ? 'Current bid' : 'Starting at'),
          h('strong', { 'data-wei': price ?? lot.start_price }, showEth(price ?? lot.start_price)),
        ),
        h(
          'p',
          { class: 'lot-card-meta' },
          h('span', { class: `badge badge-${lot.status}` }, STATUS_LABEL[lot.status] ?? lot.status),
          time,
        ),
      ),
    );
    const photo = lot.photos?.[0];
    if (photo) setThumb(element, photo.url, lot.title);
    else if (observer) observer.observe(element);
    else loadThumb(element);
    cards.set(lot.id, { lot, time });
    return element;
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
      if (time.textContent !== text) time.textContent = text;
    }
  }

  let openCursor = null;
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
                  const page = await api.lots({ status: 'open', sort: 'ending', limit: 24, cursor: openCursor }, abort.signal);
                  openCursor = page.next_cursor ?? null;
                  add(page.items ?? []);
                } catch (error) {
                  if (error.name !== 'AbortError') status.textContent = `Could not load more lots: ${error.message}`;
                }
                showMore();
              },
            },
            'More open lots',
          )
        : null,
    );
  }

  (async () => {
    try {
      if (query) {
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
  };
}
