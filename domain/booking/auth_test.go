package booking_test

import (
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// With authorisation on, the hold sweeper (which acts on no client's
// behalf) still releases expired holds.
func TestHoldsExpireWithAuthorisation(t *testing.T) {
	data := t.TempDir()
	seed := newServer(t, app.Config{Data: data}) // open: the fixtures are not under test
	seed.basic()
	seed.put(slotAt("a", "sc", tomorrow9(), 15*time.Minute))
	seed.app.Close()

	s := newServer(t, app.Config{Data: data, HoldFor: 300 * time.Millisecond, Auth: true})
	tok, err := devserver.MintToken(data, devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	if err != nil {
		t.Fatal(err)
	}
	s.token = tok
	var proposal string
	for _, a := range entries(t, must(t, "$find", s.do("GET", "/Appointment/$find?healthcare-service=HealthcareService/hs", nil), 200)) {
		proposal = a["id"].(string)
	}
	must(t, "$hold", s.do("POST", "/Appointment/$hold", params("appointment-reference", ref("Appointment/"+proposal))), 200)
	if got := s.slotStatus("a"); got != "busy-tentative" {
		t.Fatalf("held slot is %q, want busy-tentative", got)
	}
	waitUntil(t, 10*time.Second, func() bool { return s.slotStatus("a") == "free" })
}
