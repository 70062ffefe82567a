package access

import (
	"slices"
	"strings"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

// checkOperationRoles enforces operation.Operation.Roles: an operation
// that names roles is for callers with one of them and for backend
// services (no role, a system-level scope), never for a token with a
// patient in context.
func checkOperationRoles(p *auth.Principal, op *operation.Operation) error {
	if len(op.Roles) == 0 {
		return nil
	}
	who := strings.Join(op.Roles, " or ") + " role"
	switch {
	case p.HasPatientContext() || p.Role == auth.RolePatient:
		return forbidden("$%s is for the %s or a backend service, not a patient's token", op.Name, who)
	case p.Role == "":
		if !slices.ContainsFunc(p.Scopes, func(s auth.Scope) bool { return s.Level == auth.LevelSystem }) {
			return forbidden("$%s is for the %s or a backend service (system-level scopes); the access token has neither", op.Name, who)
		}
	case !slices.Contains(op.Roles, string(p.Role)):
		return forbidden("$%s is for the %s or a backend service, not the %s role", op.Name, who, p.Role)
	}
	return nil
}
