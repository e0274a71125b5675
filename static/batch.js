// Operations on many videos at once: the batch dialog (operations with their
// params, or a preset) sends POST /api/v1/jobs/batch, which queues every job
// or none; a refusal (quota, an invalid param, a video gone) is shown in the
// dialog and nothing was queued. Each accepted batch gets a row that follows
// GET /api/v1/batches/{id} (jobs counted by status) until no job is open,
// with "Cancel all".

import { api } from './api.js';
import { h, announce } from './dom.js';
import { loadOperations } from './operations.js';
import { bindPresetSelect, savePresetControl } from './presets.js';
import { describeSteps, stepsForm } from './steps-form.js';

const POLL_MS = 1000;
const STATUS_ORDER = ['queued', 'running', 'succeeded', 'failed', 'canceled'];

let dialog = null;
let listEl = null;
let hooks = { onQueued: () => {} };
const polls = new Map(); // batch id → timer

export function initBatches(elements, options) {
  dialog = elements.dialog;
  listEl = elements.list;
  hooks = { ...hooks, ...options };
  // Esc closes a <dialog> by itself; focus goes back to the button that opened it.
  dialog.addEventListener('close', () => dialog.replaceChildren());
}

/** Open the dialog for the videos `ids`. */
export async function openBatchDialog(ids) {
  if (!ids.length) return;
  let catalog;
  try {
    catalog = await loadOperations();
  } catch (err) {
    announce(`Could not load the operations: ${err.message}`);
    return;
  }
  const steps = stepsForm(catalog, { legend: 'Run these operations' });
  const preset = h('select', { id: 'batch-preset', dataset: { none: 'None: the operations ticked above' } });
  bindPresetSelect(preset);
  const toggleSteps = () => {
    steps.element.disabled = preset.value !== '';
  };
  preset.addEventListener('change', toggleSteps);
  const error = h('p', { class: 'error', role: 'alert' });
  const run = h('button', { type: 'submit' }, 'Run batch');
  const close = h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Close');
  const form = h(
    'form',
    { class: 'batch-form', method: 'dialog', novalidate: true }, // the server's message names the field
    h('h2', { id: 'batch-title' }, `Run operations on ${ids.length} ${ids.length === 1 ? 'video' : 'videos'}`),
    steps.element,
    savePresetControl(steps.steps),
    h('div', { class: 'field' }, h('label', { for: 'batch-preset' }, 'Or a preset'), preset),
    error,
    h('div', { class: 'actions' }, run, close),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const body = { video_ids: ids };
    if (preset.value) body.preset = preset.value;
    else body.operations = steps.steps();
    if (!body.preset && !body.operations.length) {
      error.textContent = 'Tick at least one operation, or choose a preset.';
      return;
    }
    run.disabled = true;
    try {
      const batch = await api('/api/v1/jobs/batch', { method: 'POST', body });
      dialog.close();
      follow(batch, body.preset ? `preset ${body.preset}` : describeSteps(body.operations));
      hooks.onQueued(batch);
    } catch (err) {
      // All or nothing: a refusal queued no job at all.
      error.textContent = `Nothing was queued: ${err.message}`;
      run.disabled = false;
    }
  });
  dialog.replaceChildren(form);
  toggleSteps();
  dialog.showModal();
}

function countsText(batch) {
  return STATUS_ORDER.map((s) => `${s} ${batch.counts[s] || 0}`).join(' · ');
}

/** A row for `batch` that follows its counts until it is done. */
function follow(batch, what) {
  const counts = h('span', { class: 'batch-counts', 'aria-live': 'off' });
  const progress = h('progress', { max: batch.job_count || 1, value: 0, 'aria-label': `Progress of the batch: ${what}` });
  const state = h('span', { class: 'badge' });
  const cancel = h('button', { type: 'button', class: 'secondary small' }, 'Cancel all');
  const li = h(
    'li',
    { class: 'batch', dataset: { batchId: batch.id } },
    h('div', { class: 'job-head' }, h('strong', {}, `Batch: ${what}`), h('span', { class: 'muted' }, `${batch.job_count} jobs`), state),
    progress,
    counts,
    cancel,
  );
  listEl.prepend(li);
  const show = (b) => {
    const finished = (b.counts.succeeded || 0) + (b.counts.failed || 0) + (b.counts.canceled || 0);
    progress.value = finished;
    counts.textContent = countsText(b);
    li.dataset.done = String(b.done);
    state.textContent = b.done ? 'done' : 'running';
    state.className = `badge ${b.done ? 'badge-succeeded' : 'badge-running'}`;
    cancel.hidden = b.done;
  };
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      show(await api(`/api/v1/batches/${batch.id}/cancel`, { method: 'POST' }));
      announce('Batch canceled');
    } catch (err) {
      announce(`Could not cancel the batch: ${err.message}`);
    } finally {
      cancel.disabled = false;
    }
  });
  show(batch);
  announce(`Batch of ${batch.job_count} jobs queued`);
  const poll = async () => {
    polls.delete(batch.id);
    try {
      const latest = await api(`/api/v1/batches/${batch.id}`);
      if (!li.isConnected) return;
      show(latest);
      if (latest.done) {
        announce(`Batch done: ${countsText(latest)}`);
        return;
      }
    } catch (err) {
      if (err.status === 404 || err.status === 401) return;
    }
    if (li.isConnected) polls.set(batch.id, setTimeout(poll, POLL_MS));
  };
  if (!batch.done) polls.set(batch.id, setTimeout(poll, POLL_MS));
}

/** Logout: stop following, forget the rows. */
export function clearBatches() {
  for (const timer of polls.values()) clearTimeout(timer);
  polls.clear();
  if (listEl) listEl.replaceChildren();
  if (dialog && dialog.open) dialog.close();
}
