// What the portal's browser tests share (journeys.mjs for patients,
// staff.mjs for staff): Debian's chromium through playwright-core at
// 375 px wide, axe-core on every page state, a screenshot per step,
// signing in through the development server's pages by keyboard alone
// (keyboard.mjs), the test list and its summary. The fixture comes from
// the Go test in PORTAL_FIXTURE.
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { keyboard } from './keyboard.mjs';

// harness starts the browser and returns the tests' tools. auditKey(page,
// label) names a page state: one axe audit per name. textOf is the
// selector whose text text() returns.
export async function harness({ auditKey, textOf = 'body' }) {
  const fx = JSON.parse(process.env.PORTAL_FIXTURE || '{}');
  const shots = fx.screenshots;
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({ executablePath: fx.chromium, args: ['--no-sandbox'] });
  const problems = []; // console errors, page errors, accessibility violations
  const audited = new Set();
  let shotCount = 0;
  let tStep = Date.now();

  function expect(cond, msg) {
    if (!cond) throw new Error(msg);
  }

  async function newPage(label) {
    const context = await browser.newContext({ viewport: { width: 375, height: 812 }, baseURL: fx.base, reducedMotion: 'reduce', acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(10000);
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      // Answers the journeys provoke: the API's 4xx the portal turns into
      // plain words, and the staff sign-in page's 400 for no choice.
      if (/status of (401|404|409|422|429)/.test(m.text())) return;
      if (/status of 400/.test(m.text()) && /\/auth\/staff/.test(m.location().url || '')) return;
      problems.push(`${label}: console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
    return page;
  }

  // ready waits until the page has rendered: its h1 in #maincontent, and
  // nothing loading. The development server's sign-in pages have the
  // same landmark.
  async function ready(page) {
    await page.waitForFunction(() => document.querySelector('#maincontent h1') && !document.querySelector('#maincontent [role=status]'));
  }

  // audit runs axe-core once per page state (auditKey) and records every
  // serious or critical violation.
  async function audit(page, label) {
    const key = await auditKey(page, label);
    if (audited.has(key)) return;
    audited.add(key);
    const r = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
    for (const v of r.violations) {
      if (v.impact === 'serious' || v.impact === 'critical') {
        problems.push(`axe ${v.impact} on ${page.url()} (${label}): ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')}`);
      }
    }
  }

  // step checks the page with axe and saves its screenshot.
  async function step(page, name) {
    await ready(page);
    await audit(page, name);
    shotCount++;
    if (process.env.PORTAL_TIMING) {
      console.log(`  ${name}: ${Date.now() - tStep} ms`);
      tStep = Date.now();
    }
    await page.screenshot({ path: join(shots, `${String(shotCount).padStart(2, '0')}-${name}.png`), fullPage: true });
  }

  async function text(page) {
    return page.evaluate((sel) => document.querySelector(sel).innerText, textOf);
  }

  // signInWithPicker signs in as the patient with NHS number nhs, by
  // keyboard: the portal's "Sign in", then the development server's
  // patient picker (checked with axe, a screenshot when shot names it).
  async function signInWithPicker(page, nhs, shot) {
    const kb = keyboard(page, expect);
    await page.goto('/');
    await ready(page);
    await kb.press('#sign-in', 'sign in');
    await page.waitForURL(/\/auth\/login/);
    await ready(page);
    if (shot) await step(page, shot);
    else await audit(page, 'picker');
    expect((await page.title()).startsWith('Choose a patient'), 'the picker has no title of its own');
    await kb.press(page.getByRole('button', { name: new RegExp(nhs) }), 'the patient with NHS number ' + nhs);
    await page.waitForURL(/\/referrals$/);
    await ready(page);
  }

  // signInAsStaff signs in as the demo user by keyboard: the portal's
  // "Sign in as staff", then the development server's staff page, whose
  // radios are reached with Tab and chosen with the arrow keys. The
  // first time, Enter without a choice shows the page's error, checked
  // with axe.
  let staffErrorSeen = false;
  async function signInAsStaff(page, user, home) {
    const kb = keyboard(page, expect);
    await page.goto('/');
    await ready(page);
    await kb.press('#sign-in-staff', 'sign in as staff');
    await page.waitForURL(/\/auth\/staff/);
    await ready(page);
    await audit(page, 'staff sign-in');
    if (!staffErrorSeen) {
      staffErrorSeen = true;
      await step(page, 'staff-sign-in');
      await kb.press(page.getByRole('button', { name: 'Sign in' }), 'sign in without a choice');
      await page.waitForSelector('.error[role=alert]');
      await ready(page);
      expect((await page.locator('.error').innerText()).includes('Choose who you are signing in as'), 'no plain-words error for no choice');
      expect((await page.title()).startsWith('Error: '), 'the error page\'s title does not say so');
      await step(page, 'staff-sign-in-error');
    }
    await kb.check('#user-' + user, 'the demo user ' + user);
    await kb.press(page.getByRole('button', { name: 'Sign in' }), 'sign in');
    await page.waitForURL(home);
    await ready(page);
  }

  const tests = [];
  const test = (name, fn) => tests.push({ name, fn });

  // run runs the tests (PORTAL_ONLY, a regular expression, runs only
  // those it matches), prints the summary and exits.
  async function run() {
    let passed = 0;
    let failed = 0;
    const t0 = Date.now();
    tStep = t0;
    const only = process.env.PORTAL_ONLY ? new RegExp(process.env.PORTAL_ONLY) : null;
    for (const { name, fn } of tests) {
      if (only && !only.test(name)) continue;
      const t = Date.now();
      try {
        await fn();
        passed++;
        console.log(`ok - ${name} (${Date.now() - t} ms)`);
      } catch (e) {
        failed++;
        console.log(`not ok - ${name}: ${e.stack || e}`);
      }
    }
    await browser.close();
    for (const p of problems) console.log('problem: ' + p);
    if (problems.length) failed++;
    console.log(`${shotCount} screenshots in ${shots}; ${audited.size} page states checked with axe; ${Date.now() - t0} ms`);
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  }

  return { fx, browser, problems, expect, newPage, ready, audit, step, text, signInWithPicker, signInAsStaff, test, run, keyboard: (page) => keyboard(page, expect), since: () => Date.now() - tStep };
}
