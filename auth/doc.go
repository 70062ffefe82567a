// Package auth is Signpost's SMART on FHIR authorisation: who the caller is
// (Principal, from a verified access token), what their scopes let them do
// (Scope, Principal.Decide), the verification of bearer JWTs with go-oidc
// (Verifier, and Verifiers for several issuers), Signpost's own issuer of
// $ubrn-access tokens beside an external issuer (UBRNIssuer), the signing
// both of Signpost's own issuers share (SigningKey, TokenGrant,
// SignAccessToken) and the SMART discovery document (SmartConfiguration).
// The embedded development authorisation server, with its demo clients,
// patient picker and token minting for the CLI, is package auth/devserver.
//
// # Claims Signpost reads
//
// Access tokens are JWTs. Besides the registered claims (iss, aud, exp, nbf,
// iat, sub, jti), Signpost reads, by default:
//
//	scope       space-separated scopes (or an array): SMART v1 and v2 resource scopes
//	client_id   the OAuth client (azp when client_id is absent)
//	patient     FHIR id of the patient in context (SMART launch context)
//	nhs_number  NHS login: the patient's NHS number, string or number
//	fhirUser    the user's own FHIR resource URL
//	org         the user's or client's organisation, an ODS code
//	role        referrer | provider | call-centre | auditor | commissioner | patient | operator
//
// ClaimNames maps an issuer's own claims onto these: each is a claim name or
// a dotted path into nested objects, a path crossing an array visits every
// element, and RoleMap translates the issuer's role values. For example:
//
//	NHS CIS2:  Organization "nhsid_nrbac_roles.org_code", Role "nhsid_nrbac_roles.role_code",
//	           RoleMap {"S8000:G8000:R8000": "referrer", ...}
//	NHS login: NHSNumber "nhs_number" (the default); Role is then absent, so
//	           map a fixed claim or give patient tokens the patient scopes only
//	Keycloak:  Role "realm_access.roles", RoleMap {"signpost-booker": "call-centre"};
//	           add the org and patient claims with protocol mappers
//
// # Scopes and decisions
//
// ParseScope reads SMART v2 (patient/Appointment.rs, user/*.cruds,
// system/Slot.rs, granular patient/Observation.rs?category=... with the query
// kept as data) and v1 (patient/*.read, user/Appointment.write,
// user/*.*). Principal.Allows answers literally whether a scope of one
// context grants an interaction; Principal.Decide applies Signpost's rules
// and tells the API how to restrict the request:
//
//   - patient-level scopes grant nothing without a patient in context
//     (patient or nhs_number claim); when only they grant an interaction,
//     Decision.PatientOnly asks the API to confine it to that patient's
//     compartment;
//   - a principal with the patient role is confined to their compartment
//     even through user-level scopes;
//   - granular scopes come back as Grants with their query: a resource is
//     reachable if it satisfies one grant;
//   - AuditEvent: no scope lets a client create, update or delete one
//     (*.cruds included); reading and searching need system/AuditEvent.rs, or
//     user/AuditEvent.rs with the auditor role; wildcard types do not reach
//     the audit trail;
//   - the operator role (the deployment's operations staff) reads and
//     searches only the directory (OperatorTypes) and writes nothing,
//     whatever its scopes: it reaches no clinical data.
//
// A bare "*.*" (no context) is not a SMART scope and is rejected.
//
// # Verifying tokens
//
// NewVerifier discovers the issuer (--issuer) and checks tokens with go-oidc:
// signature, iss, aud (--audience, normally the FHIR base URL), exp and nbf
// with one minute of clock skew (go-oidc's own nbf leeway of five minutes is
// tightened), and an algorithm allow-list (RSA, RSA-PSS, ECDSA; never "none",
// never HMAC). go-oidc's RemoteKeySet fetches the JWKS on every unknown kid,
// so Verifier uses its own oidc.KeySet: an unknown kid fetches the keys again
// at most once every 30 seconds (concurrent misses share one fetch), and keys
// are fetched again after an hour so withdrawn keys stop verifying.
// NewLocalVerifier checks tokens against keys in the same process (the
// embedded server's), still through go-oidc.
//
// # Tokens of $ubrn-access, and more than one issuer
//
// ServiceRequest/$ubrn-access exchanges a UBRN, access code and birth date
// for a short-lived token limited to one referral and its patient
// (client_id ubrn-access, role patient, the referral's granular
// ServiceRequest scope, the patient's compartment for bookings, the
// directory). Without --issuer the development server signs it
// (devserver.Server.MintReferralToken, with ReferralGrant). With --issuer
// the patient has no account at that issuer, so Signpost signs it itself
// with a UBRNIssuer: its own issuer URL ({root}/auth/ubrn), its own RSA
// key (ubrn-signing-key.pem in DevDir(DataDir), created 0600 at first
// start, never the development server's key), an OpenID discovery document and a JWKS so that anyone
// can verify its tokens by standard means, and nothing else (no clients,
// grants or token endpoint). UBRNIssuer.Verify accepts only tokens limited
// exactly as $ubrn-access limits them: the scopes of one referral and no
// others, one patient (patient, sub and fhirUser agreeing), client
// ubrn-access, the patient role, no organisation or NHS number, a lifetime
// within its TokenTTL (default 15 minutes), RS256.
//
// Verifiers puts several issuers behind the API: each token goes to the
// verifier of the issuer its iss names (read unverified, only to choose),
// and to no other, so one issuer's keys never verify another's tokens and
// a token cannot escape the UBRN issuer's limits by naming another issuer.
// A token naming an issuer nobody trusts is refused before any key is
// tried.
//
// Every failure is a *fhir.Error of kind fhir.Unauthorized with one issue:
// code login/expired/security, details TOKEN_MISSING, TOKEN_EXPIRED or
// TOKEN_INVALID, and diagnostics saying which check failed without the
// library's internals (the cause is kept in Err for logs).
//
// # Wiring into the API
//
//	// At start (cmd/signpost): either an external issuer, with Signpost's
//	// own issuer for $ubrn-access tokens beside it...
//	ext, err := auth.NewVerifier(ctx, auth.VerifierConfig{Issuer: issuer, Audience: base + "/fhir"})
//	ubrn, err := auth.NewUBRNIssuer(auth.UBRNIssuerConfig{
//		Issuer: base + "/auth/ubrn", Audience: base + "/fhir", DataDir: dataDir})
//	v, err := auth.NewVerifiers(ext, ubrn) // by the token's iss
//	router.Any("/auth/ubrn/*path", gin.WrapH(ubrn.Handler())) // discovery and JWKS
//	referrals.Tokens = ubrn
//	endpoints := ext.SmartEndpoints()
//	// ...or, with no --issuer, the development server on the same listener:
//	dev, err := devserver.New(devserver.Config{
//		Issuer: base + "/auth", Audience: base + "/fhir", DataDir: dataDir, Patients: patients})
//	log.Print(dev.Banner()) // the warning and the demo credentials, to the console
//	v, err := dev.Verifier(auth.VerifierConfig{})
//	endpoints := dev.SmartEndpoints()
//	router.Any("/auth/*path", gin.WrapH(dev.Handler())) // the handler strips /auth itself
//
//	// Discovery: always JSON, whatever Accept says.
//	smart := auth.SmartConfiguration(endpoints)
//	router.GET("/fhir/.well-known/smart-configuration", func(c *gin.Context) {
//		c.Data(http.StatusOK, "application/json", smart) })
//
//	// Middleware: 401 with WWW-Authenticate and the OperationOutcome.
//	raw, err := auth.BearerToken(c.GetHeader("Authorization"))
//	if err == nil { p, err = v.Verify(ctx, raw) }
//	if err != nil { c.Header("WWW-Authenticate", auth.WWWAuthenticate("signpost", err)); ... }
//	ctx = auth.NewContext(ctx, p)
//
//	// Per interaction and resource type (each Bundle entry, each _include
//	// and _revinclude target, each chained or _has type, history, operations):
//	d := p.Decide("Appointment", auth.Search)
//	// !d.Allowed → 403; d.PatientOnly → patient compartment of p.Patient
//	// (resolve p.NHSNumber to a Patient first); otherwise OR over d.Grants;
//	// organisation and role rules (p.Organization, p.Role) apply on top.
package auth
