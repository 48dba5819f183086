// Shared pieces of the browser tests: the real server process, a TCP proxy between the browser and
// it, and small HTTP helpers. run.sh sets:
//   PUSHLANE_BIN, PUSHLANE_CONFIG   the binary and its config (server.addr = PUSHLANE_ADDR)
//   PUSHLANE_ADDR                   127.0.0.1:PORT the server listens on
//   PUSHLANE_PIDFILE                where the running server's pid is written, for run.sh's cleanup
//   PUSHLANE_TMP                    a scratch directory (each test file keeps its own store there)
//   CHROMIUM                        optional: the browser, default /usr/bin/chromium
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { chromium } from 'playwright-core';

export const env = process.env;
export const ready = Boolean(env.PUSHLANE_BIN && env.PUSHLANE_CONFIG && env.PUSHLANE_ADDR);
export const DIRECT = 'http://' + env.PUSHLANE_ADDR; // the test's own requests, like curl
export const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** until polls pred (async) every 50 ms until it returns a truthy value, which it returns. */
export async function until(what, pred, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await sleep(50);
  }
}

/**
 * steps returns a step(name, fn) that defines it(name) for steps that share one page and one
 * server and build on each other: after a failure the rest are skipped at once, rather than each
 * waiting for its own timeout.
 */
export function steps(it) {
  let failedStep = null;
  return function step(name, fn) {
    it(name, async (t) => {
      if (failedStep) {
        t.skip('an earlier step failed: ' + failedStep);
        return;
      }
      try {
        await fn(t);
      } catch (err) {
        failedStep = name;
        throw err;
      }
    });
  };
}

// ---------- server process ----------

/**
 * startServer runs the binary with the config of run.sh, plus extra environment (PUSH_* keys
 * override the config, e.g. PUSH_STORE_PATH or PUSH_DEMO_ENABLED), and waits for /healthz.
 */
export async function startServer(extraEnv = {}) {
  const child = spawn(env.PUSHLANE_BIN, ['--config', env.PUSHLANE_CONFIG], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: Object.assign({}, process.env, extraEnv),
  });
  const output = [];
  child.stdout.on('data', (b) => output.push(b.toString()));
  child.stderr.on('data', (b) => output.push(b.toString()));
  if (env.PUSHLANE_PIDFILE) fs.writeFileSync(env.PUSHLANE_PIDFILE, String(child.pid));
  const exited = once(child, 'exit');
  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) throw new Error('pushlane exited with ' + child.exitCode + ':\n' + output.join(''));
    try {
      const res = await fetch(DIRECT + '/healthz');
      if (res.ok) break;
    } catch (err) {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('pushlane did not become healthy:\n' + output.join(''));
    await sleep(50);
  }
  return { child, output, exited, env: extraEnv };
}

export async function stopServer(s) {
  if (s.child.exitCode !== null) return { code: s.child.exitCode, signal: null };
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 15000);
  const [code, signal] = await s.exited;
  clearTimeout(timer);
  if (env.PUSHLANE_PIDFILE) fs.rmSync(env.PUSHLANE_PIDFILE, { force: true });
  return { code, signal };
}

// ---------- a TCP proxy between the browser and the server ----------

/**
 * startProxy forwards 127.0.0.1:<its port> to target. accept(false) makes it refuse new
 * connections (the browser sees a network error, as when the network is down); blockWebSockets
 * (true) makes it answer every WebSocket handshake with 403, as a proxy that does not let
 * WebSockets through, while plain HTTP (and so an event stream) passes. serve(path, html) makes it
 * answer GET path itself with a page (an application page on the server's origin; Playwright's
 * route.fulfill would not do: Chromium then treats the page as public and blocks its WebSockets
 * to 127.0.0.1 by its local network access checks).
 */
export async function startProxy(target) {
  const host = target.slice(0, target.lastIndexOf(':'));
  const port = Number(target.slice(target.lastIndexOf(':') + 1));
  const pairs = new Set();
  let accepting = true;
  let blockWS = false;
  const pages = new Map();
  const srv = net.createServer((down) => {
    if (!accepting) {
      down.destroy();
      return;
    }
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      if (head.indexOf('\r\n\r\n') < 0 && head.length < 16384) return; // the request head is not complete yet
      down.off('data', onData);
      const line = head.toString('latin1').split('\r\n')[0].split(' ');
      if (line[0] === 'GET' && pages.has(line[1])) {
        const body = Buffer.from(pages.get(line[1]));
        down.end('HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n' +
          'Content-Length: ' + body.length + '\r\nConnection: close\r\n\r\n' + body.toString('latin1'), 'latin1');
        return;
      }
      if (blockWS && /\r\nupgrade:\s*websocket/i.test(head.toString('latin1'))) {
        down.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      const up = net.connect(port, host);
      const pair = { up, down };
      pairs.add(pair);
      const end = () => {
        pairs.delete(pair);
        up.destroy();
        down.destroy();
      };
      up.on('error', end).on('close', end);
      down.on('error', end).on('close', end);
      up.write(head);
      down.pipe(up);
      up.pipe(down);
    };
    down.on('data', onData);
    down.on('error', () => down.destroy());
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: srv.address().port,
    accept(on) {
      accepting = on;
    },
    blockWebSockets(on) {
      blockWS = on;
    },
    serve(pagePath, html) {
      pages.set(pagePath, html);
    },
    async close() {
      for (const p of pairs) {
        p.up.destroy();
        p.down.destroy();
      }
      srv.close();
    },
  };
}

// ---------- browser ----------

export async function launchBrowser() {
  return chromium.launch({ executablePath: env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ARGS });
}

// ---------- HTTP helpers (the test's own requests, straight to the server) ----------

export async function publish(userId, data) {
  const res = await fetch(DIRECT + '/pushNews', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ userId, data }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, 'POST /pushNews: ' + JSON.stringify(body));
  return body.results[0];
}

export async function broadcast(data) {
  const res = await fetch(DIRECT + '/broadcast', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ data }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

export async function getJSON(path) {
  const res = await fetch(DIRECT + path);
  return { status: res.status, body: await res.json() };
}

/** messageStatus is GET /messages/:userId/:id's status, or the HTTP status when not 200. */
export async function messageStatus(userId, id) {
  const r = await getJSON('/messages/' + encodeURIComponent(userId) + '/' + id);
  return r.status === 200 ? r.body.status : 'HTTP ' + r.status;
}
