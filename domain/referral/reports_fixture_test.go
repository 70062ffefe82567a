package referral_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// The report fixture: a county of two commissioners, each with its
// practice and patient, and three services of one provider.
//
//	icb-n (ODS devserver.DemoCommissioner) commissions hs-derm-n, hs-cardio-n; gp-a (A99001) is part of it
//	icb-s (ODS QWS)                   commissions hs-derm-s;              gp-b (B99002) is part of it
//
// Referrals (authoredOn; requester; performer):
//
//	R1 2026-03-02 gp-a                 derm "Dermatology"  hs-derm-n   deferred (slot issue at hs-derm-n)
//	R2 2026-03-20 gp-a                 derm, no display    hs-derm-n
//	R3 2026-04-05 PractitionerRole pr-a (of gp-a)  cardio  hs-cardio-n
//	R4 2026-03-15 gp-b                 derm "Dermatology"  hs-derm-s   deferred (slot issue at hs-derm-s)
//	R5 2026-04-10 gp-a                 derm "Dermatology"  none
//
// Appointments (start; what became of it):
//
//	A1  R1 hs-derm-n  today+3  booked, then $reschedule to today+5: cancelled, replaced by A1b
//	A1b R1 hs-derm-n  today+5  booked (replaces A1)
//	A2  R2 hs-derm-n  today+4  cancelled by the patient (cancelationReason pat)
//	A3  R2 hs-derm-n  today+6  cancelled by the provider (prov-pers)
//	H   -  hs-derm-n  today+7  a hold (pending), cancelled: never booked
//	W   -  hs-derm-n  today+8  booked, no referral
//	A4  R3 hs-cardio-n today+3 cancelled, reason in text only
//	P1  R3 hs-cardio-n 2026-04-20T10:00+01:00 recorded without slots, fulfilled
//	P2  R4 hs-derm-s  2026-03-25T09:00Z       recorded without slots, noshow
//	P3  R2 hs-derm-n  2026-04-01T09:30+01:00  recorded without slots, fulfilled
//	P4  R4 hs-derm-s  2026-04-22T14:00+01:00  recorded without slots, fulfilled
//
// Experience feedback: on R3 (authored 2026-05-02: overall 4, a comment),
// on R2 (authored 2026-05-20: overall 2) and on R4 (2026-05-05: overall 5).
type reportFixture struct {
	c, setup   *client
	referrals  map[string]string // R1… → ServiceRequest/id
	appts      map[string]string // A1… → Appointment/id
	slots      map[string][]string
	experience string
}

const (
	derm   = "394582007"
	cardio = "394579002"
	sct    = "http://snomed.info/sct"
	gpBODS = "B99002"
)

func newReportFixture(t *testing.T) *reportFixture {
	t.Helper()
	c := newSecureClient(t)
	f := &reportFixture{c: c, referrals: map[string]string{}, appts: map[string]string{}, slots: map[string][]string{},
		experience: referral.Base + "/Questionnaire/report-experience"}
	f.setup = c.as(c.mint(devserver.TokenOptions{Client: "report-setup", Scope: "system/*.cruds"}))
	s := f.setup
	ods := func(code string) []any {
		return []any{map[string]any{"system": referral.ODSSystem, "value": code}}
	}
	put := func(res map[string]any) {
		t.Helper()
		s.must(201, "PUT", "/"+res["resourceType"].(string)+"/"+res["id"].(string), res)
	}
	put(map[string]any{"resourceType": "Organization", "id": "icb-n", "name": "North ICB", "identifier": ods(devserver.DemoCommissioner)})
	put(map[string]any{"resourceType": "Organization", "id": "icb-s", "name": "South ICB", "identifier": ods("QWS")})
	put(map[string]any{"resourceType": "Organization", "id": "gp-b", "name": "Practice B", "identifier": ods(gpBODS), "partOf": ref("Organization/icb-s")})
	// gp-a (ODS devserver.DemoGPPractice) is newSecureClient's; it joins icb-n.
	gpa := s.must(200, "GET", "/Organization/gp-a", nil)
	gpa["partOf"] = ref("Organization/icb-n")
	s.must(200, "PUT", "/Organization/gp-a", gpa)
	put(map[string]any{"resourceType": "PractitionerRole", "id": "pr-a", "organization": ref("Organization/gp-a")})
	service := func(id, name, code, display string, icbs ...string) {
		var ext []any
		for _, icb := range icbs {
			ext = append(ext, map[string]any{"url": referral.CommissionedBy, "valueReference": ref("Organization/" + icb)})
		}
		put(map[string]any{"resourceType": "HealthcareService", "id": id, "name": name, "active": true, "providedBy": ref("Organization/trust"),
			"extension":      ext,
			"specialty":      []any{map[string]any{"coding": []any{map[string]any{"system": sct, "code": code, "display": display}}}},
			"characteristic": []any{map[string]any{"coding": []any{map[string]any{"system": referral.Base + "/CodeSystem/bookability", "code": "directly-bookable"}}}}})
	}
	service("hs-derm-n", "City Dermatology", derm, "Dermatology", "icb-n")
	service("hs-cardio-n", "City Cardiology", cardio, "Cardiology", "icb-n")
	service("hs-derm-s", "South Dermatology", derm, "Dermatology", "icb-s")
	put(map[string]any{"resourceType": "Patient", "id": "pat-a", "birthDate": "1970-02-03", "gender": "female",
		"generalPractitioner": []any{ref("Organization/gp-a")},
		"identifier":          []any{map[string]any{"system": referral.NHSNumberSystem, "value": "9990000026"}}})
	put(map[string]any{"resourceType": "Patient", "id": "pat-b", "birthDate": "1965-07-08", "gender": "male",
		"generalPractitioner": []any{ref("Organization/gp-b")},
		"identifier":          []any{map[string]any{"system": referral.NHSNumberSystem, "value": "9990000034"}}})
	s.create(map[string]any{"resourceType": "Questionnaire", "status": "active", "url": f.experience,
		"extension": []any{map[string]any{"url": referral.ExperienceExtension, "valueBoolean": true}},
		"item": []any{
			map[string]any{"linkId": "overall", "text": "Overall (1-5)", "type": "integer"},
			map[string]any{"linkId": "comment", "text": "Anything else?", "type": "string"}}})

	sr := func(name, patient, requester, code, display, authored, performer string) {
		coding := map[string]any{"system": sct, "code": code}
		if display != "" {
			coding["display"] = display
		}
		r := map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
			"subject": ref("Patient/" + patient), "requester": ref(requester), "authoredOn": authored,
			"performerType": map[string]any{"coding": []any{coding}}}
		if performer != "" {
			r["performer"] = []any{ref(performer)}
		}
		f.referrals[name] = s.create(r)
	}
	sr("R1", "pat-a", "Organization/gp-a", derm, "Dermatology", "2026-03-02", "HealthcareService/hs-derm-n")
	sr("R2", "pat-a", "Organization/gp-a", derm, "", "2026-03-20", "HealthcareService/hs-derm-n")
	sr("R3", "pat-a", "PractitionerRole/pr-a", cardio, "Cardiology", "2026-04-05", "HealthcareService/hs-cardio-n")
	sr("R4", "pat-b", "Organization/gp-b", derm, "Dermatology", "2026-03-15", "HealthcareService/hs-derm-s")
	sr("R5", "pat-a", "Organization/gp-a", derm, "Dermatology", "2026-04-10", "")

	s.must(200, "POST", "/"+f.referrals["R1"]+"/$defer", params("service", ref("HealthcareService/hs-derm-n"), "reason", "no slots"))
	s.must(200, "POST", "/"+f.referrals["R4"]+"/$defer", params("service", ref("HealthcareService/hs-derm-s"), "reason", "no slots"))

	f.slots["hs-derm-n"] = addSlots(s, "hs-derm-n", 3, 4, 5, 6, 7, 8)
	f.slots["hs-cardio-n"] = addSlots(s, "hs-cardio-n", 3)
	dn, cn := f.slots["hs-derm-n"], f.slots["hs-cardio-n"]

	f.appts["A1"] = f.book("R1", "pat-a", "hs-derm-n", dn[0], "booked")
	out := s.must(200, "POST", "/"+f.appts["A1"]+"/$reschedule", params("slot", ref(dn[2])))
	for _, e := range out["entry"].([]any) {
		if get(e, "search", "mode") == "match" {
			f.appts["A1b"] = "Appointment/" + get(e, "resource", "id").(string)
		}
	}
	f.appts["A2"] = f.book("R2", "pat-a", "hs-derm-n", dn[1], "booked")
	f.cancel("A2", map[string]any{"coding": []any{map[string]any{"system": referral.CancellationReasonSystem, "code": "pat"}}, "text": "patient cancelled"})
	f.appts["A3"] = f.book("R2", "pat-a", "hs-derm-n", dn[3], "booked")
	f.cancel("A3", map[string]any{"coding": []any{map[string]any{"system": referral.CancellationReasonSystem, "code": "prov-pers"}}})
	f.appts["H"] = f.book("", "pat-a", "hs-derm-n", dn[4], "pending")
	f.cancel("H", map[string]any{"text": "changed her mind"})
	f.appts["W"] = f.book("", "pat-a", "hs-derm-n", dn[5], "booked")
	f.appts["A4"] = f.book("R3", "pat-a", "hs-cardio-n", cn[0], "booked")
	f.cancel("A4", map[string]any{"text": "clinic closed"})

	f.appts["P1"] = f.record("R3", "pat-a", "hs-cardio-n", "2026-04-20T10:00:00+01:00", "fulfilled")
	f.appts["P2"] = f.record("R4", "pat-b", "hs-derm-s", "2026-03-25T09:00:00Z", "noshow")
	f.appts["P3"] = f.record("R2", "pat-a", "hs-derm-n", "2026-04-01T09:30:00+01:00", "fulfilled")
	f.appts["P4"] = f.record("R4", "pat-b", "hs-derm-s", "2026-04-22T14:00:00+01:00", "fulfilled")

	feedback := func(r, patient, authored string, overall int, comment string) {
		items := []any{map[string]any{"linkId": "overall", "answer": []any{map[string]any{"valueInteger": overall}}}}
		if comment != "" {
			items = append(items, map[string]any{"linkId": "comment", "answer": []any{map[string]any{"valueString": comment}}})
		}
		s.create(map[string]any{"resourceType": "QuestionnaireResponse", "status": "completed", "basedOn": []any{ref(f.referrals[r])},
			"questionnaire": f.experience, "subject": ref("Patient/" + patient), "authored": authored, "item": items})
	}
	feedback("R3", "pat-a", "2026-05-02T10:00:00Z", 4, "kind staff")
	feedback("R2", "pat-a", "2026-05-20T10:00:00Z", 2, "")
	feedback("R4", "pat-b", "2026-05-05T10:00:00Z", 5, "")
	return f
}

// book books (or holds) slot at service for referral r ("" for none).
func (f *reportFixture) book(r, patient, service, slot, status string) string {
	f.c.t.Helper()
	s := f.setup.must(200, "GET", "/"+slot, nil)
	a := map[string]any{"resourceType": "Appointment", "status": status, "slot": []any{ref(slot)}, "start": s["start"], "end": s["end"],
		"participant": []any{
			map[string]any{"actor": ref("Patient/" + patient), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}}
	if r != "" {
		a["basedOn"] = []any{ref(f.referrals[r])}
	}
	return f.setup.create(a)
}

// record writes an appointment recorded without slots, booked, then moves
// it to status.
func (f *reportFixture) record(r, patient, service, start, status string) string {
	f.c.t.Helper()
	t, err := time.Parse(time.RFC3339, start)
	if err != nil {
		f.c.t.Fatal(err)
	}
	id := f.setup.create(map[string]any{"resourceType": "Appointment", "status": "booked", "basedOn": []any{ref(f.referrals[r])},
		"start": start, "end": t.Add(20 * time.Minute).Format(time.RFC3339),
		"participant": []any{
			map[string]any{"actor": ref("Patient/" + patient), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/" + service), "status": "accepted"}}})
	a := f.setup.must(200, "GET", "/"+id, nil)
	a["status"] = status
	f.setup.must(200, "PUT", "/"+id, a)
	return id
}

func (f *reportFixture) cancel(name string, reason map[string]any) {
	f.c.t.Helper()
	a := f.setup.must(200, "GET", "/"+f.appts[name], nil)
	a["status"] = "cancelled"
	a["cancelationReason"] = reason
	f.setup.must(200, "PUT", "/"+f.appts[name], a)
}

// report runs a report with query and header, answering status and body.
func (f *reportFixture) report(c *client, path string, header http.Header) (int, []byte, string) {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header.Get("Content-Type")
}

// state fingerprints what a report must never change: every version of
// the fixture's resources.
func (f *reportFixture) state() string {
	f.c.t.Helper()
	var b strings.Builder
	for _, typ := range []string{"ServiceRequest", "Task", "Appointment", "Slot", "Provenance", "QuestionnaireResponse", "HealthcareService", "Organization"} {
		for _, res := range f.setup.search("/" + typ + "?_count=500&_sort=_id") {
			b.WriteString(typ + "/" + res["id"].(string) + "/" + get(res, "meta", "versionId").(string) + " ")
		}
	}
	return b.String()
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return out
}
