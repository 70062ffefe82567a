// /referrals/:id/questionnaires/:questionnaire: answer a booking-guidance
// or experience questionnaire for the referral; the answers are saved as
// a QuestionnaireResponse basedOn the referral.

import { h, button, backLink } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { read, request } from '../fhir.js';
import { questionnaireForm } from '../questionnaire-form.js';

export async function render(ctx) {
  const { id, questionnaire } = ctx.params;
  const q = await read('Questionnaire', questionnaire);
  const next = ctx.query.get('next');
  const back = next && next.startsWith('/') && !next.startsWith('//') ? next : `/referrals/${encodeURIComponent(id)}`;
  const status = h('div', {});
  const qf = questionnaireForm(q);
  const form = h('form', { novalidate: true, id: 'questionnaire-form' }, qf.element, button('Save answers', { type: 'submit', id: 'save-answers' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const problems = qf.validate();
    if (problems.length) {
      status.replaceChildren(h('div', { class: 'nhsuk-error-summary', role: 'alert', tabindex: '-1', 'aria-labelledby': 'qs-title' },
        h('h2', { class: 'nhsuk-error-summary__title', id: 'qs-title' }, 'There is a problem'),
        h('div', { class: 'nhsuk-error-summary__body' }, h('ul', { class: 'nhsuk-list nhsuk-error-summary__list' },
          problems.map(([target, text]) => h('li', {}, h('a', { href: '#' + target, onclick: (e) => { e.preventDefault(); document.getElementById(target).focus(); } }, text)))))));
      status.firstChild.focus();
      return;
    }
    const submit = form.querySelector('#save-answers');
    submit.disabled = true;
    try {
      const patient = { reference: 'Patient/' + ctx.session.patient };
      await request('QuestionnaireResponse', { method: 'POST', body: qf.response({ subject: patient, author: patient, source: patient, basedOn: [{ reference: 'ServiceRequest/' + id }] }) });
      ctx.navigate(back === `/referrals/${encodeURIComponent(id)}` ? back + '?answered=1' : back, { replace: true });
    } catch (err) {
      submit.disabled = false;
      status.replaceChildren(errorSummary(err));
      status.firstChild.focus();
    }
  });
  return {
    title: q.title || 'Questions',
    body: [backLink(back), status, heading(q.title || 'Questions'), q.description ? h('p', { class: 'nhsuk-body' }, q.description) : null, form],
  };
}
