// Package devserver is Signpost's embedded development authorisation
// server: a real OAuth 2 and OpenID Connect provider (zitadel/oidc's op
// package) with SMART additions, used only when Signpost has no external
// issuer, so that the demo works end to end. It registers demo clients
// (a GP system with a private-key JWT, a patient app with PKCE, a call
// centre, a provider), offers a patient picker for the patient app's
// authorisation-code flow, signs the tokens of ServiceRequest/$ubrn-access
// (Server.MintReferralToken), and lets scripts and tests mint tokens with
// the key it keeps in the data directory (MintToken).
//
// Verifying tokens, scopes, principals and the UBRN issuer used beside an
// external issuer are in package auth, which this package builds on: it
// signs with auth.SigningKey and builds every token's claims from an
// auth.TokenGrant, as the UBRN issuer does.
//
// # The server
//
// Server is a real OAuth 2 / OpenID Connect provider (zitadel/oidc op,
// its LegacyServer extended where SMART needs more): discovery at
// {issuer}/.well-known/openid-configuration, /authorize, /oauth/token,
// /keys, /userinfo, /oauth/introspect, /revoke, the patient picker at
// /login and the staff sign-in at /staff (their forms carry a per-request
// CSRF token; cross-origin POSTs and
// framing are refused). It keeps its state in auth.DevDir(DataDir) = DATA/auth, created 0700
// at first start: signing-key.pem (RSA 2048, PKCS#8, 0600; its kid is the
// RFC 7638 thumbprint, so it is stable), clients.json (demo clients with
// their random credentials, 0600), gp-system-key.pem (the GP system's
// private key for its client assertions, 0600) and issuer.json (the issuer,
// audience and kid of the last start, read by MintToken). Nothing of it is
// committed; edit clients.json to change the demo clients.
//
// Demo clients (scopes are the most each may be granted; a request without
// scopes gets them all):
//
//	gp-system    SMART Backend Services: client_credentials authenticated by a
//	             private_key_jwt assertion (RS256/ES256/PS256; iss = sub =
//	             client_id, aud = the token endpoint or the issuer, exp at most
//	             five minutes ahead, jti never reused); system/*.cruds, role
//	             referrer, org A99001
//	call-centre  client_credentials with client_secret_basic; user/*.cruds,
//	             role call-centre, org Y99001
//	provider     client_credentials with client_secret_basic (a PAS interface
//	             is a backend, so no user sign-in); system/*.cruds, role
//	             provider, org R9901
//	auditor      client_credentials with client_secret_basic; user/ and
//	             system/AuditEvent.rs, role auditor
//	commissioner client_credentials with client_secret_basic; user/ read of
//	             HealthcareService, Organization, Location; role
//	             commissioner, org QWN (the demo county's north ICB): runs
//	             the reports on the services that ICB commissions
//	operator     client_credentials with client_secret_basic; user/ read of
//	             HealthcareService, Organization, Location; role operator,
//	             org R9901: the adapters' operator view, nothing clinical
//	patient-app  public client: authorization code with PKCE S256 (required;
//	             plain is refused), redirect to a loopback /callback on any
//	             port or Config.RedirectURIs; the user chooses a
//	             patient from the caller's PatientDirectory; openid fhirUser
//	             launch/patient patient/*.cruds, role patient
//	api-reference public client of the API reference page (/api/): authorization
//	             code with PKCE S256, redirect /api/oauth2-redirect.html on
//	             the issuer's host or a loopback address; openid fhirUser
//	             launch/patient patient/*.cruds user/*.cruds, no role of its
//	             own (the patient's or the member of staff's)
//	portal       Signpost's web portal: public (PKCE S256; the patient picker or
//	             the staff sign-in; no role of its own), redirect to
//	             <root>/callback (Config.PortalRedirectURIs) or a loopback
//	             /callback on any port
//
// # Staff sign-in
//
// An authorisation request asking for a user/ scope (and not
// launch/patient) goes to the staff sign-in page at /staff instead of the
// patient picker: the user chooses one of the demo staff (DemoStaff: a GP
// at DemoGPPractice, a referral manager at DemoProvider, a call-centre
// agent at DemoCallCentre, a commissioner at DemoCommissioner). The token
// has sub and fhirUser Practitioner/<id>, the user's role and org, and the
// requested user/ scopes narrowed to the user's (narrowScopes); it works
// for any public client registered with user/ scopes.
//
// Its access tokens are JWTs (RS256, typ JWT, kid) carrying iss, sub, aud,
// exp, iat, nbf, jti, client_id, scope, and where they apply patient,
// fhirUser, org and role. Client-credentials tokens have sub = client_id and
// aud = [audience]; patient-app tokens have sub = "Patient/<id>", fhirUser =
// <audience>/Patient/<id> and aud = [audience, client_id] (zitadel gives the
// ID token the same audience, which must name the client). The token response
// of the code flow carries "patient", as SMART launch context. An "aud"
// parameter on /authorize, when sent, must name the FHIR base URL. Refresh
// tokens, the device flow, token exchange and the JWT bearer grant are not
// offered. zitadel logs its routes at Info through slog's default logger.
//
// MintToken signs, with the same key and the same code path (zitadel's
// claims type and signer), the token the endpoint would issue: like the
// patient app's with a patient, like a client_credentials token without.
package devserver

import "github.com/go-playground/validator/v10"

// validate checks the package's configuration structs.
var validate = validator.New(validator.WithRequiredStructEnabled())
