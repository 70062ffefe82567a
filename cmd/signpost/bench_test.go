package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/bench"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// TestBench runs the mixed workload briefly against a real server with
// authorisation and audit on (a call centre's token): every kind of
// operation succeeds, bookings of the hot slots collide (some booked, some
// refused with 409), the verification finds no double booking and the
// run's writes are audited. Then a second live Appointment is written
// straight into the store for a booked slot (no rule runs), and the
// verification finds it.
func TestBench(t *testing.T) {
	cfg := app.Config{Auth: true}
	a, ts := apptest.New(t, cfg)
	tok, err := devserver.MintToken(a.Config.Data, devserver.TokenOptions{Client: devserver.ClientCallCentre, Role: "call-centre", Org: "RBENCH"})
	if err != nil {
		t.Fatal(err)
	}
	bc := bench.Config{BaseURL: ts.URL + "/fhir", Token: tok, Org: "RBENCH",
		Services: 4, Schedules: 8, Slots: 400, Patients: 40, HotSlots: 10, Clients: 4, Duration: 2 * time.Second,
		// Even shares: every operation runs often enough in two seconds on a busy machine.
		Mix: bench.Mix{SlotSearch: 20, ServiceSearch: 20, Read: 20, Book: 20, Referral: 20}}
	ctx := context.Background()
	region, err := bench.Seed(ctx, bc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := bench.Run(ctx, bc, region)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res.Write(&out)
	t.Log("\n" + out.String())
	if res.Errors > 0 {
		t.Errorf("%d operations failed: %v", res.Errors, res.ErrorLog)
	}
	for _, op := range []string{bench.OpSlotSearch, bench.OpServiceSearch, bench.OpRead, bench.OpBooked, bench.OpReferral} {
		if res.Ops[op] == nil || res.Ops[op].Count == 0 {
			t.Errorf("no %s succeeded", op)
		}
	}
	if booked := res.Ops[bench.OpBooked]; booked != nil && booked.Count > bc.HotSlots {
		t.Errorf("%d bookings of %d hot slots succeeded", booked.Count, bc.HotSlots)
	}
	if len(res.DoubleBookings) != 0 {
		t.Fatalf("double bookings on a correct server: %v", res.DoubleBookings)
	}
	if res.Total == 0 || res.PerSec <= 0 {
		t.Errorf("no throughput: %+v", res)
	}

	// Audit on: every booking left its AuditEvent.
	a.API.Flush()
	page, err := a.Store.Search(ctx, searchOf(t, a, "AuditEvent", "action=C&_count=1000"))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, r := range page.Resources {
		if strings.Contains(string(r.JSON), `"reference":"Appointment/`) {
			got++
		}
	}
	if got < res.Ops[bench.OpBooked].Count {
		t.Errorf("%d AuditEvents of Appointment creates, want at least the %d bookings", got, res.Ops[bench.OpBooked].Count)
	}

	// A crafted double booking: copy a live appointment under a new id.
	appts, err := a.Store.Search(ctx, searchOf(t, a, "Appointment", "status=booked&_count=1"))
	if err != nil || len(appts.Resources) == 0 {
		t.Fatalf("no booked appointment to copy: %v", err)
	}
	orig := appts.Resources[0]
	err = a.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var obj map[string]any
		if err := json.Unmarshal(orig.JSON, &obj); err != nil {
			return err
		}
		obj["id"] = "crafted-double"
		b, _ := json.Marshal(obj)
		idx, err := a.Search.Extract("Appointment", b)
		if err != nil {
			return err
		}
		return tx.Put(ctx, &store.Write{Resource: &fhir.Resource{Type: "Appointment", ID: "crafted-double", Version: 1, LastUpdated: time.Now().UTC(), JSON: b}, Index: idx})
	})
	if err != nil {
		t.Fatal(err)
	}
	dbl, err := bench.Verify(ctx, bc, region)
	if err != nil {
		t.Fatal(err)
	}
	if len(dbl) != 1 || len(dbl[0].Appointments) != 2 || !strings.Contains(strings.Join(dbl[0].Appointments, ","), "crafted-double") {
		t.Errorf("verification after a crafted double booking found %+v, want one slot with the original and crafted-double", dbl)
	}
}

// searchOf parses a search of typ for a test.
func searchOf(t *testing.T, a *app.App, typ, query string) *search.Query {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	q, err := a.Search.Parse(typ, v, search.ParseOptions{MaxCount: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestBenchPaced runs the workload at a fixed rate with samples against
// a real server (in this process, so its /proc is the test's): the
// operations keep to the schedule (unpaced, four clients send many times
// more), and each sample carries the interval's figures, the process's
// memory, threads and open files, and the goroutines from its metrics.
func TestBenchPaced(t *testing.T) {
	a, ts := apptest.New(t, app.Config{})
	metrics := httptest.NewServer(a.MetricsHandler())
	defer metrics.Close()
	const rate, secs = 40, 3
	bc := bench.Config{BaseURL: ts.URL + "/fhir", Org: "RBENCH",
		Services: 2, Schedules: 4, Slots: 100, Patients: 10, HotSlots: 5, Clients: 4, Duration: secs * time.Second,
		Rate: rate, Every: time.Second, ServerPID: os.Getpid(), MetricsURL: metrics.URL}
	ctx := context.Background()
	region, err := bench.Seed(ctx, bc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := bench.Run(ctx, bc, region)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors > 0 {
		t.Errorf("%d operations failed: %v", res.Errors, res.ErrorLog)
	}
	if most := rate*secs + bc.Clients; res.Total > most || res.Total < rate*secs/4 {
		t.Errorf("%d operations at %d/s for %ds, want about %d", res.Total, rate, secs, rate*secs)
	}
	if len(res.Samples) < secs-1 {
		t.Fatalf("%d samples in %ds at 1s", len(res.Samples), secs)
	}
	for _, s := range res.Samples {
		t.Log(s.Line())
		if s.Ops == 0 || s.P99 <= 0 || s.RSS <= 0 || s.Threads <= 0 || s.OpenFiles <= 0 || s.Goroutines <= 0 {
			t.Errorf("sample without a figure: %+v", s)
		}
	}
}
