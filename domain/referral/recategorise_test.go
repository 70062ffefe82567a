package referral_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/auth/devserver"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
)

const (
	sctDerm   = "394582007"
	sctCardio = "394579002"
)

func specialty(code string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": code}}}
}

// recategoriseWorld is a secure server with two practices of one ICB, two
// trusts, dermatology and cardiology services (suitable and not), two
// patients, and the tokens of everyone who might try $recategorise.
type recategoriseWorld struct {
	c      *client
	tokens map[string]string
	slots  []string
}

func newRecategoriseWorld(t *testing.T) *recategoriseWorld {
	t.Helper()
	a, ts := apptest.New(t, app.Config{Auth: true})
	c := &client{t: t, base: ts.URL + "/fhir", a: a}
	org := func(id, ods string, extra ...any) map[string]any {
		o := map[string]any{"resourceType": "Organization", "id": id, "name": id,
			"identifier": []any{map[string]any{"system": referral.ODSSystem, "value": ods}}}
		if len(extra) > 0 {
			o["partOf"] = ref(extra[0].(string))
		}
		return o
	}
	svc := func(id, org, code string, commissioners []string, extra ...any) map[string]any {
		var ext []any
		for _, c := range commissioners {
			ext = append(ext, map[string]any{"url": referral.CommissionedBy, "valueReference": ref("Organization/" + c)})
		}
		ext = append(ext, extra...)
		return map[string]any{"resourceType": "HealthcareService", "id": id, "name": id, "active": true,
			"providedBy": ref("Organization/" + org), "specialty": []any{specialty(code)}, "extension": ext}
	}
	seed := []map[string]any{
		org("icb-north", "QN1"), org("icb-south", "QS1"),
		org("gp-a", devserver.DemoGPPractice, "Organization/icb-north"), org("gp-b", "A99002", "Organization/icb-north"),
		org("trust", devserver.DemoProvider), org("trust-2", "R9902"),
		svc("hs-derm", "trust", sctDerm, []string{"icb-north"}),
		svc("hs-cardio", "trust", sctCardio, []string{"icb-north"}),
		svc("hs-cardio-2", "trust-2", sctCardio, []string{"icb-north", "icb-south"}),
		svc("hs-cardio-south", "trust-2", sctCardio, []string{"icb-south"}),
		svc("hs-cardio-closed", "trust", sctCardio, []string{"icb-north"},
			map[string]any{"url": referral.AcceptingReferrals, "valueBoolean": false}),
		{"resourceType": "Patient", "id": "pat-1", "birthDate": "1980-05-17", "generalPractitioner": []any{ref("Organization/gp-a")},
			"name": []any{map[string]any{"family": "Firstpatient"}}},
		{"resourceType": "Patient", "id": "pat-2", "birthDate": "1975-01-02", "generalPractitioner": []any{ref("Organization/gp-b")},
			"name": []any{map[string]any{"family": "Otherpatient"}}},
		{"resourceType": "Schedule", "id": "sc-derm", "active": true, "actor": []any{ref("HealthcareService/hs-derm")}},
	}
	w := &recategoriseWorld{c: c, tokens: map[string]string{}}
	start := time.Now().UTC().Truncate(time.Hour).Add(72 * time.Hour)
	for i := range 20 {
		id := fmt.Sprintf("slot-%d", i)
		w.slots = append(w.slots, "Slot/"+id)
		seed = append(seed, map[string]any{"resourceType": "Slot", "id": id, "schedule": ref("Schedule/sc-derm"), "status": "free",
			"start": start.Add(time.Duration(i) * time.Hour).Format(time.RFC3339), "end": start.Add(time.Duration(i)*time.Hour + 20*time.Minute).Format(time.RFC3339)})
	}
	apptest.Seed(t, a, seed...)
	for name, o := range map[string]devserver.TokenOptions{
		"referrer":       {Client: devserver.ClientGPSystem, Scope: "system/*.cruds"},
		"other practice": {Client: devserver.ClientGPSystem, Scope: "system/*.cruds", Org: "A99002"},
		"provider":       {Client: devserver.ClientProvider, Scope: "system/*.cruds"},
		"other provider": {Client: devserver.ClientProvider, Scope: "system/*.cruds", Org: "R9902"},
		"patient":        {Client: devserver.ClientPatientApp, Scope: "patient/*.cruds", Patient: "pat-1"},
		"call centre":    {Client: devserver.ClientCallCentre, Scope: "user/*.cruds"},
	} {
		w.tokens[name] = c.mint(o)
	}
	return w
}

// as returns the client acting as who.
func (w *recategoriseWorld) as(who string) *client { return w.c.as(w.tokens[who]) }

// referral makes a fresh dermatology referral of pat-1 by gp-a for hs-derm
// and returns "ServiceRequest/id".
func (w *recategoriseWorld) referral(t *testing.T) string {
	t.Helper()
	return w.as("referrer").create(map[string]any{"resourceType": "ServiceRequest", "status": "active", "intent": "order",
		"priority": "routine", "subject": ref("Patient/pat-1"), "requester": ref("Organization/gp-a"),
		"performer": []any{ref("HealthcareService/hs-derm")}, "performerType": specialty(sctDerm)})
}

// book books the next free dermatology slot for the referral and returns
// the appointment's "Appointment/id" and its slot.
func (w *recategoriseWorld) book(t *testing.T, sr string) (string, string) {
	t.Helper()
	slot := w.slots[0]
	w.slots = w.slots[1:]
	c := w.as("referrer")
	s := c.must(200, "GET", "/"+slot, nil)
	appt := c.create(map[string]any{"resourceType": "Appointment", "status": "booked", "basedOn": []any{ref(sr)},
		"slot": []any{ref(slot)}, "start": s["start"], "end": s["end"],
		"participant": []any{
			map[string]any{"actor": ref("Patient/pat-1"), "status": "accepted"},
			map[string]any{"actor": ref("HealthcareService/hs-derm"), "status": "accepted"}}})
	return appt, slot
}

// versions returns the current version of every resource a row may touch
// (the audit trail aside), by "Type/id".
func versions(t *testing.T, c *client) map[string]int64 {
	t.Helper()
	return apptest.Versions(t, c.a, "ServiceRequest", "Task", "Appointment", "Slot", "Provenance", "HealthcareService", "Patient")
}

// stored returns the current JSON of ref straight from the store.
func stored(t *testing.T, c *client, ref string) map[string]any {
	t.Helper()
	typ, id, _ := fhir.SplitReference(ref)
	res, err := c.a.Store.Read(context.Background(), typ, id)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	var m map[string]any
	json.Unmarshal(res.JSON, &m)
	return m
}

// storedTask returns the referral's workflow Task straight from the store.
func storedTask(t *testing.T, c *client, sr string) map[string]any {
	t.Helper()
	q, err := c.a.Search.Parse("Task", url.Values{"focus": {sr}}, search.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.a.Store.Search(context.Background(), q)
	if err != nil || len(page.Resources) != 1 {
		t.Fatalf("the Task of %s: %v (%d found)", sr, err, len(page.Resources))
	}
	var m map[string]any
	json.Unmarshal(page.Resources[0].JSON, &m)
	return m
}

func concept(code string) map[string]any {
	return map[string]any{"name": "performer-type", "valueCodeableConcept": specialty(code)}
}

// recategorise builds $recategorise's Parameters.
func recategorise(parts ...map[string]any) map[string]any {
	var ps []any
	for _, p := range parts {
		ps = append(ps, p)
	}
	return map[string]any{"resourceType": "Parameters", "parameter": ps}
}

func param(name string, v any) map[string]any {
	switch x := v.(type) {
	case string:
		return map[string]any{"name": name, "valueString": x}
	default:
		return map[string]any{"name": name, "valueReference": x}
	}
}

// TestRecategorise: $recategorise by whoever may (the referrer; the
// provider that owns the Task), to a suitable service or back to the
// referrer, with its Provenance and the Task's new owner; refused to
// everyone else and for unsuitable services, changing nothing and naming
// nothing of the referral to those who cannot see it.
func TestRecategorise(t *testing.T) {
	w := newRecategoriseWorld(t)
	cardio := concept(sctCardio)
	type after struct {
		state, owner, performer string
		cancelled               bool // the booking was cancelled and its slot freed
	}
	rows := []struct {
		name    string
		who     string
		setup   func(t *testing.T, sr string) // brings the referral to the row's state
		booked  bool
		params  map[string]any
		status  int
		code    string // the issue's type
		detail  string
		where   string
		want    *after
		because string // the Provenance's reason contains it
	}{
		{name: "referrer, to a suitable cardiology service", who: "referrer",
			params: recategorise(cardio, param("service", ref("HealthcareService/hs-cardio")), param("reason", "chest pain on exertion")),
			status: 200, want: &after{"awaiting-booking", "HealthcareService/hs-cardio", "HealthcareService/hs-cardio", false},
			because: "re-categorised as 394579002 for HealthcareService/hs-cardio: chest pain on exertion"},
		{name: "provider owning the Task, back to the referrer", who: "provider",
			params: recategorise(cardio), status: 200, want: &after{"awaiting-booking", "Organization/gp-a", "", false},
			because: "re-categorised as 394579002"},
		{name: "provider, booked referral, to another trust's service", who: "provider", booked: true,
			params: recategorise(cardio, param("service", ref("HealthcareService/hs-cardio-2"))),
			status: 200, want: &after{"redirected", "HealthcareService/hs-cardio-2", "HealthcareService/hs-cardio-2", true}},
		{name: "referrer, booked referral, back to itself", who: "referrer", booked: true,
			params: recategorise(cardio), status: 200, want: &after{"awaiting-booking", "Organization/gp-a", "", true}},
		{name: "referrer, by service type (code)", who: "referrer",
			params: recategorise(map[string]any{"name": "code", "valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "40701008", "display": "Echocardiography"}}}}),
			status: 200, want: &after{"awaiting-booking", "Organization/gp-a", "", false}, because: "re-categorised as Echocardiography"},

		{name: "another practice", who: "other practice", params: recategorise(cardio), status: 404, code: "not-found"},
		{name: "another provider", who: "other provider", params: recategorise(cardio), status: 404, code: "not-found"},
		{name: "the performer's provider after the Task moved to another trust", who: "provider",
			setup: func(t *testing.T, sr string) {
				w.as("provider").must(200, "POST", "/"+sr+"/$defer", params("reason", "no slots", "service", ref("HealthcareService/hs-cardio-2")))
			},
			params: recategorise(cardio), status: 403, code: "forbidden", detail: "ACCESS_DENIED"},
		{name: "the patient", who: "patient", params: recategorise(cardio), status: 403, code: "forbidden", detail: "ACCESS_DENIED"},
		{name: "a call centre", who: "call centre", params: recategorise(cardio), status: 403, code: "forbidden", detail: "ACCESS_DENIED"},
		{name: "to a service not commissioned for the patient", who: "referrer",
			params: recategorise(cardio, param("service", ref("HealthcareService/hs-cardio-south"))),
			status: 422, code: "business-rule", detail: referral.ErrNotSuitable, where: "service"},
		{name: "to a service not accepting referrals", who: "provider",
			params: recategorise(cardio, param("service", ref("HealthcareService/hs-cardio-closed"))),
			status: 422, code: "business-rule", detail: referral.ErrNotSuitable, where: "service"},
		{name: "to a service of the old specialty", who: "referrer",
			params: recategorise(cardio, param("service", ref("HealthcareService/hs-derm"))),
			status: 422, code: "business-rule", detail: referral.ErrNotSuitable, where: "service"},
		{name: "to a service that does not exist", who: "referrer",
			params: recategorise(cardio, param("service", ref("HealthcareService/nope"))), status: 422, code: "not-found", where: "service"},
		{name: "to an organisation", who: "referrer",
			params: recategorise(cardio, param("service", ref("Organization/trust"))), status: 400, code: "value", where: "service"},
		{name: "without a category", who: "referrer", params: recategorise(param("reason", "why not")), status: 400, code: "required"},
		{name: "to the category it has", who: "referrer", params: recategorise(concept(sctDerm)), status: 422, code: "business-rule"},
		{name: "an accepted referral", who: "provider", booked: true,
			setup:  func(t *testing.T, sr string) { w.as("provider").must(200, "POST", "/"+sr+"/$accept", params()) },
			params: recategorise(cardio), status: 422, code: "business-rule", detail: "ILLEGAL_TRANSITION"},
	}
	if cs := w.as("referrer").must(200, "GET", "/metadata", nil); !strings.Contains(fmt.Sprint(cs), "OperationDefinition/ServiceRequest-recategorise") {
		t.Errorf("the CapabilityStatement does not list $recategorise")
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			c := w.as(tc.who)
			sr := w.referral(t)
			var appt, slot string
			if tc.booked {
				appt, slot = w.book(t, sr)
			}
			// A saved shortlist, which re-categorising clears.
			w.as("referrer").must(200, "POST", "/"+sr+"/$shortlist", params("save", true))
			if tc.setup != nil {
				tc.setup(t, sr)
			}
			srBefore := stored(t, c, sr)
			before := versions(t, c)
			status, out := c.do("POST", "/"+sr+"/$recategorise", tc.params)
			raw, _ := json.Marshal(out)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, raw)
			}
			if tc.want == nil { // refused
				if got := get(out, "issue", 0, "code"); got != tc.code {
					t.Errorf("issue code %v, want %s: %s", got, tc.code, raw)
				}
				if tc.detail != "" && errorCode(out) != tc.detail {
					t.Errorf("detail %q, want %q: %s", errorCode(out), tc.detail, raw)
				}
				if tc.where != "" {
					if got := get(out, "issue", 0, "expression", 0); got != tc.where {
						t.Errorf("expression %v, want %s", got, tc.where)
					}
				}
				if diff := cmp.Diff(before, versions(t, c)); diff != "" {
					t.Errorf("a refused $recategorise changed resources (-before +after):\n%s", diff)
				}
				if status == 404 || status == 403 {
					for _, leak := range []string{"pat-1", "Firstpatient", ubrnOf(srBefore), "394582007", "hs-derm"} {
						if strings.Contains(string(raw), leak) {
							t.Errorf("the refusal names %q: %s", leak, raw)
						}
					}
				}
				return
			}
			if get(out, "parameter", 0, "resource", "id") == nil || get(out, "parameter", 1, "resource", "resourceType") != "Task" {
				t.Errorf("$recategorise answered %s, want the referral and its Task", raw)
			}
			srAfter := stored(t, c, sr)
			task := storedTask(t, c, sr)
			got := after{state: state(task)}
			got.owner, _ = get(task, "owner", "reference").(string)
			got.performer, _ = get(srAfter, "performer", 0, "reference").(string)
			if tc.booked {
				got.cancelled = get(stored(t, c, appt), "status") == "cancelled" && get(stored(t, c, slot), "status") == "free"
			}
			if diff := cmp.Diff(*tc.want, got, cmp.AllowUnexported(after{})); diff != "" {
				t.Errorf("after $recategorise (-want +got):\n%s", diff)
			}
			if ubrnOf(srAfter) != ubrnOf(srBefore) || ubrnOf(srAfter) == "" {
				t.Errorf("the UBRN changed: %s → %s", ubrnOf(srBefore), ubrnOf(srAfter))
			}
			if shortlist(srBefore) == 0 {
				t.Errorf("no saved shortlist before re-categorising: the test cannot see it cleared")
			}
			if n := shortlist(srAfter); n != 0 {
				t.Errorf("%d services of the saved shortlist survived re-categorisation", n)
			}
			var recat []map[string]any
			for _, p := range searchAll(t, c, "Provenance", "target="+sr) {
				if get(p, "activity", "coding", 0, "code") == referral.Recategorised {
					recat = append(recat, p)
				}
			}
			if len(recat) != 1 {
				t.Fatalf("%d recategorised Provenance records, want 1", len(recat))
			}
			p := recat[0]
			wantOrg := devserver.DemoGPPractice
			if tc.who == "provider" {
				wantOrg = devserver.DemoProvider
			}
			if got := get(p, "agent", 0, "onBehalfOf", "identifier", "value"); got != wantOrg {
				t.Errorf("Provenance acts for %v, want %s", got, wantOrg)
			}
			targets := []string{get(p, "target", 0, "reference").(string), get(p, "target", 1, "reference").(string)}
			if !strings.HasPrefix(targets[0], sr+"/_history/") || !regexp.MustCompile(`^Task/[^/]+/_history/\d+$`).MatchString(targets[1]) {
				t.Errorf("Provenance targets %v, want versions of %s and its Task", targets, sr)
			}
			if why, _ := get(p, "reason", 0, "text").(string); tc.because != "" && why != tc.because {
				t.Errorf("Provenance reason %q, want %q", why, tc.because)
			}
			if code := get(srAfter, "performerType", "coding", 0, "code"); code != sctCardio && get(srAfter, "code") == nil {
				t.Errorf("ServiceRequest.performerType = %v after re-categorising", code)
			}
		})
	}
}

// shortlist counts the services of a referral's saved shortlist.
func shortlist(sr map[string]any) int {
	n := 0
	exts, _ := sr["extension"].([]any)
	for _, e := range exts {
		if get(e, "url") == referral.ShortlistExtension {
			n++
		}
	}
	return n
}

// searchAll returns every match of a search, straight from the store.
func searchAll(t *testing.T, c *client, typ, query string) []map[string]any {
	t.Helper()
	v, _ := url.ParseQuery(query)
	v.Set("_count", "1000")
	q, err := c.a.Search.Parse(typ, v, search.ParseOptions{MaxCount: 1000})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.a.Store.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range page.Resources {
		var m map[string]any
		json.Unmarshal(r.JSON, &m)
		out = append(out, m)
	}
	return out
}

// TestCategoryChangesOnlyByRecategorise: a PUT or PATCH that changes an
// existing referral's performerType or code is refused with 422
// USE_RECATEGORISE, as a single request, in a transaction and in a batch,
// and changes nothing; other changes still go through.
func TestCategoryChangesOnlyByRecategorise(t *testing.T) {
	w := newRecategoriseWorld(t)
	c := w.as("referrer")
	type write struct {
		method string
		body   func(sr map[string]any) any // PUT: the resource; PATCH: the JSON Patch
	}
	rows := []struct {
		name   string
		write  write
		status int
		where  []string
	}{
		{"PUT a new specialty", write{"PUT", func(sr map[string]any) any { sr["performerType"] = specialty(sctCardio); return sr }},
			422, []string{"ServiceRequest.performerType"}},
		{"PUT without a specialty", write{"PUT", func(sr map[string]any) any { delete(sr, "performerType"); return sr }},
			422, []string{"ServiceRequest.performerType"}},
		{"PUT a new specialty and service type", write{"PUT", func(sr map[string]any) any {
			sr["performerType"], sr["code"] = specialty(sctCardio), specialty("40701008")
			return sr
		}}, 422, []string{"ServiceRequest.performerType", "ServiceRequest.code"}},
		{"PATCH a service type", write{"PATCH", func(map[string]any) any {
			return `[{"op":"add","path":"/code","value":{"coding":[{"system":"http://snomed.info/sct","code":"40701008"}]}}]`
		}}, 422, []string{"ServiceRequest.code"}},
		{"PATCH the specialty's code", write{"PATCH", func(map[string]any) any {
			return `[{"op":"replace","path":"/performerType/coding/0/code","value":"` + sctCardio + `"}]`
		}}, 422, []string{"ServiceRequest.performerType"}},
		{"PUT with the same specialty and a note", write{"PUT", func(sr map[string]any) any {
			sr["note"] = []any{map[string]any{"text": "patient prefers mornings"}}
			return sr
		}}, 200, nil},
		{"PATCH a note", write{"PATCH", func(map[string]any) any {
			return `[{"op":"add","path":"/note","value":[{"text":"interpreter needed"}]}]`
		}}, 200, nil},
	}
	for _, tc := range rows {
		for _, mode := range []string{"single", "transaction", "batch"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				sr := w.referral(t)
				_, id, _ := fhir.SplitReference(sr)
				body := tc.write.body(c.must(200, "GET", "/"+sr, nil))
				before := versions(t, c)
				status, raw := sendAs(t, c, mode, tc.write.method, sr, body)
				if status != tc.status {
					t.Fatalf("status %d, want %d: %s", status, tc.status, raw)
				}
				if tc.status != 422 {
					return
				}
				var oo struct {
					Issue []struct {
						Expression []string
						Details    struct{ Coding []struct{ Code string } }
					}
				}
				json.Unmarshal(raw, &oo)
				var where []string
				for _, is := range oo.Issue {
					if len(is.Details.Coding) == 0 || is.Details.Coding[0].Code != referral.ErrUseRecategorise {
						t.Errorf("issue details %v, want %s", is.Details, referral.ErrUseRecategorise)
					}
					for _, x := range is.Expression {
						where = append(where, regexp.MustCompile(`^Bundle\.entry\[0\](\.resource)?`).ReplaceAllString(x, "ServiceRequest"))
					}
				}
				if diff := cmp.Diff(tc.where, where); diff != "" {
					t.Errorf("issue locations (-want +got):\n%s", diff)
				}
				if !strings.Contains(string(raw), "ServiceRequest/"+id+"/$recategorise") {
					t.Errorf("the refusal does not point at $recategorise: %s", raw)
				}
				if diff := cmp.Diff(before, versions(t, c)); diff != "" {
					t.Errorf("a refused write changed resources (-before +after):\n%s", diff)
				}
			})
		}
	}
}

// sendAs sends a PUT (body a resource) or PATCH (body a JSON Patch) of
// ref in mode, answering the status and the OperationOutcome (a batch
// entry's own) or resource.
func sendAs(t *testing.T, c *client, mode, method, ref string, body any) (int, []byte) {
	t.Helper()
	if mode == "single" {
		if method == "PATCH" {
			return patchRaw(t, c, ref, body.(string))
		}
		return c.raw(method, "/"+ref, body)
	}
	e := map[string]any{"request": map[string]any{"method": method, "url": ref}, "resource": body}
	if method == "PATCH" {
		e["resource"] = map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json",
			"data": base64.StdEncoding.EncodeToString([]byte(body.(string)))}
	}
	status, raw := c.raw("POST", "", map[string]any{"resourceType": "Bundle", "type": mode, "entry": []any{e}})
	if status != 200 {
		if mode == "batch" {
			t.Fatalf("batch: %d %s", status, raw)
		}
		return status, raw
	}
	var b struct {
		Entry []struct {
			Resource json.RawMessage
			Response struct {
				Status  string
				Outcome json.RawMessage
			}
		}
	}
	if json.Unmarshal(raw, &b) != nil || len(b.Entry) != 1 {
		t.Fatalf("%s answered %s", mode, raw)
	}
	var code int
	fmt.Sscan(b.Entry[0].Response.Status, &code)
	if b.Entry[0].Response.Outcome != nil {
		return code, b.Entry[0].Response.Outcome
	}
	return code, b.Entry[0].Resource
}

// patchRaw sends a JSON Patch.
func patchRaw(t *testing.T, c *client, ref, patch string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("PATCH", c.base+"/"+ref, strings.NewReader(patch))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json-patch+json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}
