// The search box over the video list: results as you type (the server
// treats the last word as a prefix and, with pg_trgm, forgives typos),
// title suggestions in a <datalist>, and facet filters with their counts.

import { api } from './api.js';
import { h, announce } from './dom.js';

const DEBOUNCE_MS = 200;
const FACETS = {
  kind: { label: 'Kind', names: { video: 'Videos', image: 'Images' } },
  duration: { label: 'Length', names: { short: 'Under 1 min', medium: '1–10 min', long: 'Over 10 min' } },
  uploaded: { label: 'Uploaded', names: { day: 'Today', week: 'This week', month: 'This month', year: 'This year' } },
  tags: { label: 'Tag', param: 'tag', names: {} },
};

let els = null;
let onResults = () => {};
let timer = null;
let generation = 0; // only the newest answer is shown
const chosen = {}; // facet → value

export function initSearch(elements, showResults) {
  els = elements;
  onResults = showResults;
  els.input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(run, DEBOUNCE_MS);
    suggest();
  });
  els.sort.addEventListener('change', run);
  els.form.addEventListener('submit', (event) => {
    event.preventDefault();
    run();
  });
}

export function resetSearch() {
  if (!els) return;
  els.input.value = '';
  for (const key of Object.keys(chosen)) delete chosen[key];
  els.facets.replaceChildren();
  onResults(null);
}

function params() {
  const query = new URLSearchParams();
  const q = els.input.value.trim();
  if (q) query.set('q', q);
  for (const [facet, value] of Object.entries(chosen)) {
    if (value) query.set(FACETS[facet].param || facet, value);
  }
  if (q) query.set('sort', els.sort.value);
  query.set('limit', '50');
  return query;
}

async function run() {
  const query = params();
  const mine = ++generation;
  if (!query.has('q') && Object.values(chosen).every((v) => !v)) {
    els.facets.replaceChildren();
    onResults(null);
    return;
  }
  try {
    const page = await api(`/api/v1/videos?${query}`);
    if (mine !== generation) return;
    onResults(page.items);
    renderFacets(page.facets);
    announce(`${page.items.length} ${page.items.length === 1 ? 'video' : 'videos'} found`);
  } catch (err) {
    if (mine === generation) announce(`Search failed: ${err.message}`);
  }
}

async function suggest() {
  const q = els.input.value.trim();
  if (!q) {
    els.suggestions.replaceChildren();
    return;
  }
  try {
    const { suggestions } = await api(`/api/v1/videos/suggest?q=${encodeURIComponent(q)}`);
    els.suggestions.replaceChildren(
      ...suggestions.map((s) => h('option', { value: s.text, label: s.kind === 'tag' ? `tag · ${s.count}` : null })),
    );
  } catch {
    // Suggestions are a convenience; the search itself reports errors.
  }
}

function renderFacets(facets) {
  if (!facets) return;
  const controls = Object.entries(FACETS).map(([facet, spec]) => {
    const id = `facet-${facet}`;
    const counts = facets[facet] || [];
    const select = h(
      'select',
      { id, onchange: (event) => { chosen[facet] = event.target.value; run(); } },
      h('option', { value: '' }, 'Any'),
      ...counts.map((c) =>
        h('option', { value: c.value, selected: chosen[facet] === c.value }, `${spec.names[c.value] || c.value} (${c.count})`),
      ),
    );
    return h('div', { class: 'field facet' }, h('label', { for: id }, spec.label), select);
  });
  els.facets.replaceChildren(...controls);
}

/** A title with its matched words in <mark> (segments from the server; no HTML parsing). */
export function highlightedTitle(video) {
  const segments = video.search && video.search.highlight && video.search.highlight.title;
  if (!segments) return video.title || video.filename;
  return segments.map((s) => (s.match ? h('mark', {}, s.text) : s.text));
}
