package auth

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/go-playground/validator/v10"
)

// ClaimNames says which access-token claims carry what Signpost needs, so
// that tokens from NHS CIS2, NHS login, Keycloak or the embedded development
// server can all be read. Each name is a claim name or a dotted path into
// nested objects ("realm_access.roles"); a path crossing an array visits every
// element ("nhsid_nrbac_roles.org_code"). Where a claim holds several values,
// the first usable one is taken.
//
// The zero value is not usable; start from DefaultClaimNames.
type ClaimNames struct {
	Scope        string `json:"scope" validate:"required,claimpath"`         // space-separated string or array
	ClientID     string `json:"client_id" validate:"required,claimpath"`     // falls back to azp when absent
	Patient      string `json:"patient" validate:"omitempty,claimpath"`      // FHIR id of the patient in context
	NHSNumber    string `json:"nhs_number" validate:"omitempty,claimpath"`   // NHS login
	FHIRUser     string `json:"fhir_user" validate:"omitempty,claimpath"`    // the user's FHIR resource URL
	Organization string `json:"organization" validate:"omitempty,claimpath"` // ODS code
	Role         string `json:"role" validate:"omitempty,claimpath"`         // role value, see RoleMap
	// RoleMap maps the issuer's role values (e.g. a CIS2 role code or a
	// Keycloak realm role) onto Signpost roles. Values not in the map are
	// taken as Signpost role names if they are one; otherwise ignored.
	RoleMap map[string]Role `json:"role_map" validate:"dive,keys,required,endkeys,oneof=referrer provider call-centre auditor patient commissioner operator"`
}

// DefaultClaimNames returns the claims the embedded development server writes
// and SMART names: scope, client_id, patient, nhs_number, fhirUser, org, role.
func DefaultClaimNames() ClaimNames {
	return ClaimNames{
		Scope:        "scope",
		ClientID:     "client_id",
		Patient:      "patient",
		NHSNumber:    "nhs_number",
		FHIRUser:     "fhirUser",
		Organization: "org",
		Role:         "role",
	}
}

var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	// claimpath: dot-separated segments of printable ASCII without spaces.
	_ = v.RegisterValidation("claimpath", func(fl validator.FieldLevel) bool {
		s := fl.Field().String()
		for _, seg := range strings.Split(s, ".") {
			if seg == "" {
				return false
			}
			for i := 0; i < len(seg); i++ {
				if seg[i] <= ' ' || seg[i] > '~' {
					return false
				}
			}
		}
		return true
	})
	return v
}

// Validate reports the first problem with the claim names, naming the field.
func (c ClaimNames) Validate() error {
	if err := validate.Struct(c); err != nil {
		return fmt.Errorf("auth: claim names: %w", err)
	}
	return nil
}

// claimValues returns the string values at path in claims: strings and
// numbers (written without exponent) are values, arrays are flattened and
// nested objects are entered by the path's segments.
func claimValues(claims map[string]any, path string) []string {
	if path == "" {
		return nil
	}
	cur := []any{claims}
	for _, seg := range strings.Split(path, ".") {
		var next []any
		for _, c := range flatten(cur) {
			if m, ok := c.(map[string]any); ok {
				if v, ok := m[seg]; ok {
					next = append(next, v)
				}
			}
		}
		cur = next
	}
	var out []string
	for _, v := range flatten(cur) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case json.Number:
			out = append(out, v.String())
		}
	}
	return out
}

// flatten expands arrays (one level per call, recursively) into their
// elements.
func flatten(vs []any) []any {
	var out []any
	for _, v := range vs {
		if a, ok := v.([]any); ok {
			out = append(out, flatten(a)...)
			continue
		}
		out = append(out, v)
	}
	return out
}

func firstClaim(claims map[string]any, path string) string {
	if vs := claimValues(claims, path); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// role maps the role claim's values onto a Signpost role: the first value
// RoleMap maps, else the first value that is a Signpost role name.
func (c ClaimNames) role(claims map[string]any) Role {
	vs := claimValues(claims, c.Role)
	for _, v := range vs {
		if r, ok := c.RoleMap[v]; ok {
			return r
		}
	}
	for _, v := range vs {
		for _, r := range Roles {
			if v == string(r) {
				return r
			}
		}
	}
	return ""
}

// principal fills a Principal's claim-derived fields from a verified token's
// claims (decoded with json.Number for numbers).
func (c ClaimNames) principal(claims map[string]any) *Principal {
	p := &Principal{
		Issuer:       firstClaim(claims, "iss"),
		Subject:      firstClaim(claims, "sub"),
		TokenID:      firstClaim(claims, "jti"),
		ClientID:     firstClaim(claims, c.ClientID),
		Patient:      firstClaim(claims, c.Patient),
		NHSNumber:    firstClaim(claims, c.NHSNumber),
		FHIRUser:     firstClaim(claims, c.FHIRUser),
		Organization: firstClaim(claims, c.Organization),
		Role:         c.role(claims),
	}
	if p.ClientID == "" {
		p.ClientID = firstClaim(claims, "azp")
	}
	raw := strings.Join(claimValues(claims, c.Scope), " ")
	p.RawScopes = strings.Fields(raw)
	p.Scopes, _ = ParseScopes(raw)
	return p
}
