// The FHIR client every page uses: calls the API on this origin with the
// tab's token, and turns every failure into a PortalError (errors.js).

import { fhirBase } from './config.js';
import { current, clear } from './session.js';
import { PortalError } from './errors.js';

/**
 * request calls the FHIR API: path is relative to the base ("Appointment/1",
 * "Appointment/$find"); body (an object) is sent as JSON. Options: method,
 * body, ifMatch, idempotent (send an Idempotency-Key), token (instead of
 * the tab's), query (an object of search parameters; arrays repeat).
 * Resolves to the answer's JSON (null for an empty body).
 */
export async function request(path, opts = {}) {
  const headers = { Accept: 'application/fhir+json' };
  const token = opts.token !== undefined ? opts.token : (current() || {}).token;
  if (token) headers.Authorization = 'Bearer ' + token;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/fhir+json';
  if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
  if (opts.idempotent) headers['Idempotency-Key'] = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
  let url = fhirBase + '/' + path;
  if (opts.query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query)) {
      for (const x of Array.isArray(v) ? v : [v]) if (x !== undefined && x !== null) q.append(k, x);
    }
    url += (url.includes('?') ? '&' : '?') + q;
  }
  let resp;
  try {
    resp = await fetch(url, { method: opts.method || (opts.body !== undefined ? 'POST' : 'GET'), headers,
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new PortalError(0, null, e.message);
  }
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (resp.status === 401 && opts.token === undefined && token) clear(); // the server no longer takes the tab's token
  if (!resp.ok) {
    throw new PortalError(resp.status, json && json.resourceType === 'OperationOutcome' ? json : null);
  }
  return json;
}

/** read reads one resource: read('Patient', 'x'). */
export function read(type, id) {
  return request(`${type}/${encodeURIComponent(id)}`);
}

/** search answers a search with its resources (mode match) and the included ones, by reference. */
export async function search(type, query) {
  const bundle = await request(type, { query });
  return bundleParts(bundle);
}

/** bundleParts splits a searchset into matches and included resources (by "Type/id"). */
export function bundleParts(bundle) {
  const matches = [];
  const included = {};
  for (const e of (bundle && bundle.entry) || []) {
    const r = e.resource;
    if (!r) continue;
    if (e.search && e.search.mode === 'include') included[r.resourceType + '/' + r.id] = r;
    else if (r.resourceType !== 'OperationOutcome') matches.push(r);
    if (r.resourceType !== 'OperationOutcome') included[r.resourceType + '/' + r.id] = included[r.resourceType + '/' + r.id] || r;
  }
  const outcomes = ((bundle && bundle.entry) || []).map((e) => e.resource).filter((r) => r && r.resourceType === 'OperationOutcome');
  return { matches, included, outcomes };
}

/** operation calls a FHIR operation with Parameters built from pairs. */
export function operation(path, params, opts = {}) {
  return request(path, { ...opts, method: 'POST', body: parameters(params) });
}

/**
 * parameters builds a Parameters resource from [name, value] pairs; a
 * value is {valueString: …}, {valueReference: …}, {resource: …} etc.
 */
export function parameters(pairs) {
  return { resourceType: 'Parameters', parameter: pairs.map(([name, v]) => ({ name, ...v })) };
}

/** param reads a Parameters' value by name (the first value[x]). */
export function param(p, name) {
  const x = ((p && p.parameter) || []).find((q) => q.name === name);
  return x ? valueOf(x) : undefined;
}

/** valueOf returns a parameter's value[x], or its parts. */
export function valueOf(x) {
  for (const [k, v] of Object.entries(x)) if (k.startsWith('value')) return v;
  return x.part;
}

/** ETag of a resource, for If-Match. */
export function etag(r) {
  return r && r.meta && r.meta.versionId ? `W/"${r.meta.versionId}"` : undefined;
}
