/**
 * pushlane.js: the browser client for pushlane. No dependencies, no build step; served by every pushlane
 * at GET /pushlane.js. Load it with <script src="https://push.example.com/pushlane.js"></script>
 * (it defines the global PushClient) or require() it in Node with a WebSocket implementation.
 *
 *   const client = new PushClient('https://push.example.com', { userId: 'alice', token });
 *   client.on('message', (m) => show(m.id, m.data));           // m = the server's frame
 *   client.on('state', (s) => badge(s.state, s.delay, s.code)); // connecting|open|reconnecting|closed
 *   client.close();                                             // stops for good
 *
 * Constructor: new PushClient(url, options). url is the server base, http(s)://host[:port][/prefix]
 * (ws:// and wss:// work too); '' means the page's own origin. Options:
 *   userId        required; the user whose messages to receive.
 *   token         JWT for servers with auth.jwtSecret: a string, or a function returning a string
 *                 or a Promise of one, called before every (re)connect so it can refresh.
 *   since         the last message id the app has already seen (a decimal string), to resume;
 *                 '0' replays every stored message. Without it the server first sends the
 *                 user's unread messages.
 *   autoConnect   default true: connect right after construction (in a microtask, so handlers
 *                 registered on the next line see the first 'connecting').
 *   minDelay      first reconnect backoff ceiling in ms, default 500.
 *   maxDelay      backoff cap in ms, default 30000. The n-th retry waits a random time in
 *                 [0, min(maxDelay, minDelay * 2^n)) ("full jitter"), so a restarted server is not
 *                 hit by every client at once.
 *   stableAfter   ms a connection must stay open before the backoff starts again from minDelay,
 *                 default 10000.
 *   pingInterval  ms between {"type":"ping"} frames, default 20000; 0 disables.
 *   pongTimeout   ms to wait for {"type":"pong"} (or any frame) after a ping before the
 *                 connection is taken for dead, closed and reconnected; default 10000.
 *   connectTimeout ms for the WebSocket handshake, default 10000.
 *   stopCodes     close codes after which the client does not reconnect, default [4000, 1008]
 *                 (4000: removed by /deleteClient; 1008: token expired or refused by policy).
 *                 The 'closed' state carries the code; refresh the token and call connect().
 *   dedupe        how many recent ids to remember for de-duplication, default 1000.
 *   WebSocket     WebSocket constructor to use, default the global one.
 *
 * Events (client.on(type, fn) returns a function that removes fn; client.off(type, fn) too):
 *   'message'  fn(frame): {id, userId, data, createdAt} or, for a broadcast,
 *              {userId, broadcast: true, data, createdAt} (no id).
 *   'state'    fn({state, attempt, delay, code, reason}): 'connecting' (attempt),
 *              'open', 'reconnecting' (delay in ms before the next try; code and reason of the
 *              close that caused it), 'closed' (code and reason; no more tries).
 *   'error'    fn(Error): an unreadable frame or a token function that failed.
 *
 * Resume and de-duplication: the client remembers the greatest message id it has seen (ids
 * are compared as BigInt) in client.lastId and reconnects with since=lastId, so the server
 * replays whatever was stored meanwhile. Delivery is at least once, so ids already seen are
 * dropped. Broadcast frames carry no id, are always emitted and do not move lastId.
 */
(function (root) {
  'use strict';

  const DEFAULTS = {
    userId: '',
    token: '',
    since: '',
    autoConnect: true,
    minDelay: 500,
    maxDelay: 30000,
    stableAfter: 10000,
    pingInterval: 20000,
    pongTimeout: 10000,
    connectTimeout: 10000,
    stopCodes: [4000, 1008],
    dedupe: 1000,
    WebSocket: null,
  };

  const CANONICAL_ID = /^[1-9][0-9]{0,18}$/;
  const SINCE = /^(0|[1-9][0-9]{0,18})$/; // since=0 asks for every stored message

  class PushClient {
    /**
     * @param {string} url server base: http(s)://host[:port][/prefix]; '' for the page's origin
     * @param {object} options see the file header
     */
    constructor(url, options) {
      const opts = Object.assign({}, DEFAULTS, options || {});
      if (!opts.userId) throw new TypeError('PushClient: options.userId is required');
      if (opts.since !== '' && opts.since != null && !SINCE.test(String(opts.since))) {
        throw new TypeError('PushClient: options.since must be a message id (a decimal string)');
      }
      this.opts = opts;
      this.baseURL = url || '';
      this.userId = String(opts.userId);
      this.token = opts.token;
      /** greatest message id seen so far (decimal string), sent back as since; null before any */
      this.lastId = opts.since !== '' && opts.since != null ? String(opts.since) : null;
      this._floor = this.lastId === null ? null : BigInt(this.lastId);
      /** 'idle' before connect(), then connecting | open | reconnecting | closed */
      this.state = 'idle';
      this.attempt = 0;
      this._handlers = new Map();
      this._seen = new Set();
      this._ws = null;
      this._timers = {};
      this._stopped = true;
      this._generation = 0; // bumped on every socket; stale callbacks compare and bail out
      this._onOnline = () => {
        if (this.state === 'reconnecting') this._open();
      };
      if (opts.autoConnect) {
        this._stopped = false;
        Promise.resolve().then(() => {
          if (!this._stopped && this.state === 'idle') this._open();
        });
      }
    }

    /** Registers fn for 'message', 'state' or 'error'; returns a function that removes it. */
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

    /** Starts (or, after close() or a stop code, restarts) connecting; resumes from lastId. */
    connect() {
      this._stopped = false;
      if (this.state === 'open' || this.state === 'connecting') return;
      this.attempt = 0;
      this._open();
    }

    /** Closes the connection and stops reconnecting until connect() is called again. */
    close() {
      this._stopped = true;
      this._teardown(1000, 'closed by client');
      this._setState({ state: 'closed', code: 1000, reason: 'closed by client' });
    }

    /** Replaces the token used by the next (re)connect. */
    setToken(token) {
      this.token = token;
    }

    /** The WebSocket URL the next connection uses (token included). */
    socketURL(token) {
      let base = this.baseURL;
      if (!base) {
        if (typeof location === 'undefined') throw new Error('PushClient: url is required outside a browser');
        base = location.origin;
      }
      const u = new URL(base.replace(/\/+$/, '') + '/getPushNews', typeof location !== 'undefined' ? location.href : undefined);
      if (u.protocol === 'http:') u.protocol = 'ws:';
      else if (u.protocol === 'https:') u.protocol = 'wss:';
      u.search = '';
      u.searchParams.set('userId', this.userId);
      if (token) u.searchParams.set('token', token);
      if (this.lastId) u.searchParams.set('since', this.lastId);
      return u.toString();
    }

    _emit(type, arg) {
      const set = this._handlers.get(type);
      if (!set) return;
      for (const fn of Array.from(set)) {
        try {
          fn(arg);
        } catch (err) {
          // A throwing handler must not break the client or the other handlers; report it where
          // the app can see it (the console, window.onerror), as an event listener's error is.
          if (typeof reportError === 'function') reportError(err);
          else {
            setTimeout(() => {
              throw err;
            });
          }
        }
      }
    }

    _setState(s) {
      this.state = s.state;
      this._emit('state', Object.assign({ attempt: this.attempt }, s));
    }

    _clearTimer(name) {
      if (this._timers[name] !== undefined) {
        clearTimeout(this._timers[name]);
        delete this._timers[name];
      }
    }

    _clearTimers() {
      for (const name of Object.keys(this._timers)) this._clearTimer(name);
    }

    async _open() {
      this._clearTimers();
      const gen = ++this._generation;
      this._setState({ state: 'connecting' });
      let token = this.token;
      if (typeof token === 'function') {
        try {
          token = await token();
        } catch (err) {
          if (gen !== this._generation || this._stopped) return;
          this._emit('error', err instanceof Error ? err : new Error(String(err)));
          this._scheduleReconnect(0, 'token function failed');
          return;
        }
        if (gen !== this._generation || this._stopped) return;
      }
      const WS = this.opts.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
      if (!WS) {
        this._stopped = true;
        this._emit('error', new Error('PushClient: no WebSocket implementation (pass options.WebSocket)'));
        this._setState({ state: 'closed', code: 0, reason: 'no WebSocket implementation' });
        return;
      }
      let ws;
      try {
        ws = new WS(this.socketURL(token));
      } catch (err) {
        this._emit('error', err);
        this._scheduleReconnect(0, String(err && err.message));
        return;
      }
      this._ws = ws;
      this._timers.connect = setTimeout(() => {
        if (gen === this._generation) this._dead('connect timeout');
      }, this.opts.connectTimeout);

      ws.onopen = () => {
        if (gen !== this._generation) return;
        this._clearTimer('connect');
        this._setState({ state: 'open' });
        this._timers.stable = setTimeout(() => {
          this.attempt = 0;
        }, this.opts.stableAfter);
        this._schedulePing(gen);
      };
      ws.onmessage = (ev) => {
        if (gen !== this._generation) return;
        this._clearTimer('pong'); // any frame proves the connection is alive
        this._frame(ev.data);
      };
      ws.onclose = (ev) => {
        if (gen !== this._generation) return;
        this._ws = null;
        this._closed(ev.code, ev.reason || '');
      };
      ws.onerror = () => {
        // Always followed by a close event, which carries the code; nothing to do here.
      };
    }

    _schedulePing(gen) {
      if (!this.opts.pingInterval) return;
      this._timers.ping = setTimeout(() => {
        if (gen !== this._generation || !this._ws) return;
        try {
          this._ws.send('{"type":"ping"}');
        } catch (err) {
          this._dead('ping failed');
          return;
        }
        this._timers.pong = setTimeout(() => {
          if (gen === this._generation) this._dead('no pong within ' + this.opts.pongTimeout + ' ms');
        }, this.opts.pongTimeout);
        this._schedulePing(gen);
      }, this.opts.pingInterval);
    }

    _frame(text) {
      let m;
      try {
        m = JSON.parse(text);
      } catch (err) {
        this._emit('error', new Error('pushlane: frame is not JSON: ' + String(text).slice(0, 100)));
        return;
      }
      if (!m || typeof m !== 'object' || Array.isArray(m)) return;
      if (m.type === 'pong') return;
      if (m.id === undefined || m.id === null) {
        if (m.broadcast || 'data' in m) this._emit('message', m);
        return;
      }
      const id = String(m.id);
      if (!CANONICAL_ID.test(id)) {
        this._emit('error', new Error('pushlane: message id is not a canonical id: ' + id.slice(0, 40)));
        this._emit('message', m);
        return;
      }
      if (this._seen.has(id)) return;
      // Ids up to options.since were seen by an earlier session of the app; the server does not
      // send them after since, so one arriving is a replay of a message the app already has.
      if (this._floor !== null && BigInt(id) <= this._floor) return;
      this._seen.add(id);
      if (this._seen.size > this.opts.dedupe) this._seen.delete(this._seen.values().next().value);
      if (this.lastId === null || BigInt(id) > BigInt(this.lastId)) this.lastId = id;
      this._emit('message', m);
    }

    // _dead drops a connection that stopped answering without waiting for a closing handshake
    // that may never come, and reconnects.
    _dead(reason) {
      const ws = this._ws;
      this._generation++;
      this._ws = null;
      if (ws) {
        try {
          ws.close();
        } catch (err) {
          // already closing
        }
      }
      this._closed(1006, reason);
    }

    _closed(code, reason) {
      this._clearTimers();
      if (this._stopped) return;
      if (this.opts.stopCodes.indexOf(code) >= 0) {
        this._stopped = true;
        this._setState({ state: 'closed', code: code, reason: reason });
        return;
      }
      this._scheduleReconnect(code, reason);
    }

    _scheduleReconnect(code, reason) {
      const ceiling = Math.min(this.opts.maxDelay, this.opts.minDelay * Math.pow(2, this.attempt));
      const delay = Math.floor(Math.random() * ceiling);
      this.attempt++;
      this._setState({ state: 'reconnecting', delay: delay, code: code, reason: reason });
      this._timers.retry = setTimeout(() => {
        if (!this._stopped) this._open();
      }, delay);
      if (typeof addEventListener === 'function' && !this._listening) {
        addEventListener('online', this._onOnline);
        this._listening = true;
      }
    }

    _teardown(code, reason) {
      this._generation++;
      this._clearTimers();
      const ws = this._ws;
      this._ws = null;
      if (ws) {
        try {
          ws.close(code, reason);
        } catch (err) {
          // already closing
        }
      }
      if (this._listening && typeof removeEventListener === 'function') {
        removeEventListener('online', this._onOnline);
        this._listening = false;
      }
    }
  }

  if (typeof module === 'object' && module && module.exports) module.exports = PushClient;
  else root.PushClient = PushClient;
})(typeof globalThis !== 'undefined' ? globalThis : this);
