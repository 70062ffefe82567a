// What the patient pages read about a referral, through the FHIR API: the
// ServiceRequest, its appointments, the services and their locations, the
// questionnaires that apply and the answers given. The referral's workflow
// Task is not in the patient's compartment, so its state is told from the
// referral and its appointments.

import { read, search } from './fhir.js';

export const UBRN_SYSTEM = 'https://fhir.nhs.uk/Id/UBRN';
export const BOOKING_QUESTIONNAIRE = 'https://signpost.example/fhir/StructureDefinition/booking-questionnaire';
export const EXPERIENCE = 'https://signpost.example/fhir/StructureDefinition/experience';
export const SHORTLIST = 'https://signpost.example/fhir/StructureDefinition/shortlist';
export const HOLD_EXPIRES = 'https://signpost.example/fhir/StructureDefinition/hold-expires';

/** ubrn returns a referral's (or an appointment's) UBRN. */
export function ubrn(r) {
  const id = ((r && r.identifier) || []).find((i) => i.system === UBRN_SYSTEM);
  return id ? id.value : '';
}

/** specialty names what the referral is for. */
export function specialty(sr) {
  const pt = sr.performerType || (sr.code) || {};
  return pt.text || ((pt.coding || [])[0] || {}).display || 'Hospital referral';
}

/** reason is the referral's reason, in the GP's words. */
export function reason(sr) {
  return ((sr.reasonCode || [])[0] || {}).text || '';
}

/** ext returns the extensions of r with url. */
export function ext(r, url) {
  return ((r && r.extension) || []).filter((e) => e.url === url);
}

/** serviceOf returns the HealthcareService reference an appointment is with. */
export function serviceOf(appt) {
  const p = (appt.participant || []).find((x) => x.actor && /^HealthcareService\//.test(x.actor.reference || ''));
  return p ? p.actor.reference : '';
}

/** live reports whether an appointment still stands (held or booked). */
export function live(appt) {
  return ['pending', 'booked', 'arrived', 'checked-in'].includes(appt.status);
}

/**
 * state tells the referral's state in the patient's words, with an NHS tag
 * colour: [text, colour].
 */
export function state(sr, appointments) {
  if (sr.status === 'revoked' || sr.status === 'entered-in-error') return ['Cancelled', 'grey'];
  if (sr.status === 'completed') return ['Completed', 'grey'];
  if (appointments.some((a) => a.status === 'booked' || a.status === 'arrived' || a.status === 'checked-in')) return ['Appointment booked', 'green'];
  if (appointments.some((a) => a.status === 'fulfilled')) return ['Seen', 'blue'];
  if (appointments.some((a) => a.status === 'pending')) return ['Time held, not yet booked', 'yellow'];
  if (sr.status === 'on-hold') return ['On hold', 'grey'];
  return ['Ready to book', 'blue'];
}

/** loadReferral reads a referral and its appointments (newest first). */
export async function loadReferral(id) {
  const sr = await read('ServiceRequest', id);
  const { matches } = await search('Appointment', { 'based-on': 'ServiceRequest/' + id, _count: 50 });
  matches.sort((a, b) => (b.start || '').localeCompare(a.start || ''));
  return { sr, appointments: matches };
}

const cache = new Map();

/** readCached reads a directory resource ("Type/id") once per page load. */
export async function readCached(ref) {
  if (!cache.has(ref)) {
    const [type, id] = ref.split('/');
    cache.set(ref, read(type, id).catch((e) => { cache.delete(ref); throw e; }));
  }
  return cache.get(ref);
}

/** place returns a service's location (or null). */
export async function place(service) {
  const loc = (service.location || [])[0];
  if (!loc || !loc.reference) return null;
  try {
    return await readCached(loc.reference);
  } catch {
    return null;
  }
}

/** addressLines are a Location's address as lines. */
export function addressLines(loc) {
  const a = (loc && loc.address) || {};
  return [...(a.line || []), a.city, a.district, a.postalCode].filter(Boolean);
}

/** phone is a resource's first phone number. */
export function phone(r) {
  const t = ((r && r.telecom) || []).find((x) => x.system === 'phone');
  return t ? t.value : '';
}

/**
 * bookingQuestionnaire returns the Questionnaire a service asks to be
 * answered before booking (null if none), and whether the referral has
 * completed answers to it.
 */
export async function bookingQuestionnaire(service, referralId) {
  const e = ext(service, BOOKING_QUESTIONNAIRE)[0];
  if (!e || !e.valueCanonical) return null;
  const url = e.valueCanonical.split('|')[0];
  const { matches } = await search('Questionnaire', { url });
  if (!matches.length) return null;
  return { questionnaire: matches[0], answered: await answered(matches[0], referralId) };
}

/** answered reports whether the referral has completed answers to q. */
export async function answered(q, referralId) {
  const { matches } = await search('QuestionnaireResponse', { 'based-on': 'ServiceRequest/' + referralId, status: 'completed,amended', _count: 50 });
  return matches.some((r) => {
    const name = (r.questionnaire || '').split('|')[0];
    return name === q.url || name === 'Questionnaire/' + q.id;
  });
}

/** experienceQuestionnaires lists the active patient-experience questionnaires. */
export async function experienceQuestionnaires() {
  const { matches } = await search('Questionnaire', { status: 'active', _count: 50 });
  return matches.filter((q) => ext(q, EXPERIENCE).some((e) => e.valueBoolean === true));
}
