// The calendar of free appointments at a service (Appointment/$find),
// grouped by day. To book (/referrals/:id/services/:service) a time is
// held ($hold) while the patient confirms; to change an appointment
// (/appointments/:id/reschedule) the chosen time replaces it
// ($reschedule). A time someone else took meanwhile is said in plain
// words, above a refreshed calendar.

import { h, button, backLink, formatDate, formatTime, dayKey, inset } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { read, operation, bundleParts } from '../fhir.js';
import { loadReferral, ubrn, UBRN_SYSTEM, readCached, serviceOf, place, addressLines, bookingQuestionnaire } from '../referral-data.js';

const WEEKS = 6;

// ctx may carry, for staff booking on a patient's behalf (staff-book.js):
// patient (the patient's id, else the session's), rescheduling, reason()
// (the reason to record for a change), back ([href, text]), done(appt)
// (after a change) and holdQuery (added to the hold page's path).
export async function render(ctx) {
  const rescheduling = ctx.rescheduling !== undefined ? ctx.rescheduling : ctx.pathname.startsWith('/appointments/');
  const patient = ctx.patient || ctx.session.patient;
  let referralId;
  let serviceRef;
  let current = null;
  if (rescheduling) {
    current = await read('Appointment', ctx.params.id);
    referralId = ((current.basedOn || []).find((b) => /^ServiceRequest\//.test(b.reference || '')) || {}).reference;
    referralId = referralId ? referralId.split('/')[1] : '';
    serviceRef = serviceOf(current);
  } else {
    referralId = ctx.params.id;
    serviceRef = 'HealthcareService/' + ctx.params.service;
  }
  const { sr } = await loadReferral(referralId);
  const service = await readCached(serviceRef);
  const loc = await place(service);
  const root = h('div', {});
  const back = ctx.back ? backLink(...ctx.back) : rescheduling ? backLink('/appointments/' + encodeURIComponent(current.id), 'Back to your appointment')
    : backLink(`/referrals/${encodeURIComponent(referralId)}/shortlist`, 'Back to the services');
  const title = rescheduling ? 'Choose a new time' : 'Choose a time';

  if (!rescheduling) {
    const bq = await bookingQuestionnaire(service, referralId);
    if (bq && !bq.answered) {
      const next = encodeURIComponent(ctx.pathname);
      return { title, body: [back, heading(title, service.name),
        h('p', { class: 'nhsuk-body' }, 'Before you book, this service needs a few answers from you.'),
        h('a', { class: 'nhsuk-button', draggable: 'false', id: 'answer-first', href: `/referrals/${encodeURIComponent(referralId)}/questionnaires/${encodeURIComponent(bq.questionnaire.id)}?next=${next}` }, 'Answer the questions')] };
    }
  }

  const draw = async (problem) => {
    const start = new Date();
    const end = new Date(start.getTime() + WEEKS * 7 * 86400000);
    const found = await operation('Appointment/$find', [
      ['healthcare-service', { valueReference: { reference: serviceRef } }],
      ['patient-reference', { valueReference: { reference: 'Patient/' + patient } }],
      ['referral-identifier', { valueIdentifier: { system: UBRN_SYSTEM, value: ubrn(sr) } }],
      ['start', { valueDateTime: start.toISOString().replace(/\.\d+Z$/, 'Z') }],
      ['end', { valueDateTime: end.toISOString().replace(/\.\d+Z$/, 'Z') }],
      ['_count', { valueInteger: 120 }],
    ]);
    const { matches, outcomes } = bundleParts(found);
    const parts = [];
    if (problem) parts.push(errorSummary(problem));
    parts.push(heading(title, service.name));
    if (loc) parts.push(h('p', { class: 'nhsuk-body' }, 'At ' + [loc.name, ...addressLines(loc)].filter(Boolean).join(', ')));
    if (rescheduling) parts.push(inset(h('p', {}, `Your appointment now is ${formatDate(current.start)} at ${formatTime(current.start)}. It stays booked until you choose a new time.`)));
    const proposals = matches.filter((r) => r.resourceType === 'Appointment');
    if (!proposals.length) {
      const oo = outcomes[0] && outcomes[0].issue && outcomes[0].issue[0];
      const code = oo && oo.details && oo.details.coding && oo.details.coding[0] && oo.details.coding[0].code;
      parts.push(h('p', { class: 'nhsuk-body', id: 'no-times' }, code === 'PROVIDER_BOOKS'
        ? 'The service is looking at your referral first and will contact you to arrange your appointment.'
        : 'There are no free appointments at this service in the next ' + WEEKS + ' weeks. Choose another service, or try again later.'));
      root.replaceChildren(back, ...parts);
      return;
    }
    const days = new Map();
    for (const p of proposals) {
      const k = dayKey(p.start);
      if (!days.has(k)) days.set(k, []);
      days.get(k).push(p);
    }
    parts.push(h('p', { class: 'nhsuk-body' }, `Free appointments in the next ${WEEKS} weeks. Choose a time${rescheduling ? '' : ': we hold it for you for 5 minutes while you confirm'}.`));
    const cal = h('div', { id: 'calendar' });
    for (const [, list] of days) {
      const dayTitle = formatDate(list[0].start);
      cal.appendChild(h('section', { class: 'portal-calendar__day', 'aria-label': dayTitle },
        h('h2', { class: 'nhsuk-heading-s' }, dayTitle),
        h('ul', { class: 'portal-calendar__times' }, list.map((p) => h('li', {},
          button(formatTime(p.start), { secondary: true, class: 'portal-time', 'aria-label': `${formatTime(p.start)} on ${dayTitle}`,
            dataset: { start: p.start }, onclick: (ev) => choose(p, ev.currentTarget) }))))));
    }
    parts.push(cal);
    root.replaceChildren(back, ...parts);
  };

  const choose = async (proposal, btn) => {
    for (const b of root.querySelectorAll('button')) b.disabled = true;
    btn.textContent = rescheduling ? 'Changing…' : 'Holding…';
    try {
      if (rescheduling) {
        const out = await operation(`Appointment/${encodeURIComponent(current.id)}/$reschedule`, [
          ...(proposal.slot || []).map((s) => ['slot', { valueReference: { reference: s.reference } }]),
          ['reason', { valueString: ctx.reason ? ctx.reason() : 'Changed by the patient online' }],
        ], { idempotent: true });
        const appt = bundleParts(out).matches.find((r) => r.resourceType === 'Appointment' && r.status === 'booked');
        if (ctx.done) ctx.done(appt);
        else ctx.navigate('/appointments/' + encodeURIComponent(appt.id) + '?changed=1');
      } else {
        const out = await operation('Appointment/$hold', [['appointment-reference', { valueReference: { reference: 'Appointment/' + proposal.id } }]], { idempotent: true });
        const held = bundleParts(out).matches.find((r) => r.resourceType === 'Appointment');
        ctx.navigate('/holds/' + encodeURIComponent(held.id) + (ctx.holdQuery || ''));
      }
    } catch (err) {
      await draw(err);
      const es = root.querySelector('.nhsuk-error-summary');
      if (es) es.focus();
    }
  };

  await draw(null);
  return { title, body: [root] };
}

