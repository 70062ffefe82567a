package auth

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Interaction is a set of FHIR REST interactions a scope can grant. The five
// SMART v2 permissions are single bits; a scope's permissions are their union.
type Interaction uint8

// The interactions of SMART v2's "cruds" permission string. The API maps every
// FHIR interaction onto one of them: vread and history-instance are Read,
// history-type and history-system are Search, patch is Update, and an
// operation needs what it does (e.g. Appointment/$book needs Create).
const (
	Create Interaction = 1 << iota // c
	Read                           // r
	Update                         // u
	Delete                         // d
	Search                         // s

	// AllInteractions is "cruds".
	AllInteractions = Create | Read | Update | Delete | Search
)

// permissionLetters is "cruds" in bit order.
const permissionLetters = "cruds"

var interactionNames = [...]string{"create", "read", "update", "delete", "search"}

// String returns the interaction's name ("read") for a single interaction and
// the SMART v2 permission string ("rs") for a set of several.
func (in Interaction) String() string {
	for i, name := range interactionNames {
		if in == 1<<i {
			return name
		}
	}
	var b strings.Builder
	for i := range permissionLetters {
		if in&(1<<i) != 0 {
			b.WriteByte(permissionLetters[i])
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// Level is a scope's context: whose data the scope reaches.
type Level string

// The three SMART scope contexts.
const (
	// LevelPatient reaches the data of the patient in context (the token's
	// patient claim): the Patient compartment.
	LevelPatient Level = "patient"
	// LevelUser reaches what the signed-in user may see, given their
	// organisation and role.
	LevelUser Level = "user"
	// LevelSystem is a backend service acting for its organisation (SMART
	// Backend Services).
	LevelSystem Level = "system"
)

// Scope is one parsed SMART resource scope, such as
// "patient/Appointment.rs" (v2), "user/Appointment.write" (v1) or
// "patient/Observation.rs?category=laboratory" (v2, granular).
type Scope struct {
	Level        Level
	ResourceType string      // a FHIR resource type, or "*" for every type
	Permissions  Interaction // what the scope grants; never empty
	// Query holds a granular scope's constraints, kept as data: the scope
	// reaches only resources that match this search. Nil when there are none.
	Query url.Values
	// Version is the SMART syntax the scope was written in: 1 for
	// read/write/*, 2 for cruds.
	Version int
}

// String returns the scope in SMART v2 syntax.
func (s Scope) String() string {
	out := string(s.Level) + "/" + s.ResourceType + "." + permissionString(s.Permissions)
	if len(s.Query) > 0 {
		out += "?" + s.Query.Encode()
	}
	return out
}

// permissionString writes a permission set in cruds order.
func permissionString(p Interaction) string {
	var b strings.Builder
	for i := range permissionLetters {
		if p&(1<<i) != 0 {
			b.WriteByte(permissionLetters[i])
		}
	}
	return b.String()
}

// ParseScope parses one SMART resource scope in v1 or v2 syntax. It returns an
// error for anything else, including scopes that are not about resources
// ("openid", "launch/patient", "fhirUser", "offline_access").
//
// v1 permissions are read (= rs), write (= cud) and * (= cruds); v2
// permissions are a non-empty subsequence of "cruds" in that order. Only v2
// scopes may carry a query (granular scopes). A bare "*.*" without a context
// is rejected: SMART requires patient/, user/ or system/.
func ParseScope(raw string) (Scope, error) {
	level, rest, ok := strings.Cut(raw, "/")
	if !ok {
		return Scope{}, fmt.Errorf("scope %q: no context (patient/, user/ or system/)", raw)
	}
	switch Level(level) {
	case LevelPatient, LevelUser, LevelSystem:
	default:
		return Scope{}, fmt.Errorf("scope %q: context %q is not patient, user or system", raw, level)
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok {
		return Scope{}, fmt.Errorf("scope %q: no permissions after the resource type", raw)
	}
	if typ != "*" && !isResourceTypeName(typ) {
		return Scope{}, fmt.Errorf("scope %q: %q is not a resource type name", raw, typ)
	}
	s := Scope{Level: Level(level), ResourceType: typ}
	switch perm {
	case "read":
		s.Permissions, s.Version = Read|Search, 1
	case "write":
		s.Permissions, s.Version = Create|Update|Delete, 1
	case "*":
		s.Permissions, s.Version = AllInteractions, 1
	default:
		p, err := parsePermissions(perm)
		if err != nil {
			return Scope{}, fmt.Errorf("scope %q: %w", raw, err)
		}
		s.Permissions, s.Version = p, 2
	}
	if hasQuery {
		if s.Version == 1 {
			return Scope{}, fmt.Errorf("scope %q: SMART v1 scopes cannot carry a query", raw)
		}
		q, err := url.ParseQuery(query)
		if err != nil || len(q) == 0 {
			return Scope{}, fmt.Errorf("scope %q: malformed query %q", raw, query)
		}
		s.Query = q
	}
	return s, nil
}

// parsePermissions parses a SMART v2 permission string: letters of "cruds",
// each at most once, in that order.
func parsePermissions(perm string) (Interaction, error) {
	if perm == "" {
		return 0, fmt.Errorf("empty permissions")
	}
	var p Interaction
	next := 0 // index in permissionLetters the next letter may start from
	for i := 0; i < len(perm); i++ {
		j := strings.IndexByte(permissionLetters[next:], perm[i])
		if j < 0 {
			return 0, fmt.Errorf("permissions %q are not a subsequence of \"cruds\"", perm)
		}
		next += j
		p |= 1 << next
		next++
	}
	return p, nil
}

// isResourceTypeName reports whether s looks like a FHIR resource type name:
// an upper-case ASCII letter followed by ASCII letters and digits.
func isResourceTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ParseScopes splits a space-separated scope string (the OAuth "scope"
// parameter or claim). Resource scopes are parsed into scopes; everything else
// (OpenID and launch scopes, and malformed resource scopes, which grant
// nothing) is returned unchanged in other.
func ParseScopes(s string) (scopes []Scope, other []string) {
	for _, f := range strings.Fields(s) {
		sc, err := ParseScope(f)
		if err != nil {
			other = append(other, f)
			continue
		}
		scopes = append(scopes, sc)
	}
	return scopes, other
}

// Covers reports whether s grants everything t grants: the same context, the
// same resource type (or s is for every type, except AuditEvent, which only
// a scope naming it covers, as grants decides), t's permissions within s's,
// and t at least as constrained as s (every constraint of s appears in t with
// the same values).
func (s Scope) Covers(t Scope) bool {
	if s.Level != t.Level || t.Permissions&^s.Permissions != 0 {
		return false
	}
	if s.ResourceType != "*" && s.ResourceType != t.ResourceType {
		return false
	}
	if t.ResourceType == auditEventType && s.ResourceType != auditEventType {
		return false // as in grants: a wildcard does not reach the audit trail
	}
	for k, vs := range s.Query {
		tv := t.Query[k]
		if len(tv) != len(vs) {
			return false
		}
		for i := range vs {
			if vs[i] != tv[i] {
				return false
			}
		}
	}
	return true
}

// auditEventType is the one resource type scopes treat specially: the audit
// trail is written only by the server.
const auditEventType = "AuditEvent"

// grants reports whether scope s, held by a caller with role, grants in on
// resourceType. It encodes the rules no scope can override: AuditEvents are
// never created, changed or deleted through the API, and reading or searching
// them needs a scope naming AuditEvent explicitly (wildcards do not reach the
// audit trail) at system level, or at user level with the auditor role; the
// operator role reads and searches OperatorTypes only.
func (s Scope) grants(role Role, resourceType string, in Interaction) bool {
	if in == 0 || in&^s.Permissions != 0 {
		return false
	}
	if role == RoleOperator && (in&^(Read|Search) != 0 || !slices.Contains(OperatorTypes, resourceType)) {
		return false
	}
	if resourceType == auditEventType {
		if in&^(Read|Search) != 0 || s.ResourceType != auditEventType {
			return false
		}
		return s.Level == LevelSystem || s.Level == LevelUser && role == RoleAuditor
	}
	return s.ResourceType == "*" || s.ResourceType == resourceType
}
