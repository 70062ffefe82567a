// The start page: sign in with the authorisation server (SMART standalone
// launch; the development server's patient picker in the demo), or with a
// booking reference number and access code.

import { h, button, inset } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { signIn, STAFF_SCOPES } from '../smart.js';

export async function render(ctx) {
  const next = safeNext(ctx.query.get('next'));
  if (ctx.session && !ctx.session.expired) {
    ctx.navigate(next || (ctx.session.kind === 'staff' ? '/staff' : '/referrals'), { replace: true });
    return null;
  }
  const status = h('div', {});
  const start = button('Sign in', {
    id: 'sign-in',
    onclick: async () => {
      start.disabled = true;
      try {
        await signIn(next || '/referrals');
      } catch (err) {
        start.disabled = false;
        status.replaceChildren(errorSummary({ title: 'Signing in did not start', text: err.message || 'Try again.' }));
        status.firstChild.focus();
      }
    },
  });
  const staff = button('Sign in as staff', {
    id: 'sign-in-staff', secondary: true,
    onclick: async () => {
      staff.disabled = true;
      try {
        await signIn(next && next.startsWith('/staff') ? next : '/staff', STAFF_SCOPES);
      } catch (err) {
        staff.disabled = false;
        status.replaceChildren(errorSummary({ title: 'Signing in did not start', text: err.message || 'Try again.' }));
        status.firstChild.focus();
      }
    },
  });
  return {
    title: 'Manage your referral',
    body: [
      status,
      heading('Manage your referral'),
      ctx.query.get('signed-out') ? inset(h('p', {}, 'You have signed out.')) : null,
      (ctx.session && ctx.session.expired) || ctx.query.get('expired') ? inset(h('p', {}, 'Your sign-in has ended. Sign in again to carry on.')) : null,
      h('p', { class: 'nhsuk-body-l' }, 'See your hospital referral, choose where to be seen, and book, change or cancel your appointment.'),
      h('h2', { class: 'nhsuk-heading-m' }, 'Sign in with your account'),
      h('p', { class: 'nhsuk-body' }, 'Use your account to see all your referrals.'),
      start,
      h('h2', { class: 'nhsuk-heading-m' }, 'Or use your booking reference'),
      h('p', { class: 'nhsuk-body' }, 'Your GP practice gave you a booking reference number and an access code, in a letter or a text message.'),
      h('p', { class: 'nhsuk-body' }, h('a', { href: '/sign-in/ubrn', id: 'ubrn-link' }, 'Use your booking reference number and access code')),
      h('h2', { class: 'nhsuk-heading-m' }, 'NHS staff'),
      h('p', { class: 'nhsuk-body' }, 'Call-centre agents, providers and commissioners sign in with their work account.'),
      staff,
    ],
  };
}

// safeNext keeps only a path of this portal.
function safeNext(n) {
  return n && n.startsWith('/') && !n.startsWith('//') ? n : '';
}
