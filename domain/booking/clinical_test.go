package booking_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/fhir"
)

// The ways a write reaches the server: as a single request, as the only
// entry of a transaction, and of a batch.
var writeModes = []string{"single", "transaction", "batch"}

// sent is one write a row sends.
type sent struct {
	method, url string
	body        any    // the resource (POST, PUT)
	patch       string // the JSON Patch (PATCH)
}

// outcome is what a write answered: its status and, for an error, the
// OperationOutcome (a batch entry's own).
type outcome struct {
	status int
	body   []byte
}

func (o outcome) issues() []struct {
	Code        string
	Diagnostics string
	Expression  []string
	Details     struct {
		Coding []struct{ System, Code string }
	}
} {
	var oo struct {
		Issue []struct {
			Code        string
			Diagnostics string
			Expression  []string
			Details     struct {
				Coding []struct{ System, Code string }
			}
		}
	}
	json.Unmarshal(o.body, &oo)
	return oo.Issue
}

// detail returns the first issue's Signpost error code.
func (o outcome) detail() string {
	for _, is := range o.issues() {
		for _, c := range is.Details.Coding {
			if c.System == fhir.ErrorSystem {
				return c.Code
			}
		}
	}
	return ""
}

var bundleEntryPrefix = regexp.MustCompile(`^Bundle\.entry\[\d+\](\.resource)?`)

// expressions returns the issues' locations, those inside a Bundle entry
// written as in the resource itself ("Bundle.entry[0].resource.status" →
// "Appointment.status"; a rule's error in an entry is located at
// "Bundle.entry[0].status").
func (o outcome) expressions(typ string) []string {
	var out []string
	for _, is := range o.issues() {
		for _, x := range is.Expression {
			out = append(out, bundleEntryPrefix.ReplaceAllString(x, typ))
		}
	}
	return out
}

// send sends w in mode.
func (s *server) send(t *testing.T, mode string, w sent) outcome {
	t.Helper()
	if mode == "single" {
		if w.method == "PATCH" {
			r := s.do("PATCH", "/"+w.url, w.patch, "Content-Type", "application/json-patch+json")
			return outcome{r.status, r.body}
		}
		r := s.do(w.method, "/"+w.url, w.body)
		return outcome{r.status, r.body}
	}
	e := map[string]any{"request": map[string]any{"method": w.method, "url": w.url}}
	switch w.method {
	case "PATCH":
		e["resource"] = map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json",
			"data": base64.StdEncoding.EncodeToString([]byte(w.patch))}
	default:
		e["resource"] = w.body
	}
	r := s.do("POST", "", map[string]any{"resourceType": "Bundle", "type": mode, "entry": []any{e}})
	if mode == "transaction" {
		if r.status != 200 {
			return outcome{r.status, r.body}
		}
	} else if r.status != 200 {
		t.Fatalf("batch: status %d: %s", r.status, r.body)
	}
	var b struct {
		Entry []struct {
			Response struct {
				Status  string
				Outcome json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil || len(b.Entry) != 1 {
		t.Fatalf("%s answered %s", mode, r.body)
	}
	var status int
	fmt.Sscan(b.Entry[0].Response.Status, &status)
	return outcome{status, b.Entry[0].Response.Outcome}
}

// versions returns the current version of every resource of the types
// rows may touch, by "Type/id".
func (s *server) versions(t *testing.T) map[string]int64 {
	t.Helper()
	return apptest.Versions(t, s.app, "Appointment", "Slot", "Schedule", "Patient", "HealthcareService", "ServiceRequest", "Task", "Provenance")
}

// intoThePast moves Appointment/id and its slots back in time, as time
// passing would: afterwards the appointment started ago ago.
func (s *server) intoThePast(t *testing.T, id string, ago time.Duration) {
	t.Helper()
	apptest.IntoThePast(t, s.app, id, ago)
}

// clinicalFixture makes fresh appointments for the rows of the clinical
// state tables: every (row, mode) acts on its own.
type clinicalFixture struct {
	s *server
	n int
}

// bookedAppointment books a fresh slot of schedule sc for patient pat and
// returns the appointment's id; when ago is not 0 it is then moved so that
// it started ago ago (its 20-minute slot may still be running).
func (f *clinicalFixture) bookedAppointment(t *testing.T, pat string, ago time.Duration) string {
	t.Helper()
	f.n++
	slot := fmt.Sprintf("cs%d", f.n)
	f.s.put(slotAt(slot, "sc", tomorrow9().Add(time.Duration(f.n)*30*time.Minute), 20*time.Minute))
	r := must(t, "booking", f.s.do("POST", "/Appointment", booked(pat, slot)), 201)
	id := r.json()["id"].(string)
	if ago != 0 {
		f.s.intoThePast(t, id, ago)
	}
	return id
}

// recorded is an appointment recorded without slots, starting at start
// and lasting 20 minutes.
func recorded(pat, status string, start time.Time, extra map[string]any) map[string]any {
	a := map[string]any{"resourceType": "Appointment", "status": status,
		"start": start.UTC().Format(time.RFC3339), "end": start.Add(20 * time.Minute).UTC().Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": ref("Patient/" + pat), "status": "accepted"}}}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// withStatus returns Appointment/id's current JSON with status set.
func (f *clinicalFixture) withStatus(id, status string) map[string]any {
	a := f.s.read("Appointment", id)
	a["status"] = status
	return a
}

// TestClinicalStateRules: an appointment cannot be arrived, checked-in or
// fulfilled before its start, nor noshow before its end, whichever way the
// write arrives; once the time has come, it can. Each row runs as a single
// request, in a transaction and in a batch, each time on a fresh
// appointment; a refused row changes nothing.
func TestClinicalStateRules(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	f := &clinicalFixture{s: s}
	future := tomorrow9().Add(72 * time.Hour)
	type row struct {
		name   string
		write  func(t *testing.T) sent
		status int
		detail string
	}
	var rows []row
	early := map[string]string{"arrived": booking.ErrNotStarted, "checked-in": booking.ErrNotStarted,
		"fulfilled": booking.ErrNotStarted, "noshow": booking.ErrNotEnded}
	for _, st := range []string{"arrived", "checked-in", "fulfilled", "noshow"} {
		rows = append(rows,
			row{st + " recorded before its start (POST)", func(t *testing.T) sent {
				return sent{method: "POST", url: "Appointment", body: recorded("p1", st, future, nil)}
			}, 422, early[st]},
			row{"booked then " + st + " before its start (PUT)", func(t *testing.T) sent {
				id := f.bookedAppointment(t, "p1", 0)
				return sent{method: "PUT", url: "Appointment/" + id, body: f.withStatus(id, st)}
			}, 422, early[st]},
			row{"booked then " + st + " before its start (PATCH)", func(t *testing.T) sent {
				id := f.bookedAppointment(t, "p1", 0)
				return sent{method: "PATCH", url: "Appointment/" + id, patch: `[{"op":"replace","path":"/status","value":"` + st + `"}]`}
			}, 422, early[st]},
			row{"booked then " + st + " an hour after it ended (PATCH)", func(t *testing.T) sent {
				id := f.bookedAppointment(t, "p1", time.Hour)
				return sent{method: "PATCH", url: "Appointment/" + id, patch: `[{"op":"replace","path":"/status","value":"` + st + `"}]`}
			}, 200, ""},
		)
	}
	rows = append(rows,
		row{"noshow while it is running (PUT)", func(t *testing.T) sent {
			id := f.bookedAppointment(t, "p1", 5*time.Minute)
			return sent{method: "PUT", url: "Appointment/" + id, body: f.withStatus(id, "noshow")}
		}, 422, booking.ErrNotEnded},
		row{"noshow recorded while it is running (POST)", func(t *testing.T) sent {
			return sent{method: "POST", url: "Appointment", body: recorded("p1", "noshow", time.Now().Add(-5*time.Minute), nil)}
		}, 422, booking.ErrNotEnded},
		row{"arrived while it is running (PUT)", func(t *testing.T) sent {
			id := f.bookedAppointment(t, "p1", 5*time.Minute)
			return sent{method: "PUT", url: "Appointment/" + id, body: f.withStatus(id, "arrived")}
		}, 200, ""},
		row{"fulfilled recorded after the event (POST)", func(t *testing.T) sent {
			return sent{method: "POST", url: "Appointment", body: recorded("p1", "fulfilled", time.Now().Add(-3*time.Hour), nil)}
		}, 201, ""},
		row{"a recorded appointment moved later while arrived (PUT)", func(t *testing.T) sent {
			r := must(t, "recording", s.do("POST", "/Appointment", recorded("p1", "arrived", time.Now().Add(-time.Hour), nil)), 201)
			a := r.json()
			a["start"], a["end"] = future.Format(time.RFC3339), future.Add(20*time.Minute).Format(time.RFC3339)
			return sent{method: "PUT", url: "Appointment/" + a["id"].(string), body: a}
		}, 422, booking.ErrNotStarted},
	)
	for _, tc := range rows {
		for _, mode := range writeModes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				s.checkRule(t, mode, tc.write(t), tc.status, tc.detail, "Appointment.status")
			})
		}
	}
}

// checkRule sends w by mode and checks the answer's status; for a refusal
// by a rule (detail set) also its one business-rule issue, with that
// detail, at where, and that nothing changed. It returns the refusal for
// further checks, nil for an accepted write.
func (s *server) checkRule(t *testing.T, mode string, w sent, status int, detail, where string) *outcome {
	t.Helper()
	before := s.versions(t)
	got := s.send(t, mode, w)
	if got.status != status {
		t.Fatalf("status %d, want %d: %s", got.status, status, got.body)
	}
	if detail == "" {
		return nil
	}
	if got.detail() != detail {
		t.Errorf("detail %q, want %q: %s", got.detail(), detail, got.body)
	}
	if is := got.issues(); len(is) != 1 || is[0].Code != "business-rule" {
		t.Errorf("issues %+v, want one business-rule issue", is)
	}
	if diff := cmp.Diff([]string{where}, got.expressions("Appointment")); diff != "" {
		t.Errorf("issue locations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, s.versions(t)); diff != "" {
		t.Errorf("a refused write changed resources (-before +after):\n%s", diff)
	}
	return &got
}

// TestFollowUpAppointments: a follow-up's previousAppointment must be an
// existing appointment of the same patient; every way of failing that gets
// the same answer, which names nothing of another patient; a follow-up is
// found with previous-appointment.
func TestFollowUpAppointments(t *testing.T) {
	s := newServer(t, app.Config{})
	s.basic()
	s.put(`{"resourceType":"Patient","id":"p3","name":[{"family":"Otherpatient","given":["Pat"]}]}`)
	past := time.Now().Add(-48 * time.Hour)
	mk := func(pat string) string {
		r := must(t, "recording", s.do("POST", "/Appointment", recorded(pat, "fulfilled", past, nil)), 201)
		return r.json()["id"].(string)
	}
	mine, theirs, gone := mk("p1"), mk("p3"), mk("p1")
	must(t, "deleting", s.do("DELETE", "/Appointment/"+gone, nil), 204)
	follow := func(prev ...string) map[string]any {
		var ext []any
		for _, p := range prev {
			ext = append(ext, map[string]any{"url": booking.ExtPreviousAppointment, "valueReference": ref(p)})
		}
		return map[string]any{"extension": ext}
	}
	future := tomorrow9().Add(7 * 24 * time.Hour)
	const invalid = booking.ErrPreviousAppointment
	type row struct {
		name   string
		write  func(t *testing.T) sent
		status int
		detail string
		where  string
	}
	extAt := func(i int) string { return fmt.Sprintf("Appointment.extension[%d].valueReference", i) }
	rows := []row{
		{"follows the patient's own appointment", func(t *testing.T) sent {
			return sent{method: "POST", url: "Appointment", body: recorded("p1", "booked", future, follow("Appointment/"+mine))}
		}, 201, "", ""},
		{"follows another patient's appointment", func(t *testing.T) sent {
			return sent{method: "POST", url: "Appointment", body: recorded("p1", "booked", future, follow("Appointment/"+theirs))}
		}, 422, invalid, extAt(0)},
		{"follows an appointment that does not exist", func(t *testing.T) sent {
			return sent{method: "POST", url: "Appointment", body: recorded("p1", "booked", future, follow("Appointment/nope"))}
		}, 422, invalid, extAt(0)},
		{"follows a deleted appointment", func(t *testing.T) sent {
			return sent{method: "POST", url: "Appointment", body: recorded("p1", "booked", future, follow("Appointment/"+gone))}
		}, 422, invalid, extAt(0)},
		{"follows something that is not an appointment", func(t *testing.T) sent {
			return sent{method: "POST", url: "Appointment", body: recorded("p1", "booked", future, follow("Patient/p1"))}
		}, 422, invalid, extAt(0)},
		{"follows two appointments", func(t *testing.T) sent {
			return sent{method: "POST", url: "Appointment", body: recorded("p1", "booked", future, follow("Appointment/"+mine, "Appointment/"+mine))}
		}, 422, invalid, "Appointment.extension[1]"},
		{"a follow-up without a patient", func(t *testing.T) sent {
			a := recorded("p1", "proposed", future, follow("Appointment/"+mine))
			a["participant"] = []any{map[string]any{"actor": ref("HealthcareService/hs"), "status": "needs-action"}}
			return sent{method: "POST", url: "Appointment", body: a}
		}, 422, invalid, extAt(0)},
		{"an appointment made a follow-up of another patient's (PUT)", func(t *testing.T) sent {
			r := must(t, "recording", s.do("POST", "/Appointment", recorded("p1", "proposed", future, nil)), 201)
			a := r.json()
			a["extension"] = follow("Appointment/" + theirs)["extension"]
			return sent{method: "PUT", url: "Appointment/" + a["id"].(string), body: a}
		}, 422, invalid, extAt(0)},
		{"an appointment made a follow-up of another patient's (PATCH)", func(t *testing.T) sent {
			r := must(t, "recording", s.do("POST", "/Appointment", recorded("p1", "proposed", future, nil)), 201)
			return sent{method: "PATCH", url: "Appointment/" + r.json()["id"].(string),
				patch: `[{"op":"add","path":"/extension","value":[{"url":"` + booking.ExtPreviousAppointment + `","valueReference":{"reference":"Appointment/` + theirs + `"}}]}]`}
		}, 422, invalid, extAt(0)},
		{"a follow-up moved to another patient (PATCH)", func(t *testing.T) sent {
			r := must(t, "recording", s.do("POST", "/Appointment", recorded("p1", "proposed", future, follow("Appointment/"+mine))), 201)
			return sent{method: "PATCH", url: "Appointment/" + r.json()["id"].(string),
				patch: `[{"op":"replace","path":"/participant/0/actor/reference","value":"Patient/p3"}]`}
		}, 422, invalid, extAt(0)},
		{"a follow-up amended, its previous appointment since deleted", func(t *testing.T) sent {
			prev := mk("p1")
			r := must(t, "recording", s.do("POST", "/Appointment", recorded("p1", "proposed", future, follow("Appointment/"+prev))), 201)
			must(t, "deleting", s.do("DELETE", "/Appointment/"+prev, nil), 204)
			return sent{method: "PATCH", url: "Appointment/" + r.json()["id"].(string),
				patch: `[{"op":"add","path":"/comment","value":"bring your glasses"}]`}
		}, 200, "", ""},
	}
	diagnostics := map[string]bool{}
	for _, tc := range rows {
		for _, mode := range writeModes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				got := s.checkRule(t, mode, tc.write(t), tc.status, tc.detail, tc.where)
				if got == nil {
					return
				}
				for _, leak := range []string{theirs, "p3", "Otherpatient", gone} {
					if strings.Contains(string(got.body), leak) {
						t.Errorf("the answer names %q: %s", leak, got.body)
					}
				}
				for _, is := range got.issues() {
					diagnostics[is.Diagnostics] = true
				}
			})
		}
	}
	// Missing, deleted, another patient's, no patient: one answer.
	if len(diagnostics) != 2 { // and "at most one previousAppointment"
		t.Errorf("the refusals say %d different things, want 2 (one for a bad reference, one for two references): %v", len(diagnostics), diagnostics)
	}

	// previous-appointment finds the follow-ups of mine: one per mode
	// booked by the first row, and one per mode made by the row whose move
	// to another patient was refused.
	r := must(t, "search", s.do("GET", "/Appointment?previous-appointment=Appointment/"+mine, nil), 200)
	if got := len(entries(t, r)); got != 6 {
		t.Errorf("previous-appointment=Appointment/%s found %d, want the 6 follow-ups", mine, got)
	}
	for _, a := range entries(t, r) {
		if a["extension"] == nil {
			t.Errorf("previous-appointment found %v, which follows nothing", a["id"])
		}
	}
	if got := s.count("/Appointment?previous-appointment=Appointment/" + theirs); got != 0 {
		t.Errorf("previous-appointment=Appointment/%s (refused follow-ups) found %d, want 0", theirs, got)
	}
}

// TestFollowUpSearchStaysInTheCompartment: a patient searching by
// previous-appointment finds their own follow-ups, and nothing through
// another patient's appointment; the search parameter is in the
// CapabilityStatement.
func TestFollowUpSearchStaysInTheCompartment(t *testing.T) {
	data := t.TempDir()
	seed := newServer(t, app.Config{Data: data})
	seed.basic()
	past := time.Now().Add(-48 * time.Hour)
	first := must(t, "recording", seed.do("POST", "/Appointment", recorded("p1", "fulfilled", past, nil)), 201).json()["id"].(string)
	next := must(t, "recording", seed.do("POST", "/Appointment", recorded("p1", "booked", tomorrow9(),
		map[string]any{"extension": []any{map[string]any{"url": booking.ExtPreviousAppointment, "valueReference": ref("Appointment/" + first)}}})), 201).json()["id"].(string)
	seed.app.Close()

	s := newServer(t, app.Config{Data: data, Auth: true})
	for _, tc := range []struct {
		patient string
		want    []string
	}{{"p1", []string{next}}, {"p2", nil}} {
		tok, err := devserver.MintToken(data, devserver.TokenOptions{Scope: "patient/*.cruds", Patient: tc.patient, Client: devserver.ClientPatientApp})
		if err != nil {
			t.Fatal(err)
		}
		s.token = tok
		var got []string
		for _, a := range entries(t, must(t, "search", s.do("GET", "/Appointment?previous-appointment=Appointment/"+first, nil), 200)) {
			got = append(got, a["id"].(string))
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Patient/%s searching previous-appointment (-want +got):\n%s", tc.patient, diff)
		}
	}
	cs := string(must(t, "metadata", s.do("GET", "/metadata", nil), 200).body)
	if !strings.Contains(cs, `"https://signpost.example/fhir/SearchParameter/Appointment-previous-appointment"`) {
		t.Errorf("the CapabilityStatement does not list previous-appointment")
	}
}
