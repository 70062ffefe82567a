// /appointments/:id/cancel: cancel an appointment, saying why. The
// appointment is updated to cancelled (If-Match, so a change meanwhile is
// not overwritten); its slot is freed in the same transaction.

import { h, button, backLink, formatDate, formatTime } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { read, request, etag } from '../fhir.js';

const reasons = ['I cannot make this time', 'I no longer need the appointment', 'I want to be seen somewhere else', 'Another reason'];

export async function render(ctx) {
  const appt = await read('Appointment', ctx.params.id);
  const referral = (((appt.basedOn || []).find((b) => /^ServiceRequest\//.test(b.reference || '')) || {}).reference || '').split('/')[1] || '';
  const status = h('div', {});
  const radios = h('div', { class: 'nhsuk-radios' }, reasons.map((r, i) => h('div', { class: 'nhsuk-radios__item' },
    h('input', { class: 'nhsuk-radios__input', id: 'reason-' + i, name: 'reason', type: 'radio', value: r, checked: i === 0 }),
    h('label', { class: 'nhsuk-label nhsuk-radios__label', for: 'reason-' + i }, r))));
  const form = h('form', { novalidate: true, id: 'cancel-form' },
    h('div', { class: 'nhsuk-form-group' }, h('fieldset', { class: 'nhsuk-fieldset' },
      h('legend', { class: 'nhsuk-fieldset__legend nhsuk-fieldset__legend--m' }, 'Why are you cancelling?'), radios)),
    h('div', { class: 'portal-actions' }, button('Cancel appointment', { type: 'submit', warning: true, id: 'confirm-cancel' }),
      h('a', { href: '/appointments/' + encodeURIComponent(appt.id) }, 'Keep the appointment')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const why = (form.querySelector('input[name=reason]:checked') || {}).value || reasons[0];
    const submit = form.querySelector('#confirm-cancel');
    submit.disabled = true;
    try {
      const fresh = await read('Appointment', appt.id);
      const updated = { ...fresh, status: 'cancelled', cancelationReason: { text: why } };
      await request(`Appointment/${encodeURIComponent(appt.id)}`, { method: 'PUT', body: updated, ifMatch: etag(fresh) });
      ctx.navigate(`/referrals/${encodeURIComponent(referral)}?cancelled=1`, { replace: true });
    } catch (err) {
      submit.disabled = false;
      status.replaceChildren(errorSummary(err));
      status.firstChild.focus();
    }
  });
  return {
    title: 'Cancel your appointment',
    body: [backLink('/appointments/' + encodeURIComponent(appt.id), 'Back to your appointment'), status,
      heading('Cancel your appointment'),
      h('p', { class: 'nhsuk-body' }, `Your appointment is ${formatDate(appt.start)} at ${formatTime(appt.start)}. If you cancel it, the time is offered to other people.`),
      form],
  };
}
