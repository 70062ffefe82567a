// /staff/patients/:patient/appointments/:id/cancel: cancel an appointment
// on the patient's behalf, with a reason (PUT with If-Match, as the
// patient's cancel page does; the slot is freed in the same transaction).

import { h, button, backLink, formatDate, formatTime } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { read, request, etag } from '../fhir.js';
import { requireStaff, field, textarea, fieldError } from './staff-common.js';

const reasons = ['The patient cannot make this time', 'The patient no longer needs the appointment', 'The patient wants to be seen somewhere else', 'Another reason'];

export async function render(ctx) {
  requireStaff(ctx, 'call-centre', 'provider');
  const back = '/staff/patients/' + encodeURIComponent(ctx.params.patient);
  const appt = await read('Appointment', ctx.params.id);
  const status = h('div', {});
  const radios = h('div', { class: 'nhsuk-radios' }, reasons.map((r, i) => h('div', { class: 'nhsuk-radios__item' },
    h('input', { class: 'nhsuk-radios__input', id: 'reason-' + i, name: 'reason', type: 'radio', value: r, checked: i === 0 }),
    h('label', { class: 'nhsuk-label nhsuk-radios__label', for: 'reason-' + i }, r))));
  const form = h('form', { novalidate: true, id: 'cancel-form' },
    h('div', { class: 'nhsuk-form-group' }, h('fieldset', { class: 'nhsuk-fieldset' },
      h('legend', { class: 'nhsuk-fieldset__legend nhsuk-fieldset__legend--m' }, 'Why is the patient cancelling?'), radios)),
    field('reason-detail', 'Details (needed for "Another reason")', textarea('reason-detail')),
    h('div', { class: 'portal-actions' }, button('Cancel appointment', { type: 'submit', warning: true, id: 'confirm-cancel' }),
      h('a', { href: back }, 'Keep the appointment')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const why = (form.querySelector('input[name=reason]:checked') || {}).value || reasons[0];
    const detail = form.querySelector('#reason-detail').value.trim();
    const missing = why === 'Another reason' && !detail;
    fieldError(form, 'reason-detail', missing ? 'Say why the patient is cancelling' : null);
    if (missing) {
      status.replaceChildren(errorSummary({ title: 'Say why the patient is cancelling', text: 'Enter the reason in Details.' }, [['#reason-detail', 'Say why the patient is cancelling']]));
      status.firstChild.focus();
      return;
    }
    const submit = form.querySelector('#confirm-cancel');
    submit.disabled = true;
    try {
      const fresh = await read('Appointment', appt.id);
      const text = `${detail ? why + ': ' + detail : why} (cancelled by staff for the patient)`;
      await request(`Appointment/${encodeURIComponent(appt.id)}`, { method: 'PUT', body: { ...fresh, status: 'cancelled', cancelationReason: { text } }, ifMatch: etag(fresh) });
      ctx.navigate(back + '?cancelled=1', { replace: true });
    } catch (err) {
      submit.disabled = false;
      status.replaceChildren(errorSummary(err));
      status.firstChild.focus();
    }
  });
  return {
    title: 'Cancel the appointment',
    body: [backLink(back, 'Back to the patient'), status, heading('Cancel the appointment', 'For the patient'),
      h('p', { class: 'nhsuk-body' }, `The appointment is ${formatDate(appt.start)} at ${formatTime(appt.start)}. If it is cancelled, the time is offered to other patients.`),
      form],
  };
}
