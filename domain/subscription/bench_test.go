package subscription_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
)

// BenchmarkNotificationLatency measures how long a live receiver waits
// for the notification of a booking: from the moment the booking is
// acknowledged (201) to the moment the receiver has the notification,
// over the whole path (rule, outbox, dispatcher, signed HTTPS POST). It
// reports the median and the worst in milliseconds.
func BenchmarkNotificationLatency(b *testing.B) {
	f := newFixtureSlots(b, app.Config{}, b.N+10)
	id := f.subscribe("", f.topicSub("appointment-booked", "/bench", "full-resource"))
	f.handshake(id, "/bench")
	var lags []float64
	b.ResetTimer()
	for i := range b.N {
		f.book("", fmt.Sprintf("s%d", i+10), "p1")
		acked := time.Now()
		waitFor(b, "the notification", 5*time.Second, func() bool { return len(f.rcv.on("/bench")) == i+2 })
		lags = append(lags, float64(f.rcv.on("/bench")[i+1].At.Sub(acked).Microseconds())/1000)
	}
	b.StopTimer()
	slices.Sort(lags)
	b.ReportMetric(lags[len(lags)/2], "median-ms")
	b.ReportMetric(lags[len(lags)-1], "max-ms")
}
