// /referrals/:id/shortlist: the services the patient may choose from
// (ServiceRequest/$shortlist), with distance, the true waiting time (to
// the next free appointment) and why each is on the list.

import { h, inset, backLink, formatDate, tag } from '../dom.js';
import { heading } from '../layout.js';
import { request, valueOf } from '../fhir.js';
import { loadReferral, specialty, ext, SHORTLIST, readCached, place, addressLines } from '../referral-data.js';

export async function render(ctx) {
  const id = ctx.params.id;
  const { sr } = await loadReferral(id);
  const out = await request(`ServiceRequest/${encodeURIComponent(id)}/$shortlist`, { query: { count: 20 } });
  let items = (out.parameter || []).filter((p) => p.name === 'service').map((p) => {
    const parts = {};
    const reasons = [];
    for (const x of p.part || []) {
      if (x.name === 'reason') reasons.push(plainReason(valueOf(x)));
      else parts[x.name] = valueOf(x);
    }
    return { ...parts, reasons };
  });
  // The GP's saved shortlist, when there is one, is what the patient chooses from.
  const saved = ext(sr, SHORTLIST).map((e) => e.valueReference && e.valueReference.reference).filter(Boolean);
  if (saved.length) items = items.filter((i) => saved.includes(i.service.reference));
  else items = items.slice(0, 5);
  const body = [backLink('/referrals/' + encodeURIComponent(id), 'Back to your referral'), heading('Choose where to be seen', specialty(sr))];
  if (!items.length) {
    body.push(h('p', { class: 'nhsuk-body' }, 'No service can see you for this referral at the moment. Your GP practice or the booking line can help.'));
    return { title: 'Choose where to be seen', body };
  }
  body.push(h('p', { class: 'nhsuk-body' }, 'These services can see you. The waiting time is how long until the next free appointment.'));
  const list = h('ol', { class: 'nhsuk-list', id: 'shortlist' });
  for (const it of items) {
    let service = null;
    let loc = null;
    try {
      service = await readCached(it.service.reference);
      loc = await place(service);
    } catch {
      service = null;
    }
    const name = (service && service.name) || it.service.display || 'Service';
    const km = typeof it['distance-km'] === 'number' ? it['distance-km'] : null;
    const days = typeof it['waiting-days'] === 'number' ? it['waiting-days'] : null;
    const indirect = it.bookability && /indirect/i.test(it.bookability);
    const serviceId = it.service.reference.split('/')[1];
    list.appendChild(h('li', {}, h('div', { class: 'nhsuk-card' }, h('div', { class: 'nhsuk-card__content' },
      h('h2', { class: 'nhsuk-card__heading nhsuk-heading-m' }, name),
      loc ? h('p', { class: 'nhsuk-body-s' }, (loc.name ? loc.name + ', ' : '') + addressLines(loc).join(', ')) : null,
      h('dl', { class: 'nhsuk-summary-list' },
        row('Distance', km === null ? 'Not known' : `${km.toFixed(1)} km (${(km / 1.609).toFixed(1)} miles)`),
        row('Waiting time', days === null ? 'No free appointments at the moment'
          : `${days === 0 ? 'Less than a day' : days === 1 ? '1 day' : days + ' days'}${it['next-slot'] ? ' (first free: ' + formatDate(it['next-slot']) + ')' : ''}`)),
      it.reasons.length ? h('div', {}, h('h3', { class: 'nhsuk-heading-xs' }, 'Why it is suggested'),
        h('ul', { class: 'nhsuk-list nhsuk-list--bullet nhsuk-body-s' }, it.reasons.map((r) => h('li', {}, r)))) : null,
      indirect
        ? h('p', { class: 'nhsuk-body' }, tag('The service books', 'grey'), ' This service looks at your referral first and contacts you to book.')
        : h('a', { class: 'nhsuk-button nhsuk-u-margin-bottom-0', href: `/referrals/${encodeURIComponent(id)}/services/${encodeURIComponent(serviceId)}`, draggable: 'false', 'aria-label': `Choose ${name}` }, 'Choose this service')))));
  }
  body.push(list);
  body.push(inset(h('p', {}, 'If none of these suit you, call the booking line and we will help.')));
  return { title: 'Choose where to be seen', body };
}

function row(k, v) {
  return h('div', { class: 'nhsuk-summary-list__row' }, h('dt', { class: 'nhsuk-summary-list__key' }, k), h('dd', { class: 'nhsuk-summary-list__value' }, v));
}

// plainReason says a reason without the references it names.
function plainReason(r) {
  const s = String(r).replace(/commissioned by Organization\/[A-Za-z0-9\-.]+/, 'paid for by your local NHS').replace(/\b[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]+/g, 'it');
  return s.charAt(0).toUpperCase() + s.slice(1);
}
