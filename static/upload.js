// Uploads with XMLHttpRequest: fetch() has no upload progress events (its
// request streams are Chromium-only and need HTTP/2), and xhr.abort() gives a
// real cancel that the server sees as a disconnect and cleans up after.

import { api, freshToken, refresh, ApiError } from './api.js';
import { h, formatBytes, formatSeconds, announce } from './dom.js';
import { inputValue, loadOperations, paramControl, paramOf } from './operations.js';
import { speedMeter } from './speed.js';
import { startTusUpload, tusAvailable, tusThreshold } from './tus-upload.js';

/**
 * Start sending `file` as `PUT /api/v1/uploads/{name}?process=...&preset=...`.
 * onProgress({loaded, total, speed, remaining}) fires as bytes leave.
 * Returns {promise, cancel}; the promise resolves with the created video
 * (with its `jobs`) and rejects with an ApiError (code 'canceled' on cancel).
 */
export function startUpload(file, { process = [], preset = '', onProgress = () => {} } = {}) {
  let xhr = null;
  let canceled = false;

  const send = (token) =>
    new Promise((resolve, reject) => {
      if (canceled) return reject(new ApiError(0, 'canceled', 'Canceled'));
      xhr = new XMLHttpRequest();
      const params = new URLSearchParams();
      if (process.length) params.set('process', process.join(','));
      if (preset) params.set('preset', preset); // a saved preset's operations, queued with the upload
      const query = params.toString() ? `?${params}` : '';
      xhr.open('PUT', `/api/v1/uploads/${encodeURIComponent(file.name)}${query}`);
      xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.responseType = 'json';
      const meter = speedMeter();
      xhr.upload.addEventListener('progress', (event) => {
        onProgress(meter(event.loaded, event.lengthComputable ? event.total : file.size));
      });
      xhr.addEventListener('load', () => {
        const body = xhr.response;
        if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
        const err = body && body.error ? body.error : {};
        reject(
          new ApiError(xhr.status, err.code || 'http_error', err.message || `Upload failed (${xhr.status})`, err.field),
        );
      });
      xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'The connection was lost')));
      xhr.addEventListener('abort', () => reject(new ApiError(0, 'canceled', 'Canceled')));
      xhr.send(file);
    });

  const run = async () => {
    const token = await freshToken();
    if (!token) throw new ApiError(401, 'logged_out', 'Please log in again');
    try {
      return await send(token);
    } catch (err) {
      // A token that died mid-upload: refresh and send once more.
      if (!canceled && err.status === 401 && (await refresh())) return send(await freshToken());
      throw err;
    }
  };

  return {
    promise: run(),
    cancel() {
      canceled = true;
      if (xhr) xhr.abort();
    },
  };
}

// ---------------------------------------------------------------------------
// The upload panel: drop zone, file picker, operation choices, one row per file.

const PARALLEL = 3; // more parallel uploads only split the same bandwidth
const queue = [];
const running = new Set();
let active = 0;
let panel = null;
let hooks = { onUploaded: () => {}, onJobs: () => {} };
let offered = []; // the operations shown, from the server's catalog

// How the panel presents an operation: its label and at most one param it
// offers next to it. Which operations exist, for which kinds, with which
// defaults, choices and bounds comes from GET /api/v1/operations.
const PRESENTATION = {
  frames: { label: 'Frames as a ZIP', param: 'fps', paramLabel: 'at fps' },
  transcode: { label: (op) => `MP4 renditions (${choiceRange(op, 'renditions')})` },
  hls: { label: 'HLS streaming' },
  thumbnail: { label: 'Thumbnail' },
  convert: { label: 'Convert to', param: 'container', paramLabel: 'Container for convert', hideParamLabel: true },
};

function choiceRange(op, name) {
  const choices = (paramOf(op, 'video', name) || {}).choices || [];
  return choices.length ? `${choices[0]}–${choices[choices.length - 1]}` : name;
}

function operationRow(op) {
  const shown = PRESENTATION[op.name] || {};
  const label = typeof shown.label === 'function' ? shown.label(op) : shown.label || op.name;
  const boxId = `op-${op.name}`;
  const row = h(
    'div',
    { class: 'op' },
    h('input', { id: boxId, name: 'op', type: 'checkbox', value: op.name }),
    h('label', { for: boxId, title: op.summary || null }, label),
  );
  // The offered param is one that videos take: images get the defaults.
  const param = shown.param && paramOf(op, 'video', shown.param);
  if (param) {
    const id = `${op.name}-${param.name}`;
    row.append(
      h('label', { for: id, class: shown.hideParamLabel ? 'visually-hidden' : 'sub' }, shown.paramLabel || param.name),
      paramControl(param, { id, name: id }),
    );
  }
  return row;
}

/** Fill the panel's operation choices from the server's catalog (after login). */
export async function showOperationChoices() {
  const list = panel.form.querySelector('.op-choices');
  try {
    const catalog = await loadOperations();
    offered = catalog.operations;
    list.replaceChildren(...offered.map(operationRow));
  } catch (err) {
    offered = [];
    list.replaceChildren(h('p', { class: 'error' }, `Could not load the operations: ${err.message}`));
  }
}

/**
 * What to ask for, from the checkboxes: operations with default params ride
 * along on the upload (`?process=`, queued in the same transaction as the
 * video); ones with a changed option are POSTed as jobs right after.
 */
function chosenOperations(file) {
  const form = panel.form;
  const kind = file.type.startsWith('image/') ? 'image' : 'video';
  const process = [];
  const jobs = [];
  for (const box of form.querySelectorAll('input[name="op"]:checked')) {
    const op = offered.find((o) => o.name === box.value);
    if (!op || !op.kinds.includes(kind)) continue; // would be a 400 for the whole upload
    const shown = PRESENTATION[op.name] || {};
    const param = shown.param && paramOf(op, kind, shown.param);
    const input = param && form.elements[`${op.name}-${param.name}`];
    const value = input ? inputValue(input, param) : '';
    if (value === '' || value === param.default) process.push(op.name);
    else jobs.push({ operation: op.name, params: { [param.name]: value } });
  }
  return { process, jobs };
}

function addRow(file) {
  const progress = h('progress', { max: 100, value: 0, 'aria-label': `Upload of ${file.name}` });
  const stats = h('span', { class: 'upload-stats muted' }, `0 B of ${formatBytes(file.size)}`);
  const status = h('span', { class: 'upload-status' }, 'Waiting');
  const cancel = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Cancel upload of ${file.name}` }, 'Cancel');
  const li = h(
    'li',
    { class: 'upload', dataset: { upload: file.name, state: 'waiting' } },
    h('div', { class: 'upload-head' }, h('strong', { class: 'upload-name' }, file.name), status),
    h('div', { class: 'upload-progress' }, progress, cancel),
    stats,
  );
  panel.list.prepend(li);
  return { li, progress, stats, status, cancel };
}

function enqueue(file) {
  const row = addRow(file);
  const item = { file, row, handle: null, canceled: false };
  row.cancel.addEventListener('click', () => {
    item.canceled = true;
    if (item.handle) item.handle.cancel();
    else finish(item, 'canceled', 'Canceled');
  });
  queue.push(item);
  pump();
}

function finish(item, state, text) {
  const { li, status, cancel } = item.row;
  li.dataset.state = state;
  status.textContent = text;
  status.className = `upload-status ${state === 'failed' ? 'error' : ''}`;
  cancel.hidden = true;
  if (state !== 'done') announce(`Upload of ${item.file.name}: ${text}`);
}

function pump() {
  while (active < PARALLEL && queue.length) {
    const item = queue.shift();
    if (item.canceled) continue;
    active += 1;
    running.add(item);
    run(item).finally(() => {
      running.delete(item);
      active -= 1;
      pump();
    });
  }
}

async function run(item) {
  const { file, row } = item;
  const { process, jobs } = chosenOperations(file);
  row.li.dataset.state = 'uploading';
  row.status.textContent = 'Uploading';
  // Large files go with tus: chunked, retried, resumable after a reload.
  const resumable = tusAvailable() && file.size >= tusThreshold();
  row.li.dataset.method = resumable ? 'tus' : 'put';
  const start = resumable ? startTusUpload : startUpload;
  item.handle = start(file, {
    process,
    preset: panel.form.elements.preset.value,
    onResume() {
      row.status.textContent = 'Resuming';
      announce(`Resuming the upload of ${file.name}`);
    },
    onProgress({ loaded, total, speed, remaining }) {
      const percent = total ? (loaded / total) * 100 : 0;
      row.progress.value = percent;
      row.stats.textContent =
        `${formatBytes(loaded)} of ${formatBytes(total)} · ${formatBytes(speed)}/s · ` +
        (loaded >= total ? 'checking the file…' : `${formatSeconds(remaining)} left`);
      if (loaded >= total) row.status.textContent = 'Processing';
    },
  });
  try {
    const video = await item.handle.promise;
    row.progress.value = 100;
    row.stats.textContent = `${formatBytes(video.size)} uploaded`;
    finish(item, 'done', 'Uploaded');
    announce(`${file.name} uploaded`);
    hooks.onUploaded(video);
    hooks.onJobs(video.jobs || []);
    for (const job of jobs) {
      try {
        hooks.onJobs([await api(`/api/v1/videos/${video.id}/jobs`, { method: 'POST', body: job })]);
      } catch (err) {
        announce(`${job.operation} for ${file.name} was not queued: ${err.message}`);
      }
    }
  } catch (err) {
    if (err.code === 'canceled') finish(item, 'canceled', 'Canceled');
    else finish(item, 'failed', err.message);
  }
}

export function initUploads(elements, options) {
  panel = elements; // {form, input, dropZone, list}
  hooks = { ...hooks, ...options };
  const { input, dropZone } = panel;
  input.addEventListener('change', () => {
    for (const file of input.files) enqueue(file);
    input.value = ''; // choosing the same file again fires 'change' again
  });
  // The whole zone takes drops; dragover must be canceled for drop to fire.
  dropZone.addEventListener('dragover', (event) => {
    event.preventDefault();
    dropZone.classList.add('dragging');
  });
  dropZone.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
  dropZone.addEventListener('drop', (event) => {
    event.preventDefault();
    dropZone.classList.remove('dragging');
    for (const file of event.dataTransfer.files) enqueue(file);
  });
  // A file dropped next to the zone would make the browser navigate to it
  // and lose the page (and every upload in flight).
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());
}

/** Stop everything (logout): abort uploads in flight, forget the queue. */
export function cancelAllUploads() {
  queue.length = 0;
  for (const item of running) {
    item.canceled = true;
    if (item.handle) item.handle.cancel();
  }
  if (panel) panel.list.replaceChildren();
}
