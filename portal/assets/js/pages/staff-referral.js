// /staff/referrals/:id: a provider opens a referral: the patient, the
// referrer's letter (the reason and notes) and its attachments
// (DocumentReference?related=…, the files downloaded from Binary with the
// token), its workflow state; and acts on it: accept, reject with a reason
// (back to the referrer), redirect to another service
// (ServiceRequest/$accept, $reject, $redirect), or book for the patient.

import { h, button, backLink, summaryList, formatDate, formatUBRN, tag, card } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { read, search, operation } from '../fhir.js';
import { fhirBase } from '../config.js';
import { current } from '../session.js';
import { specialty, reason, ubrn } from '../referral-data.js';
import { requireStaff, patientName, nhsNumber, field, textarea, select, fieldError, refId } from './staff-common.js';

const STATE_WORDS = {
  'awaiting-booking': ['Not yet booked', 'blue'], booked: ['Booked, for review', 'green'], 'awaiting-triage': ['Awaiting triage', 'yellow'],
  accepted: ['Accepted', 'green'], rejected: ['Rejected', 'red'], redirected: ['Redirected', 'grey'], 'slot-issue': ['Slot issue', 'orange'],
  cancelled: ['Cancelled', 'grey'], completed: ['Completed', 'grey'],
};

export async function render(ctx) {
  requireStaff(ctx, 'provider');
  const id = ctx.params.id;
  const sr = await read('ServiceRequest', id);
  const pid = refId((sr.subject || {}).reference, 'Patient');
  const patient = pid ? await read('Patient', pid).catch(() => null) : null;
  const task = (await search('Task', { focus: 'ServiceRequest/' + id, _count: 1 })).matches[0] || null;
  const st = task ? ((((task.businessStatus || {}).coding) || [])[0] || {}).code || '' : '';
  const docs = (await search('DocumentReference', { related: 'ServiceRequest/' + id, _count: 50 }).catch(() => ({ matches: [] }))).matches;
  const status = h('div', {});
  const [stWords, stColour] = STATE_WORDS[st] || [st || 'Not known', 'grey'];
  const notes = (sr.note || []).map((n) => n.text).filter(Boolean);
  const body = [backLink('/staff/worklists', 'Back to the worklists'), status];
  const done = ['accepted', 'rejected', 'redirected'].find((k) => ctx.query.get(k));
  if (done) {
    body.push(h('div', { class: 'nhsuk-panel', id: 'confirmation' }, h('h1', { class: 'nhsuk-panel__title', tabindex: '-1' }, 'Referral ' + done),
      h('div', { class: 'nhsuk-panel__body' }, done === 'rejected' ? 'The referrer has been told why.' : done === 'redirected' ? 'The referral is now with the other service.' : 'The referral is on your accepted list.')));
  } else {
    body.push(heading(specialty(sr), 'Referral ' + formatUBRN(ubrn(sr))));
  }
  body.push(summaryList([
    ['Patient', patient ? `${patientName(patient)}, NHS number ${nhsNumber(patient)}, born ${formatDate(patient.birthDate)}` : 'Not known'],
    ['State', tag(stWords, stColour)],
    ['Priority', { routine: 'Routine', urgent: 'Urgent', asap: 'As soon as possible', stat: 'Immediate' }[sr.priority || 'routine'] || sr.priority],
    ['Referred', formatDate((sr.authoredOn || '').slice(0, 10))],
  ]));
  body.push(card('Referral letter', h('p', { class: 'nhsuk-body', id: 'letter-reason' }, reason(sr) || 'No reason given.'),
    notes.map((n) => h('p', { class: 'nhsuk-body' }, n))));
  const attachments = [];
  for (const d of docs) {
    for (const c of d.content || []) {
      const a = c.attachment || {};
      attachments.push(h('li', {}, attachmentLink(a, d)));
    }
  }
  body.push(h('h2', { class: 'nhsuk-heading-m' }, 'Attachments'),
    attachments.length ? h('ul', { class: 'nhsuk-list', id: 'attachments' }, attachments) : h('p', { class: 'nhsuk-body' }, 'No attachments.'));

  if (st === 'booked' || st === 'awaiting-triage') body.push(actions(ctx, sr, status));
  if ((st === 'slot-issue' || st === 'awaiting-booking' || st === 'redirected' || st === 'accepted') && pid) {
    body.push(h('h2', { class: 'nhsuk-heading-m' }, 'Book for the patient'),
      h('a', { class: 'nhsuk-button', draggable: 'false', id: 'book-for-patient', href: `/staff/patients/${encodeURIComponent(pid)}?referral=${encodeURIComponent(id)}` }, 'Book an appointment'));
  }
  return { title: 'Referral ' + formatUBRN(ubrn(sr)), body };
}

// attachmentLink downloads an attachment: inline data as a Blob URL made
// now (a plain download link, for the mouse and Enter alike), or a Binary
// read with the tab's token when the link is followed, then handed to the
// browser as a Blob URL.
function attachmentLink(a, d) {
  const name = a.title || d.description || 'Attachment';
  const link = h('a', { href: '#', class: 'staff-attachment' }, name);
  const ready = (blob) => {
    link.href = URL.createObjectURL(blob);
    link.setAttribute('download', name);
  };
  if (a.data) {
    const bin = atob(a.data);
    ready(new Blob([Uint8Array.from(bin, (ch) => ch.charCodeAt(0))], { type: a.contentType || 'application/octet-stream' }));
  }
  link.addEventListener('click', async (ev) => {
    if (link.getAttribute('download')) return; // ready: let the browser download it
    ev.preventDefault();
    if (!a.url) return;
    const path = a.url.replace(/^.*\/fhir\//, '').replace(/^\//, '');
    const resp = await fetch(fhirBase + '/' + path, { headers: { Authorization: 'Bearer ' + (current() || {}).token, Accept: a.contentType || '*/*' }, credentials: 'omit' });
    if (!resp.ok) { link.textContent = name + ' (could not be downloaded)'; return; }
    ready(await resp.blob());
    link.click(); // after the await: no longer inside the click that asked for it
  });
  return h('span', {}, link, a.contentType ? h('span', { class: 'nhsuk-body-s' }, ` (${a.contentType}${a.size ? ', ' + Math.ceil(a.size / 1024) + ' KB' : ''})`) : null);
}

// actions are the provider's decisions on a referral for review.
function actions(ctx, sr, status) {
  const base = '/staff/referrals/' + encodeURIComponent(sr.id);
  const fail = (err) => { status.replaceChildren(errorSummary(err)); status.firstChild.focus(); };
  const choice = h('div', { class: 'nhsuk-radios nhsuk-radios--conditional' }, [['accept', 'Accept'], ['reject', 'Reject and return to the referrer'], ['redirect', 'Redirect to another service']].map(([v, t]) =>
    h('div', { class: 'nhsuk-radios__item' }, h('input', { class: 'nhsuk-radios__input', id: 'decision-' + v, name: 'decision', type: 'radio', value: v, checked: v === 'accept' }),
      h('label', { class: 'nhsuk-label nhsuk-radios__label', for: 'decision-' + v }, t))));
  const services = select('redirect-service', [['', 'Loading services…']]);
  const form = h('form', { novalidate: true, id: 'decision-form' },
    h('div', { class: 'nhsuk-form-group' }, h('fieldset', { class: 'nhsuk-fieldset' }, h('legend', { class: 'nhsuk-fieldset__legend nhsuk-fieldset__legend--m' }, 'Your decision'), choice)),
    field('redirect-service', 'Service to redirect to (for a redirect)', services),
    field('decision-reason', 'Reason (needed to reject; sent to the referrer)', textarea('decision-reason')),
    button('Save decision', { type: 'submit', id: 'save-decision' }));
  const code = ((sr.performerType || {}).coding || [])[0];
  search('HealthcareService', { active: 'true', ...(code ? { specialty: code.code } : {}), _count: 50 }).then(({ matches }) => {
    const mine = (sr.performer || []).map((p) => p.reference);
    services.replaceChildren(h('option', { value: '' }, 'Choose a service'),
      ...matches.filter((s) => !mine.includes('HealthcareService/' + s.id)).map((s) => h('option', { value: 'HealthcareService/' + s.id }, s.name)));
  }).catch(() => services.replaceChildren(h('option', { value: '' }, 'No services could be loaded')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const decision = form.querySelector('input[name=decision]:checked').value;
    const why = form.querySelector('#decision-reason').value.trim();
    const svc = services.value;
    fieldError(form, 'decision-reason', decision === 'reject' && !why ? 'Say why you are rejecting the referral' : null);
    fieldError(form, 'redirect-service', decision === 'redirect' && !svc ? 'Choose the service to redirect to' : null);
    if ((decision === 'reject' && !why) || (decision === 'redirect' && !svc)) {
      const [target, text] = decision === 'reject' ? ['#decision-reason', 'Say why you are rejecting the referral'] : ['#redirect-service', 'Choose the service to redirect to'];
      status.replaceChildren(errorSummary({ title: 'There is a problem', text }, [[target, text]]));
      status.firstChild.focus();
      return;
    }
    const pairs = [];
    if (why) pairs.push(['reason', { valueString: why }]);
    if (decision === 'redirect') pairs.push(['service', { valueReference: { reference: svc } }]);
    const submit = form.querySelector('#save-decision');
    submit.disabled = true;
    try {
      await operation(`ServiceRequest/${encodeURIComponent(sr.id)}/$${decision}`, pairs, { idempotent: true });
      ctx.navigate(`${base}?${decision === 'accept' ? 'accepted' : decision === 'reject' ? 'rejected' : 'redirected'}=1`, { replace: true });
    } catch (err) {
      submit.disabled = false;
      fail(err);
    }
  });
  return h('div', {}, h('h2', { class: 'nhsuk-heading-m' }, 'Review'), form);
}

