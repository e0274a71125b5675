// The image library: the user's images as thumbnails, apart from the video list.
// Thumbnails come from GET /api/v1/images with signed URLs (an <img> sends no
// headers); picking one opens the image in the player view, as a video would.

import { api } from './api.js';
import { h } from './dom.js';

const images = new Map(); // id → image JSON (with `thumbnail`)
let els = null;
let onSelect = () => {};
let timer = null;

export function initImages(elements, select) {
  els = elements;
  onSelect = select;
}

export async function loadImages() {
  const page = await api('/api/v1/images?limit=60');
  images.clear();
  for (const image of page.items) images.set(image.id, image);
  render();
}

/** A new image arrived (upload, live event): reload once, with fresh links. */
export function imagesChanged() {
  clearTimeout(timer);
  timer = setTimeout(() => loadImages().catch(() => {}), 300);
}

export function removeImage(id) {
  if (images.delete(id)) render();
}

export function clearImages() {
  clearTimeout(timer);
  images.clear();
  render();
}

function describe(image) {
  const meta = image.metadata || {};
  const size = meta.image || meta;
  const exif = meta.exif || {};
  const bits = [];
  if (size.width && size.height) bits.push(`${size.width}×${size.height}`);
  const camera = [exif.camera_make, exif.camera_model].filter(Boolean).join(' ');
  if (camera) bits.push(camera);
  return bits.join(' · ');
}

function render() {
  if (!els) return;
  const items = [...images.values()].map((image) =>
    h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          class: 'image-item',
          dataset: { imageId: image.id },
          title: image.title,
          onclick: () => onSelect(image.id),
        },
        image.thumbnail
          ? h('img', {
              src: image.thumbnail.url,
              alt: image.title,
              width: image.thumbnail.width,
              height: image.thumbnail.height,
              loading: 'lazy',
            })
          : h('span', { class: 'muted' }, 'No thumbnail'),
        h('span', { class: 'image-name' }, image.title),
        h('span', { class: 'muted' }, describe(image)),
      ),
    ),
  );
  els.list.replaceChildren(...items);
  els.empty.hidden = items.length > 0;
}
