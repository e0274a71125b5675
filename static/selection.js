// The videos ticked in the grid, kept across searches, and the bar that
// counts them: select all on the page, clear, and run operations on them.

const chosen = new Set();
let els = null; // {selectAll, count, clear, run}
let hooks = { visibleIds: () => [], onChange: () => {}, onRun: () => {} };

export const isSelected = (id) => chosen.has(id);
export const selectedIds = () => [...chosen];

export function initSelection(elements, options) {
  els = elements;
  hooks = { ...hooks, ...options };
  els.selectAll.addEventListener('click', () => {
    for (const id of hooks.visibleIds()) chosen.add(id);
    changed();
  });
  els.clear.addEventListener('click', clearSelection);
  els.run.addEventListener('click', () => hooks.onRun(selectedIds()));
  changed();
}

export function setSelected(id, on) {
  if (on) chosen.add(id);
  else chosen.delete(id);
  changed();
}

export function clearSelection() {
  chosen.clear();
  changed();
}

/** A deleted video leaves the selection (quietly: nothing to re-render for). */
export function forgetSelected(id) {
  if (chosen.delete(id)) changed();
}

function changed() {
  if (!els) return;
  const n = chosen.size;
  els.count.textContent = `${n} selected`;
  els.clear.disabled = n === 0;
  els.run.disabled = n === 0;
  hooks.onChange();
}
