package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/search/synth"
	"github.com/signpost-fhir/signpost/store"
)

// DiffConfig sizes the differential test's data set.
var DiffConfig = synth.Config{Seed: 7, Slots: 2000, Patients: 500, Appointments: 120, SlotsPerSchedule: 20, SchedulesPerService: 3}

// DiffQueries is how many generated queries the differential test runs.
const DiffQueries = 400

// testSearchDifferential loads a generated region, changes part of it,
// and runs generated queries (every parameter type, prefixes, modifiers,
// OR and AND, chains, _has, _sort, paging, includes) against the store and
// the in-memory oracle: same matches, same order, page by page.
func testSearchDifferential(t *testing.T, s store.Store) {
	l := newLoader(t, s)
	t0 := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	var batch []*fhir.Resource
	i := 0
	err := synth.Generate(DiffConfig, func(r synth.Resource) error {
		batch = append(batch, &fhir.Resource{Type: r.Type, ID: r.ID, JSON: r.JSON,
			LastUpdated: t0.Add(time.Duration(i/4) * time.Second)})
		i++
		if len(batch) == 250 {
			l.write(t0, batch...)
			batch = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.write(t0, batch...)
	// Change some: slots change status (their lastUpdated moves), some
	// patients are deleted, one appointment is cancelled.
	n := synth.Plan(DiffConfig)
	t1 := t0.Add(24 * time.Hour)
	var changes []*fhir.Resource
	for i := 0; i < n.Slots; i += 23 {
		old := l.cur[fmt.Sprintf("Slot/slot-%07d", i)]
		body := strings.Replace(string(old.JSON), `"status":"free"`, `"status":"busy"`, 1)
		if body == string(old.JSON) {
			body = strings.Replace(body, `"status":"busy"`, `"status":"free"`, 1)
		}
		changes = append(changes, &fhir.Resource{Type: "Slot", ID: old.ID, JSON: []byte(body), LastUpdated: t1.Add(time.Duration(i%3) * time.Second)})
	}
	for i := 0; i < n.Patients; i += 37 {
		changes = append(changes, &fhir.Resource{Type: "Patient", ID: fmt.Sprintf("pat-%06d", i)})
	}
	l.write(t1, changes...)

	o, err := search.NewOracle(l.reg, l.current())
	if err != nil {
		t.Fatal(err)
	}
	g := &queryGen{r: rand.New(rand.NewPCG(11, 13)), n: n}
	ctx := context.Background()
	failures, nonEmpty := 0, 0
	for qi := range DiffQueries {
		qs := g.query(qi)
		q := parse(t, l.reg, qs)
		o.Now = time.Now().UnixMicro()
		want := o.Search(q)
		var got []string
		var firstPage []*fhir.Resource
		var pageIDs [][]string
		var prevOf2 string
		q.Cursor = ""
		for p := 0; p < 15; p++ {
			page, err := s.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", qs, err)
			}
			if p == 0 {
				firstPage = page.Resources
			}
			if p == 1 {
				prevOf2 = page.Prev
			}
			got = append(got, ids(page.Resources)...)
			pageIDs = append(pageIDs, ids(page.Resources))
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		wantIDs := ids(want)
		if len(wantIDs) > 0 {
			nonEmpty++
		} else if testing.Verbose() {
			t.Logf("no matches: %s", qs)
		}
		// Fifteen pages at most: then got must be a prefix of want.
		complete := len(got) <= len(wantIDs)
		if len(pageIDs) < 15 {
			complete = len(got) == len(wantIDs)
		}
		if !complete || !slices.Equal(got, wantIDs[:min(len(got), len(wantIDs))]) {
			failures++
			t.Errorf("query %d %s:\nstore  %d %v\noracle %d %v", qi, qs, len(got), head(got), len(wantIDs), head(wantIDs))
			if failures > 10 {
				t.Fatal("too many differences")
			}
			continue
		}
		if prevOf2 != "" {
			q.Cursor = prevOf2
			page, err := s.Search(ctx, q)
			if err != nil || !slices.Equal(ids(page.Resources), pageIDs[0]) {
				t.Errorf("%s: previous of page 2 = %v, %v; want page 1 %v", qs, ids(page.Resources), err, pageIDs[0])
			}
		}
		if len(q.Include) > 0 || len(q.RevInclude) > 0 {
			inc, err := store.Includes(ctx, s, l.reg, q, firstPage)
			if err != nil {
				t.Fatalf("%s: includes: %v", qs, err)
			}
			gotInc := refs(inc)
			wantInc := refs(o.Included(q, want[:len(firstPage)]))
			if !slices.Equal(gotInc, wantInc) {
				t.Errorf("%s: included\n%v\nwant\n%v", qs, gotInc, wantInc)
			}
		}
	}
	// The generated queries must mostly find something to be a test.
	if nonEmpty < DiffQueries/2 {
		t.Errorf("only %d of %d generated queries match anything", nonEmpty, DiffQueries)
	}
	t.Logf("%d queries, %d with matches", DiffQueries, nonEmpty)
}

func head(ids []string) []string { return ids[:min(len(ids), 12)] }

func refs(rs []*fhir.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Reference())
	}
	slices.Sort(out)
	return out
}

// queryGen makes random searches over a synth data set.
type queryGen struct {
	r *rand.Rand
	n synth.Counts
}

func (g *queryGen) pick(list ...string) string { return list[g.r.IntN(len(list))] }

func (g *queryGen) id(format string, n int) string { return fmt.Sprintf(format, g.r.IntN(max(n, 1))) }

// date returns a date, dateTime or instant value in or near the slots'
// window, at a random precision and zone ('+' percent-encoded).
func (g *queryGen) date() string {
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.r.IntN(90)-3)
	hm := fmt.Sprintf("T%02d:%02d", 9+g.r.IntN(3), []int{0, 15, 20, 30, 40}[g.r.IntN(5)])
	switch g.r.IntN(8) {
	case 0:
		return day.Format("2006-01")
	case 1, 2:
		return day.Format(time.DateOnly)
	case 3:
		return day.Format(time.DateOnly) + hm
	case 4:
		return day.Format(time.DateOnly) + hm + ":00Z"
	case 5:
		return day.Format(time.DateOnly) + hm + ":00%2B01:00"
	case 6:
		return "2026-03-29" // the clock change
	}
	return day.Format(time.DateOnly) + hm + ":00"
}

func (g *queryGen) prefix() string {
	return g.pick("", "", "ge", "gt", "le", "lt", "eq", "ne", "sa", "eb")
}

func (g *queryGen) spec() string {
	return synth.Specialties[g.r.IntN(len(synth.Specialties))].Code
}

func (g *queryGen) birth() string {
	y := 1930 + g.r.IntN(95)
	switch g.r.IntN(3) {
	case 0:
		return fmt.Sprint(y)
	case 1:
		return fmt.Sprintf("%d-%02d", y, 1+g.r.IntN(12))
	}
	return fmt.Sprintf("%d-%02d-%02d", y, 1+g.r.IntN(12), 1+g.r.IntN(28))
}

// window is the hot query's date window: ge a day, le two weeks later.
func (g *queryGen) window(param string) string {
	d := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).AddDate(0, 0, g.r.IntN(80))
	return param + "=ge" + d.Format(time.DateOnly) + "&" + param + "=le" + d.AddDate(0, 0, 14).Format(time.DateOnly)
}

type template struct {
	typ     string
	filters []func() string
	sorts   []string
	incs    []string
}

func (g *queryGen) templates() []template {
	n := g.n
	slot := func() string { return g.id("slot-%07d", n.Slots) }
	sch := func() string { return g.id("sch-%05d", n.Schedules) }
	hs := func() string { return g.id("hs-%05d", n.Services) }
	pr := func() string { return g.id("pr-%05d", n.Practitioners) }
	pat := func() string { return g.id("pat-%06d", n.Patients) }
	org := func() string { return g.id("org-%04d", n.Organizations) }
	loc := func() string { return g.id("loc-%04d", n.Locations) }
	nhs := func() string { return synth.NHSNumber(g.r.IntN(max(n.Patients, 1))) }
	family := func() string {
		return g.pick("smi", "o'b", "mull", "müller", "lukas", "o su", "nguyen", "zoe", "okafor", "patel", "w", "gomez")
	}
	return []template{
		{typ: "Slot", filters: []func() string{
			func() string {
				return "status=" + g.pick("free", "busy", "free,busy-tentative", "|free", "busy-unavailable")
			},
			func() string { return "status:not=" + g.pick("busy", "free") },
			func() string { return "start=" + g.prefix() + g.date() },
			func() string { return "end=" + g.prefix() + g.date() },
			func() string { return g.window("start") },
			func() string { return "schedule=Schedule/" + sch() + "&" + g.window("start") },
			func() string {
				return "schedule=" + g.pick("Schedule/"+sch(), sch(), Base+"/Schedule/"+sch(), "Schedule/"+sch()+",Schedule/"+sch())
			},
			func() string {
				return "schedule.actor:HealthcareService=HealthcareService/" + hs() + "&" + g.window("start")
			},
			func() string { return "schedule.actor:HealthcareService=HealthcareService/" + hs() },
			func() string {
				return "schedule.actor:HealthcareService.specialty=" + url.QueryEscape(synth.SNOMEDSystem+"|"+g.spec())
			},
			func() string { return "schedule.actor:Practitioner.family=" + url.QueryEscape(family()) },
			func() string {
				return "specialty=" + g.pick(g.spec(), url.QueryEscape(synth.SNOMEDSystem+"|"+g.spec()))
			},
			func() string { return "specialty:text=" + g.pick("cardio", "neuro", "general", "trauma") },
			func() string { return "appointment-type=" + g.pick("ROUTINE", "WALKIN") },
			func() string { return "service-type:missing=" + g.pick("true", "false") },
			func() string { return "_id=" + slot() + "," + slot() + "," + slot() },
			func() string { return "_lastUpdated=" + g.pick("ge", "lt", "gt") + "2026-02-02" },
			func() string { return "_has:Appointment:slot:status=booked" },
		}, sorts: []string{"start", "-start", "status,-start", "schedule,start", "-end,_id", "-_lastUpdated", "specialty,-_id"},
			incs: []string{"Slot:schedule", "Slot:schedule&_include:iterate=Schedule:actor"}},
		{typ: "Patient", filters: []func() string{
			func() string { return "family=" + url.QueryEscape(family()) },
			func() string {
				return "family:exact=" + url.QueryEscape(g.pick("Müller", "Muller", "O'Brien", "Zoël", "Smith"))
			},
			func() string { return "family:contains=" + g.pick("ll", "an", "ka", "é", "e") },
			func() string { return "given=" + url.QueryEscape(g.pick("zo", "sian", "jose", "Björn", "ada", "TOM")) },
			func() string { return "name=" + url.QueryEscape(g.pick("zoe", "smith", "priya")) },
			func() string {
				return "identifier=" + g.pick(url.QueryEscape(synth.NHSNumberSystem+"|"+nhs()), nhs(), "%7C"+nhs())
			},
			func() string { return "birthdate=" + g.prefix() + g.birth() },
			func() string { return "gender=" + g.pick("female", "other,unknown", "male") },
			func() string { return "active=" + g.pick("true", "false") },
			func() string { return "active:missing=" + g.pick("true", "false") },
			func() string { return "general-practitioner=Organization/" + org() },
			func() string { return "address-city=" + g.pick("leeds", "york", "hudd") },
			func() string { return "_has:Appointment:patient:status=booked" },
			func() string { return "_id=" + pat() + "," + pat() },
		}, sorts: []string{"family", "-birthdate", "birthdate,_id", "-family,given", "gender,-_lastUpdated", "general-practitioner", "-identifier"}},
		{typ: "HealthcareService", filters: []func() string{
			func() string { return "specialty=" + url.QueryEscape(synth.SNOMEDSystem+"|"+g.spec()) },
			func() string { return "active=" + g.pick("true", "false") },
			func() string { return "organization=Organization/" + org() },
			func() string { return "location=Location/" + loc() },
			func() string { return "name=" + g.pick("cardio", "derm", "neuro") },
			func() string { return "organization.name=" + g.pick("leeds", "bradford") },
			func() string { return "organization.identifier=" + url.QueryEscape(synth.ODSSystem+"|RAA0") },
			func() string { return "_has:Schedule:actor:specialty=" + g.spec() },
			func() string { return "waiting-time=" + g.prefix() + fmt.Sprint(g.r.IntN(130)) },
			func() string {
				return "waiting-time=ge" + fmt.Sprint(g.r.IntN(60)) + "&waiting-time=le" + fmt.Sprint(40+g.r.IntN(80))
			},
			func() string { return "min-age:missing=" + g.pick("true", "false") },
			func() string { return "max-age=" + g.pick("17", "ge17", "lt18") },
		}, sorts: []string{"name", "-specialty,_id", "organization", "waiting-time", "-waiting-time,name", "min-age,-_id"}, incs: []string{"HealthcareService:organization"}},
		{typ: "Location", filters: []func() string{
			func() string {
				return "near=" + g.pick("53.8|-1.55|10|km", "53.96|-1.08|5|km", "53.7|-1.6|20|km", "54.5|-1.0|1|km")
			},
			func() string { return "address-city=" + g.pick("york", "leeds", "harro") },
			func() string { return "organization=Organization/" + org() },
			func() string { return "name:contains=" + g.pick("site 1", "leeds") },
		}, sorts: []string{"name", "-address-city"}},
		{typ: "Schedule", filters: []func() string{
			func() string { return "actor=" + g.pick("HealthcareService/"+hs(), "Practitioner/"+pr()) },
			func() string { return "actor:Practitioner=" + pr() },
			func() string { return "specialty=" + g.spec() },
			func() string { return "date=" + g.prefix() + g.date() },
			func() string { return "_has:Slot:schedule:status=" + g.pick("free", "busy-tentative") },
		}, sorts: []string{"_id", "-date"}, incs: []string{"Schedule:actor:HealthcareService"}},
		{typ: "Appointment", filters: []func() string{
			func() string { return "status=" + g.pick("booked", "cancelled") },
			func() string { return "slot=Slot/" + slot() },
			func() string { return "patient=Patient/" + pat() },
			func() string { return "patient=Patient/" + pat() + "&" + g.window("date") },
			func() string { return "date=" + g.prefix() + g.date() },
			func() string { return "actor=Practitioner/" + pr() },
			func() string { return "patient.identifier=" + url.QueryEscape(synth.NHSNumberSystem+"|"+nhs()) },
			func() string { return "practitioner.family=" + url.QueryEscape(family()) },
			func() string { return "specialty=" + g.spec() },
		}, sorts: []string{"date", "-date", "patient,_id"}, incs: []string{"Appointment:patient", "Appointment:slot&_include:iterate=Slot:schedule"}},
		{typ: "Organization", filters: []func() string{
			func() string { return "identifier=" + url.QueryEscape(synth.ODSSystem+"|"+g.pick("RAA0", "RAB1")) },
			func() string { return "name=" + g.pick("leeds", "brad") },
			func() string { return "address-postalcode=" + g.pick("LS1", "ls2") },
		}, sorts: []string{"name"}, incs: []string{}},
	}
}

// query returns the i-th generated search.
func (g *queryGen) query(i int) string {
	ts := g.templates()
	// Slots and patients are most of the data and of the traffic.
	t := ts[[]int{0, 0, 0, 1, 1, 2, 3, 4, 5, 6}[i%10]]
	var parts []string
	for range []int{1, 1, 1, 1, 1, 2, 2, 2, 3, 3}[g.r.IntN(10)] {
		parts = append(parts, t.filters[g.r.IntN(len(t.filters))]())
	}
	if g.r.IntN(10) < 4 {
		parts = append(parts, "_sort="+t.sorts[g.r.IntN(len(t.sorts))])
	}
	if len(t.incs) > 0 && g.r.IntN(6) == 0 {
		parts = append(parts, "_include="+t.incs[g.r.IntN(len(t.incs))])
	}
	parts = append(parts, "_count="+g.pick("3", "7", "50", "1000"))
	return t.typ + "?" + strings.Join(parts, "&")
}
