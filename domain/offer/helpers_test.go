package offer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/offer"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// world is a real server over SQLite with the test directory
// (testdata/directory.json): dermatology services, a cardiology service.
type world struct {
	t      *testing.T
	a      *app.App
	base   string
	token  string
	nhs    int               // the next NHS number's stem
	sched  map[string]string // service → its schedule
	filler string            // a patient whose bookings stand in for everyone else's
}

func newWorld(t *testing.T, cfg app.Config) *world {
	t.Helper()
	a, ts := apptest.New(t, cfg)
	w := &world{t: t, a: a, base: ts.URL + "/fhir", nhs: 999000100, sched: map[string]string{}}
	if !cfg.Auth {
		w.load()
	}
	return w
}

// load writes the directory and the filler patient.
func (w *world) load() {
	b, err := os.ReadFile("testdata/directory.json")
	if err != nil {
		w.t.Fatal(err)
	}
	w.must(200, "POST", "", b)
	w.filler = w.patient("filler")
}

// as returns a copy of w that sends token.
func (w *world) as(token string) *world { v := *w; v.token = token; return &v }

// in returns a copy of w reporting to t.
func (w *world) in(t *testing.T) *world { v := *w; v.t = t; return &v }

func (w *world) do(method, path string, body any) (int, map[string]any) {
	w.t.Helper()
	status, out, err := w.try(method, path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	return status, out
}

// try is do for any goroutine: it reports failures instead of ending the
// test.
func (w *world) try(method, path string, body any) (int, map[string]any, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, w.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if w.token != "" {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &out); err != nil {
			return 0, nil, fmt.Errorf("%s %s: %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, out, nil
}

func (w *world) must(want int, method, path string, body any) map[string]any {
	w.t.Helper()
	status, out := w.do(method, path, body)
	if status != want {
		b, _ := json.Marshal(out)
		w.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	return out
}

func (w *world) search(path string) []map[string]any {
	w.t.Helper()
	var out []map[string]any
	for _, e := range asList(w.must(200, "GET", path, nil)["entry"]) {
		if r, _ := e.(map[string]any)["resource"].(map[string]any); r != nil && r["resourceType"] != "OperationOutcome" {
			out = append(out, r)
		}
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

func ref(r string) map[string]any { return map[string]any{"reference": r} }

func params(kv ...any) map[string]any {
	var ps []map[string]any
	for i := 0; i+1 < len(kv); i += 2 {
		p := map[string]any{"name": kv[i]}
		switch v := kv[i+1].(type) {
		case string:
			p["valueString"] = v
		case map[string]any:
			p["valueReference"] = v
		}
		ps = append(ps, p)
	}
	return map[string]any{"resourceType": "Parameters", "parameter": ps}
}

// nhsNumber returns a valid NHS number (modulus 11 check digit).
func (w *world) nhsNumber() string {
	for {
		w.nhs++
		s := fmt.Sprintf("%09d", w.nhs)
		sum := 0
		for i, c := range s {
			sum += int(c-'0') * (10 - i)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check != 10 {
			return s + fmt.Sprint(check)
		}
	}
}

// patient writes a patient registered with the directory's practice.
func (w *world) patient(id string) string {
	w.t.Helper()
	w.must(201, "PUT", "/Patient/"+id, map[string]any{"resourceType": "Patient", "id": id,
		"identifier": []any{map[string]any{"system": referral.NHSNumberSystem, "value": w.nhsNumber()}},
		"name":       []any{map[string]any{"family": "Test", "given": []any{id}}}, "gender": "female", "birthDate": "1980-05-17",
		"generalPractitioner": []any{ref("Organization/gp-a")},
		"address":             []any{map[string]any{"line": []any{"1 River Street"}, "postalCode": "ZZ1 1AA"}}})
	return "Patient/" + id
}

// specialties of the test referrals.
var specialties = map[string]string{"derm": "394582007", "cardio": "394579002"}

// referral writes a referral for patient; priority is routine, urgent or
// 2ww; it was made ago days ago.
func (w *world) referral(patient, specialty, priority string, ago int) string {
	w.t.Helper()
	sr := map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
		"subject": ref(patient), "requester": ref("Organization/gp-a"),
		"performerType": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": specialties[specialty]}}},
		"category":      []any{map[string]any{"coding": []any{map[string]any{"system": referral.Base + "/CodeSystem/referral-source", "code": "gp"}}}},
		"authoredOn":    time.Now().UTC().AddDate(0, 0, -ago).Format("2006-01-02")}
	switch priority {
	case "urgent":
		sr["priority"] = "urgent"
	case "2ww":
		sr["priority"] = "urgent"
		sr["extension"] = []any{map[string]any{"url": referral.PriorityExtension,
			"valueCoding": map[string]any{"system": referral.PrioritySystem, "code": "two-week-wait"}}}
	}
	out := w.must(201, "POST", "/ServiceRequest", sr)
	return "ServiceRequest/" + out["id"].(string)
}

// slot publishes a free 20-minute slot of service at 10:00 UTC day days
// from now (plus minutes).
func (w *world) slot(service string, day, minutes int) string {
	w.t.Helper()
	if w.sched[service] == "" {
		out := w.must(201, "POST", "/Schedule", map[string]any{"resourceType": "Schedule", "active": true,
			"actor": []any{ref("HealthcareService/" + service)}})
		w.sched[service] = "Schedule/" + out["id"].(string)
	}
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 10, minutes, 0, 0, time.UTC).AddDate(0, 0, day)
	out := w.must(201, "POST", "/Slot", map[string]any{"resourceType": "Slot", "schedule": ref(w.sched[service]), "status": "free",
		"start": start.Format(time.RFC3339), "end": start.Add(20 * time.Minute).Format(time.RFC3339)})
	return "Slot/" + out["id"].(string)
}

// book books slot for patient (for referral, when not "") and returns the
// appointment.
func (w *world) book(patient, referral, service, slot string) string {
	w.t.Helper()
	status, out := w.tryBook(patient, referral, service, slot)
	if status != 201 {
		b, _ := json.Marshal(out)
		w.t.Fatalf("booking %s for %s: %d %s", slot, patient, status, b)
	}
	return "Appointment/" + out["id"].(string)
}

func (w *world) tryBook(patient, referral, service, slot string) (int, map[string]any) {
	w.t.Helper()
	a := map[string]any{"resourceType": "Appointment", "status": "booked", "slot": []any{ref(slot)},
		"participant": []any{map[string]any{"actor": ref(patient), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}}
	if referral != "" {
		a["basedOn"] = []any{ref(referral)}
	}
	return w.do("POST", "/Appointment", a)
}

// cancel cancels an appointment by an update, as a client does.
func (w *world) cancel(appt string) {
	w.t.Helper()
	a := w.must(200, "GET", "/"+appt, nil)
	a["status"] = "cancelled"
	a["cancelationReason"] = map[string]any{"text": "patient cancelled"}
	w.must(200, "PUT", "/"+appt, a)
}

// requestEarlier asks for an earlier slot for appt and returns the Task.
func (w *world) requestEarlier(appt string, kv ...any) map[string]any {
	w.t.Helper()
	status, out := w.do("POST", "/"+appt+"/$request-earlier", params(kv...))
	if status != 201 && status != 200 {
		b, _ := json.Marshal(out)
		w.t.Fatalf("$request-earlier %s: %d %s", appt, status, b)
	}
	return out
}

// offers returns the open offers (pending Appointments with the offer
// extension), by patient.
func (w *world) offers() map[string]map[string]any {
	w.t.Helper()
	out := map[string]map[string]any{}
	for _, a := range w.search("/Appointment?status=pending&_count=1000") {
		if offerExt(a) == nil {
			continue
		}
		p := patientOf(a)
		if out[p] != nil {
			w.t.Fatalf("%s holds two offers", p)
		}
		out[p] = a
	}
	return out
}

func offerExt(a map[string]any) map[string]any {
	for _, e := range asList(a["extension"]) {
		if m := e.(map[string]any); m["url"] == offer.Extension {
			return m
		}
	}
	return nil
}

func sub(ext map[string]any, name string) any {
	for _, e := range asList(ext["extension"]) {
		m := e.(map[string]any)
		if m["url"] == name {
			if r, ok := m["valueReference"].(map[string]any); ok {
				return r["reference"]
			}
			return m["valueBoolean"]
		}
	}
	return nil
}

func patientOf(a map[string]any) string {
	for _, p := range asList(a["participant"]) {
		r, _ := p.(map[string]any)["actor"].(map[string]any)
		if s, _ := r["reference"].(string); strings.HasPrefix(s, "Patient/") {
			return s
		}
	}
	return ""
}

func slotOf(a map[string]any) string {
	return asList(a["slot"])[0].(map[string]any)["reference"].(string)
}

// status returns a resource's status.
func (w *world) status(ref string) string {
	w.t.Helper()
	s, _ := w.must(200, "GET", "/"+ref, nil)["status"].(string)
	return s
}

// state returns the referral's workflow state.
func (w *world) state(sr string) string {
	w.t.Helper()
	ts := w.search("/Task?focus=" + sr + "&code=" + referral.TaskCodeSystem + "|" + referral.TaskCode)
	if len(ts) != 1 {
		w.t.Fatalf("%s has %d workflow Tasks", sr, len(ts))
	}
	c, _ := asList(ts[0]["businessStatus"].(map[string]any)["coding"])[0].(map[string]any)["code"].(string)
	return c
}

// expire moves an offer's hold-expires into the past, straight in the
// store, as time passing would; the test then sweeps (Booking.Sweep).
func (w *world) expire(appt string) {
	w.t.Helper()
	_, id, _ := fhir.SplitReference(appt)
	err := w.a.Store.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		res, err := tx.Read(ctx, "Appointment", id)
		if err != nil {
			return err
		}
		obj, err := fhir.ParseObject(res.JSON)
		if err != nil {
			return err
		}
		past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
		var exts []map[string]any
		json.Unmarshal(obj.Get("extension"), &exts)
		for _, e := range exts {
			if e["url"] == booking.ExtHoldExpires {
				e["valueInstant"] = past
			}
		}
		obj.Set("extension", exts)
		idx, err := w.a.Search.Extract("Appointment", obj.Bytes())
		if err != nil {
			return err
		}
		next := &fhir.Resource{Type: "Appointment", ID: id, Version: res.Version + 1, LastUpdated: time.Now().UTC(), JSON: obj.Bytes()}
		return tx.Put(ctx, &store.Write{Resource: next, Index: idx})
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// consistent checks what signpost check checks (booking.Check): every
// busy slot held by one live appointment, no slot held twice.
func (w *world) consistent() {
	w.t.Helper()
	findings, _, err := booking.Check(context.Background(), w.a.Store, w.a.Location)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, f := range findings {
		w.t.Errorf("inconsistent: %s", f)
	}
}

func nowUTC() time.Time { return time.Now().UTC() }

func mustMarshal(v any) []byte { b, _ := json.Marshal(v); return b }
