// The portal's browser tests: every patient journey in Debian's chromium
// (playwright-core), at 375 px wide, with axe-core on every page
// (the development server's patient picker too), a screenshot per step,
// the keyboard alone (signing in through the picker as well), a crawl for
// other patients' data and two browsers racing for one slot. The tools
// are harness.mjs's. Run by
// cmd/signpost/portal_test.go (TestPortalBrowser), which starts
// `signpost serve --demo`, makes the fixture through the FHIR API and
// passes it as PORTAL_FIXTURE.
import { harness } from './harness.mjs';
import { keyboard } from './keyboard.mjs';

// One audit per page template and step: ids (every second path segment)
// do not make a new page; the crawl's audits are per template only.
const auditKey = (page, label) => new URL(page.url()).pathname.split('/').map((seg, i) => (i >= 2 && i % 2 === 0 ? ':id' : seg)).join('/') + (label === 'crawl' ? '' : '|' + label);
const { fx, problems, expect, newPage, ready, audit, step, text, signInWithPicker: pick, test, run } = await harness({ auditKey });
const signInWithPicker = (page, shot) => pick(page, fx.patient.NHSNumber, shot);

// signInWithUBRN signs in with referral r's UBRN, access code and birth
// date by keyboard alone: the start page's link, the form, Enter.
async function signInWithUBRN(page, r) {
  const kb = keyboard(page, expect);
  await page.goto('/');
  await ready(page);
  await kb.press('#ubrn-link', 'the UBRN sign-in link');
  await page.waitForURL(/\/sign-in\/ubrn$/);
  await ready(page);
  const [y, m, d] = r.BirthDate.split('-');
  await kb.fill('#ubrn', r.UBRN, 'the UBRN');
  await kb.fill('#access-code', r.Code, 'the access code');
  await kb.fill('#dob-day', String(Number(d)), 'the day');
  await kb.fill('#dob-month', String(Number(m)), 'the month');
  await kb.fill('#dob-year', y, 'the year');
  await page.keyboard.press('Enter');
  await page.waitForURL(new RegExp('/referrals/' + r.ID + '$'));
  await ready(page);
}

const ubrnText = (u) => u.replace(/(\d{4})(?=\d)/g, '$1 ');


test('sign in through the patient picker, by keyboard; a reload keeps it; sign-out clears it; never localStorage', async () => {
  const page = await newPage('picker');
  await page.goto('/');
  await step(page, 'start');
  await signInWithPicker(page, 'picker');
  await step(page, 'referrals');
  const t = await text(page);
  expect(t.includes(fx.patient.Name), `the referrals page does not name the patient ${fx.patient.Name}`);
  expect((await page.locator('#referral-list > li').count()) >= 5, 'fewer than 5 referrals listed (the demo\'s and the fixture\'s 4)');
  expect(t.includes(ubrnText(fx.demo.UBRN)), 'the referral the demo county seeds for the patient is not listed');
  expect(await page.evaluate(() => localStorage.length) === 0, 'something was written to localStorage');
  expect(await page.evaluate(() => !!sessionStorage.getItem('signpost.session')), 'no sign-in in sessionStorage');
  await page.reload();
  await ready(page);
  expect((await page.locator('h1').innerText()).includes('Your referrals'), 'a reload lost the sign-in');
  const other = await page.context().newPage();
  await other.goto('/referrals');
  await other.waitForURL(/\/\?next=/);
  await other.close();
  await keyboard(page, expect).press(page.getByRole('link', { name: 'Sign out' }), 'sign out');
  await page.waitForURL(/signed-out=1/);
  await ready(page);
  expect((await text(page)).includes('You have signed out'), 'no signed-out notice');
  expect(await page.evaluate(() => sessionStorage.length) === 0, 'sign-out left something in sessionStorage');
  await page.goto('/referrals');
  await page.waitForURL(/\/\?next=/);
  await page.context().close();
});

let bookPage;
test('book by keyboard: referral, shortlist, booking questions, calendar, hold with countdown, confirmation', async () => {
  const page = bookPage = await newPage('book');
  const kb = keyboard(page, expect);
  await signInWithPicker(page);
  await page.goto('/referrals/' + fx.book.ID);
  await step(page, 'referral');
  let t = await text(page);
  expect(t.includes('Ready to book') && t.includes(ubrnText(fx.book.UBRN)), 'the referral page lacks its state or UBRN');
  await kb.press('#choose-service', 'choose where to be seen');
  await page.waitForURL(/\/shortlist$/);
  await step(page, 'shortlist');
  const cards = page.locator('#shortlist > li');
  expect((await cards.count()) >= 3, 'fewer than 3 services shortlisted');
  t = await text(page);
  expect(/\d+\.\d km \(\d+\.\d miles\)/.test(t), 'no distance on the shortlist');
  expect(/Waiting time\s*(\d+ days|1 day|Less than a day)/.test(t), 'no waiting time on the shortlist');
  expect(t.includes('Why it is suggested'), 'no reasons on the shortlist');
  await kb.press(page.getByRole('link', { name: /Choose Kingsbridge University Hospitals NHS Trust Dermatology/ }), 'the Kingsbridge dermatology service');
  await page.waitForURL(/\/services\//);
  await ready(page);
  await kb.press('#answer-first', 'answer the booking questions');
  await page.waitForURL(/\/questionnaires\//);
  await step(page, 'booking-questions');
  // Every item type the booking-guidance questionnaire has, by keyboard:
  // radios (boolean, choice) with the arrow keys, checkboxes (repeating
  // choice) with Space, date, decimal, integer, string and text by typing.
  await kb.press('#save-answers', 'save the answers');
  await page.waitForSelector('.nhsuk-error-summary');
  await step(page, 'booking-questions-errors');
  expect((await page.locator('.nhsuk-error-summary li').count()) === 3, 'the required questions are not all listed as problems');
  expect(await page.getByText('How would you send it?').isHidden(), 'a question shown before its condition holds');
  expect(await page.evaluate(() => document.activeElement.classList.contains('nhsuk-error-summary')), 'focus is not on the error summary');
  // The error summary's first link takes the focus to the first problem.
  await kb.press(page.locator('.nhsuk-error-summary a').first(), 'the first problem in the error summary');
  expect(await page.getByLabel('Yes').evaluate((el) => el === document.activeElement), 'the error summary\'s link does not focus its question');
  await kb.check(page.getByLabel('Yes'), 'yes, a photo');
  await kb.check(page.getByLabel('By email'), 'by email');
  await kb.date(page.getByLabel('When did you first notice it?'), '2026-10-01', 'when first noticed');
  await kb.fill(page.getByLabel('About how wide is it, in centimetres? (optional)'), '1.5', 'how wide');
  await kb.fill(page.getByLabel('How many areas are affected?'), '2', 'how many areas');
  await kb.fill(page.getByLabel('Where on your body is it?'), 'Left forearm', 'where');
  await kb.check(page.getByLabel('Bigger'), 'bigger');
  await kb.check(page.getByLabel('Darker'), 'darker');
  await kb.fill(page.getByLabel('Anything else the clinic should know? (optional)'), 'It sometimes itches.', 'anything else');
  expect(await page.getByLabel('When did you first notice it?').inputValue() === '2026-10-01', 'the date typed is not the date given');
  await kb.press('#save-answers', 'save the answers');
  await page.waitForURL(/\/services\/demo-hs-kingsbridge/);
  await step(page, 'calendar');
  const first = page.locator('.portal-time').first();
  const when = await first.getAttribute('aria-label');
  await kb.press(first, 'the first free time');
  await page.waitForURL(/\/holds\//);
  await step(page, 'hold');
  const c1 = await page.locator('#hold-countdown').innerText();
  expect(/^[45]:\d\d$/.test(c1), `countdown ${c1}, want about 5 minutes`);
  await page.waitForFunction((c) => document.querySelector('#hold-countdown').textContent !== c, c1);
  await kb.press('#confirm-booking', 'confirm and book');
  await page.waitForSelector('#confirmation');
  await step(page, 'confirmation');
  t = await text(page);
  expect(t.includes('Appointment booked') && t.includes(ubrnText(fx.book.UBRN)), 'the confirmation lacks its UBRN');
  expect(t.includes(when.split(' on ')[0]) && t.includes('How to get there') && (await page.locator('#appointment-address').innerText()).length > 10, 'the confirmation lacks the time or how to get there');
});

test('reschedule the booked appointment, by keyboard', async () => {
  const page = bookPage;
  const kb = keyboard(page, expect);
  await kb.press('#reschedule', 'change the appointment');
  await page.waitForURL(/\/reschedule$/);
  await step(page, 'reschedule');
  await kb.press(page.locator('.portal-time').nth(1), 'the second free time');
  await page.waitForSelector('#confirmation');
  await step(page, 'rescheduled');
  expect((await text(page)).includes('Appointment changed'), 'no confirmation of the change');
});

test('cancel the appointment, by keyboard', async () => {
  const page = bookPage;
  const kb = keyboard(page, expect);
  await kb.press('#cancel', 'cancel the appointment');
  await page.waitForURL(/\/cancel$/);
  await step(page, 'cancel');
  await kb.check(page.getByLabel('I no longer need the appointment'), 'the reason');
  await kb.press('#confirm-cancel', 'confirm the cancellation');
  await page.waitForURL(/cancelled=1/);
  await step(page, 'cancelled');
  const t = await text(page);
  expect(t.includes('has been cancelled') && t.includes('Ready to book') && t.includes('Cancelled'), 'the referral does not show the cancellation');
});

test('answer the experience questionnaire after an appointment, by keyboard', async () => {
  const page = bookPage;
  const kb = keyboard(page, expect);
  await page.goto('/referrals/' + fx.seen.ID);
  await ready(page);
  await kb.press(page.getByRole('link', { name: 'How was your appointment?' }), 'the experience questionnaire');
  await page.waitForURL(/\/questionnaires\//);
  await step(page, 'experience');
  await kb.check(page.getByLabel('5', { exact: true }), 'the rating 5');
  await kb.check(page.getByLabel('Yes'), 'yes');
  await kb.fill(page.getByLabel('Tell us why (optional)'), 'Seen on time, clear advice.', 'why');
  await kb.press('#save-answers', 'save the answers');
  await page.waitForURL(/answered=1/);
  await step(page, 'experience-saved');
  expect((await text(page)).includes('Your answers have been saved'), 'no thanks for the answers');
  expect((await page.locator('#questionnaire-list').innerText()).includes('Answered'), 'the questionnaire is not marked answered');
  await page.context().close();
});

test('sign in with UBRN, access code and birth date, by keyboard; mistakes in plain words', async () => {
  const page = await newPage('ubrn');
  const kb = keyboard(page, expect);
  await page.goto('/');
  await ready(page);
  await kb.press('#ubrn-link', 'the UBRN sign-in link');
  await page.waitForURL(/\/sign-in\/ubrn$/);
  await step(page, 'ubrn');
  await kb.press('#ubrn-continue', 'continue');
  await page.waitForSelector('.nhsuk-error-summary');
  expect((await page.locator('.nhsuk-error-summary li').count()) === 3, 'three problems expected for an empty form');
  const r = fx.ubrnAccess;
  const [y, m, d] = r.BirthDate.split('-');
  await kb.fill('#ubrn', ubrnText(r.UBRN), 'the UBRN');
  await kb.fill('#access-code', 'AAAA-BBBB-CCCC', 'the access code');
  await kb.fill('#dob-day', d, 'the day');
  await kb.fill('#dob-month', m, 'the month');
  await kb.fill('#dob-year', y, 'the year');
  await kb.press('#ubrn-continue', 'continue');
  await page.getByText('We could not find your referral').waitFor();
  await step(page, 'ubrn-wrong');
  expect(!(await text(page)).includes('resourceType'), 'a raw OperationOutcome is shown');
  await kb.fill('#access-code', r.Code, 'the access code');
  await kb.press('#ubrn-continue', 'continue');
  await page.waitForURL(new RegExp('/referrals/' + r.ID + '$'));
  await step(page, 'ubrn-referral');
  expect((await text(page)).includes(ubrnText(r.UBRN)), 'the UBRN sign-in does not show the referral');

  // An ended sign-in, in the tab or at the server, says to sign in again.
  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('signpost.session'));
    s.expiresAt = Date.now() - 1000;
    sessionStorage.setItem('signpost.session', JSON.stringify(s));
  });
  await page.reload();
  await page.getByRole('heading', { name: 'Your sign-in has ended' }).waitFor();
  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('signpost.session'));
    s.expiresAt = Date.now() + 600000;
    s.token = s.token.slice(0, -4) + 'AAAA';
    sessionStorage.setItem('signpost.session', JSON.stringify(s));
  });
  await page.reload();
  await page.getByRole('heading', { name: 'Your sign-in has ended' }).waitFor();
  await step(page, 'sign-in-ended');
  expect(await page.evaluate(() => sessionStorage.getItem('signpost.session')) === null, 'a token the server refused is kept');
  await kb.press('#sign-in-again', 'sign in again');
  await page.waitForURL(/\/\?expired=1$/);
  await ready(page);
  expect((await text(page)).includes('Your sign-in has ended. Sign in again to carry on.') && await page.locator('#sign-in').isVisible(), 'no way to sign in again');
  await page.context().close();
});

test('two browsers book the same slot: one holds it, the other is told it was just taken', async () => {
  const [a, b] = [await newPage('race-a'), await newPage('race-b')];
  await Promise.all([signInWithUBRN(a, fx.raceA), signInWithUBRN(b, fx.raceB)]);
  await Promise.all([a.goto(`/referrals/${fx.raceA.ID}/services/${fx.raceService}`), b.goto(`/referrals/${fx.raceB.ID}/services/${fx.raceService}`)]);
  await Promise.all([ready(a), ready(b)]);
  const start = await a.locator('.portal-time').first().getAttribute('data-start');
  const sel = `.portal-time[data-start="${start}"]`;
  expect(await b.locator(sel).count() === 1, 'the second browser does not offer the same time');
  // Both reach the time by keyboard, then press Enter together.
  await keyboard(a, expect).to(sel, 'the time');
  await keyboard(b, expect).to(sel, 'the time');
  await Promise.all([a.keyboard.press('Enter'), b.keyboard.press('Enter')]);
  const outcome = async (p) => {
    await p.waitForFunction(() => location.pathname.startsWith('/holds/') || document.querySelector('.nhsuk-error-summary'));
    await ready(p);
    return p.url().includes('/holds/') ? 'held' : 'taken';
  };
  const got = await Promise.all([outcome(a), outcome(b)]);
  expect(got.includes('held') && got.includes('taken'), `outcomes ${got}, want one held and one taken`);
  const loser = got[0] === 'taken' ? a : b;
  await step(loser, 'race-taken');
  const t = await text(loser);
  expect(t.includes('That time has just been taken'), 'no plain-words message for the taken slot');
  expect(await loser.locator(sel).count() === 0, 'the refreshed calendar still offers the taken time');
  expect(await loser.locator('.portal-time').count() > 0, 'the refreshed calendar offers nothing');
  expect(await loser.evaluate(() => document.activeElement && document.activeElement.classList.contains('nhsuk-error-summary')), 'focus is not on the error summary');
  await a.context().close();
  await b.context().close();
});

test('the keyboard alone, with visible focus: sign in with a UBRN and book', async () => {
  const page = await newPage('keyboard');
  const kb = keyboard(page, expect);
  const tabTo = (desc, target) => kb.to(target, desc);
  await signInWithUBRN(page, fx.ubrnAccess);
  await tabTo('choose where to be seen', '#choose-service');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/shortlist$/);
  await ready(page);
  await tabTo('a service without booking questions', page.locator('[aria-label^="Choose "]:not([aria-label*="Kingsbridge"])'));
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/services\//);
  await ready(page);
  await tabTo('the first free time', '.portal-time');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/holds\//);
  await ready(page);
  await tabTo('confirm and book', '#confirm-booking');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#confirmation');
  await step(page, 'keyboard-booked');
  await page.context().close();
});

test('a patient visits every page reachable and sees no other patient', async () => {
  const first = await newPage('crawl');
  await signInWithPicker(first);
  const session = await first.evaluate(() => sessionStorage.getItem('signpost.session'));
  const context = first.context();
  // Every page of the crawl starts with the tab's sign-in (sessionStorage
  // is per tab), so a renderer can be replaced every few pages.
  await context.addInitScript((s) => { if (!sessionStorage.getItem('signpost.session')) sessionStorage.setItem('signpost.session', s); }, session);
  await first.close();
  let page = null;
  const seen = new Set();
  const queue = ['/referrals'];
  let visited = 0;
  while (queue.length && visited < 60) {
    const path = queue.shift();
    if (seen.has(path)) continue;
    seen.add(path);
    if (!page || visited % 8 === 0) {
      if (page) await page.close();
      page = await context.newPage();
      page.on('pageerror', (e) => problems.push(`crawl: page error: ${e.message}`));
    }
    let t;
    let links;
    try {
      await page.goto(path);
      await ready(page);
      await audit(page, 'crawl');
      t = await text(page);
      links = await page.evaluate(() => [...document.querySelectorAll('a[href]')].map((a) => new URL(a.href, location.href))
        .filter((u) => u.origin === location.origin).map((u) => u.pathname + u.search));
    } catch (e) {
      throw new Error(`crawling ${path}: ${e.message}`);
    }
    visited++;
    for (const other of fx.others) {
      expect(!new RegExp('\\b' + other + '\\b').test(t), `${path} shows ${other}, another patient's`);
    }
    for (const l of links) {
      if (l.startsWith('/sign-out') || l.startsWith('/auth') || l.startsWith('/fhir') || l === '/' || l.startsWith('/?') || l.startsWith('/assets')) continue;
      if (!seen.has(l)) queue.push(l);
    }
  }
  expect(visited >= 10, `only ${visited} pages reachable`);
  console.log(`  crawled ${visited} pages`);
  await context.close();
});

await run();
