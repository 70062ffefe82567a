// The router: one module per page under pages/, loaded when its path is
// visited. A page module exports render(ctx) → {title, body, error?}
// (body: nodes) and may register work to stop when the page is left
// (ctx.onLeave). Links on this origin are followed without reloading.

import { current, clear } from './session.js';
import { renderNav, setTitle, errorPage, loading } from './layout.js';
import { h } from './dom.js';

// Paths (":name" is a parameter) → page module and whether it needs a sign-in.
const routes = [
  ['/', 'home', false],
  ['/callback', 'callback', false],
  ['/sign-in/ubrn', 'ubrn', false],
  ['/sign-out', 'signout', false],
  ['/referrals', 'referrals', true],
  ['/referrals/:id', 'referral', true],
  ['/referrals/:id/shortlist', 'shortlist', true],
  ['/referrals/:id/services/:service', 'calendar', true],
  ['/referrals/:id/questionnaires/:questionnaire', 'questionnaire', true],
  ['/holds/:id', 'hold', true],
  ['/appointments/:id', 'appointment', true],
  ['/appointments/:id/reschedule', 'calendar', true],
  ['/appointments/:id/cancel', 'cancel', true],
  // Staff (pages/staff-*.js): each checks the session's role.
  ['/staff', 'staff-home', true],
  ['/staff/find', 'staff-find', true],
  ['/staff/patients/:patient', 'staff-patient', true],
  ['/staff/patients/:patient/referrals/:id/services/:service', 'staff-book', true],
  ['/staff/patients/:patient/appointments/:id/reschedule', 'staff-book', true],
  ['/staff/patients/:patient/appointments/:id/cancel', 'staff-cancel', true],
  ['/staff/worklists', 'staff-worklists', true],
  ['/staff/referrals/:id', 'staff-referral', true],
  ['/staff/utilisation', 'staff-utilisation', true],
  ['/staff/reports', 'staff-reports', true],
].map(([pattern, page, auth]) => ({ pattern, page, auth, re: new RegExp('^' + pattern.replace(/:[a-z]+/g, '([^/]+)') + '/?$'), names: (pattern.match(/:[a-z]+/g) || []).map((n) => n.slice(1)) }));

/** match finds the route of a path and its parameters. */
export function match(pathname) {
  for (const r of routes) {
    const m = r.re.exec(pathname);
    if (m) {
      const params = {};
      r.names.forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
      return { route: r, params };
    }
  }
  return null;
}

let leaving = [];
let generation = 0;

/** navigate shows path (with its query), adding it to the history. */
export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  return show();
}

/** show renders the current location's page. */
export async function show() {
  const gen = ++generation;
  for (const f of leaving) f();
  leaving = [];
  const main = document.getElementById('maincontent');
  const { pathname, search } = location;
  renderNav(pathname);
  const m = match(pathname);
  let page;
  const ctx = {
    params: m ? m.params : {}, query: new URLSearchParams(search), pathname, navigate,
    session: current(), onLeave: (f) => leaving.push(f), rerender: show,
  };
  main.replaceChildren(loading());
  try {
    if (!m) {
      page = { title: 'Page not found', body: [h('h1', { tabindex: '-1' }, 'Page not found'), h('p', { class: 'nhsuk-body' }, 'If you typed the web address, check it is correct.'), h('p', { class: 'nhsuk-body' }, h('a', { href: '/' }, 'Go to the start'))] };
    } else if (m.route.auth && !ctx.session) {
      return navigate('/?next=' + encodeURIComponent(pathname + search), { replace: true });
    } else if (m.route.auth && ctx.session.expired) {
      const { PortalError } = await import('./errors.js');
      page = errorPage(new PortalError(401));
    } else {
      const mod = await import(`./pages/${m.route.page}.js`);
      page = await mod.render(ctx);
    }
  } catch (err) {
    if (!(err && err.name === 'PortalError')) console.error(err); // a defect, not an answer of the server's
    if (err && err.status === 401) clear(); // the server no longer takes the token: the tab is signed out
    page = errorPage(err);
  }
  if (gen !== generation || !page) return; // another navigation started meanwhile
  main.replaceChildren(...[].concat(page.body).flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  setTitle(page.title, page.error);
  renderNav(location.pathname);
  const target = main.querySelector('.nhsuk-error-summary') || main.querySelector('h1');
  if (target && document.activeElement !== target && window.__portalNavigated) target.focus();
  window.__portalNavigated = true;
}

/** start follows links on this origin without reloading, and the back button. */
export function start() {
  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest && ev.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download') || a.getAttribute('rel') === 'external') return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith('/fhir') || url.pathname.startsWith('/auth') || url.pathname.startsWith('/api')) return;
    if (url.pathname === location.pathname && url.hash) return; // in-page link (skip link)
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener('popstate', () => show());
  return show();
}
