package auth

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func principal(scopes string, role Role, patient string) *Principal {
	p := &Principal{Role: role, Patient: patient, RawScopes: strings.Fields(scopes)}
	p.Scopes, _ = ParseScopes(scopes)
	return p
}

func TestDecide(t *testing.T) {
	lab := url.Values{"category": {"laboratory"}}
	tests := []struct {
		name string
		p    *Principal
		typ  string
		in   Interaction
		want Decision
	}{
		{name: "patient scope in patient context", p: principal("patient/Appointment.rs", RolePatient, "p1"), typ: "Appointment", in: Search,
			want: Decision{Allowed: true, PatientOnly: true, Grants: []Grant{{Level: LevelPatient}}}},
		{name: "patient scope without a patient grants nothing", p: principal("patient/Appointment.rs", "", ""), typ: "Appointment", in: Read},
		{name: "v1 read does not write", p: principal("patient/*.read", RolePatient, "p1"), typ: "Appointment", in: Update},
		{name: "v1 write creates", p: principal("user/Appointment.write", RoleCallCentre, ""), typ: "Appointment", in: Create,
			want: Decision{Allowed: true, Unrestricted: true, Grants: []Grant{{Level: LevelUser}}}},
		{name: "scope for another type", p: principal("system/Slot.rs", RoleProvider, ""), typ: "Appointment", in: Read},
		{name: "wildcard type", p: principal("system/*.cruds", RoleReferrer, ""), typ: "ServiceRequest", in: Delete,
			want: Decision{Allowed: true, Unrestricted: true, Grants: []Grant{{Level: LevelSystem}}}},
		{name: "patient role confined through user scopes", p: principal("user/*.rs", RolePatient, "p1"), typ: "Appointment", in: Read,
			want: Decision{Allowed: true, PatientOnly: true, Grants: []Grant{{Level: LevelPatient}}}},
		{name: "granular only", p: principal("patient/Observation.rs?category=laboratory", RolePatient, "p1"), typ: "Observation", in: Search,
			want: Decision{Allowed: true, PatientOnly: true, Grants: []Grant{{Level: LevelPatient, Query: lab}}}},
		{name: "unconstrained subsumes granular at the same level", p: principal("patient/Observation.rs?category=laboratory patient/Observation.rs", RolePatient, "p1"), typ: "Observation", in: Search,
			want: Decision{Allowed: true, PatientOnly: true, Grants: []Grant{{Level: LevelPatient}}}},
		{name: "user granular and patient unconstrained both kept", p: principal("patient/Observation.rs user/Observation.rs?category=laboratory", RoleReferrer, "p1"), typ: "Observation", in: Read,
			want: Decision{Allowed: true, Grants: []Grant{{Level: LevelUser, Query: lab}, {Level: LevelPatient}}}},
		{name: "user unconstrained subsumes patient", p: principal("patient/*.rs user/*.rs", RoleReferrer, "p1"), typ: "Observation", in: Read,
			want: Decision{Allowed: true, Unrestricted: true, Grants: []Grant{{Level: LevelUser}}}},
		// AuditEvent.
		{name: "AuditEvent: system read", p: principal("system/AuditEvent.rs", "", ""), typ: "AuditEvent", in: Search,
			want: Decision{Allowed: true, Unrestricted: true, Grants: []Grant{{Level: LevelSystem}}}},
		{name: "AuditEvent: user read as auditor", p: principal("user/AuditEvent.rs", RoleAuditor, ""), typ: "AuditEvent", in: Read,
			want: Decision{Allowed: true, Unrestricted: true, Grants: []Grant{{Level: LevelUser}}}},
		{name: "AuditEvent: user read without the auditor role", p: principal("user/AuditEvent.rs", RoleProvider, ""), typ: "AuditEvent", in: Read},
		{name: "AuditEvent: wildcards do not reach it", p: principal("system/*.cruds user/*.*", RoleAuditor, ""), typ: "AuditEvent", in: Search},
		{name: "AuditEvent: never created", p: principal("system/AuditEvent.cruds", RoleAuditor, ""), typ: "AuditEvent", in: Create},
		{name: "AuditEvent: never updated", p: principal("system/AuditEvent.cruds", RoleAuditor, ""), typ: "AuditEvent", in: Update},
		{name: "AuditEvent: never deleted", p: principal("user/AuditEvent.*", RoleAuditor, ""), typ: "AuditEvent", in: Delete},
		{name: "AuditEvent: patient scopes never", p: principal("patient/AuditEvent.rs", RolePatient, "p1"), typ: "AuditEvent", in: Read},
		// The operator role reads the directory and nothing clinical,
		// whatever its scopes.
		{name: "operator: reads the directory", p: principal("user/HealthcareService.rs", RoleOperator, ""), typ: "HealthcareService", in: Search,
			want: Decision{Allowed: true, Unrestricted: true, Grants: []Grant{{Level: LevelUser}}}},
		{name: "operator: never writes the directory", p: principal("system/*.cruds", RoleOperator, ""), typ: "HealthcareService", in: Update},
		{name: "operator: no Patient through a wildcard", p: principal("system/*.cruds", RoleOperator, ""), typ: "Patient", in: Read},
		{name: "operator: no Appointment named by its scope", p: principal("user/Appointment.rs", RoleOperator, ""), typ: "Appointment", in: Search},
		{name: "operator: no ServiceRequest", p: principal("user/*.rs", RoleOperator, ""), typ: "ServiceRequest", in: Search},
		{name: "operator: no audit trail", p: principal("system/AuditEvent.rs", RoleOperator, ""), typ: "AuditEvent", in: Search},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.Decide(tt.typ, tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide(%s, %v) = %+v, want %+v", tt.typ, tt.in, got, tt.want)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	p := principal("patient/Appointment.rs user/Slot.cruds system/AuditEvent.rs patient/Observation.rs?category=laboratory", RoleCallCentre, "p1")
	tests := []struct {
		level Level
		typ   string
		in    Interaction
		want  bool
	}{
		{LevelPatient, "Appointment", Read, true},
		{LevelPatient, "Appointment", Read | Search, true},
		{LevelPatient, "Appointment", Create, false},
		{LevelUser, "Appointment", Read, false},
		{LevelUser, "Slot", Delete, true},
		{LevelSystem, "AuditEvent", Search, true},
		{LevelSystem, "AuditEvent", Create, false},
		{LevelPatient, "Observation", Search, true}, // granular: constrained, see Decide
		{LevelPatient, "Observation", 0, false},
	}
	for _, tt := range tests {
		if got := p.Allows(tt.level, tt.typ, tt.in); got != tt.want {
			t.Errorf("Allows(%s, %s, %v) = %v, want %v", tt.level, tt.typ, tt.in, got, tt.want)
		}
	}
	if !p.HasPatientContext() || (&Principal{NHSNumber: "9434765919"}).HasPatientContext() == false || (&Principal{}).HasPatientContext() {
		t.Errorf("HasPatientContext wrong")
	}
}

func decodeClaims(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestClaimMapping(t *testing.T) {
	keycloak := ClaimNames{
		Scope: "scope", ClientID: "client_id", Patient: "patient", Organization: "org", Role: "realm_access.roles",
		RoleMap: map[string]Role{"signpost-booker": RoleCallCentre},
	}
	cis2 := ClaimNames{
		Scope: "scp", ClientID: "client_id", Organization: "nhsid_nrbac_roles.org_code", Role: "nhsid_nrbac_roles.role_code",
		FHIRUser: "fhirUser", RoleMap: map[string]Role{"S8000:G8000:R8000": RoleReferrer},
	}
	tests := []struct {
		name   string
		names  ClaimNames
		claims string
		want   Principal
	}{
		{"defaults", DefaultClaimNames(),
			`{"iss":"i","sub":"s","client_id":"c","jti":"j","scope":"openid patient/*.rs","patient":"p1","fhirUser":"F","org":"A99001","role":"patient"}`,
			Principal{Issuer: "i", Subject: "s", ClientID: "c", TokenID: "j", RawScopes: []string{"openid", "patient/*.rs"}, Patient: "p1", FHIRUser: "F", Organization: "A99001", Role: RolePatient}},
		{"NHS login number as a number, azp fallback, unknown role", DefaultClaimNames(),
			`{"sub":"s","azp":"app","nhs_number":9434765919,"scope":["patient/Appointment.rs"],"role":"superuser"}`,
			Principal{Subject: "s", ClientID: "app", NHSNumber: "9434765919", RawScopes: []string{"patient/Appointment.rs"}}},
		{"Keycloak realm roles", keycloak,
			`{"sub":"s","client_id":"c","scope":"user/*.rs","realm_access":{"roles":["offline_access","signpost-booker"]}}`,
			Principal{Subject: "s", ClientID: "c", RawScopes: []string{"user/*.rs"}, Role: RoleCallCentre}},
		{"CIS2 RBAC roles", cis2,
			`{"sub":"s","client_id":"c","scp":"user/ServiceRequest.cruds","nhsid_nrbac_roles":[{"org_code":"A81001","role_code":"S8000:G8000:R8000"},{"org_code":"B1","role_code":"x"}]}`,
			Principal{Subject: "s", ClientID: "c", RawScopes: []string{"user/ServiceRequest.cruds"}, Organization: "A81001", Role: RoleReferrer}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.names.Validate(); err != nil {
				t.Fatal(err)
			}
			got := tt.names.principal(decodeClaims(t, tt.claims))
			got.Scopes = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("principal = %+v\nwant        %+v", *got, tt.want)
			}
		})
	}
}

func TestClaimNamesValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*ClaimNames)
		wantErr string
	}{
		{"defaults", func(*ClaimNames) {}, ""},
		{"no scope claim", func(c *ClaimNames) { c.Scope = "" }, "Scope"},
		{"empty path segment", func(c *ClaimNames) { c.Role = "realm_access..roles" }, "Role"},
		{"space in claim", func(c *ClaimNames) { c.Organization = "org code" }, "Organization"},
		{"role map to unknown role", func(c *ClaimNames) { c.RoleMap = map[string]Role{"x": "admin"} }, "RoleMap"},
	}
	for _, tt := range tests {
		c := DefaultClaimNames()
		tt.edit(&c)
		err := c.Validate()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error = %v, want it to mention %s", tt.name, err, tt.wantErr)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	p := principal("openid fhirUser launch/patient patient/Appointment.rs patient/Slot.rs patient/*.read patient/Observation.rs?category=laboratory", RolePatient, "p1")
	b.ReportAllocs()
	for b.Loop() {
		p.Decide("Appointment", Search)
	}
}
