// A choice of operations with their main params, as a batch or a preset names
// them: `[{operation, params}]`. One checkbox per operation that applies to
// videos; its fields show while it is ticked. Shared by the batch dialog and
// the presets panel (the fields come from operations.js, as in the player).

import { h } from './dom.js';
import { operationsFor, paramFields, readParams } from './operations.js';

let formCounter = 0;

/** {element, steps(), reset()} for the operations of `catalog` that apply to `kind`. */
export function stepsForm(catalog, { legend = 'Operations', kind = 'video' } = {}) {
  const prefix = `steps-${(formCounter += 1)}`;
  const rows = operationsFor(catalog, kind).map((op) => {
    const boxId = `${prefix}-${op.name}`;
    const box = h('input', { id: boxId, type: 'checkbox', value: op.name });
    const fields = h('div', { class: 'step-fields' }, paramFields(op, kind));
    fields.hidden = true;
    box.addEventListener('change', () => {
      fields.hidden = !box.checked;
    });
    const row = h(
      'div',
      { class: 'step' },
      h('div', { class: 'op' }, box, h('label', { for: boxId, title: op.summary || null }, op.name)),
      fields,
    );
    return { op, box, fields, row };
  });
  const element = h('fieldset', { class: 'ops steps' }, h('legend', {}, legend), rows.map((r) => r.row));
  return {
    element,
    steps: () =>
      rows.filter((r) => r.box.checked).map((r) => ({ operation: r.op.name, params: readParams(r.fields) })),
    reset() {
      for (const r of rows) {
        r.box.checked = false;
        r.fields.hidden = true;
      }
    },
  };
}

/** "thumbnail (time 3), frames" — how a list of steps reads in a sentence. */
export function describeSteps(steps) {
  return steps
    .map((s) => {
      const params = Object.entries(s.params || {}).map(([k, v]) => `${k} ${v}`);
      return params.length ? `${s.operation} (${params.join(', ')})` : s.operation;
    })
    .join(', ');
}
