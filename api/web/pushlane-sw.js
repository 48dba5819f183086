/*
 * pushlane-sw.js: the service worker of pushlane's Web Push (docs/webpush.md). It shows a
 * notification for every push, also when no tab of the site is open, and opens or focuses the
 * message's page when the notification is clicked.
 *
 * A push's payload is the message's WebSocket frame, {"id","userId","data","createdAt"}, or for a
 * message too large to push {"id","userId","createdAt","truncated":true}. The notification shows
 * data.title and data.body when data is an object that has them, else "New message". A click
 * opens (or focuses, when a tab shows it already) data.url when it is on this site, else "/".
 *
 * Register it from a page of the same origin, at the root so that it controls the whole site:
 *   navigator.serviceWorker.register('/pushlane-sw.js')
 * (PushClient.enableWebPush() in /pushlane.js does it.)
 */
'use strict';

/** notificationOf turns a push payload (parsed JSON, or null) into a title and options. */
function notificationOf(payload) {
  const msg = payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : {};
  const data = msg.data && typeof msg.data === 'object' && !Array.isArray(msg.data) ? msg.data : {};
  const title = typeof data.title === 'string' && data.title !== '' ? data.title : 'New message';
  const options = {
    data: { url: typeof data.url === 'string' ? data.url : '/', id: msg.id, userId: msg.userId },
  };
  if (typeof data.body === 'string' && data.body !== '') options.body = data.body;
  if (typeof msg.id === 'string') options.tag = 'pushlane-' + msg.id; // one notification per message
  return { title, options };
}

/** targetOf is the page a click opens: url when it is on origin, else origin's "/". */
function targetOf(url, origin) {
  if (typeof url !== 'string' || url === '') return new URL('/', origin).href;
  try {
    const u = new URL(url, origin);
    if (u.origin === origin) return u.href;
  } catch (e) {
    // not a URL: the home page
  }
  return new URL('/', origin).href;
}

if (typeof self !== 'undefined' && typeof self.registration !== 'undefined') {
  self.addEventListener('install', () => self.skipWaiting());
  self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

  self.addEventListener('push', (event) => {
    let payload = null;
    try {
      payload = event.data ? event.data.json() : null;
    } catch (e) {
      payload = null; // not JSON: the generic notification
    }
    const n = notificationOf(payload);
    event.waitUntil(self.registration.showNotification(n.title, n.options));
  });

  self.addEventListener('notificationclick', (event) => {
    event.notification.close();
    const data = event.notification.data || {};
    const target = targetOf(data.url, self.location.origin);
    event.waitUntil((async () => {
      const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      for (const tab of tabs) {
        if (tab.url === target && 'focus' in tab) return tab.focus();
      }
      return self.clients.openWindow(target);
    })());
  });
}

if (typeof module !== 'undefined' && module.exports) {
  module.exports = { notificationOf, targetOf }; // for the unit tests in Node
}
