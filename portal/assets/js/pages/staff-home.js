// /staff: a member of staff's start, by the role in their token: the call
// centre finds a patient, a provider or referrer works the worklists, a
// commissioner reads the reports.

import { h } from '../dom.js';
import { heading } from '../layout.js';
import { requireStaff, ROLE_NAMES } from './staff-common.js';

const homes = { 'call-centre': '/staff/find', provider: '/staff/worklists', referrer: '/staff/worklists', commissioner: '/staff/reports' };

export async function render(ctx) {
  const s = requireStaff(ctx);
  if (homes[s.role]) {
    ctx.navigate(homes[s.role], { replace: true });
    return null;
  }
  return {
    title: 'No staff pages for your role',
    body: [heading('No staff pages for your role', ROLE_NAMES[s.role] || s.role),
      h('p', { class: 'nhsuk-body' }, 'The portal has pages for the booking call centre, providers, referrers and commissioners. Your sign-in is for another role.'),
      h('p', { class: 'nhsuk-body' }, h('a', { href: '/sign-out' }, 'Sign out'))],
  };
}
