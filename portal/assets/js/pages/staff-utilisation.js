// /staff/utilisation: a provider's schedule utilisation: for each of its
// clinics (the HealthcareServices its organisation provides), the slots
// of the next two weeks booked (busy) and free, counted by the API
// (Slot?schedule.actor=…&status=…&_summary=count).

import { h, formatDate } from '../dom.js';
import { heading } from '../layout.js';
import { request, search } from '../fhir.js';
import { requireStaff, table } from './staff-common.js';

const DAYS = 14;
const ODS_SYSTEM = 'https://fhir.nhs.uk/Id/ods-organization-code';

async function count(query) {
  const b = await request('Slot', { query: { ...query, _summary: 'count' } });
  return (b && b.total) || 0;
}

export async function render(ctx) {
  const s = requireStaff(ctx, 'provider');
  const orgs = (await search('Organization', { identifier: ODS_SYSTEM + '|' + s.org, _count: 5 })).matches;
  const start = new Date();
  start.setUTCHours(0, 0, 0, 0);
  const end = new Date(start.getTime() + DAYS * 86400000);
  const range = ['ge' + start.toISOString().replace(/\.\d+Z$/, 'Z'), 'lt' + end.toISOString().replace(/\.\d+Z$/, 'Z')];
  const services = [];
  for (const o of orgs) services.push(...(await search('HealthcareService', { organization: 'Organization/' + o.id, _count: 100 })).matches);
  services.sort((a, b) => (a.name || '').localeCompare(b.name || ''));
  const rows = await Promise.all(services.map(async (svc) => {
    const actor = 'HealthcareService/' + svc.id;
    const [busy, free] = await Promise.all([count({ 'schedule.actor': actor, start: range, status: 'busy' }), count({ 'schedule.actor': actor, start: range, status: 'free' })]);
    return { name: svc.name || svc.id, busy, free };
  }));
  const total = rows.reduce((t, r) => ({ busy: t.busy + r.busy, free: t.free + r.free }), { busy: 0, free: 0 });
  const pct = (r) => (r.busy + r.free ? Math.round((100 * r.busy) / (r.busy + r.free)) + '%' : 'No slots');
  const bar = (r) => h('meter', { min: 0, max: Math.max(1, r.busy + r.free), value: r.busy, class: 'staff-meter', 'aria-label': `${r.name}: ${pct(r)} booked` }, pct(r));
  const body = [heading('Schedule utilisation', 'Next two weeks'),
    h('p', { class: 'nhsuk-body' }, `Booked and free appointment slots from ${formatDate(start.toISOString().slice(0, 10))} to ${formatDate(new Date(end.getTime() - 86400000).toISOString().slice(0, 10))}, by clinic.`)];
  if (!rows.length) {
    body.push(h('p', { class: 'nhsuk-body' }, 'Your organisation has no clinics in the directory.'));
  } else {
    body.push(table('Slots by clinic', ['Clinic', 'Booked', 'Free', 'Booked share', 'Booked, as a bar'],
      [...rows.map((r) => [r.name, String(r.busy), String(r.free), pct(r), bar(r)]),
        [h('strong', {}, 'All clinics'), h('strong', {}, String(total.busy)), h('strong', {}, String(total.free)), h('strong', {}, pct(total)), '']], { id: 'utilisation' }));
  }
  return { title: 'Schedule utilisation', body };
}
