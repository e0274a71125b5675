// The admin console's audit log: filters, pages, and a JSON Lines export.

import { ApiError, api, freshToken } from './api.js';
import { announce, h } from './dom.js';
import { auditItem } from './audit-view.js';
import { pagedList, queryString } from './paged.js';

function field(label, control) {
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

// <input type="datetime-local"> is local time without a zone: send it as UTC.
function instant(input) {
  return input.value ? new Date(input.value).toISOString() : '';
}

export function initAdminAudit(container) {
  const action = h('input', { id: 'admin-audit-action', type: 'text', maxlength: '64', placeholder: 'auth. or auth.login' });
  const actor = h('input', { id: 'admin-audit-actor', type: 'text', maxlength: '36', placeholder: 'user id' });
  const target = h('input', { id: 'admin-audit-target', type: 'text', maxlength: '254', placeholder: 'id' });
  const since = h('input', { id: 'admin-audit-since', type: 'datetime-local' });
  const until = h('input', { id: 'admin-audit-until', type: 'datetime-local' });
  const exportButton = h('button', { type: 'button', class: 'small secondary' }, 'Export JSON Lines');
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter the audit log' },
    field('Action', action), field('Actor', actor), field('Target', target),
    field('From', since), field('Until', until),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'small' }, 'Filter'), exportButton), error);
  container.append(form);
  const filters = () => ({
    action: action.value.trim(),
    actor: actor.value.trim(),
    target_id: target.value.trim(),
    since: instant(since),
    until: instant(until),
  });
  const list = pagedList(container, {
    label: 'Audit log',
    load: (cursor) => api(`/api/v1/admin/audit${queryString({ ...filters(), limit: 20, cursor })}`),
    render: (entry) => auditItem(entry, { admin: true }),
    empty: 'No entries match.',
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    list.reload();
  });
  exportButton.addEventListener('click', async () => {
    error.textContent = '';
    try {
      // A bearer token cannot ride on a plain link: fetch, then save the file.
      const response = await fetch(`/api/v1/admin/audit/export${queryString(filters())}`, {
        headers: { Authorization: `Bearer ${await freshToken()}` },
      });
      if (!response.ok) throw new ApiError(response.status, 'http_error', `Export failed (${response.status})`);
      const url = URL.createObjectURL(await response.blob());
      const link = h('a', { href: url, download: 'audit.jsonl', hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      announce('Audit log exported');
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return list.reload();
}
