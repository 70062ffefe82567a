package referral_test

import (
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/app/apptest"
)

// tookPlace moves the appointment ref ("Appointment/id") and its slots
// back in time, as time passing would: afterwards the appointment started
// startedAgo ago (two hours when 0), so that it can be recorded as
// arrived, fulfilled or (once ended) a no-show.
func tookPlace(c *client, ref string, startedAgo ...time.Duration) {
	c.t.Helper()
	ago := 2 * time.Hour
	if len(startedAgo) > 0 {
		ago = startedAgo[0]
	}
	apptest.IntoThePast(c.t, c.a, strings.TrimPrefix(ref, "Appointment/"), ago)
}
