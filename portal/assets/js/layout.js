// The shared layout: the header's navigation, the page title, the error
// summary and the whole-page error, so that every page looks and behaves
// alike (NHS.UK frontend components).

import { h, button } from './dom.js';
import { current } from './session.js';
import { explain } from './errors.js';

const SERVICE = 'Manage your referral';

/** navItems are the header's links for the tab's sign-in. */
export function navItems(session) {
  if (session && !session.expired && session.kind === 'staff') {
    const byRole = {
      'call-centre': [['/staff/find', 'Find a patient']],
      provider: [['/staff/worklists', 'Worklists'], ['/staff/utilisation', 'Utilisation']],
      referrer: [['/staff/worklists', 'Worklists']],
      commissioner: [['/staff/reports', 'Reports']],
    };
    return [...(byRole[session.role] || []), ['/sign-out', 'Sign out']];
  }
  if (session && !session.expired) {
    return [['/referrals', 'Your referrals'], ['/sign-out', 'Sign out']];
  }
  return [['/', 'Sign in']];
}

/** renderNav fills the header's navigation, marking the current page. */
export function renderNav(pathname) {
  const ul = document.getElementById('portal-nav');
  if (!ul) return;
  ul.replaceChildren(...navItems(current()).map(([href, text]) => {
    const here = pathname === href || (href !== '/' && pathname.startsWith(href + '/'));
    return h('li', { class: 'nhsuk-header__navigation-item' + (here ? ' nhsuk-header__navigation-item--current' : '') },
      h('a', { class: 'nhsuk-header__navigation-link', href, 'aria-current': here ? 'page' : null }, text));
  }));
}

/** setTitle sets the document title as NHS.UK services do. */
export function setTitle(title, hasError) {
  document.title = `${hasError ? 'Error: ' : ''}${title} – ${SERVICE} – NHS`;
}

/** heading is the page's h1, focusable so the router can move focus to it. */
export function heading(text, caption) {
  return h('h1', { tabindex: '-1', class: 'portal-h1' }, caption ? h('span', { class: 'nhsuk-caption-l' }, caption, h('span', { class: 'nhsuk-u-visually-hidden' }, ' - ')) : null, text);
}

/**
 * errorSummary is the NHS.UK error summary for a failed action: what
 * happened in plain words and what to do (actions: [href or function,
 * label] pairs). Focus it after rendering (focusError).
 */
export function errorSummary(err, actions = []) {
  const e = err && err.title ? err : explain(err);
  const items = actions.map(([target, label]) => h('li', {}, typeof target === 'function'
    ? h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); target(); } }, label)
    : h('a', { href: target }, label)));
  if (e.action === 'sign-in' && !actions.length) items.push(h('li', {}, h('a', { href: '/?expired=1' }, 'Sign in again')));
  return h('div', { class: 'nhsuk-error-summary', 'aria-labelledby': 'error-summary-title', role: 'alert', tabindex: '-1' },
    h('h2', { class: 'nhsuk-error-summary__title', id: 'error-summary-title' }, e.title),
    h('div', { class: 'nhsuk-error-summary__body' },
      e.text ? h('p', {}, e.text) : null,
      items.length ? h('ul', { class: 'nhsuk-list nhsuk-error-summary__list' }, items) : null));
}

/** focusError moves focus to the error summary in root, if any. */
export function focusError(root) {
  const el = root.querySelector('.nhsuk-error-summary');
  if (el) el.focus();
}

/** errorPage is a whole page for an error the page could not get past. */
export function errorPage(err) {
  const e = explain(err);
  const body = [heading(e.title), h('p', { class: 'nhsuk-body' }, e.text)];
  if (e.action === 'sign-in') {
    body.push(h('a', { class: 'nhsuk-button', href: '/?expired=1', role: 'button', draggable: 'false', id: 'sign-in-again' }, 'Sign in again'));
  } else if (e.action === 'retry') {
    body.push(button('Try again', { onclick: () => location.reload() }));
  }
  const s = current();
  body.push(h('p', { class: 'nhsuk-body' }, s && s.kind === 'staff' ? h('a', { href: '/staff' }, 'Go to your start page') : h('a', { href: '/referrals' }, 'Go to your referrals')));
  return { title: e.title, body, error: true };
}

/** loading is the placeholder while a page loads. */
export function loading() {
  return h('p', { class: 'nhsuk-body', role: 'status' }, 'Loading…');
}
