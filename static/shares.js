// Share links of the video shown: make one (expiry, password, what it shows,
// download or not), copy its public URL, see its views, revoke it.

import { api } from './api.js';
import { h, announce } from './dom.js';

const EXPIRIES = [
  ['', 'Never'],
  ['3600', '1 hour'],
  ['86400', '1 day'],
  ['604800', '7 days'],
  ['2592000', '30 days'],
];
const EXPOSES = [['video', 'Video'], ['hls', 'HLS'], ['thumbnail', 'Thumbnail']];

function linkRow(video, share, refresh) {
  const url = h('input', { type: 'text', readonly: true, value: share.url, 'aria-label': 'Share link' });
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(share.url);
    } catch {
      url.select();
      document.execCommand('copy');
    }
    announce('Share link copied');
  });
  const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
  revoke.addEventListener('click', async () => {
    revoke.disabled = true;
    try {
      await api(`/api/v1/videos/${video.id}/shares/${share.id}`, { method: 'DELETE' });
      announce('Share link revoked');
      refresh();
    } catch (err) {
      revoke.disabled = false;
      announce(`Could not revoke: ${err.message}`);
    }
  });
  const facts = [
    `${share.view_count} ${share.view_count === 1 ? 'view' : 'views'}`,
    share.password_protected ? 'password' : null,
    share.expires_at ? `expires ${new Date(share.expires_at).toLocaleString()}` : null,
    share.exposes.join(', '),
    share.download ? 'download allowed' : null,
  ].filter(Boolean).join(' · ');
  const embed = share.embed_html
    ? h(
      'details',
      { class: 'share-embed' },
      h('summary', {}, 'Embed code'),
      copyField(share.embed_html, 'Embed code', 'Embed code copied'),
    )
    : null;
  return h('li', { class: 'share-link' }, url, copy, revoke, h('span', { class: 'muted' }, facts), embed);
}

/** A read-only text area with a Copy button (the <iframe> snippet). */
function copyField(text, label, done) {
  const field = h('textarea', { readonly: true, rows: 3, 'aria-label': label }, text);
  const button = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      field.select();
      document.execCommand('copy');
    }
    announce(done);
  });
  return h('div', { class: 'copy-row' }, field, button);
}

export function sharePanel(video) {
  const list = h('ul', { class: 'share-links', 'aria-label': 'Share links' });
  const error = h('p', { class: 'error', role: 'alert' });

  async function refresh() {
    try {
      const { items } = await api(`/api/v1/videos/${video.id}/shares`);
      list.replaceChildren(...items.filter((s) => !s.revoked_at).map((s) => linkRow(video, s, refresh)));
    } catch (err) {
      error.textContent = `Could not load the share links: ${err.message}`;
    }
  }

  const expiry = h('select', { id: 'share-expiry' }, ...EXPIRIES.map(([v, label]) => h('option', { value: v }, label)));
  const password = h('input', { id: 'share-new-password', type: 'password', autocomplete: 'new-password' });
  const download = h('input', { id: 'share-download', type: 'checkbox' });
  const exposes = EXPOSES.map(([value, label]) => {
    const box = h('input', { type: 'checkbox', id: `share-exposes-${value}`, value, checked: true });
    return h('label', { for: box.id, class: 'check' }, box, ` ${label}`);
  });
  const create = h('button', { type: 'submit' }, 'Create link');
  const form = h(
    'form',
    { class: 'share-form' },
    h('fieldset', {}, h('legend', {}, 'Shows'), ...exposes),
    h('div', { class: 'field' }, h('label', { for: 'share-expiry' }, 'Expires'), expiry),
    h('div', { class: 'field' }, h('label', { for: 'share-new-password' }, 'Password (optional)'), password),
    h('label', { for: 'share-download', class: 'check' }, download, ' Allow download'),
    error,
    h('div', { class: 'actions' }, create),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const body = {
      exposes: [...form.querySelectorAll('input[id^="share-exposes-"]:checked')].map((b) => b.value),
      download: download.checked,
    };
    if (expiry.value) body.expires_in_seconds = Number(expiry.value);
    if (password.value) body.password = password.value;
    create.disabled = true;
    try {
      await api(`/api/v1/videos/${video.id}/shares`, { method: 'POST', body });
      password.value = '';
      announce('Share link created');
      await refresh();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      create.disabled = false;
    }
  });
  refresh();
  return h('section', { class: 'share-panel', 'aria-labelledby': 'share-title' }, h('h3', { id: 'share-title' }, 'Share'), form, list);
}
