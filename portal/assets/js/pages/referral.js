// /referrals/:id: one referral, its state, its appointments, what to do
// next, and the questionnaires to answer.

import { h, tag, summaryList, formatDate, formatTime, formatUBRN, inset, backLink } from '../dom.js';
import { heading } from '../layout.js';

import { loadReferral, specialty, reason, ubrn, state, live, serviceOf, readCached, ext, SHORTLIST,
  bookingQuestionnaire, experienceQuestionnaires, answered } from '../referral-data.js';

const apptStatus = { booked: ['Booked', 'green'], pending: ['Held', 'yellow'], cancelled: ['Cancelled', 'grey'], fulfilled: ['Attended', 'blue'],
  noshow: ['Missed', 'red'], arrived: ['Arrived', 'green'], 'checked-in': ['Checked in', 'green'], proposed: ['Proposed', 'grey'] };

export async function render(ctx) {
  const id = ctx.params.id;
  const { sr, appointments } = await loadReferral(id);
  const [text, colour] = state(sr, appointments);
  const current = appointments.find(live);
  const body = [backLink('/referrals', 'Your referrals'), heading(specialty(sr), 'Your referral')];
  if (ctx.query.get('cancelled')) body.push(inset(h('p', {}, 'Your appointment has been cancelled. You can book another time when you are ready.')));
  if (ctx.query.get('answered')) body.push(inset(h('p', {}, 'Thank you. Your answers have been saved.')));
  body.push(summaryList([
    ['Status', tag(text, colour)],
    ['Booking reference', h('span', { id: 'referral-ubrn' }, formatUBRN(ubrn(sr)))],
    reason(sr) ? ['Reason', reason(sr)] : null,
    sr.authoredOn ? ['Referred on', formatDate(sr.authoredOn)] : null,
    sr.priority && sr.priority !== 'routine' ? ['Priority', sr.priority === 'stat' ? 'Two-week wait (urgent)' : 'Urgent'] : null,
  ]));

  const open = sr.status === 'active' || sr.status === 'draft';
  if (current && current.status === 'pending') {
    body.push(h('p', { class: 'nhsuk-body' }, h('a', { href: '/holds/' + encodeURIComponent(current.id) }, 'Confirm the time you are holding')));
  } else if (current) {
    body.push(h('p', { class: 'nhsuk-body' }, h('a', { href: '/appointments/' + encodeURIComponent(current.id), id: 'view-appointment' }, 'View your appointment')));
  } else if (open && !appointments.some((a) => a.status === 'fulfilled')) {
    body.push(h('a', { class: 'nhsuk-button', href: `/referrals/${encodeURIComponent(id)}/shortlist`, id: 'choose-service', draggable: 'false' }, 'Choose where to be seen'));
  }

  if (appointments.length) {
    body.push(h('h2', { class: 'nhsuk-heading-m' }, 'Appointments'));
    const rows = [];
    for (const a of appointments) {
      const svc = serviceOf(a);
      let name = '';
      if (svc) {
        try {
          name = (await readCached(svc)).name;
        } catch {
          name = '';
        }
      }
      const [t, c] = apptStatus[a.status] || [a.status, 'grey'];
      rows.push(h('li', {}, h('a', { href: a.status === 'pending' ? '/holds/' + encodeURIComponent(a.id) : '/appointments/' + encodeURIComponent(a.id) },
        `${formatDate(a.start)} at ${formatTime(a.start)}`), name ? ` – ${name} ` : ' ', tag(t, c)));
    }
    body.push(h('ul', { class: 'nhsuk-list nhsuk-list--border', id: 'appointment-list' }, rows));
  }

  // Questionnaires: booking guidance of the services in play, and
  // feedback once an appointment has taken place.
  const services = new Set(ext(sr, SHORTLIST).map((e) => e.valueReference && e.valueReference.reference).filter(Boolean));
  for (const a of appointments) if (serviceOf(a)) services.add(serviceOf(a));
  const todo = [];
  for (const ref of services) {
    try {
      const bq = await bookingQuestionnaire(await readCached(ref), id);
      if (bq && !todo.some((x) => x.q.id === bq.questionnaire.id)) todo.push({ q: bq.questionnaire, done: bq.answered });
    } catch {
      // a service that cannot be read has no questions to show
    }
  }
  if (appointments.some((a) => a.status === 'fulfilled')) {
    for (const q of await experienceQuestionnaires()) todo.push({ q, done: await answered(q, id), feedback: true });
  }
  if (todo.length) {
    body.push(h('h2', { class: 'nhsuk-heading-m' }, 'Questions for you'));
    body.push(h('ul', { class: 'nhsuk-list', id: 'questionnaire-list' }, todo.map(({ q, done, feedback }) => h('li', {},
      h('a', { href: `/referrals/${encodeURIComponent(id)}/questionnaires/${encodeURIComponent(q.id)}` }, q.title || q.name || 'Questions'),
      ' ', done ? tag('Answered', 'green') : tag(feedback ? 'Tell us how it went' : 'Answer before booking', 'yellow')))));
  }
  return { title: specialty(sr), body };
}

