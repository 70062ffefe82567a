// /appointments/:id: the appointment, its booking reference and how to
// get there; change or cancel it.

import { h, summaryList, formatDate, formatTime, formatUBRN, tag, backLink } from '../dom.js';
import { heading } from '../layout.js';
import { read } from '../fhir.js';
import { serviceOf, readCached, place, addressLines, phone, ubrn, live } from '../referral-data.js';

export async function render(ctx) {
  const appt = await read('Appointment', ctx.params.id);
  if (appt.status === 'pending') {
    ctx.navigate('/holds/' + encodeURIComponent(appt.id), { replace: true });
    return null;
  }
  const referral = (((appt.basedOn || []).find((b) => /^ServiceRequest\//.test(b.reference || '')) || {}).reference || '').split('/')[1] || '';
  const svcRef = serviceOf(appt);
  const service = svcRef ? await readCached(svcRef) : null;
  const loc = service ? await place(service) : null;
  const when = `${formatDate(appt.start)} at ${formatTime(appt.start)}`;
  const body = [backLink('/referrals/' + encodeURIComponent(referral), 'Back to your referral')];
  const booked = ctx.query.get('booked');
  const changed = ctx.query.get('changed');
  if (booked || changed) {
    body.push(h('div', { class: 'nhsuk-panel', id: 'confirmation' },
      h('h1', { class: 'nhsuk-panel__title', tabindex: '-1' }, changed ? 'Appointment changed' : 'Appointment booked'),
      h('div', { class: 'nhsuk-panel__body' }, when, h('br'), 'Your booking reference is ', h('strong', { id: 'confirmation-ubrn' }, formatUBRN(ubrn(appt))))));
  } else {
    body.push(heading('Your appointment', service ? service.name : ''));
  }
  const statusTag = appt.status === 'booked' ? tag('Booked', 'green') : appt.status === 'cancelled' ? tag('Cancelled', 'grey')
    : appt.status === 'fulfilled' ? tag('Attended', 'blue') : tag(appt.status, 'grey');
  body.push(summaryList([
    ['Status', statusTag],
    ['Date', formatDate(appt.start)],
    ['Time', formatTime(appt.start)],
    service ? ['Service', service.name] : null,
    ['Booking reference', h('span', { id: 'appointment-ubrn' }, formatUBRN(ubrn(appt)))],
    appt.status === 'cancelled' && appt.cancelationReason ? ['Why it was cancelled', appt.cancelationReason.text || ''] : null,
  ]));
  if (loc || service) {
    body.push(h('h2', { class: 'nhsuk-heading-m' }, 'How to get there'));
    if (loc) {
      body.push(h('p', { class: 'nhsuk-body', id: 'appointment-address' }, [loc.name, ...addressLines(loc)].filter(Boolean).flatMap((l, i) => (i ? [h('br'), l] : [l]))));
      if (loc.position && typeof loc.position.latitude === 'number') {
        const { latitude: lat, longitude: lon } = loc.position;
        body.push(h('p', { class: 'nhsuk-body' }, h('a', { href: `https://www.openstreetmap.org/directions?to=${lat}%2C${lon}`, rel: 'external noopener', target: '_blank' }, 'Get directions (opens in a new tab)')));
      }
    }
    const tel = phone(service) || phone(loc);
    if (tel) body.push(h('p', { class: 'nhsuk-body' }, 'If you need help finding the service, or cannot come, call ', h('a', { href: 'tel:' + tel.replace(/\s+/g, '') }, tel), '.'));
    body.push(h('p', { class: 'nhsuk-body' }, 'Bring your booking reference with you. Arrive 10 minutes early.'));
  }
  if (live(appt) && new Date(appt.start) > new Date()) {
    body.push(h('h2', { class: 'nhsuk-heading-m' }, 'Change or cancel'));
    body.push(h('div', { class: 'portal-actions' },
      h('a', { class: 'nhsuk-button nhsuk-button--secondary', href: `/appointments/${encodeURIComponent(appt.id)}/reschedule`, id: 'reschedule', draggable: 'false' }, 'Change the time'),
      h('a', { href: `/appointments/${encodeURIComponent(appt.id)}/cancel`, id: 'cancel' }, 'Cancel this appointment')));
  }
  return { title: booked ? 'Appointment booked' : changed ? 'Appointment changed' : 'Your appointment', body };
}
