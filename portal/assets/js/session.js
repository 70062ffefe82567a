// The sign-in of this browser tab: kept in sessionStorage (never
// local storage), so a reload keeps it, another tab or a closed browser
// does not, and signing out clears it.

const KEY = 'signpost.session';

/**
 * current returns the tab's sign-in, or null: {token, expiresAt (ms),
 * patient (id), referral (id, when the token is limited to one referral),
 * kind ('smart' | 'ubrn' | 'staff'); staff have role, org and user instead
 * of patient}. An expired sign-in is returned with expired
 * set, so the page can say so.
 */
export function current() {
  let s;
  try {
    s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    s = null;
  }
  if (!s || !s.token) return null;
  s.expired = Date.now() >= s.expiresAt;
  return s;
}

/** save records a new sign-in. */
export function save({ token, expiresIn, patient, referral, kind, role, org, user }) {
  const s = { token, expiresAt: Date.now() + (Number(expiresIn) || 3600) * 1000, patient, referral: referral || null, kind };
  if (kind === 'staff') Object.assign(s, { role, org, user }); // staff: the token's role, ODS code and Practitioner
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

/** clear signs the tab out. */
export function clear() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem('signpost.pkce');
}
