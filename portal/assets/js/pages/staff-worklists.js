// /staff/worklists: the referral worklists (Task?worklist=…): a provider's
// "for review" (booked or awaiting triage) and "slot issues" (no slot
// could be found: contact the patient and book); a referrer's "to book"
// and "rejected". The API narrows each to the caller's organisation.
// ?list=<code> chooses the list.

import { h, formatDate, formatUBRN, tag } from '../dom.js';
import { heading } from '../layout.js';
import { search, read } from '../fhir.js';
import { specialty, ubrn } from '../referral-data.js';
import { requireStaff, table, patientName, nhsNumber, refId } from './staff-common.js';

const lists = {
  provider: [['for-review', 'For review'], ['slot-issues', 'Slot issues']],
  referrer: [['awaiting-booking', 'Not yet booked'], ['rejected', 'Rejected']],
};

export async function render(ctx) {
  const s = requireStaff(ctx, 'provider', 'referrer');
  const mine = lists[s.role];
  const code = mine.some(([c]) => c === ctx.query.get('list')) ? ctx.query.get('list') : mine[0][0];
  const label = mine.find(([c]) => c === code)[1];
  const { matches, included } = await search('Task', { worklist: code, _count: 50, _sort: 'authored-on', _include: 'Task:focus' });
  const rows = [];
  for (const t of matches) {
    const srRef = (t.focus || {}).reference || '';
    const srId = refId(srRef, 'ServiceRequest');
    if (!srId) continue;
    // A referral the caller may not read is still listed, by its Task.
    const sr = included[srRef] || await read('ServiceRequest', srId).catch(() => null);
    const pRef = ((sr && sr.subject) || t.for || {}).reference || '';
    const p = included[pRef] || (refId(pRef, 'Patient') ? await read('Patient', refId(pRef, 'Patient')).catch(() => null) : null);
    const why = t.statusReason && t.statusReason.text;
    rows.push([
      h('a', { href: '/staff/referrals/' + encodeURIComponent(srId) }, formatUBRN(ubrn(sr || t)) || srId),
      p ? `${patientName(p)} (${nhsNumber(p)})` : 'Not known',
      sr ? specialty(sr) : 'Not known',
      (sr || t).priority && (sr || t).priority !== 'routine' ? tag((sr || t).priority === 'urgent' ? 'Urgent' : (sr || t).priority, 'red') : 'Routine',
      formatDate(((sr && sr.authoredOn) || t.authoredOn || '').slice(0, 10)) + (why ? ` – ${why}` : ''),
    ]);
  }
  const nav = h('nav', { class: 'staff-tabs', 'aria-label': 'Worklists' }, h('ul', { class: 'nhsuk-list staff-tabs__list' }, mine.map(([c, t]) =>
    h('li', { class: 'staff-tabs__item' }, c === code ? h('strong', { 'aria-current': 'page' }, t) : h('a', { href: '/staff/worklists?list=' + c }, t)))));
  return {
    title: label + ' worklist',
    body: [heading(label, 'Worklist'), nav,
      rows.length ? table(`${rows.length} referral${rows.length === 1 ? '' : 's'}`, ['Booking reference', 'Patient', 'Specialty', 'Priority', 'Referred'], rows, { id: 'worklist' })
        : h('p', { class: 'nhsuk-body', id: 'worklist-empty' }, 'No referrals on this worklist.')],
  };
}
