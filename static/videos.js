// The user's videos as a grid of cards (or a list): thumbnail, title,
// duration and status, and a checkbox that puts the video in the selection.
// Picking a card opens the video in the player view.

import { api } from './api.js';
import { h, formatBytes, formatSeconds } from './dom.js';
import { highlightedTitle } from './search.js';
import { isSelected, setSelected } from './selection.js';

const VIEW_KEY = 'frameflow.videos.view';

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
    for (const { search, ...video } of items) keep(video);
  }
  render();
}

export function initVideos(element, emptyMessage, select, viewToggle) {
  listEl = element;
  emptyEl = emptyMessage;
  onSelect = select;
  // Grid or list: a class on the list, remembered in this browser.
  const setView = (view) => {
    listEl.classList.toggle('videos-list', view === 'list');
    viewToggle.setAttribute('aria-pressed', String(view === 'list'));
    localStorage.setItem(VIEW_KEY, view);
  };
  viewToggle.addEventListener('click', () => setView(listEl.classList.contains('videos-list') ? 'grid' : 'list'));
  setView(localStorage.getItem(VIEW_KEY) === 'list' ? 'list' : 'grid');
}

/** Store `video`, keeping the thumbnail link we have when it comes without one. */
function keep(video) {
  const old = videos.get(video.id);
  videos.set(video.id, old && !video.thumbnail ? { ...video, thumbnail: old.thumbnail } : video);
}

/** The ids of the cards shown (the page "select all" selects). */
export const shownIds = () => shown().map((v) => v.id);

/** A thumbnail job finished: its picture replaces the card's placeholder. */
export function setThumbnail(videoId, url) {
  const video = videos.get(videoId);
  if (!video || video.thumbnail === url) return;
  videos.set(videoId, { ...video, thumbnail: url });
  render();
}

/** Tick the checkboxes of the selected videos (after select all or clear). */
export function syncSelection() {
  if (!listEl) return;
  for (const box of listEl.querySelectorAll('input[data-select]')) box.checked = isSelected(box.dataset.select);
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
  for (const video of page.items) keep(video);
  render();
}

export function addVideo(video) {
  // Newest first: re-insert so a new upload goes to the top.
  const old = videos.get(video.id);
  videos.delete(video.id);
  const rest = [...videos.entries()];
  videos.clear();
  if (old) videos.set(video.id, old);
  keep(video);
  for (const [id, v] of rest) videos.set(id, v);
  render();
}

/** A video whose fields changed (its details were saved): same place in the list. */
export function updateVideo(video) {
  if (!videos.has(video.id)) return;
  keep(video);
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
  const bits = [];
  if (m.duration) bits.push(formatSeconds(m.duration));
  if (m.width && m.height) bits.push(`${m.width}×${m.height}`);
  bits.push(formatBytes(video.size));
  return bits.join(' · ');
}

function thumbnail(video) {
  if (!video.thumbnail) return h('span', { class: 'card-thumb placeholder', 'aria-hidden': 'true' }, 'No thumbnail yet');
  // Decorative: the title next to it names the video.
  const img = h('img', { class: 'card-thumb', src: video.thumbnail, alt: '', loading: 'lazy' });
  // An expired link (a page left open for hours) shows the placeholder, not a broken image.
  img.addEventListener('error', () => img.replaceWith(h('span', { class: 'card-thumb placeholder' }, 'No thumbnail')));
  return img;
}

function shown() {
  // A saved title shows at once; the highlight stays the search's.
  return results
    ? results.filter((r) => videos.has(r.id)).map((r) => ({ ...videos.get(r.id), search: r.search }))
    : [...videos.values()];
}

function card(video) {
  const name = video.title || video.filename;
  const box = h('input', {
    type: 'checkbox',
    class: 'card-select',
    dataset: { select: video.id },
    'aria-label': `Select ${name}`,
    checked: isSelected(video.id),
    onchange: (event) => setSelected(video.id, event.target.checked),
  });
  return h(
    'li',
    { class: 'video-card', dataset: { videoId: video.id, thumbnail: video.thumbnail ? 'yes' : 'no' } },
    box,
    h(
      'button',
      {
        type: 'button',
        class: 'video-item',
        dataset: { videoId: video.id },
        'aria-current': video.id === selectedId ? 'true' : null,
        onclick: () => onSelect(video.id),
      },
      thumbnail(video),
      h('span', { class: 'video-name' }, highlightedTitle(video)),
      h('span', { class: 'muted' }, describe(video)),
      h('span', { class: `badge badge-${video.status}` }, video.status),
    ),
  );
}

function render() {
  if (!listEl) return;
  // Cards are made again; keyboard focus goes back to the same control.
  const focused = listEl.contains(document.activeElement) ? document.activeElement : null;
  const focusKey = focused && (focused.dataset.select ? `input[data-select="${focused.dataset.select}"]` : null)
    || (focused && focused.dataset.videoId ? `button[data-video-id="${focused.dataset.videoId}"]` : null);
  const items = shown().map(card);
  listEl.replaceChildren(...items);
  emptyEl.hidden = items.length > 0;
  if (focusKey) {
    const again = listEl.querySelector(focusKey);
    if (again) again.focus();
  }
}
