// The list of the user's videos; picking one opens it in the player view.

import { api } from './api.js';
import { h, formatBytes, formatSeconds } from './dom.js';
import { highlightedTitle } from './search.js';

const videos = new Map(); // id → video JSON
let listEl = null;
let emptyEl = null;
let onSelect = () => {};
let selectedId = null;
let results = null; // search hits shown instead of the whole list, or null

/** Show search hits (their order, their highlights); null goes back to the list. */
export function showResults(items) {
  results = items;
  if (items) {
    for (const { search, ...video } of items) if (!videos.has(video.id)) videos.set(video.id, video);
  }
  render();
}

export function initVideos(element, emptyMessage, select) {
  listEl = element;
  emptyEl = emptyMessage;
  onSelect = select;
}

export const videoName = (id) => (videos.has(id) ? videos.get(id).filename : '');
export const getVideo = (id) => videos.get(id);

export function clearVideos() {
  videos.clear();
  selectedId = null;
  results = null;
  render();
}

export async function loadVideos() {
  const page = await api('/api/v1/videos?limit=50');
  for (const video of page.items) videos.set(video.id, video);
  render();
}

export function addVideo(video) {
  // Newest first: re-insert so a new upload goes to the top.
  videos.delete(video.id);
  const rest = [...videos.entries()];
  videos.clear();
  videos.set(video.id, video);
  for (const [id, v] of rest) videos.set(id, v);
  render();
}

/** A video whose fields changed (its details were saved): same place in the list. */
export function updateVideo(video) {
  if (!videos.has(video.id)) return;
  videos.set(video.id, video);
  render();
}

export function removeVideo(id) {
  videos.delete(id);
  if (selectedId === id) selectedId = null;
  render();
}

export function markSelected(id) {
  selectedId = id;
  for (const button of listEl.querySelectorAll('button[data-video-id]')) {
    if (button.dataset.videoId === id) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }
}

function describe(video) {
  const m = video.metadata || {};
  const bits = [formatBytes(video.size)];
  if (m.duration) bits.push(formatSeconds(m.duration));
  if (m.width && m.height) bits.push(`${m.width}×${m.height}`);
  return bits.join(' · ');
}

function render() {
  if (!listEl) return;
  // A saved title shows at once; the highlight stays the search's.
  const shown = results
    ? results.filter((r) => videos.has(r.id)).map((r) => ({ ...videos.get(r.id), search: r.search }))
    : [...videos.values()];
  const items = shown.map((video) =>
    h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          class: 'video-item',
          dataset: { videoId: video.id },
          'aria-current': video.id === selectedId ? 'true' : null,
          onclick: () => onSelect(video.id),
        },
        h('span', { class: 'video-name' }, highlightedTitle(video)),
        h('span', { class: 'muted' }, describe(video)),
      ),
    ),
  );
  listEl.replaceChildren(...items);
  emptyEl.hidden = items.length > 0;
}
