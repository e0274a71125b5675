// What this server can do with an upload: GET /api/v1/operations (every
// operation, the kinds it applies to, its params with defaults, bounds and
// choices, and the server's limits). Fetched once and shared by the upload
// panel, the player, the batch dialog and the presets panel, so none of them
// hard-codes an operation, default or limit; the labelled param fields of
// the "run an operation" forms are made here for all of them.

import { api } from './api.js';
import { h } from './dom.js';

let catalog = null; // the promise: concurrent callers share one request

/** The catalog, fetched on first use; a failed fetch is tried again next time. */
export function loadOperations() {
  if (!catalog) {
    catalog = api('/api/v1/operations').catch((err) => {
      catalog = null;
      throw err;
    });
  }
  return catalog;
}

/** The operations of `catalog` that apply to uploads of `kind` ('video' or 'image'). */
export function operationsFor(catalog, kind) {
  return catalog.operations.filter((op) => op.kinds.includes(kind));
}

/** Param `name` of `op` for sources of `kind`, or undefined when it takes none such. */
export function paramOf(op, kind, name) {
  return (op.params[kind] || []).find((p) => p.name === name);
}

/** An input's value as the param's type wants it ('' stays '': "not given"). */
export function inputValue(input, param) {
  if (input.value === '') return '';
  return param.type === 'number' || param.type === 'integer' ? Number(input.value) : input.value;
}

let fieldCounter = 0;

/**
 * A labelled control for `param`: a select for a choice, else a number input
 * bounded as the server bounds it. `id` defaults to a fresh one.
 */
export function paramControl(param, { id = `param-${(fieldCounter += 1)}`, name = param.name } = {}) {
  const title = param.help || null;
  if (param.choices) {
    const options = param.choices.map((c) => h('option', { value: c, selected: c === param.default }, String(c)));
    if (param.default === null) options.unshift(h('option', { value: '' }, 'default'));
    return h('select', { id, name, title }, options);
  }
  const integer = param.type === 'integer';
  return h('input', {
    id,
    name,
    title,
    type: 'number',
    inputmode: integer ? 'numeric' : 'decimal',
    min: param.minimum ?? param.exclusive_minimum,
    max: param.maximum,
    step: integer ? param.multiple_of || 1 : 'any',
    value: param.default ?? '',
  });
}

// The params the operation forms offer, with their labels: only the main
// knobs; everything else keeps the server's defaults.
const FORM_PARAMS = {
  frames: { fps: 'Frames per second' },
  hls: { segment_seconds: 'Segment length (s)' },
  thumbnail: { time: 'At second' },
  convert: { container: 'Container', width: 'Width' },
};

/** Labelled fields for the main params of `op` on sources of `kind`. */
export function paramFields(op, kind) {
  return Object.entries(FORM_PARAMS[op.name] || {})
    .map(([name, label]) => [paramOf(op, kind, name), label])
    .filter(([param]) => param)
    .map(([param, label]) => {
      const control = paramControl(param);
      // An empty field leaves the choice to the server (the help says what it picks).
      const text = param.default === null ? `${label} (empty: default)` : label;
      return h('div', { class: 'field' }, h('label', { for: control.id }, text), control);
    });
}

/** The params typed into the fields under `container`; empty ones are left out. */
export function readParams(container) {
  const params = {};
  for (const input of container.querySelectorAll('input, select')) {
    if (input.value === '') continue;
    params[input.name] = input.type === 'number' ? Number(input.value) : input.value;
  }
  return params;
}
