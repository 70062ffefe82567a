package pas

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// TestToObject checks that toObject, which splits encoding/json's output
// into members without fhir.ParseObject's checks, gives the object
// ParseObject gives: the same members in the same order with the same
// bytes, for strings holding quotes, escapes, braces and commas, nested
// and empty values, and member names that need escaping.
func TestToObject(t *testing.T) {
	minutes := 15
	appt := &r4.Appointment{
		Identifier:      []r4.Identifier{{System: elem.Opt("urn:x"), Value: elem.Opt(`F"1,}`)}},
		Status:          r4.AppointmentStatusBooked,
		Start:           elem.Opt(time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC).Format(time.RFC3339)),
		Comment:         elem.Opt("a \\ back{slash}, [brackets] and <html> & \u00e9 \u2028"),
		MinutesDuration: &minutes,
		Participant: []r4.AppointmentParticipant{
			{Actor: &r4.Reference{Reference: elem.Opt("Patient/p1")}, Status: r4.ParticipationStatusAccepted},
		},
	}
	for _, v := range []any{
		appt,
		map[string]any{},
		map[string]any{"resourceType": "Slot", "a\"b": 1, "c\\d": []any{}, "e": map[string]any{}, "f": []any{map[string]any{"g": "}],{"}}, "h": nil, "i": true, "j": -1.5e3},
		map[string]any{"one": json.RawMessage(`{ "spaced" : [ 1 , 2 ] }`)},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := fhir.ParseObject(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := toObject(v)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Keys(), want.Keys()) || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("toObject(%s)\n got %s %q\nwant %s %q", b, got.Bytes(), got.Keys(), want.Bytes(), want.Keys())
		}
	}
	for _, b := range []string{``, `[]`, `"x"`, `{"a"}`, `{"a":}`, `{"a":[}`, `{"a":"}`, `{a:1}`} {
		if _, _, ok := splitMembers([]byte(b)); ok {
			t.Errorf("splitMembers(%s) accepted it", b)
		}
	}
}
