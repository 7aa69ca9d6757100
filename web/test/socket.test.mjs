// LiveSocket against a fake WebSocket: ordering per lot, gap filling from the log, reconnecting
// with `since`, and bids resent with the same id after a drop.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

class FakeSocket {
  static OPEN = 1;
  static all = [];
  readyState = 0;
  sent = [];
  constructor(url) {
    this.url = url;
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
  }
  // test side
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
  frames(type) {
    return this.sent.filter((frame) => frame.type === type);
  }
}

globalThis.window = { addEventListener() {}, location: { protocol: 'http:', host: 'localhost:8080' } };
globalThis.navigator = { onLine: true };
globalThis.WebSocket = FakeSocket;

const { LiveSocket, reconnectDelay } = await import('../src/socket.js');
// Reconnect at the earliest moment the jitter allows.
LiveSocket.random = () => 0;

const LOT = '0196f1c2-7a2b-7c00-8000-000000000001';
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
let fetched;

beforeEach(() => {
  FakeSocket.all = [];
  fetched = [];
  globalThis.fetch = async (path) => {
    fetched.push(path);
    const since = Number(new URL(path, 'http://x').searchParams.get('since'));
    const events = [6, 7]
      .filter((seq) => seq > since)
      .map((seq) => ({ type: 'auction.bid_accepted', aggregate_id: LOT, sequence: seq, occurred_at: 't', payload: { price: String(seq), bid_count: seq, bid_id: `b${seq}` } }));
    return new Response(JSON.stringify({ lot_id: LOT, since, events }), { status: 200 });
  };
});

const sockets = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.stop();
});

function connect(token = null) {
  const socket = new LiveSocket({ url: 'ws://localhost:8080/ws/v1', getToken: () => token });
  sockets.push(socket);
  socket.start();
  const ws = FakeSocket.all.at(-1);
  ws.open();
  ws.receive({ type: 'welcome', protocol: 1, server_time: new Date().toISOString(), limits: { max_frame_bytes: 4096 } });
  return { socket, ws };
}

const event = (sequence) => ({ type: 'event', lot_id: LOT, sequence, event: 'auction.bid_accepted', data: { price: String(sequence), bid_count: sequence, bid_id: `b${sequence}` } });

test('events apply in order; old ones are ignored; a snapshot resets', () => {
  const { socket, ws } = connect();
  const applied = [];
  socket.watch(LOT, (feed, message) => message.type === 'event' && applied.push(message.event.sequence));
  assert.deepEqual(ws.frames('subscribe'), [{ type: 'subscribe', lot_id: LOT }]);
  ws.receive(event(3)); // before the snapshot: kept
  ws.receive({ type: 'snapshot', lot_id: LOT, sequence: 3, lot: { status: 'open', price: '3', bid_count: 3 } });
  ws.receive({ type: 'subscribed', lot_id: LOT, sequence: 3, watchers: 2 });
  ws.receive(event(5));
  ws.receive(event(4));
  ws.receive(event(4));
  ws.receive(event(2));
  assert.deepEqual(applied, [4, 5]);
  ws.receive({ type: 'snapshot', lot_id: LOT, sequence: 10, lot: { status: 'open', price: '10', bid_count: 10 } });
  ws.receive(event(9));
  ws.receive(event(11));
  assert.deepEqual(applied, [4, 5, 11]);
});

test('a gap is filled from the bids log before anything newer', async () => {
  const { socket, ws } = connect();
  const applied = [];
  let state;
  socket.watch(LOT, (feed, message) => {
    state = feed.state;
    if (message.type === 'event') applied.push(message.event.sequence);
  });
  ws.receive({ type: 'snapshot', lot_id: LOT, sequence: 5, lot: { status: 'open', price: '5', bid_count: 5 } });
  ws.receive(event(8));
  assert.deepEqual(applied, []);
  for (let i = 0; i < 5; i += 1) await tick();
  assert.match(fetched[0], /\/api\/auction\/lots\/.+\/events\?since=5$/);
  assert.deepEqual(applied, [6, 7, 8]);
  assert.equal(state.price, '8');
  assert.equal(state.sequence, 8);
});

test('reconnects are spread out: even the first waits a random moment, later ones back off', () => {
  assert.equal(reconnectDelay(1001, 0, 0), 0);
  assert.equal(reconnectDelay(1001, 0, 0.5), 500);
  assert.ok(reconnectDelay(1001, 0, 0.999) < 1000);
  const later = [1, 2, 3, 4, 10].map((failures) => [reconnectDelay(1006, failures, 0), reconnectDelay(1006, failures, 0.999)]);
  assert.deepEqual(later.map(([low]) => low), [250, 500, 1000, 2000, 15000]);
  assert.ok(later.every(([low, high]) => high < low * 2));
  assert.ok(reconnectDelay(1008, 0, 0) >= 2500, 'a flooding client comes back slowly');
});

test('after a drop it reconnects and resubscribes with since', async () => {
  const { socket, ws } = connect('token-1');
  socket.watch(LOT, () => {});
  ws.receive({ type: 'snapshot', lot_id: LOT, sequence: 4, lot: { status: 'open' } });
  ws.receive(event(5));
  // pretend the connection has lived long enough to count as stable
  ws.drop(1001);
  await new Promise((resolve) => setTimeout(resolve, 5));
  const next = FakeSocket.all.at(-1);
  assert.notEqual(next, ws);
  next.open();
  assert.deepEqual(next.sent[0], { type: 'auth', token: 'token-1' });
  assert.deepEqual(next.frames('subscribe'), [{ type: 'subscribe', lot_id: LOT, since: 5 }]);
});

test('an unanswered bid is sent again with the same id after reconnecting', async () => {
  const { socket, ws } = connect('token-1');
  ws.receive({ type: 'authenticated', account_id: 'a', wallet: '0x', expires_at: 'x' });
  const answer = socket.bid({ lotId: LOT, amount: '25' });
  const [first] = ws.frames('bid');
  assert.equal(first.amount, '25');
  assert.match(first.id, /^[A-Za-z0-9_-]{1,64}$/);
  ws.drop(1006);
  await new Promise((resolve) => setTimeout(resolve, 5));
  const next = FakeSocket.all.at(-1);
  next.open();
  assert.equal(next.frames('bid').length, 0, 'no bid before authenticated');
  next.receive({ type: 'authenticated', account_id: 'a', wallet: '0x', expires_at: 'x' });
  const [again] = next.frames('bid');
  assert.deepEqual(again, first);
  next.receive({ type: 'bid_result', id: first.id, status: 200, result: { result: 'accepted', price: '25' } });
  const result = await answer;
  assert.equal(result.status, 200);
});

test('a refused bid rejects with the error code and its details', async () => {
  const { socket, ws } = connect('token-1');
  ws.receive({ type: 'authenticated', account_id: 'a', wallet: '0x', expires_at: 'x' });
  const answer = socket.bid({ lotId: LOT, amount: '1' });
  const [sent] = ws.frames('bid');
  ws.receive({ type: 'error', id: sent.id, code: 'too_low', status: 409, message: 'below', minimum: '30' });
  await assert.rejects(answer, (error) => error.code === 'too_low' && error.frame.minimum === '30');
  await assert.rejects(new LiveSocket({ url: 'x', getToken: () => null }).bid({ lotId: LOT, amount: '1' }), (error) => error.code === 'unauthorized');
});

test('a bid turned away as engine_busy is sent again with the same id after a pause', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { socket, ws } = connect('token-1');
  ws.receive({ type: 'authenticated', account_id: 'a', wallet: '0x', expires_at: 'x' });
  const answer = socket.bid({ lotId: LOT, amount: '40' });
  const [first] = ws.frames('bid');
  ws.receive({ type: 'error', id: first.id, code: 'engine_busy', message: 'busy' });
  assert.equal(ws.frames('bid').length, 1, 'not at once');
  t.mock.timers.tick(1_000);
  const [, again] = ws.frames('bid');
  assert.deepEqual(again, first);
  ws.receive({ type: 'bid_result', id: first.id, status: 201, result: { result: 'accepted', price: '40' } });
  assert.equal((await answer).status, 201);
});
