package auth

import (
	"context"
	"net/url"
	"slices"
	"time"
)

// Role is what a professional caller does; the API uses it, with the
// organisation, to decide which referrals, schedules and audit records the
// caller reaches.
type Role string

// The roles Signpost knows. A token whose role claim maps to none of them has
// no role.
const (
	RoleReferrer   Role = "referrer"    // a GP system or clinician sending referrals
	RoleProvider   Role = "provider"    // a hospital or community provider receiving them
	RoleCallCentre Role = "call-centre" // booking staff acting on a patient's behalf
	RoleAuditor    Role = "auditor"     // may read the audit trail with user/AuditEvent.rs, and run the reports
	RolePatient    Role = "patient"     // the patient themselves
	// RoleCommissioner is a commissioner (an integrated care board): it
	// runs the reports ($referral-trends, $booking-outcomes…) on the
	// services it commissions, the Organization whose ODS code is its org.
	RoleCommissioner Role = "commissioner"
	// RoleOperator runs the deployment: it calls the system operations of
	// the adapters' operator view ($adapters, $adapter-dead-letters,
	// $adapter-replay, $adapter-discard). It reaches no clinical data:
	// whatever its scopes say, it may only read and search the directory
	// (OperatorTypes).
	RoleOperator Role = "operator"
)

// Roles lists every role Signpost knows.
var Roles = []Role{RoleReferrer, RoleProvider, RoleCallCentre, RoleAuditor, RolePatient, RoleCommissioner, RoleOperator}

// OperatorTypes are the resource types the operator role may read and
// search (with a scope that grants it): the directory, which names the
// services an adapter instance owns. No scope gives the operator role
// anything else, nor any write.
var OperatorTypes = []string{"Organization", "HealthcareService", "Location"}

// UnresolvedPatient is the Patient of a patient-context principal whose
// NHS number names no Patient: not a valid id, so it matches nothing.
const UnresolvedPatient = "#unresolved"

// Principal is the authenticated caller of one request, built from a verified
// access token.
type Principal struct {
	Issuer   string
	Subject  string // sub: the user or, for backend services, the client
	ClientID string // the OAuth client that obtained the token
	TokenID  string // jti, if the token has one

	// Scopes are the token's resource scopes; RawScopes is the whole scope
	// claim, including OpenID and launch scopes.
	Scopes    []Scope
	RawScopes []string

	// Patient is the FHIR id of the patient in context (SMART "patient"
	// claim); NHSNumber is an NHS login "nhs_number". Either puts the token
	// in patient context; the API resolves an NHS number to the Patient.
	Patient   string
	NHSNumber string

	FHIRUser     string // fhirUser: the user's own resource, e.g. ".../Practitioner/123"
	Organization string // the user's or client's organisation, an ODS code
	Role         Role   // "" when the token carries no role Signpost knows

	Expiry time.Time
}

// HasPatientContext reports whether the token names a patient, by FHIR id or
// NHS number.
func (p *Principal) HasPatientContext() bool {
	return p.Patient != "" || p.NHSNumber != ""
}

// Allows reports whether one of the principal's scopes with the given context
// grants interaction on resourceType, honouring the AuditEvent rules (see
// Decide). A granular scope counts: Constraints and Decide say what it is
// constrained to. in may be a set, in which case every interaction in it must
// be granted by one scope.
func (p *Principal) Allows(level Level, resourceType string, in Interaction) bool {
	for _, s := range p.Scopes {
		if s.Level == level && s.grants(p.Role, resourceType, in) {
			return true
		}
	}
	return false
}

// Grant is one way a principal may perform an interaction: through a scope of
// a context, possibly constrained by a granular query.
type Grant struct {
	Level Level
	Query url.Values // nil: unconstrained
}

// Decision is what the API needs to enforce one interaction on one resource
// type.
type Decision struct {
	// Allowed is false when no scope grants the interaction: answer 403.
	Allowed bool
	// Unrestricted is true when a user- or system-level scope without a query
	// grants it: organisation and role rules still apply, but no compartment
	// or query restriction does.
	Unrestricted bool
	// PatientOnly is true when only patient-level grants apply: the request
	// must be confined to the Patient compartment of the patient in context.
	PatientOnly bool
	// Grants are the ways the interaction is granted, broadest first, with
	// grants that another grant makes redundant left out. A resource is
	// reachable if it satisfies at least one: for a patient-level grant, it is
	// in the patient's compartment; for a grant with a query, it matches it.
	Grants []Grant
}

// Decide works out how the principal may perform in on resourceType.
//
// Rules beyond the scopes themselves:
//   - patient-level scopes grant nothing without a patient in context;
//   - a principal with the patient role is confined to their compartment even
//     through user-level scopes;
//   - AuditEvent: no scope grants create, update or delete; read and search
//     need system/AuditEvent.rs, or user/AuditEvent.rs with the auditor role.
func (p *Principal) Decide(resourceType string, in Interaction) Decision {
	var grants []Grant
	for _, s := range p.Scopes {
		if !s.grants(p.Role, resourceType, in) {
			continue
		}
		level := s.Level
		if level == LevelUser && p.Role == RolePatient {
			level = LevelPatient
		}
		if level == LevelPatient && !p.HasPatientContext() {
			continue
		}
		grants = append(grants, Grant{Level: level, Query: s.Query})
	}
	grants = reduceGrants(grants)
	d := Decision{Allowed: len(grants) > 0, Grants: grants, PatientOnly: len(grants) > 0}
	for _, g := range grants {
		if g.Level != LevelPatient {
			d.PatientOnly = false
			if g.Query == nil {
				d.Unrestricted = true
			}
		}
	}
	return d
}

// breadth orders contexts by reach: user and system reach beyond one
// patient's compartment.
func breadth(l Level) int {
	if l == LevelPatient {
		return 0
	}
	return 1
}

// reduceGrants sorts grants broadest first and drops those another grant
// subsumes: a grant subsumes those of the same or lesser breadth that are as
// or more constrained (it is unconstrained, or has the same query).
func reduceGrants(gs []Grant) []Grant {
	slices.SortStableFunc(gs, func(a, b Grant) int {
		if d := breadth(b.Level) - breadth(a.Level); d != 0 {
			return d
		}
		return boolInt(a.Query != nil) - boolInt(b.Query != nil)
	})
	var out []Grant
	for _, g := range gs {
		redundant := slices.ContainsFunc(out, func(o Grant) bool {
			if breadth(o.Level) < breadth(g.Level) {
				return false
			}
			return o.Query == nil || sameQuery(o.Query, g.Query)
		})
		if !redundant {
			out = append(out, g)
		}
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sameQuery(a, b url.Values) bool {
	return a.Encode() == b.Encode()
}

type principalKey struct{}

// NewContext returns a copy of ctx carrying p; the API's authentication
// middleware stores the request's principal this way.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal NewContext stored in ctx, if any.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
