// The Generate panel: a prompt (and optionally one of your images) turned into
// a video by a provider. Providers, their options and prices come from
// GET /api/v1/providers; the estimate is worked out here the way the server
// does (price per second × seconds, rounded up) and the server's own figure
// replaces it once the generation is queued. Progress arrives as
// generation.* events on the live socket; the result shows up in the video
// list through the usual video.ready event.

import { api, ApiError, freshToken } from './api.js';
import { $, announce, h } from './dom.js';

let root = null;
let providers = [];
let images = [];
const rows = new Map(); // generation id → its <li>

const AUTO = 'auto';

function creditsFor(price, seconds) {
  return Math.ceil(price * seconds - 1e-9);
}

function chosenProviders() {
  const name = $('#gen-provider', root).value;
  const usable = providers.filter((p) => p.configured && p.circuit !== 'open');
  return name === AUTO ? usable : usable.filter((p) => p.name === name);
}

// Options every candidate provider offers (for auto: any of them).
function unionOf(list, key) {
  const seen = [];
  for (const p of list) for (const v of p[key]) if (!seen.includes(v)) seen.push(v);
  return seen;
}

function fillSelect(select, values, keep) {
  const previous = keep ? select.value : null;
  select.replaceChildren(...values.map((v) => h('option', { value: String(v) }, String(v))));
  if (previous && values.map(String).includes(previous)) select.value = previous;
}

function refreshOptions() {
  const list = chosenProviders();
  fillSelect($('#gen-model', root), ['', ...unionOf(list, 'models')], true);
  $('#gen-model', root).options[0].textContent = 'Default';
  fillSelect($('#gen-duration', root), unionOf(list, 'durations').sort((a, b) => a - b), true);
  fillSelect($('#gen-resolution', root), unionOf(list, 'resolutions'), true);
  fillSelect($('#gen-aspect', root), unionOf(list, 'aspect_ratios'), true);
  refreshEstimate();
}

function supports(p, req) {
  return (
    (!req.model || p.models.includes(req.model)) &&
    p.durations.includes(req.duration_seconds) &&
    p.resolutions.includes(req.resolution) &&
    p.aspect_ratios.includes(req.aspect_ratio) &&
    (!req.image_id || p.image_to_video)
  );
}

function refreshEstimate() {
  const req = readRequest();
  const options = chosenProviders().filter((p) => supports(p, req));
  const out = $('#gen-estimate', root);
  if (!options.length) {
    out.textContent = 'No available provider can make this.';
    return;
  }
  const best = options
    .map((p) => ({ p, cost: creditsFor(p.price_per_second, req.duration_seconds) }))
    .sort((a, b) => a.cost - b.cost || a.p.name.localeCompare(b.p.name))[0];
  out.textContent = `Estimate: ${best.cost} credits with ${best.p.name}`;
}

function readRequest() {
  const body = {
    prompt: $('#gen-prompt', root).value.trim(),
    provider: $('#gen-provider', root).value,
    duration_seconds: Number($('#gen-duration', root).value),
    resolution: $('#gen-resolution', root).value,
    aspect_ratio: $('#gen-aspect', root).value,
  };
  const model = $('#gen-model', root).value;
  if (model) body.model = model;
  const image = $('#gen-image', root).value;
  if (image) body.image_id = image;
  return body;
}

async function updateCredits() {
  try {
    const account = await api('/api/v1/credits');
    $('#gen-credits', root).textContent = `${account.balance} credits` +
      (account.held ? ` (${account.held} held)` : '');
  } catch {
    // Shown again after the next generation.
  }
}

function fillImages() {
  const select = $('#gen-image', root);
  const keep = select.value;
  select.replaceChildren(
    h('option', { value: '' }, 'None (from the prompt alone)'),
    ...images.map((v) => h('option', { value: v.id }, v.title || v.filename)),
  );
  if (images.some((v) => v.id === keep)) select.value = keep;
}

async function loadImages() {
  try {
    const page = await api('/api/v1/videos?limit=100');
    images = page.items.filter((v) => v.kind === 'image');
    fillImages();
  } catch {
    // The select keeps "None".
  }
}

async function uploadImage(file) {
  const token = await freshToken();
  const response = await fetch(`/api/v1/uploads/${encodeURIComponent(file.name)}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': file.type || 'application/octet-stream' },
    body: file,
  });
  const body = await response.json();
  if (!response.ok) throw new ApiError(response.status, body.error?.code, body.error?.message || 'Upload failed');
  if (body.kind !== 'image') throw new ApiError(422, 'not_an_image', 'That file is not an image');
  images.unshift(body);
  fillImages();
  $('#gen-image', root).value = body.id;
  refreshEstimate();
  return body;
}

function renderRow(g) {
  const progress = h('progress', { max: 100, value: g.progress, 'aria-label': `Generation ${g.status}` });
  const text = g.status === 'failed'
    ? `failed: ${g.error ? g.error.message : ''}`
    : g.status === 'succeeded'
      ? `done — ${g.credits_charged ?? 0} credits`
      : `${g.status} ${Math.round(g.progress)}%`;
  const cancel = ['queued', 'submitted', 'running'].includes(g.status)
    ? h('button', { type: 'button', class: 'secondary', onclick: () => cancelGeneration(g.id) }, 'Cancel')
    : null;
  return h(
    'li',
    { class: 'generation', dataset: { id: g.id, status: g.status } },
    h('span', { class: 'generation-prompt' }, g.prompt),
    h('span', { class: 'muted' }, ` · ${g.provider} · ${g.duration_seconds} s · ${g.resolution} ${g.aspect_ratio}`),
    h('div', { class: 'job-progress' }, progress, h('span', { class: 'generation-status' }, text), cancel),
  );
}

function upsert(g) {
  const before = rows.get(g.id)?.dataset.status;
  const row = renderRow(g);
  const old = rows.get(g.id);
  if (old) old.replaceWith(row);
  else $('#gen-list', root).prepend(row);
  rows.set(g.id, row);
  if (before && before !== g.status && ['succeeded', 'failed', 'canceled'].includes(g.status)) {
    updateCredits();
  }
}

async function cancelGeneration(id) {
  try {
    upsert(await api(`/api/v1/generations/${id}/cancel`, { method: 'POST' }));
  } catch (err) {
    announce(`Could not cancel: ${err.message}`);
  }
}

async function submit(event) {
  event.preventDefault();
  const error = $('#gen-error', root);
  error.textContent = '';
  const body = readRequest();
  if (!body.prompt) {
    error.textContent = 'Describe the video to make.';
    return;
  }
  const button = $('#gen-submit', root);
  button.disabled = true;
  try {
    const g = await api('/api/v1/generations', { method: 'POST', body });
    upsert(g);
    announce(`Generation queued with ${g.provider}`);
    updateCredits();
  } catch (err) {
    error.textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

function build() {
  const field = (id, label, control) => h('div', { class: 'field' }, h('label', { for: id }, label), control);
  const form = h(
    'form',
    { id: 'gen-form', onsubmit: submit, oninput: refreshEstimate, onchange: refreshEstimate },
    field('gen-prompt', 'Prompt', h('textarea', { id: 'gen-prompt', rows: 3, maxlength: 2000, required: true })),
    field('gen-provider', 'Provider', h('select', { id: 'gen-provider', onchange: refreshOptions })),
    field('gen-model', 'Model', h('select', { id: 'gen-model' })),
    h(
      'div',
      { class: 'gen-row' },
      field('gen-duration', 'Seconds', h('select', { id: 'gen-duration' })),
      field('gen-resolution', 'Resolution', h('select', { id: 'gen-resolution' })),
      field('gen-aspect', 'Aspect ratio', h('select', { id: 'gen-aspect' })),
    ),
    field('gen-image', 'Start from an image', h('select', { id: 'gen-image' })),
    field(
      'gen-image-file',
      'Or upload a new image',
      h('input', {
        id: 'gen-image-file',
        type: 'file',
        accept: 'image/jpeg,image/png,image/webp',
        async onchange(e) {
          const file = e.target.files[0];
          if (!file) return;
          try {
            await uploadImage(file);
            announce('Image uploaded');
          } catch (err) {
            $('#gen-error', root).textContent = err.message;
          }
          e.target.value = '';
        },
      }),
    ),
    h('p', { id: 'gen-estimate', class: 'muted', 'aria-live': 'polite' }),
    h('p', {}, 'Balance: ', h('span', { id: 'gen-credits' }, '…')),
    h('div', { class: 'actions' }, h('button', { id: 'gen-submit', type: 'submit' }, 'Generate')),
    h('p', { id: 'gen-error', class: 'error', role: 'alert' }),
  );
  root.replaceChildren(
    h('h2', { id: 'generate-title' }, 'Generate'),
    form,
    h('ul', { id: 'gen-list', class: 'jobs', 'aria-label': 'Generations' }),
  );
}

// Without the socket (polling fallback), unfinished generations are re-read.
async function pollUnfinished() {
  if (document.documentElement.dataset.live === 'ws') return;
  for (const [id, row] of rows) {
    if (!['queued', 'submitted', 'running'].includes(row.dataset.status)) continue;
    try {
      upsert(await api(`/api/v1/generations/${id}`));
    } catch {
      // Tried again on the next tick.
    }
  }
}

export function initGenerate(element) {
  root = element;
  build();
  setInterval(pollUnfinished, 3000);
}

export async function enterGenerate() {
  try {
    providers = (await api('/api/v1/providers')).items;
  } catch {
    providers = [];
  }
  const select = $('#gen-provider', root);
  select.replaceChildren(
    h('option', { value: AUTO }, 'Auto (cheapest available)'),
    ...providers.map((p) =>
      h(
        'option',
        { value: p.name, disabled: !p.configured || p.circuit === 'open' },
        `${p.name}${p.configured ? '' : ' (not configured)'} — ${p.price_per_second} credits/s`,
      )),
  );
  refreshOptions();
  await Promise.all([updateCredits(), loadImages()]);
  try {
    const page = await api('/api/v1/generations?limit=10');
    for (const g of page.items.reverse()) upsert(g);
  } catch {
    // The list fills from events.
  }
}

export function applyGenerationEvent(event) {
  if (!event.generation) return;
  upsert(event.generation);
  if (['generation.succeeded', 'generation.failed', 'generation.canceled'].includes(event.type)) {
    announce(`Generation ${event.generation.status}`);
  }
}

export function clearGenerate() {
  rows.clear();
  if (root) build();
}
