// DOM building for the portal's pages: every text goes in as text, never
// as HTML, so nothing a server or a user wrote can become markup.

/**
 * h builds an element: h('p', {class: 'nhsuk-body'}, 'text', child…).
 * Attributes: class, for, on<event> (a function), dataset (an object),
 * boolean true (present) or false/null/undefined (absent); children:
 * strings, numbers, nodes, arrays of them, null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** link is an in-portal link the router handles. */
export function link(href, text, attrs = {}) {
  return h('a', { href, ...attrs }, text);
}

/** button is an NHS.UK button. */
export function button(text, attrs = {}) {
  const cls = ['nhsuk-button', attrs.secondary ? 'nhsuk-button--secondary' : '', attrs.warning ? 'nhsuk-button--warning' : '', attrs.class || '']
    .filter(Boolean).join(' ');
  const { secondary, warning, ...rest } = attrs;
  return h('button', { type: 'button', 'data-module': 'nhsuk-button', ...rest, class: cls }, text);
}

/** backLink is the NHS.UK back link. */
export function backLink(href, text = 'Back') {
  return h('div', { class: 'nhsuk-back-link' }, h('a', { class: 'nhsuk-back-link__link', href }, text));
}

/** summaryList is an NHS.UK summary list of [key, value] rows. */
export function summaryList(rows) {
  return h('dl', { class: 'nhsuk-summary-list' }, rows.filter(Boolean).map(([k, v]) =>
    h('div', { class: 'nhsuk-summary-list__row' },
      h('dt', { class: 'nhsuk-summary-list__key' }, k),
      h('dd', { class: 'nhsuk-summary-list__value' }, v))));
}

/** tag is an NHS.UK tag; colour is grey, green, blue, red, yellow… */
export function tag(text, colour) {
  return h('strong', { class: 'nhsuk-tag' + (colour ? ' nhsuk-tag--' + colour : '') }, text);
}

/** inset is NHS.UK inset text. */
export function inset(...children) {
  return h('div', { class: 'nhsuk-inset-text' }, h('span', { class: 'nhsuk-u-visually-hidden' }, 'Information: '), ...children);
}

/** card is an NHS.UK card with a heading and content. */
export function card(heading, ...children) {
  return h('div', { class: 'nhsuk-card' }, h('div', { class: 'nhsuk-card__content' },
    h('h2', { class: 'nhsuk-card__heading nhsuk-heading-m' }, heading), ...children));
}

/** formatDate is "Tuesday 8 December 2026". */
export function formatDate(iso) {
  if (!iso) return '';
  const d = iso.length === 10 ? new Date(iso + 'T12:00:00') : new Date(iso);
  return d.toLocaleDateString('en-GB', { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: 'Europe/London' });
}

/** formatTime is "9:30am". */
export function formatTime(iso) {
  const s = new Date(iso).toLocaleTimeString('en-GB', { hour: 'numeric', minute: '2-digit', hour12: true, timeZone: 'Europe/London' });
  return s.replace(' ', '').toLowerCase();
}

/** dayKey is the date (YYYY-MM-DD) of an instant in the UK. */
export function dayKey(iso) {
  return new Date(iso).toLocaleDateString('en-CA', { timeZone: 'Europe/London' });
}

/** formatUBRN groups a UBRN in threes for reading out: 1234 5678 9012. */
export function formatUBRN(ubrn) {
  return (ubrn || '').replace(/(\d{4})(?=\d)/g, '$1 ');
}
