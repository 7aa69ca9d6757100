// Gavel's browser client: starts the session, the WebSocket and the router.

import { myBids, socket, syncMyBids, toast } from './app.js';
import { h, replace } from './dom.js';
import { watchMyBids } from './mybids.js';
import { route, startRouter } from './router.js';
import { session } from './session.js';
import { mountAccount } from './views/account.js';
import { listView } from './views/list.js';
import { mineView } from './views/mine.js';
import { lotView } from './views/lot.js';
import { sellView } from './views/sell.js';

const CONNECTION_LABEL = {
  idle: 'Connecting…',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

function mountConnection(element) {
  const render = (state) => {
    element.dataset.state = state;
    element.title =
      state === 'live' ? 'Prices update live' : state === 'offline' ? 'No network: prices may be stale' : 'Live updates are reconnecting';
    replace(element, h('span', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'connection-label' }, CONNECTION_LABEL[state] ?? state));
  };
  socket.on('state', render);
  render(socket.state);
}

function notFound(container) {
  replace(
    container,
    h('section', { class: 'empty-state' }, h('h1', {}, 'Nothing here'), h('p', {}, 'This page does not exist.'), h('a', { class: 'button', href: '/' }, 'See the lots')),
  );
}

async function main() {
  await session.init();
  mountConnection(document.getElementById('connection'));
  mountAccount(document.getElementById('account'), document.getElementById('account-panel'));

  session.on('change', () => socket.sessionChanged());
  socket.on('auth-refused', (frame) => {
    if (!session.current) return;
    toast(`Live bidding refused your sign-in (${frame.message || frame.code}): sign in again.`, { kind: 'error' });
    session.signOut();
  });
  socket.start();
  // Outbid on a lot whose page is not open: a toast that leads to it. The lots come from this
  // browser's bids and, at sign-in, from the server (bids placed on another device).
  syncMyBids();
  session.on('change', () => syncMyBids());
  watchMyBids({
    socket,
    session,
    changed: myBids,
    shownLot: () => window.location.pathname.match(/^\/lots\/([^/]+)$/)?.[1] ?? null,
    tell: ({ lotId, title, price }) =>
      toast(h('span', {}, `You have been outbid on “${title ?? 'a lot'}”: the price is now ${price}. `, h('a', { href: `/lots/${lotId}` }, 'Bid again')), { kind: 'warning', ms: 10_000 }),
  });

  route('/', listView);
  route('/lots/:id', lotView);
  route('/sell', sellView);
  route('/me', mineView);
  startRouter(document.getElementById('view'), notFound);

  const highlight = () => {
    for (const link of document.querySelectorAll('.nav a')) {
      const href = link.getAttribute('href');
      const here = window.location.pathname;
      link.toggleAttribute('aria-current', href === '/' ? here === '/' || here.startsWith('/lots') : here.startsWith(href));
    }
  };
  document.addEventListener('routechange', highlight);
  highlight();
}

main().catch((error) => {
  console.error(error);
  replace(document.getElementById('view'), h('p', { class: 'error' }, `Gavel could not start: ${error.message}`));
});
