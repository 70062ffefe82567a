// /staff/patients/:patient/referrals/:id/services/:service and
// /staff/patients/:patient/appointments/:id/reschedule: the patient
// calendar (pages/calendar.js), for a patient the member of staff is
// booking for. A new booking goes on to the hold page (?for=<patient>),
// which books and comes back here; a change asks for the reason first.

import { h } from '../dom.js';
import { render as calendar } from './calendar.js';
import { requireStaff, field, select } from './staff-common.js';

const reasons = ['The patient asked to change the time on the phone', 'The patient cannot make this time', 'The service asked us to move the appointment', 'Another reason'];

export async function render(ctx) {
  requireStaff(ctx, 'call-centre', 'provider');
  const pid = ctx.params.patient;
  const back = '/staff/patients/' + encodeURIComponent(pid);
  const rescheduling = ctx.pathname.endsWith('/reschedule');
  const why = select('change-reason', reasons.map((r) => [r, r]));
  const page = await calendar({
    ...ctx, patient: pid, rescheduling, back: [back, 'Back to the patient'], holdQuery: '?for=' + encodeURIComponent(pid),
    reason: () => `${why.value} (changed by staff for the patient)`,
    done: () => ctx.navigate(back + '?changed=1'),
  });
  if (!page || !rescheduling) return page;
  const body = [].concat(page.body);
  body.unshift(h('div', { class: 'staff-reason' }, field('change-reason', 'Why is the appointment changing?', why)));
  return { ...page, body };
}
