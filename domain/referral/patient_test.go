package referral_test

import (
	"testing"

	"github.com/signpost-fhir/signpost/domain/referral"
)

func TestCheckNHSNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"9434765919", true},  // NHS test number
		{"9990000026", true},  // 999 test range
		{"4010232137", true},  // published example
		{"9434765918", false}, // wrong check digit
		{"943476591", false},  // nine digits
		{"94347659190", false},
		{"943476591X", false},
		{"1000000010", false}, // would need check digit 10
		{"", false},
	} {
		got := referral.CheckNHSNumber(tc.in) == nil
		if got != tc.want {
			t.Errorf("CheckNHSNumber(%q) valid = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNHSNumberCheckDigit(t *testing.T) {
	d, ok := referral.NHSNumberCheckDigit("943476591")
	if !ok || d != '9' {
		t.Errorf("NHSNumberCheckDigit(943476591) = %q, %v; want '9', true", d, ok)
	}
}

func patient(nhs string) map[string]any {
	return map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": referral.NHSNumberSystem, "value": nhs}},
		"name":       []any{map[string]any{"family": "Test", "given": []any{"Pat"}}},
		"gender":     "female", "birthDate": "1980-05-17"}
}

func TestPatientNHSNumberOverHTTP(t *testing.T) {
	c := newClient(t)
	for _, tc := range []struct {
		name, nhs string
		want      int
		code      string
	}{
		{"valid", "9990000026", 201, ""},
		{"bad check digit", "9990000027", 422, "INVALID_NHS_NUMBER"},
		{"too short", "999000002", 422, "INVALID_NHS_NUMBER"},
		{"duplicate", "9990000026", 409, "DUPLICATE_NHS_NUMBER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := c.do("POST", "/Patient", patient(tc.nhs))
			if status != tc.want || errorCode(out) != tc.code {
				t.Errorf("POST Patient %s: got %d %q, want %d %q (%v)", tc.nhs, status, errorCode(out), tc.want, tc.code, out)
			}
		})
	}
	// Updating the holder itself is no duplicate; giving a second patient the
	// number by PUT is.
	first := c.search("/Patient?identifier=" + referral.NHSNumberSystem + "|9990000026")
	if len(first) != 1 {
		t.Fatalf("search by NHS number: %d patients, want 1", len(first))
	}
	id := first[0]["id"].(string)
	p := patient("9990000026")
	p["id"] = id
	c.must(200, "PUT", "/Patient/"+id, p)
	q := patient("9990000026")
	q["id"] = "other"
	if status, out := c.do("PUT", "/Patient/other", q); status != 409 {
		t.Errorf("PUT second patient with a taken NHS number: %d, want 409 (%v)", status, out)
	}
}
