// Live job and video events: the WebSocket at /api/v1/ws, with polling as the
// safety net. While the socket is not authenticated (connecting, backing off,
// or the server has no WebSocket endpoint at all) the page polls every 2 s, so
// progress keeps moving either way; once the server says "ready" polling stops.
//
// The state is mirrored on <html data-live="ws|polling|off"> and
// data-ws-events (a count), which the browser tests read.

import { freshToken, refresh } from './api.js';

const POLL_MS = 2000;
const PING_MS = 25000; // below common proxy idle timeouts (30-60 s)
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const AUTH_FAILED = 4401;

/**
 * start({onEvent, onSnapshot, poll}) → stop().
 * onEvent(event) for job.* / video.* events, onSnapshot(jobs) for snapshots,
 * poll() → Promise while the socket is down.
 */
export function startLive({ onEvent, onSnapshot, poll }) {
  const root = document.documentElement;
  let socket = null;
  let stopped = false;
  let backoff = BACKOFF_MIN_MS;
  let reconnectTimer = null;
  let pollTimer = null;
  let pingTimer = null;
  let polling = false;
  let events = Number(root.dataset.wsEvents || 0);

  const setMode = (mode) => {
    root.dataset.live = mode;
  };

  const pollLoop = async () => {
    pollTimer = null;
    if (stopped || !polling) return;
    try {
      await poll();
    } catch {
      // A failed poll is retried on the next tick; the UI keeps its last state.
    }
    if (!stopped && polling) pollTimer = setTimeout(pollLoop, POLL_MS);
  };

  const startPolling = () => {
    setMode('polling');
    if (polling) return;
    polling = true;
    pollLoop();
  };

  const stopPolling = () => {
    polling = false;
    clearTimeout(pollTimer);
    pollTimer = null;
  };

  const scheduleReconnect = (delay) => {
    if (stopped) return;
    clearTimeout(reconnectTimer);
    // Jitter spreads a crowd of pages reconnecting after a server restart.
    reconnectTimer = setTimeout(connect, delay * (0.75 + Math.random() * 0.5));
  };

  const onMessage = (message) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return null;
    }
    if (data.type === 'ready') {
      backoff = BACKOFF_MIN_MS;
      stopPolling();
      setMode('ws');
    } else if (data.type === 'snapshot') {
      onSnapshot(data.jobs || []);
    } else if (typeof data.type === 'string' && /^(job|video|generation)\./.test(data.type)) {
      events += 1;
      root.dataset.wsEvents = String(events);
      onEvent(data);
    }
    // pong, and types added later, are ignored on purpose.
    return data.type;
  };

  async function connect() {
    if (stopped) return;
    const token = await freshToken();
    if (!token || stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/api/v1/ws`);
    socket = ws;
    let authenticated = false;
    // The token goes in the first message, never in the URL (URLs end up in logs).
    ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'auth', token })));
    ws.addEventListener('message', (message) => {
      if (onMessage(message) === 'ready') authenticated = true;
    });
    ws.addEventListener('close', async (event) => {
      if (socket !== ws) return;
      socket = null;
      clearInterval(pingTimer);
      if (stopped) return;
      startPolling();
      if (event.code === AUTH_FAILED) {
        // The server closes a socket when its access token expires: reconnect
        // now, connect() takes a fresh token (refreshing only if it must).
        if (authenticated && event.reason === 'token_expired') return scheduleReconnect(0);
        // Refused at auth, or the session ended: refresh and retry at once; a
        // dead session ends in logout (refresh() announces it).
        if (await refresh()) return scheduleReconnect(BACKOFF_MIN_MS);
      }
      scheduleReconnect(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    });
    clearInterval(pingTimer);
    pingTimer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'ping' }));
    }, PING_MS);
  }

  // Coming back to a tab that slept: resync, or reconnect now rather than at
  // the end of a long backoff.
  const onVisible = () => {
    if (document.visibilityState !== 'visible' || stopped) return;
    if (socket && socket.readyState === WebSocket.OPEN) {
      // Events may have been coalesced away while the tab was throttled.
      socket.send(JSON.stringify({ type: 'snapshot' }));
    } else if (!socket) {
      backoff = BACKOFF_MIN_MS;
      scheduleReconnect(0);
    }
  };
  document.addEventListener('visibilitychange', onVisible);

  startPolling();
  connect();

  return function stop() {
    stopped = true;
    stopPolling();
    clearTimeout(reconnectTimer);
    clearInterval(pingTimer);
    document.removeEventListener('visibilitychange', onVisible);
    if (socket) socket.close(1000);
    socket = null;
    setMode('off');
  };
}

