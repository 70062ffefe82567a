package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// searchParams returns the search parameters of a GET query or a POST
// _search form body (both, merged). A body must be a UTF-8 form
// (application/x-www-form-urlencoded): one without that Content-Type is
// refused (415), not ignored.
func searchParams(c *gin.Context) (url.Values, error) {
	params := c.Request.URL.Query()
	if c.Request.Method == http.MethodPost {
		body, err := readRaw(c)
		if err != nil {
			return nil, err
		}
		if err := checkBodyType(c, body, formType, func(mt string) bool { return mt == formType }); err != nil {
			return nil, err
		}
		if err := checkUTF8(body, "the _search form body"); err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fhir.Errorf(fhir.Invalid, "invalid", "", "the _search form body is malformed: %v", err)
		}
		for k, vs := range form {
			params[k] = append(params[k], vs...)
		}
	}
	for _, k := range []string{"_format", "_pretty"} {
		params.Del(k)
	}
	return params, nil
}

const formType = "application/x-www-form-urlencoded"

// searchType serves GET /fhir/:type and POST /fhir/:type/_search.
func (s *Server) searchType(c *gin.Context, typ string) error {
	if s.cfg.readOnly(typ) {
		return s.searchDefinitions(c, typ)
	}
	params, err := searchParams(c)
	if err != nil {
		return err
	}
	b, err := s.runSearch(c.Request.Context(), typ, params, prefer(c, "handling") == "strict")
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, b.encode())
	return nil
}

// systemSearch serves GET /fhir?…
func (s *Server) systemSearch(c *gin.Context) error {
	params, err := searchParams(c)
	if err != nil {
		return err
	}
	b, err := s.runSearch(c.Request.Context(), "", params, prefer(c, "handling") == "strict")
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, b.encode())
	return nil
}

// runSearch parses and runs a search and assembles the searchset Bundle.
func (s *Server) runSearch(ctx context.Context, typ string, params url.Values, strict bool) (*bundle, error) {
	if err := checkSearchSize(params); err != nil {
		return nil, err
	}
	q, err := s.search.Parse(typ, params, search.ParseOptions{Strict: strict, MaxCount: s.cfg.MaxCount})
	if err != nil {
		return nil, err
	}
	if err := s.sec.RestrictQuery(ctx, q); err != nil {
		return nil, err
	}
	if q.Summary == search.SummaryCount {
		q.Count, q.Total = 0, search.TotalAccurate
	}
	page, err := s.store.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	included, err := store.Includes(ctx, s.store, s.search, q, page.Resources)
	if err != nil {
		return nil, err
	}
	included = s.sec.VisibleOnly(ctx, included)
	if err := s.served(ctx, s.store, true, append(page.Resources[:len(page.Resources):len(page.Resources)], included...)...); err != nil {
		return nil, err
	}
	b := s.newBundle("searchset")
	if page.Total >= 0 {
		b.Total = &page.Total
	}
	self := s.cfg.BaseURL + "/" + typ
	if typ == "" {
		self = s.cfg.BaseURL
	}
	withQuery := func(v url.Values) string {
		if len(v) == 0 {
			return self
		}
		return self + "?" + v.Encode()
	}
	applied := q.SelfParams()
	b.Link = append(b.Link, link{Relation: "self", URL: withQuery(applied)})
	if page.Next != "" || page.Prev != "" {
		first := cloneValues(applied)
		first.Del(search.CursorParam)
		b.Link = append(b.Link, link{Relation: "first", URL: withQuery(first)})
	}
	for rel, cursor := range map[string]string{"next": page.Next, "previous": page.Prev} {
		if cursor != "" {
			v := cloneValues(applied)
			v.Set(search.CursorParam, cursor)
			b.Link = append(b.Link, link{Relation: rel, URL: withQuery(v)})
		}
	}
	sort.SliceStable(b.Link, func(i, j int) bool { return linkOrder[b.Link[i].Relation] < linkOrder[b.Link[j].Relation] })
	if q.Summary == search.SummaryCount {
		return b, nil
	}
	b.Entry = make([]bundleEntry, 0, len(page.Resources)+len(included))
	for _, res := range page.Resources {
		b.Entry = append(b.Entry, bundleEntry{FullURL: s.cfg.fullURL(res), Resource: s.cfg.shape(res, q), Search: searchMatch})
	}
	for _, res := range included {
		b.Entry = append(b.Entry, bundleEntry{FullURL: s.cfg.fullURL(res), Resource: s.cfg.shape(res, q), Search: searchInclude})
	}
	return b, nil
}

var linkOrder = map[string]int{"self": 0, "first": 1, "previous": 2, "next": 3}

// shape applies _summary and _elements to a resource: it keeps the
// mandatory members, the summary elements or the listed ones, and marks
// the result SUBSETTED.
func (cfg *Config) shape(res *fhir.Resource, q *search.Query) []byte {
	var keep map[string]bool
	switch {
	case len(q.Elements) > 0:
		keep = map[string]bool{}
		for _, e := range q.Elements {
			keep[e] = true
		}
	case q.Summary == search.SummaryTrue:
		keep = map[string]bool{}
		for _, e := range cfg.SummaryElements[res.Type] {
			keep[e] = true
		}
	case q.Summary == search.SummaryText:
		keep = map[string]bool{"text": true}
	case q.Summary == search.SummaryData:
		obj, err := fhir.ParseObject(res.JSON)
		if err != nil {
			return res.JSON
		}
		obj.Delete("text")
		return subsetted(obj)
	default:
		return res.JSON
	}
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return res.JSON
	}
	for _, k := range append([]string(nil), obj.Keys()...) {
		base := strings.TrimPrefix(k, "_")
		if k == "resourceType" || k == "id" || k == "meta" || keep[base] || keep[choiceStem(base)] {
			continue
		}
		obj.Delete(k)
	}
	return subsetted(obj)
}

// choiceStem returns the [x] stem of a choice element name such as
// deceasedBoolean ("deceased"), or "".
func choiceStem(name string) string {
	for i := 1; i < len(name); i++ {
		if name[i] >= 'A' && name[i] <= 'Z' {
			return name[:i]
		}
	}
	return ""
}

// subsetted adds the SUBSETTED security tag FHIR asks for on partial
// resources and encodes obj.
func subsetted(obj *fhir.Object) []byte {
	meta := &fhir.Object{}
	if raw := obj.Get("meta"); raw != nil {
		if m, err := fhir.ParseObject(raw); err == nil {
			meta = m
		}
	}
	var tags []json.RawMessage
	_ = json.Unmarshal(meta.Get("tag"), &tags)
	tags = append(tags, json.RawMessage(`{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}`))
	meta.Set("tag", tags)
	obj.SetAfter("id", "meta", json.RawMessage(meta.Bytes()))
	return obj.Bytes()
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// history serves /fhir/_history, /fhir/:type/_history and
// /fhir/:type/:id/_history.
func (s *Server) history(c *gin.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if id == "_history" {
		id = ""
	}
	if err := s.sec.AuthorizeHistory(c.Request.Context(), typ, id); err != nil {
		return err
	}
	q := store.HistoryQuery{Type: typ, ID: id, Cursor: c.Query("_cursor"), Count: 50}
	if v := c.Query("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fhir.Errorf(fhir.Invalid, "invalid", "_count", "_count %q is not a non-negative integer", v)
		}
		q.Count = min(max(n, 1), s.cfg.MaxCount)
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"_since", &q.Since}, {"_at", &q.Before}} {
		if v := c.Query(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return fhir.Errorf(fhir.Invalid, "invalid", p.name, "%s %q is not an instant with a time zone (e.g. 2026-03-01T09:00:00Z; encode + as %%2B)", p.name, v)
			}
			*p.t = t
		}
	}
	if id != "" && s.cfg.writable(typ) {
		if _, err := s.store.Read(c.Request.Context(), typ, id); fhir.KindOf(err) == fhir.NotFound {
			return err
		}
	}
	page, err := s.store.History(c.Request.Context(), q)
	if err != nil {
		return err
	}
	page.Versions = s.sec.VisibleOnly(c.Request.Context(), page.Versions)
	if err := s.served(c.Request.Context(), s.store, false, page.Versions...); err != nil {
		return err
	}
	b := s.newBundle("history")
	self := c.Request.URL.Path
	selfURL := s.cfg.BaseURL + trimFHIR(self)
	if c.Request.URL.RawQuery != "" {
		selfURL += "?" + c.Request.URL.RawQuery
	}
	b.Link = append(b.Link, link{Relation: "self", URL: selfURL})
	if page.Next != "" {
		next := c.Request.URL.Query()
		next.Set("_cursor", page.Next)
		b.Link = append(b.Link, link{Relation: "next", URL: s.cfg.BaseURL + trimFHIR(self) + "?" + next.Encode()})
	}
	for _, res := range page.Versions {
		e := bundleEntry{FullURL: s.cfg.fullURL(res), Request: &entryRequest{Method: http.MethodPut, URL: res.Type + "/" + res.ID},
			Response: &entryResponse{Status: "200 OK", Etag: res.ETag(), LastModified: res.LastUpdated.Format(fhir.InstantFormat)}}
		switch {
		case res.Deleted:
			e.Request.Method, e.Response.Status = http.MethodDelete, "204 No Content"
		case res.Version == 1:
			e.Request.Method, e.Request.URL, e.Response.Status = http.MethodPost, res.Type, "201 Created"
		}
		if !res.Deleted {
			e.Resource = res.JSON
		}
		b.Entry = append(b.Entry, e)
	}
	writeJSON(c, http.StatusOK, b.encode())
	return nil
}

func trimFHIR(path string) string {
	if len(path) >= 5 && path[:5] == "/fhir" {
		return path[5:]
	}
	return path
}
