package standin_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/standin"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

// TestSlotSearch: the free-slot search as GP Connect defines it: start=ge
// and end=le once each, at most 14 days apart, status=free only,
// _include=Slot:schedule required, the :recurse includes honoured,
// searchFilter with the consumer's ODS code and organisation type;
// answered with the free slots wholly inside the window and what was
// included, nothing else.
func TestSlotSearch(t *testing.T) {
	f := newFixture(t)
	filters := "&searchFilter=" + stu3.ODSOrganizationSystem + "|RH8&searchFilter=" + stu3.OrganisationTypeSystem + "|urgent-care"
	base := "&status=free&_include=Slot:schedule" + filters
	for _, tc := range []struct {
		name, query string
		status      int
		code        string
		want        map[string]int // resources by type (-1: some)
	}{
		{"a week, every include", slotQuery("2026-12-07", "2026-12-13"), 200, "", map[string]int{"Slot": -1, "Schedule": 3, "Practitioner": 3, "Location": 2, "Organization": 1}},
		{"14 days exactly", slotQuery("2026-12-07", "2026-12-20"), 200, "", map[string]int{"Slot": -1, "Schedule": 3, "Practitioner": 3, "Location": 2, "Organization": 1}},
		{"date-times with offsets, schedules only", "/Slot?start=" + url.QueryEscape("ge2026-12-07T09:00:00+00:00") + "&end=" + url.QueryEscape("le2026-12-07T09:30:00+00:00") + base, 200, "", map[string]int{"Slot": -1, "Schedule": -1}},
		{"stu3.SlotSearchQuery over 14 days", "/Slot?" + stu3.SlotSearchQuery(monday, monday.Add(14*24*time.Hour), "RH8", "urgent-care").Encode(), 200, "", map[string]int{"Slot": -1, "Schedule": 3, "Practitioner": 3, "Location": 2, "Organization": 1}},
		{"a weekend: nothing", slotQuery("2026-12-12", "2026-12-13"), 200, "", map[string]int{}},
		{"15 days", slotQuery("2026-12-07", "2026-12-21"), 422, stu3.CodeInvalidParameter, nil},
		{"no start", "/Slot?end=le2026-12-08" + base, 400, stu3.CodeBadRequest, nil},
		{"no end", "/Slot?start=ge2026-12-08" + base, 400, stu3.CodeBadRequest, nil},
		{"start twice", "/Slot?start=ge2026-12-07&start=ge2026-12-08&end=le2026-12-09" + base, 422, stu3.CodeInvalidParameter, nil},
		{"end twice", "/Slot?start=ge2026-12-07&end=le2026-12-08&end=le2026-12-09" + base, 422, stu3.CodeInvalidParameter, nil},
		{"start=gt", "/Slot?start=gt2026-12-07&end=le2026-12-08" + base, 422, stu3.CodeInvalidParameter, nil},
		{"end=ge", "/Slot?start=ge2026-12-07&end=ge2026-12-08" + base, 422, stu3.CodeInvalidParameter, nil},
		{"a date-time without an offset", "/Slot?start=ge2026-12-07T09:00:00&end=le2026-12-08" + base, 422, stu3.CodeInvalidParameter, nil},
		{"end before start", "/Slot?start=ge2026-12-09&end=le2026-12-08" + base, 422, stu3.CodeInvalidParameter, nil},
		{"no status", "/Slot?start=ge2026-12-07&end=le2026-12-08&_include=Slot:schedule" + filters, 400, stu3.CodeBadRequest, nil},
		{"status=busy", "/Slot?start=ge2026-12-07&end=le2026-12-08&status=busy&_include=Slot:schedule" + filters, 422, stu3.CodeInvalidParameter, nil},
		{"status twice", "/Slot?start=ge2026-12-07&end=le2026-12-08&status=free&status=busy&_include=Slot:schedule" + filters, 422, stu3.CodeInvalidParameter, nil},
		{"no _include=Slot:schedule", "/Slot?start=ge2026-12-07&end=le2026-12-08&status=free" + filters, 400, stu3.CodeBadRequest, nil},
		{"another _include", "/Slot?start=ge2026-12-07&end=le2026-12-08&status=free&_include=Slot:schedule&_include=Schedule:actor" + filters, 422, stu3.CodeInvalidParameter, nil},
		{"an unknown _include:recurse", "/Slot?start=ge2026-12-07&end=le2026-12-08" + base + "&_include:recurse=Practitioner:organization", 422, stu3.CodeInvalidParameter, nil},
		{"no searchFilter", "/Slot?start=ge2026-12-07&end=le2026-12-08&status=free&_include=Slot:schedule", 400, stu3.CodeBadRequest, nil},
		{"no organisation type filter", "/Slot?start=ge2026-12-07&end=le2026-12-08&status=free&_include=Slot:schedule&searchFilter=" + stu3.ODSOrganizationSystem + "|RH8", 400, stu3.CodeBadRequest, nil},
		{"a filter of another system", "/Slot?start=ge2026-12-07&end=le2026-12-08" + base + "&searchFilter=https://example.org|x", 422, stu3.CodeInvalidParameter, nil},
		{"an ODS filter not the consumer's", "/Slot?start=ge2026-12-07&end=le2026-12-08&status=free&_include=Slot:schedule&searchFilter=" + stu3.ODSOrganizationSystem + "|RX1&searchFilter=" + stu3.OrganisationTypeSystem + "|urgent-care", 422, stu3.CodeInvalidParameter, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(request{method: "GET", path: tc.query, interaction: stu3.InteractionSearchSlots})
			if a.status != tc.status || a.code != tc.code {
				t.Fatalf("got %d %s, want %d %s: %s", a.status, a.code, tc.status, tc.code, a.body)
			}
			if tc.want == nil {
				return
			}
			got := bundle(t, a.body)
			for typ, n := range tc.want {
				if (n == -1 && len(got[typ]) == 0) || (n >= 0 && len(got[typ]) != n) {
					t.Errorf("%d %s, want %d", len(got[typ]), typ, n)
				}
			}
			for typ := range got {
				if _, ok := tc.want[typ]; !ok {
					t.Errorf("%d %s not asked for", len(got[typ]), typ)
				}
			}
			q, _ := url.ParseQuery(strings.SplitN(tc.query, "?", 2)[1])
			from, to := window(t, q.Get("start")[2:], q.Get("end")[2:])
			for _, raw := range got["Slot"] {
				var s stu3.Slot
				_ = json.Unmarshal(raw, &s)
				st, _ := time.Parse(time.RFC3339, s.Start)
				en, _ := time.Parse(time.RFC3339, s.End)
				if s.Status != "free" || st.Before(from) || en.After(to) {
					t.Errorf("slot %s %s %s..%s outside %s..%s", s.ID, s.Status, s.Start, s.End, from, to)
				}
			}
		})
	}
}

// TestSlotSearchNotPast: slots that have begun are not offered, though
// the window covers them.
func TestSlotSearchNotPast(t *testing.T) {
	late := monday.Add(150 * time.Minute) // 10:30
	s := standin.New(ods, asid, func() time.Time { return late }, standin.NewBook(ods, monday, 7))
	must(t, s.Start())
	t.Cleanup(func() { _ = s.Close() })
	f := &fixture{t: t, s: s, client: &http.Client{Timeout: 20 * time.Second}}
	a := f.do(request{method: "GET", path: slotQuery("2026-12-07", "2026-12-07"), interaction: stu3.InteractionSearchSlots,
		claims: func(c *stu3.Claims) { c.Iat, c.Exp = late.Unix(), late.Unix()+300 }})
	slots := bundle(t, a.body)["Slot"]
	if a.status != 200 || len(slots) == 0 {
		t.Fatalf("%d, %d slots", a.status, len(slots))
	}
	for _, raw := range slots {
		var sl stu3.Slot
		must(t, json.Unmarshal(raw, &sl))
		if st, _ := time.Parse(time.RFC3339, sl.Start); st.Before(late) {
			t.Errorf("slot %s at %s has begun", sl.ID, sl.Start)
		}
	}
}

// window is the period a search's start and end values cover.
func window(t *testing.T, start, end string) (time.Time, time.Time) {
	t.Helper()
	parse := func(v string, endOfDay bool) time.Time {
		if d, err := time.Parse("2006-01-02", v); err == nil {
			if endOfDay {
				d = d.AddDate(0, 0, 1)
			}
			return d.Add(-time.Hour) // either side of UK time
		}
		tm, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	return parse(start, false), parse(end, true).Add(2 * time.Hour)
}

// TestSearchMapsToR4: the stand-in's answer, built from the shapes of
// the published payloads, maps to R4 through the mapping package.
func TestSearchMapsToR4(t *testing.T) {
	f := newFixture(t)
	a := f.do(request{method: "GET", path: slotQuery("2026-12-07", "2026-12-20"), interaction: stu3.InteractionSearchSlots})
	var b stu3.Bundle
	if err := json.Unmarshal(a.body, &b); err != nil {
		t.Fatal(err)
	}
	got, err := stu3.Practice{ODS: ods, Services: []string{"HealthcareService/gp"}}.SlotSearchToR4(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Slots) == 0 || len(got.Slots) != *b.Total || len(got.Schedules) != 3 {
		t.Errorf("%d slots (total %d), %d schedules", len(got.Slots), *b.Total, len(got.Schedules))
	}
}

// TestPatients: Find a patient by NHS number (an unregistered patient is
// an empty searchset), Register a patient as temporary (refused when the
// practice takes none, or when already registered).
func TestPatients(t *testing.T) {
	f := newFixture(t)
	find := func(q string) answer {
		return f.do(request{method: "GET", path: "/Patient?" + q, interaction: stu3.InteractionFindPatient})
	}
	register := func(nhs string) answer {
		p := stu3.Patient{ResourceType: "Patient", Identifier: []stu3.Identifier{{System: stu3.NHSNumberSystem, Value: nhs}},
			Name: []stu3.HumanName{{Family: "Parker", Given: []string{"Ann"}}}, Gender: "female", BirthDate: "1970-01-01"}
		raw, _ := json.Marshal(p)
		return f.do(request{method: "POST", path: "/Patient/$gpc.registerpatient", interaction: stu3.InteractionRegisterPatient,
			body: map[string]any{"resourceType": "Parameters", "parameter": []map[string]any{{"name": "registerPatient", "resource": json.RawMessage(raw)}}}})
	}
	if a := find("identifier=" + stu3.NHSNumberSystem + "|" + nhs); a.status != 200 || len(bundle(t, a.body)["Patient"]) != 0 {
		t.Fatalf("unregistered: %d %s", a.status, a.body)
	}
	id := f.s.RegisterPatient(nhs, stu3.HumanName{Family: "Jackson", Given: []string{"Jane"}}, "female", "1952-05-31")
	a := find("identifier=" + url.QueryEscape(stu3.NHSNumberSystem+"|"+nhs))
	ps := bundle(t, a.body)["Patient"]
	if a.status != 200 || len(ps) != 1 || !strings.Contains(string(ps[0]), `"id":"`+id+`"`) || !strings.Contains(string(ps[0]), `"code":"R"`) {
		t.Fatalf("registered: %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"no identifier", "family=Jackson", 400, stu3.CodeBadRequest},
		{"two identifiers", "identifier=" + stu3.NHSNumberSystem + "|" + nhs + "&identifier=" + stu3.NHSNumberSystem + "|" + nhs, 400, stu3.CodeBadRequest},
		{"another identifier system", "identifier=https://example.org/mrn|123", 422, stu3.CodeInvalidIdentifierSys},
		{"an invalid NHS number", "identifier=" + stu3.NHSNumberSystem + "|9000000001", 400, stu3.CodeInvalidNHSNumber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := find(tc.query); a.status != tc.status || a.code != tc.code {
				t.Errorf("got %d %s, want %d %s", a.status, a.code, tc.status, tc.code)
			}
		})
	}
	const other = "9434765919"
	f.s.SetAcceptTemporary(false)
	if a := register(other); a.status != 403 || a.code != stu3.CodeAccessDenied {
		t.Errorf("refusing temporary patients: %d %s", a.status, a.code)
	}
	f.s.SetAcceptTemporary(true)
	if a := register(other); a.status != 200 || !strings.Contains(string(a.body), `"code":"T"`) {
		t.Errorf("temporary registration: %d %s", a.status, a.body)
	}
	if a := find("identifier=" + stu3.NHSNumberSystem + "|" + other); len(bundle(t, a.body)["Patient"]) != 1 {
		t.Errorf("the temporary patient is not found: %s", a.body)
	}
	if a := register(other); a.status != 409 || a.code != stu3.CodeDuplicateRejected {
		t.Errorf("registering twice: %d %s", a.status, a.code)
	}
	if a := register("1234567890"); a.status != 400 || a.code != stu3.CodeInvalidNHSNumber {
		t.Errorf("an invalid NHS number: %d %s", a.status, a.code)
	}
}

// TestBookReadAmendCancel: a booking's life at the practice, and each
// rule of booking, amending and cancelling refused with its code.
func TestBookReadAmendCancel(t *testing.T) {
	f := newFixture(t)
	patient := f.s.RegisterPatient(nhs, stu3.HumanName{Family: "Jackson"}, "female", "1952-05-31")
	s1, s2 := adjacent(t, f.s, 0)
	book := func(a any) answer {
		return f.do(request{method: "POST", path: "/Appointment", interaction: stu3.InteractionBookAppointment, body: a})
	}
	busy := f.s.FreeSlots()[5]
	f.s.SetSlotStatus(busy.ID, "busy")
	late1, late2 := adjacent(t, f.s, 40)
	for _, tc := range []struct {
		name   string
		change func(a *stu3.Appointment)
		body   []byte
		status int
		code   string
	}{
		{"not JSON", nil, []byte(`{"resourceType":`), 400, stu3.CodeBadRequest},
		{"a member GP Connect does not define", nil, []byte(`{"resourceType":"Appointment","colour":"blue"}`), 422, stu3.CodeInvalidResource},
		{"not an Appointment", func(a *stu3.Appointment) { a.ResourceType = "Slot" }, nil, 422, stu3.CodeInvalidResource},
		{"an id", func(a *stu3.Appointment) { a.ID = "77" }, nil, 422, stu3.CodeInvalidResource},
		{"status pending", func(a *stu3.Appointment) { a.Status = "pending" }, nil, 422, stu3.CodeInvalidResource},
		{"no created", func(a *stu3.Appointment) { a.Created = "" }, nil, 422, stu3.CodeInvalidResource},
		{"no booking organisation", func(a *stu3.Appointment) { a.Extension = nil }, nil, 422, stu3.CodeInvalidResource},
		{"a booking organisation without a telephone", func(a *stu3.Appointment) { a.Contained[0].Telecom = nil }, nil, 422, stu3.CodeInvalidResource},
		{"a slot that does not exist", func(a *stu3.Appointment) { a.Slot[0].Reference = "Slot/999999" }, nil, 422, stu3.CodeReferenceNotFound},
		{"a patient not registered", func(a *stu3.Appointment) { a.Participant[0].Actor.Reference = "Patient/999" }, nil, 422, stu3.CodeReferenceNotFound},
		{"two patients", func(a *stu3.Appointment) { a.Participant = append(a.Participant, a.Participant[0]) }, nil, 422, stu3.CodeInvalidResource},
		{"a HealthcareService participant", func(a *stu3.Appointment) {
			a.Participant = append(a.Participant, stu3.Participant{Actor: &stu3.Reference{Reference: "HealthcareService/1"}, Status: "accepted"})
		}, nil, 422, stu3.CodeInvalidResource},
		{"a participant without status", func(a *stu3.Appointment) { a.Participant[0].Status = "" }, nil, 422, stu3.CodeInvalidResource},
		{"start not the slot's", func(a *stu3.Appointment) { a.Start = late1.Start }, nil, 422, stu3.CodeInvalidResource},
		{"slots not adjacent", func(a *stu3.Appointment) { a.Slot[1].Reference = "Slot/" + late2.ID; a.End = late2.End }, nil, 422, stu3.CodeInvalidResource},
		{"a slot taken", func(a *stu3.Appointment) {
			a.Slot, a.Start, a.End = []stu3.Reference{{Reference: "Slot/" + busy.ID}}, busy.Start, busy.End
		}, nil, 409, stu3.CodeDuplicateRejected},
	} {
		t.Run("book: "+tc.name, func(t *testing.T) {
			var body any = tc.body
			if tc.body == nil {
				a := newAppointment(patient, s1, s2)
				tc.change(a)
				body = a
			}
			if got := book(body); got.status != tc.status || got.code != tc.code {
				t.Errorf("got %d %s, want %d %s: %s", got.status, got.code, tc.status, tc.code, got.body)
			}
			if sl, _ := f.s.Slot(s1.ID); sl.Status != "free" {
				t.Errorf("a refused booking took slot %s", s1.ID)
			}
		})
	}

	got := book(newAppointment(patient, s1, s2))
	if got.status != 201 || got.header.Get("ETag") != `W/"1"` || !strings.HasPrefix(got.header.Get("Location"), "Appointment/") {
		t.Fatalf("booking: %d %v %s", got.status, got.header, got.body)
	}
	var booked stu3.Appointment
	_ = json.Unmarshal(got.body, &booked)
	for _, want := range []string{stu3.ExtPractitionerRole, stu3.ExtDeliveryChannel, `"reference":"Practitioner/`, `"serviceCategory"`} {
		if !strings.Contains(string(got.body), want) {
			t.Errorf("the booking answered lacks %s: %s", want, got.body)
		}
	}
	for _, sl := range []stu3.Slot{s1, s2} {
		if cur, _ := f.s.Slot(sl.ID); cur.Status != "busy" {
			t.Errorf("slot %s is %s after booking", sl.ID, cur.Status)
		}
	}
	if a := book(newAppointment(patient, s1, s2)); a.status != 409 || a.code != stu3.CodeDuplicateRejected {
		t.Errorf("booking again: %d %s", a.status, a.code)
	}
	read := func(id string) answer {
		return f.do(request{method: "GET", path: "/Appointment/" + id, interaction: stu3.InteractionReadAppointment})
	}
	if a := read(booked.ID); a.status != 200 || a.header.Get("ETag") != `W/"1"` {
		t.Errorf("read: %d %v", a.status, a.header)
	}
	if a := read("999"); a.status != 404 || a.code != stu3.CodeNoRecordFound {
		t.Errorf("read of nothing: %d %s", a.status, a.code)
	}

	// update sends the appointment as it stands at the practice, changed.
	update := func(interaction, id, ifMatch string, change func(a *stu3.Appointment)) answer {
		a, _ := f.s.Appointment(booked.ID)
		change(&a)
		return f.doIfMatch(request{method: "PUT", path: "/Appointment/" + id, interaction: interaction, body: a}, ifMatch)
	}
	reason := func(a *stu3.Appointment, why string) {
		a.Extension = append(a.Extension, stu3.Extension{URL: stu3.ExtCancellationReason, ValueString: &why})
	}
	for _, tc := range []struct {
		name, interaction, id, ifMatch string
		change                         func(a *stu3.Appointment)
		status                         int
		code                           string
	}{
		{"amend: the start", stu3.InteractionAmendAppointment, booked.ID, "", func(a *stu3.Appointment) { a.Start = late1.Start }, 422, stu3.CodeInvalidResource},
		{"amend: the slots", stu3.InteractionAmendAppointment, booked.ID, "", func(a *stu3.Appointment) { a.Slot = a.Slot[:1] }, 422, stu3.CodeInvalidResource},
		{"amend: the patient", stu3.InteractionAmendAppointment, booked.ID, "", func(a *stu3.Appointment) { a.Participant[0].Actor.Reference = "Patient/999" }, 422, stu3.CodeInvalidResource},
		{"amend: the status", stu3.InteractionAmendAppointment, booked.ID, "", func(a *stu3.Appointment) { a.Status = "cancelled" }, 422, stu3.CodeInvalidResource},
		{"amend: a cancellation reason", stu3.InteractionAmendAppointment, booked.ID, "", func(a *stu3.Appointment) { reason(a, "x") }, 422, stu3.CodeInvalidResource},
		{"amend: another id in the body", stu3.InteractionAmendAppointment, booked.ID, "", func(a *stu3.Appointment) { a.ID = "999" }, 400, stu3.CodeBadRequest},
		{"amend: an appointment that does not exist", stu3.InteractionAmendAppointment, "999", "", func(a *stu3.Appointment) { a.ID = "999" }, 404, stu3.CodeNoRecordFound},
		{"amend: a stale If-Match", stu3.InteractionAmendAppointment, booked.ID, `W/"0"`, func(a *stu3.Appointment) { a.Comment = "x" }, 409, stu3.CodeConflict},
		{"amend: comment and description", stu3.InteractionAmendAppointment, booked.ID, `W/"1"`, func(a *stu3.Appointment) { a.Comment, a.Description = "Wheelchair user", "Review (amended)" }, 200, ""},
		{"cancel: without a reason", stu3.InteractionCancelAppointment, booked.ID, "", func(a *stu3.Appointment) { a.Status = "cancelled" }, 422, stu3.CodeInvalidResource},
		{"cancel: still booked", stu3.InteractionCancelAppointment, booked.ID, "", func(a *stu3.Appointment) { reason(a, "Recovered") }, 422, stu3.CodeInvalidResource},
		{"cancel: changing the comment", stu3.InteractionCancelAppointment, booked.ID, "", func(a *stu3.Appointment) { a.Status = "cancelled"; reason(a, "Recovered"); a.Comment = "x" }, 422, stu3.CodeInvalidResource},
		{"cancel: with a reason", stu3.InteractionCancelAppointment, booked.ID, "", func(a *stu3.Appointment) { a.Status = "cancelled"; reason(a, "Recovered") }, 200, ""},
		{"cancel: again", stu3.InteractionCancelAppointment, booked.ID, "", func(a *stu3.Appointment) { reason(a, "Again") }, 422, stu3.CodeInvalidResource},
		{"amend: a cancelled appointment", stu3.InteractionAmendAppointment, booked.ID, "", func(a *stu3.Appointment) { a.Status = "booked"; a.Extension = a.Extension[:1] }, 422, stu3.CodeInvalidResource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := update(tc.interaction, tc.id, tc.ifMatch, tc.change); got.status != tc.status || got.code != tc.code {
				t.Errorf("got %d %s, want %d %s: %s", got.status, got.code, tc.status, tc.code, got.body)
			}
		})
	}
	final, _ := f.s.Appointment(booked.ID)
	if final.Status != "cancelled" || final.Comment != "Wheelchair user" || final.Description != "Review (amended)" || final.Meta.VersionID != "3" {
		t.Errorf("after amending and cancelling: %s %q %q v%s", final.Status, final.Comment, final.Description, final.Meta.VersionID)
	}
	for _, sl := range []stu3.Slot{s1, s2} {
		if cur, _ := f.s.Slot(sl.ID); cur.Status != "free" {
			t.Errorf("slot %s is %s after cancelling", sl.ID, cur.Status)
		}
	}
	list := f.do(request{method: "GET", path: "/Patient/" + patient + "/Appointment?start=ge2026-12-07&start=le2027-01-10", interaction: stu3.InteractionPatientAppointments})
	if list.status != 200 || len(bundle(t, list.body)["Appointment"]) != 1 {
		t.Errorf("the patient's appointments: %d %s", list.status, list.body)
	}
	if a := f.do(request{method: "GET", path: "/Patient/" + patient + "/Appointment?start=ge2026-12-07", interaction: stu3.InteractionPatientAppointments}); a.status != 400 {
		t.Errorf("the patient's appointments with one bound: %d", a.status)
	}
}

// doIfMatch is do with an If-Match header when ifMatch is not "".
func (f *fixture) doIfMatch(r request, ifMatch string) answer {
	r.header = nil
	if ifMatch != "" {
		r.header = func(h http.Header) { h.Set("If-Match", ifMatch) }
	}
	return f.do(r)
}

// TestRaceForOneSlot: two consumers booking one slot at once, over and
// over: each time one 201 and one 409 DUPLICATE_REJECTED, and one
// appointment at the practice.
func TestRaceForOneSlot(t *testing.T) {
	f := newFixture(t)
	p1 := f.s.RegisterPatient(nhs, stu3.HumanName{Family: "Jackson"}, "female", "1952-05-31")
	p2 := f.s.RegisterPatient("9434765919", stu3.HumanName{Family: "Parker"}, "female", "1970-01-01")
	free := f.s.FreeSlots()
	const rounds = 15
	for i := 0; i < rounds; i++ {
		slot := free[i*3]
		var wg sync.WaitGroup
		start := make(chan struct{})
		statuses := make([]int, 2)
		codes := make([]string, 2)
		for j, p := range []string{p1, p2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, err := f.send(request{method: "POST", path: "/Appointment", interaction: stu3.InteractionBookAppointment, body: newAppointment(p, slot)})
				if err != nil {
					t.Error(err)
					return
				}
				defer res.Body.Close()
				var b [4096]byte
				n, _ := res.Body.Read(b[:])
				statuses[j] = res.StatusCode
				if res.StatusCode >= 300 {
					codes[j] = stu3.ParseError(res.StatusCode, b[:n]).Code
				}
			}()
		}
		close(start)
		wg.Wait()
		created, rejected := 0, 0
		for j := range statuses {
			switch {
			case statuses[j] == 201:
				created++
			case statuses[j] == 409 && codes[j] == stu3.CodeDuplicateRejected:
				rejected++
			}
		}
		if created != 1 || rejected != 1 {
			t.Fatalf("round %d: answers %v %v, want one 201 and one 409 DUPLICATE_REJECTED", i, statuses, codes)
		}
	}
	if n := len(f.s.Appointments()); n != rounds {
		t.Errorf("%d appointments at the practice, want %d", n, rounds)
	}
}

// TestModes: a practice down (connections refused, or 500) and back, and
// a slow one whose booking stands although the consumer gave up waiting.
func TestModes(t *testing.T) {
	f := newFixture(t)
	var log strings.Builder
	f.s.SetLog(&log)
	metadata := request{method: "GET", path: "/metadata", interaction: stu3.InteractionMetadata}
	if a := f.do(metadata); a.status != 200 {
		t.Fatalf("metadata: %d", a.status)
	}
	f.s.SetLog(nil)
	if got, want := log.String(), "GP practice "+ods+": GET /metadata → 200\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	f.s.SetLog(&log)
	must(t, f.s.SetMode(standin.Failing))
	if a := f.do(metadata); a.status != 500 || a.code != stu3.CodeInternalServerError {
		t.Errorf("failing: %d %s", a.status, a.code)
	}
	must(t, f.s.SetMode(standin.Refusing))
	_, err := f.send(metadata)
	var op *net.OpError
	if !errors.As(err, &op) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("refusing: %v", err)
	}
	must(t, f.s.SetMode(standin.Up))
	if a := f.do(metadata); a.status != 200 {
		t.Errorf("up again: %d", a.status)
	}

	patient := f.s.RegisterPatient(nhs, stu3.HumanName{Family: "Jackson"}, "female", "1952-05-31")
	slot := f.s.FreeSlots()[0]
	f.s.SetDelay(time.Minute)
	impatient := *f
	impatient.client = &clientWithTimeout
	_, err = impatient.send(request{method: "POST", path: "/Appointment", interaction: stu3.InteractionBookAppointment, body: newAppointment(patient, slot)})
	if err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("slow practice: %v", err)
	}
	f.s.SetDelay(0)
	deadline := time.Now().Add(10 * time.Second)
	for len(f.s.Appointments()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.s.Appointments(); len(got) != 1 || got[0].Slot[0].Reference != "Slot/"+slot.ID {
		t.Errorf("the slow practice's booking: %+v", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
