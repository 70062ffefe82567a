// /staff/find: the call centre finds the patient on the phone, by NHS
// number and date of birth, or by the booking reference number (UBRN) of
// one of their referrals.

import { h, button } from '../dom.js';
import { heading, errorSummary } from '../layout.js';
import { search } from '../fhir.js';
import { UBRN_SYSTEM } from '../referral-data.js';
import { requireStaff, field, input, fieldError, isoDate, NHS_NUMBER_SYSTEM, refId } from './staff-common.js';

export async function render(ctx) {
  requireStaff(ctx, 'call-centre', 'provider');
  const status = h('div', {});
  const dateItem = (id, label, width) => h('div', { class: 'nhsuk-date-input__item' },
    h('div', { class: 'nhsuk-form-group' },
      h('label', { class: 'nhsuk-label nhsuk-date-input__label', for: 'dob-' + id }, label),
      h('input', { class: `nhsuk-input nhsuk-date-input__input nhsuk-input--width-${width}`, id: 'dob-' + id, name: 'dob-' + id, type: 'text', inputmode: 'numeric' })));
  const byNHS = h('form', { novalidate: true, id: 'find-nhs' },
    h('h2', { class: 'nhsuk-heading-m' }, 'By NHS number and date of birth'),
    field('nhs-number', 'NHS number', input('nhs-number', { inputmode: 'numeric', class: 'nhsuk-input nhsuk-input--width-10', autocomplete: 'off' }), 'For example, 485 777 3456'),
    h('div', { class: 'nhsuk-form-group', id: 'dob-group' }, h('fieldset', { class: 'nhsuk-fieldset', role: 'group', 'aria-describedby': 'dob-hint' },
      h('legend', { class: 'nhsuk-fieldset__legend nhsuk-fieldset__legend--s' }, 'Date of birth'),
      h('div', { class: 'nhsuk-hint', id: 'dob-hint' }, 'For example, 15 3 1984'),
      h('div', { class: 'nhsuk-date-input', id: 'dob' }, dateItem('day', 'Day', 2), dateItem('month', 'Month', 2), dateItem('year', 'Year', 4)))),
    button('Find patient', { type: 'submit', id: 'find-by-nhs' }));
  const byUBRN = h('form', { novalidate: true, id: 'find-ubrn' },
    h('h2', { class: 'nhsuk-heading-m' }, 'Or by booking reference number'),
    field('ubrn', 'Booking reference number (UBRN)', input('ubrn', { inputmode: 'numeric', class: 'nhsuk-input nhsuk-input--width-20', autocomplete: 'off' }), '12 digits, from the patient\'s letter'),
    button('Find referral', { type: 'submit', id: 'find-by-ubrn', secondary: true }));
  const fail = (title, text, focus) => {
    status.replaceChildren(errorSummary({ title, text }, focus ? [['#' + focus, text]] : []));
    status.firstChild.focus();
  };
  byNHS.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const root = byNHS;
    const nhs = root.querySelector('#nhs-number').value.replace(/\s+/g, '');
    const v = (id) => root.querySelector('#' + id).value.trim();
    const dob = isoDate(v('dob-day'), v('dob-month'), v('dob-year'));
    fieldError(root, 'nhs-number', /^\d{10}$/.test(nhs) ? null : 'Enter the 10-digit NHS number');
    root.querySelector('#dob-group').classList.toggle('nhsuk-form-group--error', !dob);
    if (!/^\d{10}$/.test(nhs)) return fail('Check the NHS number', 'Enter the 10-digit NHS number', 'nhs-number');
    if (!dob) return fail('Check the date of birth', 'Enter the date of birth, for example 15 3 1984', 'dob-day');
    try {
      const { matches } = await search('Patient', { identifier: NHS_NUMBER_SYSTEM + '|' + nhs, birthdate: dob, _count: 2 });
      if (matches.length !== 1) return fail('No patient found', 'No patient has that NHS number and date of birth. Check them with the caller.');
      ctx.navigate('/staff/patients/' + encodeURIComponent(matches[0].id));
    } catch (err) {
      status.replaceChildren(errorSummary(err));
      status.firstChild.focus();
    }
  });
  byUBRN.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const u = byUBRN.querySelector('#ubrn').value.replace(/\s+/g, '');
    fieldError(byUBRN, 'ubrn', /^\d{12}$/.test(u) ? null : 'Enter the 12-digit booking reference number');
    if (!/^\d{12}$/.test(u)) return fail('Check the booking reference number', 'Enter the 12-digit booking reference number', 'ubrn');
    try {
      const { matches } = await search('ServiceRequest', { identifier: UBRN_SYSTEM + '|' + u, _count: 1 });
      const patient = matches.length ? refId((matches[0].subject || {}).reference, 'Patient') : '';
      if (!patient) return fail('No referral found', 'No referral has that booking reference number. Check it with the caller.');
      ctx.navigate(`/staff/patients/${encodeURIComponent(patient)}?referral=${encodeURIComponent(matches[0].id)}`);
    } catch (err) {
      status.replaceChildren(errorSummary(err));
      status.firstChild.focus();
    }
  });
  return { title: 'Find a patient', body: [status, heading('Find a patient', 'Booking call centre'),
    h('p', { class: 'nhsuk-body' }, 'Find the caller\'s record to see their referrals and book, change or cancel appointments for them.'), byNHS, byUBRN] };
}
