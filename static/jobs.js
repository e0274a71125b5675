// The job list: one store of jobs by id, fed by the initial load, WebSocket
// events, snapshots and polls alike, and rows that are updated in place (not
// re-rendered) so keyboard focus on a Cancel button survives progress ticks.

import { api } from './api.js';
import { h, formatBytes, announce } from './dom.js';

const FINISHED = new Set(['succeeded', 'failed', 'canceled']);
const LIST_LIMIT = 50;

const jobs = new Map(); // id → job JSON (with outputs once fetched)
const rows = new Map(); // id → {li, parts}
let listEl = null;
let emptyEl = null;
let hooks = { videoName: () => '', onFinished: () => {}, onOutputs: () => {} };

export function initJobs(element, emptyMessage, options) {
  listEl = element;
  emptyEl = emptyMessage;
  hooks = { ...hooks, ...options };
}

export function clearJobs() {
  jobs.clear();
  rows.clear();
  if (listEl) listEl.replaceChildren();
  if (emptyEl) emptyEl.hidden = false;
}

export const isFinished = (job) => FINISHED.has(job.status);

export function jobsOfVideo(videoId) {
  return [...jobs.values()].filter((j) => j.video_id === videoId);
}

/** Merge what we learned about a job (full JSON or an event's fields). */
export function upsertJob(update) {
  const old = jobs.get(update.id);
  // A finished job never goes back: a poll answer that left the server before
  // the final event must not undo it.
  if (old && isFinished(old) && !isFinished(update)) return;
  const job = { ...old, ...update };
  if (old && old.outputs && !update.outputs) job.outputs = old.outputs;
  // Only a succeeded job has outputs; the empty list a new job comes with
  // must not pass for "already fetched" when it succeeds.
  if (job.status !== 'succeeded') delete job.outputs;
  jobs.set(job.id, job);
  render(job);
  if (update.outputs) hooks.onOutputs(job);
  if (old && !isFinished(old) && isFinished(job)) {
    announce(`${job.operation} job for ${hooks.videoName(job.video_id) || 'a video'} ${job.status}`);
    if (job.status === 'succeeded' && !job.outputs) fetchJob(job.id);
    hooks.onFinished(job);
  }
}

/** GET the job's full JSON: its outputs and their signed URLs. */
export async function fetchJob(id) {
  try {
    const job = await api(`/api/v1/jobs/${id}`);
    upsertJob(job);
    return job;
  } catch (err) {
    if (err.status === 404) removeJob(id); // its video was deleted
    return null;
  }
}

export function removeJob(id) {
  jobs.delete(id);
  const row = rows.get(id);
  if (row) row.li.remove();
  rows.delete(id);
  if (emptyEl) emptyEl.hidden = jobs.size > 0;
}

export function removeJobsOfVideo(videoId) {
  for (const job of jobsOfVideo(videoId)) removeJob(job.id);
}

/** A WebSocket event: job.queued/started/progress/succeeded/failed/canceled. */
export function applyJobEvent(event) {
  const update = event.job ? { ...event.job } : { id: event.job_id, video_id: event.video_id };
  if (event.status) update.status = event.status;
  if (typeof event.progress === 'number') update.progress = event.progress;
  if (!jobs.has(update.id) && !update.operation) {
    // An event about a job we have never seen (made in another tab): load it.
    fetchJob(update.id);
    return;
  }
  upsertJob(update);
}

/** Jobs we believe unfinished that `seen` does not list have changed state: ask. */
function reconcile(seen) {
  for (const job of jobs.values()) {
    if (!isFinished(job) && !seen.has(job.id)) fetchJob(job.id);
  }
}

export function applySnapshot(list) {
  for (const job of list) upsertJob(job);
  reconcile(new Set(list.map((j) => j.id)));
}

/** The polling fallback: running and queued jobs, then whatever left those lists. */
export async function pollActive() {
  const [running, queued] = await Promise.all([
    api('/api/v1/jobs?status=running&limit=100'),
    api('/api/v1/jobs?status=queued&limit=100'),
  ]);
  const items = [...running.items, ...queued.items];
  for (const job of items) upsertJob(job);
  reconcile(new Set(items.map((j) => j.id)));
}

export async function loadJobs() {
  const page = await api(`/api/v1/jobs?limit=${LIST_LIMIT}`);
  // Oldest first, so that each new row goes on top as in the server's order.
  for (const job of page.items.reverse()) upsertJob(job);
  // Outputs (signed links) of the newest few finished jobs.
  page.items
    .filter((j) => j.status === 'succeeded')
    .slice(-10)
    .forEach((j) => fetchJob(j.id));
}

async function cancel(id, button) {
  button.disabled = true;
  try {
    upsertJob(await api(`/api/v1/jobs/${id}/cancel`, { method: 'POST' }));
  } catch (err) {
    // 409 job_finished: it ended meanwhile; the next event or poll shows how.
    if (err.status !== 409) announce(`Could not cancel: ${err.message}`);
    button.disabled = false;
  }
}

/** Links to a finished job's outputs; HLS is a playlist to open, not to save. */
export function outputLinks(job) {
  return (job.outputs || []).map((o) => {
    const name = o.name.split('/').pop();
    const isPlaylist = o.name.endsWith('.m3u8');
    return h(
      'li',
      {},
      h('a', { href: o.url, download: isPlaylist ? null : name, class: 'output-link' }, o.name),
      h('span', { class: 'muted' }, ` ${formatBytes(o.size)}`),
    );
  });
}

function statusText(job) {
  if (job.status === 'failed') return `Failed: ${job.error || 'the processing did not finish'}`;
  if (job.status === 'canceled') return 'Canceled';
  if (job.status === 'running' && job.cancel_requested) return 'Canceling…';
  return '';
}

function render(job) {
  let row = rows.get(job.id);
  if (!row) {
    const label = `${job.operation} of ${hooks.videoName(job.video_id) || 'video'}`;
    const parts = {
      badge: h('span', { class: 'badge' }),
      progress: h('progress', { max: 100, value: 0, 'aria-label': `Progress of ${label}` }),
      percent: h('span', { class: 'percent' }),
      message: h('p', { class: 'job-message' }),
      outputs: h('ul', { class: 'outputs' }),
      cancel: h('button', { type: 'button', class: 'secondary small', 'aria-label': `Cancel ${label}` }, 'Cancel'),
      video: h('span', { class: 'job-video' }),
    };
    parts.cancel.addEventListener('click', () => cancel(job.id, parts.cancel));
    const li = h(
      'li',
      { class: 'job', dataset: { jobId: job.id } },
      h('div', { class: 'job-head' }, h('strong', {}, job.operation || 'job'), parts.video, parts.badge),
      h('div', { class: 'job-progress' }, parts.progress, parts.percent, parts.cancel),
      parts.message,
      parts.outputs,
    );
    row = { li, parts };
    rows.set(job.id, row);
    listEl.prepend(li);
    if (emptyEl) emptyEl.hidden = true;
  }
  const { li, parts } = row;
  const progress = job.status === 'succeeded' ? 100 : Math.max(0, Math.min(100, job.progress || 0));
  li.dataset.status = job.status;
  parts.video.textContent = hooks.videoName(job.video_id) || '';
  parts.badge.textContent = job.status;
  parts.badge.className = `badge badge-${job.status}`;
  parts.progress.value = progress;
  parts.percent.textContent = `${Math.round(progress)}%`;
  parts.cancel.hidden = isFinished(job);
  const message = statusText(job);
  parts.message.textContent = message;
  parts.message.hidden = !message;
  parts.message.classList.toggle('error', job.status === 'failed');
  if (job.outputs) parts.outputs.replaceChildren(...outputLinks(job));
}

/** Video names arrive after jobs sometimes (uploads from another tab). */
export function refreshVideoNames() {
  for (const job of jobs.values()) render(job);
}
