package standin

import (
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

var digits = regexp.MustCompile(`^[0-9]{1,20}$`)

// checkRequest applies GP Connect's rules for every request of an
// interaction: the Spine headers and the JWT. A header missing or wrong,
// or a JWT that is malformed, expired or carries wrong values, is 400
// BAD_REQUEST; a JWT claim resource without what GP Connect requires of
// it is 422 INVALID_RESOURCE. It records the decoded claims in rec.
func (s *Server) checkRequest(r *http.Request, interaction string, rec *Request) *reply {
	one := func(name string) (string, *reply) {
		v := r.Header.Values(name)
		if len(v) != 1 || strings.TrimSpace(v[0]) == "" {
			return "", refuse(stu3.CodeBadRequest, "the %s header must be given once", name)
		}
		return v[0], nil
	}
	trace, res := one("Ssp-TraceID")
	if res != nil {
		return res
	}
	if _, err := uuid.Parse(trace); err != nil {
		return refuse(stu3.CodeBadRequest, "Ssp-TraceID %q is not a UUID", trace)
	}
	from, res := one("Ssp-From")
	if res != nil {
		return res
	}
	if !digits.MatchString(from) {
		return refuse(stu3.CodeBadRequest, "Ssp-From %q is not an ASID", from)
	}
	to, res := one("Ssp-To")
	if res != nil {
		return res
	}
	if to != s.asid {
		return refuse(stu3.CodeBadRequest, "Ssp-To %q is not this practice's ASID", to)
	}
	id, res := one("Ssp-InteractionID")
	if res != nil {
		return res
	}
	if id != interaction {
		return refuse(stu3.CodeBadRequest, "Ssp-InteractionID %q does not match the request (%s)", id, interaction)
	}
	auth, res := one("Authorization")
	if res != nil {
		return res
	}
	token, found := strings.CutPrefix(auth, "Bearer ")
	if !found {
		return refuse(stu3.CodeBadRequest, "Authorization must be a Bearer token")
	}
	c, raw, err := stu3.DecodeUnsigned(token)
	if err != nil {
		return refuse(stu3.CodeBadRequest, "JWT: %v", err)
	}
	rec.Claims = c
	for _, name := range []string{"iss", "sub", "aud", "exp", "iat", "reason_for_request", "requested_scope",
		"requesting_device", "requesting_organization", "requesting_practitioner"} {
		if v, ok := raw[name]; !ok || string(v) == "null" || string(v) == `""` {
			return refuse(stu3.CodeBadRequest, "JWT: the %s claim is missing", name)
		}
	}
	now := s.now().Unix()
	switch {
	case c.Aud != stu3.Audience:
		return refuse(stu3.CodeBadRequest, "JWT: aud %q, want %s", c.Aud, stu3.Audience)
	case c.Exp <= c.Iat:
		return refuse(stu3.CodeBadRequest, "JWT: exp %d is not after iat %d", c.Exp, c.Iat)
	case c.Exp > c.Iat+stu3.MaxTokenLife:
		return refuse(stu3.CodeBadRequest, "JWT: exp is more than %d seconds after iat", stu3.MaxTokenLife)
	case c.Exp <= now:
		return refuse(stu3.CodeBadRequest, "JWT: expired at %s", time.Unix(c.Exp, 0).UTC().Format(time.RFC3339))
	case c.Iat > now+60:
		return refuse(stu3.CodeBadRequest, "JWT: issued in the future (%s)", time.Unix(c.Iat, 0).UTC().Format(time.RFC3339))
	case c.ReasonForRequest != stu3.ReasonDirectCare:
		return refuse(stu3.CodeBadRequest, "JWT: reason_for_request %q, want %s", c.ReasonForRequest, stu3.ReasonDirectCare)
	case c.RequestedScope != stu3.ScopeOf(interaction):
		return refuse(stu3.CodeBadRequest, "JWT: requested_scope %q, want %s for this interaction", c.RequestedScope, stu3.ScopeOf(interaction))
	}
	if d := c.RequestingDevice; d.ResourceType != "Device" || !hasIdentifier(d.Identifier, "") || d.Model == "" || d.Version == "" {
		return refuse(stu3.CodeInvalidResource, "JWT: requesting_device must be a Device with an identifier (system and value), a model and a version")
	}
	if o := c.RequestingOrganization; o.ResourceType != "Organization" || !hasIdentifier(o.Identifier, stu3.ODSOrganizationSystem) || o.Name == "" {
		return refuse(stu3.CodeInvalidResource, "JWT: requesting_organization must be an Organization with an ODS code and a name")
	}
	p := c.RequestingPractitioner
	if p.ResourceType != "Practitioner" || p.ID == "" || !hasIdentifier(p.Identifier, stu3.SDSUserSystem) ||
		!hasIdentifier(p.Identifier, stu3.SDSRoleProfileSystem) || len(p.Name) == 0 || p.Name[0].Family == "" {
		return refuse(stu3.CodeInvalidResource, "JWT: requesting_practitioner must be a Practitioner with an id, an SDS user id, an SDS role profile id and a family name")
	}
	if c.Sub != p.ID {
		return refuse(stu3.CodeBadRequest, "JWT: sub %q is not requesting_practitioner.id %q", c.Sub, p.ID)
	}
	return nil
}

// hasIdentifier reports whether ids has one with a value (of system, if
// system is not "").
func hasIdentifier(ids []stu3.Identifier, system string) bool {
	for _, id := range ids {
		if id.Value != "" && id.System != "" && (system == "" || id.System == system) {
			return true
		}
	}
	return false
}

// validNHSNumber reports whether n is ten digits with a valid modulus 11
// check digit.
func validNHSNumber(n string) bool {
	if len(n) != 10 {
		return false
	}
	sum := 0
	for i := 0; i < 10; i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
		if i < 9 {
			sum += int(n[i]-'0') * (10 - i)
		}
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	return check != 10 && check == int(n[9]-'0')
}
