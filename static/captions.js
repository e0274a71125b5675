// Captions in the video view: the video's tracks as <track> elements of the
// player (their signed URLs need no header), and a small panel to add one
// (WebVTT or SRT, per language) or delete one.

import { api, freshToken } from './api.js';
import { h, announce } from './dom.js';

/** Replace the <track>s of `media` with the video's captions; returns them. */
export async function loadCaptionTracks(video, media) {
  const { items } = await api(`/api/v1/videos/${video.id}/captions`);
  addTracks(media, items);
  return items;
}

/** <track> elements for `captions` ({language, label, url}); the first is the default. */
export function addTracks(media, captions) {
  for (const old of media.querySelectorAll('track')) old.remove();
  captions.forEach((caption, index) => {
    media.append(h('track', {
      kind: 'subtitles',
      src: caption.url,
      srclang: caption.language,
      label: caption.label,
      default: index === 0,
    }));
  });
}

/** The Captions panel of the video view. */
export function captionsPanel(video, media) {
  const list = h('ul', { class: 'captions-list' });
  const status = h('p', { class: 'muted', role: 'status' });
  const language = h('input', { id: 'caption-language', required: true, placeholder: 'en', size: 8 });
  const label = h('input', { id: 'caption-label', placeholder: 'English' });
  const file = h('input', { id: 'caption-file', type: 'file', accept: '.vtt,.srt,text/vtt', required: true });
  const form = h(
    'form',
    { class: 'captions-form' },
    h('div', { class: 'field' }, h('label', { for: 'caption-language' }, 'Language'), language),
    h('div', { class: 'field' }, h('label', { for: 'caption-label' }, 'Label'), label),
    h('div', { class: 'field' }, h('label', { for: 'caption-file' }, 'WebVTT or SRT file'), file),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Add captions')),
  );

  async function refresh() {
    const items = await loadCaptionTracks(video, media);
    list.replaceChildren(...items.map((caption) => {
      const del = h('button', { type: 'button', class: 'secondary' }, 'Delete');
      del.addEventListener('click', async () => {
        await api(`/api/v1/videos/${video.id}/captions/${encodeURIComponent(caption.language)}`, { method: 'DELETE' });
        announce(`Captions ${caption.label} deleted`);
        await refresh();
      });
      return h('li', {}, `${caption.label} (${caption.language}, ${caption.cue_count} cues) `, del);
    }));
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.classList.remove('error');
    const query = new URLSearchParams({ language: language.value.trim() });
    if (label.value.trim()) query.set('label', label.value.trim());
    // The body is the file itself: not JSON, so not through api().
    const response = await fetch(`/api/v1/videos/${video.id}/captions?${query}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await freshToken()}`, 'Content-Type': 'text/plain' },
      body: file.files[0],
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      status.textContent = (body.error && body.error.message) || `Failed (${response.status})`;
      status.classList.add('error');
      return;
    }
    status.textContent = 'Captions added';
    form.reset();
    await refresh();
  });

  refresh().catch((err) => {
    status.textContent = `Could not load the captions: ${err.message}`;
  });
  return h('section', { class: 'captions-panel' }, h('h3', {}, 'Captions'), list, form, status);
}
