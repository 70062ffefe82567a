package devserver

import (
	"fmt"
	"slices"
	"strings"

	"github.com/signpost-fhir/signpost/auth"
)

// StaffUser is one of the development server's demo staff: a person who
// signs in through a public client's authorization-code flow (the staff
// sign-in page), with a role, an organisation and the user/ scopes that
// role may have. Their tokens carry role, org and fhirUser, as
// auth.DefaultClaimNames reads them.
type StaffUser struct {
	ID           string    // the user's id: the token's sub is Practitioner/<ID>
	Name         string    // shown on the sign-in page
	Job          string    // what they do, shown on the sign-in page
	Role         auth.Role // the token's role claim
	Organization string    // the token's org claim: an ODS code
	// Scopes are the most the user may be granted: a requested user/
	// scope is narrowed to what these allow (see narrowScopes).
	Scopes []string
}

// The demo staff users' ids.
const (
	StaffGP           = "demo-gp"
	StaffProvider     = "demo-provider"
	StaffCallCentre   = "demo-call-centre"
	StaffCommissioner = "demo-commissioner"
)

// directoryScopes are what the commissioner may read: the directory; the
// reports need the commissioner role, not a scope on referrals.
var directoryScopes = []string{"user/HealthcareService.rs", "user/Organization.rs", "user/Location.rs"}

// DemoStaff returns the demo staff users: a GP at the demo practice, a
// referral manager at the demo trust, a booking call-centre agent and a
// commissioner at the demo county's north ICB. Their organisations are the
// demo clients' (DemoGPPractice…), so the demo county's data answers them.
func DemoStaff() []StaffUser {
	return []StaffUser{
		{ID: StaffGP, Name: "Dr Amara Okafor", Job: "GP, demo GP practice (referrer)", Role: auth.RoleReferrer,
			Organization: DemoGPPractice, Scopes: []string{"user/*.cruds"}},
		{ID: StaffProvider, Name: "Sam Whitfield", Job: "referral manager, demo hospital trust (provider)", Role: auth.RoleProvider,
			Organization: DemoProvider, Scopes: []string{"user/*.cruds"}},
		{ID: StaffCallCentre, Name: "Priya Shah", Job: "booking call-centre agent (call-centre)", Role: auth.RoleCallCentre,
			Organization: DemoCallCentre, Scopes: []string{"user/*.cruds"}},
		{ID: StaffCommissioner, Name: "Tom Eriksen", Job: "commissioning manager, demo north ICB (commissioner)", Role: auth.RoleCommissioner,
			Organization: DemoCommissioner, Scopes: slices.Clone(directoryScopes)},
	}
}

// staffRequest reports whether an authorisation request asking for scopes
// is a staff sign-in: it asks for a user/ scope and no patient in context
// (launch/patient). Other requests go to the patient picker.
func staffRequest(scopes []string) bool {
	if slices.Contains(scopes, "launch/patient") {
		return false
	}
	return slices.ContainsFunc(scopes, func(raw string) bool {
		s, err := auth.ParseScope(raw)
		return err == nil && s.Level == auth.LevelUser
	})
}

// narrowScopes returns what user is granted of the requested scopes (those
// the client may have): each user/ scope narrowed to what the user's
// scopes allow (user/*.cruds asked by the commissioner becomes their
// directory scopes; user/Patient.rs asked by the commissioner is dropped);
// patient/ and system/ scopes and launch/patient are dropped (a member of
// staff has no patient in context and is no backend service); openid and
// fhirUser are kept. ok is false when no resource scope is left.
func narrowScopes(user StaffUser, requested []string) (granted []string, ok bool) {
	add := func(s string) {
		if !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	for _, raw := range requested {
		r, err := auth.ParseScope(raw)
		if err != nil {
			if raw == "openid" || raw == "fhirUser" {
				add(raw)
			}
			continue
		}
		if r.Level != auth.LevelUser {
			continue
		}
		for _, allowedRaw := range user.Scopes {
			a, err := auth.ParseScope(allowedRaw)
			if err != nil {
				continue
			}
			if a.Covers(r) {
				add(raw)
				ok = true
				break
			}
			if s, meet := intersect(r, a); meet {
				add(s.String())
				ok = true
			}
		}
	}
	return granted, ok
}

// intersect is the scope granting what both a and b grant, if any: the
// same context, the narrower resource type, the common permissions and the
// constraints of whichever has them (two different sets of constraints do
// not meet). A wildcard does not reach AuditEvent (as Scope.Covers).
func intersect(a, b auth.Scope) (auth.Scope, bool) {
	if a.Level != b.Level {
		return auth.Scope{}, false
	}
	out := auth.Scope{Level: a.Level, Permissions: a.Permissions & b.Permissions, Version: 2}
	switch {
	case a.ResourceType == b.ResourceType:
		out.ResourceType = a.ResourceType
	case a.ResourceType == "*" && b.ResourceType != "AuditEvent":
		out.ResourceType = b.ResourceType
	case b.ResourceType == "*" && a.ResourceType != "AuditEvent":
		out.ResourceType = a.ResourceType
	default:
		return auth.Scope{}, false
	}
	switch {
	case a.Query == nil:
		out.Query = b.Query
	case b.Query == nil || a.Query.Encode() == b.Query.Encode():
		out.Query = a.Query
	default:
		return auth.Scope{}, false
	}
	return out, out.Permissions != 0
}

// staffGrant is the grant of a token a client obtains for a member of
// staff: subject and fhirUser their Practitioner, their role and
// organisation, the narrowed scopes; the audience names the client too, as
// an ID token issued alongside must.
func staffGrant(audience, clientID string, u StaffUser, scopes []string) grant {
	return grant{auth.TokenGrant{
		Subject:  "Practitioner/" + u.ID,
		ClientID: clientID,
		Audience: []string{audience, clientID},
		Scopes:   scopes,
		FHIRUser: strings.TrimSuffix(audience, "/") + "/Practitioner/" + u.ID,
		Org:      u.Organization,
		Role:     u.Role,
	}}
}

// completeStaffRequest records the member of staff the user picked and
// what they are granted.
func (s *devStorage) completeStaffRequest(id string, u StaffUser, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok || s.now().Sub(r.created) > authRequestTTL {
		return fmt.Errorf("auth request: %w", errNotFound)
	}
	r.done, r.authTime = true, s.now()
	r.grant = staffGrant(s.audience, r.req.ClientID, u, scopes)
	return nil
}

// loginPath is the sign-in page for the authorisation request id: the
// staff sign-in for a staff request (staffRequest), else the patient
// picker.
func (s *devStorage) loginPath(id string) string {
	s.mu.Lock()
	r, ok := s.requests[id]
	s.mu.Unlock()
	if ok && staffRequest(r.req.Scopes) {
		return "/staff"
	}
	return "/login"
}
