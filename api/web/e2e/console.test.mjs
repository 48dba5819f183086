// Browser test of the pushlane console (GET /) against the real server binary, in headless
// Chromium driven by playwright-core. Start it with ./run.sh, which builds the binary, writes a
// temporary config and sets the variables harness.mjs lists, and:
//   SCREENSHOT_DIR            where screenshots go
//   DOCS_SCREENSHOT           optional: also save the console screenshot there (docs/console.png)
//
// The page is loaded through a small TCP proxy owned by the test, so the test can cut the
// browser off the server (new connections refused) while it publishes: that makes "a message
// published while the console was disconnected" deterministic instead of a race.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ready, env, sleep, startServer, stopServer, startProxy, launchBrowser, publish, messageStatus, steps,
} from './harness.mjs';

const SHOTS = env.SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'pushlane-shots-'));
const USER = 'alice'; // every run starts with a new store
const SERVER_ENV = { PUSH_STORE_PATH: path.join(env.PUSHLANE_TMP || '/tmp', 'console-test', 'push.db') };

let server = null; // { child, output }
let proxy = null;
let browser = null;
let page = null;
let base = ''; // the console's origin, through the proxy
const sockets = []; // URLs of every WebSocket the page opened
const pageErrors = [];

// ---------- helpers ----------


const item = (id) => page.locator(`#messages li[data-id="${id}"]`);
const statusRow = (id) => page.locator(`#status-table tr[data-id="${id}"]`);

async function expectMessage(id, text) {
  await item(id).waitFor({ timeout: 15000 });
  assert.equal(await item(id).count(), 1, 'message ' + id + ' is shown once');
  assert.equal(await item(id).locator('.msg-id').textContent(), '#' + id);
  if (text) assert.ok((await item(id).textContent()).includes(text), 'message ' + id + ' shows ' + text);
}

async function stateIs(state, timeout = 15000) {
  await page.locator(`#sub-state[data-state="${state}"]`).waitFor({ timeout });
}

async function screenshot(name) {
  const file = path.join(SHOTS, name + '.png');
  await page.screenshot({ path: file });
  const size = fs.statSync(file).size;
  assert.ok(size > 10 * 1024, `${file} is ${size} bytes: blank?`);
  const png = fs.readFileSync(file);
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  const visibleText = await page.evaluate(() => document.body.innerText.trim().length);
  assert.ok(visibleText > 100, 'the page shows text');
  return file;
}

async function tab(name) {
  await page.click(`.tabs a[data-tab="${name}"]`);
  await page.locator(`#tab-${name}`).waitFor({ state: 'visible' });
}

// ---------- the test ----------

const step = steps(it); // the steps share one page and one server (harness.mjs)

describe('pushlane console in Chromium', { skip: ready ? false : 'run ./run.sh (it builds pushlane and sets PUSHLANE_BIN)' }, () => {
  before(async () => {
    server = await startServer(SERVER_ENV); // demo.enabled is false, as by default
    proxy = await startProxy(env.PUSHLANE_ADDR);
    base = 'http://127.0.0.1:' + proxy.port;
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    page = await context.newPage();
    page.on('websocket', (ws) => sockets.push(ws.url()));
    page.on('pageerror', (err) => pageErrors.push('page error: ' + err.message));
    page.on('console', (m) => {
      // Refused connections during the restart are expected; script errors and CSP refusals are not.
      if (m.type() === 'error' && /Content Security Policy|Refused to|Uncaught/i.test(m.text())) pageErrors.push(m.text());
    });
  });

  after(async () => {
    if (browser) await browser.close();
    if (proxy) await proxy.close();
    if (server && server.child.exitCode === null) await stopServer(server);
  });

  let lastId = null;

  step('serves the console with its security headers', async () => {
    const res = await page.goto(base + '/');
    assert.equal(res.status(), 200, 'GET / answered ' + res.status() + ': is web.Register(r) in api/router.go?');
    assert.match(res.headers()['content-type'], /^text\/html; charset=utf-8/);
    assert.match(res.headers()['content-security-policy'], /script-src 'self'/);
    assert.equal(res.headers()['x-content-type-options'], 'nosniff');
    assert.equal(await page.title(), 'pushlane console');
    await page.locator('#health[data-state="ok"]').waitFor();
    assert.equal(await page.evaluate(async () => typeof (await import('/pushlane.js')).PushClient), 'function', 'pushlane.js is a module');
  });

  step('shows the demo tabs as disabled while demo.enabled is false', async () => {
    for (const name of ['echo', 'chat', 'tail']) {
      await page.locator(`.tabs a[data-tab="${name}"][aria-disabled="true"]`).waitFor();
    }
    // A disabled tab still opens (by its link), to say how to turn the route on.
    await page.evaluate(() => { location.hash = '#echo'; });
    await page.locator('#tab-echo').waitFor({ state: 'visible' });
    assert.match(await page.textContent('#demo-off-echo'), /demo\.enabled: true/);
    assert.ok(await page.locator('#demo-off-echo').isVisible());
    assert.ok(await page.locator('#echo-connect').isDisabled(), 'no Connect while the route is off');
    await screenshot('console-demos-off');
    await tab('subscribe');
  });

  step('refuses the user ids "." and ".." before connecting, as the server does', async () => {
    for (const bad of ['.', '..']) {
      await page.fill('#sub-user', bad);
      await page.click('#sub-connect');
      assert.match(await page.textContent('#sub-error'), /not "\." or "\.\."/);
      assert.equal(await page.getAttribute('#sub-user', 'aria-invalid'), 'true');
    }
    assert.equal(sockets.length, 0, 'nothing was opened');
    await page.fill('#sub-user', '');
  });

  step('subscribes and shows a message published with curl', async () => {
    await page.fill('#sub-user', USER);
    await page.click('#sub-connect');
    await stateIs('open');
    assert.match(sockets.at(-1), new RegExp('/getPushNews\\?userId=' + USER + '&v=2$'));
    const r = await publish(USER, { title: 'Order #1042 shipped', carrier: 'DHL', eta: '2026-11-23', items: 3 });
    assert.equal(r.online, true);
    await expectMessage(r.id, 'Order #1042 shipped');
    assert.equal(await page.textContent('#msg-count'), '1');
    lastId = r.id;
  });

  step('shows the delivery status of the user\'s messages: acked once the page processed them', async () => {
    const r = await publish(USER, { title: 'Status check' });
    await expectMessage(r.id, 'Status check');
    const row = statusRow(r.id);
    await page.locator(`#status-table tr[data-id="${r.id}"][data-status="acked"]`).waitFor();
    assert.equal(await messageStatus(USER, r.id), 'acked', 'the server says the same');
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[0], '#' + r.id);
    assert.equal(cells[1], 'acked');
    for (const i of [2, 3, 4]) assert.match(cells[i], /^\d\d:\d\d:\d\d\.\d{3}$/, 'created, sent and acked times: ' + cells.join(' | '));
    assert.match(cells[5], /Status check/);
    assert.match(await page.textContent('#status-epoch'), /^epoch [A-Za-z0-9_-]+$/);
    const first = await page.locator('#status-table tbody tr').first().getAttribute('data-id');
    assert.equal(first, r.id, 'newest first');
    await page.locator('#status-card').scrollIntoViewIfNeeded();
    await screenshot('console-status');
    await page.evaluate(() => window.scrollTo(0, 0));
    lastId = r.id;
  });

  step('publishes from the Publish tab, to a user and to everyone', async () => {
    await tab('publish');
    await page.fill('#pub-users', USER);
    await page.fill('#pub-data', '{"title": "Hello from the console",');
    await page.locator('#pub-data-status.invalid').waitFor();
    assert.match(await page.textContent('#pub-data-status'), /not valid JSON/);
    await page.click('#pub-send');
    assert.match(await page.textContent('#pub-result .error'), /Fix the data field/);

    await page.fill('#pub-data', '{"title": "Hello from the console", "priority": "high", "tags": ["demo", "pushlane"]}');
    await page.locator('#pub-data-status.valid').waitFor();
    assert.match(await page.textContent('#pub-curl'), /curl -X POST '.*\/pushNews'/);
    await page.click('#pub-send');
    await page.locator('#pub-result .status.ok').waitFor();
    const body = JSON.parse(await page.textContent('#pub-result .json'));
    assert.equal(body.results[0].userId, USER);
    assert.equal(body.results[0].online, true);
    const id = body.results[0].id;
    assert.ok(BigInt(id) > BigInt(lastId));
    lastId = id;

    await page.check('input[name="target"][value="broadcast"]');
    assert.ok(await page.locator('#pub-users-row').isHidden());
    await page.fill('#pub-data', '{"notice": "Maintenance tonight at 22:00 UTC"}');
    await page.click('#pub-send');
    await page.locator('#pub-result .json', { hasText: '"connections"' }).waitFor();
    assert.ok(await page.locator('#pub-result .status.ok').isVisible());

    await tab('subscribe');
    await expectMessage(id, 'Hello from the console');
    const b = page.locator('#messages li[data-broadcast="true"]');
    await b.waitFor();
    assert.ok((await b.textContent()).includes('Maintenance tonight'));
    assert.equal(await b.locator('.tag').textContent(), 'broadcast');
    assert.equal(await page.textContent('#msg-last'), 'last id ' + lastId, 'a broadcast does not move since');
    // Newest first.
    const order = await page.locator('#messages li').evaluateAll((els) => els.map((e) => e.dataset.id || 'b'));
    assert.deepEqual(order.slice(0, 2), ['b', id]);
  });

  step('takes screenshots of the console', async () => {
    await page.locator('#messages li').first().waitFor();
    await sleep(1300); // let the arrival highlight fade
    const file = await screenshot('console-subscribe');
    if (env.DOCS_SCREENSHOT) fs.copyFileSync(file, env.DOCS_SCREENSHOT);
    await tab('publish');
    await screenshot('console-publish');
    await tab('subscribe');
  });

  step('renders untrusted message data as text', async () => {
    const r = await publish(USER, { title: '<img src=x onerror=window.__xss=1>', html: '<b>bold?</b><script>window.__xss=2</script>' });
    await expectMessage(r.id, '<img src=x onerror=window.__xss=1>');
    assert.equal(await page.locator('#messages img, #messages b, #messages script').count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    lastId = r.id;
  });

  step('lists clients and removes one (close 4000, no reconnect, resume with since)', async () => {
    await tab('clients');
    const row = page.locator(`#clients-table tr[data-user="${USER}"]`);
    await row.waitFor();
    assert.equal(await row.locator('td.num').textContent(), '1');
    assert.ok(Number(await page.textContent('#clients-total')) >= 1);
    await row.locator('button[data-action="details"]').click();
    await page.locator('#client-detail table').waitFor();
    await screenshot('console-clients');

    const del = row.locator('button[data-action="delete"]');
    await del.click();
    assert.equal(await del.textContent(), 'Confirm delete');
    await del.click();
    await page.locator('#client-detail h2', { hasText: 'Removed ' + USER }).waitFor();
    await tab('subscribe');
    await stateIs('closed');
    assert.match(await page.textContent('#sub-state'), /^closed 4000/);
    assert.ok(await page.locator('#sub-error').isVisible());
    const before = sockets.length;
    await sleep(1500);
    assert.equal(sockets.length, before, 'no reconnect after 4000');
    assert.equal(await page.getAttribute('#sub-state', 'data-state'), 'closed');

    const missed = await publish(USER, { title: 'Sent while you were away', n: 1 });
    assert.equal(missed.online, false);
    await page.click('#status-refresh');
    await page.locator(`#status-table tr[data-id="${missed.id}"][data-status="pending"]`).waitFor();
    assert.equal(await statusRow(missed.id).locator('td').nth(3).textContent(), '–', 'no sentAt yet');
    await page.click('#sub-connect');
    await stateIs('open');
    assert.ok(sockets.at(-1).endsWith('&since=' + lastId), 'resumes with since: ' + sockets.at(-1));
    await expectMessage(missed.id, 'Sent while you were away');
    await page.locator(`#status-table tr[data-id="${missed.id}"][data-status="acked"]`).waitFor();
    lastId = missed.id;
  });

  step('survives a server restart: reconnecting, then open, nothing lost or doubled', async () => {
    proxy.accept(false); // from now until the end of the restart the browser cannot reach pushlane
    const stopped = await stopServer(server);
    assert.equal(stopped.code, 0, 'pushlane exits 0 on SIGTERM');
    await stateIs('reconnecting');
    assert.match(await page.textContent('#sub-state'), /^reconnecting in \d+\.\ds$/);
    assert.match(await page.textContent('#sub-log'), /closed 1001/);
    await page.locator('#health[data-state="down"]').waitFor({ timeout: 15000 }).catch(() => {});
    await screenshot('console-reconnecting');

    // The server comes back with the demonstration routes on: the console notices (below).
    server = await startServer(Object.assign({ PUSH_DEMO_ENABLED: 'true' }, SERVER_ENV));
    const whileDown = await publish(USER, { title: 'Published while the console was cut off' });
    assert.equal(whileDown.online, false, 'the console is not connected yet');
    const socketsBefore = sockets.length;
    proxy.accept(true);
    await stateIs('open', 45000);
    const resumed = sockets.slice(socketsBefore).at(-1);
    assert.ok(resumed.endsWith('&since=' + lastId), 'reconnects with since = last id: ' + resumed);
    await expectMessage(whileDown.id, 'Published while the console was cut off');
    await page.locator('#health[data-state="ok"]').waitFor({ timeout: 5000 });

    const after = await publish(USER, { title: 'Published after the restart' });
    assert.equal(after.online, true);
    await expectMessage(after.id, 'Published after the restart');

    const ids = await page.locator('#messages li[data-id]').evaluateAll((els) => els.map((e) => e.dataset.id));
    assert.equal(new Set(ids).size, ids.length, 'no duplicate: ' + ids.join(','));
    assert.equal(ids[0], after.id);
    const sorted = [...ids].sort((a, b) => (BigInt(a) < BigInt(b) ? 1 : -1));
    assert.deepEqual(ids, sorted, 'newest first, in id order');
    const shown = await page.locator('#messages li').count();
    assert.equal(await page.textContent('#msg-count'), String(shown));
    await screenshot('console-after-restart');
  });

  step('enables the demo tabs once the server serves them', async () => {
    for (const name of ['echo', 'chat', 'tail']) {
      await page.locator(`.tabs a[data-tab="${name}"]:not([aria-disabled])`).waitFor();
      assert.ok(await page.locator('#demo-off-' + name).isHidden());
    }
    assert.ok(await page.locator('#echo-connect').isEnabled());
  });

  step('shows clearly when a demo endpoint is missing or refuses', async () => {
    await tab('tail');
    await page.fill('#tail-file', 'no-such-file.log');
    await page.click('#tail-connect');
    await page.locator('#tail-error:not([hidden])').waitFor({ timeout: 10000 });
    assert.match(await page.textContent('#tail-error'), /Could not open \/tail\?file=no-such-file\.log: \S/);
    assert.equal(await page.getAttribute('#tail-state', 'data-state'), 'closed');
    await screenshot('console-tail-error');
  });

  step('echo round trip through the real /echo', async () => {
    await tab('echo');
    await page.click('#echo-connect');
    await page.locator('#echo-state[data-state="open"]').waitFor();
    await page.fill('#echo-input', 'ping <b>1</b>');
    await page.press('#echo-input', 'Enter');
    await page.locator('#echo-log li.in', { hasText: 'ping <b>1</b>' }).waitFor();
    await page.click('#echo-disconnect');
    await page.locator('#echo-state[data-state="closed"]').waitFor();
  });

  step('Chat and Tail tabs render what their sockets send (mocked sockets)', async () => {
    // The UI is tested against scripted sockets, whatever the server's /chat and /tail do.
    await page.routeWebSocket(/\/chat$/, (ws) => {
      ws.send(JSON.stringify({ username: 'bob', text: 'hi <i>there</i>' }));
      ws.onMessage((m) => ws.send(String(m))); // the server sends every message to every client
    });
    await page.routeWebSocket(/\/tail\?file=app\.log$/, (ws) => {
      ws.send('first line');
      ws.send('second <line>\n');
    });
    await tab('chat');
    await page.fill('#chat-name', 'alice');
    await page.click('#chat-connect');
    await page.locator('#chat-state[data-state="open"]').waitFor();
    await page.locator('#chat-log li', { hasText: 'hi <i>there</i>' }).waitFor();
    await page.fill('#chat-input', 'hello bob');
    await page.press('#chat-input', 'Enter');
    const mine = page.locator('#chat-log li.mine', { hasText: 'hello bob' });
    await mine.waitFor();
    assert.equal(await mine.locator('.who').textContent(), 'alice');
    assert.equal(await page.locator('#chat-log i').count(), 0);
    await screenshot('console-chat');
    await page.click('#chat-disconnect');
    await page.locator('#chat-state[data-state="closed"]').waitFor();

    await tab('tail');
    await page.fill('#tail-file', 'app.log');
    await page.click('#tail-connect');
    await page.locator('#tail-out', { hasText: 'second <line>' }).waitFor();
    assert.equal(await page.textContent('#tail-out'), 'first line\nsecond <line>\n');
    await page.click('#tail-disconnect');
    await page.unrouteAll();
  });

  step('pushlane.js keeps a quiet connection alive with app-level pings', async () => {
    // Same origin (url ''), pings every 150 ms, dead after 400 ms without a pong: the real
    // server's {"type":"pong"} must keep it open.
    const result = await page.evaluate(async () => {
      const { PushClient } = await import('/pushlane.js');
      const states = [];
      const frames = [];
      const c = new PushClient('', { userId: 'pinger', pingInterval: 150, pongTimeout: 400 });
      c.on('state', (s) => states.push(s.state));
      c.on('message', (m) => frames.push(m));
      await new Promise((r) => setTimeout(r, 1500));
      c.close();
      return { states, frames: frames.length };
    });
    assert.deepEqual(result, { states: ['connecting', 'open', 'closed'], frames: 0 });
  });

  step('over Server-Sent Events the console shows messages, and statuses stay sent (no acks)', async () => {
    await tab('subscribe');
    await page.click('#sub-disconnect');
    await stateIs('closed');
    await page.fill('#sub-user', 'sse-console');
    await page.selectOption('#sub-transport', 'sse');
    const before = sockets.length;
    await page.click('#sub-connect');
    await stateIs('open');
    assert.equal(await page.textContent('#sub-state'), 'open · SSE');
    assert.equal(await page.getAttribute('#sub-state', 'data-transport'), 'sse');
    const r = await publish('sse-console', { title: 'By event stream' });
    await expectMessage(r.id, 'By event stream');
    await page.locator(`#status-table tr[data-id="${r.id}"][data-status="sent"]`).waitFor();
    assert.equal(await statusRow(r.id).locator('td').nth(4).textContent(), '–', 'never acked');
    assert.equal(sockets.length, before, 'no WebSocket');
    await screenshot('console-sse-status');
    await page.click('#sub-disconnect');
  });

  step('logged no script error and no CSP violation', () => {
    assert.deepEqual(pageErrors, []);
  });
});
