package search

import (
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
)

// FuzzParse checks that parsing search parameters never panics, refuses
// with a *fhir.Error, and that what it accepts round-trips through the self
// link: the applied parameters (SelfParams) parse again to the same
// filter, includes, sort and canonical form. Seeds: typical searches,
// escapes, chains and _has, and the corpus in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []struct{ typ, q string }{
		{"Slot", "schedule=Schedule/s1&status=free&start=ge2026-03-01&_include=Slot:schedule&_count=20"},
		{"Slot", "schedule.actor=HealthcareService/x&status=free,busy-tentative&_sort=start"},
		{"Patient", `identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009&family:exact=Zoë&name:contains=a\,b`},
		{"HealthcareService", "specialty=http://snomed.info/sct|394802001&_has:Schedule:actor:_has:Slot:schedule:status=free"},
		{"Appointment", "slot:missing=true&date=lt2026-03-01T10:00:00+01:00&_lastUpdated=gt2026&_total=accurate"},
		{"Location", "near=51.5|-0.12|10|km&_summary=count&_elements=name,address"},
		{"ServiceRequest", "subject:Patient.identifier=x|y&_revinclude=Task:focus&_sort=-authored"},
		{"Slot", "_has:Appointment:slot:status=booked&schedule:Schedule.actor:HealthcareService.name=clinic"},
		{"", "_type=Patient,Slot&_id=a,b"},
		{"Slot", "start=2026-13-45&status:not=busy&_count=-1&unknown=1"},
	} {
		f.Add(s.typ, s.q, false)
		f.Add(s.typ, s.q, true)
	}
	r := testRegistry(f)
	f.Fuzz(func(t *testing.T, typ, raw string, strict bool) {
		params, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		opts := ParseOptions{Strict: strict}
		q, err := r.Parse(typ, params, opts)
		if err != nil {
			if fhir.AsError(err) == nil {
				t.Fatalf("Parse(%q, %q): error %T %v, not a *fhir.Error", typ, raw, err, err)
			}
			return
		}
		self := q.SelfParams()
		q2, err := r.Parse(typ, self, opts)
		if err != nil {
			t.Fatalf("Parse(%q, %q) accepted, but its self link %q is refused: %v", typ, raw, self.Encode(), err)
		}
		if !reflect.DeepEqual(q.Filter, q2.Filter) {
			t.Fatalf("filter of %q changed through the self link %q:\n%#v\n%#v", raw, self.Encode(), q.Filter, q2.Filter)
		}
		if !reflect.DeepEqual(q.Include, q2.Include) || !reflect.DeepEqual(q.RevInclude, q2.RevInclude) || !reflect.DeepEqual(q.Sort, q2.Sort) {
			t.Fatalf("includes or sort of %q changed through the self link %q", raw, self.Encode())
		}
		if q.Canonical() != q2.Canonical() {
			t.Fatalf("canonical form of %q: %q, then %q", raw, q.Canonical(), q2.Canonical())
		}
	})
}

// FuzzDateRange checks that DateRange never panics and that every value it
// accepts covers a non-empty range [low, high).
func FuzzDateRange(f *testing.F) {
	for _, s := range []string{"2026", "2026-03", "2026-03-29", "2026-03-29T01:30", "2026-03-29T10:00:00.5Z",
		"2026-10-25T01:30:00+01:00", "2026-13-45", "0000-01-01", "9999-12-31T23:59:59.999999999-14:00", "2026-02-29", ""} {
		f.Add(s)
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		low, high, err := DateRange(s, london)
		if err != nil {
			return
		}
		if low >= high {
			t.Fatalf("DateRange(%q) = [%d, %d): empty", s, low, high)
		}
	})
}
