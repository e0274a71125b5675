// One audit row as people read it: what happened, when, from where.
// Shared by "Recent security events" and the admin console's audit log.

import { h } from './dom.js';

const WORDS = {
  'auth.login': 'Logged in',
  'auth.login_failed': 'Failed login',
  'auth.logout': 'Logged out',
  'auth.refresh_reuse': 'Reused session token: session ended',
  'auth.register': 'Account created',
  'apikey.create': 'API key created',
  'apikey.revoke': 'API key revoked',
  'user.role_change': 'Role changed',
  'user.quota_change': 'Quota changed',
  'user.disable': 'Account disabled',
  'user.enable': 'Account enabled',
  'user.create_cli': 'Account set from the command line',
  'video.delete': 'Video deleted',
  'webhook.create': 'Webhook created',
  'webhook.delete': 'Webhook deleted',
  'admin.audit_export': 'Audit log exported',
  'password.change': 'Password changed',
  'password.reset_requested': 'Password reset link sent',
  'password.reset': 'Password reset',
  'email.verify': 'Email verified',
  'email.change': 'Email address changed',
  'credits.change': 'Credits granted or adjusted',
};

export function actionWords(action) {
  return WORDS[action] || action;
}

function detailText(entry) {
  const d = entry.detail || {};
  if ('from' in d && 'to' in d) return `${d.from} → ${d.to}`;
  if (d.reason) return d.reason.replaceAll('_', ' ');
  if (d.name) return d.name;
  return '';
}

/** An <li> for one entry; `admin` adds the actor and target. */
export function auditItem(entry, { admin = false } = {}) {
  const when = new Date(entry.created_at);
  const parts = [
    h('time', { datetime: entry.created_at }, when.toLocaleString()),
    entry.client_ip ? h('span', { class: 'muted' }, entry.client_ip) : null,
  ];
  if (admin) {
    const actor = entry.actor.user_id
      ? `${entry.actor.type} ${entry.actor.user_id}`
      : entry.actor.type;
    parts.push(h('span', { class: 'muted audit-actor' }, `by ${actor}`));
    if (entry.target) {
      parts.push(h('span', { class: 'muted audit-target' }, `on ${entry.target.type} ${entry.target.id || ''}`));
    }
  }
  const detail = detailText(entry);
  return h(
    'li',
    { class: 'audit-item', tabindex: '-1', dataset: { action: entry.action, outcome: entry.outcome } },
    h(
      'div',
      { class: 'audit-head' },
      h('strong', {}, actionWords(entry.action)),
      entry.outcome === 'success' ? null : h('span', { class: `badge badge-failed` }, entry.outcome),
      detail ? h('span', {}, detail) : null,
    ),
    h('div', { class: 'audit-meta' }, parts),
  );
}
