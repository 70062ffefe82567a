// /sign-out: forgets the tab's sign-in.

import { clear } from '../session.js';

export async function render(ctx) {
  clear();
  ctx.navigate('/?signed-out=1', { replace: true });
  return null;
}
