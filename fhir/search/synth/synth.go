// Package synth generates a synthetic but realistic healthcare region for
// tests and benchmarks: organisations with ODS codes, locations with
// coordinates, HealthcareServices across a dozen specialties,
// practitioners, schedules, slots over a number of weeks (times in
// Europe/London, so the window crosses clock changes), patients with valid
// NHS numbers and accented names, and appointments booking some of the
// busy slots. The output is deterministic for a seed and is streamed: a
// million slots never sit in memory.
package synth

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Resource is one generated resource.
type Resource struct {
	Type, ID string
	JSON     []byte
}

// Config sizes the region.
type Config struct {
	Seed     uint64
	Slots    int // total slots
	Patients int
	// Appointments books that many busy slots (at most the busy ones).
	Appointments int
	// SlotsPerSchedule sets how many schedules carry the slots (default 500).
	SlotsPerSchedule int
	// SchedulesPerService sets how many schedules a service has (default 3).
	SchedulesPerService int
	// Start is the first day of the slots (default Monday 2 March 2026, so
	// twelve weeks cross the change to summer time on 29 March); Weeks is
	// how many weeks of weekdays they cover (default 12).
	Start time.Time
	Weeks int
}

// Specialty is a clinical specialty as SNOMED CT codes it.
type Specialty struct{ Code, Display string }

// SNOMEDSystem is the code system of Specialties.
const SNOMEDSystem = "http://snomed.info/sct"

// SignpostBase is the canonical base of Signpost's own definitions, whose
// extensions (waiting time, eligibility) the services carry.
const SignpostBase = "https://signpost.example/fhir"

// NHSNumberSystem and ODSSystem are the identifier systems used.
const (
	NHSNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"
	ODSSystem       = "https://fhir.nhs.uk/Id/ods-organization-code"
	GMCSystem       = "https://fhir.hl7.org.uk/Id/gmc-number"
)

// Specialties are the dozen specialties services are spread across.
var Specialties = []Specialty{
	{"394579002", "Cardiology"}, {"394582007", "Dermatology"}, {"394584008", "Gastroenterology"},
	{"394585009", "Obstetrics and gynaecology"}, {"394589003", "Nephrology"}, {"394591006", "Neurology"},
	{"394594003", "Ophthalmology"}, {"394609007", "General surgery"}, {"394801008", "Trauma and orthopaedics"},
	{"394537008", "Paediatrics"}, {"418112009", "Respiratory medicine"}, {"394612005", "Urology"},
}

// SlotStatuses are the slot statuses and how often each occurs (percent).
var SlotStatuses = []struct {
	Code    string
	Percent int
}{{"free", 70}, {"busy", 24}, {"busy-unavailable", 4}, {"busy-tentative", 2}}

var (
	families = []string{"Smith", "Jones", "Williams", "Brown", "Taylor", "Davies", "Evans", "Okafor", "Patel", "Khan",
		"O'Brien", "Müller", "Gómez", "Łukasiewicz", "Ó Súilleabháin", "Nguyễn", "Zoël", "Begum", "Singh", "Wright"}
	givens = []string{"Zoë", "Siân", "José", "Chloé", "Amélie", "Björn", "Oliver", "Amelia", "Mohammed", "Olivia",
		"Noah", "Isla", "Jack", "Ava", "Ada", "Ngozi", "Priya", "Seán", "Renée", "Tomás"}
	cities = []struct {
		Name     string
		Lat, Lon float64
	}{{"Leeds", 53.7997, -1.5492}, {"Bradford", 53.7960, -1.7594}, {"Wakefield", 53.6833, -1.4977},
		{"Harrogate", 53.9921, -1.5418}, {"York", 53.9590, -1.0815}, {"Huddersfield", 53.6458, -1.7850}}
	orgWords = []string{"Teaching Hospitals", "Community Health", "Healthcare", "Clinics", "Diagnostics"}
)

// NHSNumber returns a valid NHS number, distinct for each n >= 0: ten
// digits from 9000000000 upwards whose last is the modulus 11 check digit
// of the first nine. (Of two neighbouring nine-digit stems 2n and 2n+1 at
// most one has no valid check digit.)
func NHSNumber(n int) string {
	stem := 900000000 + 2*n
	d, ok := checkDigit(stem)
	if !ok {
		stem++
		d, _ = checkDigit(stem)
	}
	return strconv.Itoa(stem) + strconv.Itoa(d)
}

// ValidNHSNumber reports whether s is ten digits with a correct modulus 11
// check digit.
func ValidNHSNumber(s string) bool {
	if len(s) != 10 {
		return false
	}
	n, err := strconv.Atoi(s[:9])
	if err != nil || s[9] < '0' || s[9] > '9' {
		return false
	}
	d, ok := checkDigit(n)
	return ok && int(s[9]-'0') == d
}

// checkDigit computes the modulus 11 check digit of a nine-digit number:
// weights 10 down to 2, 11 minus the remainder, 11 becomes 0 and 10 is
// invalid.
func checkDigit(n int) (int, bool) {
	sum := 0
	for w := 2; w <= 10; w++ {
		sum += (n % 10) * w
		n /= 10
	}
	d := 11 - sum%11
	switch d {
	case 11:
		return 0, true
	case 10:
		return 0, false
	}
	return d, true
}

// Counts are the sizes Generate derives from a Config.
type Counts struct {
	Organizations, Locations, Services, Practitioners, Schedules, Slots, Patients, Appointments int
}

func (c *Config) defaults() {
	if c.SlotsPerSchedule <= 0 {
		c.SlotsPerSchedule = 500
	}
	if c.SchedulesPerService <= 0 {
		c.SchedulesPerService = 3
	}
	if c.Weeks <= 0 {
		c.Weeks = 12
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	}
}

// Plan returns the sizes Generate will produce for cfg.
func Plan(cfg Config) Counts {
	cfg.defaults()
	var n Counts
	n.Slots, n.Patients = cfg.Slots, cfg.Patients
	n.Schedules = max(1, (cfg.Slots+cfg.SlotsPerSchedule-1)/cfg.SlotsPerSchedule)
	n.Services = max(1, (n.Schedules+cfg.SchedulesPerService-1)/cfg.SchedulesPerService)
	n.Organizations = max(1, (n.Services+7)/8)
	n.Locations = n.Organizations * 2
	n.Practitioners = n.Schedules
	n.Appointments = cfg.Appointments
	return n
}

// Generate emits the region in dependency order (organisations, locations,
// services, practitioners, schedules, slots, patients, appointments),
// stopping at the first error emit returns.
func Generate(cfg Config, emit func(Resource) error) error {
	cfg.defaults()
	n := Plan(cfg)
	g := &gen{cfg: cfg, n: n, rnd: rand.New(rand.NewPCG(cfg.Seed, 0x5167)), emit: emit}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	g.loc = london
	for _, step := range []func() error{g.organizations, g.locations, g.services, g.practitioners, g.schedules, g.slots, g.patients, g.appointments} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

type gen struct {
	cfg    Config
	n      Counts
	rnd    *rand.Rand
	loc    *time.Location
	emit   func(Resource) error
	buf    []byte
	svcs   []service // per service: its specialty and organisation
	booked []booking // busy slots to book
}

type service struct {
	spec Specialty
	org  int
	loc  int
}

type booking struct {
	slot, schedule int
	start, end     string
}

func (g *gen) out(typ, id string) error {
	b := make([]byte, len(g.buf))
	copy(b, g.buf)
	return g.emit(Resource{Type: typ, ID: id, JSON: b})
}

func q(s string) string { return strconv.Quote(s) }

func (g *gen) pick(list []string) string { return list[g.rnd.IntN(len(list))] }

func orgID(i int) string  { return fmt.Sprintf("org-%04d", i) }
func locID(i int) string  { return fmt.Sprintf("loc-%04d", i) }
func hsID(i int) string   { return fmt.Sprintf("hs-%05d", i) }
func prID(i int) string   { return fmt.Sprintf("pr-%05d", i) }
func schID(i int) string  { return fmt.Sprintf("sch-%05d", i) }
func slotID(i int) string { return fmt.Sprintf("slot-%07d", i) }
func patID(i int) string  { return fmt.Sprintf("pat-%06d", i) }
func apID(i int) string   { return fmt.Sprintf("appt-%06d", i) }

func (g *gen) organizations() error {
	for i := range g.n.Organizations {
		city := cities[i%len(cities)]
		ods := fmt.Sprintf("R%c%c%d", 'A'+byte(i/26%26), 'A'+byte(i%26), i%10)
		name := fmt.Sprintf("%s %s", city.Name, orgWords[i%len(orgWords)])
		if i >= len(cities)*len(orgWords) {
			name += " " + strconv.Itoa(i)
		}
		g.buf = fmt.Appendf(g.buf[:0], `{"resourceType":"Organization","id":%q,"identifier":[{"system":%q,"value":%q}],"active":true,`+
			`"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"prov","display":"Healthcare Provider"}]}],`+
			`"name":%s,"telecom":[{"system":"phone","value":"0113 %03d %04d"}],"address":[{"line":["%d Infirmary Street"],"city":%q,"postalCode":"LS%d %dAB","country":"GB"}]}`,
			orgID(i), ODSSystem, ods, q(name), i%1000, i, 1+i%90, city.Name, 1+i%29, i%10)
		if err := g.out("Organization", orgID(i)); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) locations() error {
	for i := range g.n.Locations {
		org := i / 2
		city := cities[org%len(cities)]
		lat := city.Lat + (g.rnd.Float64()-0.5)*0.2
		lon := city.Lon + (g.rnd.Float64()-0.5)*0.3
		g.buf = fmt.Appendf(g.buf[:0], `{"resourceType":"Location","id":%q,"status":"active","name":"%s site %d","mode":"instance",`+
			`"address":{"line":["%d Hospital Lane"],"city":%q,"postalCode":"LS%d %dQT","country":"GB"},`+
			`"position":{"longitude":%.5f,"latitude":%.5f},"managingOrganization":{"reference":"Organization/%s"}}`,
			locID(i), city.Name, i, 1+i%200, city.Name, 1+i%29, i%10, lon, lat, orgID(org))
		if err := g.out("Location", locID(i)); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) services() error {
	for i := range g.n.Services {
		org := i % g.n.Organizations
		spec := Specialties[(i/g.n.Organizations+org)%len(Specialties)]
		loc := org*2 + i%2
		g.svcs = append(g.svcs, service{spec: spec, org: org, loc: loc})
		active := "true"
		if i%17 == 16 {
			active = "false"
		}
		// Waiting times (days) for most services; age limits for some.
		var ext []string
		if i%10 != 9 {
			ext = append(ext, fmt.Sprintf(`{"url":"%s/StructureDefinition/waiting-time","extension":[{"url":"days","valueInteger":%d}]}`,
				SignpostBase, 3+g.rnd.IntN(120)))
		}
		switch {
		case spec.Code == "394537008": // paediatrics
			ext = append(ext, fmt.Sprintf(`{"url":"%s/StructureDefinition/eligibility","extension":[{"url":"max-age","valueInteger":17}]}`, SignpostBase))
		case i%5 == 0:
			ext = append(ext, fmt.Sprintf(`{"url":"%s/StructureDefinition/eligibility","extension":[{"url":"min-age","valueInteger":%d}]}`, SignpostBase, 16+i%3))
		}
		extJSON := ""
		if len(ext) > 0 {
			extJSON = `"extension":[` + strings.Join(ext, ",") + `],`
		}
		g.buf = fmt.Appendf(g.buf[:0], `{"resourceType":"HealthcareService","id":%q,`+extJSON+`"active":%s,"providedBy":{"reference":"Organization/%s"},`+
			`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/service-category","code":"35","display":"Hospital"}]}],`+
			`"specialty":[{"coding":[{"system":%q,"code":%q,"display":%q}]}],"location":[{"reference":"Location/%s"}],`+
			`"name":"%s clinic %d","appointmentRequired":true}`,
			hsID(i), active, orgID(org), SNOMEDSystem, spec.Code, spec.Display, locID(loc), spec.Display, i)
		if err := g.out("HealthcareService", hsID(i)); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) practitioners() error {
	for i := range g.n.Practitioners {
		gender := "female"
		if g.rnd.IntN(2) == 0 {
			gender = "male"
		}
		g.buf = fmt.Appendf(g.buf[:0], `{"resourceType":"Practitioner","id":%q,"identifier":[{"system":%q,"value":"%07d"}],"active":true,`+
			`"name":[{"family":%s,"given":[%s],"prefix":["Dr"]}],"gender":%q}`,
			prID(i), GMCSystem, 2000000+i, q(g.pick(families)), q(g.pick(givens)), gender)
		if err := g.out("Practitioner", prID(i)); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) horizon() (string, string) {
	end := g.cfg.Start.AddDate(0, 0, 7*g.cfg.Weeks)
	return g.cfg.Start.Format(time.DateOnly), end.Format(time.DateOnly)
}

func (g *gen) schedules() error {
	from, to := g.horizon()
	for i := range g.n.Schedules {
		s := g.svcs[i%g.n.Services]
		g.buf = fmt.Appendf(g.buf[:0], `{"resourceType":"Schedule","id":%q,"active":true,`+
			`"specialty":[{"coding":[{"system":%q,"code":%q,"display":%q}]}],`+
			`"actor":[{"reference":"HealthcareService/%s"},{"reference":"Practitioner/%s"},{"reference":"Location/%s"}],`+
			`"planningHorizon":{"start":%q,"end":%q}}`,
			schID(i), SNOMEDSystem, s.spec.Code, s.spec.Display, hsID(i%g.n.Services), prID(i), locID(s.loc), from, to)
		if err := g.out("Schedule", schID(i)); err != nil {
			return err
		}
	}
	return nil
}

// weekdays lists the days slots fall on.
func (g *gen) weekdays() []time.Time {
	var days []time.Time
	d := g.cfg.Start
	for range 7 * g.cfg.Weeks {
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			days = append(days, d)
		}
		d = d.AddDate(0, 0, 1)
	}
	return days
}

func (g *gen) slots() error {
	days := g.weekdays()
	per := (g.n.Slots + g.n.Schedules - 1) / g.n.Schedules
	perDay := max(1, (per+len(days)-1)/len(days))
	minutes := []int{15, 20, 30}
	bookEvery := 0
	if g.cfg.Appointments > 0 {
		bookEvery = max(1, g.n.Slots*24/100/g.cfg.Appointments)
	}
	busySeen := 0
	id := 0
	for s := 0; s < g.n.Schedules && id < g.n.Slots; s++ {
		svc := g.svcs[s%g.n.Services]
		dur := minutes[s%len(minutes)]
		for k := 0; k < per && id < g.n.Slots; k++ {
			day := days[(k/perDay)%len(days)]
			y, m, d := day.Date()
			minute := 9*60 + (k%perDay)*dur
			start := time.Date(y, m, d, minute/60, minute%60, 0, 0, g.loc)
			end := start.Add(time.Duration(dur) * time.Minute)
			status := g.status()
			st, en := start.Format(time.RFC3339), end.Format(time.RFC3339)
			g.buf = fmt.Appendf(g.buf[:0], `{"resourceType":"Slot","id":%q,`+
				`"serviceCategory":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/service-category","code":"35"}]}],`+
				`"specialty":[{"coding":[{"system":%q,"code":%q,"display":%q}]}],`+
				`"appointmentType":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0276","code":"ROUTINE"}]},`+
				`"schedule":{"reference":"Schedule/%s"},"status":%q,"start":%q,"end":%q}`,
				slotID(id), SNOMEDSystem, svc.spec.Code, svc.spec.Display, schID(s), status, st, en)
			if err := g.out("Slot", slotID(id)); err != nil {
				return err
			}
			if status == "busy" && bookEvery > 0 && len(g.booked) < g.cfg.Appointments {
				if busySeen%bookEvery == 0 {
					g.booked = append(g.booked, booking{slot: id, schedule: s, start: st, end: en})
				}
				busySeen++
			}
			id++
		}
	}
	return nil
}

func (g *gen) status() string {
	x := g.rnd.IntN(100)
	for _, s := range SlotStatuses {
		if x < s.Percent {
			return s.Code
		}
		x -= s.Percent
	}
	return "free"
}

func (g *gen) patients() error {
	for i := range g.n.Patients {
		born := time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.rnd.IntN(95*365))
		birth := born.Format(time.DateOnly)
		switch g.rnd.IntN(50) {
		case 0:
			birth = born.Format("2006-01")
		case 1:
			birth = born.Format("2006")
		}
		gender := "female"
		switch x := g.rnd.IntN(100); {
		case x < 48:
			gender = "male"
		case x < 50:
			gender = "other"
		case x < 52:
			gender = "unknown"
		}
		city := cities[g.rnd.IntN(len(cities))]
		g.buf = fmt.Appendf(g.buf[:0], `{"resourceType":"Patient","id":%q,"identifier":[{"system":%q,"value":%q}],"active":%t,`+
			`"name":[{"use":"official","family":%s,"given":[%s]}],"gender":%q,"birthDate":%q,`+
			`"address":[{"line":["%d High Street"],"city":%q,"postalCode":"LS%d %dXY"}],`+
			`"generalPractitioner":[{"reference":"Organization/%s"}]}`,
			patID(i), NHSNumberSystem, NHSNumber(i), g.rnd.IntN(20) != 0, q(g.pick(families)), q(g.pick(givens)), gender, birth,
			1+g.rnd.IntN(300), city.Name, 1+g.rnd.IntN(29), g.rnd.IntN(10), orgID(g.rnd.IntN(g.n.Organizations)))
		if err := g.out("Patient", patID(i)); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) appointments() error {
	if g.n.Patients == 0 {
		return nil
	}
	for i, b := range g.booked {
		svc := g.svcs[b.schedule%g.n.Services]
		g.buf = fmt.Appendf(g.buf[:0], `{"resourceType":"Appointment","id":%q,"status":"booked",`+
			`"specialty":[{"coding":[{"system":%q,"code":%q}]}],"start":%q,"end":%q,"slot":[{"reference":"Slot/%s"}],`+
			`"participant":[{"actor":{"reference":"Patient/%s"},"status":"accepted"},{"actor":{"reference":"Practitioner/%s"},"status":"accepted"},`+
			`{"actor":{"reference":"HealthcareService/%s"},"status":"accepted"}]}`,
			apID(i), SNOMEDSystem, svc.spec.Code, b.start, b.end, slotID(b.slot), patID(g.rnd.IntN(g.n.Patients)), prID(b.schedule), hsID(b.schedule%g.n.Services))
		if err := g.out("Appointment", apID(i)); err != nil {
			return err
		}
	}
	return nil
}
