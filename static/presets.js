// Presets: named sets of operations saved per user (/api/v1/presets). The one
// list lives here; the presets panel shows it (delete, and a form that makes
// one), and every bound <select> (the upload form's, the batch dialog's)
// offers its names.

import { api } from './api.js';
import { h, announce } from './dom.js';
import { loadOperations } from './operations.js';
import { describeSteps, stepsForm } from './steps-form.js';

let presets = [];
const selects = new Set(); // bound selects, refilled on each change
let panel = null; // {list, empty, form}

export async function loadPresets() {
  const { items } = await api('/api/v1/presets');
  presets = items;
  changed();
}

export function clearPresets() {
  presets = [];
  changed();
  if (panel) panel.form.replaceChildren();
}

function changed() {
  for (const select of selects) {
    if (select.isConnected) fillSelect(select);
    else selects.delete(select); // a closed dialog's
  }
  renderList();
}

function fillSelect(select) {
  const value = select.value;
  select.replaceChildren(
    h('option', { value: '' }, select.dataset.none || 'None'),
    ...presets.map((p) => h('option', { value: p.name, title: describeSteps(p.operations) }, p.name)),
  );
  select.value = presets.some((p) => p.name === value) ? value : '';
}

/** Keep `select` offering the presets (its first option: none). */
export function bindPresetSelect(select) {
  selects.add(select);
  fillSelect(select);
}

async function savePreset(name, steps) {
  const preset = await api('/api/v1/presets', { method: 'POST', body: { name, operations: steps } });
  presets = [...presets.filter((p) => p.name !== preset.name), preset].sort((a, b) => a.name.localeCompare(b.name));
  changed();
  announce(`Preset ${preset.name} saved`);
  return preset;
}

async function deletePreset(name, button) {
  button.disabled = true;
  try {
    await api(`/api/v1/presets/${encodeURIComponent(name)}`, { method: 'DELETE' });
    presets = presets.filter((p) => p.name !== name);
    changed();
    announce(`Preset ${name} deleted`);
  } catch (err) {
    button.disabled = false;
    announce(`Could not delete the preset: ${err.message}`);
  }
}

let controlCounter = 0;

/** A name field and a "Save as preset" button for the operations `getSteps()` returns. */
export function savePresetControl(getSteps, { label = 'Save as preset' } = {}) {
  const id = `preset-name-${(controlCounter += 1)}`;
  const input = h('input', { id, type: 'text', maxlength: 64, autocomplete: 'off', 'aria-describedby': `${id}-help` });
  const button = h('button', { type: 'button', class: 'secondary' }, label);
  const status = h('p', { class: 'form-status', role: 'status' });
  button.addEventListener('click', async () => {
    const steps = getSteps();
    status.className = 'form-status error';
    if (!input.value.trim()) {
      status.textContent = 'Name the preset first.';
      input.focus();
      return;
    }
    if (!steps.length) {
      status.textContent = 'Tick at least one operation.';
      return;
    }
    button.disabled = true;
    try {
      const preset = await savePreset(input.value.trim(), steps);
      status.className = 'form-status';
      status.textContent = `Saved as ${preset.name}`;
      input.value = '';
    } catch (err) {
      status.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  return h(
    'div',
    { class: 'save-preset' },
    h(
      'div',
      { class: 'field' },
      h('label', { for: id }, 'Preset name'),
      input,
      h('span', { id: `${id}-help`, class: 'muted' }, 'Letters, digits, _ . and - (up to 64)'),
    ),
    button,
    status,
  );
}

function renderList() {
  if (!panel) return;
  panel.list.replaceChildren(
    ...presets.map((p) => {
      const del = h(
        'button',
        { type: 'button', class: 'danger small', 'aria-label': `Delete preset ${p.name}` },
        'Delete',
      );
      del.addEventListener('click', () => deletePreset(p.name, del));
      return h(
        'li',
        { class: 'preset', dataset: { preset: p.name } },
        h('strong', {}, p.name),
        h('span', { class: 'muted' }, describeSteps(p.operations)),
        del,
      );
    }),
  );
  panel.empty.hidden = presets.length > 0;
}

/** The presets panel: filled in `section` (empty in index.html). */
export function initPresets(section) {
  const list = h('ul', { class: 'presets', 'aria-label': 'Presets' });
  const empty = h('p', { class: 'muted' }, 'No presets yet: save a set of operations below.');
  const form = h('div', { class: 'preset-form' });
  section.replaceChildren(
    h('h2', { id: 'presets-title' }, 'Presets'),
    h('p', { class: 'muted' }, 'Named sets of operations, for uploads and batches.'),
    list,
    empty,
    h('h3', {}, 'New preset'),
    form,
  );
  panel = { list, empty, form };
}

/** After login: the user's presets, and the form to make one. */
export async function enterPresets() {
  try {
    const catalog = await loadOperations();
    const steps = stepsForm(catalog, { legend: 'Operations of the new preset' });
    panel.form.replaceChildren(steps.element, savePresetControl(steps.steps, { label: 'Save preset' }));
    await loadPresets();
  } catch (err) {
    panel.form.replaceChildren(h('p', { class: 'error' }, `Could not load the presets: ${err.message}`));
  }
}
