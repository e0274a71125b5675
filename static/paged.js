// A list that loads page after page with a cursor (`{items, next_cursor}`), and
// a "Load more" button that keeps keyboard focus in the list as it grows.

import { h } from './dom.js';

/**
 * pagedList(container, {label, load(cursor), render(item), empty}) → {reload()}.
 * `load` returns a page; `render` an <li>. The button is only shown while
 * there is a next page.
 */
export function pagedList(container, { label, load, render, empty = 'Nothing yet.' }) {
  const list = h('ul', { class: 'paged', 'aria-label': label });
  const none = h('p', { class: 'muted' }, empty);
  const error = h('p', { class: 'error', role: 'alert' });
  const more = h('button', { type: 'button', class: 'secondary small' }, 'Load more');
  let cursor = null;
  let generation = 0;

  async function fetchPage(reset) {
    const mine = reset ? ++generation : generation;
    more.disabled = true;
    error.textContent = '';
    try {
      const page = await load(reset ? null : cursor);
      if (mine !== generation) return; // a newer search replaced this one
      if (reset) list.replaceChildren();
      list.append(...page.items.map(render));
      cursor = page.next_cursor;
      none.hidden = list.children.length > 0;
      more.hidden = !cursor;
    } catch (err) {
      if (mine === generation) error.textContent = err.message;
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener('click', async () => {
    const before = list.children.length;
    await fetchPage(false);
    // Focus the first new row, so keyboard users continue where they were.
    const first = list.children[before];
    if (first) first.focus();
  });
  more.hidden = true;
  container.append(list, none, error, more);
  return { reload: () => fetchPage(true) };
}

/** `?a=1&b=2` from the non-empty values of `params`. */
export function queryString(params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') query.set(name, value);
  }
  const text = query.toString();
  return text ? `?${text}` : '';
}
