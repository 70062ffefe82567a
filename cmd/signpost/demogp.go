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
	"github.com/signpost-fhir/signpost/adapters/gpconnect"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/standin"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
)

// The demo's GP practice (docs/gpconnect.md): with serve --demo, the GP
// Connect stand-in (adapters/gpconnect/standin) plays the appointment book
// of the demo county's first practice (Organization/demo-gp-01, ODS
// devserver.DemoGPPractice, the GP system demo client's), and a gpconnect
// adapter instance copies its free slots into Signpost as those of a
// HealthcareService of the practice: a 111 call handler (the call-centre
// demo client) books them through Signpost, and each booking is made at
// the stand-in first.
const (
	demoGPInstance     = "demo-gp-a99001"
	demoGPOrganization = "demo-gp-01"
	demoGPService      = "demo-hs-gp-01-appointments"
	demoGPConsumerASID = "200000000359"
	demoGPPracticeASID = "918999198738"
	demoGPDays         = 14 // the practice's book, and the instance's horizon
	demoGPPatients     = 4  // the demo patients of demo-gp-01 (demo-patient-001 …)
)

// addDemoGPFlag registers --demo-gp on fs.
func addDemoGPFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("demo-gp", true, "with --demo: run a GP Connect stand-in for the demo county's first GP practice and connect it through a gpconnect adapter (docs/gpconnect.md)")
}

// demoGP is the running stand-in.
type demoGP struct {
	gp  *standin.Server
	out io.Writer
}

// startDemoGP starts the stand-in on a free loopback port, its patients
// the practice's demo patients, and adds the adapter instance that
// connects it to cfg.Adapters (beside those of --adapters). Call it
// before app.New.
func startDemoGP(cfg *app.Config, out io.Writer) (*demoGP, error) {
	if cfg.Adapters != nil {
		for _, in := range cfg.Adapters.Adapters {
			if in.Name == demoGPInstance || strings.Contains(string(in.Settings), demoGPService) {
				return nil, fmt.Errorf("demo GP: --adapters already has an instance %s for %s (start with --demo-gp=false)", in.Name, demoGPService)
			}
		}
	}
	ods := devserver.DemoGPPractice
	gp := standin.New(ods, demoGPPracticeASID, time.Now, standin.NewBook(ods, time.Now(), demoGPDays+1))
	for n := 1; n <= demoGPPatients; n++ {
		p := demoPatient(n, demoGPOrganization, 0, 0, n-1)
		name := p["name"].([]any)[0].(map[string]any)
		gp.RegisterPatient(demoNHSNumber(n), stu3.HumanName{Family: name["family"].(string), Given: []string{name["given"].([]any)[0].(string)}},
			p["gender"].(string), p["birthDate"].(string))
	}
	if err := gp.Start(); err != nil {
		return nil, err
	}
	settings, err := json.Marshal(gpconnect.Settings{
		ODSCode: ods, Endpoint: gp.URL(), ConsumerASID: demoGPConsumerASID, PracticeASID: demoGPPracticeASID,
		Services: []string{demoGPService}, HorizonDays: demoGPDays, PollInterval: adapters.Duration(5 * time.Minute),
		RetryBase: adapters.Duration(time.Second), RetryMax: adapters.Duration(30 * time.Second),
		TemporaryPatients: true, ContactTelephone: "0300 123 4567",
	})
	if err != nil {
		_ = gp.Close()
		return nil, err
	}
	f := &adapters.File{}
	if cfg.Adapters != nil {
		f.Retention = cfg.Adapters.Retention
		f.Adapters = append(f.Adapters, cfg.Adapters.Adapters...)
	}
	f.Adapters = append(f.Adapters, adapters.Instance{Name: demoGPInstance, Kind: gpconnect.Kind,
		Principal: adapters.PrincipalConfig{Role: string(auth.RoleProvider), Organization: ods}, Settings: settings})
	cfg.Adapters = f
	return &demoGP{gp: gp, out: out}, nil
}

// Close stops the stand-in.
func (d *demoGP) Close() error { return d.gp.Close() }

// run adds the practice's bookable HealthcareService (once), has the
// instance poll the stand-in now, and prints the banner with what it
// copied. Call it once the demo county is loaded. A poll that fails is
// reported, not an error: the instance retries it.
func (d *demoGP) run(ctx context.Context, a *app.App) error {
	inst, ok := a.Adapters.Get(demoGPInstance)
	if !ok {
		return errors.New("demo GP: the adapter instance did not start")
	}
	ad, ok := inst.(*gpconnect.Adapter)
	if !ok {
		return errors.New("demo GP: the adapter instance is not a gpconnect one")
	}
	sctx := write.AsServer(ctx)
	err := a.Writes.Update(sctx, func(ctx context.Context, tx *write.Tx) error {
		if _, err := tx.Read(ctx, "HealthcareService", demoGPService); err == nil {
			return nil
		} else if k := fhir.KindOf(err); k != fhir.NotFound && k != fhir.Gone {
			return err
		}
		obj, err := fhir.ParseObject(mustJSON(map[string]any{"resourceType": "HealthcareService", "id": demoGPService,
			"active": true, "name": demoPracticeName(0) + ": GP appointments",
			"providedBy":          map[string]any{"reference": "Organization/" + demoGPOrganization},
			"specialty":           []any{map[string]any{"coding": []any{map[string]any{"system": sct, "code": "394814009", "display": "General practice"}}}},
			"telecom":             []any{map[string]any{"system": "phone", "value": "0300 303 5678", "use": "work"}},
			"comment":             "Appointments at the practice, booked through GP Connect: the practice confirms each booking.",
			"characteristic":      []any{map[string]any{"coding": []any{map[string]any{"system": directory.BookabilitySystem, "code": directory.DirectlyBookable}}}},
			"extension":           []any{map[string]any{"url": referral.CommissionedBy, "valueReference": map[string]any{"reference": "Organization/" + demoICBs[0].id}}},
			"appointmentRequired": true}))
		if err != nil {
			return err
		}
		_, _, err = tx.Put(ctx, "HealthcareService", demoGPService, obj, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("demo GP: the practice's service: %w", err)
	}
	fmt.Fprintf(d.out, `
demo GP practice (docs/gpconnect.md): a GP Connect stand-in plays the appointment book of
  %s (Organization/%s, ODS %s) at %s.
  Signpost's adapter %s copies its free slots for the next %d days as those of
  HealthcareService/%s; a booking of one (try the call-centre client) is made at the practice first.
  Each request the practice receives is logged below.
`, demoPracticeName(0), demoGPOrganization, devserver.DemoGPPractice, d.gp.URL(), demoGPInstance, demoGPDays, demoGPService)
	d.gp.SetLog(d.out) // from now on, a line per request the practice receives
	if err := ad.PollNow(ctx); err != nil {
		fmt.Fprintf(d.out, "demo GP: the first poll failed (%v); the adapter retries it\n", err)
		return nil
	}
	fmt.Fprintf(d.out, "demo GP: polled the practice (%d free slots in its book): its slots are bookable in Signpost\n", len(d.gp.FreeSlots()))
	return nil
}

// mustJSON is v as JSON (v is built here: it always encodes).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
