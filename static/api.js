// The API client: fetch with bearer tokens, refreshed transparently.
//
// Where tokens live: the short-lived access token only in memory; the refresh
// token in sessionStorage so a reload keeps the session. sessionStorage rather
// than localStorage because refresh tokens rotate and a replayed one revokes
// its whole family (README: token_reused) — two tabs sharing one stored token
// would race each other into a forced logout. sessionStorage is per tab and is
// gone when the tab closes, which is also the safer default on shared machines.

const REFRESH_KEY = 'frameflow.refresh_token';
// Refresh a little before the access token expires (30 s, or a fifth of a
// short lifetime), so normal use never produces a 401 — each one is a red
// line in the browser console and a wasted request.
const EARLY_REFRESH_SECONDS = 30;

let accessToken = null;
let accessExpiresAt = 0;
let refreshMargin = EARLY_REFRESH_SECONDS;
let refreshing = null; // the one refresh in flight; concurrent callers share it
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** fn(loggedIn: boolean) is called whenever the session starts or ends. */
export function onAuthChange(fn) {
  listeners.add(fn);
}

function notify() {
  for (const fn of listeners) fn(accessToken !== null);
}

// The token is not decoded: its lifetime comes from expires_in, measured on
// this machine's clock, so a skewed clock cannot make it look expired.
function keepTokens(pair) {
  const lifetime = pair.expires_in || 60;
  accessToken = pair.access_token;
  accessExpiresAt = Date.now() / 1000 + lifetime;
  // +1 s: the server's exp is in whole seconds, so it may end up to 1 s sooner.
  refreshMargin = Math.min(EARLY_REFRESH_SECONDS, lifetime / 5) + 1;
  sessionStorage.setItem(REFRESH_KEY, pair.refresh_token);
}

function dropTokens() {
  const had = accessToken !== null;
  accessToken = null;
  accessExpiresAt = 0;
  sessionStorage.removeItem(REFRESH_KEY);
  if (had) notify();
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page): fall back to the status text.
  }
  const err = body && body.error ? body.error : {};
  return new ApiError(
    response.status,
    err.code || 'http_error',
    err.message || `${response.status} ${response.statusText}`,
    err.field,
  );
}

/** A JSON POST without credentials (sign-up, login, the links in mails). */
export async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

/** Swap the refresh token for a new pair; false (and logged out) when it is dead. */
export function refresh() {
  if (refreshing) return refreshing;
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return Promise.resolve(false);
  refreshing = post('/api/v1/auth/refresh', { refresh_token: token })
    .then((pair) => {
      const wasLoggedIn = accessToken !== null;
      keepTokens(pair);
      if (!wasLoggedIn) notify();
      return true;
    })
    .catch((err) => {
      // Only a refusal ends the session; a network blip keeps the token.
      if (err instanceof ApiError && err.status === 401) dropTokens();
      return false;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** An access token valid for a little while yet (refreshing it first if needed). */
export async function freshToken() {
  if (accessToken && Date.now() / 1000 < accessExpiresAt - refreshMargin) {
    return accessToken;
  }
  await refresh();
  return accessToken;
}

export function isLoggedIn() {
  return accessToken !== null;
}

/** On page load: resume the tab's session if it has a refresh token. */
export async function restoreSession() {
  return sessionStorage.getItem(REFRESH_KEY) ? refresh() : false;
}

export async function register(email, password) {
  return post('/api/v1/auth/register', { email, password });
}

export async function login(email, password) {
  keepTokens(await post('/api/v1/auth/login', { email, password }));
  notify();
}

export async function logout() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  dropTokens();
  if (token) {
    // Best effort: the local session is gone either way.
    await post('/api/v1/auth/logout', { refresh_token: token }).catch(() => {});
  }
}

/**
 * fetch() for the JSON API. On a 401 it refreshes once and retries, so an
 * access token that expired while the laptop slept costs the user nothing.
 */
export async function api(path, { method = 'GET', body } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const token = await freshToken();
    if (!token) throw new ApiError(401, 'logged_out', 'Please log in again');
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && attempt === 0) {
      accessExpiresAt = 0; // force the refresh even if the clock says it is fine
      if (await refresh()) continue;
    }
    if (!response.ok) throw await errorFrom(response);
    return response.status === 204 ? null : response.json();
  }
}
