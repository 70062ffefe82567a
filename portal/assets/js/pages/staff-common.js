// What the staff pages share (pages/staff-*.js): the role check, form
// fields, tables and the patient's name and NHS number, all NHS.UK
// frontend components built with dom.js.

import { h } from '../dom.js';
import { PortalError } from '../errors.js';

export const NHS_NUMBER_SYSTEM = 'https://fhir.nhs.uk/Id/nhs-number';

/** The staff roles' names, as the token says them. */
export const ROLE_NAMES = { 'call-centre': 'Booking call centre', provider: 'Provider', referrer: 'Referrer', commissioner: 'Commissioner' };

/**
 * requireStaff throws a 403 PortalError (said in plain words by the
 * layout) unless the tab is signed in as staff in one of roles.
 */
export function requireStaff(ctx, ...roles) {
  const s = ctx.session;
  if (!s || s.kind !== 'staff' || (roles.length && !roles.includes(s.role))) {
    throw new PortalError(403, null, 'This page is for staff');
  }
  return s;
}

/** patientName is a Patient's name as "Given Family". */
export function patientName(p) {
  const n = ((p && p.name) || [])[0] || {};
  return n.text || [...(n.given || []), n.family].filter(Boolean).join(' ') || 'Unknown patient';
}

/** nhsNumber is a Patient's NHS number grouped 3 3 4. */
export function nhsNumber(p) {
  const id = ((p && p.identifier) || []).find((i) => i.system === NHS_NUMBER_SYSTEM);
  return id ? id.value.replace(/^(\d{3})(\d{3})(\d{4})$/, '$1 $2 $3') : '';
}

/** field is an NHS.UK form group with a label, optional hint and an input (or textarea, select). */
export function field(id, label, control, hint) {
  return h('div', { class: 'nhsuk-form-group', id: id + '-group' },
    h('label', { class: 'nhsuk-label', for: id }, label),
    hint ? h('div', { class: 'nhsuk-hint', id: id + '-hint' }, hint) : null,
    control);
}

/** input is an NHS.UK text input. */
export function input(id, attrs = {}) {
  return h('input', { class: 'nhsuk-input', id, name: id, type: 'text', ...attrs });
}

/** textarea is an NHS.UK textarea. */
export function textarea(id, attrs = {}) {
  return h('textarea', { class: 'nhsuk-textarea', id, name: id, rows: 3, ...attrs });
}

/** select is an NHS.UK select of [value, text] options. */
export function select(id, options, attrs = {}) {
  return h('select', { class: 'nhsuk-select', id, name: id, ...attrs }, options.map(([v, t]) => h('option', { value: v }, t)));
}

/**
 * fieldError marks a form group as wrong with its message (or clears it
 * with a null message).
 */
export function fieldError(root, id, message) {
  const group = root.querySelector('#' + id + '-group');
  if (!group) return;
  const old = group.querySelector('.nhsuk-error-message');
  if (old) old.remove();
  group.classList.toggle('nhsuk-form-group--error', !!message);
  const control = group.querySelector('#' + id);
  if (message) {
    const m = h('span', { class: 'nhsuk-error-message', id: id + '-error' }, h('span', { class: 'nhsuk-u-visually-hidden' }, 'Error: '), message);
    group.insertBefore(m, control);
    if (control) control.setAttribute('aria-describedby', id + '-error');
  } else if (control) {
    control.removeAttribute('aria-describedby');
  }
}

/**
 * table is an NHS.UK table (responsive: a label per cell at narrow
 * widths) with a caption, header texts and rows of cells (text or nodes).
 */
export function table(caption, headers, rows, attrs = {}) {
  return h('table', { class: 'nhsuk-table-responsive', role: 'table', ...attrs },
    h('caption', { class: 'nhsuk-table__caption' }, caption),
    h('thead', { class: 'nhsuk-table__head', role: 'rowgroup' }, h('tr', { role: 'row' }, headers.map((t) => h('th', { role: 'columnheader', scope: 'col' }, t)))),
    h('tbody', { class: 'nhsuk-table__body', role: 'rowgroup' }, rows.map((r) => h('tr', { role: 'row', class: 'nhsuk-table__row' },
      r.map((c, i) => h('td', { role: 'cell', class: 'nhsuk-table__cell' }, h('span', { class: 'nhsuk-table-responsive__heading', 'aria-hidden': 'true' }, headers[i] + ' '), c))))));
}

/** ref returns the id of a reference of type ("ServiceRequest/x" → "x"), or "". */
export function refId(reference, type) {
  const r = reference || '';
  return r.startsWith(type + '/') ? r.slice(type.length + 1) : '';
}

/** isoDate parses day, month and year fields into YYYY-MM-DD, or "". */
export function isoDate(d, m, y) {
  if (!/^\d{4}$/.test(y) || !/^\d{1,2}$/.test(m) || !/^\d{1,2}$/.test(d)) return '';
  const date = `${y}-${m.padStart(2, '0')}-${d.padStart(2, '0')}`;
  const parsed = new Date(date + 'T00:00:00Z');
  return !isNaN(parsed) && parsed.toISOString().slice(0, 10) === date ? date : '';
}
