// The keyboard alone, with visible focus: the browser tests' way of doing
// each step of a journey as a keyboard user does. Every target is reached
// with Tab (or Shift+Tab when it comes before the focus), and every
// element focused on the way must show its focus; then Enter, Space, the
// arrow keys or typing do the step. Shared by journeys.mjs and staff.mjs.

// focusState is evaluated in the page: the focused element, whether its
// focus is visible, and whether it is the element marked as the target.
// Radios and checkboxes of the NHS.UK frontend hide the input and draw the
// focus on the label's ::before.
function focusState(el) {
  if (!el || el === document.body) return { none: true };
  const shows = (cs) => (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0 && !/rgba\(0, 0, 0, 0\)|transparent/.test(cs.outlineColor)) ||
    cs.boxShadow !== 'none' || cs.backgroundColor === 'rgb(255, 235, 59)';
  let visible = shows(getComputedStyle(el));
  if ((el.type === 'radio' || el.type === 'checkbox') && getComputedStyle(el).opacity === '0') {
    const label = el.nextElementSibling;
    visible = !!label && shows(getComputedStyle(label, '::before'));
  }
  return { visible, tag: el.tagName, text: (el.innerText || el.value || el.getAttribute('aria-label') || el.id || '').slice(0, 60), hit: el.hasAttribute('data-kbd-target') };
}

// keyboard returns the keyboard steps for a page; expect reports a failed
// check. A target is a CSS selector or a Locator; when it matches several
// elements, reaching any of them will do.
export function keyboard(page, expect) {
  const locate = (target) => (typeof target === 'string' ? page.locator(target) : target);

  // to moves the focus to target by Tab or Shift+Tab, checking every
  // element focused on the way shows its focus.
  async function to(target, desc = String(target), max = 60) {
    // Every element target matches is marked (a radio group is reached
    // at any of its radios); the direction comes from where focus is now.
    const loc = locate(target);
    await loc.first().waitFor({ state: 'visible' });
    const back = await loc.evaluateAll((els) => {
      document.querySelectorAll('[data-kbd-target]').forEach((e) => e.removeAttribute('data-kbd-target'));
      els.forEach((e) => e.setAttribute('data-kbd-target', ''));
      const a = document.activeElement;
      if (els.includes(a)) return null;
      return !!a && a !== document.body && !!(els[0].compareDocumentPosition(a) & Node.DOCUMENT_POSITION_FOLLOWING);
    });
    if (back === null) return;
    // Each element focused is recorded (focusin) with whether it shows its
    // focus, so several Tabs go in one round: as many as the tabbable
    // elements surely between the focus and the target (never more, so
    // the target is not passed), then the record is read.
    await page.evaluate(`(() => {
      const focusState = ${focusState.toString()};
      if (!window.__kbd) {
        window.__kbd = [];
        document.addEventListener('focusin', (e) => window.__kbd.push(focusState(e.target)));
      }
      window.__kbd.length = 0;
    })()`);
    let pressed = 0;
    while (pressed < max) {
      const n = await page.evaluate((b) => {
        const sure = [...document.querySelectorAll('a[href], button, input:not([type=hidden]):not([type=radio]), select, textarea')]
          .filter((e) => !e.disabled && e.tabIndex >= 0 && e.getClientRects().length && (!e.checkVisibility || e.checkVisibility({ visibilityProperty: true })) && !e.closest('[inert]'));
        const t = document.querySelector('[data-kbd-target]');
        const a = document.activeElement;
        const from = a && a !== document.body ? a : null;
        const between = sure.filter((e) => e !== t && !e.hasAttribute('data-kbd-target') && (b
          ? (t.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING) && (!from || (from.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_PRECEDING))
          : (t.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_PRECEDING) && (!from || (from.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING))));
        return between.length + 1;
      }, back);
      for (let i = 0; i < n && pressed < max; i++, pressed++) await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
      const log = await page.evaluate(() => window.__kbd.splice(0));
      for (const st of log) {
        if (st.none) continue;
        expect(st.visible, `focus not visible on ${st.tag} "${st.text}" while tabbing to ${desc}`);
      }
      if (await page.evaluate(() => !!document.activeElement && document.activeElement.hasAttribute('data-kbd-target'))) return;
      if (log.some((st) => st.hit)) throw new Error(`tabbed past ${desc}`);
    }
    throw new Error(`could not reach ${desc} with ${back ? 'Shift+Tab' : 'Tab'}`);
  }

  return {
    to,
    // press focuses target and presses Enter (links, buttons, submit).
    async press(target, desc, key = 'Enter') {
      await to(target, desc);
      await page.keyboard.press(key);
    },
    // fill focuses a field, selects what it holds and types value.
    async fill(target, value, desc) {
      await to(target, desc);
      await page.keyboard.press('Control+A');
      if (value === '') await page.keyboard.press('Delete');
      else await page.keyboard.type(value);
    },
    // date focuses a date input and types value (YYYY-MM-DD) into its
    // fields in the order the browser's locale shows them; the arrow keys
    // first take the focus to the first field (Shift+Tab arrives at the
    // last).
    async date(target, value, desc) {
      await to(target, desc);
      for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowLeft');
      const [y, m, d] = value.split('-');
      const order = await page.evaluate(() => new Intl.DateTimeFormat(navigator.language).formatToParts(new Date(2000, 0, 2))
        .map((p) => p.type).filter((t) => t === 'day' || t === 'month' || t === 'year'));
      for (const part of order) await page.keyboard.type({ day: d, month: m, year: y }[part]);
    },
    // check focuses a checkbox and ticks it with Space, or chooses a radio:
    // Tab reaches its group, the arrow keys move to it (and choose it).
    async check(target, desc) {
      const loc = locate(target);
      const type = await loc.evaluate((el) => el.type);
      if (type === 'checkbox') {
        await to(loc, desc);
        if (!(await loc.isChecked())) await page.keyboard.press('Space');
      } else {
        const name = await loc.evaluate((el) => el.name);
        await to(page.locator(`input[type=radio][name="${name}"]:not([disabled])`), desc || `the ${name} choices`);
        for (let i = 0; i < 20 && !(await loc.evaluate((el) => el === document.activeElement)); i++) {
          await page.keyboard.press('ArrowDown');
          const st = await page.evaluate(`(${focusState.toString()})(document.activeElement)`);
          expect(st.visible, `focus not visible on radio "${st.text}" while choosing ${desc}`);
        }
        expect(await loc.evaluate((el) => el === document.activeElement), `could not reach ${desc} with the arrow keys`);
        if (!(await loc.isChecked())) await page.keyboard.press('Space');
      }
      expect(await loc.isChecked(), `${desc || target} is not chosen`);
    },
    // select focuses a select and moves to the option at index (or the
    // option whose value is value) with the arrow keys.
    async select(target, { index, value }, desc) {
      const loc = locate(target);
      await to(loc, desc);
      const want = index !== undefined ? index : await loc.evaluate((el, v) => [...el.options].findIndex((o) => o.value === v), value);
      expect(want >= 0, `no option ${value} in ${desc || target}`);
      for (let i = 0; i < 50; i++) {
        const at = await loc.evaluate((el) => el.selectedIndex);
        if (at === want) return;
        await page.keyboard.press(at < want ? 'ArrowDown' : 'ArrowUp');
      }
      throw new Error(`could not choose option ${want} of ${desc || target} with the arrow keys`);
    },
  };
}
