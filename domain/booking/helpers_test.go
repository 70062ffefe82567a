package booking_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// server is the real Signpost over a temporary data directory.
type server struct {
	t     testing.TB
	app   *app.App
	base  string // .../fhir
	token string // bearer token sent with every request, when authorisation is on
}

func newServer(t testing.TB, cfg app.Config) *server {
	t.Helper()
	a, ts := apptest.New(t, cfg)
	ts.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 128
	return &server{t: t, app: a, base: ts.URL + "/fhir"}
}

// response is an HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json() map[string]any {
	var m map[string]any
	json.Unmarshal(r.body, &m)
	return m
}

// detail returns the first issue's Signpost error code, or "".
func (r *response) detail() string {
	var oo struct {
		Issue []struct {
			Details struct {
				Coding []struct{ System, Code string }
			}
		}
	}
	json.Unmarshal(r.body, &oo)
	for _, is := range oo.Issue {
		for _, c := range is.Details.Coding {
			if c.System == fhir.ErrorSystem {
				return c.Code
			}
		}
	}
	return ""
}

// expressions returns every issue's expression.
func (r *response) expressions() []string {
	var oo struct {
		Issue []struct{ Expression []string }
	}
	json.Unmarshal(r.body, &oo)
	var out []string
	for _, is := range oo.Issue {
		out = append(out, is.Expression...)
	}
	return out
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: 60 * time.Second}

// do sends a request; body may be a string, []byte or anything to encode.
func (s *server) do(method, path string, body any, headers ...string) *response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// must fails the test unless r has status want.
func must(t testing.TB, what string, r *response, want int) *response {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.status, want, r.body)
	}
	return r
}

// put writes resources through the repo (the same write path and rules as
// the API, without HTTP), for fast seeding.
func (s *server) put(resources ...string) {
	s.t.Helper()
	err := s.app.Writes.Update(context.Background(), func(ctx context.Context, tx *write.Tx) error {
		for _, raw := range resources {
			obj, err := fhir.ParseObject([]byte(raw))
			if err != nil {
				return err
			}
			typ, _ := obj.String("resourceType")
			id, _ := obj.String("id")
			if _, _, err := tx.Put(ctx, typ, id, obj, 0); err != nil {
				return fmt.Errorf("%s/%s: %w", typ, id, err)
			}
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("seeding: %v", err)
	}
}

// putStored writes resources straight to the store, with their index
// entries but without the write path's rules, as `signpost import` loads
// data: for data the rules would refuse.
func (s *server) putStored(resources ...string) {
	s.t.Helper()
	err := s.app.Store.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		for _, raw := range resources {
			obj, err := fhir.ParseObject([]byte(raw))
			if err != nil {
				return err
			}
			typ, _ := obj.String("resourceType")
			id, _ := obj.String("id")
			idx, err := s.app.Search.Extract(typ, []byte(raw))
			if err != nil {
				return err
			}
			res := &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: time.Now().UTC(), JSON: []byte(raw)}
			if err := tx.Put(ctx, &store.Write{Resource: res, Index: idx}); err != nil {
				return fmt.Errorf("%s/%s: %w", typ, id, err)
			}
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("storing: %v", err)
	}
}

// read returns the current JSON of typ/id as a map.
func (s *server) read(typ, id string) map[string]any {
	s.t.Helper()
	res, err := s.app.Store.Read(context.Background(), typ, id)
	if err != nil {
		s.t.Fatalf("reading %s/%s: %v", typ, id, err)
	}
	var m map[string]any
	json.Unmarshal(res.JSON, &m)
	return m
}

func (s *server) slotStatus(id string) string {
	s.t.Helper()
	st, _ := s.read("Slot", id)["status"].(string)
	return st
}

// check runs the consistency checker and fails unless its findings are
// exactly expected (none, by default).
func (s *server) check(expected ...string) booking.Summary {
	s.t.Helper()
	findings, sum, err := booking.Check(context.Background(), s.app.Store, s.app.Location)
	if err != nil {
		s.t.Fatalf("Check: %v", err)
	}
	var got []string
	for _, f := range findings {
		got = append(got, f.String())
	}
	if !slices.Equal(got, expected) {
		s.t.Errorf("consistency findings %q, want %q", got, expected)
	}
	return sum
}

// Fixtures.

func schedule(id, service string, extra ...string) string {
	return `{"resourceType":"Schedule","id":"` + id + `","active":true,"actor":[{"reference":"HealthcareService/` + service + `"}]` +
		strings.Join(extra, "") + `}`
}

func service(id string, characteristic ...string) string {
	s := `{"resourceType":"HealthcareService","id":"` + id + `","name":"Clinic ` + id + `"`
	if len(characteristic) > 0 {
		s += `,"characteristic":[{"coding":[{"system":"` + booking.BookabilitySystem + `","code":"` + characteristic[0] + `"}]}]`
	}
	return s + `}`
}

func patient(id string) string {
	return `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Patient","given":["` + id + `"]}]}`
}

func slotAt(id, sched string, start time.Time, d time.Duration) string {
	return `{"resourceType":"Slot","id":"` + id + `","schedule":{"reference":"Schedule/` + sched + `"},"status":"free","start":"` +
		start.Format(time.RFC3339) + `","end":"` + start.Add(d).Format(time.RFC3339) + `"}`
}

// booked is a booking of slots for a patient, with start and end left for
// the server to fill.
func booked(pat string, slots ...string) map[string]any {
	var refs []map[string]string
	for _, s := range slots {
		refs = append(refs, map[string]string{"reference": "Slot/" + s})
	}
	return map[string]any{"resourceType": "Appointment", "status": "booked", "slot": refs,
		"participant": []map[string]any{{"actor": map[string]string{"reference": "Patient/" + pat}, "status": "accepted"}}}
}

// tomorrow9 is 09:00 UTC tomorrow: a time safely in the future.
func tomorrow9() time.Time {
	return time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 9*time.Hour)
}

// basic seeds service hs, schedule sc and patient p1.
func (s *server) basic() {
	s.put(service("hs"), schedule("sc", "hs"), patient("p1"), patient("p2"))
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// count returns the number of matches of a search (one page of up to 1000).
func (s *server) count(search string) int {
	s.t.Helper()
	sep := "?"
	if strings.Contains(search, "?") {
		sep = "&"
	}
	r := must(s.t, search, s.do("GET", search+sep+"_count=1000", nil), 200)
	var b struct {
		Entry []struct {
			Search struct{ Mode string }
		}
	}
	json.Unmarshal(r.body, &b)
	n := 0
	for _, e := range b.Entry {
		if e.Search.Mode == "match" {
			n++
		}
	}
	return n
}
