package gpconnect_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/adapters/gpconnect"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
)

// TestBookingPaths: every path that books a practice's slot books it at
// the practice before Signpost confirms it (POST, PUT, a transaction or
// batch Bundle of one entry, $book of a resource and of a hold), each
// answering the booked Appointment with the practice's appointment id; a
// transaction of several entries that would book one is refused (422
// GP_PRACTICE_CONFIRMS_ALONE) with nothing written.
func TestBookingPaths(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if err := f.poll(); err != nil {
		t.Fatal(err)
	}
	tok := f.Token(devserver.ClientCallCentre, apptest.SystemScopes)
	slots := f.slots(tok)
	entry := func(res map[string]any) map[string]any {
		return map[string]any{"resource": res, "request": map[string]any{"method": "POST", "url": "Appointment"}}
	}
	first := func(b map[string]any) map[string]any {
		e := entries(b)
		if len(e) == 0 {
			return nil
		}
		r, _ := e[0].(map[string]any)["resource"].(map[string]any)
		return r
	}
	params := func(ps ...map[string]any) map[string]any {
		var out []any
		for _, p := range ps {
			out = append(out, p)
		}
		return map[string]any{"resourceType": "Parameters", "parameter": out}
	}
	paths := []struct {
		name string
		book func(slot map[string]any) (int, map[string]any)
	}{
		{"POST", func(s map[string]any) (int, map[string]any) { return f.Do(tok, "POST", "/Appointment", appointment(s)) }},
		{"PUT", func(s map[string]any) (int, map[string]any) {
			a := appointment(s)
			a["id"] = "put-1"
			return f.Do(tok, "PUT", "/Appointment/put-1", a)
		}},
		{"transaction", func(s map[string]any) (int, map[string]any) {
			st, b := f.Do(tok, "POST", "", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{entry(appointment(s))}})
			return st, first(b)
		}},
		{"batch", func(s map[string]any) (int, map[string]any) {
			st, b := f.Do(tok, "POST", "", map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{entry(appointment(s))}})
			return st, first(b)
		}},
		{"$book resource", func(s map[string]any) (int, map[string]any) {
			a := appointment(s)
			a["status"] = "proposed"
			st, b := f.Do(tok, "POST", "/Appointment/$book", params(
				map[string]any{"name": "appointment-resource", "resource": a},
				map[string]any{"name": "patient-reference", "valueReference": ref("Patient/" + patientID)}))
			return st, first(b)
		}},
		{"$book hold", func(s map[string]any) (int, map[string]any) {
			a := appointment(s)
			a["status"] = "pending"
			st, hold := f.Do(tok, "POST", "/Appointment", a)
			if st != http.StatusCreated || hold["status"] != "pending" {
				t.Fatalf("a hold: %d %v", st, hold)
			}
			st, b := f.Do(tok, "POST", "/Appointment/$book", params(
				map[string]any{"name": "appointment-reference", "valueReference": ref("Appointment/" + hold["id"].(string))}))
			return st, first(b)
		}},
	}
	for i, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			slot := slots[i]
			st, appt := p.book(slot)
			if st >= 300 || appt == nil || appt["status"] != "booked" {
				t.Fatalf("answered %d %v, want the booked Appointment", st, appt)
			}
			id := identifier(appt, gpconnect.AppointmentSystem)
			pa, ok := f.Practice.Appointment(strings.TrimPrefix(id, practice+"/"))
			if !ok || pa.Status != "booked" || pa.Slot[0].Reference != "Slot/"+strings.TrimPrefix(slot["id"].(string), "gpc-"+practice+"-") {
				t.Fatalf("the practice's appointment %q: %+v", id, pa)
			}
		})
	}
	t.Run("transaction of two", func(t *testing.T) {
		n := len(f.Practice.Requests())
		st, b := f.Do(tok, "POST", "", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			entry(appointment(slots[len(paths)])), entry(appointment(slots[len(paths)+1]))}})
		if st != http.StatusUnprocessableEntity || apptest.DetailsCode(b) != gpconnect.ErrPracticeConfirmsAlone {
			t.Fatalf("answered %d %v, want 422 %s", st, b, gpconnect.ErrPracticeConfirmsAlone)
		}
		if s := f.Read("Slot", slots[len(paths)]["id"].(string)); s["status"] != "free" {
			t.Errorf("the slot is %v", s["status"])
		}
		if m := len(f.Practice.Requests()); m != n {
			t.Errorf("the practice was asked %d times", m-n)
		}
	})
	checkRequests(t, f.Practice, devserver.ClientCallCentre, devserver.DemoCallCentre)
}
