package api_test

import (
	"testing"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// TestAuditFlushInChunks: a flush holding more read records than one
// storing transaction takes (the trail stores them in chunks, so that
// bookings take their turn in between) still stores every one of them,
// each once.
func TestAuditFlushInChunks(t *testing.T) {
	s := newSecureServer(t, app.Config{})
	before := len(audits(t, s.app))
	tok := bearer(s.mint(t, devserver.TokenOptions{Scope: "patient/*.rs", Patient: "pat-a"}))
	const reads = 150 // more than two chunks
	for range reads {
		s.must(request{path: "Appointment/appt-a", header: tok}, 200)
	}
	all := audits(t, s.app)
	if got := len(all) - before; got != reads {
		t.Fatalf("%d AuditEvents stored for %d reads", got, reads)
	}
	ids := map[string]bool{}
	for _, ev := range all {
		id, _ := ev["id"].(string)
		if ids[id] {
			t.Errorf("AuditEvent/%s stored twice", id)
		}
		ids[id] = true
	}
}
