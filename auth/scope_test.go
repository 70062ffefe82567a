package auth

import (
	"net/url"
	"reflect"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		raw     string
		want    Scope
		wantErr bool
	}{
		// SMART v2.
		{raw: "patient/Appointment.rs", want: Scope{Level: LevelPatient, ResourceType: "Appointment", Permissions: Read | Search, Version: 2}},
		{raw: "user/*.cruds", want: Scope{Level: LevelUser, ResourceType: "*", Permissions: AllInteractions, Version: 2}},
		{raw: "system/Slot.rs", want: Scope{Level: LevelSystem, ResourceType: "Slot", Permissions: Read | Search, Version: 2}},
		{raw: "user/ServiceRequest.cu", want: Scope{Level: LevelUser, ResourceType: "ServiceRequest", Permissions: Create | Update, Version: 2}},
		{raw: "patient/Appointment.d", want: Scope{Level: LevelPatient, ResourceType: "Appointment", Permissions: Delete, Version: 2}},
		{
			raw: "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			want: Scope{Level: LevelPatient, ResourceType: "Observation", Permissions: Read | Search, Version: 2,
				Query: url.Values{"category": {"http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}}},
		},
		{
			raw: "user/Appointment.rs?service-type=urology&status=booked",
			want: Scope{Level: LevelUser, ResourceType: "Appointment", Permissions: Read | Search, Version: 2,
				Query: url.Values{"service-type": {"urology"}, "status": {"booked"}}},
		},
		// SMART v1.
		{raw: "patient/*.read", want: Scope{Level: LevelPatient, ResourceType: "*", Permissions: Read | Search, Version: 1}},
		{raw: "user/Appointment.write", want: Scope{Level: LevelUser, ResourceType: "Appointment", Permissions: Create | Update | Delete, Version: 1}},
		{raw: "user/*.*", want: Scope{Level: LevelUser, ResourceType: "*", Permissions: AllInteractions, Version: 1}},
		{raw: "system/Patient.*", want: Scope{Level: LevelSystem, ResourceType: "Patient", Permissions: AllInteractions, Version: 1}},
		// Not resource scopes, or malformed.
		{raw: "*.*", wantErr: true},
		{raw: "openid", wantErr: true},
		{raw: "launch/patient", wantErr: true},
		{raw: "fhirUser", wantErr: true},
		{raw: "admin/Patient.rs", wantErr: true},
		{raw: "patient/Appointment", wantErr: true},
		{raw: "patient/Appointment.", wantErr: true},
		{raw: "patient/Appointment.sr", wantErr: true},  // out of cruds order
		{raw: "patient/Appointment.rr", wantErr: true},  // repeated
		{raw: "patient/Appointment.rx", wantErr: true},  // unknown letter
		{raw: "patient/appointment.rs", wantErr: true},  // not a type name
		{raw: "patient/Appoint-ment.rs", wantErr: true}, // not a type name
		{raw: "patient/Observation.read?category=lab", wantErr: true},
		{raw: "patient/Observation.rs?", wantErr: true},
		{raw: "patient/Observation.rs?%zz=1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseScope(tt.raw)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseScope(%q) error = %v, want error %v", tt.raw, err, tt.wantErr)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseScope(%q) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
}

func TestScopeString(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"patient/*.read", "patient/*.rs"},
		{"user/Appointment.write", "user/Appointment.cud"},
		{"user/*.*", "user/*.cruds"},
		{"system/Slot.rs", "system/Slot.rs"},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory"},
	}
	for _, tt := range tests {
		s, err := ParseScope(tt.raw)
		if err != nil {
			t.Fatalf("ParseScope(%q): %v", tt.raw, err)
		}
		if got := s.String(); got != tt.want {
			t.Errorf("ParseScope(%q).String() = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestParseScopes(t *testing.T) {
	scopes, other := ParseScopes("openid  fhirUser launch/patient patient/Appointment.rs patient/Slot.xx user/*.read")
	var got []string
	for _, s := range scopes {
		got = append(got, s.String())
	}
	if want := []string{"patient/Appointment.rs", "user/*.rs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("scopes = %q, want %q", got, want)
	}
	if want := []string{"openid", "fhirUser", "launch/patient", "patient/Slot.xx"}; !reflect.DeepEqual(other, want) {
		t.Errorf("other = %q, want %q", other, want)
	}
}

func TestInteractionString(t *testing.T) {
	tests := []struct {
		in   Interaction
		want string
	}{
		{Read, "read"}, {Search, "search"}, {Create, "create"}, {Read | Search, "rs"}, {AllInteractions, "cruds"}, {0, "none"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Interaction(%d).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		s, t string
		want bool
	}{
		{"system/*.cruds", "system/Appointment.rs", true},
		{"system/*.cruds", "user/Appointment.rs", false}, // contexts never cross
		{"system/Slot.rs", "system/Slot.cruds", false},
		{"system/Slot.rs", "system/Appointment.rs", false},
		{"patient/*.rs", "patient/Observation.rs?category=lab", true},
		{"patient/Observation.rs?category=lab", "patient/Observation.rs", false},
		{"patient/Observation.rs?category=lab", "patient/Observation.r?category=lab", true},
		{"patient/Observation.rs?category=lab", "patient/Observation.rs?category=vital", false},
		{"patient/Observation.rs?category=lab", "patient/Observation.rs?category=lab&code=x", true},
	}
	for _, tt := range tests {
		s, t1 := mustScope(t, tt.s), mustScope(t, tt.t)
		if got := s.Covers(t1); got != tt.want {
			t.Errorf("%s.Covers(%s) = %v, want %v", tt.s, tt.t, got, tt.want)
		}
	}
}

func mustScope(t testing.TB, raw string) Scope {
	t.Helper()
	s, err := ParseScope(raw)
	if err != nil {
		t.Fatalf("ParseScope(%q): %v", raw, err)
	}
	return s
}

func BenchmarkParseScopes(b *testing.B) {
	const s = "openid fhirUser launch/patient patient/Appointment.rs patient/Slot.rs user/*.read patient/Observation.rs?category=laboratory"
	b.ReportAllocs()
	for b.Loop() {
		ParseScopes(s)
	}
}
