// tessera.js: Tessera's client for single-page apps. An ES module with no dependencies,
// served by every Tessera server at /assets/tessera.js. Guide: docs/browser.md.
//
//   import { createClient } from '/assets/tessera.js';
//   const tessera = createClient({ transport: 'token' });
//   await tessera.login('alice', 'correct horse battery staple');
//   const response = await tessera.fetch('/v1/sessions');
//
// Two transports:
// - 'cookie': the session rides in Tessera's HttpOnly `__Host-` cookie; this client keeps
//   the session's CSRF token and sends it as `X-CSRF-Token` on every unsafe request.
// - 'token': a short-lived JWT access token, kept in this closure and nowhere else (never
//   localStorage or sessionStorage, where any injected script could read it later), and a
//   refresh token in an HttpOnly cookie that only `POST /v1/token` receives. Tabs share one
//   refresh at a time through the Web Locks API, so none spends a refresh token another tab
//   has already rotated.

const REFRESH_LOCK = 'tessera-refresh';
const GENERATION_LOCK = 'tessera-generation:';
const CHANNEL = 'tessera';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** How long a tab waits for another tab to hand over a token it announced. */
const HANDOVER_TIMEOUT_MS = 2000;

/** A refused request: `status`, the stable `code` (problem `code` or OAuth `error`). */
export class TesseraError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code || `HTTP ${status}`);
    this.name = 'TesseraError';
    this.status = status;
    this.code = code;
    /** Seconds to wait (`429`, `503`), from `Retry-After`. */
    this.retryAfter = retryAfter;
  }
}

/**
 * A client for one Tessera server.
 *
 * @param {object} options
 * @param {string} [options.baseUrl] Tessera's origin; defaults to this page's. The client
 *   sends credentials to the same origin only: serve the app and Tessera from one origin.
 * @param {'cookie'|'token'} [options.transport] Defaults to 'cookie'.
 * @param {(reason: string) => void} [options.onLogout] Called when the session ends for a
 *   reason other than this tab's `logout()`: `'elsewhere'` (another tab logged out) or
 *   `'ended'` (expired or revoked, found on a request).
 */
export function createClient({ baseUrl = '', transport = 'cookie', onLogout = null } = {}) {
  if (transport !== 'cookie' && transport !== 'token') {
    throw new TypeError("transport must be 'cookie' or 'token'");
  }
  const base = String(baseUrl).replace(/\/+$/, '');
  const url = (path) => (/^https?:\/\//.test(path) ? path : base + path);
  const locks = typeof navigator !== 'undefined' && navigator.locks ? navigator.locks : null;
  // One channel per transport: a cookie-transport tab logging out says nothing about tokens.
  const channel =
    typeof BroadcastChannel === 'function' ? new BroadcastChannel(`${CHANNEL}:${transport}`) : null;

  // Cookie transport: the session's CSRF token (not a credential on its own).
  let csrfToken = null;
  // Token transport: { token, expiresAt, lifetime, generation: { at, id } }. In memory only.
  let access = null;
  // The generation lock this tab holds for the token it minted last, as a release function.
  let releaseGeneration = null;
  // This tab's refresh in progress, shared by every caller in the tab.
  let inflight = null;
  // Callers waiting for a token handed over by another tab.
  const waiters = new Set();

  const fresh = (held) => {
    if (!held) return false;
    const margin = Math.min(30_000, held.lifetime / 5);
    return Date.now() < held.expiresAt - margin;
  };
  const newer = (a, b) => !b || a.at > b.at || (a.at === b.at && a.id > b.id);

  function adopt(message) {
    if (access && !newer(message.generation, access.generation)) return;
    access = {
      token: message.token,
      expiresAt: message.expiresAt,
      lifetime: message.lifetime,
      generation: message.generation,
    };
    for (const waiter of waiters) waiter();
  }

  function ended(reason) {
    const hadSession = csrfToken !== null || access !== null;
    csrfToken = null;
    access = null;
    if (releaseGeneration) {
      releaseGeneration();
      releaseGeneration = null;
    }
    if (hadSession && reason && onLogout) onLogout(reason);
  }

  if (channel) {
    channel.onmessage = ({ data }) => {
      if (!data || typeof data !== 'object') return;
      if (data.type === 'token' && transport === 'token') {
        adopt(data);
      } else if (data.type === 'ask' && transport === 'token') {
        if (access && access.generation.id === data.id) channel.postMessage(tokenMessage(access));
      } else if (data.type === 'logout') {
        ended('elsewhere');
      }
    };
  }

  function tokenMessage(held) {
    return {
      type: 'token',
      token: held.token,
      expiresAt: held.expiresAt,
      lifetime: held.lifetime,
      generation: held.generation,
    };
  }

  // A token this tab obtained from the server: keep it, tell the other tabs, and register
  // its generation with the lock manager *before* the refresh lock is released, so a tab
  // granted the lock next learns, in order, that a newer token exists.
  async function minted(body) {
    const lifetime = Math.max(1, Number(body.expires_in) || 0) * 1000;
    const generation = { at: Date.now(), id: randomId() };
    const message = {
      type: 'token',
      token: body.access_token,
      expiresAt: Date.now() + lifetime,
      lifetime,
      generation,
    };
    access = null;
    adopt(message);
    if (channel) channel.postMessage(message);
    if (locks) {
      const previous = releaseGeneration;
      releaseGeneration = await holdLock(GENERATION_LOCK + `${generation.at}:${generation.id}`);
      if (previous) previous();
    }
    return message.token;
  }

  // The newest generation any live tab has registered, or null.
  async function newestGeneration() {
    if (!locks || !locks.query) return null;
    const { held = [] } = await locks.query();
    let newest = null;
    for (const { name } of held) {
      if (!name || !name.startsWith(GENERATION_LOCK)) continue;
      const [at, id] = name.slice(GENERATION_LOCK.length).split(':');
      const candidate = { at: Number(at), id };
      if (newer(candidate, newest)) newest = candidate;
    }
    return newest;
  }

  // Waits for the token of generation `id`, asking the tab that holds it.
  function handover(id) {
    return new Promise((resolve) => {
      const check = () => {
        if (access && access.generation.id === id) done(access);
      };
      const timer = setTimeout(() => done(null), HANDOVER_TIMEOUT_MS);
      function done(result) {
        clearTimeout(timer);
        waiters.delete(check);
        resolve(result);
      }
      waiters.add(check);
      check();
      if (channel) channel.postMessage({ type: 'ask', id });
    });
  }

  // One rotation at a time across every tab of this origin.
  function refresh(stale = access ? access.token : null) {
    if (transport !== 'token') return Promise.reject(new TypeError('refresh needs the token transport'));
    if (access && access.token !== stale && fresh(access)) return Promise.resolve(access.token);
    if (!inflight) {
      inflight = (locks ? locks.request(REFRESH_LOCK, () => underLock(stale)) : rotate()).finally(
        () => {
          inflight = null;
        },
      );
    }
    return inflight;
  }

  async function underLock(stale) {
    // Another tab may have rotated while this one waited. Its generation is registered
    // with the lock manager before it released the lock, so this query sees it; the token
    // itself comes over the BroadcastChannel, possibly a moment after the grant.
    const newest = await newestGeneration();
    if (newest && (!access || newer(newest, access.generation))) {
      const handed = await handover(newest.id);
      if (handed && handed.token !== stale && fresh(handed)) return handed.token;
    } else if (access && access.token !== stale && fresh(access)) {
      return access.token;
    }
    return rotate();
  }

  // Spends the refresh cookie: the server rotates it (replacing the cookie) and returns a
  // new access token. JSON and the same-origin `Origin` are what the server requires for the
  // cookie, so a cross-site form cannot trigger this.
  async function rotate() {
    const response = await fetch(url('/v1/token'), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token' }),
    });
    if (response.ok) return minted(await response.json());
    if (response.status === 400) {
      // No refresh cookie, or its session ended (`invalid_grant`): logged out.
      ended('ended');
      return null;
    }
    throw await failure(response);
  }

  async function currentToken() {
    if (fresh(access)) return access.token;
    return refresh(access ? access.token : null);
  }

  async function send(path, init, token) {
    const headers = new Headers(init.headers || {});
    const method = (init.method || 'GET').toUpperCase();
    if (transport === 'cookie') {
      if (!SAFE_METHODS.has(method)) {
        if (csrfToken === null) await session();
        if (csrfToken !== null) headers.set('x-csrf-token', csrfToken);
      }
    } else if (token) {
      headers.set('authorization', `Bearer ${token}`);
    }
    return fetch(url(path), { ...init, method, headers, credentials: 'same-origin' });
  }

  /**
   * `fetch` with the session attached: the CSRF header (cookie transport) or the bearer
   * token, refreshed and retried once on a 401 (token transport). Bodies must be replayable
   * (a string, FormData, URLSearchParams, Blob), not a stream.
   */
  async function authorizedFetch(path, init = {}) {
    if (transport === 'cookie') {
      const response = await send(path, init, null);
      if (response.status === 401) ended('ended');
      return response;
    }
    const token = await currentToken();
    if (!token) return send(path, init, null);
    const response = await send(path, init, token);
    if (response.status !== 401) return response;
    const renewed = await refresh(token);
    return renewed ? send(path, init, renewed) : response;
  }

  /** The current session (`{id, user, created_at, …}`), or null when logged out. */
  async function session() {
    let response;
    if (transport === 'cookie') {
      response = await fetch(url('/v1/session'), {
        credentials: 'same-origin',
        headers: { accept: 'application/json' },
      });
    } else {
      response = await authorizedFetch('/v1/session', { headers: { accept: 'application/json' } });
    }
    if (response.status === 401) {
      ended('ended');
      return null;
    }
    if (!response.ok) throw await failure(response);
    const body = await response.json();
    if (transport === 'cookie') csrfToken = body.csrf_token || null;
    return body.session;
  }

  /** Logs in; returns the new session. Throws a TesseraError (`invalid_credentials`, …). */
  async function login(username, password) {
    const body = { username, password, transport };
    if (transport === 'token') body.refresh_cookie = true;
    const response = await fetch(url('/v1/login'), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await failure(response);
    const result = await response.json();
    if (transport === 'cookie') {
      csrfToken = result.csrf_token;
    } else if (locks) {
      await locks.request(REFRESH_LOCK, () => minted(result));
    } else {
      await minted(result);
    }
    return result.session;
  }

  /** Logs this session out (every credential of it) and tells the other tabs. */
  async function logout() {
    const response = await authorizedFetch('/v1/logout', { method: 'POST' });
    if (!response.ok && response.status !== 401) throw await failure(response);
    ended(null);
    if (channel) channel.postMessage({ type: 'logout' });
  }

  /** Ends every session of this user: the others first, then this one. */
  async function logoutEverywhere() {
    const response = await authorizedFetch('/v1/sessions?scope=others', { method: 'DELETE' });
    if (!response.ok && response.status !== 401) throw await failure(response);
    await logout();
  }

  return {
    transport,
    login,
    logout,
    logoutEverywhere,
    session,
    fetch: authorizedFetch,
    /** Token transport: a fresh access token now (one rotation across all tabs). */
    refresh: () => refresh(access ? access.token : null),
  };
}

// Takes lock `name` and keeps it until the returned function is called (or the tab ends).
function holdLock(name) {
  return new Promise((granted) => {
    navigator.locks.request(
      name,
      () =>
        new Promise((release) => {
          granted(release);
        }),
    );
  });
}

function randomId() {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

async function failure(response) {
  let code = null;
  let message = null;
  try {
    const body = await response.json();
    code = body.code || body.error || null;
    message = body.detail || body.error_description || null;
  } catch {
    // Not JSON: the status says enough.
  }
  const retry = Number(response.headers.get('retry-after'));
  return new TesseraError(response.status, code, message, Number.isFinite(retry) && retry > 0 ? retry : null);
}
