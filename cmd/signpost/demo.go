package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
)

// The demo region is a synthetic county, Wessex Vale: two integrated care
// boards (commissioners), three acute trusts, a community trust, an
// independent-sector treatment centre, 20 GP practices and 80 patients
// with NHS numbers from the 999 test range. Every demo specialty has at
// least five services (hospital clinics, GPs with a special interest,
// nurse-led and community clinics), so a shortlist shows four or five
// choices; most are commissioned by both boards, some by one only; some
// are indirectly bookable (the provider triages first). Locations,
// practices and patients have addresses with postcodes in the county's
// synthetic postcode table (demo_postcodes.csv, embedded: see
// demoPostcodes), which places the patients for $shortlist's distances.
// Every patient has a referral someone can act on (demo_referrals.go).
// Everything has a fixed id, so loading is idempotent; free slots for the
// next six weeks are topped up at every start.

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

// The demo specialties by name, for the service table.
var (
	dermatology, cardiology, orthopaedics, gastroenterology = demoSpecialties[0], demoSpecialties[1], demoSpecialties[2], demoSpecialties[3]
	gynaecology, ophthalmology, neurology, pulmonology      = demoSpecialties[4], demoSpecialties[5], demoSpecialties[6], demoSpecialties[7]
	endocrinology, urology, generalSurgery, ent             = demoSpecialties[8], demoSpecialties[9], demoSpecialties[10], demoSpecialties[11]
)

type demoPlace struct {
	id, name, ods string
	lat, lon      float64
}

var (
	demoICBs   = []demoPlace{{"demo-icb-north", "NHS North Wessex Vale ICB", devserver.DemoCommissioner, 51.08, -1.60}, {"demo-icb-south", "NHS South Wessex Vale ICB", "QWS", 50.86, -1.55}} // north: the commissioner demo client's
	demoTrusts = []demoPlace{
		{"demo-trust-kingsbridge", "Kingsbridge University Hospitals NHS Trust", devserver.DemoProvider, 51.07, -1.79}, // the provider demo client's
		{"demo-trust-harbour", "Harbour General Hospital NHS Foundation Trust", "RH8", 50.82, -1.60},
		{"demo-trust-downland", "Downland Hospitals NHS Trust", "RD9", 51.12, -1.30},
	}
	demoCommunity = demoPlace{"demo-community", "Wessex Vale Community Health NHS Trust", "RWV", 50.95, -1.70}
	demoISP       = demoPlace{"demo-isp-ellingford", "Ellingford Treatment Centre (independent sector)", "NV901", 50.86, -1.42}
)

// demoTowns name the county's towns: a place's address is in the nearest.
var demoTowns = []demoPlace{
	{name: "Kingsbridge", lat: 51.07, lon: -1.79}, {name: "Saltmouth", lat: 50.82, lon: -1.60}, {name: "Chalkbury", lat: 51.12, lon: -1.30},
	{name: "Ellingford", lat: 50.86, lon: -1.42}, {name: "Vale St Mary", lat: 50.95, lon: -1.70}, {name: "Westcombe", lat: 50.85, lon: -1.88},
	{name: "Abbotsleigh", lat: 51.13, lon: -1.55}, {name: "Millbrook", lat: 50.98, lon: -1.45}, {name: "Eastleigh Down", lat: 51.05, lon: -1.25},
}

// demoTown returns the town nearest (lat, lon).
func demoTown(lat, lon float64) string {
	best, bestD := "", 0.0
	for _, t := range demoTowns {
		if d := referral.DistanceKM(referral.LatLon{Lat: lat, Lon: lon}, referral.LatLon{Lat: t.lat, Lon: t.lon}); best == "" || d < bestD {
			best, bestD = t.name, d
		}
	}
	return best
}

// demoService is one service of the demo county.
type demoService struct {
	id, name string
	org      demoPlace
	sp       demoSpecialty
	site     *demoPlace // its own location; nil: the provider's main site
	// commissioners are the boards that commission it (ids); nil: both.
	commissioners []string
	indirect      bool           // indirectly bookable: the provider triages first
	elig          map[string]any // "gender", "min", "max"
}

// demoServices lists the county's services. Ids of services the README,
// docs/walkthrough.md and the tests use (demo-hs-kingsbridge-*,
// demo-hs-harbour-*, demo-hs-gpwsi-dermatology…) never change.
func demoServices() []demoService {
	var out []demoService
	for i, t := range demoTrusts {
		for _, sp := range demoSpecialties {
			if i == 0 && sp == ent {
				continue // Kingsbridge sends ENT to the community service
			}
			out = append(out, demoService{id: fmt.Sprintf("demo-hs-%s-%s", t.id[len("demo-trust-"):], sp.code),
				name: t.name + " " + sp.name, org: t, sp: sp, indirect: sp == neurology}) // neurology: referral assessment first
		}
	}
	north, south := []string{demoICBs[0].id}, []string{demoICBs[1].id}
	c, isp := demoCommunity, demoISP
	site := func(name string, lat, lon float64) *demoPlace { return &demoPlace{name: name, lat: lat, lon: lon} }
	return append(out,
		demoService{id: "demo-hs-gpwsi-dermatology", name: "Market Street GPwSI Dermatology", org: c, sp: dermatology, site: site("Market Street Health Centre", 51.00, -1.75)},
		demoService{id: "demo-hs-community-skin", name: "Ellingford Community Skin Clinic", org: c, sp: dermatology, site: site("Ellingford Health Centre", 50.83, -1.38), commissioners: south},
		demoService{id: "demo-hs-gpwsi-msk", name: "Vale MSK Service (GPwSI)", org: c, sp: orthopaedics, site: site("Vale MSK Centre", 50.90, -1.65)},
		demoService{id: "demo-hs-community-mcats", name: "MSK Clinical Assessment and Treatment Service", org: c, sp: orthopaedics, site: site("Millbrook Therapy Centre", 51.02, -1.58), indirect: true},
		demoService{id: "demo-hs-community-heart", name: "Community Heart Failure and ECG Clinic", org: c, sp: cardiology, site: site("Millbrook Community Hospital", 50.97, -1.50)},
		demoService{id: "demo-hs-community-gastro", name: "Abbotsleigh Community Gastroenterology (GPwSI)", org: c, sp: gastroenterology, site: site("Abbotsleigh Medical Centre", 51.10, -1.62), commissioners: north},
		demoService{id: "demo-hs-community-gynae", name: "Women's Health Community Clinic", org: c, sp: gynaecology, site: site("Women's Health Centre", 50.88, -1.62), elig: map[string]any{"gender": "female", "min": 16}},
		demoService{id: "demo-hs-community-eyes", name: "Community Eye Service", org: c, sp: ophthalmology, site: site("Saltmouth Eye Clinic", 50.84, -1.72), commissioners: south},
		demoService{id: "demo-hs-community-headache", name: "Headache Clinic (GPwSI)", org: c, sp: neurology, site: site("Eastleigh Down Surgery Annexe", 51.05, -1.45), commissioners: north},
		demoService{id: "demo-hs-community-neuro-nurse", name: "Nurse-led Epilepsy and Parkinson's Clinic", org: c, sp: neurology, site: site("Vale Neurology Nurse Unit", 50.92, -1.55)},
		demoService{id: "demo-hs-community-respiratory", name: "Community Respiratory Service", org: c, sp: pulmonology, site: site("Vale Breathing Space", 50.99, -1.62)},
		demoService{id: "demo-hs-nurse-diabetes", name: "Nurse-led Diabetes Clinic", org: c, sp: endocrinology, site: site("Diabetes Centre", 51.03, -1.68)},
		demoService{id: "demo-hs-community-endocrine", name: "Community Diabetes and Endocrine Service (GPwSI)", org: c, sp: endocrinology, site: site("Chalkbury Health Centre", 51.08, -1.48)},
		demoService{id: "demo-hs-nurse-continence", name: "Nurse-led Continence Clinic", org: c, sp: urology, site: site("Continence Service", 50.97, -1.72)},
		demoService{id: "demo-hs-community-minorops", name: "Minor Operations Service (GPwSI)", org: c, sp: generalSurgery, site: site("Abbotsleigh Day Unit", 51.14, -1.70), commissioners: north},
		demoService{id: "demo-hs-community-ent", name: "Community ENT and Audiology", org: c, sp: ent, site: site("Community ENT Clinic", 50.93, -1.80)},
		demoService{id: "demo-hs-community-hearing", name: "Adult Hearing Service", org: c, sp: ent, site: site("Ellingford Hearing Centre", 50.88, -1.50), elig: map[string]any{"min": 18}},
		demoService{id: "demo-hs-isp-cardiology", name: "Ellingford Treatment Centre Cardiology", org: isp, sp: cardiology},
		demoService{id: "demo-hs-isp-orthopaedics", name: "Ellingford Treatment Centre Orthopaedics", org: isp, sp: orthopaedics},
		demoService{id: "demo-hs-isp-endoscopy", name: "Ellingford Treatment Centre Endoscopy and Gastroenterology", org: isp, sp: gastroenterology},
		demoService{id: "demo-hs-isp-gynaecology", name: "Ellingford Treatment Centre Gynaecology", org: isp, sp: gynaecology, elig: map[string]any{"gender": "female"}},
		demoService{id: "demo-hs-isp-ophthalmology", name: "Ellingford Treatment Centre Ophthalmology", org: isp, sp: ophthalmology},
		demoService{id: "demo-hs-isp-sleep", name: "Ellingford Sleep and Respiratory Physiology", org: isp, sp: pulmonology, commissioners: south},
		demoService{id: "demo-hs-isp-urology", name: "Ellingford Treatment Centre Urology", org: isp, sp: urology},
		demoService{id: "demo-hs-isp-general-surgery", name: "Ellingford Treatment Centre General Surgery", org: isp, sp: generalSurgery},
		demoService{id: "demo-hs-isp-ent", name: "Ellingford Treatment Centre ENT", org: isp, sp: ent},
	)
}

// demoPhone returns the n-th telephone number of the demo: Ofcom's range
// for drama (01632 960000–960999), which no real line uses.
func demoPhone(n int) string { return fmt.Sprintf("01632 960%03d", n%1000) }

// demoNamespace names the demo's UUIDs (uuid.NewSHA1).
var demoNamespace = uuid.MustParse("5e1d9a3c-7c1b-4d2a-9f0e-0d3e5a6b7c8d")

// demoLoader is the principal the demo county is written as (and audited
// under) when authorisation is on.
const demoLoader = "signpost-demo"

// addDemoPostcodes gives the referral service the demo county's postcode
// table (under any table the deployment loaded) when the store holds the
// demo county, loaded by this start's --demo or an earlier one, so that
// $shortlist's distances work for the demo patients without --postcodes.
// Call it before serving.
func addDemoPostcodes(ctx context.Context, a *app.App) error {
	if _, err := a.Store.Read(ctx, "Organization", demoICBs[0].id); err != nil {
		return nil // no demo county here
	}
	pcs, err := demoPostcodes()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	a.Referral.AddPostcodes(pcs)
	return nil
}

// loadDemo loads the demo county into a, once, and tops up its slots; its
// postcode table places the demo patients (addDemoPostcodes).
func loadDemo(ctx context.Context, a *app.App, out io.Writer) error {
	scopes, _ := auth.ParseScopes("system/*.cruds")
	ctx = auth.NewContext(ctx, &auth.Principal{Subject: demoLoader, ClientID: demoLoader, Scopes: scopes})
	rnd := rand.New(rand.NewPCG(7, 7)) // the same county every time
	loaded := false
	if _, err := a.Store.Read(ctx, "Organization", demoICBs[0].id); err == nil {
		loaded = true
	}
	var services []string
	err := a.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		services = nil
		w := &demoWriter{ctx: ctx, tx: tx, skip: loaded}
		phone := 0
		next := func() string { phone++; return demoPhone(phone) }
		for _, icb := range demoICBs {
			w.put("Organization", icb.id, org(icb, "govt", "", next()))
		}
		for _, t := range append(append([]demoPlace{}, demoTrusts...), demoCommunity, demoISP) {
			w.put("Organization", t.id, org(t, "prov", "", next()))
			if t.id != demoCommunity.id { // the community trust works from its clinics
				w.put("Location", t.id, loc(t, t.id, next()))
			}
		}
		for _, s := range demoServices() {
			site := s.org.id
			if s.site != nil {
				site = s.id
				w.put("Location", s.id, loc(*s.site, s.org.id, next()))
			}
			commissioners := s.commissioners
			if commissioners == nil {
				commissioners = []string{demoICBs[0].id, demoICBs[1].id}
			}
			bookability := directory.DirectlyBookable
			if s.indirect {
				bookability = directory.IndirectlyBookable
			}
			w.put("HealthcareService", s.id, service(s.id, s.name, s.org.id, site, s.sp, commissioners,
				directory.BookabilitySystem, bookability, s.elig, next()))
			if !s.indirect {
				services = append(services, s.id)
			}
		}
		// The development server's demo staff, whom their tokens name
		// (fhirUser, and so the Provenance of what they do).
		for _, u := range devserver.DemoStaff() {
			w.put("Practitioner", u.ID, map[string]any{"resourceType": "Practitioner", "id": u.ID, "active": true,
				"name": []any{map[string]any{"text": u.Name}}})
		}
		// Twenty GP practices, ten per ICB, and their patients.
		n := 0
		for i := range 20 {
			icb := demoICBs[i%2]
			p := demoPlace{fmt.Sprintf("demo-gp-%02d", i+1), demoPracticeName(i), fmt.Sprintf("J%05d", 82001+i),
				50.80 + 0.03*float64(i%10) + 0.1*float64(i%2), -1.90 + 0.035*float64(i)}
			if i == 0 {
				p.ods = devserver.DemoGPPractice // the GP system demo client's practice
			}
			o := org(p, "prov", icb.id, next())
			o["address"] = []any{address(fmt.Sprintf("%d %s", 1+i*3, demoStreets[i%len(demoStreets)]), p.lat, p.lon)}
			w.put("Organization", p.id, o)
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
	if err := addDemoPostcodes(ctx, a); err != nil {
		return err
	}
	// Top up free slots for the next six weeks, then recompute waits once.
	added := 0
	today := time.Now().In(a.Location)
	for i, id := range services {
		err := a.Writes.UpdateWith(ctx, write.TxOptions{DeferDerived: true}, func(ctx context.Context, tx *write.Tx) error {
			w := &demoWriter{ctx: ctx, tx: tx}
			sched := "demo-sched-" + id[len("demo-hs-"):]
			w.put("Schedule", sched, map[string]any{"resourceType": "Schedule", "active": true,
				"actor": []any{map[string]any{"reference": "HealthcareService/" + id}}})
			clinicDays := []time.Weekday{time.Weekday(1 + i%5), time.Weekday(1 + (i+2)%5)}
			perDay := 3 + i%4
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
	// Then the referrals, once: every patient has one to act on.
	seeded, err := seedDemoReferrals(ctx, a)
	if err != nil {
		return err
	}
	verb := "loaded"
	if loaded {
		verb = "already loaded"
	}
	fmt.Fprintf(out, "demo county %s: %d services with schedules, %d GP practices, 80 patients, %d referrals (%d new); %d free slots added for the next %d weeks\n",
		verb, len(services), 20, len(demoReferrals()), seeded, added, demoWeeks)
	printDemoSignIns(out, a)
	return nil
}

// demoWriter writes fixed-id resources, skipping those that exist.
type demoWriter struct {
	ctx  context.Context
	tx   *write.Tx
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

func org(p demoPlace, typ, partOf, phone string) map[string]any {
	o := map[string]any{"identifier": []any{map[string]any{"system": odsSystem, "value": p.ods}}, "active": true, "name": p.name,
		"type":    []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": typ}}}},
		"telecom": []any{map[string]any{"system": "phone", "value": phone, "use": "work"}}}
	if p.lat != 0 {
		o["address"] = []any{address(demoSiteLine(p.name), p.lat, p.lon)}
	}
	if partOf != "" {
		o["partOf"] = map[string]any{"reference": "Organization/" + partOf}
	}
	return o
}

func loc(p demoPlace, orgID, phone string) map[string]any {
	return map[string]any{"status": "active", "name": p.name, "position": map[string]any{"latitude": p.lat, "longitude": p.lon},
		"address":              address(demoSiteLine(p.name), p.lat, p.lon),
		"telecom":              []any{map[string]any{"system": "phone", "value": phone, "use": "work"}},
		"managingOrganization": map[string]any{"reference": "Organization/" + orgID}}
}

// address is a postal address at (lat, lon) in the demo county: in the
// nearest town, with the postcode of its square in the postcode table.
func address(line string, lat, lon float64) map[string]any {
	return map[string]any{"use": "work", "line": []any{line}, "city": demoTown(lat, lon), "district": "Wessex Vale",
		"postalCode": demoPostcodeAt(lat, lon), "country": "GB"}
}

// demoSiteLine is the first address line of a site, from its name.
func demoSiteLine(name string) string {
	switch {
	case strings.Contains(name, "Hospital"), strings.Contains(name, "Trust"):
		return "Hospital Road"
	case strings.Contains(name, "ICB"):
		return "Council Offices, Market Place"
	case strings.Contains(name, "Treatment Centre"):
		return "Ellingford Business Park"
	}
	return "Health Centre, Station Road"
}

var demoStreets = []string{"High Street", "Church Lane", "Mill Road", "Station Road", "Chalk Hill", "Orchard Way", "Victoria Road",
	"The Green", "Abbey Close", "Harbour Walk", "Downs View", "Meadow Rise", "Quay Street"}

func service(id, name, orgID, locID string, sp demoSpecialty, commissioners []string, bookSystem, bookCode string, elig map[string]any, phone string) map[string]any {
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
		if m, ok := elig["max"]; ok {
			sub = append(sub, map[string]any{"url": "max-age", "valueInteger": m})
		}
		ext = append(ext, map[string]any{"url": referral.Eligibility, "extension": sub})
	}
	comment := "Referral criteria, booking guidance, transport and quality notes are published with each clinic letter."
	if bookCode == directory.IndirectlyBookable {
		comment = "Referral assessment service: the clinical team triages each referral and books the appointment with the patient. " + comment
	}
	return map[string]any{"extension": ext, "active": true, "providedBy": map[string]any{"reference": "Organization/" + orgID},
		"specialty":      []any{map[string]any{"coding": []any{map[string]any{"system": sct, "code": sp.code, "display": sp.name}}}},
		"location":       []any{map[string]any{"reference": "Location/" + locID}},
		"name":           name,
		"telecom":        []any{map[string]any{"system": "phone", "value": phone, "use": "work"}},
		"comment":        comment,
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

// demoPatient is the n-th demo patient (the k-th of practice gp), living
// at (lat, lon): the address carries the postcode there, and no
// geolocation, so that $shortlist places the patient by the county's
// postcode table.
func demoPatient(n int, gp string, lat, lon float64, k int) map[string]any {
	gender := []string{"female", "male"}[n%2]
	birth := time.Date(1940+(n*7)%80, time.Month(1+n%12), 1+n%28, 0, 0, 0, 0, time.UTC)
	home := address(fmt.Sprintf("%d %s", 2+n%40, demoStreets[(n+k)%len(demoStreets)]), lat, lon)
	home["use"] = "home"
	return map[string]any{
		"identifier": []any{map[string]any{"system": referral.NHSNumberSystem, "value": demoNHSNumber(n)}},
		"name":       []any{map[string]any{"family": demoFamilies[n%10], "given": []any{demoGiven[(n+k)%10]}}},
		"gender":     gender, "birthDate": birth.Format("2006-01-02"),
		"generalPractitioner": []any{map[string]any{"reference": "Organization/" + gp}},
		"address":             []any{home},
	}
}
