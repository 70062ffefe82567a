package booking_test

import (
	"net/url"
	"path"
	"slices"
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/fhir"
)

// TestCanonicalsResolve: every extension and CodeSystem URL booking writes
// is served at /fhir/StructureDefinition/{id} or /fhir/CodeSystem/{id}
// (the canonical's last segment), with that url, and the codes booking
// writes are in its CodeSystems.
func TestCanonicalsResolve(t *testing.T) {
	s := newServer(t, app.Config{})
	for _, tc := range []struct {
		canonical, typ string
		codes          []string
	}{
		{booking.ExtHoldExpires, "StructureDefinition", nil},
		{booking.ExtAwaitingConfirmation, "StructureDefinition", nil},
		{booking.ExtReplaces, "StructureDefinition", nil},
		{booking.ExtPreviousAppointment, "StructureDefinition", nil},
		{booking.TagSystem, "CodeSystem", []string{booking.TagExternallyBusy}},
		{booking.BookabilitySystem, "CodeSystem", []string{booking.IndirectlyBookable}},
		{fhir.ErrorSystem, "CodeSystem", []string{booking.ErrSlotNotAvailable, booking.ErrSlotInUse, booking.ErrHoldExpired,
			booking.ErrProposalInvalid, booking.ErrNotBookable, booking.ErrNotAmendable, booking.ErrIdempotencyKeyReuse, booking.ErrIdempotencyPending}},
	} {
		u, _ := url.Parse(tc.canonical)
		id := path.Base(u.Path)
		r := s.do("GET", "/"+tc.typ+"/"+id, nil)
		if r.status != 200 {
			t.Errorf("GET %s/%s: %d, want 200", tc.typ, id, r.status)
			continue
		}
		def := r.json()
		if def["url"] != tc.canonical {
			t.Errorf("%s/%s has url %v, want %s", tc.typ, id, def["url"], tc.canonical)
		}
		var have []string
		concepts, _ := def["concept"].([]any)
		for _, c := range concepts {
			have = append(have, c.(map[string]any)["code"].(string))
		}
		for _, c := range tc.codes {
			if !slices.Contains(have, c) {
				t.Errorf("%s has no code %s (has %v)", tc.canonical, c, have)
			}
		}
	}
}
