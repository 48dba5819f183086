/*
 * pushlane console, Web Push card: "Enable notifications" for the user of the Subscribe form
 * (PushClient.enableWebPush in pushlane.js), and that user's push subscriptions with a Remove
 * button each (GET and DELETE /webpush/subscriptions). Self-contained: it reads the user and
 * token from the Subscribe form and owns only the elements whose ids start with "webpush-".
 * Text from the network is only ever set with textContent.
 */
import { PushClient, validUserId } from '../pushlane.js';

(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const BASE = new URL('.', location.href);
  const card = $('webpush-card');
  if (!card) return;
  const enableBtn = $('webpush-enable');
  const refreshBtn = $('webpush-refresh');
  const errorEl = $('webpush-error');
  const noteEl = $('webpush-note');
  const tbody = $('webpush-table').querySelector('tbody');
  const emptyEl = $('webpush-empty');
  const countEl = $('webpush-count');
  const userEl = $('webpush-user');

  function showError(msg) {
    errorEl.textContent = msg || '';
    errorEl.hidden = !msg;
  }

  /** client is a PushClient for the Subscribe form's user (never connected: only its Web Push calls). */
  function client() {
    const userId = $('sub-user').value.trim();
    if (!validUserId(userId)) throw new Error('Enter a valid user id in the Subscribe form first.');
    const token = $('sub-token').value.trim();
    return new PushClient(BASE.href, { userId, token, autoConnect: false });
  }

  function row(sub, c) {
    const tr = document.createElement('tr');
    const origin = document.createElement('td');
    origin.className = 'mono';
    origin.textContent = sub.origin;
    const since = document.createElement('td');
    const d = new Date(sub.createdAt);
    since.textContent = isNaN(d.getTime()) ? String(sub.createdAt) : d.toLocaleString();
    const id = document.createElement('td');
    id.className = 'mono';
    id.textContent = sub.id;
    const actions = document.createElement('td');
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'small';
    remove.textContent = 'Remove';
    remove.addEventListener('click', async () => {
      remove.disabled = true;
      try {
        await c.deleteWebPushSubscription(sub.id);
        showError('');
      } catch (err) {
        showError('Remove: ' + err.message);
      }
      refresh();
    });
    actions.append(remove);
    tr.append(origin, since, id, actions);
    return tr;
  }

  async function refresh() {
    let c;
    try {
      c = client();
    } catch (err) {
      userEl.textContent = 'the user above';
      tbody.replaceChildren();
      countEl.textContent = '0';
      emptyEl.hidden = false;
      return;
    }
    userEl.textContent = c.userId;
    try {
      const subs = await c.webPushSubscriptions();
      tbody.replaceChildren(...subs.map((s) => row(s, c)));
      countEl.textContent = String(subs.length);
      emptyEl.hidden = subs.length > 0;
      showError('');
    } catch (err) {
      showError('Subscriptions: ' + err.message);
    }
  }

  enableBtn.addEventListener('click', async () => {
    enableBtn.disabled = true;
    try {
      const c = client();
      const res = await c.enableWebPush({ serviceWorker: new URL('pushlane-sw.js', BASE).href, scope: BASE.href });
      noteEl.textContent = (res.created ? 'Notifications enabled: subscription ' : 'Already enabled: subscription ') + res.id;
      showError('');
    } catch (err) {
      showError('Enable notifications: ' + err.message);
    } finally {
      enableBtn.disabled = false;
    }
    refresh();
  });
  refreshBtn.addEventListener('click', refresh);
  $('sub-user').addEventListener('change', refresh);

  // Is Web Push on here? GET /webpush/vapidPublicKey answers 404 when webpush.enabled is false.
  fetch(new URL('webpush/vapidPublicKey', BASE).href).then((res) => {
    card.dataset.webpush = res.ok ? 'on' : 'off';
    if (!res.ok) {
      enableBtn.disabled = true;
      refreshBtn.disabled = true;
      noteEl.textContent = 'Web Push is off on this server (webpush.enabled, see docs/webpush.md).';
      return;
    }
    if (!('serviceWorker' in navigator) || typeof PushManager === 'undefined') {
      noteEl.textContent = 'This browser cannot receive Web Push here (it needs service workers and a secure origin: https or localhost).';
    }
    refresh();
  }, () => {
    card.dataset.webpush = 'unknown';
  });
})();
