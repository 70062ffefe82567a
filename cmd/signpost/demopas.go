package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/adapters/pas/standin"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// The demo's PAS (docs/pas.md): with serve --demo, a PAS stand-in
// (adapters/pas/standin) plays the patient administration system of
// Kingsbridge University Hospitals (the provider demo client's trust) for
// its cardiology clinic, and an hl7v2-pas adapter instance connects it to
// Signpost: the stand-in sends a slot feed, registers a patient of its own
// (ADT^A04) and books them an appointment (SIU^S12), and logs every message
// Signpost sends it
// (a booking made in Signpost on the clinic's slots goes out as an SIU).
const (
	demoPASInstance = "demo-pas-kingsbridge"
	demoPASClinic   = "KB-CARD"
	demoPASService  = "demo-hs-kingsbridge-394579002" // Kingsbridge cardiology
	demoPASSchedule = "demo-sched-kingsbridge-394579002"
	demoPASNumbers  = "https://kingsbridge.example/Id/pas-number"
	demoPASNHS      = "9999000010" // the patient the PAS registers: not in the demo county
	demoPASDays     = 14           // the feed's days ahead
	demoPASLength   = 30 * time.Minute
)

// addDemoPASFlag registers --demo-pas on fs.
func addDemoPASFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("demo-pas", true, "with --demo: run a PAS stand-in for Kingsbridge cardiology and connect it through an hl7v2-pas adapter (docs/pas.md)")
}

// demoPAS is the running stand-in and what it was told.
type demoPAS struct {
	pas *standin.PAS
	out io.Writer
}

// startDemoPAS starts the stand-in on a free loopback port, logging to
// out, and adds the adapter instance that connects it to cfg.Adapters
// (beside those of --adapters). Call it before app.New.
func startDemoPAS(cfg *app.Config, out io.Writer) (*demoPAS, error) {
	if cfg.Adapters != nil {
		for _, in := range cfg.Adapters.Adapters {
			if in.Name == demoPASInstance {
				return nil, fmt.Errorf("demo PAS: --adapters already has an instance called %s (start with --demo-pas=false)", demoPASInstance)
			}
			if strings.Contains(string(in.Settings), demoPASService) {
				return nil, fmt.Errorf("demo PAS: --adapters instance %s already owns %s (start with --demo-pas=false)", in.Name, demoPASService)
			}
		}
	}
	p, err := standin.Start("127.0.0.1:0", out)
	if err != nil {
		return nil, err
	}
	p.Facility, p.SignpostFacility = devserver.DemoProvider, devserver.DemoProvider
	settings, err := json.Marshal(pas.Settings{
		Listen: "127.0.0.1:0", Allow: []string{"127.0.0.1"}, Send: p.Addr(),
		Services: []string{demoPASService}, Clinics: map[string]string{demoPASClinic: demoPASSchedule},
		PASNumberSystem: demoPASNumbers, Mode: pas.ModeSignpostConfirmed,
		PASFacility: devserver.DemoProvider, AckTimeout: adapters.Duration(10 * time.Second),
		RetryBase: adapters.Duration(time.Second), RetryMax: adapters.Duration(30 * time.Second),
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	f := &adapters.File{}
	if cfg.Adapters != nil {
		f.Adapters = append(f.Adapters, cfg.Adapters.Adapters...)
	}
	f.Adapters = append(f.Adapters, adapters.Instance{Name: demoPASInstance, Kind: pas.Kind,
		Principal: adapters.PrincipalConfig{Role: string(auth.RoleProvider), Organization: devserver.DemoProvider}, Settings: settings})
	cfg.Adapters = f
	return &demoPAS{pas: p, out: out}, nil
}

// Close stops the stand-in.
func (d *demoPAS) Close() error { return d.pas.Close() }

// run prints the banner, then has the stand-in send its slot feed (to the
// instance, in process, as $pas-slot-feed would), then, to the instance's
// MLLP listener, an ADT^A04 registering a patient of the PAS's own and an
// SIU^S12 booking her the feed's first slot. Call it once the demo county
// is loaded. What Signpost answers is logged, not an error: the demo
// shows it.
func (d *demoPAS) run(ctx context.Context, a *app.App) error {
	inst, ok := a.Adapters.Get(demoPASInstance)
	if !ok {
		return errors.New("demo PAS: the adapter instance did not start")
	}
	ad, ok := inst.(*pas.Adapter)
	if !ok || ad.Addr() == nil {
		return errors.New("demo PAS: the adapter instance has no listener")
	}
	listener := ad.Addr().String()
	fmt.Fprintf(d.out, `
demo PAS (docs/pas.md): a stand-in for the patient administration system of
  Kingsbridge University Hospitals (ODS %s), cardiology clinic %s = Schedule/%s.
  It listens for Signpost's HL7 v2 messages on %s and logs each one below (←);
  Signpost's adapter %s listens for the PAS on %s.
  It now sends a slot feed, an ADT^A04 and an SIU^S12 (→). Book a Kingsbridge cardiology slot
  in Signpost to see the booking go out to it.
`, devserver.DemoProvider, demoPASClinic, demoPASSchedule, d.pas.Addr(), demoPASInstance, listener)

	loc := a.Location
	rows := demoPASFeed(time.Now().In(loc))
	rep, err := ad.ApplyFeed(ctx, demoPASCSV(rows), pas.FeedCSV, pas.FeedOptions{Mode: pas.FeedFull})
	if err != nil {
		return fmt.Errorf("demo PAS: the slot feed: %w", err)
	}
	fmt.Fprintf(d.out, "demo PAS → slot feed of clinic %s (mode full): %d rows: %d created, %d updated, %d unchanged, %d skipped (booked in Signpost), %d withdrawn\n",
		demoPASClinic, rep.Rows, rep.Created, rep.Updated, rep.Unchanged, rep.Skipped, rep.Withdrawn)

	first := rows[0]
	b := standin.Booking{
		ControlID: "DEMO-S12-" + first.id, AppointmentID: "KB" + first.start.Format("0601021504"),
		NHSNumber: demoPASNHS, PASNumber: "KB900001", Family: "SHAH", Given: "AMIRA",
		BirthDate: time.Date(1974, 3, 9, 0, 0, 0, 0, time.UTC), Sex: "F", Clinic: demoPASClinic,
		ServiceCode: "394579002", ServiceName: "Cardiology", ServiceSystem: "SCT",
		Start: first.start, Minutes: int(demoPASLength / time.Minute), Sent: time.Now(),
	}
	reg, err := d.pas.RegistrationMessage("DEMO-A04-KB900001", b)
	if err != nil {
		return fmt.Errorf("demo PAS: %w", err)
	}
	msg, err := d.pas.BookingMessage(b)
	if err != nil {
		return fmt.Errorf("demo PAS: %w", err)
	}
	for _, m := range []*hl7v2.Message{reg, msg} {
		_, _ = d.pas.Send(ctx, listener, m) // logged either way
	}
	return nil
}

// demoPASRow is one slot of the demo PAS's feed.
type demoPASRow struct {
	id         string
	start      time.Time
	busy       bool
	serviceSCT string
}

// demoPASFeed is the clinic's slots: every weekday of the next
// demoPASDays days, four afternoon slots from 14:00 (the demo's own slots
// are mornings), the last of each day busy in the PAS. Ids are the
// clinic, day and time, so the same slot keeps its id at every start.
func demoPASFeed(now time.Time) []demoPASRow {
	var rows []demoPASRow
	for d := 1; d <= demoPASDays; d++ {
		day := now.AddDate(0, 0, d)
		if day.Weekday() == time.Saturday || day.Weekday() == time.Sunday {
			continue
		}
		for k := range 4 {
			start := time.Date(day.Year(), day.Month(), day.Day(), 14, 0, 0, 0, now.Location()).Add(time.Duration(k) * demoPASLength)
			rows = append(rows, demoPASRow{id: demoPASClinic + "-" + start.Format("20060102-1504"), start: start, busy: k == 3, serviceSCT: "394579002"})
		}
	}
	return rows
}

// demoPASCSV renders rows as a CSV feed.
func demoPASCSV(rows []demoPASRow) []byte {
	var b strings.Builder
	b.WriteString("clinic,pas_slot_id,start,end,status,service_type\n")
	for _, r := range rows {
		status := "free"
		if r.busy {
			status = "busy"
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s,http://snomed.info/sct|%s\n", demoPASClinic, r.id,
			r.start.Format(time.RFC3339), r.start.Add(demoPASLength).Format(time.RFC3339), status, r.serviceSCT)
	}
	return []byte(b.String())
}
