// What this server can do with an upload: GET /api/v1/operations (every
// operation, the kinds it applies to, its params with defaults, bounds and
// choices, and the server's limits). Fetched once and shared by the upload
// panel and the player, so neither hard-codes an operation, default or limit.

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
