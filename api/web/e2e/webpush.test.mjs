// Web Push in headless Chromium against the real server (run.sh builds it): the console's
// "Enable notifications" (PushClient.enableWebPush) registers this browser's subscription and lists
// it; a message published for the user is pushed by the server to a push service of this test's
// own (an HTTP server on 127.0.0.1, listed in webpush.allowedEndpointOrigins), which decrypts it
// with Node's crypto (RFC 8291, independently of the server's library) and checks its VAPID
// token; the decrypted payload is then delivered to the registered service worker as a real push
// event (DevTools ServiceWorker.deliverPushMessage), and the notification it shows is read back.
//
// What the browser does not allow here, and how it is covered instead:
// - PushManager.subscribe needs the browser vendor's push service (the internet): the page's
//   PushManager is replaced by a stand-in that returns a subscription with keys this test holds.
// - A notification click needs a user; the test dispatches a notificationclick event to the
//   service worker with the real notification and stand-ins for clients.openWindow/matchAll
//   (opening or focusing a window needs a user's click), and reads which page it would open.
//
//   node --test webpush.test.mjs   (the browser part needs ./run.sh's settings)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { ready, env, until, startServer, stopServer, launchBrowser, publish, DIRECT } from './harness.mjs';

const require = createRequire(import.meta.url);
const { notificationOf, targetOf } = require('../pushlane-sw.js');
const b64u = (b) => Buffer.from(b).toString('base64url');

describe('pushlane-sw.js in Node: what a push shows and where a click goes', () => {
  it('shows data.title and data.body, else "New message"', () => {
    const frame = (data) => ({ id: '7', userId: 'u', data, createdAt: '2026-11-21T10:00:00.000Z' });
    assert.deepEqual(notificationOf(frame({ title: 'T', body: 'B', url: '/x' })),
      { title: 'T', options: { body: 'B', tag: 'pushlane-7', data: { url: '/x', id: '7', userId: 'u' } } });
    for (const [payload, title, body] of [
      [frame({ title: 'only a title' }), 'only a title', undefined],
      [frame({ body: 'only a body' }), 'New message', 'only a body'],
      [frame('a string'), 'New message', undefined],
      [frame([1, 2]), 'New message', undefined],
      [frame({ title: 42, body: {} }), 'New message', undefined],
      [{ id: '8', userId: 'u', createdAt: 'x', truncated: true }, 'New message', undefined],
      [null, 'New message', undefined],
      ['text', 'New message', undefined],
    ]) {
      const n = notificationOf(payload);
      assert.equal(n.title, title, JSON.stringify(payload));
      assert.equal(n.options.body, body, JSON.stringify(payload));
      assert.equal(n.options.data.url, typeof payload?.data?.url === 'string' ? payload.data.url : '/');
    }
  });
  it('opens data.url on the same origin only, else /', () => {
    const o = 'https://app.example';
    assert.equal(targetOf('/inbox/3?x=1', o), 'https://app.example/inbox/3?x=1');
    assert.equal(targetOf('https://app.example/a', o), 'https://app.example/a');
    for (const bad of ['https://evil.example/a', '//evil.example/a', 'javascript:alert(1)', 'http://app.example/a', undefined, 42]) {
      assert.equal(targetOf(bad, o), 'https://app.example/', String(bad));
    }
  });
});

/** pushService is an HTTP push service on 127.0.0.1 that records every request. */
async function pushService() {
  const requests = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(201).end();
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { origin: 'http://127.0.0.1:' + srv.address().port, requests, close: () => srv.close() };
}

const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();

/** decrypt reverses RFC 8291 (aes128gcm, one record) with Node's crypto. */
function decrypt(body, ecdh, auth) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const asPublic = body.subarray(21, 21 + idlen);
  const record = body.subarray(21 + idlen);
  const secret = ecdh.computeSecret(asPublic);
  const prkKey = hmac(auth, secret);
  const ikm = hmac(prkKey, Buffer.concat([Buffer.from('WebPush: info\0'), ecdh.getPublicKey(), asPublic, Buffer.from([1])]));
  const prk = hmac(salt, ikm);
  const cek = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0\x01', 'latin1')).subarray(0, 16);
  const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0\x01', 'latin1')).subarray(0, 12);
  const d = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(record.subarray(record.length - 16));
  const padded = Buffer.concat([d.update(record.subarray(0, record.length - 16)), d.final()]);
  let end = padded.length;
  while (end > 0 && padded[end - 1] === 0) end--;
  assert.equal(padded[end - 1], 2, 'padding delimiter');
  return padded.subarray(0, end - 1).toString('utf8');
}

/** vapidClaims verifies "vapid t=JWT, k=KEY" (ES256, r||s) and returns the JWT's claims. */
function vapidClaims(header, serverKey) {
  const m = /^vapid t=([^,]+), k=(\S+)$/.exec(header || '');
  assert.ok(m, 'Authorization: ' + header);
  assert.equal(m[2], serverKey);
  const [h, c, s] = m[1].split('.');
  const raw = Buffer.from(m[2], 'base64url');
  const key = crypto.createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64u(raw.subarray(1, 33)), y: b64u(raw.subarray(33)) }, format: 'jwk' });
  assert.ok(crypto.verify('sha256', Buffer.from(h + '.' + c), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url')), 'VAPID signature');
  assert.equal(JSON.parse(Buffer.from(h, 'base64url')).alg, 'ES256');
  return JSON.parse(Buffer.from(c, 'base64url'));
}

describe('Web Push in the browser', { skip: !ready && 'run ./run.sh (it builds and configures the server)' }, () => {
  const user = 'wp-alice';
  let server;
  let service;
  let browser;
  let context;
  let page;
  let cdp;
  let vapid;
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = crypto.randomBytes(16);
  const registrations = [];

  before(async () => {
    const { stdout } = await promisify(execFile)(env.PUSHLANE_BIN, ['webpush', 'keys', '--env']);
    vapid = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=')));
    service = await pushService();
    server = await startServer(Object.assign({
      PUSH_STORE_PATH: path.join(env.PUSHLANE_TMP || '/tmp', 'webpush-test', 'push.db'),
      PUSH_WEBPUSH_ENABLED: 'true',
      PUSH_WEBPUSH_SUBJECT: 'mailto:ops@example.com',
      PUSH_WEBPUSH_ALLOWEDENDPOINTORIGINS: service.origin,
    }, vapid));
    browser = await launchBrowser();
    context = await browser.newContext();
    await context.grantPermissions(['notifications'], { origin: DIRECT });
    // The stand-in PushManager: the subscription a push service would hand out, with this test's keys.
    await context.addInitScript(({ endpoint, p256dh, auth }) => {
      let current = null;
      window.__subscribeKeys = [];
      PushManager.prototype.getSubscription = async function () { return current; };
      PushManager.prototype.subscribe = async function (opts) {
        window.__subscribeKeys.push(Array.from(new Uint8Array(opts.applicationServerKey)));
        current = {
          endpoint,
          options: { userVisibleOnly: true, applicationServerKey: opts.applicationServerKey },
          toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
          unsubscribe: async () => { current = null; return true; },
        };
        return current;
      };
    }, { endpoint: service.origin + '/push/browser-1', p256dh: b64u(ecdh.getPublicKey()), auth: b64u(auth) });
    page = await context.newPage();
    cdp = await context.newCDPSession(page);
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await cdp.send('ServiceWorker.enable');
    await page.goto(DIRECT + '/');
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await stopServer(server);
    if (service) service.close();
  });

  const rows = () => page.locator('#webpush-table tbody tr');

  it('the console\'s "Enable notifications" subscribes with the server\'s key and registers the subscription', async () => {
    await until('the Web Push card to find Web Push on', async () => (await page.getAttribute('#webpush-card', 'data-webpush')) === 'on');
    await page.fill('#sub-user', user);
    await page.click('#webpush-enable');
    await until('the subscription listed', async () => (await rows().count()) === 1);
    assert.match(await page.textContent('#webpush-note'), /Notifications enabled: subscription /);
    assert.equal(await rows().first().locator('td').first().textContent(), service.origin);
    const keys = await page.evaluate(() => window.__subscribeKeys);
    assert.deepEqual(keys, [Array.from(Buffer.from(vapid.PUSH_WEBPUSH_VAPIDPUBLICKEY, 'base64url'))]);
    // Again: the same endpoint keeps its id (200).
    await page.click('#webpush-enable');
    await until('the second answer', async () => /Already enabled/.test(await page.textContent('#webpush-note')));
    assert.equal(await rows().count(), 1);
    const r = await fetch(DIRECT + '/webpush/subscriptions?userId=' + user).then((res) => res.json());
    assert.equal(r.subscriptions.length, 1);
  });

  it('a message for the offline user is pushed, decrypted, and shown by the service worker', async () => {
    const res = await publish(user, { title: 'Invoice paid', body: 'Invoice #42 was paid', url: '/?invoice=42' });
    const req = await until('the push request', () => service.requests.find((x) => x.url === '/push/browser-1'));
    assert.equal(req.headers['content-encoding'], 'aes128gcm');
    assert.equal(req.headers.urgency, 'normal');
    assert.ok(Number(req.headers.ttl) > 0);
    const claims = vapidClaims(req.headers.authorization, vapid.PUSH_WEBPUSH_VAPIDPUBLICKEY);
    assert.equal(claims.aud, service.origin);
    assert.equal(claims.sub, 'mailto:ops@example.com');
    assert.ok(claims.exp > Date.now() / 1000 && claims.exp <= Date.now() / 1000 + 12 * 3600);
    const plaintext = decrypt(req.body, ecdh, auth);
    const frame = JSON.parse(plaintext);
    assert.equal(frame.id, res.id);
    assert.deepEqual(frame.data, { title: 'Invoice paid', body: 'Invoice #42 was paid', url: '/?invoice=42' });
    const st = await fetch(DIRECT + '/messages/' + user + '/' + res.id).then((r) => r.json());
    assert.ok(st.pushedAt, 'pushedAt in the status: ' + JSON.stringify(st));

    const reg = registrations.find((x) => x.scopeURL === DIRECT + '/' && !x.isDeleted);
    assert.ok(reg, 'the service worker registration');
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: DIRECT + '/', registrationId: reg.registrationId, data: plaintext });
    const shown = await until('the notification', () => page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      return (await reg.getNotifications()).map((n) => ({ title: n.title, body: n.body, url: n.data.url, tag: n.tag }));
    }).then((ns) => ns.find((n) => n.tag === 'pushlane-' + res.id)));
    assert.deepEqual(shown, { title: 'Invoice paid', body: 'Invoice #42 was paid', url: '/?invoice=42', tag: 'pushlane-' + res.id });

    // A payload without a title (here: not JSON at all) shows the generic notification. DevTools'
    // delivery right after the previous push was seen to get lost once in about ten CI runs (no
    // push event at all), so it is delivered again, at most twice more, if nothing shows.
    const generic = () => page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      return (await reg.getNotifications()).some((n) => n.title === 'New message' && !n.tag);
    });
    for (let attempt = 1; ; attempt++) {
      await cdp.send('ServiceWorker.deliverPushMessage', { origin: DIRECT + '/', registrationId: reg.registrationId, data: 'not json' });
      try {
        await until('the generic notification', generic, 5000);
        break;
      } catch (err) {
        if (attempt === 3) throw err;
      }
    }
  });

  it('a click opens data.url on this origin, / for another, and focuses a tab already showing it', async () => {
    const worker = await until('the service worker', () => context.serviceWorkers()[0]);
    const clicks = await worker.evaluate(async (urls) => {
      const out = [];
      for (const url of urls) {
        const opened = [];
        const focused = [];
        // A window may only be opened or focused after a user's click: stand-ins record the choice.
        self.clients.openWindow = async (u) => { opened.push(u); return null; };
        self.clients.matchAll = async () => [{ url: self.location.origin + '/already-open', focus: async () => { focused.push('/already-open'); } }];
        await self.registration.showNotification('click me', { tag: 'click-test', data: { url } });
        const [n] = await self.registration.getNotifications({ tag: 'click-test' });
        self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n }));
        const deadline = Date.now() + 5000;
        while (opened.length + focused.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        const left = await self.registration.getNotifications({ tag: 'click-test' });
        out.push({ opened, focused, closed: left.length === 0 });
      }
      return out;
    }, ['/invoices/42', 'https://evil.example/phish', '/already-open']);
    assert.deepEqual(clicks, [
      { opened: [DIRECT + '/invoices/42'], focused: [], closed: true },
      { opened: [DIRECT + '/'], focused: [], closed: true },
      { opened: [], focused: ['/already-open'], closed: true },
    ]);
  });

  it('the console\'s Remove deletes the subscription', async () => {
    await page.click('#webpush-refresh');
    await until('the row', async () => (await rows().count()) === 1);
    await rows().first().locator('button').click();
    await until('the row gone', async () => (await rows().count()) === 0);
    const r = await fetch(DIRECT + '/webpush/subscriptions?userId=' + user).then((res) => res.json());
    assert.deepEqual(r.subscriptions, []);
    if (env.SCREENSHOT_DIR) await page.screenshot({ path: path.join(env.SCREENSHOT_DIR, 'webpush.png'), fullPage: true });
  });
});
