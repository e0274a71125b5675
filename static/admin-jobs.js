// The admin console's jobs of every user, filtered by status, operation and user.

import { api } from './api.js';
import { h } from './dom.js';
import { pagedList, queryString } from './paged.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'];

function field(label, control) {
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

function jobRow(job) {
  return h('li', { class: 'admin-job', tabindex: '-1', dataset: { id: job.id, status: job.status } },
    h('div', { class: 'audit-head' },
      h('strong', {}, job.operation),
      h('span', { class: `badge badge-${job.status}` }, job.status),
      h('span', { class: 'muted' }, `${Math.round(job.progress)}%`)),
    h('div', { class: 'audit-meta muted' },
      h('time', { datetime: job.created_at }, new Date(job.created_at).toLocaleString()),
      h('span', { class: 'audit-actor' }, `user ${job.user_id}`),
      job.error ? h('span', { class: 'error' }, job.error) : null));
}

export function initAdminJobs(container) {
  const status = h('select', { id: 'admin-job-status' }, h('option', { value: '' }, 'any'), STATUSES.map((s) => h('option', { value: s }, s)));
  const operation = h('input', { id: 'admin-job-operation', type: 'text', maxlength: '64' });
  const user = h('input', { id: 'admin-job-user', type: 'text', maxlength: '36', placeholder: 'user id' });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter jobs' },
    field('Status', status), field('Operation', operation), field('User id', user),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'small' }, 'Filter')));
  container.append(form);
  const list = pagedList(container, {
    label: 'Jobs of every user',
    load: (cursor) => api(`/api/v1/admin/jobs${queryString({
      status: status.value, operation: operation.value.trim(), user_id: user.value.trim(), limit: 20, cursor,
    })}`),
    render: jobRow,
    empty: 'No jobs match.',
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    list.reload();
  });
  return list.reload();
}
