// The public player of a share link (/s/{token}): no login. It asks the
// server what the link shows (GET /s/{token}/info), asks for the password
// when there is one (POST /s/{token}/unlock), then plays the video through
// range requests (MP4), or HLS where the browser plays it natively, with the
// thumbnail as poster. Every media request is checked against the link, so a
// revoked link stops playing at the next request.

import { h } from './dom.js';

// The embed page (/s/{token}/embed) asks the same link's endpoints.
const base = window.location.pathname.replace(/\/+$/, '').replace(/\/embed$/, '');
const embedded = document.body.classList.contains('embed');
const status = document.getElementById('share-status');
const unlockForm = document.getElementById('share-unlock');
const view = document.getElementById('share-view');

function fail(message) {
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

function show(info) {
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
    if (src) media.src = src;
    else children.push(h('p', { class: 'error' }, 'This browser cannot play what this link shares.'));
  }
  // Captions as <track>s (same origin; the first is shown by default).
  (info.captions || []).forEach((caption, index) => {
    media.append(h('track', {
      kind: 'subtitles', src: caption.url, srclang: caption.language, label: caption.label, default: index === 0,
    }));
  });
  if (info.description && !embedded) children.push(h('p', { class: 'description' }, info.description));
  if (info.media.download) {
    children.push(h('p', {}, h('a', { href: info.media.download, download: '' }, 'Download')));
  }
  view.replaceChildren(...children);
  view.hidden = false;
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
    fail('This link does not exist, has expired or was revoked.');
    return;
  }
  const info = await response.json();
  if (info.password_required) {
    status.hidden = true;
    unlockForm.hidden = false;
    document.getElementById('share-password').focus();
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
    fail('This link does not exist, has expired or was revoked.');
    return;
  }
  show(await response.json());
});

load();
