// Signing in as a SMART app, written against the discovery document (no
// SMART library): the standalone launch with the authorisation-code flow
// and PKCE (S256), and the UBRN + access code + birth date exchange
// (ServiceRequest/$ubrn-access). The token is kept by session.js.

import { fhirBase, audience, clientId, redirectURI } from './config.js';
import { save } from './session.js';
import { request, operation, param } from './fhir.js';
import { PortalError } from './errors.js';

const PKCE_KEY = 'signpost.pkce';

/** The scopes the patient portal asks for. */
export const PATIENT_SCOPES = 'openid fhirUser launch/patient patient/*.cruds';

/**
 * The scopes staff ask for: user/ scopes and no launch/patient, so the
 * issuer signs in a member of staff (the development server's staff
 * page), narrowing them to what the user's role may have.
 */
export const STAFF_SCOPES = 'openid fhirUser user/*.cruds';

/** claims reads a JWT's payload (unverified: for display and routing only; the API checks the token). */
export function claims(jwt) {
  try {
    const b = (jwt || '').split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(b + '='.repeat((4 - (b.length % 4)) % 4)))));
  } catch {
    return {};
  }
}

function base64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(n) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return base64url(b);
}

/** discover reads the FHIR server's SMART configuration. */
export async function discover() {
  return request('.well-known/smart-configuration', { token: '' });
}

/**
 * signIn starts the standalone launch: it sends the browser to the
 * authorisation server, which returns to /callback. returnTo is the page
 * to show afterwards.
 */
export async function signIn(returnTo = '/referrals', scope = PATIENT_SCOPES) {
  if (!crypto.subtle) {
    throw new Error('Signing in needs a secure connection (HTTPS).');
  }
  const cfg = await discover();
  const verifier = randomString(48);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const state = randomString(24);
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ state, verifier, returnTo, tokenEndpoint: cfg.token_endpoint, staff: scope === STAFF_SCOPES }));
  const q = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: redirectURI, scope, state,
    code_challenge: challenge, code_challenge_method: 'S256', aud: audience,
  });
  location.assign(cfg.authorization_endpoint + '?' + q);
}

/**
 * completeSignIn finishes the launch at /callback: checks state, exchanges
 * the code for a token, records it, and returns the page to go to.
 */
export async function completeSignIn(search) {
  const q = new URLSearchParams(search);
  let pending;
  try {
    pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || 'null');
  } catch {
    pending = null;
  }
  sessionStorage.removeItem(PKCE_KEY);
  if (q.get('error')) {
    throw new SignInError(q.get('error') === 'access_denied' ? 'You cancelled signing in.' : 'Signing in did not work: ' + (q.get('error_description') || q.get('error')));
  }
  if (!pending || !q.get('state') || q.get('state') !== pending.state) {
    throw new SignInError('This sign-in link is not from this browser tab, or it was used already. Start again.');
  }
  const body = new URLSearchParams({ grant_type: 'authorization_code', code: q.get('code') || '', redirect_uri: redirectURI,
    client_id: clientId, code_verifier: pending.verifier });
  let resp;
  try {
    resp = await fetch(pending.tokenEndpoint, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw new PortalError(0, null, e.message);
  }
  const tok = await resp.json().catch(() => ({}));
  if (!resp.ok || !tok.access_token) {
    throw new SignInError('Signing in did not work: ' + (tok.error_description || tok.error || 'the authorisation server refused'));
  }
  if (pending.staff) {
    if (tok.patient) throw new SignInError('This sign-in is for a patient. Patients sign in on the start page.');
    const c = { ...claims(tok.id_token), ...claims(tok.access_token) };
    if (!c.role || c.role === 'patient') throw new SignInError('This sign-in has no staff role. Ask your administrator for access.');
    save({ token: tok.access_token, expiresIn: tok.expires_in, kind: 'staff', role: c.role, org: c.org || '', user: c.fhirUser || c.sub || '' });
    return pending.returnTo || '/staff';
  }
  if (!tok.patient) {
    throw new SignInError('This sign-in is not for a patient. Staff sign in with "Sign in as staff".');
  }
  save({ token: tok.access_token, expiresIn: tok.expires_in, patient: tok.patient, kind: 'smart' });
  return pending.returnTo || '/referrals';
}

/** SignInError is a sign-in that did not complete, said in plain words. */
export class SignInError extends Error {}

/**
 * signInWithUBRN exchanges a UBRN, access code and birth date
 * (YYYY-MM-DD) for a token limited to that referral.
 */
export async function signInWithUBRN(ubrn, code, birthdate) {
  const out = await operation('ServiceRequest/$ubrn-access', [
    ['ubrn', { valueString: ubrn }], ['access-code', { valueString: code }], ['birthdate', { valueDate: birthdate }],
  ], { token: '' });
  const patient = (param(out, 'patient') || {}).reference || '';
  const referral = (param(out, 'referral') || {}).reference || '';
  save({ token: param(out, 'access_token'), expiresIn: param(out, 'expires_in'), patient: patient.replace('Patient/', ''),
    referral: referral.replace('ServiceRequest/', ''), kind: 'ubrn' });
  return '/referrals/' + encodeURIComponent(referral.replace('ServiceRequest/', ''));
}

export { fhirBase };
