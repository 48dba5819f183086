// Unit tests of pushlane.js in Node with a scripted WebSocket and EventSource: URLs, states,
// backoff, resume, protocol version 2 (hello, epoch, acks), de-duplication, the SSE transport and
// the fallback rule, persistence, app-level ping, stop codes. No browser or server needed:
//   node --test pushlane.test.mjs
// The same behaviours against the real server in Chromium: client.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PushClient, validUserId } from '../pushlane/pushlane.js';

/** fakeSockets returns WebSocket and EventSource classes whose instances the test drives by hand. */
function fakeSockets() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.kind = 'websocket';
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(text) {
      this.sent.push(text);
    }
    close(code, reason) {
      this.closedWith = { code, reason };
    }
    // driven by the test, as the server would
    open() {
      this.onopen({});
    }
    recv(frame) {
      this.onmessage({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
    }
    drop(code, reason) {
      this.onclose({ code, reason: reason || '' });
    }
    acks() {
      return this.sent.filter((s) => s.includes('"ack"')).map((s) => JSON.parse(s).id);
    }
  }
  class FakeEventSource {
    constructor(url) {
      this.kind = 'sse';
      this.url = url;
      this.closed = false;
      this.listeners = {};
      sockets.push(this);
    }
    addEventListener(type, fn) {
      (this.listeners[type] ||= []).push(fn);
    }
    close() {
      this.closed = true;
    }
    open() {
      this.onopen({});
    }
    recv(frame, id) {
      this.onmessage({ data: JSON.stringify(frame), lastEventId: id || '' });
    }
    closeEvent(code) {
      for (const fn of this.listeners.close || []) fn({ data: JSON.stringify({ code }) });
    }
    fail() {
      if (this.onerror) this.onerror({}); // detached by the client: a closed EventSource fires nothing
    }
  }
  return { FakeWebSocket, FakeEventSource, sockets };
}

async function waitFor(what, pred, ms = 2000) {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function newClient(opts, { onMessage } = {}) {
  const fake = fakeSockets();
  const states = [];
  const messages = [];
  const errors = [];
  const client = new PushClient('http://push.test:8080/', Object.assign({
    userId: 'alice', WebSocket: fake.FakeWebSocket, EventSource: fake.FakeEventSource,
    minDelay: 20, maxDelay: 80, pingInterval: 0,
  }, opts));
  client.on('state', (s) => states.push(s));
  client.on('message', onMessage || ((m) => { messages.push(m); }));
  client.on('error', (e) => errors.push(e));
  return { client, states, messages, errors, sockets: fake.sockets };
}

const msg = (id, data) => ({ id, userId: 'alice', data: data ?? { n: id }, createdAt: '2026-11-21T10:00:00Z' });
const hello = (epoch, recovered = true) => ({ type: 'hello', epoch, recovered });
const params = (socket) => Object.fromEntries(new URL(socket.url).searchParams);

test('builds the WebSocket URL (protocol version 2) and the event-stream URL', async () => {
  const { client, sockets } = newClient({ token: 't.o.k', since: '41', epoch: 'E1' });
  await waitFor('socket', () => sockets.length === 1);
  const u = new URL(sockets[0].url);
  assert.equal(u.protocol, 'ws:');
  assert.equal(u.host, 'push.test:8080');
  assert.equal(u.pathname, '/getPushNews');
  assert.deepEqual(params(sockets[0]), { userId: 'alice', v: '2', token: 't.o.k', epoch: 'E1', since: '41' });
  client.close();

  const tls = new PushClient('https://example.com/push', { userId: 'a@b', autoConnect: false });
  assert.equal(tls.socketURL(''), 'wss://example.com/push/getPushNews?userId=a%40b&v=2');
  assert.equal(tls.streamURL('tok'), 'https://example.com/push/getPushNews?userId=a%40b&token=tok');
  assert.throws(() => new PushClient('', { userId: 'x', since: '007' }), /since/);
  assert.throws(() => new PushClient('', { userId: 'x', epoch: 'no spaces' }), /epoch/);
  assert.throws(() => new PushClient('', { userId: 'x', transport: 'carrier-pigeon' }), /transport/);
  assert.throws(() => new PushClient('', {}), /userId/);
  for (const bad of ['.', '..', 'a b', 'x'.repeat(129)]) {
    assert.equal(validUserId(bad), false, bad);
    assert.throws(() => new PushClient('', { userId: bad }), /userId/, bad);
  }
  assert.equal(validUserId('...'), true, 'only "." and ".." are refused, as on the server');
});

test('emits connecting then open, delivers in order and acks each message after its handler', async () => {
  const { client, states, messages, sockets } = newClient();
  await waitFor('socket', () => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  ws.recv(hello('E1'));
  ws.recv(msg('1'));
  ws.recv(msg('2', 'text'));
  await waitFor('two messages', () => messages.length === 2);
  assert.deepEqual(states.map((s) => [s.state, s.transport]), [['connecting', 'websocket'], ['open', 'websocket']]);
  assert.deepEqual(messages.map((m) => m.id), ['1', '2']);
  assert.equal(messages[1].data, 'text');
  assert.deepEqual(ws.acks(), ['1', '2']);
  assert.equal(ws.sent[0], '{"type":"ack","id":"1"}');
  assert.equal(client.lastId, '2');
  assert.equal(client.epoch, 'E1');
  client.close();
  assert.equal(client.state, 'closed');
  assert.deepEqual(ws.closedWith, { code: 1000, reason: 'closed by client' });
});

test('an async handler is awaited: the next message waits, the ack follows the promise', async () => {
  const release = [];
  const seen = [];
  const { client, sockets } = newClient({}, {
    onMessage: (m) => new Promise((resolve) => {
      seen.push(m.id);
      release.push(resolve);
    }),
  });
  await waitFor('socket', () => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  ws.recv(msg('1'));
  ws.recv(msg('2'));
  await waitFor('first handler', () => seen.length === 1);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, ['1'], 'message 2 waits for the handler of 1');
  assert.deepEqual(ws.acks(), [], 'no ack before the handler resolved');
  release[0]();
  await waitFor('second handler', () => seen.length === 2);
  assert.deepEqual(ws.acks(), ['1']);
  release[1]();
  await waitFor('second ack', () => ws.acks().length === 2);
  client.close();
});

test('a throwing handler: no ack, an error event, later messages still delivered, the cursor pinned below it', async () => {
  const delivered = [];
  const { client, errors, sockets } = newClient({}, {
    onMessage: (m) => {
      if (m.data === 'poison') throw new Error('app bug');
      delivered.push(m.id);
    },
  });
  await waitFor('socket', () => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  ws.recv(hello('E1'));
  ws.recv(msg('4'));
  ws.recv(msg('5', 'poison'));
  ws.recv(msg('6'));
  await waitFor('message 6', () => delivered.includes('6'));
  assert.deepEqual(ws.acks(), ['4', '6'], '5 is not acknowledged');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].message, 'app bug');
  assert.equal(errors[0].pushlaneMessage.id, '5');
  assert.equal(client.lastId, '4', 'the cursor stays below the failed message');

  // The next connection resumes below 5: 5 is delivered again, 6 is acked without the handler.
  ws.drop(1006);
  await waitFor('reconnect', () => sockets.length === 2);
  assert.equal(params(sockets[1]).since, '4');
  assert.equal(params(sockets[1]).epoch, 'E1');
  sockets[1].open();
  sockets[1].recv(hello('E1'));
  sockets[1].recv(msg('5', 'fixed'));
  sockets[1].recv(msg('6'));
  sockets[1].recv(msg('7'));
  await waitFor('message 7', () => delivered.includes('7'));
  assert.deepEqual(delivered, ['4', '6', '5', '7']);
  assert.deepEqual(sockets[1].acks(), ['5', '6', '7'], 'a duplicate is acknowledged again');
  assert.equal(client.lastId, '7');
  client.close();
});

test('a first message that fails with no cursor pins the cursor just below it', async () => {
  const { client, sockets } = newClient({}, { onMessage: () => { throw new Error('no'); } });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].open();
  sockets[0].recv(msg('1'));
  await waitFor('pinned', () => client.lastId === '0');
  sockets[0].drop(1001);
  await waitFor('reconnect', () => sockets.length === 2);
  assert.equal(params(sockets[1]).since, '0', 'since=0: the failed message comes back even on an event stream');
  client.close();
});

test('de-duplicates by id, compares ids as numbers, and broadcasts do not move since nor get acked', async () => {
  const { client, messages, sockets } = newClient();
  await waitFor('socket', () => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  ws.recv(msg('9'));
  ws.recv(msg('9'));
  ws.recv(msg('10'));
  ws.recv({ userId: 'alice', broadcast: true, data: { all: true }, createdAt: '2026-11-21T10:00:00Z' });
  ws.recv({ type: 'pong' });
  ws.recv(msg('9223372036854775807'));
  ws.recv(msg('10'));
  await waitFor('all frames', () => ws.acks().length === 5);
  assert.deepEqual(messages.map((m) => m.id ?? 'broadcast'), ['9', '10', 'broadcast', '9223372036854775807']);
  assert.deepEqual(ws.acks(), ['9', '9', '10', '9223372036854775807', '10']);
  assert.equal(client.lastId, '9223372036854775807', 'ids compare as BigInt, not as strings or doubles');
  client.close();
});

test('recovered=false: the cursor and seen ids are forgotten, resync is awaited before the replay', async () => {
  const order = [];
  const { client, sockets } = newClient({ since: '50', epoch: 'OLD' }, { onMessage: (m) => { order.push('message ' + m.id); } });
  let resync = null;
  client.on('resync', async (e) => {
    resync = e;
    await new Promise((r) => setTimeout(r, 20));
    order.push('resync done');
  });
  await waitFor('socket', () => sockets.length === 1);
  assert.deepEqual([params(sockets[0]).since, params(sockets[0]).epoch], ['50', 'OLD']);
  sockets[0].open();
  sockets[0].recv(hello('NEW', false));
  sockets[0].recv(msg('1'));
  sockets[0].recv(msg('2'));
  await waitFor('replay', () => order.length === 3);
  assert.deepEqual(resync, { epoch: 'NEW', previousEpoch: 'OLD', previousSince: '50' });
  assert.deepEqual(order, ['resync done', 'message 1', 'message 2']);
  assert.equal(client.lastId, '2');
  assert.equal(client.epoch, 'NEW');
  client.close();
});

test('storage keeps the cursor and the epoch across instances', async () => {
  const store = new Map();
  const storage = { getItem: (k) => (store.has(k) ? store.get(k) : null), setItem: (k, v) => store.set(k, v) };
  const first = newClient({ storage });
  await waitFor('socket', () => first.sockets.length === 1);
  assert.equal(params(first.sockets[0]).since, undefined, 'nothing stored yet');
  first.sockets[0].open();
  first.sockets[0].recv(hello('E7'));
  first.sockets[0].recv(msg('12'));
  await waitFor('ack', () => first.sockets[0].acks().length === 1);
  first.client.close();
  assert.deepEqual(JSON.parse(store.get('pushlane:alice')), { since: '12', epoch: 'E7' });

  const second = newClient({ storage });
  await waitFor('socket', () => second.sockets.length === 1);
  assert.deepEqual([params(second.sockets[0]).since, params(second.sockets[0]).epoch], ['12', 'E7']);
  second.client.close();

  const explicit = newClient({ storage, since: '3' });
  await waitFor('socket', () => explicit.sockets.length === 1);
  assert.equal(params(explicit.sockets[0]).since, '3', 'options.since wins over storage');
  explicit.client.close();

  const broken = { getItem: () => { throw new Error('blocked'); }, setItem: () => { throw new Error('full'); } };
  const tolerant = newClient({ storage: broken });
  await waitFor('socket', () => tolerant.sockets.length === 1);
  tolerant.sockets[0].open();
  tolerant.sockets[0].recv(msg('1'));
  await waitFor('delivered', () => tolerant.messages.length === 1);
  tolerant.client.close();
});

test('reconnects with backoff and resumes with since = last id', async (t) => {
  t.mock.method(Math, 'random', () => 0.999);
  const { client, states, messages, sockets } = newClient({ minDelay: 20, maxDelay: 60, transport: 'websocket' });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].open();
  sockets[0].recv(msg('5'));
  await waitFor('message', () => messages.length === 1);
  sockets[0].drop(1001, 'server shutting down');
  const r1 = states.at(-1);
  assert.equal(r1.state, 'reconnecting');
  assert.equal(r1.code, 1001);
  assert.equal(r1.reason, 'server shutting down');
  assert.ok(r1.delay >= 0 && r1.delay < 20, 'first retry waits less than minDelay: ' + r1.delay);

  // The server is down: every try fails before opening, and the ceiling doubles up to maxDelay.
  const delays = [r1.delay];
  for (let i = 1; i < 4; i++) {
    await waitFor('retry ' + i, () => sockets.length === i + 1);
    assert.equal(params(sockets[i]).since, '5');
    sockets[i].drop(1006);
    delays.push(states.at(-1).delay);
  }
  assert.deepEqual(delays, [19, 39, 59, 59], 'full jitter under min(maxDelay, minDelay * 2^n)');

  await waitFor('retry 4', () => sockets.length === 5);
  sockets[4].open();
  sockets[4].recv(msg('5')); // at least once: a replayed id is dropped
  sockets[4].recv(msg('6'));
  await waitFor('message 6', () => messages.length === 2);
  assert.deepEqual(messages.map((m) => m.id), ['5', '6']);
  assert.equal(states.at(-1).state, 'open');
  client.close();
});

test('backoff starts again from minDelay once a connection stayed open', async (t) => {
  t.mock.method(Math, 'random', () => 0.999);
  const { client, states, sockets } = newClient({ minDelay: 10, maxDelay: 1000, stableAfter: 30, transport: 'websocket' });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].drop(1006);
  await waitFor('retry', () => sockets.length === 2);
  sockets[1].drop(1006);
  assert.equal(states.at(-1).delay, 19);
  await waitFor('retry 2', () => sockets.length === 3);
  sockets[2].open();
  await waitFor('stable', () => client.attempt === 0);
  sockets[2].drop(1001);
  assert.equal(states.at(-1).delay, 9, 'attempts reset after stableAfter');
  client.close();
});

test('stops after 4000 and 1008 until connect() is called', async () => {
  for (const code of [4000, 1008]) {
    const { client, states, messages, sockets } = newClient();
    await waitFor('socket', () => sockets.length === 1);
    sockets[0].open();
    sockets[0].recv(msg('3'));
    await waitFor('message', () => messages.length === 1);
    sockets[0].drop(code, 'bye');
    assert.deepEqual(states.at(-1), { state: 'closed', code, reason: 'bye', attempt: 0, transport: 'websocket' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(sockets.length, 1, 'no reconnect after ' + code);
    client.setToken('fresh');
    client.connect();
    await waitFor('socket after connect()', () => sockets.length === 2);
    assert.equal(params(sockets[1]).since, '3');
    assert.equal(params(sockets[1]).token, 'fresh');
    client.close();
  }
});

test("transport 'sse': EventSource, no acks, the close event's code decides", async () => {
  const { client, states, messages, sockets } = newClient({ transport: 'sse', since: '2' });
  await waitFor('stream', () => sockets.length === 1);
  const es = sockets[0];
  assert.equal(es.kind, 'sse');
  assert.deepEqual(params(es), { userId: 'alice', since: '2' }, 'protocol version 1: no v, no epoch');
  assert.equal(new URL(es.url).protocol, 'http:');
  es.open();
  es.recv(msg('3'), '3');
  es.recv({ userId: 'alice', broadcast: true, data: 'all', createdAt: '2026-11-21T10:00:00Z' });
  await waitFor('two frames', () => messages.length === 2);
  assert.equal(client.lastId, '3');
  assert.deepEqual(states.map((s) => [s.state, s.transport]), [['connecting', 'sse'], ['open', 'sse']]);

  // 4001 (slow consumer): reconnect, with since; the client closes the EventSource itself so that
  // EventSource does not reconnect on its own.
  es.closeEvent(4001);
  assert.equal(es.closed, true);
  assert.equal(states.at(-1).state, 'reconnecting');
  assert.equal(states.at(-1).code, 4001);
  es.fail(); // the stream's end, after the close event: ignored
  await waitFor('second stream', () => sockets.length === 2);
  assert.equal(params(sockets[1]).since, '3');
  sockets[1].open();
  sockets[1].closeEvent(4000);
  assert.equal(client.state, 'closed');
  assert.equal(states.at(-1).code, 4000);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sockets.length, 2, 'no reconnect after 4000');
  client.close();
});

test('an event-stream error reconnects with backoff, not by EventSource itself', async () => {
  const { client, sockets } = newClient({ transport: 'sse' });
  await waitFor('stream', () => sockets.length === 1);
  sockets[0].open();
  sockets[0].recv(msg('8'), '8');
  await waitFor('message', () => client.lastId === '8');
  sockets[0].fail();
  assert.equal(sockets[0].closed, true);
  assert.equal(client.state, 'reconnecting');
  await waitFor('second stream', () => sockets.length === 2);
  assert.equal(params(sockets[1]).since, '8');
  client.close();
  assert.equal(sockets[1].closed, true);
});

test("auto: two WebSocket failures before any opened fall back to SSE, which then sticks", async () => {
  const { client, states, messages, sockets } = newClient({ minDelay: 1, maxDelay: 2 });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].drop(1006); // refused by a proxy: never opened
  await waitFor('retry', () => sockets.length === 2);
  assert.equal(sockets[1].kind, 'websocket', 'one failure is not enough');
  sockets[1].drop(1006);
  await waitFor('fallback', () => sockets.length === 3);
  assert.equal(sockets[2].kind, 'sse');
  sockets[2].open();
  sockets[2].recv(msg('1'), '1');
  await waitFor('message', () => messages.length === 1);
  assert.equal(states.at(-1).transport, 'sse');
  sockets[2].closeEvent(1001); // a server restart: the stream ends
  await waitFor('reconnect', () => sockets.length === 4);
  assert.equal(sockets[3].kind, 'sse', 'an event stream opened while no WebSocket ever did: stay on SSE');
  assert.equal(params(sockets[3]).since, '1');
  client.close();
});

test('auto: an SSE attempt that fails too sends the client back to WebSocket; a WebSocket that opened never falls back', async () => {
  const a = newClient({ minDelay: 1, maxDelay: 2 });
  await waitFor('socket', () => a.sockets.length === 1);
  a.sockets[0].drop(1006);
  await waitFor('2', () => a.sockets.length === 2);
  a.sockets[1].drop(1006);
  await waitFor('3', () => a.sockets.length === 3);
  assert.equal(a.sockets[2].kind, 'sse');
  a.sockets[2].fail(); // the server is down, not the WebSocket blocked
  await waitFor('4', () => a.sockets.length === 4);
  assert.equal(a.sockets[3].kind, 'websocket');
  a.client.close();

  const b = newClient({ minDelay: 1, maxDelay: 2 });
  await waitFor('socket', () => b.sockets.length === 1);
  b.sockets[0].open();
  b.sockets[0].drop(1001);
  for (let i = 1; i < 5; i++) {
    await waitFor('retry ' + i, () => b.sockets.length === i + 1);
    assert.equal(b.sockets[i].kind, 'websocket', 'attempt ' + i);
    b.sockets[i].drop(1006);
  }
  b.client.close();

  // Without EventSource (Node, old browsers) auto means WebSocket only.
  const c = newClient({ minDelay: 1, maxDelay: 2, EventSource: null });
  const saved = globalThis.EventSource;
  delete globalThis.EventSource;
  try {
    await waitFor('socket', () => c.sockets.length === 1);
    for (let i = 0; i < 3; i++) {
      await waitFor('retry ' + i, () => c.sockets.length === i + 1);
      assert.equal(c.sockets[i].kind, 'websocket');
      c.sockets[i].drop(1006);
    }
  } finally {
    if (saved) globalThis.EventSource = saved;
    c.client.close();
  }
});

test('a token function is called before every connect', async () => {
  let n = 0;
  const { client, sockets } = newClient({ token: async () => 'tok' + ++n });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].drop(1006);
  await waitFor('retry', () => sockets.length === 2);
  assert.equal(params(sockets[0]).token, 'tok1');
  assert.equal(params(sockets[1]).token, 'tok2');
  client.close();
});

test('app-level ping: a missing pong drops the connection and reconnects', async () => {
  const { client, states, sockets } = newClient({ pingInterval: 20, pongTimeout: 30 });
  await waitFor('socket', () => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  await waitFor('first ping', () => ws.sent.length === 1);
  assert.equal(ws.sent[0], '{"type":"ping"}');
  ws.recv({ type: 'pong' });
  await waitFor('second ping', () => ws.sent.length === 2);
  ws.recv({ type: 'pong' });
  assert.equal(client.state, 'open');
  // Now the server goes silent.
  await waitFor('dead connection', () => client.state === 'reconnecting', 1000);
  const s = states.at(-1);
  assert.equal(s.code, 1006);
  assert.match(s.reason, /pong/);
  assert.ok(ws.closedWith, 'the dead socket is closed');
  await waitFor('new socket', () => sockets.length === 2);
  client.close();
});

test('a handshake that never completes times out', async () => {
  const { client, states, sockets } = newClient({ connectTimeout: 30 });
  await waitFor('socket', () => sockets.length === 1);
  await waitFor('timeout', () => client.state === 'reconnecting', 1000);
  assert.equal(states.at(-1).reason, 'connect timeout');
  client.close();
});

test('close() stops for good and late events are ignored', async () => {
  const { client, states, messages, sockets } = newClient();
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].open();
  client.close();
  assert.equal(sockets[0].onclose, null, 'the socket is detached');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sockets.length, 1);
  assert.equal(messages.length, 0);
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'open', 'closed']);
  client.close();
  assert.equal(states.length, 3, 'a second close() emits nothing');
});

test('a throwing state listener does not break the client or the other listeners', async () => {
  const { client, messages, sockets } = newClient();
  const thrown = [];
  globalThis.reportError = (err) => thrown.push(err); // the browser's global error reporting
  try {
    client.on('state', () => {
      throw new Error('app bug');
    });
    await waitFor('socket', () => sockets.length === 1);
    sockets[0].open();
    sockets[0].recv(msg('1'));
    await waitFor('message', () => messages.length === 1);
    assert.equal(thrown.length, 2, 'connecting and open');
    assert.equal(thrown[0].message, 'app bug');
    assert.equal(client.state, 'open');
  } finally {
    client.close();
    delete globalThis.reportError;
  }
});

test('a token function that fails does not count as a WebSocket failure for the fallback', async () => {
  let n = 0;
  const { client, sockets, errors } = newClient({
    minDelay: 1, maxDelay: 2,
    token: async () => {
      if (++n <= 2) throw new Error('token service down');
      return 'tok';
    },
  });
  await waitFor('socket after two token failures', () => sockets.length === 1);
  assert.equal(sockets[0].kind, 'websocket', 'no socket was refused, so no reason to fall back');
  assert.equal(errors.length, 2);
  client.close();
});

test('a broadcast listener that throws is reported as an error with the frame', async () => {
  const { client, errors, sockets } = newClient({}, { onMessage: () => { throw new Error('no'); } });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].open();
  sockets[0].recv({ userId: 'alice', broadcast: true, data: 'all', createdAt: '2026-11-21T10:00:00Z' });
  await waitFor('error', () => errors.length === 1);
  assert.equal(errors[0].pushlaneMessage.broadcast, true);
  assert.deepEqual(sockets[0].acks(), []);
  assert.equal(client.lastId, null);
  client.close();
});
