// The pushlane.js package (api/web/pushlane) as a user of npm gets it: imported by name from Node,
// type-checked by TypeScript against pushlane.d.ts, bundled by vite, and byte-identical to what the
// server serves at /pushlane.js. The package is linked into a scratch project's node_modules, as
// `npm install` would place it.
//   node --test package.test.mjs            (the served-file check needs ./run.sh's server settings)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ready, env, startServer, stopServer, DIRECT } from './harness.mjs';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.resolve(here, '..', 'pushlane');
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
let project = '';

before(() => {
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'pushlane-pkg-'));
  fs.mkdirSync(path.join(project, 'node_modules'));
  fs.symlinkSync(pkgDir, path.join(project, 'node_modules', 'pushlane'), 'dir');
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
});

after(() => {
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

test('the package is an ES module that Node imports by name', async () => {
  assert.equal(pkg.name, 'pushlane');
  assert.equal(pkg.type, 'module');
  fs.writeFileSync(path.join(project, 'node-import.mjs'), `
import Default, { PushClient, validUserId } from 'pushlane';
const c = new PushClient('https://push.example.com', { userId: 'alice', autoConnect: false, since: '7' });
console.log(JSON.stringify({ same: Default === PushClient, url: c.socketURL('t'), state: c.state, dot: validUserId('.') }));
`);
  const { stdout } = await run(process.execPath, ['node-import.mjs'], { cwd: project });
  assert.deepEqual(JSON.parse(stdout), {
    same: true,
    url: 'wss://push.example.com/getPushNews?userId=alice&v=2&token=t&since=7',
    state: 'idle',
    dot: false,
  });
});

test('pushlane.d.ts types the public API: a correct program compiles, a wrong one does not', async () => {
  const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');
  const flags = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler',
    '--lib', 'es2022,dom'];
  fs.writeFileSync(path.join(project, 'good.ts'), `
import { PushClient, type PushFrame, type StateEvent } from 'pushlane';
interface Order { title: string; n: number }
const client = new PushClient<Order>('https://push.example.com', {
  userId: 'alice', token: async () => 'jwt', transport: 'auto', storage: localStorage,
});
const off: () => void = client.on('message', async (m: PushFrame<Order>) => {
  const title: string = m.data.title;
  if (m.id !== undefined) console.log(m.id.padStart(3), title);
});
client.on('resync', async (e) => { console.log(e.epoch, e.previousSince); });
client.on('state', (s: StateEvent) => console.log(s.state, s.transport, s.delay ?? 0));
client.on('error', (err) => console.log(err.pushlaneMessage?.data));
const cursor: string | null = client.lastId;
console.log(cursor, client.epoch, client.socketURL(), client.serverURL('/webpush/vapidPublicKey').href);
off();
client.close();
`);
  await run(process.execPath, [tsc, ...flags, 'good.ts'], { cwd: project });

  fs.writeFileSync(path.join(project, 'bad.ts'), `
import { PushClient } from 'pushlane';
const client = new PushClient('', { userId: 'alice', transport: 'carrier-pigeon' });
client.on('mesage', () => {});
const n: number = client.lastId;
`);
  const failed = await run(process.execPath, [tsc, ...flags, 'bad.ts'], { cwd: project }).then(() => null, (err) => err);
  assert.ok(failed, 'bad.ts compiled: the types accept anything');
  const out = failed.stdout;
  assert.match(out, /carrier-pigeon/, out);
  assert.match(out, /mesage/, out);
  assert.match(out, /lastId|string \| null/, out);
});

test('vite 7 bundles the package, and the bundle runs', async () => {
  const { build, version } = await import('vite');
  assert.match(version, /^7\./);
  fs.writeFileSync(path.join(project, 'main.js'), `
import { PushClient } from 'pushlane';
export function url() {
  return new PushClient('https://push.example.com', { userId: 'bob', autoConnect: false, transport: 'sse' }).connectURL('');
}
`);
  await build({
    root: project,
    logLevel: 'silent',
    configFile: false,
    build: { outDir: 'dist', lib: { entry: 'main.js', formats: ['es'], fileName: 'bundle' }, emptyOutDir: true },
  });
  const out = path.join(project, 'dist', 'bundle.js');
  const code = fs.readFileSync(out, 'utf8');
  assert.doesNotMatch(code, /from\s*["']pushlane["']/, 'the package is inlined, not left as an import');
  const bundle = await import(pathToFileURL(out).href);
  assert.equal(bundle.url(), 'https://push.example.com/getPushNews?userId=bob');
});

test('the server serves the package file byte for byte, readable from any origin', { skip: ready ? false : 'needs ./run.sh' }, async () => {
  const server = await startServer({ PUSH_STORE_PATH: path.join(env.PUSHLANE_TMP || os.tmpdir(), 'package-test', 'push.db') });
  try {
    const res = await fetch(DIRECT + '/pushlane.js', { headers: { Origin: 'https://app.example' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/javascript/);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const served = Buffer.from(await res.arrayBuffer());
    assert.ok(served.equals(fs.readFileSync(path.join(pkgDir, 'pushlane.js'))), 'GET /pushlane.js differs from the package file');
  } finally {
    await stopServer(server);
  }
});
