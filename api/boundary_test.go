package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The world of the organisation-boundary tests: two GP practices, two
// provider trusts with a cardiology service each, and three patients.
// Alice is registered with practice A and referred (sr-alice, and a second
// referral sr-alice-2) to trust 1; Bob is registered with practice B,
// referred to trust 2 and booked there (appt-bob, basedOn sr-bob); Carol is
// managed by trust 2; Dave is known to no one. Every caller below is an
// outsider to some of it.
const (
	nhsAlice = "9434765919"
	nhsBob   = "9434765870"
	ubrnA    = "100000000001"
	ubrnA2   = "100000000003"
	ubrnB    = "100000000002"
	cardio   = "394579002"
)

// hidden lists, per party, what must never reach an outsider: ids, NHS
// numbers, UBRNs and a marker carried by the party's resources.
var hidden = map[string][]string{
	"A":       {"pat-alice", "sr-alice", "task-alice", "appt-alice", nhsAlice, ubrnA, "SECRET-A"},
	"A2":      {"sr-alice-2", "task-alice-2", ubrnA2, "SECRET-A2"},
	"B":       {"pat-bob", "sr-bob", "task-bob", "appt-bob", nhsBob, ubrnB, "SECRET-B"},
	"A-trace": {"sr-alice", "task-alice", "appt-alice", ubrnA}, // a trace shows the patient, nothing else
}

func ref(r string) map[string]any { return map[string]any{"reference": r} }

func odsID(code string) []any {
	return []any{map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": code}}
}

// slotTime is the start of the i-th half hour of the test's clinic days.
func slotTime(i int) time.Time {
	return time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * 30 * time.Minute)
}

// boundaryWorld returns the seed resources. Free slots are named
// slot-<trust>-<name>.
func boundaryWorld() []map[string]any {
	var w []map[string]any
	add := func(r map[string]any) { w = append(w, r) }
	for _, o := range []struct{ id, ods, name string }{
		{"org-gp-a", devserver.DemoGPPractice, "Practice A"}, {"org-gp-b", "A99002", "Practice B"},
		{"org-prov-1", devserver.DemoProvider, "Trust 1"}, {"org-prov-2", "R9902", "Trust 2"},
	} {
		add(map[string]any{"resourceType": "Organization", "id": o.id, "identifier": odsID(o.ods), "name": o.name})
	}
	specialty := []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": cardio, "display": "Cardiology"}}}}
	for _, n := range []string{"1", "2"} {
		add(map[string]any{"resourceType": "HealthcareService", "id": "hs-" + n, "active": true, "providedBy": ref("Organization/org-prov-" + n),
			"name": "Cardiology " + n, "specialty": specialty, "location": []any{ref("Location/loc-" + n)}})
		add(map[string]any{"resourceType": "Location", "id": "loc-" + n, "name": "Clinic " + n, "managingOrganization": ref("Organization/org-prov-" + n)})
		add(map[string]any{"resourceType": "Schedule", "id": "sched-" + n, "active": true, "actor": []any{ref("HealthcareService/hs-" + n)}})
	}
	i := 0
	slot := func(id, sched, status string) {
		i++
		add(map[string]any{"resourceType": "Slot", "id": id, "schedule": ref("Schedule/" + sched), "status": status,
			"start": slotTime(i).Format(time.RFC3339), "end": slotTime(i).Add(30 * time.Minute).Format(time.RFC3339)})
	}
	slot("slot-1-busy", "sched-1", "busy")
	slot("slot-2-busy", "sched-2", "busy")
	for k := 1; k <= 9; k++ {
		slot(fmt.Sprintf("slot-1-f%d", k), "sched-1", "free")
		slot(fmt.Sprintf("slot-2-f%d", k), "sched-2", "free")
	}
	for k := 1; k <= 8; k++ { // positive controls: one per row and way of sending
		for n := 1; n <= 3; n++ {
			slot(fmt.Sprintf("slot-1-p%d-%d", k, n), "sched-1", "free")
			slot(fmt.Sprintf("slot-2-p%d-%d", k, n), "sched-2", "free")
		}
	}
	nhs := func(v string) []any {
		return []any{map[string]any{"system": referral.NHSNumberSystem, "value": v}}
	}
	add(map[string]any{"resourceType": "Patient", "id": "pat-alice", "identifier": nhs(nhsAlice), "birthDate": "1980-01-01",
		"name": []any{map[string]any{"family": "Able", "given": []any{"Alice", "SECRET-A"}}}, "generalPractitioner": []any{ref("Organization/org-gp-a")}})
	add(map[string]any{"resourceType": "Patient", "id": "pat-bob", "identifier": nhs(nhsBob), "birthDate": "1981-02-02",
		"name": []any{map[string]any{"family": "Baker", "given": []any{"Bob", "SECRET-B"}}}, "generalPractitioner": []any{ref("Organization/org-gp-b")}})
	add(map[string]any{"resourceType": "Patient", "id": "pat-carol", "identifier": nhs(nhsNumber(30)), "birthDate": "1975-03-03",
		"name": []any{map[string]any{"family": "Cole"}}, "managingOrganization": ref("Organization/org-prov-2")})
	add(map[string]any{"resourceType": "Patient", "id": "pat-dave", "identifier": nhs(nhsNumber(40)), "birthDate": "1990-05-05",
		"name": []any{map[string]any{"family": "Dunn"}}})
	referralOf := func(id, patient, gp, service, ubrn, note string) {
		add(map[string]any{"resourceType": "ServiceRequest", "id": id, "status": "active", "intent": "order", "priority": "routine",
			"identifier": []any{map[string]any{"system": referral.UBRNSystem, "value": ubrn}},
			"subject":    ref("Patient/" + patient), "requester": ref("Organization/" + gp), "performer": []any{ref("HealthcareService/" + service)},
			"performerType": specialty[0], "authoredOn": "2030-01-01T09:00:00Z", "note": []any{map[string]any{"text": note}}})
	}
	task := func(id, sr, patient, gp, service, ubrn, state string) {
		add(map[string]any{"resourceType": "Task", "id": id, "status": "ready", "intent": "order",
			"identifier":     []any{map[string]any{"system": referral.UBRNSystem, "value": ubrn}},
			"code":           map[string]any{"coding": []any{map[string]any{"system": referral.TaskCodeSystem, "code": referral.TaskCode}}},
			"businessStatus": map[string]any{"coding": []any{map[string]any{"system": referral.StateSystem, "code": state}}},
			"focus":          ref("ServiceRequest/" + sr), "for": ref("Patient/" + patient), "requester": ref("Organization/" + gp),
			"owner": ref("HealthcareService/" + service)})
	}
	referralOf("sr-alice", "pat-alice", "org-gp-a", "hs-1", ubrnA, "referral for SECRET-A")
	task("task-alice", "sr-alice", "pat-alice", "org-gp-a", "hs-1", ubrnA, "awaiting-booking")
	referralOf("sr-alice-2", "pat-alice", "org-gp-a", "hs-1", ubrnA2, "second referral SECRET-A2")
	task("task-alice-2", "sr-alice-2", "pat-alice", "org-gp-a", "hs-1", ubrnA2, "awaiting-booking")
	referralOf("sr-bob", "pat-bob", "org-gp-b", "hs-2", ubrnB, "referral for SECRET-B")
	task("task-bob", "sr-bob", "pat-bob", "org-gp-b", "hs-2", ubrnB, "booked")
	appointment := func(id, patient, service, slotID string, at int, extra map[string]any) {
		a := map[string]any{"resourceType": "Appointment", "id": id, "status": "booked", "slot": []any{ref("Slot/" + slotID)},
			"start": slotTime(at).Format(time.RFC3339), "end": slotTime(at).Add(30 * time.Minute).Format(time.RFC3339),
			"participant": []any{
				map[string]any{"actor": ref("Patient/" + patient), "status": "accepted"},
				map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"},
			}}
		for k, v := range extra {
			a[k] = v
		}
		add(a)
	}
	appointment("appt-alice", "pat-alice", "hs-1", "slot-1-busy", 1, map[string]any{"description": "SECRET-A appointment"})
	appointment("appt-bob", "pat-bob", "hs-2", "slot-2-busy", 2, map[string]any{"description": "SECRET-B appointment",
		"basedOn": []any{ref("ServiceRequest/sr-bob")}, "identifier": []any{map[string]any{"system": referral.UBRNSystem, "value": ubrnB}}})
	for n := 1; n <= 3; n++ { // for trust 1 to cancel
		id := fmt.Sprintf("slot-1-c%d", n)
		slot(id, "sched-1", "busy")
		appointment(fmt.Sprintf("appt-cancel-%d", n), "pat-alice", "hs-1", id, i, nil)
	}
	return w
}

// seedMaps writes resources straight into the store, as seedStore does.
func seedMaps(t testing.TB, a *app.App, resources []map[string]any) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	err := a.Store.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, r := range resources {
			raw, _ := json.Marshal(r)
			obj, err := fhir.ParseObject(raw)
			if err != nil {
				return err
			}
			typ, id := r["resourceType"].(string), r["id"].(string)
			body, err := fhir.Stamp(obj, id, 1, now)
			if err != nil {
				return err
			}
			idx, err := a.Search.Extract(typ, body)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", typ, id, err)
			}
			res := &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: now, JSON: body}
			if err := tx.Put(ctx, &store.Write{Resource: res, Index: idx}); err != nil {
				return fmt.Errorf("%s/%s: %w", typ, id, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seeding: %v", err)
	}
}

// boundaryServer is the real server, authorisation on, seeded with the
// world above, with a token per caller.
type boundaryServer struct {
	*server
	tokens map[string]string
}

func newBoundaryServer(t *testing.T) *boundaryServer {
	t.Helper()
	s := &boundaryServer{server: newServer(t, app.Config{Auth: true}), tokens: map[string]string{}}
	seedMaps(t, s.app, boundaryWorld())
	mint := func(opts devserver.TokenOptions) string {
		tok, err := devserver.MintToken(s.app.Config.Data, opts)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	s.tokens["gp-a"] = mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem})
	s.tokens["gp-b"] = mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientGPSystem, Org: "A99002"})
	s.tokens["prov-1"] = mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider})
	s.tokens["prov-2"] = mint(devserver.TokenOptions{Scope: "system/*.cruds", Client: devserver.ClientProvider, Org: "R9902"})
	s.tokens["patient-a"] = mint(devserver.TokenOptions{Scope: "patient/*.cruds", Patient: "pat-alice"})
	s.tokens["call-centre"] = mint(devserver.TokenOptions{Scope: "user/*.cruds", Client: devserver.ClientCallCentre})
	ubrn, err := s.app.Auth.MintReferralToken(context.Background(), "pat-alice", "sr-alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	s.tokens["ubrn-a"] = ubrn
	return s
}

// boundaryRow is one request by one caller and what must come of it.
type boundaryRow struct {
	name   string
	who    string
	method string // default GET
	path   string // relative to the FHIR base
	body   string
	status int
	// The refusal's OperationOutcome: its first issue's code, details code
	// and (part of) its location.
	code, details, where string
	present              []string // the answer must contain these
	hide                 []string // parties (keys of hidden) the answer must say nothing of
	bundle               bool     // also sent as the one entry of a transaction and of a batch
}

// way is one way of sending a row: on its own, or inside a Bundle.
type way string

const (
	single      way = "single"
	transaction way = "transaction"
	batch       way = "batch"
)

// entryOf builds the Bundle entry that carries r.
func entryOf(r boundaryRow) map[string]any {
	method := r.method
	if method == "" {
		method = "GET"
	}
	e := map[string]any{"request": map[string]any{"method": method, "url": r.path}}
	switch method {
	case "POST", "PUT":
		e["resource"] = json.RawMessage(r.body)
	case "PATCH":
		e["resource"] = map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json",
			"data": base64.StdEncoding.EncodeToString([]byte(r.body))}
	}
	return e
}

// send sends r the way w, returning the status, the body, and the part of
// the answer that corresponds to the single request's: for a transaction
// its OperationOutcome or the entry's resource, for a batch the entry's
// status and its outcome or resource.
func (s *boundaryServer) send(t *testing.T, r boundaryRow, w way) (status int, whole, part []byte) {
	t.Helper()
	h := bearer(s.tokens[r.who])
	method := r.method
	if method == "" {
		method = "GET"
	}
	if w == single {
		if method == "PATCH" {
			h["Content-Type"] = "application/json-patch+json"
		}
		got := s.do(request{method: method, path: r.path, body: r.body, header: h})
		return got.status, got.body, got.body
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": string(w), "entry": []any{entryOf(r)}})
	got := s.do(request{method: "POST", path: "", body: string(b), header: h})
	if got.status != http.StatusOK {
		return got.status, got.body, got.body
	}
	var out struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(got.body, &out); err != nil || len(out.Entry) != 1 {
		t.Fatalf("%s answer is not a Bundle with one entry: %v %s", w, err, got.body)
	}
	e := out.Entry[0]
	code, _, _ := strings.Cut(e.Response.Status, " ")
	status, err := strconv.Atoi(code)
	if err != nil {
		t.Fatalf("%s entry status %q", w, e.Response.Status)
	}
	part = e.Resource
	if e.Response.Outcome != nil {
		part = e.Response.Outcome
	}
	return status, got.body, part
}

// checkOutcome checks that body is an OperationOutcome whose first issue
// has code, details and a location containing where (each when given).
func checkOutcome(t *testing.T, body []byte, code, details, where string) {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code    string `json:"code"`
			Details struct {
				Coding []struct{ Code string } `json:"coding"`
			} `json:"details"`
			Expression []string `json:"expression"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("not an OperationOutcome with issues: %v %s", err, body)
	}
	is := oo.Issue[0]
	if code != "" && is.Code != code {
		t.Errorf("issue code %q, want %q: %s", is.Code, code, body)
	}
	if details != "" && (len(is.Details.Coding) == 0 || is.Details.Coding[0].Code != details) {
		t.Errorf("issue details %v, want %q: %s", is.Details.Coding, details, body)
	}
	if where != "" && !slices.ContainsFunc(is.Expression, func(x string) bool { return strings.Contains(x, where) }) {
		t.Errorf("issue location %v, want one with %q: %s", is.Expression, where, body)
	}
}

// checkHidden fails when body mentions anything of the parties r hides
// that r did not name itself.
func checkHidden(t *testing.T, r boundaryRow, body []byte) {
	t.Helper()
	asked := r.path + " " + r.body
	for _, party := range r.hide {
		for _, h := range hidden[party] {
			if !strings.Contains(asked, h) && bytes.Contains(body, []byte(h)) {
				t.Errorf("the answer leaks %q (party %s): %s", h, party, body)
			}
		}
	}
}

func apptBody(patient, service, slot string, basedOn ...string) string {
	a := map[string]any{"resourceType": "Appointment", "status": "booked", "slot": []any{ref("Slot/" + slot)},
		"participant": []any{
			map[string]any{"actor": ref("Patient/" + patient), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"},
		}}
	var based []any
	for _, b := range basedOn {
		based = append(based, ref(b))
	}
	if len(based) > 0 {
		a["basedOn"] = based
	}
	b, _ := json.Marshal(a)
	return string(b)
}

func paramsBody(kv ...any) string {
	var ps []any
	for i := 0; i+1 < len(kv); i += 2 {
		p := map[string]any{"name": kv[i]}
		switch v := kv[i+1].(type) {
		case string:
			p["valueString"] = v
		case map[string]any:
			if _, ok := v["resourceType"]; ok {
				p["resource"] = v
			} else if _, ok := v["system"]; ok {
				p["valueIdentifier"] = v
			} else {
				p["valueReference"] = v
			}
		}
		ps = append(ps, p)
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": ps})
	return string(b)
}

func asMap(raw string) map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(raw), &m)
	return m
}

const trace = "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhsAlice + "&birthdate=1980-01-01"

// TestOrganisationBoundaries is the adversarial table of issue 10, points
// 3, 4 and 10: providers of another trust, referrers of another practice,
// a patient, a UBRN token of another referral, after appointments,
// patients and referrals that are not theirs, by every path (read, vread,
// history, search with chains, _has, includes and counts, PUT, PATCH,
// DELETE, operations, side effects of a booking). Each row checks the
// status and OperationOutcome, that nothing of the parties it hides
// leaked, and that nothing changed (no version, no Provenance); every row
// a Bundle can carry is also sent in a transaction and in a batch, and
// must be answered alike.
func TestOrganisationBoundaries(t *testing.T) {
	s := newBoundaryServer(t)
	rows := []boundaryRow{
		// 3. Appointments: a provider reaches those at its services,
		// locations and schedules; a referrer those of its referrals and
		// registered patients.
		{name: "provider of another trust reads an appointment", who: "prov-2", path: "Appointment/appt-alice", status: 404, code: "not-found", hide: []string{"A"}, bundle: true},
		{name: "provider of another trust vreads an appointment", who: "prov-2", path: "Appointment/appt-alice/_history/1", status: 404, code: "not-found", hide: []string{"A"}, bundle: true},
		{name: "provider of another trust reads an appointment's history", who: "prov-2", path: "Appointment/appt-alice/_history", status: 404, code: "not-found", hide: []string{"A"}},
		{name: "provider of another trust lists appointments", who: "prov-2", path: "Appointment?_total=accurate", status: 200, present: []string{`"total":1`, "appt-bob"}, hide: []string{"A"}, bundle: true},
		{name: "provider of another trust counts a patient's appointments", who: "prov-2", path: "Appointment?patient=Patient/pat-alice&_summary=count", status: 200, present: []string{`"total":0`}, hide: []string{"A"}, bundle: true},
		{name: "provider of another trust reads the Appointment history", who: "prov-2", path: "Appointment/_history", status: 200, present: []string{"appt-bob"}, hide: []string{"A"}},
		{name: "provider of another trust reads the system history", who: "prov-2", path: "_history", status: 200, present: []string{"appt-bob"}, hide: []string{"A"}},
		{name: "provider of another trust includes patients of appointments", who: "prov-2", path: "Appointment?_include=Appointment:patient", status: 200, present: []string{"pat-bob"}, hide: []string{"A"}, bundle: true},
		{name: "provider of another trust chains into a patient", who: "prov-2", path: "Appointment?patient.identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhsAlice + "&_total=accurate", status: 200, present: []string{`"total":0`}, hide: []string{"A"}, bundle: true},
		{name: "provider of another trust finds a busy slot through _has", who: "prov-2", path: "Slot?_has:Appointment:slot:patient=Patient/pat-alice&_total=accurate", status: 200, present: []string{`"total":0`}, hide: []string{"A"}, bundle: true},
		{name: "provider of another trust cancels an appointment (PUT)", who: "prov-2", method: "PUT", path: "Appointment/appt-alice",
			body:   `{"resourceType":"Appointment","id":"appt-alice","status":"cancelled","cancelationReason":{"text":"x"},"participant":[{"actor":{"reference":"Patient/pat-alice"},"status":"accepted"}]}`,
			status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}, bundle: true},
		{name: "provider of another trust cancels an appointment (PATCH)", who: "prov-2", method: "PATCH", path: "Appointment/appt-alice",
			body:   `[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/cancelationReason","value":{"text":"x"}}]`,
			status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}, bundle: true},
		{name: "provider of another trust probes an appointment with a PATCH test", who: "prov-2", method: "PATCH", path: "Appointment/appt-alice",
			body:   `[{"op":"test","path":"/description","value":"not what it says"}]`,
			status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}, bundle: true},
		{name: "provider of another trust deletes an appointment", who: "prov-2", method: "DELETE", path: "Appointment/appt-alice", status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}, bundle: true},
		{name: "referrer of another practice reads an appointment", who: "gp-b", path: "Appointment/appt-alice", status: 404, code: "not-found", hide: []string{"A"}, bundle: true},
		{name: "referrer of another practice cancels an appointment", who: "gp-b", method: "PATCH", path: "Appointment/appt-alice",
			body: `[{"op":"replace","path":"/status","value":"cancelled"}]`, status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}, bundle: true},
		{name: "referrer reads an appointment of another practice's referral", who: "gp-a", path: "Appointment/appt-bob", status: 404, code: "not-found", hide: []string{"B"}, bundle: true},
		{name: "provider books at another trust's service", who: "prov-1", method: "POST", path: "Appointment", body: apptBody("pat-alice", "hs-2", "slot-2-f1"),
			status: 403, code: "forbidden", details: "ACCESS_DENIED", where: "", hide: []string{"B"}, bundle: true},
		{name: "provider books a patient it has no relationship with", who: "prov-2", method: "POST", path: "Appointment", body: apptBody("pat-alice", "hs-2", "slot-2-f2"),
			status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}, bundle: true},
		{name: "provider books a patient that does not exist (answered alike)", who: "prov-2", method: "POST", path: "Appointment", body: apptBody("pat-nobody", "hs-2", "slot-2-f2"),
			status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}, bundle: true},
		{name: "provider of another trust responds to an appointment", who: "prov-2", method: "POST", path: "AppointmentResponse",
			body:   `{"resourceType":"AppointmentResponse","appointment":{"reference":"Appointment/appt-alice"},"actor":{"reference":"HealthcareService/hs-2"},"participantStatus":"declined"}`,
			status: 422, code: "not-found", where: "AppointmentResponse.appointment", hide: []string{"A"}, bundle: true},
		{name: "provider responds to an appointment that does not exist (answered alike)", who: "prov-2", method: "POST", path: "AppointmentResponse",
			body:   `{"resourceType":"AppointmentResponse","appointment":{"reference":"Appointment/appt-nobody"},"actor":{"reference":"HealthcareService/hs-2"},"participantStatus":"declined"}`,
			status: 422, code: "not-found", where: "AppointmentResponse.appointment", hide: []string{"A"}, bundle: true},

		// 3. Patients: only those registered with, managed by, or named on
		// a referral or appointment of the organisation; others by exact
		// trace only.
		{name: "provider of another trust reads a patient", who: "prov-2", path: "Patient/pat-alice", status: 404, code: "not-found", hide: []string{"A"}, bundle: true},
		{name: "provider lists the patients it has a relationship with", who: "prov-2", path: "Patient?_total=accurate", status: 200, present: []string{`"total":2`, "pat-bob", "pat-carol"}, hide: []string{"A"}, bundle: true},
		{name: "referrer of another practice reads a patient", who: "gp-b", path: "Patient/pat-alice", status: 404, code: "not-found", hide: []string{"A"}, bundle: true},
		{name: "referrer lists its registered and referred patients", who: "gp-b", path: "Patient?_total=accurate", status: 200, present: []string{`"total":1`, "pat-bob"}, hide: []string{"A"}, bundle: true},
		{name: "referrer lists its own patients only", who: "gp-a", path: "Patient?_total=accurate", status: 200, present: []string{`"total":1`, "pat-alice"}, hide: []string{"B"}, bundle: true},
		{name: "provider searches by NHS number without the birth date", who: "prov-2", path: "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhsAlice + "&_total=accurate", status: 200, present: []string{`"total":0`}, hide: []string{"A"}, bundle: true},
		{name: "provider traces with the wrong birth date", who: "prov-2", path: "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhsAlice + "&birthdate=1980-01-02", status: 200, present: []string{`"type":"searchset"`}, hide: []string{"A"}, bundle: true},
		{name: "provider widens a trace with a birth date range", who: "prov-2", path: "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhsAlice + "&birthdate=ge1900-01-01", status: 200, present: []string{`"type":"searchset"`}, hide: []string{"A"}, bundle: true},
		{name: "provider widens a trace with a second NHS number", who: "prov-2", path: "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhsAlice + ",https://fhir.nhs.uk/Id/nhs-number|" + nhsBob + "&birthdate=1980-01-01", status: 200, present: []string{`"type":"searchset"`}, hide: []string{"A"}, bundle: true},
		{name: "provider widens a trace with _revinclude", who: "prov-2", path: trace + "&_revinclude=Appointment:patient", status: 200, present: []string{`"type":"searchset"`}, hide: []string{"A"}, bundle: true},
		{name: "provider widens a trace with _summary=count", who: "prov-2", path: trace + "&_summary=count", status: 200, present: []string{`"total":0`}, hide: []string{"A"}, bundle: true},
		{name: "provider widens a trace with a modifier", who: "prov-2", path: "Patient?identifier:not=https://fhir.nhs.uk/Id/nhs-number|0000000000&birthdate=1980-01-01", status: 200, present: []string{`"type":"searchset"`}, hide: []string{"A"}, bundle: true},
		{name: "provider traces a patient exactly", who: "prov-2", path: trace, status: 200, present: []string{`"id":"pat-alice"`}, hide: []string{"A-trace", "B"}, bundle: true},
		{name: "provider of another trust reaches a patient through _revinclude", who: "prov-2", path: "Patient?_id=pat-alice&_revinclude=Appointment:patient&_total=accurate", status: 200, present: []string{`"total":0`}, hide: []string{"A"}, bundle: true},
		{name: "provider lists the patients of its booked appointments (_has)", who: "prov-2", path: "Patient?_has:Appointment:patient:status=booked&_total=accurate", status: 200, present: []string{`"total":1`, "pat-bob"}, hide: []string{"A"}, bundle: true},
		{name: "provider of another trust updates a patient", who: "prov-2", method: "PUT", path: "Patient/pat-alice", body: `{"resourceType":"Patient","id":"pat-alice","name":[{"family":"Hijacked"}]}`,
			status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}, bundle: true},
		{name: "provider registers a second patient with a known NHS number", who: "prov-2", method: "POST", path: "Patient",
			body:   `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsAlice + `"}],"birthDate":"1980-01-01"}`,
			status: 409, code: "duplicate", details: "DUPLICATE_NHS_NUMBER", hide: []string{"A"}, bundle: true},

		// 3. Operations answer as if what the caller cannot reach did not
		// exist.
		{name: "provider of another trust reschedules an appointment", who: "prov-2", method: "POST", path: "Appointment/appt-alice/$reschedule",
			body: paramsBody("slot", ref("Slot/slot-2-f3")), status: 404, code: "not-found", hide: []string{"A"}},
		{name: "provider $books a patient it has no relationship with", who: "prov-2", method: "POST", path: "Appointment/$book",
			body:   paramsBody("appointment-resource", asMap(strings.Replace(apptBody("pat-alice", "hs-2", "slot-2-f3"), `"booked"`, `"proposed"`, 1)), "patient-reference", ref("Patient/pat-alice")),
			status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}},
		{name: "provider $books a patient that does not exist (answered alike)", who: "prov-2", method: "POST", path: "Appointment/$book",
			body:   paramsBody("appointment-resource", asMap(strings.Replace(apptBody("pat-nobody", "hs-2", "slot-2-f3"), `"booked"`, `"proposed"`, 1)), "patient-reference", ref("Patient/pat-nobody")),
			status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A"}},
		{name: "provider $finds for a patient it has no relationship with", who: "prov-2", method: "POST", path: "Appointment/$find",
			body: paramsBody("patient-reference", ref("Patient/pat-alice"), "healthcare-service", ref("HealthcareService/hs-2")), status: 400, code: "invalid", where: "patient-reference", hide: []string{"A"}},
		{name: "provider $finds for a patient that does not exist (answered alike)", who: "prov-2", method: "POST", path: "Appointment/$find",
			body: paramsBody("patient-reference", ref("Patient/pat-nobody"), "healthcare-service", ref("HealthcareService/hs-2")), status: 400, code: "invalid", where: "patient-reference", hide: []string{"A"}},
		{name: "provider of another trust shortlists a referral", who: "prov-2", method: "POST", path: "ServiceRequest/sr-alice/$shortlist", body: paramsBody(), status: 404, code: "not-found", hide: []string{"A"}},
		{name: "provider of another trust redirects a referral", who: "prov-2", method: "POST", path: "ServiceRequest/sr-alice/$redirect",
			body: paramsBody("service", ref("HealthcareService/hs-2")), status: 404, code: "not-found", hide: []string{"A"}},
		{name: "referrer of another practice cancels a referral", who: "gp-b", method: "POST", path: "ServiceRequest/sr-alice/$cancel", body: paramsBody(), status: 404, code: "not-found", hide: []string{"A"}},

		// 10. Side effects: naming a referral in basedOn moves nothing,
		// copies nothing and answers as if it did not exist.
		{name: "provider of another trust books against a referral it cannot read", who: "prov-2", method: "POST", path: "Appointment",
			body: apptBody("pat-bob", "hs-2", "slot-2-f4", "ServiceRequest/sr-alice"), status: 422, code: "not-found", where: "Appointment.basedOn", hide: []string{"A"}, bundle: true},
		{name: "provider books against a referral that does not exist (answered alike)", who: "prov-2", method: "POST", path: "Appointment",
			body: apptBody("pat-bob", "hs-2", "slot-2-f4", "ServiceRequest/sr-nobody"), status: 422, code: "not-found", where: "Appointment.basedOn", hide: []string{"A"}, bundle: true},
		{name: "referrer of another practice books against a referral it cannot read", who: "gp-b", method: "POST", path: "Appointment",
			body: apptBody("pat-bob", "hs-1", "slot-1-f1", "ServiceRequest/sr-alice"), status: 422, code: "not-found", where: "Appointment.basedOn", hide: []string{"A"}, bundle: true},
		{name: "patient books against another patient's referral", who: "patient-a", method: "POST", path: "Appointment",
			body: apptBody("pat-alice", "hs-2", "slot-2-f5", "ServiceRequest/sr-bob"), status: 422, code: "not-found", where: "Appointment.basedOn", hide: []string{"B"}, bundle: true},
		{name: "UBRN token books against another referral of its patient", who: "ubrn-a", method: "POST", path: "Appointment",
			body: apptBody("pat-alice", "hs-1", "slot-1-f2", "ServiceRequest/sr-alice-2"), status: 422, code: "not-found", where: "Appointment.basedOn", hide: []string{"A2"}, bundle: true},
		{name: "UBRN token books against another patient's referral", who: "ubrn-a", method: "POST", path: "Appointment",
			body: apptBody("pat-alice", "hs-2", "slot-2-f6", "ServiceRequest/sr-bob"), status: 422, code: "not-found", where: "Appointment.basedOn", hide: []string{"B"}, bundle: true},
		{name: "UBRN token $books against another patient's referral", who: "ubrn-a", method: "POST", path: "Appointment/$book",
			body:   paramsBody("appointment-resource", asMap(strings.Replace(apptBody("pat-alice", "hs-2", "slot-2-f7", "ServiceRequest/sr-bob"), `"booked"`, `"proposed"`, 1))),
			status: 422, code: "not-found", where: "Appointment.basedOn", hide: []string{"B"}},
		{name: "UBRN token $finds with another referral's UBRN of its patient", who: "ubrn-a", method: "POST", path: "Appointment/$find",
			body: paramsBody("referral-identifier", map[string]any{"system": referral.UBRNSystem, "value": ubrnA2}, "healthcare-service", ref("HealthcareService/hs-1")), status: 400, code: "invalid", where: "referral-identifier", hide: []string{"A2"}},
		{name: "UBRN token $finds with another patient's UBRN", who: "ubrn-a", method: "POST", path: "Appointment/$find",
			body: paramsBody("referral-identifier", map[string]any{"system": referral.UBRNSystem, "value": ubrnB}, "healthcare-service", ref("HealthcareService/hs-2")), status: 400, code: "invalid", where: "referral-identifier", hide: []string{"B"}},
		{name: "UBRN token cancels its referral", who: "ubrn-a", method: "POST", path: "ServiceRequest/sr-alice/$cancel", body: paramsBody(), status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A2", "B"}},
		{name: "UBRN token issues a new access code", who: "ubrn-a", method: "POST", path: "ServiceRequest/sr-alice/$access-code", body: paramsBody(), status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A2", "B"}},
		{name: "UBRN token moves its referral's Task itself", who: "ubrn-a", method: "PATCH", path: "Task/task-alice",
			body: `[{"op":"replace","path":"/businessStatus/coding/0/code","value":"slot-issue"}]`, status: 403, code: "forbidden", details: "ACCESS_DENIED", hide: []string{"A2", "B"}, bundle: true},
		{name: "patient responds to another patient's appointment", who: "patient-a", method: "POST", path: "AppointmentResponse",
			body:   `{"resourceType":"AppointmentResponse","appointment":{"reference":"Appointment/appt-bob"},"actor":{"reference":"Patient/pat-alice"},"participantStatus":"accepted"}`,
			status: 422, code: "not-found", where: "AppointmentResponse.appointment", hide: []string{"B"}, bundle: true},

		// Call centres act on patients' behalf, as before.
		{name: "call centre reads any appointment", who: "call-centre", path: "Appointment/appt-alice", status: 200, present: []string{"appt-alice"}, bundle: true},
		{name: "call centre traces by NHS number alone", who: "call-centre", path: "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhsBob, status: 200, present: []string{"pat-bob"}, bundle: true},
	}
	ways := 0
	for _, r := range rows {
		ways++
		if r.bundle {
			ways += 2
		}
	}
	if len(rows) < 30 || ways < 90 {
		t.Fatalf("%d rows, %d requests: the table has shrunk", len(rows), ways)
	}
	for _, r := range rows {
		for _, w := range []way{single, transaction, batch} {
			if w != single && !r.bundle {
				continue
			}
			t.Run(r.name+"/"+string(w), func(t *testing.T) {
				before := storeState(t, s.app)
				status, whole, part := s.send(t, r, w)
				if status != r.status {
					t.Fatalf("status %d, want %d: %s", status, r.status, whole)
				}
				if r.status >= 400 {
					where := r.where
					if _, inside, ok := strings.Cut(where, "."); ok && w != single {
						where = "Bundle.entry[0].resource." + inside // as the entry's resource
					}
					checkOutcome(t, part, r.code, r.details, where)
				}
				for _, want := range r.present {
					if !bytes.Contains(part, []byte(want)) {
						t.Errorf("the answer lacks %s: %s", want, part)
					}
				}
				checkHidden(t, r, whole)
				if after := storeState(t, s.app); !slices.Equal(before, after) {
					t.Errorf("the store changed:\nbefore %v\nafter  %v", before, after)
				}
			})
		}
	}
}

// TestOrganisationBoundariesAllow is the other half of the table: what
// each caller may do still succeeds, alike on its own, in a transaction
// and in a batch, with its side effects (the referral's Task follows a
// booking against it for the patient, the UBRN token, the call centre, the
// referrer and the provider; a booking claims its slots and a cancellation
// frees them). "{n}" in a row is the way's number, so that each way books
// its own slot.
func TestOrganisationBoundariesAllow(t *testing.T) {
	s := newBoundaryServer(t)
	rows := []boundaryRow{
		{name: "patient books against her referral", who: "patient-a", method: "POST", path: "Appointment",
			body: apptBody("pat-alice", "hs-1", "slot-1-p1-{n}", "ServiceRequest/sr-alice"), status: 201, present: []string{ubrnA}, hide: []string{"A2", "B"}},
		{name: "UBRN token books against its referral", who: "ubrn-a", method: "POST", path: "Appointment",
			body: apptBody("pat-alice", "hs-1", "slot-1-p2-{n}", "ServiceRequest/sr-alice"), status: 201, present: []string{ubrnA}, hide: []string{"A2", "B"}},
		{name: "referrer books against its referral", who: "gp-a", method: "POST", path: "Appointment",
			body: apptBody("pat-alice", "hs-1", "slot-1-p3-{n}", "ServiceRequest/sr-alice"), status: 201, present: []string{ubrnA}, hide: []string{"B"}},
		{name: "provider books against a referral it received", who: "prov-1", method: "POST", path: "Appointment",
			body: apptBody("pat-alice", "hs-1", "slot-1-p4-{n}", "ServiceRequest/sr-alice"), status: 201, present: []string{ubrnA}, hide: []string{"B"}},
		{name: "call centre books against a referral", who: "call-centre", method: "POST", path: "Appointment",
			body: apptBody("pat-bob", "hs-2", "slot-2-p5-{n}", "ServiceRequest/sr-bob"), status: 201, present: []string{ubrnB}},
		{name: "provider books a patient referred to it", who: "prov-1", method: "POST", path: "Appointment",
			body: apptBody("pat-alice", "hs-1", "slot-1-p6-{n}"), status: 201, present: []string{"pat-alice"}, hide: []string{"B"}},
		{name: "provider cancels its own appointment, freeing the slot", who: "prov-1", method: "PATCH", path: "Appointment/appt-cancel-{n}",
			body:   `[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/cancelationReason","value":{"text":"clinic closed"}}]`,
			status: 200, present: []string{`"cancelled"`}, hide: []string{"B"}},
		{name: "provider responds to its own appointment", who: "prov-2", method: "POST", path: "AppointmentResponse",
			body:   `{"resourceType":"AppointmentResponse","appointment":{"reference":"Appointment/appt-bob"},"actor":{"reference":"HealthcareService/hs-2"},"participantStatus":"accepted"}`,
			status: 201, present: []string{"appt-bob"}, hide: []string{"A"}},
	}
	for _, r := range rows {
		for n, w := range []way{single, transaction, batch} {
			r := r
			r.path = strings.ReplaceAll(r.path, "{n}", strconv.Itoa(n+1))
			r.body = strings.ReplaceAll(r.body, "{n}", strconv.Itoa(n+1))
			t.Run(r.name+"/"+string(w), func(t *testing.T) {
				status, whole, part := s.send(t, r, w)
				if status != r.status {
					t.Fatalf("status %d, want %d: %s", status, r.status, whole)
				}
				for _, want := range r.present {
					if !bytes.Contains(part, []byte(want)) {
						t.Errorf("the answer lacks %s: %s", want, part)
					}
				}
				checkHidden(t, r, whole)
			})
		}
	}
	// The side effects happened: the referrals are booked with the
	// service booked, the booked slots busy, the cancelled ones free.
	cc := bearer(s.tokens["call-centre"])
	for _, task := range []string{"task-alice", "task-bob"} {
		got := s.must(request{path: "Task/" + task, header: cc}, 200)
		if !bytes.Contains(got.body, []byte(`"code":"booked"`)) {
			t.Errorf("%s is not booked: %s", task, got.body)
		}
	}
	for _, id := range []string{"slot-1-p1-2", "slot-1-p2-3", "slot-2-p5-1"} {
		if got := s.must(request{path: "Slot/" + id, header: cc}, 200); !bytes.Contains(got.body, []byte(`"status":"busy"`)) {
			t.Errorf("Slot/%s is not busy after its booking: %s", id, got.body)
		}
	}
	for n := 1; n <= 3; n++ {
		if got := s.must(request{path: fmt.Sprintf("Slot/slot-1-c%d", n), header: cc}, 200); !bytes.Contains(got.body, []byte(`"status":"free"`)) {
			t.Errorf("slot-1-c%d is not free after its cancellation: %s", n, got.body)
		}
	}
}

// TestTraceThenRefer: a trace finds a patient the practice has no
// relationship with, and leaves none behind; the referral it then makes
// does.
func TestTraceThenRefer(t *testing.T) {
	s := newBoundaryServer(t)
	gp := bearer(s.tokens["gp-b"])
	dave := "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhsNumber(40) + "&birthdate=1990-05-05"
	if got := s.must(request{path: dave, header: gp}, 200); !bytes.Contains(got.body, []byte(`"id":"pat-dave"`)) {
		t.Fatalf("the trace does not find Dave: %s", got.body)
	}
	s.must(request{path: "Patient/pat-dave", header: gp}, 404)
	if got := s.must(request{path: "Patient?family=Dunn&_total=accurate", header: gp}, 200); !bytes.Contains(got.body, []byte(`"total":0`)) {
		t.Fatalf("a trace left a relationship behind: %s", got.body)
	}
	s.must(request{method: "POST", path: "ServiceRequest", header: gp, body: `{"resourceType":"ServiceRequest","status":"active","intent":"order",` +
		`"subject":{"reference":"Patient/pat-dave"},"requester":{"reference":"Organization/org-gp-b"},"performer":[{"reference":"HealthcareService/hs-1"}]}`}, 201)
	s.must(request{path: "Patient/pat-dave", header: gp}, 200)
	// The provider it was sent to now reaches Dave too; the other does not.
	s.must(request{path: "Patient/pat-dave", header: bearer(s.tokens["prov-1"])}, 200)
	s.must(request{path: "Patient/pat-dave", header: bearer(s.tokens["prov-2"])}, 404)
}

// TestConsequenceGrants drives the access layer's check of declared
// consequences (write.Consequence) through the real write path: a test rule
// on Endpoint writes Bob's referral Task as the consequence its name asks
// for, and each grant lets exactly the callers it names make it. A
// consequence declared for another resource covers nothing, and one not
// declared at all is the caller's own write.
func TestConsequenceGrants(t *testing.T) {
	s := newBoundaryServer(t)
	order := s.app.Writes.Order()
	order.Types["Endpoint"] = append(order.Types["Endpoint"], "test.consequences")
	s.app.Writes.SetOrder(order)
	s.app.Writes.AddRule("Endpoint", "test.consequences", func(ctx context.Context, tx *write.Tx, c *write.Change) error {
		if c.New == nil {
			return nil
		}
		name, _ := c.New.String("name")
		f := append(strings.Fields(name), "", "", "")
		grant, target, on := f[0], f[1], f[2]
		ctx = map[string]context.Context{
			"with-cause":  write.AsConsequence(ctx, write.Consequence{Type: "Task", ID: target, Grant: write.WithCause, Of: "Endpoint/" + c.ID}),
			"readers-of":  write.AsConsequence(ctx, write.Consequence{Type: "Task", ID: target, Grant: write.ToReadersOf, On: []string{on}, Of: "Endpoint/" + c.ID}),
			"writers-of":  write.AsConsequence(ctx, write.Consequence{Type: "Task", ID: target, Grant: write.ToWritersOf, On: []string{on}, Of: "Endpoint/" + c.ID}),
			"undeclared":  ctx,
			"other-write": write.AsConsequence(ctx, write.Consequence{Type: "Task", ID: "task-alice", Grant: write.ToReadersOf, On: []string{on}, Of: "Endpoint/" + c.ID}),
		}[grant]
		cur, err := tx.Read(ctx, "Task", "task-bob")
		if err != nil {
			return err
		}
		obj, err := fhir.ParseObject(cur.JSON)
		if err != nil {
			return err
		}
		obj.Set("description", "changed by "+c.ID)
		_, _, err = tx.Put(ctx, "Task", "task-bob", obj, 0)
		return err
	})
	for _, r := range []struct {
		who, name string
		status    int
	}{
		{"prov-1", "undeclared", 403},                                // trust 1 cannot write Bob's Task itself
		{"prov-1", "readers-of task-bob ServiceRequest/sr-bob", 403}, // nor read his referral
		{"prov-1", "writers-of task-bob ServiceRequest/sr-bob", 403}, // nor update it
		{"gp-a", "other-write task-bob ServiceRequest/sr-alice", 403},
		{"gp-a", "readers-of task-bob ServiceRequest/sr-alice", 201}, // the grant is measured against On, as declared
		{"prov-2", "readers-of task-bob ServiceRequest/sr-bob", 201},
		{"gp-b", "writers-of task-bob ServiceRequest/sr-bob", 201},
		{"prov-1", "with-cause task-bob", 201},
		{"gp-b", "undeclared", 201}, // practice B may write its own referral's Task
	} {
		t.Run(r.who+" "+r.name, func(t *testing.T) {
			before := storeState(t, s.app)
			got := s.do(request{method: "POST", path: "Endpoint", header: bearer(s.tokens[r.who]),
				body: `{"resourceType":"Endpoint","status":"active","connectionType":{"code":"hl7-fhir-rest"},"payloadType":[{"text":"x"}],"address":"https://example.org/fhir","name":"` + r.name + `"}`})
			if got.status != r.status {
				t.Fatalf("status %d, want %d: %s", got.status, r.status, got.body)
			}
			if r.status == 403 {
				checkOutcome(t, got.body, "forbidden", "ACCESS_DENIED", "")
				checkHidden(t, boundaryRow{path: "Endpoint", hide: []string{"B"}}, got.body)
				if after := storeState(t, s.app); !slices.Equal(before, after) {
					t.Errorf("the store changed:\nbefore %v\nafter  %v", before, after)
				}
			}
		})
	}
}

// TestBoundaryJourneys: with authorisation on, the operations that write
// besides what they were asked still work for the callers they are for,
// and the writes they make besides are the caller's own: a provider
// registers a new patient and books them in one transaction; a booking by
// the call centre moves the referral to the booked service's trust; that
// trust's $redirect cancels the appointment it can cancel and frees its
// slot; the other trust then reaches the referral and the first does not.
func TestBoundaryJourneys(t *testing.T) {
	s := newBoundaryServer(t)
	prov1, prov2, cc := bearer(s.tokens["prov-1"]), bearer(s.tokens["prov-2"]), bearer(s.tokens["call-centre"])

	newPatient := `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber(50) + `"}],"birthDate":"1970-07-07"}`
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:0a1b2c3d-0000-4000-8000-000000000001","resource":` + newPatient + `,"request":{"method":"POST","url":"Patient"}},` +
		`{"resource":` + strings.Replace(apptBody("x", "hs-2", "slot-2-p7-1"), "Patient/x", "urn:uuid:0a1b2c3d-0000-4000-8000-000000000001", 1) + `,"request":{"method":"POST","url":"Appointment"}}]}`
	s.must(request{method: "POST", path: "", body: tx, header: prov2}, 200)
	// The same two writes as separate requests: the second names a patient
	// the trust has no relationship with yet.
	id := decode(t, s.must(request{method: "POST", path: "Patient", body: strings.Replace(newPatient, nhsNumber(50), nhsNumber(60), 1), header: prov2}, 201).body)["id"].(string)
	s.must(request{method: "POST", path: "Appointment", body: apptBody(id, "hs-2", "slot-2-p7-2"), header: prov2}, 403)

	s.must(request{method: "POST", path: "Appointment", body: apptBody("pat-alice", "hs-1", "slot-1-p8-1", "ServiceRequest/sr-alice"), header: cc}, 201)
	s.must(request{method: "POST", path: "ServiceRequest/sr-alice/$redirect", header: prov1,
		body: paramsBody("service", ref("HealthcareService/hs-2"), "reason", "sub-specialty")}, 200)
	if got := s.must(request{path: "Slot/slot-1-p8-1", header: cc}, 200); !bytes.Contains(got.body, []byte(`"status":"free"`)) {
		t.Errorf("the redirect did not free the booked slot: %s", got.body)
	}
	s.must(request{path: "ServiceRequest/sr-alice", header: prov2}, 200)
	s.must(request{path: "ServiceRequest/sr-alice", header: prov1}, 404)
}

// TestProviderReachesReferralItOwns: a referral that names no service,
// whose workflow Task a provider's service owns (a slot issue raised for
// the service the patient wanted), is the provider's to read and find;
// another provider, and a practice that did not send it, do not see it.
func TestProviderReachesReferralItOwns(t *testing.T) {
	s := newBoundaryServer(t)
	seedMaps(t, s.app, []map[string]any{
		{"resourceType": "ServiceRequest", "id": "sr-open", "status": "active", "intent": "order", "priority": "routine",
			"subject": ref("Patient/pat-bob"), "requester": ref("Organization/org-gp-b"),
			"authoredOn": "2030-01-01T09:00:00Z", "note": []any{map[string]any{"text": "SECRET-OPEN"}}},
		{"resourceType": "Task", "id": "task-open", "status": "ready", "intent": "order",
			"code":           map[string]any{"coding": []any{map[string]any{"system": referral.TaskCodeSystem, "code": referral.TaskCode}}},
			"businessStatus": map[string]any{"coding": []any{map[string]any{"system": referral.StateSystem, "code": "slot-issue"}}},
			"focus":          ref("ServiceRequest/sr-open"), "for": ref("Patient/pat-bob"), "requester": ref("Organization/org-gp-b"),
			"owner": ref("HealthcareService/hs-1")},
	})
	for _, tc := range []struct {
		who    string
		status int
	}{{"prov-1", 200}, {"prov-2", 404}, {"gp-a", 404}, {"gp-b", 200}} {
		got := s.do(request{path: "ServiceRequest/sr-open", header: bearer(s.tokens[tc.who])})
		if got.status != tc.status {
			t.Errorf("%s reads the referral: %d, want %d: %s", tc.who, got.status, tc.status, got.body)
		}
		found := s.must(request{path: "ServiceRequest?_id=sr-open", header: bearer(s.tokens[tc.who])}, 200)
		if bytes.Contains(found.body, []byte("SECRET-OPEN")) != (tc.status == 200) {
			t.Errorf("%s's search: %s", tc.who, found.body)
		}
	}
}

// TestReachReadAgreesWithSearch checks that a professional's read of one
// resource by id (its reach decided by reading the resource and matching
// the organisation rule in memory, following chains by reads) agrees
// with a search for the same id (the rule run as one query) for every
// resource of every type the rule governs, and the directory types it
// chains through, for providers and referrers of both organisations.
func TestReachReadAgreesWithSearch(t *testing.T) {
	s := newBoundaryServer(t)
	ctx := context.Background()
	checked, reached := 0, 0
	for _, typ := range []string{"Patient", "Appointment", "AppointmentResponse", "ServiceRequest", "Task", "Slot", "Schedule", "HealthcareService"} {
		page, err := s.app.Store.Search(ctx, &search.Query{Type: typ, Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range page.Resources {
			for _, who := range []string{"prov-1", "prov-2", "gp-a", "gp-b"} {
				read := s.do(request{path: typ + "/" + res.ID, header: bearer(s.tokens[who])})
				found := s.do(request{path: typ + "?_id=" + res.ID + "&_total=accurate", header: bearer(s.tokens[who])})
				if found.status != 200 || (read.status != 200 && read.status != 404) {
					t.Fatalf("%s %s/%s: read %d, search %d: %s", who, typ, res.ID, read.status, found.status, found.body)
				}
				inSearch := strings.Contains(string(found.body), `"total":1`)
				if (read.status == 200) != inSearch {
					t.Errorf("%s %s/%s: read answers %d, the search finds it: %v", who, typ, res.ID, read.status, inSearch)
				}
				checked++
				if inSearch {
					reached++
				}
			}
		}
	}
	// Both answers occur, so the comparison decides something.
	if reached == 0 || reached == checked {
		t.Fatalf("%d of %d reads reached: the fixture does not exercise the rule", reached, checked)
	}
	t.Logf("%d reads compared, %d reached", checked, reached)
}
