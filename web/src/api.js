// REST calls through the gateway (`/api/...`). Every service answers errors as
// application/problem+json with a stable `code`, an optional `field` and `detail`; they become
// ApiError, which views map to words.

export class ApiError extends Error {
  constructor(status, problem) {
    const body = problem && typeof problem === 'object' ? problem : {};
    super(body.detail || body.title || body.message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code || (status === 0 ? 'network' : `http_${status}`);
    this.field = body.field ?? null;
    this.detail = body.detail ?? null;
    this.title = body.title ?? null;
    this.problem = body;
  }
}

let tokenSource = () => null;

/** Where `request` finds the bearer token (set by the session module). */
export function setTokenSource(source) {
  tokenSource = source;
}

/**
 * `fetch` of a gateway path. JSON bodies are encoded; FormData is sent as is. Answers the decoded
 * JSON (or null for 204), with `response` attached for callers that need headers. Throws ApiError.
 */
export async function request(path, { method = 'GET', body, auth = false, signal, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, signal };
  if (auth) {
    const token = typeof auth === 'string' ? auth : tokenSource();
    if (!token) throw new ApiError(401, { code: 'unauthorized', title: 'Sign in first' });
    init.headers.Authorization = `Bearer ${token}`;
  }
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new ApiError(0, { code: 'network', title: 'The server cannot be reached' });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, data ?? { title: response.statusText || `HTTP ${response.status}` });
  }
  return { data, response };
}

export async function getJson(path, options) {
  return (await request(path, options)).data;
}

export const api = {
  config: () => getJson('/api/config'),
  nonce: () => request('/api/auth/nonce'),
  signIn: (message, signature) =>
    getJson('/api/auth/sign-in', { method: 'POST', body: { message, signature } }),
  lots: (params = {}, signal) => {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
    }
    const suffix = query.toString();
    return getJson(`/api/lots${suffix ? `?${suffix}` : ''}`, { signal });
  },
  // Signed in, the seller also sees the reserve; a token the service refuses falls back to anonymous.
  lot: async (id, signal) => {
    const path = `/api/lots/${encodeURIComponent(id)}`;
    const token = tokenSource();
    if (token) {
      try {
        return await getJson(path, { signal, auth: token });
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 401) throw error;
      }
    }
    return getJson(path, { signal });
  },
  createLot: (body) => getJson('/api/lots', { method: 'POST', body, auth: true }),
  uploadPhoto: (id, file) => {
    const form = new FormData();
    form.append('photo', file, file.name || 'photo');
    return getJson(`/api/lots/${encodeURIComponent(id)}/photos`, { method: 'POST', body: form, auth: true });
  },
  auctionState: (id, signal) => getJson(`/api/auction/lots/${encodeURIComponent(id)}`, { signal }),
  bidHistory: (id, signal) =>
    getJson(`/api/auction/lots/${encodeURIComponent(id)}/bids?limit=100`, { signal }),
  auctionEvents: (id, since) =>
    getJson(`/api/auction/lots/${encodeURIComponent(id)}/events?since=${since}`),
  balance: (address) =>
    getJson(`/api/wallets/${encodeURIComponent(address)}/balance`, { auth: true }),
  // "My auctions": the lots the signed-in account bid on (bids).
  myLots: (signal) => getJson('/api/auction/bidders/me/lots', { auth: true, signal }),
  // The seller withdraws a lot that has no bid yet.
  withdrawLot: (id) => request(`/api/lots/${encodeURIComponent(id)}`, { method: 'DELETE', auth: true }),
  // The payment for a sold lot (the winner pays, the seller follows it).
  payment: (lotId, signal) => getJson(`/api/payments/${encodeURIComponent(lotId)}`, { auth: true, signal }),
  submitPayment: (lotId, txHash) =>
    getJson(`/api/payments/${encodeURIComponent(lotId)}`, { method: 'POST', body: { tx_hash: txHash }, auth: true }),
  // A one-time code to link a Telegram chat (the gateway forwards it to the notifier).
  linkCode: () => getJson('/api/link-codes', { method: 'POST', auth: true }),
};
