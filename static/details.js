// The editable title, description and tags of the video shown (PATCH
// /api/v1/videos/{id}). The server normalises tags and says which field it
// refused; the message goes next to that field.

import { api } from './api.js';
import { h, announce } from './dom.js';

let onSaved = () => {};

export function initDetails(saved) {
  onSaved = saved;
}

const splitTags = (text) => text.split(',').map((t) => t.trim()).filter(Boolean);

export function detailsForm(video) {
  const title = h('input', { id: 'meta-title', type: 'text', name: 'title', maxlength: 200, value: video.title });
  const description = h('textarea', { id: 'meta-description', name: 'description', maxlength: 5000, rows: 3 });
  description.value = video.description || '';
  const tags = h('input', {
    id: 'meta-tags', type: 'text', name: 'tags', value: (video.tags || []).join(', '), 'aria-describedby': 'meta-tags-help',
  });
  const error = h('p', { class: 'error', role: 'alert' });
  const save = h('button', { type: 'submit' }, 'Save details');
  const form = h(
    'form',
    { class: 'details-form', 'aria-labelledby': 'details-title' },
    h('h3', { id: 'details-title' }, 'Details'),
    h('div', { class: 'field' }, h('label', { for: 'meta-title' }, 'Title'), title),
    h('div', { class: 'field' }, h('label', { for: 'meta-description' }, 'Description'), description),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'meta-tags' }, 'Tags'),
      tags,
      h('span', { id: 'meta-tags-help', class: 'muted' }, 'Separated by commas'),
    ),
    error,
    h('div', { class: 'actions' }, save),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    save.disabled = true;
    try {
      const updated = await api(`/api/v1/videos/${video.id}`, {
        method: 'PATCH',
        body: { title: title.value, description: description.value, tags: splitTags(tags.value) },
      });
      title.value = updated.title;
      tags.value = updated.tags.join(', ');
      onSaved(updated);
      announce('Details saved');
    } catch (err) {
      error.textContent = err.message;
      const field = { title, description, tags }[err.field];
      if (field) field.focus();
    } finally {
      save.disabled = false;
    }
  });
  return form;
}
