// The video view: the player on a signed content URL (a plain <video src> can
// send no Authorization header, and the signed URL lets it make the Range
// requests seeking needs), metadata, thumbnail, outputs, HLS link, new jobs,
// delete.

import { api } from './api.js';
import { h, $, formatBytes, formatSeconds, announce } from './dom.js';
import { detailsForm } from './details.js';
import { sharePanel } from './shares.js';
import { captionsPanel } from './captions.js';
import { fetchJob, jobsOfVideo, upsertJob, outputLinks } from './jobs.js';
import { loadOperations, operationsFor, paramFields, readParams } from './operations.js';

let section = null;
let current = null; // the video shown
let hooks = { onDeleted: () => {}, onJobCreated: () => {} };

// The signed source link lasts the video's duration plus the server's TTL.
// A tab kept open longer (paused, or seeking back an hour later) would find
// it expired, so the player fetches a new one before that — a minute early,
// or a fifth of a short lifetime — and swaps it in where it was.
const RENEW_LEAD_SECONDS = 60;
const RECOVER_EVERY_MS = 30000; // after a load error, at most one new link per this
let renewTimer = null;
let lastRecovery = 0;

export function initPlayer(element, options) {
  section = element;
  hooks = { ...hooks, ...options };
}

export const shownVideoId = () => (current ? current.id : null);

export function hidePlayer() {
  current = null;
  clearTimeout(renewTimer);
  renewTimer = null;
  const media = section.querySelector('video');
  if (media) {
    // Release the connection the element holds open.
    media.removeAttribute('src');
    media.load();
  }
  section.replaceChildren();
  section.hidden = true;
}

function metadataList(video) {
  const m = video.metadata || {};
  const rows = [
    ['Size', formatBytes(video.size)],
    ['Type', video.content_type],
    ['Duration', m.duration ? formatSeconds(m.duration) : null],
    ['Dimensions', m.width && m.height ? `${m.width} × ${m.height}` : null],
    ['Frame rate', m.fps ? `${Math.round(m.fps * 100) / 100} fps` : null],
    ['Video codec', m.video_codec],
    ['Audio codec', m.audio_codec],
    ['Bitrate', m.bitrate ? `${Math.round(m.bitrate / 1000)} kbit/s` : null],
    ['Rotation', m.rotation ? `${m.rotation}°` : null],
    ['Uploaded', video.created_at ? new Date(video.created_at).toLocaleString() : null],
  ].filter(([, value]) => value);
  return h('dl', { class: 'meta' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
}

async function copyText(input, button) {
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // No async clipboard (plain http on a LAN address is not a secure
    // context): select the text so Ctrl+C works, and try the old command.
    input.select();
    document.execCommand('copy');
  }
  button.textContent = 'Copied';
  announce('HLS link copied');
  setTimeout(() => {
    button.textContent = 'Copy';
  }, 2000);
}

function jobForm(video, catalog) {
  const operations = operationsFor(catalog, video.kind);
  const select = h(
    'select',
    { id: 'new-job-op', name: 'operation' },
    operations.map((op) => h('option', { value: op.name, title: op.summary || null }, op.name)),
  );
  const fields = h('div', { class: 'op-fields' });
  const status = h('p', { class: 'form-status', role: 'status' });
  const showFields = () => {
    const op = operations.find((o) => o.name === select.value);
    fields.replaceChildren(...(op ? paramFields(op, video.kind) : []));
  };
  select.addEventListener('change', showFields);
  showFields();
  const form = h(
    'form',
    { class: 'job-form', 'aria-labelledby': 'run-op-title' },
    h('div', { class: 'field' }, h('label', { for: 'new-job-op' }, 'Operation'), select),
    fields,
    h('button', { type: 'submit' }, 'Run'),
    status,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const params = readParams(fields);
    status.textContent = 'Queuing…';
    status.classList.remove('error');
    try {
      const job = await api(`/api/v1/videos/${video.id}/jobs`, {
        method: 'POST',
        body: { operation: select.value, params },
      });
      upsertJob(job);
      hooks.onJobCreated(job);
      status.textContent = `${job.operation} queued`;
    } catch (err) {
      status.textContent = err.message;
      status.classList.add('error');
    }
  });
  return form;
}

/** Outputs of the shown video's finished jobs: links, thumbnail, HLS URL. */
export function renderOutputs() {
  if (!current) return;
  const done = jobsOfVideo(current.id).filter((j) => j.status === 'succeeded' && j.outputs);
  const outputs = done.flatMap((j) => j.outputs);
  const thumb = outputs.find((o) => o.name === 'thumbnail.jpg');
  const hls = outputs.find((o) => o.name.endsWith('master.m3u8'));

  const thumbSlot = $('.thumb-slot', section);
  thumbSlot.replaceChildren(
    ...(thumb ? [h('img', { src: thumb.url, alt: `Thumbnail of ${current.filename}`, class: 'thumb' })] : []),
  );
  const media = $('video', section);
  if (media && thumb && !media.getAttribute('poster')) media.setAttribute('poster', thumb.url);

  const list = $('.video-outputs', section);
  list.replaceChildren(...done.flatMap((j) => outputLinks(j)));
  $('.no-outputs', section).hidden = outputs.length > 0;

  const hlsSlot = $('.hls-slot', section);
  if (!hls) {
    hlsSlot.replaceChildren();
    return;
  }
  const input = h('input', { id: 'hls-url', type: 'text', readonly: true, value: hls.url });
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  copy.addEventListener('click', () => copyText(input, copy));
  hlsSlot.replaceChildren(
    h('label', { for: 'hls-url' }, 'HLS playlist (for any HLS player)'),
    h('div', { class: 'copy-row' }, input, copy),
  );
}

export async function showVideo(video) {
  if (current && current.id === video.id) return;
  hidePlayer();
  current = video;
  const isImage = video.kind === 'image';
  const media = isImage
    ? h('img', { class: 'media', alt: video.filename })
    : h('video', { class: 'media', controls: true, preload: 'metadata', playsinline: true });
  const jobFormSlot = h('div', { class: 'job-form-slot' });
  loadOperations()
    .then((catalog) => {
      if (current === video) jobFormSlot.replaceChildren(jobForm(video, catalog));
    })
    .catch((err) => {
      if (current === video) {
        jobFormSlot.replaceChildren(h('p', { class: 'error' }, `Could not load the operations: ${err.message}`));
      }
    });
  const del = h('button', { type: 'button', class: 'danger' }, 'Delete video');
  del.addEventListener('click', () => deleteVideo(video, del));
  section.replaceChildren(
    h('h2', { id: 'player-title', tabindex: '-1' }, video.title || video.filename),
    media,
    h('div', { class: 'thumb-slot' }),
    metadataList(video),
    detailsForm(video),
    ...(isImage ? [] : [captionsPanel(video, media)]),
    sharePanel(video),
    h('h3', {}, 'Outputs'),
    h('p', { class: 'no-outputs muted' }, 'None yet: run an operation below.'),
    h('ul', { class: 'outputs video-outputs' }),
    h('div', { class: 'hls-slot field' }),
    h('h3', { id: 'run-op-title' }, 'Run an operation'),
    jobFormSlot,
    h('div', { class: 'danger-zone' }, del),
  );
  section.hidden = false;
  $('#player-title', section).focus();

  if (!isImage) {
    media.addEventListener('error', () => {
      // A link that expired while the tab slept: one new link, same position.
      if (current !== video || Date.now() - lastRecovery < RECOVER_EVERY_MS) return;
      lastRecovery = Date.now();
      renewSource(video, media);
    });
  }
  try {
    await loadSource(video, media, false);
  } catch (err) {
    announce(`Could not load the video: ${err.message}`);
  }
  renderOutputs();
  // This video's jobs (older ones may not be in the job list yet), with
  // fresh signed output links.
  try {
    const page = await api(`/api/v1/jobs?video_id=${video.id}&limit=100`);
    for (const job of page.items) upsertJob(job);
    await Promise.all(page.items.filter((j) => j.status === 'succeeded').map((j) => fetchJob(j.id)));
  } catch {
    // The list stays as it is; links already shown still work.
  }
  if (current === video) renderOutputs();
}

/** Point the player at a fresh signed link; `resume` keeps its position and play state. */
async function loadSource(video, media, resume) {
  const { url, expires_in: lifetime } = await api(`/api/v1/videos/${video.id}/content-url`);
  if (current !== video) return;
  if (resume) swapSource(media, url);
  else media.src = url;
  // Measured from now on this machine's clock (expires_in), as for tokens.
  const lead = Math.min(RENEW_LEAD_SECONDS, lifetime / 5);
  clearTimeout(renewTimer);
  renewTimer = setTimeout(() => renewSource(video, media), Math.max(lifetime - lead, 1) * 1000);
}

async function renewSource(video, media) {
  if (current !== video) return;
  try {
    await loadSource(video, media, true);
  } catch {
    // Offline for a moment, or the session is being renewed: try again soon.
    clearTimeout(renewTimer);
    renewTimer = setTimeout(() => renewSource(video, media), 10000);
  }
}

function swapSource(media, url) {
  const time = media.currentTime;
  const playing = !media.paused && !media.ended;
  media.src = url;
  if (time === 0 && !playing) return;
  media.addEventListener(
    'loadedmetadata',
    () => {
      media.currentTime = time;
      if (playing) media.play().catch(() => {});
    },
    { once: true },
  );
}

async function deleteVideo(video, button) {
  if (!window.confirm(`Delete ${video.filename} and all its outputs?`)) return;
  button.disabled = true;
  try {
    await api(`/api/v1/videos/${video.id}`, { method: 'DELETE' });
    announce(`${video.filename} deleted`);
    hidePlayer();
    hooks.onDeleted(video.id);
  } catch (err) {
    button.disabled = false;
    announce(`Could not delete: ${err.message}`);
  }
}
