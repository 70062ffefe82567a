// The portal's staff browser tests: the call-centre agent, the provider
// and the commissioner, each signing in through the development server's
// staff page by keyboard (its error for no choice checked too), in
// Debian's chromium (playwright-core) at 375 px wide, with axe-core on
// every page, the development server's included, a screenshot per step
// and the journeys by the keyboard alone. The tools are harness.mjs's. Run by cmd/signpost/portal_staff_test.go
// (TestPortalStaffBrowser), which starts `signpost serve --demo`, makes
// the fixture through the FHIR API and passes it as PORTAL_FIXTURE.
import { readFileSync } from 'node:fs';
import { harness } from './harness.mjs';
import { keyboard } from './keyboard.mjs';

// One audit per page template, and per template showing an error.
const auditKey = async (page) => new URL(page.url()).pathname.replace(/\/[0-9a-f-]{20,}|\/demo-[a-z0-9-]+/g, '/:id') + '|' +
  (await page.locator('.nhsuk-error-summary, .error[role=alert]').count());
const { fx, expect, newPage, ready, step, text, signInAsStaff, test, run, since } = await harness({ auditKey, textOf: '#maincontent' });

test('call centre, by keyboard: find a patient, book, reschedule and cancel for them, raise a slot issue', async () => {
  const page = await newPage('call-centre');
  const kb = keyboard(page, expect);
  await signInAsStaff(page, 'demo-call-centre', /\/staff\/find$/);
  expect(await page.evaluate(() => !localStorage.length), 'something was put in local storage');
  await step(page, 'cc-find');
  // Mistakes in plain words.
  await kb.fill('#nhs-number', '12345', 'the NHS number');
  await kb.press('#find-by-nhs', 'find by NHS number');
  await page.waitForSelector('.nhsuk-error-summary');
  expect((await text(page)).includes('Enter the 10-digit NHS number'), 'no plain-words error for a short NHS number');
  await step(page, 'cc-find-error');
  await kb.fill('#nhs-number', fx.patient.NHSNumber, 'the NHS number');
  const [y, m, d] = fx.patient.BirthDate.split('-');
  await kb.fill('#dob-day', d, 'the day');
  await kb.fill('#dob-month', m, 'the month');
  await kb.fill('#dob-year', String(Number(y) + 1), 'the year');
  await kb.press('#find-by-nhs', 'find by NHS number');
  await page.waitForFunction(() => /No patient found/.test(document.body.innerText));
  await kb.fill('#dob-year', y, 'the year');
  await kb.press('#find-by-nhs', 'find by NHS number');
  await page.waitForURL(/\/staff\/patients\/demo-patient-001$/);
  await ready(page);
  let t = await text(page);
  expect(t.includes(fx.patient.Name), 'the patient page does not name the patient');
  expect(t.includes(fx.book.UBRN.replace(/(\d{4})(?=\d)/g, '$1 ')), 'the referral to book is not listed');
  await step(page, 'cc-patient');

  // Book: choose a service from the shortlist, a time, confirm.
  await kb.press(`#referral-${fx.book.ID} a.nhsuk-button`, 'book');
  await page.waitForSelector('#staff-shortlist a');
  await step(page, 'cc-choose-service');
  await kb.press(page.locator('#staff-shortlist a').first(), 'the first service');
  await page.waitForSelector('#calendar .portal-time');
  await step(page, 'cc-calendar');
  await kb.press(page.locator('#calendar .portal-time').first(), 'the first time');
  await page.waitForURL(/\/holds\/[^/]+\?for=demo-patient-001$/);
  await step(page, 'cc-hold');
  expect((await page.locator('h1').innerText()).includes('Confirm the appointment for ' + fx.patient.Name), 'the hold page does not say whose appointment it is');
  await kb.press('#confirm-booking', 'confirm and book');
  await page.waitForURL(/\/staff\/patients\/demo-patient-001\?booked=/);
  await page.waitForSelector('#confirmation');
  t = await text(page);
  expect(t.includes('Appointment booked'), 'no booking confirmation');
  await step(page, 'cc-booked');

  // Reschedule with a reason.
  await kb.press(page.locator(`#referral-${fx.book.ID} a`, { hasText: 'Reschedule' }), 'reschedule');
  await page.waitForSelector('#calendar .portal-time');
  await kb.select('#change-reason', { index: 1 }, 'the reason for the change');
  await step(page, 'cc-reschedule');
  await kb.press(page.locator('#calendar .portal-time').nth(1), 'the second time');
  await page.waitForURL(/\?changed=1$/);
  await page.waitForSelector('#confirmation');
  await step(page, 'cc-changed');

  // Cancel with a reason: "Another reason" needs the details.
  await kb.press(page.locator(`#referral-${fx.book.ID} a`, { hasText: 'Cancel' }), 'cancel');
  await page.waitForSelector('#cancel-form');
  await kb.check('#reason-3', 'another reason');
  await kb.press('#confirm-cancel', 'confirm the cancellation');
  await page.waitForSelector('.nhsuk-error-summary');
  await step(page, 'cc-cancel-error');
  await kb.fill('#reason-detail', 'Moving away from the area', 'the details');
  await kb.press('#confirm-cancel', 'confirm the cancellation');
  await page.waitForURL(/\?cancelled=1$/);
  await page.waitForSelector('#confirmation');
  await step(page, 'cc-cancelled');
  expect(!(await page.locator(`#referral-${fx.book.ID} a`, { hasText: 'Reschedule' }).count()), 'the cancelled appointment can still be changed');

  // Find by UBRN and raise a slot issue.
  await page.goto('/staff/find');
  await ready(page);
  await kb.fill('#ubrn', fx.slotIssue.UBRN, 'the UBRN');
  await kb.press('#find-by-ubrn', 'find by UBRN');
  await page.waitForURL(new RegExp(`referral=${fx.slotIssue.ID}`));
  await page.waitForSelector('#slot-issue-form');
  await step(page, 'cc-by-ubrn');
  await kb.select('#slot-issue-service', { value: fx.slotIssueService }, 'the service wanted');
  await kb.press('#raise-slot-issue', 'raise the slot issue');
  await page.waitForURL(/\?slot-issue=1$/);
  await page.waitForSelector('#confirmation');
  await step(page, 'cc-slot-issue');
  await page.context().close();
});

test('provider, by keyboard: worklists, a referral with its letter, reject, accept, redirect, book a slot issue, utilisation', async () => {
  const page = await newPage('provider');
  const kb = keyboard(page, expect);
  await signInAsStaff(page, 'demo-provider', /\/staff\/worklists$/);
  await page.waitForSelector('#worklist');
  let t = await text(page);
  for (const r of fx.review) expect(t.includes(r.UBRN.replace(/(\d{4})(?=\d)/g, '$1 ')), `referral ${r.UBRN} is not on the for-review worklist`);
  expect(t.includes(fx.demoReview.UBRN.replace(/(\d{4})(?=\d)/g, '$1 ')), 'the demo county\'s booked referral is not on the for-review worklist');
  await step(page, 'pr-for-review');

  // Open the first: the letter, the attachment downloaded.
  await kb.press(`a[href="/staff/referrals/${fx.review[0].ID}"]`, 'the first referral');
  await page.waitForSelector('#decision-form');
  await page.waitForFunction(() => document.querySelectorAll('#redirect-service option').length > 1);
  await step(page, 'pr-referral');
  const [dl] = await Promise.all([page.waitForEvent('download'), kb.press(page.locator('#attachments a').first(), 'the letter')]);
  expect(readFileSync(await dl.path(), 'utf8') === fx.letter, 'the attachment downloaded is not the letter');
  // Reject: needs a reason.
  await kb.check('#decision-reject', 'reject');
  await kb.press('#save-decision', 'save the decision');
  await page.waitForSelector('.nhsuk-error-summary');
  expect((await text(page)).includes('Say why you are rejecting'), 'no plain-words error for a rejection without a reason');
  await step(page, 'pr-reject-error');
  await kb.fill('#decision-reason', 'Please try topical treatment for 6 weeks first', 'the reason');
  await kb.press('#save-decision', 'save the decision');
  await page.waitForURL(/\?rejected=1$/);
  await page.waitForSelector('#confirmation');
  await step(page, 'pr-rejected');

  await page.goto(`/staff/referrals/${fx.review[1].ID}`);
  await page.waitForSelector('#decision-form');
  await kb.press('#save-decision', 'save the decision (accept)');
  await page.waitForURL(/\?accepted=1$/);
  await step(page, 'pr-accepted');

  await page.goto(`/staff/referrals/${fx.review[2].ID}`);
  await page.waitForSelector('#decision-form');
  await page.waitForFunction(() => document.querySelectorAll('#redirect-service option').length > 1);
  await kb.check('#decision-redirect', 'redirect');
  await kb.select('#redirect-service', { index: 1 }, 'the service to redirect to');
  await kb.press('#save-decision', 'save the decision');
  await page.waitForURL(/\?redirected=1$/);
  await step(page, 'pr-redirected');

  // The worked referrals have left the for-review list.
  await page.goto('/staff/worklists');
  await ready(page);
  t = await text(page);
  for (const r of fx.review) expect(!t.includes(r.UBRN.replace(/(\d{4})(?=\d)/g, '$1 ')), `referral ${r.UBRN} is still for review`);

  // The call centre's slot issue: book it for the patient.
  await kb.press('a[href="/staff/worklists?list=slot-issues"]', 'the slot issues worklist');
  await page.waitForSelector(`a[href="/staff/referrals/${fx.slotIssue.ID}"]`);
  expect(await page.locator(`a[href="/staff/referrals/${fx.demoSlotIssue.ID}"]`).count() === 1, 'the demo county\'s slot issue is not on the slot-issues worklist');
  await step(page, 'pr-slot-issues');
  await kb.press(`a[href="/staff/referrals/${fx.slotIssue.ID}"]`, 'the call centre\'s slot issue');
  await page.waitForSelector('#book-for-patient');
  await kb.press('#book-for-patient', 'book for the patient');
  // The provider books at its own service, the one the slot issue is for.
  const own = `#staff-shortlist a[href$="/services/${fx.slotIssueService.split('/')[1]}"]`;
  await page.waitForSelector(own);
  await kb.press(own, 'the provider\'s own service');
  await page.waitForSelector('#calendar .portal-time');
  await kb.press(page.locator('#calendar .portal-time').first(), 'the first time');
  await page.waitForURL(/\/holds\//);
  await kb.press('#confirm-booking', 'confirm and book');
  await page.waitForURL(/\?booked=/);
  await page.waitForSelector('#confirmation');
  await step(page, 'pr-booked');

  // Utilisation: booked and free slots per clinic, next two weeks.
  await kb.press('a[href="/staff/utilisation"]', 'utilisation');
  await page.waitForSelector('#utilisation');
  const rows = await page.locator('#utilisation tbody tr').count();
  expect(rows >= 2, 'the utilisation table has no clinics');
  t = await text(page);
  expect(/Dermatology/.test(t), 'the utilisation table has no dermatology clinic');
  await step(page, 'pr-utilisation');
  // A provider may not see the commissioner's reports.
  await page.goto('/staff/reports');
  await ready(page);
  expect((await text(page)).includes('You cannot do this'), 'a provider was shown the reports page');
  await page.context().close();
});

test('referrer, by keyboard: the rejected worklist shows the provider\'s rejection with its reason', async () => {
  const page = await newPage('referrer');
  const kb = keyboard(page, expect);
  await signInAsStaff(page, 'demo-gp', /\/staff\/worklists$/);
  await kb.press('a[href="/staff/worklists?list=rejected"]', 'the rejected worklist');
  await page.waitForSelector('#worklist');
  const t = await text(page);
  expect(t.includes(fx.review[0].UBRN.replace(/(\d{4})(?=\d)/g, '$1 ')), 'the rejected referral is not on the referrer\'s worklist');
  expect(t.includes('topical treatment'), 'the rejection\'s reason is not shown');
  await step(page, 'gp-rejected');
  await page.context().close();
});

test('commissioner: charts with tables and CSV downloads (by keyboard)', async () => {
  const page = await newPage('commissioner');
  const kb = keyboard(page, expect);
  await signInAsStaff(page, 'demo-commissioner', /\/staff\/reports$/);
  if (process.env.PORTAL_TIMING) console.log(`  signed in: ${since()} ms`);
  for (const id of ['waits', 'trends', 'gaps']) {
    await page.waitForFunction((c) => window.Chart && window.Chart.getChart(document.getElementById(c + '-chart')), id);
  }
  if (process.env.PORTAL_TIMING) console.log(`  charts: ${since()} ms`);
  const waitRows = await page.locator('#waits tbody tr').count();
  expect(waitRows > 0, 'the waiting-times table is empty');
  await step(page, 'cm-reports');
  const [dl] = await Promise.all([page.waitForEvent('download'), kb.press('#csv-waiting-times', 'the waiting times CSV')]);
  const body = readFileSync(await dl.path(), 'utf8');
  expect(body.startsWith('Service,Specialty,Days to next free slot'), 'the CSV has no header');
  expect(body.trim().split('\r\n').length === waitRows + 1, 'the CSV and the table differ');
  const gaps = await page.evaluate(() => document.querySelector('#gaps').innerText);
  expect(/Rash|Dermatology|slot issues/i.test(gaps), 'the capacity gaps report says nothing');
  // The demo county's referrals: several services with slot issues and
  // with appointments, referrals over several months.
  expect((await page.locator('#gaps tbody tr').count()) >= 4, 'the capacity gaps table has fewer than 4 services');
  // (A cell's first child is its column's heading, for narrow screens.)
  const months = new Set(await page.locator('#trends tbody tr').evaluateAll((trs) => trs.map((tr) => tr.cells[0].lastChild.textContent)));
  expect(months.size >= 6, `referrals in ${months.size} months, want at least 6`);
  const seenAt = await page.locator('#waits tbody tr').evaluateAll((trs) => trs.filter((tr) => Number(tr.cells[4].lastChild.textContent) > 0).length);
  expect(seenAt >= 5, `appointments at ${seenAt} services, want at least 5`);
  await kb.select('#trend-by', { value: 'practice' }, 'trends by practice');
  await page.context().close();
});

test('the keyboard alone, with visible focus: the call centre finds a patient by UBRN', async () => {
  const page = await newPage('keyboard');
  await signInAsStaff(page, 'demo-call-centre', /\/staff\/find$/);
  const kb = keyboard(page, expect);
  const tabTo = (desc, target) => kb.to(target, desc);
  await tabTo('the UBRN field', '#ubrn');
  await page.keyboard.type(fx.book.UBRN);
  await page.keyboard.press('Enter');
  await page.waitForURL(new RegExp(`referral=${fx.book.ID}`));
  await ready(page);
  await tabTo('a service\'s free times', '#staff-shortlist a');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#calendar .portal-time');
  await tabTo('a time', '.portal-time');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/holds\//);
  await ready(page);
  await tabTo('confirm', '#confirm-booking');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#confirmation');
  await step(page, 'keyboard-booked');
  await page.context().close();
});

await run();
