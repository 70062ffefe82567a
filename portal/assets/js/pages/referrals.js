// /referrals: the patient's referrals and their state.

import { h, tag, formatDate, formatUBRN } from '../dom.js';
import { heading } from '../layout.js';
import { read, search } from '../fhir.js';
import { specialty, reason, ubrn, state } from '../referral-data.js';

/** patientName is a Patient's name for display. */
export function patientName(p) {
  const n = ((p && p.name) || [])[0] || {};
  return n.text || [...(n.given || []), n.family].filter(Boolean).join(' ');
}

export async function render(ctx) {
  const s = ctx.session;
  const patient = await read('Patient', s.patient);
  const query = s.referral ? { _id: s.referral } : { subject: 'Patient/' + s.patient, _sort: '-authored', _count: 50 };
  const { matches: referrals } = await search('ServiceRequest', query);
  const { matches: appts } = await search('Appointment', { actor: 'Patient/' + s.patient, _count: 200 });
  const byReferral = (sr) => appts.filter((a) => (a.basedOn || []).some((b) => b.reference === 'ServiceRequest/' + sr.id));
  const list = referrals.length
    ? h('ul', { class: 'nhsuk-list', id: 'referral-list' }, referrals.map((sr) => {
      const [text, colour] = state(sr, byReferral(sr));
      return h('li', {}, h('div', { class: 'nhsuk-card nhsuk-card--clickable' }, h('div', { class: 'nhsuk-card__content' },
        h('h2', { class: 'nhsuk-card__heading nhsuk-heading-m' }, h('a', { class: 'nhsuk-card__link', href: '/referrals/' + encodeURIComponent(sr.id) }, specialty(sr))),
        h('p', { class: 'nhsuk-card__description' }, tag(text, colour)),
        reason(sr) ? h('p', { class: 'nhsuk-body-s' }, reason(sr)) : null,
        h('p', { class: 'nhsuk-body-s' }, 'Booking reference ', h('span', { class: 'portal-nowrap' }, formatUBRN(ubrn(sr))),
          sr.authoredOn ? ` · referred ${formatDate(sr.authoredOn)}` : ''))));
    }))
    : h('p', { class: 'nhsuk-body' }, 'You have no referrals. When your GP refers you, it will show here.');
  return {
    title: 'Your referrals',
    body: [heading('Your referrals', patientName(patient)), list],
  };
}
