// The admin console: system summary, users, jobs across users, the audit log.
// Shown only to administrators (the server refuses everyone else anyway).

import { api } from './api.js';
import { $, h, formatBytes } from './dom.js';
import { initAdminAudit } from './admin-audit.js';
import { initAdminJobs } from './admin-jobs.js';
import { initAdminUsers } from './admin-users.js';

function term(name, value) {
  return [h('dt', {}, name), h('dd', {}, String(value))];
}

function counts(map) {
  const entries = Object.entries(map || {});
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(', ') : 'none';
}

async function loadSummary(box) {
  const s = await api('/api/v1/admin/summary');
  const workers = s.workers.length
    ? s.workers.map((w) => `${w.worker_id} (${w.running}/${w.concurrency})`).join(', ')
    : 'none';
  box.replaceChildren(
    h(
      'dl',
      { class: 'meta summary' },
      term('Users', `${s.users.total} (${counts(s.users.by_role)}; ${s.users.disabled} disabled)`),
      term('Videos', s.videos),
      term('Stored', formatBytes(s.bytes_stored)),
      term('Jobs', counts(s.jobs_by_status)),
      term('Workers (seen in the last minute)', `${s.workers.length}: ${workers}`),
    ),
  );
}

function part(id, title) {
  const section = h('section', { class: 'admin-part', 'aria-labelledby': id }, h('h3', { id }, title));
  return section;
}

export async function showAdminConsole(section) {
  const me = await api('/api/v1/me');
  if (me.role !== 'admin') {
    hideAdminConsole(section);
    return;
  }
  const summaryBox = h('div', { id: 'admin-summary' }, h('p', { class: 'muted' }, 'Loading…'));
  const refresh = h('button', { type: 'button', class: 'secondary small' }, 'Refresh');
  const summary = part('admin-summary-title', 'System');
  summary.append(summaryBox, refresh);
  const users = part('admin-users-title', 'Users');
  const jobs = part('admin-jobs-title', 'Jobs of every user');
  const audit = part('admin-audit-title', 'Audit log');
  section.replaceChildren(h('h2', { id: 'admin-title' }, 'Administration'), summary, users, jobs, audit);
  section.hidden = false;
  const showSummary = () => loadSummary(summaryBox).catch((err) => {
    summaryBox.replaceChildren(h('p', { class: 'error', role: 'alert' }, err.message));
  });
  refresh.addEventListener('click', showSummary);
  await Promise.all([
    showSummary(),
    initAdminUsers(users, { selfId: me.id, onChange: showSummary }),
    initAdminJobs(jobs),
    initAdminAudit(audit),
  ]);
}

export function hideAdminConsole(section) {
  section.hidden = true;
  section.replaceChildren();
}

export const adminSection = () => $('#admin-console');
