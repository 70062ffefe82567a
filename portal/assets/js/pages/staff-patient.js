// /staff/patients/:patient: the call centre (or a provider) with a
// patient: their referrals and appointments; book (choose a service from
// the referral's shortlist, then the calendar of staff-book.js),
// reschedule or cancel on their behalf; raise an appointment slot issue
// when nothing suitable is free ($defer with the reason "no slots": the
// provider then contacts the patient and books, from its slot-issues
// worklist). ?referral=<id> opens that referral's booking choices.

import { h, button, backLink, summaryList, formatDate, formatTime, formatUBRN, tag, inset, card } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { read, search, request, operation, valueOf } from '../fhir.js';
import { loadReferral, specialty, reason, state, live, ubrn, serviceOf, readCached, ext, SHORTLIST } from '../referral-data.js';
import { requireStaff, patientName, nhsNumber, field, select } from './staff-common.js';

export async function render(ctx) {
  const s = requireStaff(ctx, 'call-centre', 'provider');
  const pid = ctx.params.patient;
  const patient = await read('Patient', pid);
  const { matches } = await search('ServiceRequest', { subject: 'Patient/' + pid, _count: 50 });
  matches.sort((a, b) => (b.authoredOn || '').localeCompare(a.authoredOn || ''));
  const open = ctx.query.get('referral');
  const base = '/staff/patients/' + encodeURIComponent(pid);
  const body = [backLink(s.role === 'provider' ? '/staff/worklists' : '/staff/find', s.role === 'provider' ? 'Back to the worklists' : 'Find another patient')];
  const status = h('div', {});
  body.push(status);
  const done = ['booked', 'changed', 'cancelled', 'slot-issue'].find((k) => ctx.query.get(k));
  if (done) {
    const words = { booked: 'Appointment booked', changed: 'Appointment changed', cancelled: 'Appointment cancelled', 'slot-issue': 'Slot issue raised' };
    const more = { booked: 'Tell the patient the date, time and their booking reference number.', changed: 'Tell the patient the new date and time.',
      cancelled: 'The time is offered to other patients.', 'slot-issue': 'The provider will contact the patient to book an appointment.' };
    body.push(h('div', { class: 'nhsuk-panel', id: 'confirmation' }, h('h1', { class: 'nhsuk-panel__title', tabindex: '-1' }, words[done]),
      h('div', { class: 'nhsuk-panel__body' }, more[done])));
    body.push(h('h2', { class: 'nhsuk-heading-l' }, patientName(patient)));
  } else {
    body.push(heading(patientName(patient), 'Patient'));
  }
  body.push(summaryList([['NHS number', nhsNumber(patient) || 'Not known'], ['Date of birth', formatDate(patient.birthDate)]]));
  if (!matches.length) body.push(h('p', { class: 'nhsuk-body' }, 'This patient has no referrals.'));
  body.push(h('h2', { class: 'nhsuk-heading-m' }, 'Referrals'));
  for (const sr0 of matches) {
    const { sr, appointments } = await loadReferral(sr0.id);
    const [st, colour] = state(sr, appointments);
    const standing = appointments.filter((a) => a.status === 'booked' || a.status === 'arrived' || a.status === 'checked-in');
    const rows = [['Booking reference', formatUBRN(ubrn(sr)) || 'None'], ['State', tag(st, colour)], reason(sr) ? ['Reason', reason(sr)] : null];
    const appts = [];
    for (const a of appointments.filter(live)) {
      const svc = serviceOf(a) ? await readCached(serviceOf(a)).catch(() => null) : null;
      const when = `${formatDate(a.start)} at ${formatTime(a.start)}`;
      appts.push(h('li', { class: 'staff-appointment' }, h('p', { class: 'nhsuk-body nhsuk-u-margin-bottom-2' }, h('strong', {}, when), svc ? ' – ' + svc.name : '', ' ', tag(a.status === 'pending' ? 'Held' : 'Booked', a.status === 'pending' ? 'yellow' : 'green')),
        a.status === 'booked' ? h('p', { class: 'portal-actions' },
          h('a', { href: `${base}/appointments/${encodeURIComponent(a.id)}/reschedule`, 'aria-label': `Reschedule the appointment on ${when}` }, 'Reschedule'), ' ',
          h('a', { href: `${base}/appointments/${encodeURIComponent(a.id)}/cancel`, 'aria-label': `Cancel the appointment on ${when}` }, 'Cancel')) : null));
    }
    const bookable = sr.status === 'active' && !standing.length;
    const section = h('div', { class: 'nhsuk-card', id: 'referral-' + sr.id }, h('div', { class: 'nhsuk-card__content' },
      h('h3', { class: 'nhsuk-card__heading nhsuk-heading-m' }, specialty(sr)),
      summaryList(rows),
      appts.length ? h('ul', { class: 'nhsuk-list' }, appts) : h('p', { class: 'nhsuk-body' }, 'No appointment booked.'),
      bookable && open !== sr.id ? h('a', { href: `${base}?referral=${encodeURIComponent(sr.id)}`, class: 'nhsuk-button nhsuk-u-margin-bottom-0', draggable: 'false', 'aria-label': `Book an appointment for ${specialty(sr)}` }, 'Book an appointment') : null,
      bookable && open === sr.id ? await choices(ctx, sr, base, status) : null));
    body.push(section);
  }
  return { title: patientName(patient), body };
}

// choices lists the services the referral may be booked at (its saved
// shortlist, else the best five of $shortlist), each to the calendar, and
// the form to raise a slot issue when none has a suitable time.
async function choices(ctx, sr, base, status) {
  const out = await request(`ServiceRequest/${encodeURIComponent(sr.id)}/$shortlist`, { query: { count: 20 } });
  let items = (out.parameter || []).filter((p) => p.name === 'service').map((p) => {
    const parts = {};
    for (const x of p.part || []) if (x.name !== 'reason') parts[x.name] = valueOf(x);
    return parts;
  });
  const saved = ext(sr, SHORTLIST).map((e) => e.valueReference && e.valueReference.reference).filter(Boolean);
  // A slot issue may go to any service that suits the referral (the one
  // the patient wanted, though it had no time free).
  const all = items;
  items = saved.length ? items.filter((i) => saved.includes(i.service.reference)) : items.slice(0, 5);
  // The service the referral names (the patient's choice, or where it was
  // sent) comes first, shortlisted or not.
  for (const p of [...(sr.performer || [])].reverse()) {
    const ref = p.reference || '';
    if (!/^HealthcareService\//.test(ref)) continue;
    items = items.filter((i) => i.service.reference !== ref);
    items.unshift(all.find((i) => i.service.reference === ref) || { service: { reference: ref } });
  }
  const list = h('ul', { class: 'nhsuk-list', id: 'staff-shortlist' });
  const names = [];
  for (const it of all) {
    const svc = await readCached(it.service.reference).catch(() => null);
    names.push([it.service.reference, (svc && svc.name) || it.service.display || 'Service']);
  }
  for (const it of items) {
    const svc = await readCached(it.service.reference).catch(() => null);
    const name = (svc && svc.name) || it.service.display || 'Service';
    const days = typeof it['waiting-days'] === 'number' ? it['waiting-days'] : null;
    const indirect = it.bookability && /indirect/i.test(it.bookability);
    list.appendChild(h('li', { class: 'nhsuk-u-margin-bottom-3' }, h('strong', {}, name), h('br'),
      h('span', { class: 'nhsuk-body-s' }, days === null ? 'No free appointments at the moment' : `Next free appointment in ${days} day${days === 1 ? '' : 's'}`,
        typeof it['distance-km'] === 'number' ? `, ${it['distance-km'].toFixed(1)} km away` : ''), h('br'),
      indirect ? tag('The service books', 'grey')
        : h('a', { href: `${base}/referrals/${encodeURIComponent(sr.id)}/services/${encodeURIComponent(it.service.reference.split('/')[1])}`, 'aria-label': `See free times at ${name}` }, 'See free times')));
  }
  const svcSelect = select('slot-issue-service', names);
  const raise = button('Raise a slot issue', { secondary: true, id: 'raise-slot-issue', type: 'submit' });
  const form = h('form', { novalidate: true, id: 'slot-issue-form' },
    h('h4', { class: 'nhsuk-heading-s' }, 'Nothing suitable is free?'),
    h('p', { class: 'nhsuk-body-s' }, 'Raise an appointment slot issue: the service then contacts the patient to book.'),
    names.length ? field('slot-issue-service', 'Service the patient wants', svcSelect) : null,
    raise);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    raise.disabled = true;
    const pairs = [['reason', { valueString: 'no slots' }]];
    if (names.length) pairs.push(['service', { valueReference: { reference: svcSelect.value } }]);
    try {
      await operation(`ServiceRequest/${encodeURIComponent(sr.id)}/$defer`, pairs, { idempotent: true });
      ctx.navigate(`${base}?slot-issue=1`, { replace: true });
    } catch (err) {
      raise.disabled = false;
      status.replaceChildren(errorSummary(err));
      status.firstChild.focus();
    }
  });
  return h('div', { id: 'booking-choices' }, h('h4', { class: 'nhsuk-heading-s' }, 'Choose a service'),
    items.length ? list : h('p', { class: 'nhsuk-body' }, 'No service can see the patient for this referral at the moment.'),
    inset(form));
}
