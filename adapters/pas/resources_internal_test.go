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
}

// BenchmarkToObject compares toObject with fhir.ParseObject of the same
// encoding, on an appointment as an S12 builds it.
//
//	go test ./adapters/pas -run '^$' -bench BenchmarkToObject
func BenchmarkToObject(b *testing.B) {
	minutes := 15
	appt := &r4.Appointment{
		Identifier: []r4.Identifier{{System: elem.Opt("https://signpost.example/Id/pas-filler/pas-rh8"), Value: elem.Opt("FB-1")}},
		Status:     r4.AppointmentStatusBooked,
		Start:      elem.Opt("2026-12-08T09:00:00Z"), End: elem.Opt("2026-12-08T09:15:00Z"), Created: elem.Opt("2026-12-07"),
		MinutesDuration: &minutes,
		Participant: []r4.AppointmentParticipant{
			{Actor: &r4.Reference{Reference: elem.Opt("Patient/p1")}, Status: r4.ParticipationStatusAccepted},
			{Actor: &r4.Reference{Reference: elem.Opt("HealthcareService/hs1")}, Status: r4.ParticipationStatusAccepted},
		},
		Slot: []r4.Reference{elem.Ref("Slot/s1")},
	}
	b.Run("toObject", func(b *testing.B) {
		for b.Loop() {
			if _, err := toObject(appt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseObject", func(b *testing.B) {
		for b.Loop() {
			raw, _ := json.Marshal(appt)
			if _, err := fhir.ParseObject(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
