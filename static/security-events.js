// "Recent security events": the signed-in user's own audit rows
// (GET /api/v1/me/security-events), newest first.

import { api } from './api.js';
import { h } from './dom.js';
import { auditItem } from './audit-view.js';
import { pagedList } from './paged.js';

export function showSecurityEvents(section) {
  section.replaceChildren(
    h('h2', { id: 'security-title' }, 'Recent security events'),
    h('p', { class: 'muted' }, 'Sign-ins, keys and changes to your account. Something you do not recognise? Change your password.'),
  );
  const events = pagedList(section, {
    label: 'Security events',
    load: (cursor) => api(`/api/v1/me/security-events?limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
    render: (entry) => auditItem(entry),
    empty: 'No events yet.',
  });
  section.hidden = false;
  return events.reload();
}

export function hideSecurityEvents(section) {
  section.hidden = true;
  section.replaceChildren();
}
