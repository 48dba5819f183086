// Types of pushlane.js, the browser client of the pushlane push server. Guide: docs/browser.md.

/** Any JSON value a publisher can send as data (null excluded by the server). */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };

/** A stored message, delivered to one user; its id is a decimal string, increasing per user. */
export interface PushMessage<T = JSONValue> {
  id: string;
  userId: string;
  data: T;
  /** RFC 3339 with milliseconds, UTC */
  createdAt: string;
}

/** A broadcast: live only, never stored, so it has no id and is never acknowledged. */
export interface PushBroadcast<T = JSONValue> {
  id?: undefined;
  userId: string;
  broadcast: true;
  data: T;
  createdAt: string;
}

export type PushFrame<T = JSONValue> = PushMessage<T> | PushBroadcast<T>;

export type PushState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
export type PushTransport = 'websocket' | 'sse';

export interface StateEvent {
  state: PushState;
  /** consecutive attempts that did not stay open for stableAfter (drives the backoff) */
  attempt: number;
  /** the transport of the current (connecting, open) or last (reconnecting, closed) connection */
  transport: PushTransport;
  /** reconnecting: ms until the next attempt */
  delay?: number;
  /** reconnecting, closed: the close code that caused it (WebSocket codes; 1006 for a network
   * error; the code of an event stream's close event; 0 when no connection was made) */
  code?: number;
  reason?: string;
}

export interface ResyncEvent {
  /** the server's current epoch */
  epoch: string | null;
  /** the epoch and cursor the client tried to resume from */
  previousEpoch: string | null;
  previousSince: string | null;
}

/** An error emitted for a listener that failed on a message carries that message. */
export interface PushError extends Error {
  pushlaneMessage?: PushFrame;
}

/** Where the cursor is kept across reloads: localStorage, sessionStorage or the like. */
export interface CursorStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export type TokenSource = string | (() => string | Promise<string>);

export interface PushClientOptions {
  /** the user whose messages to receive: 1-128 of [A-Za-z0-9._:@-], not "." or ".." */
  userId: string;
  /** a JWT (servers with auth.jwtSecret), or a function called before every (re)connect */
  token?: TokenSource;
  /** the id up to which the application already processed messages; '0' replays everything
   * stored. Without it (and without a stored cursor) the server first sends the user's unread
   * messages. */
  since?: string | null;
  /** the epoch since belongs to (from an earlier hello); only used together with since */
  epoch?: string | null;
  /** default 'auto': WebSocket, falling back to Server-Sent Events (see fallbackAfter) */
  transport?: 'auto' | PushTransport;
  /** auto: WebSocket attempts that fail before opening, while none ever opened, before an
   * event stream is tried; default 2 */
  fallbackAfter?: number;
  /** default true: connect in a microtask after construction */
  autoConnect?: boolean;
  /** first backoff ceiling in ms, default 500 */
  minDelay?: number;
  /** backoff cap in ms, default 30000; the n-th retry waits random [0, min(maxDelay, minDelay*2^n)) */
  maxDelay?: number;
  /** ms a connection must stay open before the backoff starts again from minDelay, default 10000 */
  stableAfter?: number;
  /** WebSocket: ms between {"type":"ping"} frames, default 20000; 0 disables */
  pingInterval?: number;
  /** WebSocket: ms without any frame after a ping before the connection is taken for dead, default 10000 */
  pongTimeout?: number;
  /** ms for a connection to open, default 10000 */
  connectTimeout?: number;
  /** close codes after which the client stops (state 'closed'), default [4000, 1008] */
  stopCodes?: number[];
  /** how many processed ids to remember for de-duplication, default 1000 */
  dedupe?: number;
  /** keeps lastId and epoch across reloads (read at construction when since is not given) */
  storage?: CursorStorage | null;
  /** the storage key, default 'pushlane:' + userId */
  storageKey?: string;
  /** WebSocket constructor, default the global one (Node 20: pass one, e.g. from 'ws') */
  WebSocket?: unknown;
  /** EventSource constructor, default the global one */
  EventSource?: unknown;
}

export interface PushClientEvents<T = JSONValue> {
  /** Called for each message and broadcast, in order, one at a time; a returned promise is
   * awaited. A message is acknowledged after every listener returned; when one throws, it is
   * not, and it comes back on the next connection. */
  message: (frame: PushFrame<T>) => void | Promise<void>;
  state: (event: StateEvent) => void;
  /** The server could not resume from lastId/epoch (another store, or a reset): the client
   * forgot them and every stored message follows; reload the application's state. Awaited. */
  resync: (event: ResyncEvent) => void | Promise<void>;
  /** an unreadable frame, a failed token function, or a message listener that threw */
  error: (error: PushError) => void;
}

export declare class PushClient<T = JSONValue> {
  /** @param url the server base, http(s)://host[:port][/prefix]; '' for the page's own origin */
  constructor(url: string, options: PushClientOptions);

  readonly opts: Readonly<Required<PushClientOptions>>;
  readonly baseURL: string;
  readonly userId: string;
  readonly storageKey: string;
  /** the current state; every change is emitted as 'state' */
  readonly state: PushState;
  readonly attempt: number;
  /** the transport of the current or last connection */
  readonly transport: PushTransport;
  /** the resume cursor: every message up to this id was processed; null before any */
  readonly lastId: string | null;
  /** the store's epoch lastId belongs to (from the server's hello), or null */
  readonly epoch: string | null;
  token: TokenSource | undefined;

  /** Registers a listener; returns a function that removes it. */
  on<K extends keyof PushClientEvents<T>>(type: K, fn: PushClientEvents<T>[K]): () => void;
  off<K extends keyof PushClientEvents<T>>(type: K, fn: PushClientEvents<T>[K]): void;
  /** Starts connecting (idle, closed), or retries at once (reconnecting). */
  connect(): void;
  /** Closes the connection and stops until connect(). */
  close(): void;
  /** Replaces the token used by the next (re)connect. */
  setToken(token: TokenSource): void;
  /** The WebSocket URL of the next connection. */
  socketURL(token?: string): string;
  /** The event-stream URL of the next connection. */
  streamURL(token?: string): string;
  /** The URL of the next connection, on the transport it will use. */
  connectURL(token?: string): string;
  /** For extensions: path resolved against the server base, without a query. */
  serverURL(path: string): URL;
  /** For extensions: the token for a request (calls options.token when it is a function). */
  resolveToken(): Promise<string | undefined>;
}

/** The server's rule for user ids. */
export declare function validUserId(userId: string): boolean;

export default PushClient;

// ---------- Web Push (API.md "Web Push to closed tabs") ----------

/** One subscription as GET /webpush/subscriptions lists it. */
export interface WebPushSubscriptionInfo {
  id: string;
  /** the push service's origin (scheme://host[:port]) */
  origin: string;
  createdAt: string;
}

export interface EnableWebPushOptions {
  /** the service worker script, on the page's origin; default the server's /pushlane-sw.js */
  serviceWorker?: string;
  /** its scope; default the server's root */
  scope?: string;
  /** a registration to subscribe with instead of registering serviceWorker */
  registration?: ServiceWorkerRegistration;
}

export interface EnabledWebPush {
  id: string;
  /** false when the same endpoint was registered before (the same id) */
  created: boolean;
  subscription: PushSubscription;
}

export declare interface PushClient<T = JSONValue> {
  /** Asks permission (from a click), subscribes with the server's VAPID key, registers it. */
  enableWebPush(options?: EnableWebPushOptions): Promise<EnabledWebPush>;
  /** The user's subscriptions, oldest first. */
  webPushSubscriptions(): Promise<WebPushSubscriptionInfo[]>;
  /** Removes one subscription of the user. */
  deleteWebPushSubscription(id: string): Promise<void>;
  /** Calls a /webpush route for this user; throws an Error with the server's reason (err.status). */
  webPushRequest(method: string, path: string, body?: string): Promise<{ status: number; body: unknown }>;
}
