// Browser test of pushlane.js against the real server binary in headless Chromium: protocol
// version 2 (acks, statuses, unacked messages after a reload, resync on a wrong epoch, a cursor
// kept in localStorage), Server-Sent Events (a plain EventSource with Last-Event-ID across a server
// restart, pushlane.js forced to SSE, the close event of /deleteClient) and the fallback to SSE
// behind a proxy that refuses WebSockets. Start it with ./run.sh (see harness.mjs).
//
// The page is a plain page of the server (/healthz), which imports /pushlane.js as a module, as an
// application would; every request of the browser goes through the test's TCP proxy.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ready, env, sleep, until, startServer, stopServer, startProxy, launchBrowser, publish, broadcast,
  getJSON, messageStatus, steps,
} from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SERVER_ENV = { PUSH_STORE_PATH: path.join(env.PUSHLANE_TMP || '/tmp', 'client-test', 'push.db') };

let server = null;
let proxy = null;
let browser = null;
let page = null;
let base = '';
const requests = []; // {url, headers} of every /getPushNews request the page made (WebSocket or not)
const sockets = []; // URLs of every WebSocket the page opened
const pageErrors = [];

/** newPage opens a fresh page on the server's origin (through the proxy). */
async function newPage() {
  if (page) await page.close();
  page = await browser.newPage();
  page.on('request', (r) => {
    if (r.url().includes('/getPushNews')) requests.push({ url: r.url(), headers: r.headers(), request: r });
  });
  page.on('websocket', (ws) => sockets.push(ws.url()));
  page.on('pageerror', (err) => pageErrors.push('page error: ' + err.message));
  await page.goto(base + '/healthz');
}

/**
 * makeClient creates a PushClient in the page under name, recording its events in
 * window.rec[name]; its message listener throws for data that has the field failOn.
 */
async function makeClient(name, opts, failOn = '') {
  await page.evaluate(async ({ name, opts, failOn }) => {
    const { PushClient } = await import('/pushlane.js');
    const rec = { states: [], messages: [], errors: [], resyncs: [], closes: [] };
    window.rec = window.rec || {};
    window.clients = window.clients || {};
    window.rec[name] = rec;
    if (opts.storage === 'localStorage') opts.storage = localStorage;
    const c = new PushClient('', opts);
    c.on('state', (s) => rec.states.push(s));
    c.on('message', (m) => {
      if (failOn && m.data && typeof m.data === 'object' && m.data[failOn]) throw new Error('handler failed on ' + m.id);
      rec.messages.push(m);
    });
    c.on('error', (e) => rec.errors.push(e.message));
    c.on('resync', (e) => rec.resyncs.push(e));
    window.clients[name] = c;
  }, { name, opts, failOn });
}

const rec = (name) => page.evaluate((n) => JSON.parse(JSON.stringify(window.rec[n])), name);
const ids = (r) => r.messages.map((m) => m.id ?? 'broadcast');
const closeClient = (name) => page.evaluate((n) => window.clients[n].close(), name);

async function waitMessages(name, n) {
  return until(name + ' has ' + n + ' messages', async () => {
    const r = await rec(name);
    return r.messages.length >= n ? r : null;
  });
}

async function waitState(name, state, transport) {
  return until(name + ' ' + state, async () => {
    const r = await rec(name);
    const s = r.states.at(-1);
    return s && s.state === state && (!transport || s.transport === transport) ? r : null;
  });
}

async function waitStatus(userId, id, want) {
  return until(`message ${id} of ${userId} ${want}`, async () => (await messageStatus(userId, id)) === want);
}

const step = steps(it);

describe('pushlane.js in Chromium against the server', { skip: ready ? false : 'run ./run.sh (it builds pushlane and sets PUSHLANE_BIN)' }, () => {
  before(async () => {
    server = await startServer(SERVER_ENV);
    proxy = await startProxy(env.PUSHLANE_ADDR);
    base = 'http://127.0.0.1:' + proxy.port;
    browser = await launchBrowser();
    await newPage();
  });

  after(async () => {
    if (browser) await browser.close();
    if (proxy) await proxy.close();
    if (server) await stopServer(server);
  });

  let epoch = '';
  const shutdown = { ms: 0, rawCloses: null, libCodes: null }; // what the clients saw of a shutdown

  step('version 2 over WebSocket: hello with the epoch, in order, each message acked by the page', async () => {
    const user = 'v2-acks';
    await makeClient('a', { userId: user });
    await waitState('a', 'open', 'websocket');
    assert.match(sockets.at(-1), /\/getPushNews\?userId=v2-acks&v=2$/);
    const m1 = await publish(user, { n: 1 });
    const m2 = await publish(user, { n: 2 });
    const r = await waitMessages('a', 2);
    assert.deepEqual(ids(r), [m1.id, m2.id]);
    await waitStatus(user, m1.id, 'acked');
    await waitStatus(user, m2.id, 'acked');
    const list = await getJSON('/messages/' + user);
    epoch = list.body.epoch;
    assert.ok(list.body.messages.every((m) => m.status === 'acked' && m.ackedAt && m.sentAt), JSON.stringify(list.body));
    assert.equal(await page.evaluate(() => window.clients.a.epoch), epoch, 'the client keeps the epoch of the hello');
    assert.equal(await page.evaluate(() => window.clients.a.lastId), m2.id);
    await closeClient('a');
  });

  step('a message whose handler throws stays unacknowledged and comes back after a reload', async () => {
    const user = 'v2-reload';
    await makeClient('b', { userId: user }, 'poison');
    await waitState('b', 'open', 'websocket');
    const ok1 = await publish(user, { n: 1 });
    const bad = await publish(user, { poison: true });
    const ok2 = await publish(user, { n: 3 });
    const r = await waitMessages('b', 2);
    assert.deepEqual(ids(r), [ok1.id, ok2.id]);
    assert.deepEqual(r.errors, ['handler failed on ' + bad.id]);
    await waitStatus(user, ok2.id, 'acked');
    await waitStatus(user, bad.id, 'sent'); // written to the page, never acknowledged
    assert.equal(await messageStatus(user, ok1.id), 'acked');

    await page.reload();
    await makeClient('b2', { userId: user });
    await waitState('b2', 'open', 'websocket');
    const again = await waitMessages('b2', 1);
    assert.deepEqual(ids(again), [bad.id], 'only the unacknowledged message comes back');
    await waitStatus(user, bad.id, 'acked');
    await closeClient('b2');
  });

  step('localStorage keeps the cursor and the epoch: a reload resumes after them', async () => {
    const user = 'v2-storage';
    await page.evaluate(() => localStorage.clear());
    await makeClient('c', { userId: user, storage: 'localStorage' });
    await waitState('c', 'open', 'websocket');
    const m1 = await publish(user, { n: 1 });
    await waitMessages('c', 1);
    await waitStatus(user, m1.id, 'acked');
    assert.deepEqual(JSON.parse(await page.evaluate((u) => localStorage.getItem('pushlane:' + u), user)), { since: m1.id, epoch });

    await page.reload();
    await makeClient('c2', { userId: user, storage: 'localStorage' });
    await waitState('c2', 'open', 'websocket');
    assert.ok(sockets.at(-1).endsWith('&epoch=' + epoch + '&since=' + m1.id), sockets.at(-1));
    const m2 = await publish(user, { n: 2 });
    const r = await waitMessages('c2', 1);
    assert.deepEqual(ids(r), [m2.id]);
    assert.deepEqual(r.resyncs, []);
    await closeClient('c2');
  });

  step('a wrong epoch: recovered=false, the resync event, then every stored message', async () => {
    const user = 'v2-acks'; // two messages stored by the first step
    await makeClient('d', { userId: user, since: '1', epoch: 'not-this-store' });
    await waitState('d', 'open', 'websocket');
    const r = await waitMessages('d', 2);
    assert.deepEqual(r.resyncs, [{ epoch, previousEpoch: 'not-this-store', previousSince: '1' }]);
    const stored = (await getJSON('/messages/' + user)).body.messages.map((m) => m.id);
    assert.deepEqual(ids(r), stored, 'the server replays everything stored');
    assert.equal(await page.evaluate(() => window.clients.d.epoch), epoch);
    await closeClient('d');
  });

  step("transport 'sse': an EventSource, messages and broadcasts, statuses stay 'sent'", async () => {
    const user = 'sse-forced';
    const before = sockets.length;
    await makeClient('e', { userId: user, transport: 'sse' });
    await waitState('e', 'open', 'sse');
    const req = requests.at(-1);
    assert.match(req.url, /\/getPushNews\?userId=sse-forced$/);
    assert.match(req.headers.accept, /text\/event-stream/);
    const m1 = await publish(user, { n: 1 });
    await broadcast({ all: true });
    const m2 = await publish(user, { n: 2 });
    const r = await waitMessages('e', 3);
    assert.deepEqual(ids(r), [m1.id, 'broadcast', m2.id]);
    assert.equal(sockets.length, before, 'no WebSocket was opened');
    const clients = await getJSON('/clients/' + user);
    assert.equal(clients.body.connections.length, 1, 'an event stream counts as a connection');
    await waitStatus(user, m2.id, 'sent'); // version 1: written is all the server learns
    await closeClient('e');
  });

  step('a plain EventSource and pushlane.js over SSE resume across a server restart (Last-Event-ID, since)', async () => {
    // A plain EventSource reconnects by itself and sends Last-Event-ID.
    await page.evaluate(() => {
      window.raw = { events: [], closes: [] };
      const es = new EventSource('/getPushNews?userId=sse-raw');
      es.onmessage = (ev) => window.raw.events.push({ data: JSON.parse(ev.data), lastEventId: ev.lastEventId });
      es.addEventListener('close', (ev) => window.raw.closes.push(JSON.parse(ev.data)));
      window.rawES = es;
    });
    await makeClient('f', { userId: 'sse-lib', transport: 'sse', minDelay: 200, maxDelay: 1000 });
    await waitState('f', 'open', 'sse');
    await until('raw stream open', () => page.evaluate(() => window.rawES.readyState === 1));
    const r1 = await publish('sse-raw', { n: 1 });
    const r2 = await publish('sse-raw', { n: 2 });
    const l1 = await publish('sse-lib', { n: 1 });
    await broadcast({ note: 'before restart' });
    await until('raw events', () => page.evaluate(() => window.raw.events.length === 3));
    await waitMessages('f', 2);
    const raw = await page.evaluate(() => window.raw.events);
    assert.deepEqual(raw.map((e) => e.lastEventId), [r1.id, r2.id, r2.id], 'a broadcast has no id: lastEventId stays');
    assert.equal(raw[2].data.broadcast, true);

    proxy.accept(false);
    const t0 = Date.now();
    const stopped = await stopServer(server);
    shutdown.ms = Date.now() - t0;
    assert.equal(stopped.code, 0);
    await waitState('f', 'reconnecting', 'sse');
    shutdown.rawCloses = await page.evaluate(() => window.raw.closes);
    shutdown.libCodes = (await rec('f')).states.filter((s) => s.state === 'reconnecting').map((s) => s.code);
    server = await startServer(SERVER_ENV);
    // r3 goes to another connection of sse-raw first, so it leaves the unread queue: only a
    // resume by Last-Event-ID (not the unread queue of a connection without it) brings it back.
    const other = new AbortController();
    const stream = await fetch('http://' + env.PUSHLANE_ADDR + '/getPushNews?userId=sse-raw',
      { headers: { Accept: 'text/event-stream' }, signal: other.signal });
    assert.equal(stream.status, 200);
    const r3 = await publish('sse-raw', { n: 3 });
    const reader = stream.body.getReader();
    let text = '';
    while (!text.includes('id: ' + r3.id + '\n')) text += new TextDecoder().decode((await reader.read()).value);
    other.abort();
    await waitStatus('sse-raw', r3.id, 'sent');
    const l2 = await publish('sse-lib', { n: 2 });
    assert.equal(r3.online, true, 'the other stream was connected');
    const before = requests.length;
    proxy.accept(true);

    await until('raw event 3', () => page.evaluate(() => window.raw.events.length === 4), 30000);
    const after = await page.evaluate(() => window.raw.events);
    assert.deepEqual(after.map((e) => e.data.id ?? 'broadcast'), [r1.id, r2.id, 'broadcast', r3.id], 'nothing replayed twice, nothing lost');
    const rawRetry = requests.slice(before).find((q) => q.url.includes('sse-raw'));
    assert.equal((await rawRetry.request.allHeaders())['last-event-id'], r2.id, 'EventSource sent Last-Event-ID');

    const lib = await waitMessages('f', 3);
    assert.deepEqual(ids(lib), [l1.id, 'broadcast', l2.id]);
    const libRetry = requests.slice(before).filter((q) => q.url.includes('sse-lib')).at(-1);
    assert.ok(libRetry.url.endsWith('&since=' + l1.id), 'pushlane.js resumes with since: ' + libRetry.url);
    await waitState('f', 'open', 'sse');
    await page.evaluate(() => window.rawES.close());
  });

  // API.md: before a stream ends at shutdown the server sends "event: close" with {"code":1001}.
  it('a shutdown ends event streams with the close event 1001', () => {
    assert.deepEqual(shutdown.rawCloses, [{ code: 1001 }], 'close events seen by a plain EventSource; shutdown took ' + shutdown.ms + ' ms');
    assert.equal(shutdown.libCodes[0], 1001, 'the code pushlane.js saw first');
  });

  step('DELETE /deleteClient: the close event (4000) stops pushlane.js over SSE for good', async () => {
    const user = 'sse-lib'; // connected by the previous step
    const res = await fetch('http://' + env.PUSHLANE_ADDR + '/deleteClient/' + user, { method: 'DELETE' });
    assert.equal(res.status, 200);
    const r = await waitState('f', 'closed');
    assert.equal(r.states.at(-1).code, 4000);
    const before = requests.length;
    await sleep(1500); // long enough for a retry (minDelay 200): none may come
    assert.equal(requests.slice(before).filter((q) => q.url.includes(user)).length, 0, 'no reconnect after 4000');
    const left = await getJSON('/clients/' + user);
    assert.deepEqual([left.status, left.body.connections], [200, []], 'no connection left (its messages stay stored)');
  });

  step('behind a proxy that refuses WebSockets, auto falls back to Server-Sent Events', async () => {
    proxy.blockWebSockets(true);
    try {
      const user = 'fallback';
      await makeClient('g', { userId: user, minDelay: 50, maxDelay: 200 });
      const r = await waitState('g', 'open', 'sse');
      assert.deepEqual(r.states.filter((s) => s.state === 'connecting').map((s) => s.transport),
        ['websocket', 'websocket', 'sse'], 'two refused WebSockets, then an event stream');
      const m = await publish(user, { n: 1 });
      assert.equal(m.online, true);
      const got = await waitMessages('g', 1);
      assert.deepEqual(ids(got), [m.id]);
      await closeClient('g');
    } finally {
      proxy.blockWebSockets(false);
    }
  });

  step('the examples of docs/browser.md and the README run as written', async () => {
    // Each example is a page of the server's origin (served by the proxy), pointed at the server,
    // in a fresh browser context: its first request opens a new connection, which the proxy answers.
    const user = 'alice'; // the examples' user
    const docs = fs.readFileSync(path.join(ROOT, 'docs', 'browser.md'), 'utf8');
    const example = docs.split('## Ten lines')[1].match(/```html\n([\s\S]*?)```/)[1];
    assert.match(example, /push\.example\.com/);
    const stub = '<script>window.shown = []; window.showNotification = async (d) => { window.shown.push(d); };</script>\n';
    proxy.serve('/docs-example.html', stub + example.replaceAll('https://push.example.com', base));
    const docsCtx = await browser.newContext();
    try {
      const p = await docsCtx.newPage();
      p.on('pageerror', (err) => pageErrors.push('docs example: ' + err.message));
      await p.goto(base + '/docs-example.html');
      await until('the docs example connected', async () => (await getJSON('/clients/' + user)).status === 200);
      const m = await publish(user, { title: 'from the docs example' });
      await until('shown', () => p.evaluate(() => window.shown.length === 1));
      assert.deepEqual(await p.evaluate(() => window.shown), [{ title: 'from the docs example' }]);
      await waitStatus(user, m.id, 'acked');
      assert.equal(JSON.parse(await p.evaluate(() => localStorage.getItem('pushlane:alice'))).since, m.id);
    } finally {
      await docsCtx.close();
    }

    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const snippet = readme.split('Ten lines for your own page')[1].match(/```html\n([\s\S]*?)```/)[1];
    proxy.serve('/readme-example.html', snippet.replaceAll('http://localhost:8080', base));
    const readmeCtx = await browser.newContext();
    try {
      const p = await readmeCtx.newPage();
      const logged = [];
      p.on('console', (msg) => logged.push(msg.text()));
      p.on('pageerror', (err) => pageErrors.push('README example: ' + err.message));
      await p.goto(base + '/readme-example.html');
      await until('README example open', () => logged.includes('open'));
      const r = await publish(user, { title: 'from the README' });
      await until('README example logged the message', () => logged.some((l) => l.startsWith(r.id + ' ')));
      await waitStatus(user, r.id, 'acked');
    } finally {
      await readmeCtx.close();
    }
  });

  step('logged no script error', () => {
    assert.deepEqual(pageErrors, []);
  });
});
