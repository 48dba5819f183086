/*
 * pushlane console: the page at GET /. Plain DOM code, no framework, no build step; an ES module.
 * Subscribing goes through pushlane.js (PushClient), the same client applications use.
 * Rule of this file: text from the network or the user is only ever set with textContent or
 * append(string); nothing here parses strings as HTML.
 */
import { PushClient, validUserId } from '../pushlane.js';

(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const BASE = new URL('.', location.href); // API paths resolve against the console's own folder
  const USER_ID_RULE = '1 to 128 characters of A-Z a-z 0-9 . _ : @ - (not "." or "..")';
  const SINCE = /^(0|[1-9][0-9]{0,18})$/;
  const MAX_MESSAGES = 500;
  const MAX_LOG = 200;
  const CLOSE_REASONS = {
    1000: 'normal closure',
    1001: 'server shutting down',
    1006: 'connection lost or refused',
    1008: 'policy: token expired or refused',
    1009: 'frame too big',
    1011: 'server error',
    4000: 'removed by /deleteClient',
    4001: 'slow consumer: queue overflowed',
  };

  // ---------- small helpers ----------

  /** h builds an element; string children become text nodes (never parsed as HTML). */
  function h(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
    return e;
  }

  function url(path) {
    return new URL(path, BASE).href;
  }

  function wsURL(path) {
    const u = new URL(path, BASE);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }

  function pad(n, w) {
    return String(n).padStart(w || 2, '0');
  }

  function clock(d) {
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3);
  }

  function timeEl(iso) {
    const d = iso ? new Date(iso) : new Date();
    if (isNaN(d.getTime())) return h('time', {}, String(iso));
    return h('time', { datetime: d.toISOString(), title: d.toString() }, clock(d));
  }

  function showError(el, msg) {
    el.textContent = msg || '';
    el.hidden = !msg;
  }

  function setBadge(el, state, text) {
    el.dataset.state = state;
    el.textContent = text;
  }

  function closeText(code, reason) {
    const known = CLOSE_REASONS[code];
    let s = String(code);
    if (reason) s += ' ' + reason;
    else if (known) s += ' ' + known;
    return s;
  }

  function prependCapped(list, item, max) {
    list.prepend(item);
    while (list.children.length > max) list.lastElementChild.remove();
  }

  function shellQuote(s) {
    return "'" + String(s).replace(/'/g, "'\\''") + "'";
  }

  /**
   * renderJSON pretty-prints a decoded JSON value as colored spans (text nodes only). Short
   * arrays and objects of plain values stay on one line, as a person would write them.
   */
  function renderJSON(value) {
    const out = h('pre', { class: 'json' });
    const text = (s) => out.append(s);
    const span = (cls, s) => out.append(h('span', { class: cls }, s));
    const flat = (v) => Object.values(v).every((x) => x === null || typeof x !== 'object');
    const short = (v) => JSON.stringify(v).length <= 60;
    (function walk(v, ind) {
      if (v === null) span('z', 'null');
      else if (Array.isArray(v)) {
        if (!v.length) return text('[]');
        const inline = flat(v) && short(v);
        text(inline ? '[' : '[\n');
        v.forEach((x, i) => {
          if (!inline) text(ind + '  ');
          walk(x, ind + '  ');
          if (inline) text(i < v.length - 1 ? ', ' : '');
          else text((i < v.length - 1 ? ',' : '') + '\n');
        });
        text(inline ? ']' : ind + ']');
      } else if (typeof v === 'object') {
        const keys = Object.keys(v);
        if (!keys.length) return text('{}');
        const inline = ind !== '' && flat(v) && short(v);
        text(inline ? '{' : '{\n');
        keys.forEach((k, i) => {
          if (!inline) text(ind + '  ');
          span('k', JSON.stringify(k));
          text(': ');
          walk(v[k], ind + '  ');
          if (inline) text(i < keys.length - 1 ? ', ' : '');
          else text((i < keys.length - 1 ? ',' : '') + '\n');
        });
        text(inline ? '}' : ind + '}');
      } else if (typeof v === 'string') span('s', JSON.stringify(v));
      else if (typeof v === 'number') span('n', String(v));
      else if (typeof v === 'boolean') span('b', String(v));
      else text(String(v));
    })(value, '');
    return out;
  }

  // ---------- API key (sessionStorage, shared by Publish, Clients and Delivery status) ----------

  const KEY_STORE = 'pushlane.apiKey';
  function apiKey() {
    return sessionStorage.getItem(KEY_STORE) || '';
  }
  for (const input of document.querySelectorAll('.api-key')) {
    input.value = apiKey();
    input.addEventListener('input', () => {
      const v = input.value.trim();
      if (v) sessionStorage.setItem(KEY_STORE, v);
      else sessionStorage.removeItem(KEY_STORE);
      for (const other of document.querySelectorAll('.api-key')) if (other !== input) other.value = input.value;
      updatePublishCurl();
      if (input.id === 'status-key') watchStatus(true);
    });
  }

  /**
   * api calls the HTTP API and never throws: {ok, status, json, error, ms}. error is the server's
   * {"error"} text, or a description of what went wrong on the way.
   */
  async function api(method, path, body) {
    const headers = {};
    const key = apiKey();
    if (key) headers.Authorization = 'Bearer ' + key;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const t0 = performance.now();
    let res;
    try {
      res = await fetch(url(path), { method, headers, body, cache: 'no-store' });
    } catch (err) {
      return { ok: false, status: 0, json: null, error: 'server unreachable (' + err.message + ')', ms: 0 };
    }
    const text = await res.text().catch(() => '');
    const ms = Math.round(performance.now() - t0);
    let json = null;
    try {
      json = JSON.parse(text);
    } catch (err) {
      // not JSON: reported below through error
    }
    let error = null;
    if (!res.ok) {
      error = (json && typeof json.error === 'string' && json.error) || text.trim() || res.statusText;
      if (res.status === 401) error += ' (set the API key)';
    }
    return { ok: res.ok, status: res.status, statusText: res.statusText, json, error, ms };
  }

  // ---------- tabs ----------

  const tabs = Array.from(document.querySelectorAll('.tabs a'));
  const onTab = {};
  function showTab() {
    const name = (location.hash || '#subscribe').slice(1);
    const known = tabs.some((t) => t.dataset.tab === name) ? name : 'subscribe';
    for (const t of tabs) t.setAttribute('aria-selected', String(t.dataset.tab === known));
    for (const p of document.querySelectorAll('.panel')) p.hidden = p.dataset.panel !== known;
    if (onTab[known]) onTab[known]();
  }
  window.addEventListener('hashchange', showTab);

  // ---------- server health ----------

  // Every 10 s while the server is healthy, every 2 s while it is not, and at once when the
  // subscription's state changes, so the header never contradicts the badge for long.
  let healthTimer = null;
  async function checkHealth() {
    clearTimeout(healthTimer);
    const el = $('health');
    const r = await api('GET', 'healthz');
    if (r.ok) {
      // First answer, or back after being down (a restart may have changed demo.enabled).
      if (el.dataset.state !== 'ok') checkDemos();
      el.dataset.state = 'ok';
      $('health-text').textContent = 'server ok · ' + location.host;
    } else {
      el.dataset.state = 'down';
      $('health-text').textContent = r.status ? 'server unhealthy: ' + r.error : 'server unreachable';
    }
    clearTimeout(healthTimer);
    healthTimer = setTimeout(checkHealth, r.ok ? 10000 : 2000);
  }
  window.addEventListener('focus', checkHealth);

  // ---------- Subscribe ----------

  const sub = { client: null, offs: [], count: 0, countdown: null, everOpen: false, probed: false };

  function subLog(text, cls) {
    prependCapped($('sub-log'), h('li', { class: cls }, timeEl(), h('span', {}, text)), MAX_LOG);
  }

  function updateSubCurl() {
    const user = $('sub-user').value.trim() || 'alice';
    const body = JSON.stringify({ userId: user, data: { title: 'Hello', body: 'from curl' } });
    $('sub-curl').textContent =
      'curl -X POST ' + shellQuote(url('pushNews')) + ' \\\n' +
      "  -H 'Content-Type: application/json' \\\n" +
      (apiKey() ? '  -H "Authorization: Bearer $PUSH_API_KEY" \\\n' : '') +
      '  -d ' + shellQuote(body);
  }

  function subButtons(state) {
    const active = state === 'connecting' || state === 'open' || state === 'reconnecting';
    $('sub-connect').disabled = active;
    $('sub-disconnect').disabled = !active;
  }

  const TRANSPORT_NAMES = { websocket: 'WebSocket', sse: 'Server-Sent Events' };

  function onSubState(s) {
    const badge = $('sub-state');
    clearInterval(sub.countdown);
    subButtons(s.state);
    badge.dataset.transport = s.transport;
    switch (s.state) {
      case 'connecting': {
        setBadge(badge, 'connecting', s.attempt > 1 ? 'connecting (try ' + s.attempt + ')' : 'connecting…');
        const u = s.transport === 'sse' ? sub.client.streamURL('') : sub.client.socketURL('');
        subLog('connecting (' + TRANSPORT_NAMES[s.transport] + ') to ' + u.replace(/^(wss?|https?):\/\/[^/]+/, ''), 'sys');
        break;
      }
      case 'open':
        checkHealth();
        sub.everOpen = true;
        setBadge(badge, 'open', s.transport === 'sse' ? 'open · SSE' : 'open');
        showError($('sub-error'), '');
        subLog('open (' + TRANSPORT_NAMES[s.transport] + (s.transport === 'sse' ? ', no acks' : ', protocol version 2') + ')', 'sys');
        watchStatus();
        break;
      case 'reconnecting': {
        const until = Date.now() + s.delay;
        const tick = () => {
          const left = Math.max(0, until - Date.now());
          setBadge(badge, 'reconnecting', 'reconnecting in ' + (left / 1000).toFixed(1) + 's');
        };
        tick();
        sub.countdown = setInterval(tick, 100);
        badge.dataset.delay = String(s.delay);
        if (s.attempt === 1) checkHealth();
        subLog('closed ' + closeText(s.code, s.reason) + '; retry in ' + (s.delay / 1000).toFixed(1) + 's', 'bad');
        if (s.code === 1006 && !sub.everOpen && !sub.probed) explainRefusal();
        break;
      }
      case 'closed':
        setBadge(badge, 'closed', 'closed ' + closeText(s.code, s.reason));
        subLog('closed ' + closeText(s.code, s.reason), s.code === 1000 ? 'sys' : 'bad');
        if (s.code === 4000) {
          showError($('sub-error'), 'An operator removed this user (DELETE /deleteClient). Press Connect to subscribe again; messages stored meanwhile are replayed.');
        } else if (s.code === 1008) {
          showError($('sub-error'), 'The token expired or was refused. Paste a fresh token and press Connect.');
        }
        break;
    }
  }

  /**
   * explainRefusal: browsers hide why a WebSocket handshake failed (every refusal looks like 1006),
   * so ask the same URL over plain HTTP, which answers userId and since problems as JSON.
   */
  async function explainRefusal() {
    sub.probed = true;
    const client = sub.client;
    const r = await api('GET', client.socketURL('').replace(/^ws/, 'http'));
    if (client !== sub.client || sub.everOpen) return;
    let msg;
    if (r.status === 0) msg = 'The server cannot be reached. It may be down or restarting; the client keeps retrying.';
    else if (r.status === 400 && /websocket/i.test(r.error || '')) {
      msg = 'The server refused the WebSocket. If auth.jwtSecret is set, check the token (its sub must equal the user ID and it must not be expired); ' +
        'also check websocket.allowedOrigins and the connection limits. The client keeps retrying.';
    } else msg = 'The server refused the subscription: ' + r.status + ' ' + r.error;
    showError($('sub-error'), msg);
  }

  function onSubMessage(m) {
    // The client acknowledges the message when this returns; the status table then shows it acked.
    if (m.id !== undefined && m.id !== null) watchStatus();
    sub.count++;
    $('msg-count').textContent = String(sub.count);
    $('msg-empty').hidden = true;
    // The client moves lastId (the since of its next connection) once this listener returns.
    if (m.id !== undefined && m.id !== null) $('msg-last').textContent = 'last id ' + String(m.id);
    const head = h('div', { class: 'msg-head' },
      m.id !== undefined && m.id !== null
        ? h('span', { class: 'msg-id' }, '#' + String(m.id))
        : h('span', { class: 'tag' }, 'broadcast'),
      timeEl(m.createdAt),
      h('span', { class: 'msg-meta' }, 'to ' + String(m.userId || '')));
    const item = h('li', {
      class: 'msg fresh',
      'data-id': m.id !== undefined && m.id !== null ? String(m.id) : null,
      'data-broadcast': m.broadcast ? 'true' : null,
    }, head, renderJSON(m.data));
    prependCapped($('messages'), item, MAX_MESSAGES);
  }

  function dropClient() {
    for (const off of sub.offs) off();
    sub.offs = [];
    if (sub.client) sub.client.close();
    sub.client = null;
  }

  $('sub-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const userEl = $('sub-user');
    const sinceEl = $('sub-since');
    const userId = userEl.value.trim();
    const since = sinceEl.value.trim();
    const token = $('sub-token').value.trim();
    userEl.setAttribute('aria-invalid', String(!validUserId(userId)));
    sinceEl.setAttribute('aria-invalid', String(since !== '' && !SINCE.test(since)));
    if (!validUserId(userId)) {
      showError($('sub-error'), 'User ID: ' + USER_ID_RULE);
      userEl.focus();
      return;
    }
    if (since !== '' && !SINCE.test(since)) {
      showError($('sub-error'), 'Resume after id: a message id (digits, no leading zeros) or 0 for every stored message.');
      sinceEl.focus();
      return;
    }
    showError($('sub-error'), '');
    localStorage.setItem('pushlane.userId', userId);
    sub.everOpen = false;
    sub.probed = false;
    // Same user again (after Disconnect, a 4000 or a 1008): keep the client, which resumes from
    // the last id it saw. A new user or an explicit since starts a new client.
    const transport = $('sub-transport').value;
    if (sub.client && sub.client.userId === userId && since === '' && sub.client.opts.transport === transport) {
      sub.client.setToken(token);
      sub.client.connect();
      return;
    }
    dropClient();
    let client;
    try {
      client = new PushClient(BASE.href, { userId, token, since, transport, autoConnect: false });
    } catch (err) {
      showError($('sub-error'), err.message);
      return;
    }
    sub.client = client;
    $('msg-last').textContent = since ? 'last id ' + since : '';
    sub.offs.push(client.on('state', onSubState), client.on('message', onSubMessage),
      client.on('error', (err) => subLog(err.message, 'bad')),
      client.on('resync', (e) => subLog('the server could not resume from ' + (e.previousSince || 'the stored cursor') +
        ' (epoch ' + (e.previousEpoch || '?') + ', now ' + (e.epoch || '?') + '): every stored message follows', 'bad')));
    watchStatus();
    sinceEl.value = '';
    client.connect();
  });

  $('sub-disconnect').addEventListener('click', () => {
    if (sub.client) sub.client.close();
  });

  $('msg-clear').addEventListener('click', () => {
    $('messages').replaceChildren();
    sub.count = 0;
    $('msg-count').textContent = '0';
    $('msg-empty').hidden = false;
  });

  $('sub-user').addEventListener('input', () => {
    updateSubCurl();
    watchStatus(true);
  });
  $('sub-curl-copy').addEventListener('click', async () => {
    const btn = $('sub-curl-copy');
    try {
      await navigator.clipboard.writeText($('sub-curl').textContent);
      btn.textContent = 'Copied';
    } catch (err) {
      getSelection().selectAllChildren($('sub-curl'));
      btn.textContent = 'Press Ctrl+C';
    }
    setTimeout(() => (btn.textContent = 'Copy'), 1500);
  });

  // ---------- Delivery status (GET /messages/:userId) ----------

  /**
   * The status table shows the newest MAX_STATUS stored messages of the user in the Subscribe form.
   * Bounded work: one request at a time, at most one a second, and only for STATUS_WATCH ms after
   * something that changes statuses (a message shown, a connection opened, a publish from this
   * page, the user field) or a click on Refresh. A refresh asks for the messages above floor (just
   * below the oldest row shown), so it reads about MAX_STATUS messages, not the whole history; the
   * first one pages through the user's stored messages (at most STATUS_PAGES pages).
   */
  const MAX_STATUS = 50;
  const STATUS_PAGE = 1000; // the server's largest limit
  const STATUS_PAGES = 10;
  const STATUS_WATCH = 8000;
  const status = { user: '', floor: '0', until: 0, timer: null, busy: false };

  function statusUser() {
    const u = $('sub-user').value.trim();
    return validUserId(u) ? u : '';
  }

  /** watchStatus keeps the table refreshing for a while; userChanged restarts it from scratch. */
  function watchStatus(userChanged) {
    status.until = Date.now() + STATUS_WATCH;
    if (userChanged) {
      clearTimeout(status.timer);
      status.timer = setTimeout(refreshStatus, 300); // after typing pauses
      return;
    }
    if (status.timer === null && !status.busy) status.timer = setTimeout(refreshStatus, 0);
  }

  async function refreshStatus() {
    status.timer = null;
    if (status.busy) return;
    status.busy = true;
    try {
      await loadStatus();
    } finally {
      status.busy = false;
    }
    if (Date.now() < status.until) status.timer = setTimeout(refreshStatus, 1000);
  }

  async function loadStatus() {
    const user = statusUser();
    $('status-user').textContent = user || 'the user above';
    if (user !== status.user) {
      status.user = user;
      status.floor = '0';
      $('status-table').tBodies[0].replaceChildren();
      $('status-count').textContent = '0';
      $('status-epoch').textContent = '';
    }
    if (!user || document.hidden) return;
    let rows = [];
    let since = status.floor;
    let epoch = '';
    for (let page = 0; page < STATUS_PAGES; page++) {
      const q = 'messages/' + encodeURIComponent(user) + '?since=' + since + '&limit=' + STATUS_PAGE;
      const r = await api('GET', q);
      if (user !== statusUser()) return; // the field changed meanwhile: the next refresh starts over
      if (!r.ok) {
        showError($('status-error'), 'GET /' + q + ': ' + (r.status || '') + ' ' + r.error);
        return;
      }
      const msgs = Array.isArray(r.json.messages) ? r.json.messages : [];
      epoch = String(r.json.epoch || '');
      rows = rows.concat(msgs).slice(-MAX_STATUS);
      if (msgs.length < STATUS_PAGE) break;
      since = String(msgs[msgs.length - 1].id);
    }
    showError($('status-error'), '');
    status.floor = rows.length ? (BigInt(rows[0].id) - 1n).toString() : status.floor;
    $('status-epoch').textContent = epoch ? 'epoch ' + epoch : '';
    $('status-count').textContent = String(rows.length);
    $('status-empty').hidden = rows.length > 0;
    $('status-table').tBodies[0].replaceChildren(...rows.reverse().map(statusRow));
  }

  function whenCell(iso) {
    return h('td', {}, iso ? timeEl(iso) : '–');
  }

  function statusRow(m) {
    const st = String(m.status);
    let data = JSON.stringify(m.data);
    if (data.length > 80) data = data.slice(0, 79) + '…';
    return h('tr', { 'data-id': String(m.id), 'data-status': st },
      h('td', { class: 'mono' }, '#' + String(m.id)),
      h('td', {}, h('span', { class: 'st', 'data-status': st }, st)),
      whenCell(m.createdAt), whenCell(m.sentAt), whenCell(m.ackedAt),
      h('td', { class: 'data' }, data));
  }

  $('status-refresh').addEventListener('click', () => watchStatus());

  // ---------- Publish ----------

  function publishTarget() {
    return document.querySelector('input[name="target"]:checked').value;
  }

  /** checkData validates the data field; returns the trimmed JSON text or null. */
  function checkData() {
    const area = $('pub-data');
    const status = $('pub-data-status');
    const text = area.value.trim();
    let problem = '';
    if (!text) problem = 'data is required';
    else {
      try {
        if (JSON.parse(text) === null) problem = 'null is not accepted as data';
      } catch (err) {
        problem = 'not valid JSON: ' + err.message;
      }
    }
    status.textContent = problem || 'valid JSON';
    status.className = 'hint ' + (problem ? 'invalid' : 'valid');
    area.setAttribute('aria-invalid', String(!!problem));
    return problem ? null : text;
  }

  /** publishRequest builds path and body from the form, or returns {error}. */
  function publishRequest() {
    const data = checkData();
    if (data === null) return { error: 'Fix the data field: ' + $('pub-data-status').textContent };
    if (publishTarget() === 'broadcast') return { path: 'broadcast', body: '{"data":' + data + '}' };
    const users = $('pub-users').value.split(',').map((s) => s.trim()).filter(Boolean);
    if (!users.length) return { error: 'Enter at least one user ID.' };
    const bad = users.find((u) => !validUserId(u));
    if (bad !== undefined) return { error: 'Not a valid user ID: ' + bad + ' (' + USER_ID_RULE + ')' };
    if (users.length > 1000) return { error: 'At most 1000 user IDs per request.' };
    // data is spliced in as typed (it parsed as JSON), so big numbers keep every digit.
    let body = users.length === 1 ? '{"userId":' + JSON.stringify(users[0]) : '{"userIds":' + JSON.stringify(users);
    body += ',"data":' + data;
    const ttl = $('pub-ttl').value.trim();
    if (ttl) body += ',"ttl":' + JSON.stringify(ttl);
    return { path: 'pushNews', body: body + '}' };
  }

  function updatePublishCurl() {
    updateSubCurl();
    const req = publishRequest();
    $('pub-users-row').hidden = publishTarget() === 'broadcast';
    $('pub-ttl-row').hidden = publishTarget() === 'broadcast';
    if (req.error) {
      $('pub-curl').textContent = '# ' + req.error;
      return;
    }
    $('pub-curl').textContent =
      'curl -X POST ' + shellQuote(url(req.path)) + ' \\\n' +
      "  -H 'Content-Type: application/json' \\\n" +
      (apiKey() ? '  -H "Authorization: Bearer $PUSH_API_KEY" \\\n' : '') +
      '  -d ' + shellQuote(req.body);
  }

  async function publish() {
    const result = $('pub-result');
    const req = publishRequest();
    if (req.error) {
      result.replaceChildren(h('p', { class: 'error', role: 'alert' }, req.error));
      return;
    }
    const btn = $('pub-send');
    btn.disabled = true;
    result.replaceChildren(h('p', { class: 'hint' }, 'Sending…'));
    const r = await api('POST', req.path, req.body);
    btn.disabled = false;
    const status = r.status ? r.status + ' ' + (r.statusText || '') : 'network error';
    const line = h('p', { class: 'status ' + (r.ok ? 'ok' : 'bad') }, status.trim() + (r.ms ? ' · ' + r.ms + ' ms' : ''));
    if (r.ok) {
      result.replaceChildren(line, renderJSON(r.json));
      if (req.path === 'pushNews') watchStatus();
    } else {
      result.replaceChildren(line, h('p', { class: 'error', role: 'alert' }, r.error || 'request failed'));
    }
  }

  $('pub-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    publish();
  });
  $('pub-data').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      publish();
    }
  });
  for (const id of ['pub-data', 'pub-users', 'pub-ttl']) $(id).addEventListener('input', updatePublishCurl);
  for (const r of document.querySelectorAll('input[name="target"]')) r.addEventListener('change', updatePublishCurl);

  // ---------- Clients ----------

  const clients = { offset: 0, limit: 50, timer: null };

  async function loadClients() {
    const q = 'clients?limit=' + clients.limit + '&offset=' + clients.offset;
    const r = await api('GET', q);
    const body = $('clients-table').tBodies[0];
    if (!r.ok) {
      showError($('clients-error'), 'GET /' + q + ': ' + (r.status || '') + ' ' + r.error);
      return;
    }
    showError($('clients-error'), '');
    const users = Array.isArray(r.json.users) ? r.json.users : [];
    const total = Number(r.json.total) || 0;
    $('clients-total').textContent = String(total);
    if (clients.offset > 0 && clients.offset >= total) {
      clients.offset = Math.max(0, total - clients.limit);
      return loadClients();
    }
    body.replaceChildren(...users.map(clientRow));
    $('clients-empty').hidden = users.length > 0;
    $('clients-page').textContent = total ? (clients.offset + 1) + '–' + (clients.offset + users.length) + ' of ' + total : '';
    $('clients-prev').disabled = clients.offset === 0;
    $('clients-next').disabled = clients.offset + users.length >= total;
  }

  function clientRow(u) {
    const userId = String(u.userId);
    const del = h('button', { type: 'button', class: 'small danger', 'data-action': 'delete' }, 'Delete');
    let armed = null;
    del.addEventListener('click', async () => {
      if (!armed) {
        // Two clicks instead of confirm(): nothing modal, and a stray click does nothing.
        del.textContent = 'Confirm delete';
        del.classList.add('confirm');
        armed = setTimeout(() => {
          armed = null;
          del.textContent = 'Delete';
          del.classList.remove('confirm');
        }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      del.disabled = true;
      const purge = $('clients-purge').checked;
      const r = await api('DELETE', 'deleteClient/' + encodeURIComponent(userId) + (purge ? '?purge=true' : ''));
      if (!r.ok) {
        showError($('clients-error'), 'DELETE /deleteClient/' + userId + ': ' + (r.status || '') + ' ' + r.error);
        del.disabled = false;
        del.textContent = 'Delete';
        del.classList.remove('confirm');
        return;
      }
      showDetail(h('h2', {}, 'Removed ' + userId),
        h('p', {}, 'Closed ' + r.json.closed + ' connection(s) with code 4000' +
          (purge ? '; purged ' + (r.json.purged || 0) + ' stored message(s).' : '. Stored messages were kept.')));
      loadClients();
    });
    const details = h('button', { type: 'button', class: 'small', 'data-action': 'details', onclick: () => loadDetail(userId) }, 'Details');
    return h('tr', { 'data-user': userId },
      h('td', { class: 'mono' }, userId),
      h('td', { class: 'num' }, String(u.connections)),
      h('td', { class: 'right' }, details, del));
  }

  function showDetail(...children) {
    const card = $('client-detail');
    card.replaceChildren(...children);
    card.hidden = false;
  }

  async function loadDetail(userId) {
    const r = await api('GET', 'clients/' + encodeURIComponent(userId));
    if (!r.ok) {
      showDetail(h('h2', {}, userId), h('p', { class: 'error' }, (r.status || '') + ' ' + r.error));
      return;
    }
    const conns = Array.isArray(r.json.connections) ? r.json.connections : [];
    const rows = conns.map((c) => h('tr', {},
      h('td', { class: 'mono' }, String(c.id)),
      h('td', { class: 'mono' }, String(c.remoteAddr)),
      h('td', {}, c.connectedAt ? new Date(c.connectedAt).toLocaleString() : ''),
      h('td', { class: 'num' }, String(c.messagesSent))));
    showDetail(
      h('div', { class: 'card-head' }, h('h2', {}, userId), h('span', { class: 'hint' }, 'GET /clients/' + userId)),
      h('p', {}, conns.length + ' connection(s), ' + r.json.pending + ' unread message(s) pending.'),
      conns.length ? h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Connection'), h('th', {}, 'Remote address'), h('th', {}, 'Connected'), h('th', { class: 'num' }, 'Sent'))),
        h('tbody', {}, ...rows)) : null);
  }

  $('clients-refresh').addEventListener('click', loadClients);
  $('clients-prev').addEventListener('click', () => {
    clients.offset = Math.max(0, clients.offset - clients.limit);
    loadClients();
  });
  $('clients-next').addEventListener('click', () => {
    clients.offset += clients.limit;
    loadClients();
  });
  $('clients-auto').addEventListener('change', (ev) => {
    clearInterval(clients.timer);
    if (ev.target.checked) {
      clients.timer = setInterval(() => {
        if (!$('tab-clients').hidden && !document.hidden) loadClients();
      }, 5000);
    }
  });
  onTab.clients = loadClients;

  // ---------- Echo, Chat, Tail: plain WebSockets to the demo endpoints ----------

  /**
   * probe asks path over plain HTTP why its WebSocket did not open (404 no such route, 400
   * unknown file, ...). A 2xx or a stream is not read: the request is dropped after the headers.
   */
  async function probe(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 3000);
    try {
      const res = await fetch(url(path), { cache: 'no-store', signal: ctl.signal });
      if (res.ok) {
        ctl.abort();
        return 'the WebSocket handshake failed (HTTP ' + res.status + ')';
      }
      const text = await res.text();
      let err = text.trim();
      try {
        err = JSON.parse(text).error || err;
      } catch (e) {
        // plain text error
      }
      if (res.status === 404 && /route/i.test(err)) return '404: this server has no ' + path.split('?')[0] + ' endpoint';
      return res.status + ': ' + err;
    } catch (err) {
      return 'the server cannot be reached';
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * checkDemos asks GET /echo whether the server serves the demonstration routes: 404 means
   * demo.enabled is false (API.md "Demonstration routes"); anything else (400 for a GET that is
   * no WebSocket, 401 without the API key) means they are there. While they are off, their tabs
   * look disabled and their panels say how to turn them on.
   */
  const demosOff = { echo: null, chat: null, tail: null };
  async function checkDemos() {
    const r = await api('GET', 'echo');
    if (r.status === 0) return; // unreachable: keep what we knew
    const off = r.status === 404;
    for (const name of Object.keys(demosOff)) {
      demosOff[name] = off;
      const tabEl = document.querySelector('.tabs a[data-tab="' + name + '"]');
      if (off) {
        tabEl.setAttribute('aria-disabled', 'true');
        tabEl.title = 'off on this server: set demo.enabled: true';
      } else {
        tabEl.removeAttribute('aria-disabled');
        tabEl.title = '';
      }
      $('demo-off-' + name).hidden = !off;
      const active = name === 'echo' ? echo.ws : name === 'chat' ? chat.ws : tail.ws;
      if (!active) $(name + '-connect').disabled = off;
    }
  }

  /** demoPath adds the API key as ?key= (a browser cannot set headers on a WebSocket). */
  function demoPath(path) {
    const key = apiKey();
    if (!key) return path;
    return path + (path.indexOf('?') >= 0 ? '&' : '?') + 'key=' + encodeURIComponent(key);
  }

  /** DemoSocket wires one WebSocket to a badge, an error line and connect/disconnect buttons. */
  class DemoSocket {
    constructor(prefix, handlers) {
      this.prefix = prefix;
      this.handlers = handlers;
      this.ws = null;
      $(prefix + '-disconnect').addEventListener('click', () => this.close());
    }

    open(path) {
      this.close();
      const badge = $(this.prefix + '-state');
      const error = $(this.prefix + '-error');
      showError(error, '');
      setBadge(badge, 'connecting', 'connecting…');
      let ws;
      try {
        ws = new WebSocket(wsURL(demoPath(path)));
      } catch (err) {
        setBadge(badge, 'closed', 'failed');
        showError(error, err.message);
        return;
      }
      this.ws = ws;
      let opened = false;
      this.buttons(true);
      ws.onopen = () => {
        opened = true;
        setBadge(badge, 'open', 'open');
        if (this.handlers.open) this.handlers.open();
      };
      ws.onmessage = (ev) => this.handlers.message(typeof ev.data === 'string' ? ev.data : '[binary frame]');
      ws.onclose = async (ev) => {
        if (this.ws === ws) this.ws = null;
        this.buttons(false);
        setBadge(badge, 'closed', 'closed ' + closeText(ev.code, ev.reason));
        if (this.handlers.close) this.handlers.close(ev);
        if (!opened && !ev.wasClean) showError(error, 'Could not open /' + path + ': ' + (await probe(demoPath(path))));
      };
    }

    buttons(active) {
      $(this.prefix + '-connect').disabled = active || demosOff[this.prefix] === true;
      $(this.prefix + '-disconnect').disabled = !active;
      for (const el of document.querySelectorAll('#' + this.prefix + '-form input, #' + this.prefix + '-form button')) {
        if (this.prefix !== 'tail') el.disabled = !active;
      }
    }

    send(text) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(text);
      return true;
    }

    close() {
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        ws.close(1000, 'closed by user');
      }
    }
  }

  // Echo
  const echoLog = (dir, text) => prependCapped($('echo-log'), h('li', { class: dir }, timeEl(), h('span', {}, text)), MAX_LOG);
  const echo = new DemoSocket('echo', {
    open: () => {
      echoLog('sys', 'connected to /echo');
      $('echo-input').focus();
    },
    message: (text) => echoLog('in', text),
    close: (ev) => echoLog('sys', 'closed ' + closeText(ev.code, ev.reason)),
  });
  $('echo-connect').addEventListener('click', () => echo.open('echo'));
  $('echo-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('echo-input');
    if (!input.value) return;
    if (echo.send(input.value)) echoLog('out', input.value);
    input.value = '';
  });

  // Chat
  const chatName = $('chat-name');
  chatName.value = localStorage.getItem('pushlane.chatName') || '';
  function chatLine(cls, ...parts) {
    const list = $('chat-log');
    list.append(h('li', { class: cls }, timeEl(), ...parts));
    while (list.children.length > MAX_LOG) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
  }
  const chat = new DemoSocket('chat', {
    open: () => {
      chatName.disabled = true;
      chatLine('sys', h('span', {}, 'joined as ' + chatName.value.trim()));
      $('chat-input').focus();
    },
    message: (text) => {
      let m = null;
      try {
        m = JSON.parse(text);
      } catch (err) {
        // not JSON: shown as is
      }
      if (m && typeof m === 'object' && typeof m.text === 'string') {
        const who = typeof m.username === 'string' && m.username ? m.username : 'anonymous';
        chatLine(who === chatName.value.trim() ? 'mine' : '', h('span', { class: 'who' }, who), h('span', {}, m.text));
      } else chatLine('sys', h('span', {}, text));
    },
    close: (ev) => {
      chatName.disabled = false;
      chatLine('sys', h('span', {}, 'left (' + closeText(ev.code, ev.reason) + ')'));
    },
  });
  $('chat-connect').addEventListener('click', () => {
    const name = chatName.value.trim();
    if (!name) {
      showError($('chat-error'), 'Choose a name first.');
      chatName.focus();
      return;
    }
    localStorage.setItem('pushlane.chatName', name);
    chat.open('chat');
  });
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text) return;
    if (chat.send(JSON.stringify({ username: chatName.value.trim(), text }))) input.value = '';
  });

  // Tail
  const tailOut = $('tail-out');
  const MAX_TAIL = 5000;
  function tailAppend(text) {
    tailOut.append(text.endsWith('\n') ? text : text + '\n');
    while (tailOut.childNodes.length > MAX_TAIL) tailOut.firstChild.remove();
    if ($('tail-scroll').checked) tailOut.scrollTop = tailOut.scrollHeight;
  }
  const tail = new DemoSocket('tail', {
    message: (text) => {
      let line = text;
      try {
        const m = JSON.parse(text);
        if (m && typeof m === 'object' && typeof (m.line ?? m.text) === 'string') line = m.line ?? m.text;
      } catch (err) {
        // plain text line
      }
      tailAppend(line);
    },
  });
  $('tail-file').value = localStorage.getItem('pushlane.tailFile') || '';
  $('tail-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const file = $('tail-file').value.trim();
    if (!file) {
      showError($('tail-error'), 'Enter the name of a file listed in tail.files.');
      $('tail-file').focus();
      return;
    }
    localStorage.setItem('pushlane.tailFile', file);
    tail.open('tail?file=' + encodeURIComponent(file));
  });
  $('tail-clear').addEventListener('click', () => tailOut.replaceChildren());

  // ---------- start ----------

  $('sub-user').value = localStorage.getItem('pushlane.userId') || '';
  $('pub-users').value = $('sub-user').value;
  updatePublishCurl();
  showTab();
  checkHealth();
})();
