package standin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/standin"
	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

const (
	ods      = "A20047"
	asid     = "918999198738"
	consumer = "200000000359"
	nhs      = "9000000009" // a valid NHS number (modulus 11)
)

// monday is the stand-in's clock: Monday 7 December 2026, 08:00 UTC.
var monday = time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)

// fixture is a started stand-in and a consumer that keeps GP Connect's
// rules, with ways to break each.
type fixture struct {
	t      *testing.T
	s      *standin.Server
	client *http.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := standin.New(ods, asid, func() time.Time { return monday }, standin.NewBook(ods, monday, 28))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &fixture{t: t, s: s, client: &http.Client{Timeout: 20 * time.Second}}
}

// claims are valid claims for interaction.
func claims(interaction string) *stu3.Claims {
	return &stu3.Claims{
		Iss: "https://signpost.example/", Sub: "1", Aud: stu3.Audience,
		Iat: monday.Unix(), Exp: monday.Unix() + 300,
		ReasonForRequest: "directcare", RequestedScope: stu3.ScopeOf(interaction),
		RequestingDevice: &stu3.Device{ResourceType: "Device",
			Identifier: []stu3.Identifier{{System: "https://signpost.example/Id/device", Value: "signpost"}},
			Model:      "Signpost", Version: "1"},
		RequestingOrganization: &stu3.Organization{ResourceType: "Organization", Name: "Royal Devon Hospital",
			Identifier: []stu3.Identifier{{System: stu3.ODSOrganizationSystem, Value: "RH8"}}},
		RequestingPractitioner: &stu3.Practitioner{ResourceType: "Practitioner", ID: "1",
			Identifier: []stu3.Identifier{{System: stu3.SDSUserSystem, Value: "G13579135"}, {System: stu3.SDSRoleProfileSystem, Value: "111111111"}},
			Name:       []stu3.HumanName{{Family: "Jones", Given: []string{"Claire"}}}},
	}
}

// request is one request to send, and how to break it.
type request struct {
	method, path string
	interaction  string
	body         any
	header       func(h http.Header)  // changes the headers
	claims       func(c *stu3.Claims) // changes the claims
	token        string               // replaces the token when not ""
}

// answer is the stand-in's answer.
type answer struct {
	status int
	code   string
	body   []byte
	header http.Header
}

// send sends r as a consumer keeping GP Connect's rules would, but for
// what r breaks.
func (f *fixture) send(r request) (*http.Response, error) {
	var body io.Reader
	if r.body != nil {
		b, ok := r.body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(r.body); err != nil {
				return nil, err
			}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(r.method, f.s.URL()+r.path, body)
	if err != nil {
		return nil, err
	}
	c := claims(r.interaction)
	if r.claims != nil {
		r.claims(c)
	}
	token, err := stu3.EncodeUnsigned(c)
	if err != nil {
		return nil, err
	}
	if r.token != "" {
		token = r.token
	}
	req.Header.Set("Ssp-TraceID", uuid.NewString())
	req.Header.Set("Ssp-From", consumer)
	req.Header.Set("Ssp-To", asid)
	req.Header.Set("Ssp-InteractionID", r.interaction)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if r.header != nil {
		r.header(req.Header)
	}
	return f.client.Do(req)
}

// do sends r and reads the answer; an error answer must carry a GP
// Connect error code.
func (f *fixture) do(r request) answer {
	f.t.Helper()
	res, err := f.send(r)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, body: b, header: res.Header}
	if res.StatusCode >= 300 {
		e := stu3.ParseError(res.StatusCode, b)
		a.code = e.Code
		if e.Code == "" {
			f.t.Fatalf("%s %s: %d without a GP Connect error code: %s", r.method, r.path, res.StatusCode, b)
		}
	}
	return a
}

// bundle decodes a searchset's resources by type.
func bundle(t *testing.T, b []byte) map[string][]json.RawMessage {
	t.Helper()
	var bd stu3.Bundle
	if err := json.Unmarshal(b, &bd); err != nil || bd.Type != "searchset" {
		t.Fatalf("not a searchset (%v): %s", err, b)
	}
	out := map[string][]json.RawMessage{}
	for _, e := range bd.Entry {
		var head struct{ ResourceType string }
		_ = json.Unmarshal(e.Resource, &head)
		out[head.ResourceType] = append(out[head.ResourceType], e.Resource)
	}
	return out
}

// slotQuery is a valid free-slot search from from to to (dates or
// date-times), with every include.
func slotQuery(from, to string) string {
	return "/Slot?start=ge" + from + "&end=le" + to + "&status=free&_include=Slot:schedule" +
		"&_include:recurse=Schedule:actor:Practitioner&_include:recurse=Schedule:actor:Location" +
		"&_include:recurse=Location:managingOrganization" +
		"&searchFilter=" + stu3.ODSOrganizationSystem + "|RH8&searchFilter=" + stu3.OrganisationTypeSystem + "|urgent-care"
}

// newAppointment is a valid booking of slots for patient.
func newAppointment(patient string, slots ...stu3.Slot) *stu3.Appointment {
	a := &stu3.Appointment{
		ResourceType: "Appointment",
		Meta:         &stu3.Meta{Profile: []string{stu3.ProfileAppointment}},
		Contained: []stu3.Organization{{ResourceType: "Organization", ID: "1",
			Identifier: []stu3.Identifier{{System: stu3.ODSOrganizationSystem, Value: "RH8"}},
			Name:       "Royal Devon Hospital", Telecom: stu3.List[stu3.ContactPoint]{{System: "phone", Value: "01392 000000"}}}},
		Extension:   []stu3.Extension{{URL: stu3.ExtBookingOrganisation, ValueReference: &stu3.Reference{Reference: "#1"}}},
		Status:      "booked",
		Description: "Review", Comment: "Prefers mornings",
		Start: slots[0].Start, End: slots[len(slots)-1].End,
		Created:     monday.Format(time.RFC3339),
		Participant: []stu3.Participant{{Actor: &stu3.Reference{Reference: "Patient/" + patient}, Status: "accepted"}},
	}
	for _, s := range slots {
		a.Slot = append(a.Slot, stu3.Reference{Reference: "Slot/" + s.ID})
	}
	return a
}

// adjacent are two free slots of one schedule, the second starting as
// the first ends, after skip such pairs.
func adjacent(t *testing.T, s *standin.Server, skip int) (stu3.Slot, stu3.Slot) {
	t.Helper()
	free := s.FreeSlots()
	for i := 0; i+1 < len(free); i++ {
		for j := i + 1; j < len(free); j++ {
			if free[i].Schedule == free[j].Schedule && free[i].End == free[j].Start {
				if skip == 0 {
					return free[i], free[j]
				}
				skip--
			}
		}
	}
	t.Fatal("no adjacent free slots")
	return stu3.Slot{}, stu3.Slot{}
}

// clientWithTimeout gives up after 300 ms.
var clientWithTimeout = http.Client{Timeout: 300 * time.Millisecond}
