// The admin console's users: search, then per user change the role and quota,
// disable or enable. Every change goes to /api/v1/admin/users/{id}.

import { api } from './api.js';
import { announce, formatBytes, h } from './dom.js';
import { pagedList, queryString } from './paged.js';

const ROLES = ['admin', 'user', 'viewer'];
const GB = 1e9;

function field(label, control) {
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

function userRow(user, { selfId, onChange }) {
  const key = user.id.slice(0, 8);
  const status = h('span', { class: 'muted user-status' });
  const role = h('select', { id: `role-${key}` }, ROLES.map((r) => h('option', { value: r, selected: r === user.role }, r)));
  const quota = h('input', {
    id: `quota-${key}`, type: 'number', min: '0', step: '0.1', value: String(+(user.quota_bytes / GB).toFixed(3)),
  });
  const save = h('button', { type: 'submit', class: 'small' }, 'Save');
  const toggle = h('button', { type: 'button', class: user.disabled ? 'small secondary' : 'small danger' },
    user.disabled ? 'Enable' : 'Disable');
  const error = h('p', { class: 'error', role: 'alert' });
  if (user.id === selfId) toggle.disabled = true; // the server refuses it too

  function show(u) {
    user = u;
    status.textContent = `${u.role}${u.disabled ? ', disabled' : ''} · ${formatBytes(u.used_bytes)} used · ${u.video_count ?? 0} videos`;
    toggle.textContent = u.disabled ? 'Enable' : 'Disable';
    toggle.className = u.disabled ? 'small secondary' : 'small danger';
    row.dataset.disabled = String(u.disabled);
    row.dataset.role = u.role;
  }

  const form = h('form', { class: 'user-form' },
    field('Role', role), field('Quota (GB)', quota), h('div', { class: 'actions' }, save, toggle), error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const body = {};
    if (role.value !== user.role) body.role = role.value;
    const bytes = Math.round(Number(quota.value) * GB);
    if (Number.isFinite(bytes) && bytes !== user.quota_bytes) body.quota_bytes = bytes;
    if (!Object.keys(body).length) return;
    try {
      const updated = await api(`/api/v1/admin/users/${user.id}`, { method: 'PATCH', body });
      show({ ...updated, video_count: user.video_count });
      announce(`Saved ${user.email}`);
      onChange();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  toggle.addEventListener('click', async () => {
    error.textContent = '';
    const action = user.disabled ? 'enable' : 'disable';
    try {
      const updated = await api(`/api/v1/admin/users/${user.id}/${action}`, { method: 'POST' });
      show({ ...updated, video_count: user.video_count });
      announce(`${user.email} ${action}d`);
      onChange();
    } catch (err) {
      error.textContent = err.message;
    }
  });

  const row = h('li', { class: 'admin-user', tabindex: '-1', dataset: { id: user.id } },
    h('div', { class: 'audit-head' }, h('strong', { class: 'user-email' }, user.email), status), form);
  show(user);
  return row;
}

export function initAdminUsers(container, hooks) {
  const q = h('input', { id: 'admin-user-q', type: 'search', maxlength: '254' });
  const role = h('select', { id: 'admin-user-role' }, h('option', { value: '' }, 'any'), ROLES.map((r) => h('option', { value: r }, r)));
  const disabled = h('select', { id: 'admin-user-disabled' },
    h('option', { value: '' }, 'any'), h('option', { value: 'false' }, 'active'), h('option', { value: 'true' }, 'disabled'));
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Search users' },
    field('Email contains', q), field('Role', role), field('Status', disabled),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'small' }, 'Search')));
  container.append(form);
  const list = pagedList(container, {
    label: 'Users',
    load: (cursor) => api(`/api/v1/admin/users${queryString({
      q: q.value.trim(), role: role.value, disabled: disabled.value, limit: 20, cursor,
    })}`),
    render: (user) => userRow(user, hooks),
    empty: 'No users match.',
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    list.reload();
  });
  return list.reload();
}
