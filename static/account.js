// Account settings (email verification, password, API keys) and the links
// Frameflow mails: /#verify=<token> confirms an address, /#reset=<token> opens
// a form for a new password. Tokens travel in the fragment, which no server
// sees; the page reads it, calls the API, and takes it out of the address bar.

import { api, ApiError, logout, post } from './api.js';
import { $, h, announce } from './dom.js';

const SCOPES = [
  ['videos:read', 'Read videos and jobs'],
  ['videos:write', 'Upload and delete videos'],
  ['jobs:write', 'Queue and cancel jobs'],
  ['webhooks', 'Manage webhooks'],
];
const EXPIRY_DAYS = [
  ['', 'Never'],
  ['7', 'In 7 days'],
  ['30', 'In 30 days'],
  ['90', 'In 90 days'],
  ['365', 'In a year'],
];

let panel = null;
let toggle = null;
let loggedIn = false;

function field(id, label, input) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

function say(el, message, isError = false) {
  el.textContent = message;
  el.classList.toggle('error', isError);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : 'never';
}

// --- the links in mails ---------------------------------------------------

function takeLink() {
  const match = /^#(verify|reset)=([A-Za-z0-9_-]{1,256})$/.exec(window.location.hash);
  if (!match) return null;
  // The token leaves the address bar (and the history entry) at once.
  history.replaceState(null, '', window.location.pathname + window.location.search);
  return { kind: match[1], token: match[2] };
}

function notice(message, isError = false, isReminder = false) {
  const el = $('#account-notice');
  say(el, message, isError);
  el.dataset.reminder = isReminder ? 'yes' : '';
  el.hidden = !message;
  if (message) announce(message);
}

async function followVerifyLink(token) {
  try {
    await post('/api/v1/auth/verify-email', { token });
    notice('Your email address is verified.');
    if (loggedIn && !panel.hidden) await loadMe();
  } catch (err) {
    notice(`This verification link did not work: ${err.message}`, true);
  }
}

function showResetForm(token) {
  const section = $('#reset-panel');
  const password = h('input', {
    id: 'reset-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8,
  });
  const repeat = h('input', {
    id: 'reset-repeat', type: 'password', autocomplete: 'new-password', required: true, minlength: 8,
  });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Set new password');
  const form = h(
    'form',
    { novalidate: true },
    field('reset-password', h('span', {}, 'New password ', h('span', { class: 'muted' }, '(8 to 72 characters)')), password),
    field('reset-repeat', 'Repeat the new password', repeat),
    h('div', { class: 'actions' }, submit),
    error,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    if (password.value !== repeat.value) {
      error.textContent = 'The two passwords differ.';
      repeat.focus();
      return;
    }
    submit.disabled = true;
    try {
      await post('/api/v1/auth/password-reset/confirm', { token, password: password.value });
      section.hidden = true;
      section.replaceChildren();
      await logout(); // every session of the account has ended, this tab's too
      notice('Your password has been changed and every session signed out. Log in with the new password.');
      $('#email').focus();
    } catch (err) {
      error.textContent = err.message;
      submit.disabled = false;
    }
  });
  section.replaceChildren(h('h2', { id: 'reset-title', tabindex: '-1' }, 'Choose a new password'), form);
  section.hidden = false;
  $('#reset-title').focus();
}

function handleLink() {
  const link = takeLink();
  if (!link) return;
  if (link.kind === 'verify') followVerifyLink(link.token);
  else showResetForm(link.token);
}

/** "Forgot password?" on the login form: mails a reset link to the address typed in. */
function forgotPassword() {
  const button = h('button', { id: 'forgot-btn', type: 'button', class: 'link' }, 'Forgot password?');
  button.addEventListener('click', async () => {
    const email = $('#email').value.trim();
    const error = $('#auth-error');
    error.textContent = '';
    if (!email) {
      error.textContent = 'Enter your email first, then choose "Forgot password?".';
      $('#email').focus();
      return;
    }
    button.disabled = true;
    try {
      const answer = await post('/api/v1/auth/password-reset', { email });
      notice(answer.message);
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  $('#auth-form .actions').append(button);
}

// --- the settings panel ---------------------------------------------------

async function loadMe() {
  const me = await api('/api/v1/me');
  const status = $('#email-status');
  status.replaceChildren(
    h('span', { class: 'user-email' }, me.email),
    ' — ',
    me.email_verified
      ? h('span', { class: 'verified' }, 'verified')
      : h('strong', { class: 'unverified' }, 'not verified yet: follow the link we mailed you'),
  );
  $('#resend-verification').hidden = me.email_verified;
  const reminder = $('#account-notice');
  if (me.email_verified && reminder.dataset.reminder) notice('');
}

function verificationSection() {
  const message = h('p', { id: 'verify-message', role: 'status' });
  const resend = h('button', { id: 'resend-verification', type: 'button', class: 'secondary', hidden: true },
    'Send the verification email again');
  resend.addEventListener('click', async () => {
    resend.disabled = true;
    try {
      const answer = await api('/api/v1/me/verify-email', { method: 'POST' });
      say(message, answer.message);
    } catch (err) {
      say(message, err.message, true);
    } finally {
      resend.disabled = false;
    }
  });
  return h('div', { class: 'account-section' },
    h('h3', {}, 'Email address'), h('p', { id: 'email-status' }), resend, message);
}

function passwordSection() {
  const current = h('input', { id: 'current-password', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { id: 'new-password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const message = h('p', { id: 'password-message', role: 'status' });
  const submit = h('button', { type: 'submit' }, 'Change password');
  const form = h('form', { id: 'password-form', class: 'account-section', novalidate: true },
    h('h3', {}, 'Change password'),
    field('current-password', 'Current password', current),
    field('new-password', h('span', {}, 'New password ', h('span', { class: 'muted' }, '(8 to 72 characters)')), next),
    h('div', { class: 'actions' }, submit),
    message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    say(message, '');
    if (!current.value || !next.value) {
      say(message, 'Enter your current password and a new one.', true);
      return;
    }
    submit.disabled = true;
    try {
      await api('/api/v1/me/password', {
        method: 'POST', body: { current_password: current.value, new_password: next.value },
      });
      current.value = '';
      next.value = '';
      say(message, 'Password changed. Your other sessions have been signed out.');
    } catch (err) {
      say(message, err.message, true);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function keyRow(key) {
  const revoke = h('button', { type: 'button', class: 'secondary', 'aria-label': `Revoke ${key.name}` }, 'Revoke');
  let armed = false;
  revoke.addEventListener('click', async () => {
    // Two presses: the first asks, the second revokes (no modal to trap focus).
    if (!armed) {
      armed = true;
      revoke.textContent = 'Really revoke?';
      return;
    }
    revoke.disabled = true;
    try {
      await api(`/api/v1/api-keys/${key.id}`, { method: 'DELETE' });
      announce(`Key ${key.name} revoked`);
      await loadKeys();
      $('#key-name').focus();
    } catch (err) {
      revoke.disabled = false;
      say($('#key-message'), err.message, true);
    }
  });
  return h('li', { class: 'api-key', dataset: { id: key.id } },
    h('div', { class: 'api-key-head' }, h('strong', { class: 'api-key-name' }, key.name), ' ',
      h('code', {}, `${key.prefix}…`)),
    h('div', { class: 'muted' }, `Scopes: ${key.scopes.join(', ')}`),
    h('div', { class: 'muted' }, `Expires: ${when(key.expires_at)} · last used: ${when(key.last_used_at)}`),
    revoke);
}

async function loadKeys() {
  const list = $('#key-list');
  try {
    const { items } = await api('/api/v1/api-keys');
    list.replaceChildren(...items.map(keyRow));
    $('#keys-empty').hidden = items.length > 0;
  } catch (err) {
    say($('#key-message'), `Could not load your keys: ${err.message}`, true);
  }
}

function showSecret(secret) {
  const input = h('input', { id: 'key-secret', type: 'text', readonly: true, value: secret, spellcheck: 'false' });
  const copy = h('button', { type: 'button' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      // No async clipboard outside a secure context: select it for Ctrl+C.
      input.select();
      document.execCommand('copy');
    }
    copy.textContent = 'Copied';
    announce('Key copied');
  });
  $('#key-secret-slot').replaceChildren(
    h('label', { for: 'key-secret' }, 'Your new key — copy it now, it is not shown again'),
    h('div', { class: 'copy-row' }, input, copy),
  );
  input.focus();
  input.select();
}

function keysSection() {
  const name = h('input', { id: 'key-name', type: 'text', maxlength: 100, required: true, autocomplete: 'off' });
  const scopes = h('fieldset', { class: 'scopes' }, h('legend', {}, 'What the key may do'),
    ...SCOPES.map(([scope, label]) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'scope', value: scope, checked: scope === 'videos:read' }), ` ${label}`)));
  const expiry = h('select', { id: 'key-expiry' }, ...EXPIRY_DAYS.map(([days, label]) => h('option', { value: days }, label)));
  const message = h('p', { id: 'key-message', role: 'status' });
  const submit = h('button', { type: 'submit' }, 'Create key');
  const form = h('form', { id: 'key-form', novalidate: true },
    field('key-name', 'Name', name), scopes, field('key-expiry', 'Expires', expiry),
    h('div', { class: 'actions' }, submit), message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    say(message, '');
    const chosen = [...form.querySelectorAll('input[name="scope"]:checked')].map((box) => box.value);
    if (!name.value.trim() || chosen.length === 0) {
      say(message, 'Give the key a name and at least one scope.', true);
      return;
    }
    const body = { name: name.value.trim(), scopes: chosen };
    if (expiry.value) body.expires_at = new Date(Date.now() + Number(expiry.value) * 86400000).toISOString();
    submit.disabled = true;
    try {
      const key = await api('/api/v1/api-keys', { method: 'POST', body });
      name.value = '';
      showSecret(key.secret);
      await loadKeys();
    } catch (err) {
      const hint = err instanceof ApiError && err.code === 'email_unverified'
        ? ' (see "Email address" above)' : '';
      say(message, err.message + hint, true);
    } finally {
      submit.disabled = false;
    }
  });
  return h('div', { class: 'account-section' }, h('h3', {}, 'API keys'),
    h('p', { class: 'muted' }, 'For scripts: send a key as "Authorization: Bearer ff_…" or "X-API-Key".'),
    form, h('div', { id: 'key-secret-slot', role: 'region', 'aria-live': 'polite' }),
    h('p', { id: 'keys-empty', class: 'muted' }, 'No keys yet.'),
    h('ul', { id: 'key-list', class: 'key-list', 'aria-label': 'API keys' }));
}

// Built on first opening and dropped at logout: until then the page holds no
// second form with password fields, and nothing typed here outlives a session.
function buildPanel() {
  const close = h('button', { type: 'button', class: 'secondary' }, 'Close');
  close.addEventListener('click', () => {
    setOpen(false);
    toggle.focus();
  });
  panel.replaceChildren(
    h('div', { class: 'account-panel-head' }, h('h2', { id: 'account-title', tabindex: '-1' }, 'Account settings'), close),
    verificationSection(), passwordSection(), keysSection(),
  );
}

function setOpen(open) {
  panel.hidden = !open;
  toggle.setAttribute('aria-expanded', String(open));
  if (!open) return;
  if (!panel.firstChild) buildPanel();
  $('#key-secret-slot').replaceChildren();
  loadMe().catch((err) => say($('#verify-message'), err.message, true));
  loadKeys();
  $('#account-title').focus();
}

/** Builds the panel and the login form's "Forgot password?", and follows a mailed link. */
export function initAccount() {
  panel = $('#account-panel');
  toggle = $('#account-btn');
  // Escape closes the panel wherever the focus is (a button disabled while it
  // works drops the focus to the body).
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !panel.hidden) {
      setOpen(false);
      toggle.focus();
    }
  });
  toggle.addEventListener('click', () => setOpen(panel.hidden));
  forgotPassword();
  handleLink();
  window.addEventListener('hashchange', handleLink);
}

/** Logged in: the panel starts closed; an unverified address gets a reminder. */
export async function accountEntered() {
  loggedIn = true;
  setOpen(false);
  try {
    const me = await api('/api/v1/me');
    if (!me.email_verified && $('#account-notice').hidden) {
      notice(`Please confirm ${me.email}: follow the link we emailed you (Account sends it again). `
        + 'Until then API keys and webhooks wait.', false, true);
    }
  } catch {
    // The reminder is a courtesy; the panel shows the state too.
  }
}

export function accountLeft() {
  loggedIn = false;
  setOpen(false);
  panel.replaceChildren();
}
