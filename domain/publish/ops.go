package publish

// The operations: $bulk-publish (the manifest) and $bulk-publish-file (one
// NDJSON file), both public and read-only, and the projections they write.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// NDJSON is the media type of the files.
const NDJSON = "application/fhir+ndjson"

// Operations returns $bulk-publish and $bulk-publish-file.
func (s *Service) Operations() []*operation.Operation {
	return []*operation.Operation{
		{Name: "bulk-publish", Public: true, Produces: []string{"application/json"},
			Definition: conformance.OperationDefinition("bulk-publish"), Handle: s.manifest},
		{Name: "bulk-publish-file", Public: true, Produces: []string{NDJSON, "application/ndjson"},
			Definition: conformance.OperationDefinition("bulk-publish-file"), Handle: s.file},
	}
}

// since reads the _since input; zero without one.
func since(req *operation.Request) (time.Time, error) {
	v := req.Query.Get("_since")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fhir.Errorf(fhir.Invalid, "invalid", "_since", "_since %q is not a timestamp (e.g. 2026-12-01T09:00:00Z)", v)
	}
	return t.UTC(), nil
}

// manifestEntry is one output of the manifest.
type manifestEntry struct {
	Type      string `json:"type"`
	URL       string `json:"url"`
	Extension *struct {
		State []string `json:"state"`
	} `json:"extension,omitempty"`
}

// manifest answers $bulk-publish.
func (s *Service) manifest(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	since, err := since(req)
	if err != nil {
		return nil, err
	}
	c, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	// The data set is as of its latest change (a Location's, a service's,
	// a schedule's or a slot's); a client passes it back as _since.
	modified := c.updated
	for _, typ := range []string{"Slot", "Location"} {
		h, err := s.st.History(ctx, store.HistoryQuery{Type: typ, Count: 1})
		if err != nil {
			return nil, err
		}
		if len(h.Versions) > 0 {
			modified = later(modified, h.Versions[0].LastUpdated)
		}
	}
	if modified.IsZero() {
		modified = s.cfg.Now().UTC()
	}
	request := req.BaseURL + "/$bulk-publish"
	if !since.IsZero() {
		request += "?_since=" + since.Format(fhir.InstantFormat)
	}
	out := []manifestEntry{}
	for i := 0; i < len(c.locations); i += s.cfg.PerFile {
		ids := c.locations[i:min(i+s.cfg.PerFile, len(c.locations))]
		out = append(out, manifestEntry{Type: "Location", URL: s.fileURL("Location", ids[0], ids[len(ids)-1], since)})
	}
	for i := 0; i < len(c.schedules); i += s.cfg.PerFile {
		sc := c.schedules[i:min(i+s.cfg.PerFile, len(c.schedules))]
		out = append(out, manifestEntry{Type: "Schedule", URL: s.fileURL("Schedule", sc[0].ID, sc[len(sc)-1].ID, since)})
	}
	states := map[string]string{} // Location → state, for the hint
	for i := 0; i < len(c.schedules); i += s.cfg.SchedulesPerFile {
		sc := c.schedules[i:min(i+s.cfg.SchedulesPerFile, len(c.schedules))]
		e := manifestEntry{Type: "Slot", URL: s.fileURL("Slot", sc[0].ID, sc[len(sc)-1].ID, since)}
		var st []string
		for _, x := range sc {
			state, ok := states[x.Location]
			if !ok {
				state = s.stateOf(ctx, x.Location)
				states[x.Location] = state
			}
			if state != "" && !slices.Contains(st, state) {
				st = append(st, state)
			}
		}
		if len(st) > 0 {
			slices.Sort(st)
			e.Extension = &struct {
				State []string `json:"state"`
			}{st}
		}
		out = append(out, e)
	}
	body := marshal(struct {
		TransactionTime string          `json:"transactionTime"`
		Request         string          `json:"request"`
		Output          []manifestEntry `json:"output"`
		Error           []any           `json:"error"`
	}{modified.UTC().Format(fhir.InstantFormat), request, out, []any{}})
	return s.cacheable(req, body, "application/json", modified), nil
}

// stateOf returns a Location's address.state, if it has one.
func (s *Service) stateOf(ctx context.Context, id string) string {
	r, err := s.st.Read(ctx, "Location", id)
	if err != nil {
		return ""
	}
	var l struct {
		Address struct {
			State string `json:"state"`
		} `json:"address"`
	}
	_ = json.Unmarshal(r.JSON, &l)
	return l.Address.State
}

// cacheable answers body with its validators, or 304 when the client's
// copy is current.
func (s *Service) cacheable(req *operation.Request, body []byte, contentType string, modified time.Time) *operation.Result {
	tag := etag(body)
	h := http.Header{}
	h.Set("ETag", tag)
	h.Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.cfg.MaxAge/time.Second)))
	notModified := false
	if inm := req.Header.Get("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == tag || t == "*" {
				notModified = true
			}
		}
	} else if ims, err := http.ParseTime(req.Header.Get("If-Modified-Since")); err == nil && !modified.Truncate(time.Second).After(ims) {
		notModified = true
	}
	if notModified {
		return &operation.Result{Status: http.StatusNotModified, Header: h, ContentType: contentType}
	}
	return &operation.Result{Header: h, Body: body, ContentType: contentType}
}

// file answers one NDJSON file: type, and the range of ids [from, to] it
// covers (Locations or Schedules; for Slot, the slots of those schedules).
func (s *Service) file(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	since, err := since(req)
	if err != nil {
		return nil, err
	}
	typ, from, to := req.Query.Get("type"), req.Query.Get("from"), req.Query.Get("to")
	var issues []fhir.Issue
	if typ != "Location" && typ != "Schedule" && typ != "Slot" {
		issues = append(issues, fhir.Issue{Code: "invalid", Expression: []string{"type"}, Diagnostics: fmt.Sprintf("type %q is not published: Location, Schedule or Slot", typ)})
	}
	for _, p := range []struct{ name, v string }{{"from", from}, {"to", to}} {
		if !fhir.ValidID(p.v) {
			issues = append(issues, fhir.Issue{Code: "invalid", Expression: []string{p.name}, Diagnostics: fmt.Sprintf("%s %q is not a resource id", p.name, p.v)})
		}
	}
	if len(issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Invalid, Op: "$bulk-publish-file", Issues: issues}
	}
	c, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	in := func(id string) bool { return id >= from && id <= to }
	var buf bytes.Buffer
	var modified time.Time
	line := func(v any, updated time.Time) {
		buf.Write(marshal(v))
		buf.WriteByte('\n')
		modified = later(modified, updated)
	}
	changed := func(t time.Time) bool { return since.IsZero() || !t.Before(since) }
	switch typ {
	case "Location":
		using := map[string][]*service{}
		for _, sc := range c.schedules {
			using[sc.Location] = append(using[sc.Location], sc.Service)
		}
		for _, id := range c.locations {
			if !in(id) {
				continue
			}
			r, err := s.st.Read(ctx, "Location", id)
			if err != nil {
				if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
					continue
				}
				return nil, err
			}
			touched := changed(r.LastUpdated)
			for _, sv := range using[id] {
				touched = touched || changed(sv.Updated)
			}
			if touched {
				line(s.location(r, using[id]), r.LastUpdated)
			}
		}
	case "Schedule":
		for _, sc := range c.schedules {
			if in(sc.ID) && (changed(sc.Updated) || changed(sc.Service.Updated)) {
				line(s.schedule(sc), later(sc.Updated, sc.Service.Updated))
			}
		}
	case "Slot":
		now := s.cfg.Now().UnixMicro()
		for _, sc := range c.schedules {
			if !in(sc.ID) {
				continue
			}
			q := &search.Query{Type: "Slot", Filter: []search.Expr{
				search.RefIn{Param: "schedule", Refs: []search.Ref{{Type: "Schedule", ID: sc.ID}}},
				search.DateMatch{Param: "end", Prefix: search.Gt, Low: now, High: now + 1}}}
			if !changed(sc.Updated) && !changed(sc.Service.Updated) {
				q.Filter = append(q.Filter, search.DateMatch{Param: "_lastUpdated", Prefix: search.Ge,
					Low: since.UnixMicro(), High: since.UnixMicro() + 1})
			}
			err := s.each(ctx, q, func(r *fhir.Resource) error {
				if v, ok := s.slot(r, sc); ok {
					line(v, r.LastUpdated)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	if modified.IsZero() {
		modified = c.updated
	}
	return s.cacheable(req, buf.Bytes(), NDJSON, modified), nil
}

// marshal encodes v on one line without escaping &, < and > (URLs stay
// readable).
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
