// Sign in with a booking reference number (UBRN), access code and date of
// birth (ServiceRequest/$ubrn-access): the token reaches that one
// referral.

import { h, button, backLink } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { signInWithUBRN } from '../smart.js';

export async function render(ctx) {
  const status = h('div', {});
  const field = (id, label, hint, attrs = {}) => h('div', { class: 'nhsuk-form-group', id: id + '-group' },
    h('label', { class: 'nhsuk-label', for: id }, label),
    hint ? h('div', { class: 'nhsuk-hint', id: id + '-hint' }, hint) : null,
    h('span', { class: 'nhsuk-error-message', id: id + '-error', hidden: true }),
    h('input', { class: 'nhsuk-input', id, name: id, type: 'text', 'aria-describedby': hint ? id + '-hint' : null, ...attrs }));
  const dateInput = (id, label, width) => h('div', { class: 'nhsuk-date-input__item' },
    h('div', { class: 'nhsuk-form-group' },
      h('label', { class: 'nhsuk-label nhsuk-date-input__label', for: 'dob-' + id }, label),
      h('input', { class: `nhsuk-input nhsuk-date-input__input nhsuk-input--width-${width}`, id: 'dob-' + id, name: 'dob-' + id, type: 'text', inputmode: 'numeric' })));
  const form = h('form', { novalidate: true, id: 'ubrn-form' },
    field('ubrn', 'Booking reference number', '12 digits, for example 1234 5678 9012', { inputmode: 'numeric', autocomplete: 'off', class: 'nhsuk-input nhsuk-input--width-20' }),
    field('access-code', 'Access code', 'For example ABCD-EFGH-JKLM', { autocomplete: 'off', class: 'nhsuk-input nhsuk-input--width-20', spellcheck: 'false' }),
    h('div', { class: 'nhsuk-form-group', id: 'dob-group' },
      h('fieldset', { class: 'nhsuk-fieldset', role: 'group', 'aria-describedby': 'dob-hint' },
        h('legend', { class: 'nhsuk-fieldset__legend nhsuk-fieldset__legend--s' }, 'Date of birth'),
        h('div', { class: 'nhsuk-hint', id: 'dob-hint' }, 'For example, 15 3 1984'),
        h('div', { class: 'nhsuk-date-input', id: 'dob' }, dateInput('day', 'Day', 2), dateInput('month', 'Month', 2), dateInput('year', 'Year', 4)))),
    button('Continue', { type: 'submit', id: 'ubrn-continue' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector('#' + id).value.trim();
    const ubrn = v('ubrn').replace(/\s+/g, '');
    const code = v('access-code');
    const [d, m, y] = [v('dob-day'), v('dob-month'), v('dob-year')];
    const problems = [];
    if (!/^\d{12}$/.test(ubrn)) problems.push(['#ubrn', 'Enter your 12-digit booking reference number']);
    if (code.replace(/[-\s]/g, '').length < 12) problems.push(['#access-code', 'Enter the access code from your letter']);
    const date = `${y.padStart(4, '0')}-${m.padStart(2, '0')}-${d.padStart(2, '0')}`;
    const parsed = new Date(date + 'T00:00:00Z');
    if (!/^\d{4}$/.test(y) || !/^\d{1,2}$/.test(m) || !/^\d{1,2}$/.test(d) || isNaN(parsed) || parsed.toISOString().slice(0, 10) !== date) {
      problems.push(['#dob-day', 'Enter your date of birth, for example 15 3 1984']);
    }
    if (problems.length) {
      status.replaceChildren(h('div', { class: 'nhsuk-error-summary', role: 'alert', tabindex: '-1', 'aria-labelledby': 'es-title' },
        h('h2', { class: 'nhsuk-error-summary__title', id: 'es-title' }, 'There is a problem'),
        h('div', { class: 'nhsuk-error-summary__body' }, h('ul', { class: 'nhsuk-list nhsuk-error-summary__list' },
          problems.map(([href, text]) => h('li', {}, h('a', { href, onclick: (e) => { e.preventDefault(); form.querySelector(href).focus(); } }, text)))))));
      status.firstChild.focus();
      return;
    }
    const submit = form.querySelector('#ubrn-continue');
    submit.disabled = true;
    try {
      const next = await signInWithUBRN(ubrn, code, date);
      ctx.navigate(next, { replace: true });
    } catch (err) {
      submit.disabled = false;
      status.replaceChildren(errorSummary(err));
      status.firstChild.focus();
    }
  });
  return {
    title: 'Use your booking reference number',
    body: [backLink('/'), status, heading('Use your booking reference number'),
      h('p', { class: 'nhsuk-body' }, 'Enter the details from the letter or text message your GP practice sent you.'), form],
  };
}
