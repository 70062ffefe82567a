package devserver

import (
	"slices"
	"testing"
)

// TestNarrowScopes: what a member of staff is granted of the requested
// scopes: user/ scopes narrowed to the user's, everything else dropped but
// openid and fhirUser.
func TestNarrowScopes(t *testing.T) {
	staff := map[string]StaffUser{}
	for _, u := range DemoStaff() {
		staff[u.ID] = u
	}
	tests := []struct {
		user      string
		requested []string
		want      []string
		ok        bool
	}{
		{StaffCallCentre, []string{"openid", "fhirUser", "user/*.cruds"}, []string{"openid", "fhirUser", "user/*.cruds"}, true},
		{StaffCallCentre, []string{"user/Appointment.rs", "user/Patient.read"}, []string{"user/Appointment.rs", "user/Patient.read"}, true},
		{StaffCommissioner, []string{"user/*.cruds"}, []string{"user/HealthcareService.rs", "user/Organization.rs", "user/Location.rs"}, true},
		{StaffCommissioner, []string{"user/*.rs"}, []string{"user/HealthcareService.rs", "user/Organization.rs", "user/Location.rs"}, true},
		{StaffCommissioner, []string{"user/HealthcareService.cruds"}, []string{"user/HealthcareService.rs"}, true},
		{StaffCommissioner, []string{"user/HealthcareService.s?active=true"}, []string{"user/HealthcareService.s?active=true"}, true},
		{StaffCommissioner, []string{"openid", "user/Patient.rs", "user/*.cud"}, []string{"openid"}, false},
		// No patient in context, no backend service: those scopes go.
		{StaffGP, []string{"launch/patient", "patient/*.rs", "system/*.cruds", "offline_access"}, nil, false},
		{StaffGP, []string{"user/ServiceRequest.cruds", "patient/*.rs"}, []string{"user/ServiceRequest.cruds"}, true},
		// A wildcard does not reach the audit trail.
		{StaffProvider, []string{"user/AuditEvent.rs"}, nil, false},
	}
	for _, tc := range tests {
		got, ok := narrowScopes(staff[tc.user], tc.requested)
		if !slices.Equal(got, tc.want) || ok != tc.ok {
			t.Errorf("%s asking %v: got %v %v, want %v %v", tc.user, tc.requested, got, ok, tc.want, tc.ok)
		}
	}
}

// TestStaffRequest: which authorisation requests go to the staff sign-in.
func TestStaffRequest(t *testing.T) {
	for _, tc := range []struct {
		scopes []string
		want   bool
	}{
		{[]string{"openid", "user/*.cruds"}, true},
		{[]string{"user/Appointment.rs"}, true},
		{[]string{"openid", "launch/patient", "patient/*.rs"}, false},
		{[]string{"launch/patient", "user/*.rs"}, false}, // a patient in context: the picker
		{[]string{"openid", "fhirUser"}, false},
		{[]string{"system/*.rs"}, false},
	} {
		if got := staffRequest(tc.scopes); got != tc.want {
			t.Errorf("staffRequest(%v) = %v, want %v", tc.scopes, got, tc.want)
		}
	}
}
