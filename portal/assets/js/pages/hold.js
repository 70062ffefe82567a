// /holds/:id: the time held for the patient ($hold), with the hold's
// countdown, to confirm ($book) or give up.

import { h, button, summaryList, formatDate, formatTime, formatUBRN, backLink } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { read, operation, bundleParts } from '../fhir.js';
import { HOLD_EXPIRES, ext, serviceOf, readCached, place, addressLines, ubrn } from '../referral-data.js';
import { PortalError } from '../errors.js';
import { patientName } from './staff-common.js';

export async function render(ctx) {
  const appt = await read('Appointment', ctx.params.id);
  const referral = (((appt.basedOn || []).find((b) => /^ServiceRequest\//.test(b.reference || '')) || {}).reference || '').split('/')[1] || '';
  const svcRef = serviceOf(appt);
  const service = svcRef ? await readCached(svcRef) : { name: 'Service' };
  const loc = await place(service);
  // ?for=<patient>: staff holding a time for a patient (staff-book.js).
  const forPatient = ctx.query.get('for');
  const chooseAgain = forPatient ? `/staff/patients/${encodeURIComponent(forPatient)}/referrals/${encodeURIComponent(referral)}/services/${encodeURIComponent(svcRef.split('/')[1] || '')}` : `/referrals/${encodeURIComponent(referral)}/services/${encodeURIComponent(svcRef.split('/')[1] || '')}`;
  if (appt.status === 'booked') {
    ctx.navigate('/appointments/' + encodeURIComponent(appt.id), { replace: true });
    return null;
  }
  // Staff booking on the patient's behalf are told whose time it is, not
  // "your" appointment.
  const who = forPatient ? await read('Patient', forPatient).then(patientName, () => 'the patient') : '';
  const title = forPatient ? `Confirm the appointment for ${who}` : 'Confirm your appointment';
  if (appt.status !== 'pending') {
    return { title: 'This time is no longer held', body: [heading('This time is no longer held'),
      h('p', { class: 'nhsuk-body' }, forPatient ? 'We hold a time for 5 minutes while it is confirmed, and that time has passed.' : 'We hold a time for 5 minutes while you confirm, and that time has passed.'),
      h('a', { class: 'nhsuk-button', href: chooseAgain, draggable: 'false' }, 'Choose a time')] };
  }
  const expires = new Date((ext(appt, HOLD_EXPIRES)[0] || {}).valueInstant || (ext(appt, HOLD_EXPIRES)[0] || {}).valueDateTime || Date.now() + 300000);
  const status = h('div', {});
  const clock = h('span', { class: 'portal-countdown', id: 'hold-countdown' });
  const spoken = h('span', { class: 'nhsuk-u-visually-hidden', 'aria-live': 'polite', id: 'hold-announce' });
  let lastMinute = -1;
  const tick = () => {
    const left = Math.max(0, Math.round((expires.getTime() - Date.now()) / 1000));
    clock.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
    const minute = Math.ceil(left / 60);
    if (minute !== lastMinute && (left % 60 === 0 || lastMinute === -1)) {
      lastMinute = minute;
      spoken.textContent = left > 0 ? `${minute} minute${minute === 1 ? '' : 's'} left to confirm` : 'Your hold has ended';
    }
    if (left === 0) {
      clearInterval(timer);
      confirm.disabled = true;
      status.replaceChildren(errorSummary(new PortalError(409, { resourceType: 'OperationOutcome', issue: [{ details: { coding: [{ code: 'HOLD_EXPIRED' }] } }] }), [[chooseAgain, 'Choose a time again']]));
      status.firstChild.focus();
    }
  };
  const confirm = button('Confirm and book', {
    id: 'confirm-booking',
    onclick: async () => {
      confirm.disabled = true;
      try {
        const out = await operation('Appointment/$book', [['appointment-reference', { valueReference: { reference: 'Appointment/' + appt.id } }]], { idempotent: true });
        const booked = bundleParts(out).matches.find((r) => r.resourceType === 'Appointment');
        clearInterval(timer);
        ctx.navigate(forPatient ? `/staff/patients/${encodeURIComponent(forPatient)}?booked=${encodeURIComponent(booked.id)}` : '/appointments/' + encodeURIComponent(booked.id) + '?booked=1', { replace: true });
      } catch (err) {
        confirm.disabled = false;
        const e = err.code === 'BOOKING_QUESTIONNAIRE_REQUIRED' ? [[`/referrals/${encodeURIComponent(referral)}`, 'Go to your referral to answer the questions']] : [[chooseAgain, 'Choose another time']];
        status.replaceChildren(errorSummary(err, e));
        status.firstChild.focus();
      }
    },
  });
  const timer = setInterval(tick, 1000);
  ctx.onLeave(() => clearInterval(timer));
  tick();
  return {
    title,
    body: [backLink(chooseAgain, 'Choose another time'), status, heading(title),
      h('div', { class: 'nhsuk-warning-callout' }, h('h2', { class: 'nhsuk-warning-callout__label' }, h('span', { role: 'text' }, h('span', { class: 'nhsuk-u-visually-hidden' }, 'Important: '), forPatient ? `We are holding this time for ${who}` : 'We are holding this time for you')),
        h('p', {}, 'Confirm within ', clock, ' or the time will be offered to other people.', spoken)),
      summaryList([
        ['Date', formatDate(appt.start)],
        ['Time', formatTime(appt.start)],
        ['Service', service.name],
        loc ? ['Where', [loc.name, ...addressLines(loc)].filter(Boolean).join(', ')] : null,
        ubrn(appt) ? ['Booking reference', formatUBRN(ubrn(appt))] : null,
      ]),
      confirm],
  };
}
