// /callback: the authorisation server returns here with a code, which is
// exchanged for a token (smart.js).

import { h } from '../dom.js';
import { heading } from '../layout.js';
import { completeSignIn } from '../smart.js';

export async function render(ctx) {
  try {
    const next = await completeSignIn(location.search);
    ctx.navigate(next, { replace: true });
    return null;
  } catch (err) {
    return {
      title: 'Signing in did not work', error: true,
      body: [heading('Signing in did not work'), h('p', { class: 'nhsuk-body' }, err.message || 'Try again.'),
        h('p', { class: 'nhsuk-body' }, h('a', { href: '/' }, 'Start again'))],
    };
  }
}
