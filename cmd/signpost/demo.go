package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/directory"
	"github.com/signpost-fhir/signpost/fhir/referral"
	"github.com/signpost-fhir/signpost/fhir/repo"
)

// The demo region is a synthetic county, Wessex Vale: two integrated care
// boards (commissioners), two acute trusts, a community trust, 20 GP
// practices, hospital clinics in a dozen specialties, GPs with a special
// interest and nurse-led clinics, and patients with NHS numbers from the
// 999 test range and home locations. Everything has a fixed id, so loading
// is idempotent; free slots for the next six weeks are topped up at every
// start.

// addDemoFlag registers --demo on fs.
func addDemoFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("demo", false, "load the synthetic demo county (once) and top up its free slots for the next six weeks")
}

const (
	sct       = "http://snomed.info/sct"
	odsSystem = "https://fhir.nhs.uk/Id/ods-organization-code"
	demoWeeks = 6
)

type demoSpecialty struct{ code, name string }

var demoSpecialties = []demoSpecialty{
	{"394582007", "Dermatology"}, {"394579002", "Cardiology"}, {"394801008", "Trauma and orthopaedics"},
	{"394584008", "Gastroenterology"}, {"394586005", "Gynaecology"}, {"394594003", "Ophthalmology"},
	{"394591006", "Neurology"}, {"418112009", "Pulmonology"}, {"394583002", "Endocrinology"},
	{"394612005", "Urology"}, {"394609007", "General surgery"}, {"418960008", "Otolaryngology"},
}

type demoPlace struct {
	id, name, ods string
	lat, lon      float64
}

var (
	demoICBs   = []demoPlace{{"demo-icb-north", "NHS North Wessex Vale ICB", auth.DemoCommissioner, 0, 0}, {"demo-icb-south", "NHS South Wessex Vale ICB", "QWS", 0, 0}} // north: the commissioner demo client's
	demoTrusts = []demoPlace{
		{"demo-trust-kingsbridge", "Kingsbridge University Hospitals NHS Trust", auth.DemoProvider, 51.07, -1.79}, // the provider demo client's
		{"demo-trust-harbour", "Harbour General Hospital NHS Foundation Trust", "RH8", 50.82, -1.60},
	}
	demoCommunity = demoPlace{"demo-community", "Wessex Vale Community Health NHS Trust", "RWV", 50.95, -1.70}
)

// demoNamespace names the demo's UUIDs (uuid.NewSHA1).
var demoNamespace = uuid.MustParse("5e1d9a3c-7c1b-4d2a-9f0e-0d3e5a6b7c8d")

// demoLoader is the principal the demo county is written as (and audited
// under) when authorisation is on.
const demoLoader = "signpost-demo"

// loadDemo loads the demo county into a, once, and tops up its slots.
func loadDemo(ctx context.Context, a *app.App, out io.Writer) error {
	scopes, _ := auth.ParseScopes("system/*.cruds")
	ctx = auth.NewContext(ctx, &auth.Principal{Subject: demoLoader, ClientID: demoLoader, Scopes: scopes})
	rnd := rand.New(rand.NewPCG(7, 7)) // the same county every time
	loaded := false
	if _, err := a.Store.Read(ctx, "Organization", demoICBs[0].id); err == nil {
		loaded = true
	}
	var services []string
	err := a.Repo.Update(ctx, func(ctx context.Context, tx *repo.Tx) error {
		services = nil
		w := &demoWriter{ctx: ctx, tx: tx, skip: loaded}
		for _, icb := range demoICBs {
			w.put("Organization", icb.id, org(icb, "govt", ""))
		}
		for i, t := range demoTrusts {
			w.put("Organization", t.id, org(t, "prov", ""))
			w.put("Location", t.id, loc(t, t.id))
			for j, sp := range demoSpecialties {
				if (i == 1 && j%4 == 3) || (i == 0 && j == 11) {
					continue // not every trust offers everything
				}
				id := fmt.Sprintf("demo-hs-%s-%s", t.id[len("demo-trust-"):], sp.code)
				book := referral.Base + "/CodeSystem/bookability"
				bookCode := directory.DirectlyBookable
				if j == 6 { // neurology: referral assessment first
					bookCode = directory.IndirectlyBookable
				}
				w.put("HealthcareService", id, service(id, t.name+" "+sp.name, t.id, t.id, sp, []string{demoICBs[0].id, demoICBs[1].id}, book, bookCode, nil))
				if bookCode == directory.DirectlyBookable {
					services = append(services, id)
				}
			}
		}
		c := demoCommunity
		w.put("Organization", c.id, org(c, "prov", ""))
		community := []struct {
			id, name string
			sp       demoSpecialty
			elig     map[string]any
			lat, lon float64
		}{
			{"demo-hs-gpwsi-dermatology", "Market Street GPwSI Dermatology", demoSpecialties[0], nil, 51.00, -1.75},
			{"demo-hs-gpwsi-msk", "Vale MSK Service (GPwSI)", demoSpecialties[2], nil, 50.90, -1.65},
			{"demo-hs-nurse-continence", "Nurse-led Continence Clinic", demoSpecialties[9], nil, 50.97, -1.72},
			{"demo-hs-nurse-diabetes", "Nurse-led Diabetes Clinic", demoSpecialties[8], nil, 51.03, -1.68},
			{"demo-hs-community-gynae", "Women's Health Community Clinic", demoSpecialties[4], map[string]any{"gender": "female", "min": 16}, 50.88, -1.62},
			{"demo-hs-community-ent", "Community ENT and Audiology", demoSpecialties[11], nil, 50.93, -1.80},
		}
		for _, s := range community {
			w.put("Location", s.id, loc(demoPlace{name: s.name, lat: s.lat, lon: s.lon}, c.id))
			w.put("HealthcareService", s.id, service(s.id, s.name, c.id, s.id, s.sp, []string{demoICBs[0].id, demoICBs[1].id},
				referral.Base+"/CodeSystem/bookability", directory.DirectlyBookable, s.elig))
			services = append(services, s.id)
		}
		// Twenty GP practices, ten per ICB, and their patients.
		n := 0
		for i := range 20 {
			icb := demoICBs[i%2]
			p := demoPlace{fmt.Sprintf("demo-gp-%02d", i+1), demoPracticeName(i), fmt.Sprintf("J%05d", 82001+i),
				50.80 + 0.03*float64(i%10) + 0.1*float64(i%2), -1.90 + 0.035*float64(i)}
			if i == 0 {
				p.ods = auth.DemoGPPractice // the GP system demo client's practice
			}
			w.put("Organization", p.id, org(p, "prov", icb.id))
			for k := range 4 {
				n++
				lat, lon := p.lat+(rnd.Float64()-0.5)*0.05, p.lon+(rnd.Float64()-0.5)*0.05
				w.put("Patient", fmt.Sprintf("demo-patient-%03d", n), demoPatient(n, p.id, lat, lon, k))
			}
		}
		return w.err
	})
	if err != nil {
		return fmt.Errorf("demo: loading the county: %w", err)
	}
	// Top up free slots for the next six weeks, then recompute waits once.
	added := 0
	today := time.Now().In(a.Location)
	for i, id := range services {
		err := a.Repo.Update(directory.WithoutWaitingTimes(ctx), func(ctx context.Context, tx *repo.Tx) error {
			w := &demoWriter{ctx: ctx, tx: tx}
			sched := "demo-sched-" + id[len("demo-hs-"):]
			w.put("Schedule", sched, map[string]any{"resourceType": "Schedule", "active": true,
				"actor": []any{map[string]any{"reference": "HealthcareService/" + id}}})
			clinicDays := []time.Weekday{time.Weekday(1 + i%5), time.Weekday(1 + (i+2)%5)}
			perDay := 4 + i%5
			if i%7 == 3 {
				perDay = 1 // a scarce service, for the slot-issues worklist
			}
			for d := 1; d <= demoWeeks*7; d++ {
				day := today.AddDate(0, 0, d)
				if day.Weekday() != clinicDays[0] && day.Weekday() != clinicDays[1] {
					continue
				}
				for k := range perDay {
					start := time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, a.Location).Add(time.Duration(k) * 30 * time.Minute)
					name := fmt.Sprintf("%s-%s", sched, start.Format("20060102-1504"))
					// Slot ids are UUIDs named after schedule and start, so
					// $find's proposal tokens (which pack UUIDs in 16
					// bytes) stay valid FHIR ids. Data directories loaded
					// before carry the name itself as the id.
					sid := uuid.NewSHA1(demoNamespace, []byte(name)).String()
					if _, err := tx.Read(ctx, "Slot", sid); err == nil {
						continue
					}
					if _, err := tx.Read(ctx, "Slot", name); err == nil {
						continue
					}
					w.put("Slot", sid, map[string]any{"resourceType": "Slot", "schedule": map[string]any{"reference": "Schedule/" + sched},
						"status": "free", "start": start.Format(time.RFC3339), "end": start.Add(20 * time.Minute).Format(time.RFC3339)})
					added++
				}
			}
			if w.err != nil {
				return w.err
			}
			return a.Directory.Refresh(ctx, tx, id)
		})
		if err != nil {
			return fmt.Errorf("demo: slots of %s: %w", id, err)
		}
	}
	verb := "loaded"
	if loaded {
		verb = "already loaded"
	}
	fmt.Fprintf(out, "demo county %s: %d services with schedules, %d GP practices, 80 patients; %d free slots added for the next %d weeks\n",
		verb, len(services), 20, added, demoWeeks)
	printDemoSignIns(out, a)
	return nil
}

// demoWriter writes fixed-id resources, skipping those that exist.
type demoWriter struct {
	ctx  context.Context
	tx   *repo.Tx
	skip bool // the county is loaded: write nothing but missing schedules and slots
	err  error
}

func (w *demoWriter) put(typ, id string, v map[string]any) {
	if w.err != nil {
		return
	}
	if w.skip {
		return
	}
	if _, err := w.tx.Read(w.ctx, typ, id); err == nil {
		return
	}
	v["resourceType"] = typ
	b, err := json.Marshal(v)
	if err != nil {
		w.err = err
		return
	}
	obj, err := fhir.ParseObject(b)
	if err != nil {
		w.err = err
		return
	}
	_, _, w.err = w.tx.Put(w.ctx, typ, id, obj, 0)
}

func org(p demoPlace, typ, partOf string) map[string]any {
	o := map[string]any{"identifier": []any{map[string]any{"system": odsSystem, "value": p.ods}}, "active": true, "name": p.name,
		"type": []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": typ}}}}}
	if partOf != "" {
		o["partOf"] = map[string]any{"reference": "Organization/" + partOf}
	}
	return o
}

func loc(p demoPlace, orgID string) map[string]any {
	return map[string]any{"status": "active", "name": p.name, "position": map[string]any{"latitude": p.lat, "longitude": p.lon},
		"managingOrganization": map[string]any{"reference": "Organization/" + orgID}}
}

func service(id, name, orgID, locID string, sp demoSpecialty, commissioners []string, bookSystem, bookCode string, elig map[string]any) map[string]any {
	var ext []any
	for _, c := range commissioners {
		ext = append(ext, map[string]any{"url": referral.CommissionedBy, "valueReference": map[string]any{"reference": "Organization/" + c}})
	}
	if elig != nil {
		var sub []any
		if g, ok := elig["gender"]; ok {
			sub = append(sub, map[string]any{"url": "gender", "valueCode": g})
		}
		if m, ok := elig["min"]; ok {
			sub = append(sub, map[string]any{"url": "min-age", "valueInteger": m})
		}
		ext = append(ext, map[string]any{"url": referral.Eligibility, "extension": sub})
	}
	return map[string]any{"extension": ext, "active": true, "providedBy": map[string]any{"reference": "Organization/" + orgID},
		"specialty":      []any{map[string]any{"coding": []any{map[string]any{"system": sct, "code": sp.code, "display": sp.name}}}},
		"location":       []any{map[string]any{"reference": "Location/" + locID}},
		"name":           name,
		"comment":        "Referral criteria, booking guidance, transport and quality notes are published with each clinic letter.",
		"characteristic": []any{map[string]any{"coding": []any{map[string]any{"system": bookSystem, "code": bookCode}}}},
		"availableTime": []any{map[string]any{"daysOfWeek": []any{"mon", "tue", "wed", "thu", "fri"},
			"availableStartTime": "09:00:00", "availableEndTime": "17:00:00"}},
		"appointmentRequired": true}
}

var demoFamilies = []string{"Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Khan"}
var demoGiven = []string{"Alex", "Sam", "Jo", "Chris", "Priya", "Aisha", "Tom", "Ruth", "Ben", "Maya"}

func demoPracticeName(i int) string {
	names := []string{"Riverside", "Market Street", "Abbey", "Downs", "Harbour View", "Kingsbridge", "Oakfield", "Mill Lane",
		"Chalk Hill", "Vale", "Westgate", "Eastleigh Road", "St Mary's", "Forest Edge", "Quayside", "Castle", "Meadow",
		"Old School", "Brook", "Hillside"}
	return names[i] + " Surgery"
}

// demoNHSNumber returns the n-th valid NHS number of the 999 test range.
func demoNHSNumber(n int) string {
	for k := n * 3; ; k++ {
		nine := fmt.Sprintf("999%06d", k)
		if d, ok := referral.NHSNumberCheckDigit(nine); ok {
			return nine + string(d)
		}
	}
}

func demoPatient(n int, gp string, lat, lon float64, k int) map[string]any {
	gender := []string{"female", "male"}[n%2]
	birth := time.Date(1940+(n*7)%80, time.Month(1+n%12), 1+n%28, 0, 0, 0, 0, time.UTC)
	return map[string]any{
		"identifier": []any{map[string]any{"system": referral.NHSNumberSystem, "value": demoNHSNumber(n)}},
		"name":       []any{map[string]any{"family": demoFamilies[n%10], "given": []any{demoGiven[(n+k)%10]}}},
		"gender":     gender, "birthDate": birth.Format("2006-01-02"),
		"generalPractitioner": []any{map[string]any{"reference": "Organization/" + gp}},
		"address": []any{map[string]any{"line": []any{fmt.Sprintf("%d Demo Road", n)}, "city": "Wessex Vale",
			"extension": []any{map[string]any{"url": referral.Geolocation, "extension": []any{
				map[string]any{"url": "latitude", "valueDecimal": float64(int(lat*1e5)) / 1e5},
				map[string]any{"url": "longitude", "valueDecimal": float64(int(lon*1e5)) / 1e5}}}}}},
	}
}
