// The portal's configuration, from the meta elements the server fills in
// index.html.

function meta(name) {
  const el = document.querySelector(`meta[name="${name}"]`);
  return el ? el.getAttribute('content') : '';
}

/** fhirBase is the path of the FHIR API on this origin, e.g. /fhir. */
export const fhirBase = meta('signpost-fhir-base') || '/fhir';
/** audience is the FHIR base URL tokens are asked for (SMART aud). */
export const audience = meta('signpost-audience') || (location.origin + fhirBase);
/** clientId is the portal's client id at the authorisation server. */
export const clientId = meta('signpost-client-id') || 'portal';
/** redirectURI is where the authorisation server sends the browser back. */
export const redirectURI = location.origin + '/callback';
