// The public player of a share link (/s/{token}): no login. It asks the
// server what the link shows (GET /s/{token}/info), asks for the password
// when there is one (POST /s/{token}/unlock), then plays the video through
// range requests (MP4), or HLS where the browser plays it natively, with the
// thumbnail as poster. Every media request is checked against the link, so a
// revoked link stops playing at the next request.
//
// The media links of a link with a password carry a grant that expires (the
// video's duration plus the server's link TTL). Before it does — a minute
// early, or a fifth of a short lifetime — the player asks for fresh links
// (POST /s/{token}/renew with the grant it has) and swaps them in where it
// was, playing or paused, so a paused or long film plays to the end. A
// revoked or expired link answers 404 there: renewal stops and the page says
// the link is gone.

import { h } from './dom.js';

// The embed page (/s/{token}/embed) asks the same link's endpoints.
const base = window.location.pathname.replace(/\/+$/, '').replace(/\/embed$/, '');
const embedded = document.body.classList.contains('embed');
const status = document.getElementById('share-status');
const unlockForm = document.getElementById('share-unlock');
const view = document.getElementById('share-view');
const GONE = 'This link does not exist, has expired or was revoked.';

const RENEW_LEAD_SECONDS = 60;
const RETRY_MS = 10000; // the server unreachable for a moment: try again this soon
const RECOVER_EVERY_MS = 30000; // after a load error, at most one renewal per this
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
let grant = null; // the grant of the links shown
let renewTimer = null;
let lastRecovery = 0;
let resumeAt = 0; // where to pick up after the password was asked again

function fail(message) {
  clearTimeout(renewTimer);
  const media = document.getElementById('shared-media');
  if (media && media.tagName === 'VIDEO') {
    // Release the connection the element holds open.
    media.removeAttribute('src');
    media.load();
  }
  status.hidden = false;
  status.textContent = message;
  unlockForm.hidden = true;
  view.hidden = true;
}

function sourceOf(media, element) {
  if (media.video) return media.video;
  if (media.hls && element.canPlayType('application/vnd.apple.mpegurl')) return media.hls;
  return null;
}

function askPassword() {
  status.hidden = true;
  view.hidden = true;
  unlockForm.hidden = false;
  document.getElementById('share-password').focus();
}

function show(info) {
  grant = info.grant;
  status.hidden = true;
  unlockForm.hidden = true;
  document.title = `${info.title} · Frameflow`;
  const isImage = info.kind === 'image';
  const media = isImage
    ? h('img', { id: 'shared-media', class: 'media', alt: info.title, src: info.media.video })
    : h('video', {
      id: 'shared-media',
      class: 'media',
      controls: true,
      playsinline: true,
      preload: 'metadata',
      poster: info.media.thumbnail,
    });
  // Embedded in another site: the player alone.
  const children = embedded ? [media] : [h('h1', {}, info.title), media];
  if (!isImage) {
    const src = sourceOf(info.media, media);
    if (src) {
      media.src = src;
      if (resumeAt > 0) restoreOnLoad(media, resumeAt, false);
      media.addEventListener('error', recover);
    } else children.push(h('p', { class: 'error' }, 'This browser cannot play what this link shares.'));
  }
  // Captions as <track>s (same origin; the first is shown by default).
  (info.captions || []).forEach((caption, index) => {
    media.append(h('track', {
      kind: 'subtitles', src: caption.url, srclang: caption.language, label: caption.label, default: index === 0,
    }));
  });
  if (info.description && !embedded) children.push(h('p', { class: 'description' }, info.description));
  if (info.media.download) {
    children.push(h('p', {}, h('a', {
      id: 'shared-download', href: info.media.download, download: '',
    }, 'Download')));
  }
  view.replaceChildren(...children);
  view.hidden = false;
  resumeAt = 0;
  scheduleRenewal(info);
}

// --- renewing the media links ---------------------------------------------------------

function scheduleRenewal(info) {
  clearTimeout(renewTimer);
  const lifetime = info.media_expires_in;
  if (!lifetime) return; // a link without a password: its links do not expire
  // Measured from now on this machine's clock (expires_in), as the owner's page does.
  const lead = Math.min(RENEW_LEAD_SECONDS, lifetime / 5);
  // setTimeout takes at most 2^31 - 1 ms (24.8 days); longer fires at once.
  renewTimer = setTimeout(renew, Math.min(Math.max(lifetime - lead, 1) * 1000, MAX_TIMEOUT_MS));
}

async function renew() {
  clearTimeout(renewTimer);
  let response;
  try {
    response = await fetch(`${base}/renew`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ grant }),
      cache: 'no-store',
    });
  } catch {
    renewTimer = setTimeout(renew, RETRY_MS);
    return;
  }
  if (response.status === 404) {
    fail(GONE); // revoked or expired: no more renewals
    return;
  }
  if (!response.ok) {
    renewTimer = setTimeout(renew, RETRY_MS);
    return;
  }
  const info = await response.json();
  if (info.password_required) {
    // The grant ran out (a tab asleep for hours): ask again, then resume there.
    const media = document.getElementById('shared-media');
    resumeAt = media && media.tagName === 'VIDEO' ? media.currentTime : 0;
    if (media && media.tagName === 'VIDEO') media.pause();
    askPassword();
    return;
  }
  swapLinks(info);
}

/** The fresh links in place of the old ones; the video keeps its position and play state.
 * (An image already shown needs no new link.) */
function swapLinks(info) {
  grant = info.grant;
  const media = document.getElementById('shared-media');
  if (media && media.tagName === 'VIDEO') {
    const src = sourceOf(info.media, media);
    // The same links (an open link's never change): nothing to reload.
    if (src && src !== media.getAttribute('src')) swapSource(media, src);
    if (info.media.thumbnail) media.poster = info.media.thumbnail;
    // Caption tracks load when first shown: those not loaded yet get the new link.
    for (const caption of info.captions || []) {
      for (const track of media.querySelectorAll('track')) {
        if (track.srclang === caption.language && track.readyState !== HTMLTrackElement.LOADED) {
          track.src = caption.url;
        }
      }
    }
  }
  const download = document.getElementById('shared-download');
  if (download && info.media.download) download.href = info.media.download;
  scheduleRenewal(info);
}

function swapSource(media, url) {
  const time = media.currentTime;
  const playing = !media.paused && !media.ended;
  media.src = url;
  if (time > 0 || playing) restoreOnLoad(media, time, playing);
}

function restoreOnLoad(media, time, playing) {
  media.addEventListener(
    'loadedmetadata',
    () => {
      media.currentTime = time;
      if (playing) media.play().catch(() => {});
    },
    { once: true },
  );
}

function recover() {
  // A link that expired while the tab slept, or a revoked one: ask once (the
  // answer is fresh links, the password form, or the page saying it is gone).
  if (Date.now() - lastRecovery < RECOVER_EVERY_MS) return;
  lastRecovery = Date.now();
  renew();
}

async function load() {
  let response;
  try {
    response = await fetch(`${base}/info`, { cache: 'no-store' });
  } catch {
    fail('Could not reach the server.');
    return;
  }
  if (!response.ok) {
    fail(GONE);
    return;
  }
  const info = await response.json();
  if (info.password_required) {
    askPassword();
    return;
  }
  show(info);
}

unlockForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('share-error');
  error.textContent = '';
  const password = document.getElementById('share-password').value;
  const response = await fetch(`${base}/unlock`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ password }),
  });
  if (response.status === 403) {
    error.textContent = 'Wrong password.';
    return;
  }
  if (!response.ok) {
    fail(GONE);
    return;
  }
  show(await response.json());
});

load();
