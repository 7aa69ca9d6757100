// Client-side routes on the History API. The gateway answers unknown paths with index.html, so
// /lots/<id> and /sell load the client directly.

const routes = [];
let current = null; // {cleanup}
let container = null;

/** route('/lots/:id', (element, params) => cleanup?) */
export function route(pattern, view) {
  const names = [];
  const source = pattern
    .replace(/\/+$/, '')
    .replace(/:([a-z]+)/g, (_, name) => {
      names.push(name);
      return '([^/]+)';
    });
  routes.push({ regex: new RegExp(`^${source}/?$`), names, view });
}

export function startRouter(element, notFound) {
  container = element;
  // Old hash links (#/lots/…) become paths.
  if (window.location.hash.startsWith('#/')) {
    window.history.replaceState(null, '', window.location.hash.slice(1));
  }
  window.addEventListener('popstate', () => render(notFound));
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target.closest?.('a[href]');
    if (!link || link.target || link.hasAttribute('download')) return;
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || url.pathname.startsWith('/api/')) return;
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
  render(notFound);
}

export function navigate(path, { replace = false } = {}) {
  if (path === window.location.pathname + window.location.search && !replace) return;
  if (replace) window.history.replaceState(null, '', path);
  else window.history.pushState(null, '', path);
  render();
  window.scrollTo(0, 0);
}

let fallback = null;

function render(notFound = fallback) {
  fallback = notFound;
  if (current?.cleanup) {
    try {
      current.cleanup();
    } catch (error) {
      console.error('leaving the view failed', error);
    }
  }
  container.replaceChildren();
  const path = window.location.pathname.replace(/\/+$/, '') || '/';
  for (const { regex, names, view } of routes) {
    const match = regex.exec(path === '/' ? '' : path);
    if (match) {
      const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(match[i + 1])]));
      current = { cleanup: view(container, params) };
      document.dispatchEvent(new CustomEvent('routechange', { detail: { path } }));
      return;
    }
  }
  current = { cleanup: notFound?.(container) };
  document.dispatchEvent(new CustomEvent('routechange', { detail: { path } }));
}
