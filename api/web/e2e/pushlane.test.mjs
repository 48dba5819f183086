// Unit tests of pushlane.js in Node with a scripted WebSocket: URLs, states, backoff, resume with
// since, de-duplication, app-level ping, stop codes. No browser or server needed:
//   node --test pushlane.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const PushClient = require('../pushlane.js');

/** fakeSocket returns a WebSocket class whose instances the test drives by hand. */
function fakeSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
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
  }
  return { FakeWebSocket, sockets };
}

async function waitFor(what, pred, ms = 2000) {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function newClient(opts) {
  const fake = fakeSocket();
  const states = [];
  const messages = [];
  const client = new PushClient('http://push.test:8080/', Object.assign({
    userId: 'alice', WebSocket: fake.FakeWebSocket, minDelay: 20, maxDelay: 80, pingInterval: 0,
  }, opts));
  client.on('state', (s) => states.push(s));
  client.on('message', (m) => messages.push(m));
  return { client, states, messages, sockets: fake.sockets };
}

const msg = (id, data) => ({ id, userId: 'alice', data: data ?? { n: id }, createdAt: '2026-11-21T10:00:00Z' });

test('builds the WebSocket URL from the base, with token and since', async () => {
  const { client, sockets } = newClient({ token: 't.o.k', since: '41' });
  await waitFor('socket', () => sockets.length === 1);
  const u = new URL(sockets[0].url);
  assert.equal(u.protocol, 'ws:');
  assert.equal(u.host, 'push.test:8080');
  assert.equal(u.pathname, '/getPushNews');
  assert.equal(u.searchParams.get('userId'), 'alice');
  assert.equal(u.searchParams.get('token'), 't.o.k');
  assert.equal(u.searchParams.get('since'), '41');
  client.close();

  const tls = new PushClient('https://example.com/push', { userId: 'a@b', autoConnect: false });
  assert.equal(tls.socketURL(''), 'wss://example.com/push/getPushNews?userId=a%40b');
  assert.throws(() => new PushClient('', { userId: 'x', since: '007' }), /since/);
  assert.throws(() => new PushClient('', {}), /userId/);
});

test('emits connecting then open, and messages in order', async () => {
  const { client, states, messages, sockets } = newClient();
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].open();
  sockets[0].recv(msg('1'));
  sockets[0].recv(msg('2', 'text'));
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'open']);
  assert.deepEqual(messages.map((m) => m.id), ['1', '2']);
  assert.equal(messages[1].data, 'text');
  assert.equal(client.lastId, '2');
  client.close();
  assert.equal(client.state, 'closed');
  assert.deepEqual(sockets[0].closedWith, { code: 1000, reason: 'closed by client' });
});

test('de-duplicates by id, compares ids as numbers, and broadcasts do not move since', async () => {
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
  assert.deepEqual(messages.map((m) => m.id ?? 'broadcast'), ['9', '10', 'broadcast', '9223372036854775807']);
  assert.equal(client.lastId, '9223372036854775807', 'ids compare as BigInt, not as strings or doubles');
  client.close();
});

test('reconnects with backoff and resumes with since = last id', async (t) => {
  t.mock.method(Math, 'random', () => 0.999);
  const { client, states, messages, sockets } = newClient({ minDelay: 20, maxDelay: 60 });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].open();
  sockets[0].recv(msg('5'));
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
    assert.equal(new URL(sockets[i].url).searchParams.get('since'), '5');
    sockets[i].drop(1006);
    delays.push(states.at(-1).delay);
  }
  assert.deepEqual(delays, [19, 39, 59, 59], 'full jitter under min(maxDelay, minDelay * 2^n)');

  await waitFor('retry 4', () => sockets.length === 5);
  sockets[4].open();
  sockets[4].recv(msg('5')); // at least once: a replayed id is dropped
  sockets[4].recv(msg('6'));
  assert.deepEqual(messages.map((m) => m.id), ['5', '6']);
  assert.equal(states.at(-1).state, 'open');
  client.close();
});

test('backoff starts again from minDelay once a connection stayed open', async (t) => {
  t.mock.method(Math, 'random', () => 0.999);
  const { client, states, sockets } = newClient({ minDelay: 10, maxDelay: 1000, stableAfter: 30 });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].drop(1006);
  await waitFor('retry', () => sockets.length === 2);
  sockets[1].drop(1006);
  assert.equal(states.at(-1).delay, 19);
  await waitFor('retry 2', () => sockets.length === 3);
  sockets[2].open();
  await new Promise((r) => setTimeout(r, 60));
  sockets[2].drop(1001);
  assert.equal(states.at(-1).delay, 9, 'attempts reset after stableAfter');
  client.close();
});

test('stops after 4000 and 1008 until connect() is called', async () => {
  for (const code of [4000, 1008]) {
    const { client, states, sockets } = newClient();
    await waitFor('socket', () => sockets.length === 1);
    sockets[0].open();
    sockets[0].recv(msg('3'));
    sockets[0].drop(code, 'bye');
    assert.deepEqual(states.at(-1), { state: 'closed', code, reason: 'bye', attempt: 0 });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(sockets.length, 1, 'no reconnect after ' + code);
    client.setToken('fresh');
    client.connect();
    await waitFor('socket after connect()', () => sockets.length === 2);
    const u = new URL(sockets[1].url);
    assert.equal(u.searchParams.get('since'), '3');
    assert.equal(u.searchParams.get('token'), 'fresh');
    client.close();
  }
});

test('a token function is called before every connect', async () => {
  let n = 0;
  const { client, sockets } = newClient({ token: async () => 'tok' + ++n });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].drop(1006);
  await waitFor('retry', () => sockets.length === 2);
  assert.equal(new URL(sockets[0].url).searchParams.get('token'), 'tok1');
  assert.equal(new URL(sockets[1].url).searchParams.get('token'), 'tok2');
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
  const { client, states, sockets } = newClient();
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].open();
  client.close();
  sockets[0].drop(1006); // the browser's close event arrives after close()
  sockets[0].recv(msg('1'));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sockets.length, 1);
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'open', 'closed']);
});

test('a throwing handler does not break delivery', async () => {
  const { client, messages, sockets } = newClient();
  const thrown = [];
  globalThis.reportError = (err) => thrown.push(err); // the browser's global error reporting
  client.on('message', () => {
    throw new Error('app bug');
  });
  await waitFor('socket', () => sockets.length === 1);
  sockets[0].open();
  sockets[0].recv(msg('1'));
  sockets[0].recv(msg('2'));
  assert.equal(thrown.length, 2);
  assert.equal(thrown[0].message, 'app bug');
  delete globalThis.reportError;
  assert.deepEqual(messages.map((m) => m.id), ['1', '2']);
  client.close();
});
