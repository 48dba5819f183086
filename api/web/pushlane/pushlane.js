/**
 * pushlane.js: the browser client for pushlane, an ES module without dependencies. Every pushlane
 * serves this very file at GET /pushlane.js, and it is the npm package `pushlane` (the same bytes),
 * so it works from a <script type="module"> and from a bundler alike. Guide: docs/browser.md;
 * types: pushlane.d.ts.
 *
 *   import { PushClient } from 'https://push.example.com/pushlane.js'; // or from 'pushlane'
 *   const client = new PushClient('https://push.example.com', { userId: 'alice', token });
 *   client.on('message', async (m) => { await save(m.id, m.data); }); // acked once this returns
 *   client.on('resync', () => reloadEverything());  // the server could not resume: start over
 *   client.on('state', (s) => badge(s.state, s.transport, s.delay, s.code));
 *   client.close();                                    // stops for good
 *
 * Transports. A WebSocket speaking protocol version 2 (a hello frame with the store's epoch,
 * acknowledgements), or Server-Sent Events through EventSource (protocol version 1: no acks) when
 * a WebSocket cannot connect or when options.transport is 'sse'. See _pickTransport below for the
 * fallback rule.
 *
 * Delivery. Frames are delivered to the 'message' listeners one at a time, in the order they
 * arrived; a listener may return a promise, which is awaited before the next frame. After every
 * listener returned (or its promise resolved) the message is acknowledged ({"type":"ack"}, on a
 * WebSocket) and remembered as processed: lastId moves to its id and a copy of it arriving again
 * is acknowledged again without calling the listeners. When a listener throws (or its promise
 * rejects), the message is NOT acknowledged and NOT remembered; the error is emitted as 'error'
 * (err.pushlaneMessage is the frame), the next messages are still delivered, and lastId stops
 * moving for the rest of that connection (it is pinned just below the failed id). So the failed
 * message arrives again on the next connection (by since, and on version 2 also because the
 * server keeps it unread), together with later ones, which are de-duplicated.
 *
 * Resume. lastId ("the cursor") is the id up to which every message this client received was
 * processed; epoch names the store's id space (from the hello frame). A reconnect sends both
 * (since=lastId&epoch=E). When the server answers recovered=false (a cursor from another store or
 * from before a reset), the client forgets lastId and the ids it has seen, emits 'resync' and
 * then delivers every stored message the server replays. With options.storage (localStorage,
 * sessionStorage or anything with getItem/setItem), lastId and epoch survive a reload.
 *
 * The state machine (client.state; each change is emitted as 'state'):
 *
 *   idle ──connect()──► connecting ──opened──► open
 *                          │                    │ closed by the server or the network, no pong,
 *                          │ failed             │ or connect timeout
 *                          ▼                    ▼
 *                     reconnecting ◄────────────┘   (waits a backoff delay; then connecting)
 *   any state ──close()──► closed ◄── a stop code (4000 removed by /deleteClient, 1008 token)
 *   closed ──connect()──► connecting;  reconnecting ──connect() or 'online' event──► connecting
 *
 * Field owners: state, attempt, the retry timer and the 'online' listener belong to the state
 * machine (_enter, _scheduleRetry, _stop); a connection's socket and timers belong to its
 * Connection object, made by _attemptConnect and discarded by _drop (every callback checks that
 * its connection is still the current one, this._conn); lastId, epoch and the seen ids belong to
 * the delivery pump (_pump, _handleFrame, _hello), which alone takes frames from the inbox (the
 * sockets' callbacks only append). Everything runs on the page's one thread: no locks. Names
 * starting with _ are internal; serverURL() and resolveToken() are for extensions.
 */

const DEFAULTS = Object.freeze({
  userId: '',
  token: '',
  since: null,
  epoch: null,
  transport: 'auto',
  fallbackAfter: 2,
  autoConnect: true,
  minDelay: 500,
  maxDelay: 30000,
  stableAfter: 10000,
  pingInterval: 20000,
  pongTimeout: 10000,
  connectTimeout: 10000,
  stopCodes: Object.freeze([4000, 1008]),
  dedupe: 1000,
  storage: null,
  storageKey: '',
  WebSocket: null,
  EventSource: null,
});

const CANONICAL_ID = /^[1-9][0-9]{0,18}$/;
const SINCE = /^(0|[1-9][0-9]{0,18})$/; // since=0 asks for every stored message
const USER_ID = /^[A-Za-z0-9._:@-]{1,128}$/;
const EPOCH = /^[A-Za-z0-9_-]{1,64}$/;
const TRANSPORTS = ['auto', 'websocket', 'sse'];

/** validUserId is the server's rule for user ids: 1-128 of [A-Za-z0-9._:@-], not "." or "..". */
export function validUserId(s) {
  return typeof s === 'string' && USER_ID.test(s) && s !== '.' && s !== '..';
}

/** reportLater hands an error to the page's error reporting without breaking the caller. */
function reportLater(err) {
  if (typeof reportError === 'function') reportError(err); // browsers: like an event listener's error
  else if (typeof console !== 'undefined') console.error(err);
}

function asError(err) {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * A Connection is one attempt to connect: its transport, its socket (a WebSocket or an
 * EventSource) and its timers. It belongs to the PushClient that made it until _drop() discards
 * it; callbacks of a discarded connection find themselves no longer current and do nothing.
 */
class Connection {
  constructor(transport) {
    this.transport = transport; // 'websocket' | 'sse'
    this.socket = null;
    this.opened = false; // it reached 'open'
    this.failed = false; // a listener failed on one of its messages: the cursor stays put
    this.timers = {}; // connect, stable, ping, pong
  }

  clearTimers() {
    for (const name of Object.keys(this.timers)) clearTimeout(this.timers[name]);
    this.timers = {};
  }
}

export class PushClient {
  /**
   * @param {string} url server base: http(s)://host[:port][/prefix] (ws:// and wss:// work too);
   *   '' for the page's own origin
   * @param {object} options see pushlane.d.ts
   */
  constructor(url, options) {
    const opts = Object.assign({}, DEFAULTS, options || {});
    if (!opts.userId) throw new TypeError('PushClient: options.userId is required');
    if (!validUserId(String(opts.userId))) {
      throw new TypeError('PushClient: options.userId must be 1 to 128 of A-Z a-z 0-9 . _ : @ - (and not "." or "..")');
    }
    if (opts.since !== '' && opts.since != null && !SINCE.test(String(opts.since))) {
      throw new TypeError('PushClient: options.since must be a message id (a decimal string)');
    }
    if (opts.epoch != null && opts.epoch !== '' && !EPOCH.test(String(opts.epoch))) {
      throw new TypeError('PushClient: options.epoch must be 1 to 64 of A-Z a-z 0-9 _ -');
    }
    if (TRANSPORTS.indexOf(opts.transport) < 0) {
      throw new TypeError("PushClient: options.transport must be 'auto', 'websocket' or 'sse'");
    }
    this.opts = opts;
    this.baseURL = url || '';
    this.userId = String(opts.userId);
    this.token = opts.token;
    this.storageKey = opts.storageKey || 'pushlane:' + this.userId;

    /** the resume cursor: every message up to this id was processed (decimal string), or null */
    this.lastId = null;
    /** the epoch lastId belongs to (from the server's hello), or null */
    this.epoch = null;
    if (opts.since !== '' && opts.since != null) {
      this.lastId = String(opts.since);
      this.epoch = opts.epoch ? String(opts.epoch) : null;
    } else {
      this._loadCursor();
    }

    /** idle | connecting | open | reconnecting | closed */
    this.state = 'idle';
    /** consecutive attempts that did not stay open for stableAfter; drives the backoff */
    this.attempt = 0;
    /** the transport of the current or last connection: 'websocket' or 'sse' */
    this.transport = opts.transport === 'sse' ? 'sse' : 'websocket';

    this._handlers = new Map();
    this._conn = null; // the current Connection, or null
    this._retryTimer = undefined;
    this._listening = false; // the 'online' listener is installed (from connect() to closed)

    // The fallback rule's memory (_pickTransport).
    this._wsOpened = false; // a WebSocket of this client has opened at least once
    this._sseOnly = false; // an event stream opened while no WebSocket ever had
    this._wsFailures = 0; // consecutive WebSocket attempts that never opened

    // Owned by the delivery pump.
    this._inbox = []; // {conn, frame} in arrival order
    this._pumping = false;
    this._seen = new Set(); // ids processed, oldest first, at most opts.dedupe

    this._onOnline = () => {
      if (this.state === 'reconnecting') this._attemptConnect();
    };
    if (opts.autoConnect) {
      // A microtask later, so listeners registered on the next line see the first 'connecting'.
      Promise.resolve().then(() => {
        if (this.state === 'idle') this.connect();
      });
    }
  }

  // ---------- public API ----------

  /** Registers fn for 'message', 'state', 'resync' or 'error'; returns a function that removes it. */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  /** Removes fn registered with on(). */
  off(type, fn) {
    const set = this._handlers.get(type);
    if (set) set.delete(fn);
  }

  /** Starts connecting (from idle or closed), or retries at once (from reconnecting). */
  connect() {
    if (this.state === 'open' || this.state === 'connecting') return;
    if (this.state !== 'reconnecting') this.attempt = 0;
    this._listenOnline(true);
    this._attemptConnect();
  }

  /** Closes the connection and stops reconnecting until connect() is called again. Frames
   * received and not yet delivered are dropped (on version 2 they stay unread on the server). */
  close() {
    this._inbox.length = 0;
    if (this.state === 'closed') return;
    this._drop(1000, 'closed by client');
    this._stop({ code: 1000, reason: 'closed by client' });
  }

  /** Replaces the token used by the next (re)connect. */
  setToken(token) {
    this.token = token;
  }

  /** The WebSocket URL of the next connection (token included when given). */
  socketURL(token) {
    const u = this.serverURL('/getPushNews');
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    u.searchParams.set('userId', this.userId);
    u.searchParams.set('v', '2');
    if (token) u.searchParams.set('token', token);
    if (this.epoch) u.searchParams.set('epoch', this.epoch);
    if (this.lastId) u.searchParams.set('since', this.lastId);
    return u.toString();
  }

  /** The event-stream (SSE) URL of the next connection: protocol version 1, so no v or epoch. */
  streamURL(token) {
    const u = this.serverURL('/getPushNews');
    if (u.protocol === 'ws:') u.protocol = 'http:';
    else if (u.protocol === 'wss:') u.protocol = 'https:';
    u.searchParams.set('userId', this.userId);
    if (token) u.searchParams.set('token', token);
    if (this.lastId) u.searchParams.set('since', this.lastId);
    return u.toString();
  }

  /** The URL of the next connection on the transport it will use. */
  connectURL(token) {
    return this._pickTransport() === 'sse' ? this.streamURL(token) : this.socketURL(token);
  }

  // ---------- for extensions (Web Push, below) ----------

  /** serverURL resolves path (starting with '/') against the server base, without a query. */
  serverURL(path) {
    let base = this.baseURL;
    if (!base) {
      if (typeof location === 'undefined') throw new Error('PushClient: url is required outside a browser');
      base = location.origin;
    }
    const u = new URL(base.replace(/\/+$/, '') + path, typeof location !== 'undefined' ? location.href : undefined);
    u.search = '';
    return u;
  }

  /** resolveToken gives the token for a request: options.token, or what its function returns. */
  async resolveToken() {
    const token = this.token;
    return typeof token === 'function' ? await token() : token;
  }

  // ---------- the state machine ----------

  _enter(state, info) {
    this.state = state;
    this._emit('state', Object.assign({ state, attempt: this.attempt, transport: this.transport }, info));
  }

  /**
   * _pickTransport is the fallback rule of transport 'auto': WebSocket, unless no WebSocket of this
   * client has ever opened and the last fallbackAfter WebSocket attempts all failed before opening
   * (a proxy that refuses upgrades looks like that); then an event stream. If that stream opens,
   * the client stays on event streams (that network lets only plain HTTP through); if it fails
   * too, the server is more likely down than the WebSocket blocked, and WebSocket is tried again.
   */
  _pickTransport() {
    const t = this.opts.transport;
    if (t !== 'auto') return t;
    if (!this._eventSourceClass()) return 'websocket';
    if (this._sseOnly) return 'sse';
    if (!this._wsOpened && this._wsFailures >= this.opts.fallbackAfter) return 'sse';
    return 'websocket';
  }

  _webSocketClass() {
    return this.opts.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
  }

  _eventSourceClass() {
    return this.opts.EventSource || (typeof EventSource !== 'undefined' ? EventSource : null);
  }

  /** _attemptConnect enters 'connecting' with a new Connection and opens its socket. */
  async _attemptConnect() {
    this._stopRetrying();
    this._drop(1000, 'reconnecting');
    const conn = new Connection(this._pickTransport());
    this._conn = conn;
    this.transport = conn.transport;
    this._enter('connecting');
    let token;
    try {
      token = await this.resolveToken();
    } catch (err) {
      if (conn !== this._conn) return;
      this._emit('error', asError(err));
      this._connectionEnded(conn, 0, 'token function failed');
      return;
    }
    if (conn !== this._conn) return;
    const Socket = conn.transport === 'sse' ? this._eventSourceClass() : this._webSocketClass();
    if (!Socket) {
      const what = conn.transport === 'sse' ? 'EventSource' : 'WebSocket';
      this._conn = null;
      this._emit('error', new Error('PushClient: no ' + what + ' implementation (pass options.' + what + ')'));
      this._stop({ code: 0, reason: 'no ' + what + ' implementation' });
      return;
    }
    try {
      if (conn.transport === 'sse') this._openStream(conn, Socket, token);
      else this._openSocket(conn, Socket, token);
    } catch (err) {
      this._emit('error', asError(err));
      this._connectionEnded(conn, 0, String(err && err.message));
      return;
    }
    conn.timers.connect = setTimeout(() => this._connectionEnded(conn, 1006, 'connect timeout'), this.opts.connectTimeout);
  }

  _openSocket(conn, WS, token) {
    const ws = new WS(this.socketURL(token));
    conn.socket = ws;
    ws.onopen = () => this._connectionOpened(conn);
    ws.onmessage = (ev) => {
      if (conn !== this._conn) return;
      clearTimeout(conn.timers.pong); // any frame proves the connection is alive
      this._receive(conn, ev.data);
    };
    ws.onclose = (ev) => this._connectionEnded(conn, ev.code, ev.reason || '');
    ws.onerror = () => {}; // always followed by a close event, which carries the code
  }

  _openStream(conn, ES, token) {
    const es = new ES(this.streamURL(token));
    conn.socket = es;
    es.onopen = () => this._connectionOpened(conn);
    es.onmessage = (ev) => {
      if (conn === this._conn) this._receive(conn, ev.data);
    };
    // Sent before the server ends a stream where a WebSocket would be closed: {"code": N}.
    es.addEventListener('close', (ev) => {
      let code = 1006;
      try {
        code = Number(JSON.parse(ev.data).code) || 1006;
      } catch (err) {
        // an unreadable close event still ends the stream
      }
      this._connectionEnded(conn, code, 'event stream closed by the server');
    });
    // EventSource would reconnect by itself (after a fixed delay, and not at all after an HTTP
    // error); the client reconnects instead, with its backoff and since=lastId.
    es.onerror = () => this._connectionEnded(conn, 1006, conn.opened ? 'event stream ended' : 'event stream failed');
  }

  _connectionOpened(conn) {
    if (conn !== this._conn) return;
    clearTimeout(conn.timers.connect);
    conn.opened = true;
    if (conn.transport === 'websocket') {
      this._wsOpened = true;
      this._wsFailures = 0;
    } else if (!this._wsOpened) {
      this._sseOnly = this.opts.transport === 'auto';
    }
    this._enter('open');
    conn.timers.stable = setTimeout(() => {
      this.attempt = 0;
    }, this.opts.stableAfter);
    if (conn.transport === 'websocket') this._schedulePing(conn);
  }

  /** _connectionEnded: conn closed, failed or was given up; reconnect or stop. */
  _connectionEnded(conn, code, reason) {
    if (conn !== this._conn) return;
    this._drop(code, reason);
    // Only a socket that was made and never opened counts for the fallback (not a token function
    // that failed before any socket existed).
    if (conn.socket && !conn.opened) {
      if (conn.transport === 'websocket') this._wsFailures++;
      else this._wsFailures = 0;
    }
    if (this.opts.stopCodes.indexOf(code) >= 0) {
      this._stop({ code, reason });
      return;
    }
    this._scheduleRetry(code, reason);
  }

  /** _drop discards the current connection: its timers stop, its socket is closed. */
  _drop(code, reason) {
    const conn = this._conn;
    if (!conn) return;
    this._conn = null;
    conn.clearTimers();
    const s = conn.socket;
    if (!s) return;
    s.onopen = s.onmessage = s.onclose = s.onerror = null;
    try {
      if (conn.transport === 'websocket') s.close(code === 1000 ? 1000 : undefined, code === 1000 ? reason : undefined);
      else s.close();
    } catch (err) {
      // already closing
    }
  }

  _scheduleRetry(code, reason) {
    const ceiling = Math.min(this.opts.maxDelay, this.opts.minDelay * Math.pow(2, this.attempt));
    const delay = Math.floor(Math.random() * ceiling); // "full jitter"
    this.attempt++;
    this._enter('reconnecting', { delay, code, reason });
    this._retryTimer = setTimeout(() => {
      this._retryTimer = undefined;
      if (this.state === 'reconnecting') this._attemptConnect();
    }, delay);
  }

  _stopRetrying() {
    clearTimeout(this._retryTimer);
    this._retryTimer = undefined;
  }

  /** _stop enters 'closed': no connection, no retry, no 'online' listener. */
  _stop(info) {
    this._stopRetrying();
    this._listenOnline(false);
    this._enter('closed', info);
  }

  /** _listenOnline installs (or removes) the browser's 'online' listener, which retries at once. */
  _listenOnline(on) {
    if (on === this._listening || typeof addEventListener !== 'function') return;
    if (on) addEventListener('online', this._onOnline);
    else removeEventListener('online', this._onOnline);
    this._listening = on;
  }

  _schedulePing(conn) {
    if (!this.opts.pingInterval) return;
    conn.timers.ping = setTimeout(() => {
      if (conn !== this._conn) return;
      try {
        conn.socket.send('{"type":"ping"}');
      } catch (err) {
        this._connectionEnded(conn, 1006, 'ping failed');
        return;
      }
      conn.timers.pong = setTimeout(() => {
        this._connectionEnded(conn, 1006, 'no pong within ' + this.opts.pongTimeout + ' ms');
      }, this.opts.pongTimeout);
      this._schedulePing(conn);
    }, this.opts.pingInterval);
  }

  // ---------- delivery ----------

  /** _receive parses a frame and queues it for the pump. */
  _receive(conn, text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (err) {
      this._emit('error', new Error('pushlane: frame is not JSON: ' + String(text).slice(0, 100)));
      return;
    }
    if (!frame || typeof frame !== 'object' || Array.isArray(frame) || frame.type === 'pong') return;
    this._inbox.push({ conn, frame });
    this._pump();
  }

  /**
   * _pump delivers the inbox one frame at a time, awaiting each. Frames of a connection that has
   * since ended are still delivered (they were received; dropping them would lose what a version
   * 1 stream already took out of the unread queue); the next connection resumed from lastId, which
   * is below each of them, so its copies are de-duplicated.
   */
  async _pump() {
    if (this._pumping) return;
    this._pumping = true;
    try {
      while (this._inbox.length) {
        const { conn, frame } = this._inbox.shift();
        await this._handleFrame(conn, frame);
      }
    } finally {
      this._pumping = false;
    }
  }

  async _handleFrame(conn, m) {
    if (m.type === 'hello') return this._hello(m);
    if (m.type !== undefined) return; // a control frame of a later protocol
    if (m.id === undefined || m.id === null) {
      // A broadcast: no id, so nothing to acknowledge, remember or deliver again.
      if (m.broadcast || 'data' in m) this._listenerFailed(m, await this._runListeners(m));
      return;
    }
    const id = String(m.id);
    if (!CANONICAL_ID.test(id)) {
      this._emit('error', new Error('pushlane: message id is not a canonical id: ' + id.slice(0, 40)));
      return;
    }
    if (this._seen.has(id)) {
      // Already processed: the server did not get (or keep) the ack, or a resume replayed it.
      this._sendAck(id);
      this._advance(conn, id);
      return;
    }
    const err = await this._runListeners(m);
    if (err) {
      conn.failed = true;
      this._pin(id);
      this._listenerFailed(m, err);
      return;
    }
    this._seen.add(id);
    if (this._seen.size > this.opts.dedupe) this._seen.delete(this._seen.values().next().value);
    this._sendAck(id);
    this._advance(conn, id);
  }

  /** _runListeners calls every 'message' listener in turn, awaiting each; the first error, or null. */
  async _runListeners(m) {
    let failure = null;
    for (const fn of Array.from(this._handlers.get('message') || [])) {
      try {
        await fn(m);
      } catch (err) {
        if (!failure) failure = asError(err);
      }
    }
    return failure;
  }

  /** _listenerFailed emits err (if any) as 'error', with the frame its listener failed on. */
  _listenerFailed(m, err) {
    if (!err) return;
    try {
      err.pushlaneMessage = m;
    } catch (e) {
      // a frozen error object: emitted without the frame
    }
    this._emit('error', err);
  }

  async _hello(m) {
    const epoch = typeof m.epoch === 'string' && EPOCH.test(m.epoch) ? m.epoch : null;
    if (m.recovered === false) {
      const previous = { epoch: this.epoch, since: this.lastId };
      this.lastId = null;
      this._seen.clear();
      this.epoch = epoch;
      this._saveCursor();
      // Awaited, so the application can reset its state before the replayed messages arrive.
      for (const fn of Array.from(this._handlers.get('resync') || [])) {
        try {
          await fn({ epoch, previousEpoch: previous.epoch, previousSince: previous.since });
        } catch (err) {
          this._emit('error', asError(err));
        }
      }
      return;
    }
    if (epoch && epoch !== this.epoch) {
      this.epoch = epoch;
      this._saveCursor();
    }
  }

  /** _advance moves the cursor to id, unless a listener failed on this connection. */
  _advance(conn, id) {
    if (conn.failed) return;
    if (this.lastId !== null && BigInt(id) <= BigInt(this.lastId)) return;
    this.lastId = id;
    this._saveCursor();
  }

  /** _pin keeps the cursor below a message whose listener failed, so a resume asks for it again. */
  _pin(id) {
    const below = (BigInt(id) - 1n).toString();
    if (this.lastId === null || BigInt(this.lastId) > BigInt(below)) {
      this.lastId = below;
      this._saveCursor();
    }
  }

  _sendAck(id) {
    const conn = this._conn;
    if (!conn || conn.transport !== 'websocket' || !conn.opened) return;
    try {
      conn.socket.send('{"type":"ack","id":"' + id + '"}');
    } catch (err) {
      // closing: the message stays unread on the server and comes back, to be acked then
    }
  }

  _loadCursor() {
    const s = this.opts.storage;
    if (!s) return;
    try {
      const v = JSON.parse(s.getItem(this.storageKey) || 'null');
      if (v && typeof v.since === 'string' && SINCE.test(v.since)) this.lastId = v.since;
      if (v && typeof v.epoch === 'string' && EPOCH.test(v.epoch)) this.epoch = v.epoch;
    } catch (err) {
      // unreadable or blocked storage: start without a cursor
    }
  }

  _saveCursor() {
    const s = this.opts.storage;
    if (!s) return;
    try {
      s.setItem(this.storageKey, JSON.stringify({ since: this.lastId, epoch: this.epoch }));
    } catch (err) {
      // full or blocked storage: the cursor lives in memory only
    }
  }

  // ---------- events ----------

  _emit(type, arg) {
    const set = this._handlers.get(type);
    if (!set || set.size === 0) {
      if (type === 'error') reportLater(arg); // an error nobody listens to still shows
      return;
    }
    for (const fn of Array.from(set)) {
      try {
        fn(arg);
      } catch (err) {
        // A throwing listener must not break the client or the other listeners.
        reportLater(err);
      }
    }
  }
}

export default PushClient;

// ---------- Web Push ----------
// PushClient.prototype.enableWebPush (API.md "Web Push to closed tabs") goes here, after the
// class: it needs only this.userId, serverURL() and resolveToken(), and no state of the connection.

/** webPushBytes decodes base64url (a VAPID key) for PushManager.subscribe. */
function webPushBytes(b64url) {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (b64url.length % 4)) % 4);
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** webPushSameKey reports whether an existing subscription was made with this VAPID key. */
function webPushSameKey(buffer, key) {
  if (!buffer) return false;
  const a = new Uint8Array(buffer);
  if (a.length !== key.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== key[i]) return false;
  return true;
}

/** webPushActive resolves once registration has an active worker (PushManager needs one). */
function webPushActive(registration) {
  if (registration.active) return Promise.resolve(registration);
  const worker = registration.installing || registration.waiting;
  return new Promise((resolve, reject) => {
    if (!worker) return reject(new Error('PushClient.enableWebPush: the service worker did not install'));
    worker.addEventListener('statechange', () => {
      if (worker.state === 'activated') resolve(registration);
      else if (worker.state === 'redundant') reject(new Error('PushClient.enableWebPush: the service worker failed to activate'));
    });
  });
}

/**
 * webPushRequest calls a /webpush route of the server for this client's user (userId and token
 * in the query, as API.md says) and returns {status, body}; a refusal throws an Error with the
 * server's reason and err.status.
 */
PushClient.prototype.webPushRequest = async function webPushRequest(method, path, body) {
  const u = this.serverURL(path);
  u.searchParams.set('userId', this.userId);
  const token = await this.resolveToken();
  if (token) u.searchParams.set('token', token);
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = body;
  }
  const res = await fetch(u.toString(), init);
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (e) {
    parsed = null;
  }
  if (!res.ok) {
    const err = new Error((parsed && parsed.error) || method + ' ' + path + ': HTTP ' + res.status);
    err.status = res.status;
    throw err;
  }
  return { status: res.status, body: parsed };
};

/**
 * enableWebPush turns on notifications for this client's user in this browser, also when no tab
 * is open: it asks the user's permission (call it from a click: browsers refuse the prompt
 * otherwise), registers the service worker (options.serviceWorker, default the server's
 * /pushlane-sw.js, which must be on the page's origin; options.scope, default the server's
 * root), subscribes with the server's VAPID key (GET /webpush/vapidPublicKey; a subscription
 * made with another key is replaced) and registers the subscription
 * (POST /webpush/subscriptions). Resolves to {id, created, subscription}; rejects when the
 * browser has no Web Push, the user said no (err.permission), or the server refused (err.status).
 */
PushClient.prototype.enableWebPush = async function enableWebPush(options) {
  const opts = Object.assign({}, options || {});
  if (typeof navigator === 'undefined' || !navigator.serviceWorker || typeof PushManager === 'undefined' || typeof Notification === 'undefined') {
    throw new Error('PushClient.enableWebPush: this browser has no Web Push (service workers, PushManager and notifications are needed; a secure origin too)');
  }
  const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
  if (permission !== 'granted') {
    const err = new Error('PushClient.enableWebPush: notifications are not allowed (' + permission + ')');
    err.permission = permission;
    throw err;
  }
  const keyRes = await this.webPushRequest('GET', '/webpush/vapidPublicKey');
  const key = webPushBytes(keyRes.body.publicKey);
  let registration = opts.registration;
  if (!registration) {
    const script = opts.serviceWorker || this.serverURL('/pushlane-sw.js').toString();
    registration = await navigator.serviceWorker.register(script, { scope: opts.scope || this.serverURL('/').toString() });
  }
  await webPushActive(registration);
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !webPushSameKey(subscription.options && subscription.options.applicationServerKey, key)) {
    await subscription.unsubscribe(); // made for another server key: the server could not push to it
    subscription = null;
  }
  if (!subscription) {
    subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }
  const res = await this.webPushRequest('POST', '/webpush/subscriptions', JSON.stringify(subscription.toJSON()));
  return { id: res.body.id, created: res.status === 201, subscription };
};

/** webPushSubscriptions lists the user's subscriptions: [{id, origin, createdAt}], oldest first. */
PushClient.prototype.webPushSubscriptions = async function webPushSubscriptions() {
  const res = await this.webPushRequest('GET', '/webpush/subscriptions');
  return res.body.subscriptions;
};

/** deleteWebPushSubscription removes one subscription of the user by id (404: err.status). */
PushClient.prototype.deleteWebPushSubscription = async function deleteWebPushSubscription(id) {
  await this.webPushRequest('DELETE', '/webpush/subscriptions/' + encodeURIComponent(id));
};
