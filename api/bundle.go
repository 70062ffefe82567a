package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// Bundle encoding.

type bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *bundleMeta   `json:"meta,omitempty"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []link        `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleMeta struct {
	LastUpdated string `json:"lastUpdated"`
}

type link struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *entrySearch    `json:"search,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	Response *entryResponse  `json:"response,omitempty"`

	// served is the resource a read or write entry answers with (nil for
	// others), so that the answer can be brought up to date (latest).
	served *fhir.Resource
	status int
}

type entrySearch struct {
	Mode string `json:"mode"`
}

// The search modes of a searchset's entries, shared by every entry (an
// entry's search is never changed once made).
var (
	searchMatch   = &entrySearch{Mode: "match"}
	searchInclude = &entrySearch{Mode: "include"}
)

type entryRequest struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfNoneExist string `json:"ifNoneExist,omitempty"`
	IfMatch     string `json:"ifMatch,omitempty"`
}

type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// encode writes the Bundle. Entry resources are spliced in as the stored
// bytes (compact JSON the server wrote), not re-encoded: encoding/json would
// re-validate and re-compact every resource of every page.
func (b *bundle) encode() []byte {
	entries := b.Entry
	b.Entry = nil
	head := marshal(b)
	b.Entry = entries
	if len(entries) == 0 {
		return head
	}
	size := len(head) + 16
	for _, e := range entries {
		size += len(e.Resource) + len(e.FullURL) + 128
	}
	out := make([]byte, 0, size)
	out = append(out, head[:len(head)-1]...) // without its closing brace
	out = append(out, `,"entry":[`...)
	for i, e := range entries {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '{')
		if e.FullURL != "" {
			out = append(out, `"fullUrl":`...)
			out = appendJSONString(out, e.FullURL)
			out = append(out, ',')
		}
		if e.Resource != nil {
			out = append(out, `"resource":`...)
			out = append(out, e.Resource...)
			out = append(out, ',')
		}
		if e.Search != nil && e.Request == nil && e.Response == nil { // a searchset entry: no encoder needed
			out = append(out, `"search":{"mode":`...)
			out = appendJSONString(out, e.Search.Mode)
			out = append(out, "}}"...)
			continue
		}
		e.FullURL, e.Resource = "", nil
		rest := marshal(e) // search, request, response
		out = append(out, rest[1:]...)
		if len(rest) == 2 && out[len(out)-2] == ',' { // {}: drop the comma before the brace
			out = append(out[:len(out)-2], '}')
		}
	}
	return append(out, "]}"...)
}

// marshal encodes v as JSON, leaving &, < and > as they are (links).
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("api: encoding %T: %v", v, err)) // our own types always encode
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// appendJSONString appends str as a JSON string as marshal would write it:
// printable ASCII without quotes or backslashes (every URL and code this
// server writes) is copied as it is; anything else goes through marshal.
func appendJSONString(out []byte, str string) []byte {
	for i := 0; i < len(str); i++ {
		if c := str[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return append(out, marshal(str)...)
		}
	}
	out = append(out, '"')
	out = append(out, str...)
	return append(out, '"')
}

// fullURL is the absolute URL of a resource, for Bundle entries.
func (cfg *Config) fullURL(res *fhir.Resource) string {
	return cfg.BaseURL + "/" + res.Type + "/" + res.ID
}

func (s *Server) newBundle(typ string) *bundle {
	return &bundle{ResourceType: "Bundle", ID: newID(), Type: typ,
		Meta: &bundleMeta{LastUpdated: s.now().UTC().Format(fhir.InstantFormat)}}
}

// Batch and transaction.

// txEntry is one entry of a batch or transaction request.
type txEntry struct {
	index    int
	fullURL  string
	method   string
	url      string // request.url as sent
	typ, id  string // from url
	query    string // from url, after "?"
	version  int64  // GET …/_history/n
	ifNone   string
	ifMatch  int64
	resource *fhir.Object
	patch    []byte
	invalid  error // a batch entry that could not be read
}

func (e *txEntry) where() string { return fmt.Sprintf("Bundle.entry[%d]", e.index) }

// relocate places the issues of err, an error of processing the entry,
// within the Bundle: a location inside the entry's resource (its type's
// path, "Appointment.basedOn") under Bundle.entry[i].resource, as the
// entry's validation issues are, so that an entry's answer reads like the
// single request's; any other under Bundle.entry[i].
func (e *txEntry) relocate(err error) error {
	fe := fhir.AsError(err)
	if e.typ == "" || e.resource == nil && e.patch == nil {
		return relocate(err, e.where())
	}
	inside := false
	for _, is := range fe.Issues {
		for _, x := range is.Expression {
			if x == e.typ || strings.HasPrefix(x, e.typ+".") {
				inside = true
			}
		}
	}
	if !inside {
		return relocate(err, e.where())
	}
	out := &fhir.Error{Kind: fe.Kind, Op: fe.Op, Err: fe.Err}
	for _, is := range fe.Issues {
		var in, other []string
		for _, x := range is.Expression {
			if x == e.typ || strings.HasPrefix(x, e.typ+".") {
				in = append(in, x)
			} else {
				other = append(other, x)
			}
		}
		is.Expression = nil
		if len(in) > 0 {
			r := fhir.AsError(relocate(&fhir.Error{Kind: fe.Kind, Issues: []fhir.Issue{{Expression: in}}}, e.where()+".resource"))
			is.Expression = append(is.Expression, r.Issues[0].Expression...)
		}
		if len(other) > 0 || len(in) == 0 {
			r := fhir.AsError(relocate(&fhir.Error{Kind: fe.Kind, Issues: []fhir.Issue{{Expression: other}}}, e.where()))
			is.Expression = append(is.Expression, r.Issues[0].Expression...)
		}
		out.Issues = append(out.Issues, is)
	}
	return out
}

// order is the processing order FHIR prescribes for a transaction.
var order = map[string]int{http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodPatch: 2, http.MethodGet: 3, http.MethodHead: 3}

// bundle serves POST /fhir with a batch or transaction Bundle.
func (s *Server) bundle(c *gin.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	obj, err := fhir.ParseObject(body)
	if err != nil {
		return err
	}
	if rt, _ := obj.String("resourceType"); rt != "Bundle" {
		return fhir.Errorf(fhir.Invalid, "invalid", "resourceType", "POST to the base takes a batch or transaction Bundle, not %q", rt)
	}
	kind, _ := obj.String("type")
	if kind != "batch" && kind != "transaction" {
		return fhir.Errorf(fhir.Invalid, "invalid", "Bundle.type", "Bundle.type must be batch or transaction, not %q", kind)
	}
	entries, err := s.parseEntries(c.Request.Context(), obj.Get("entry"), kind == "transaction")
	if err != nil {
		return err
	}
	var out *bundle
	if kind == "transaction" {
		out, err = s.transaction(c.Request.Context(), entries)
	} else {
		out = s.batch(c.Request.Context(), entries)
	}
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, out.encode())
	return nil
}

// parseEntries reads and validates every entry, reporting every problem of
// every entry at once.
func (s *Server) parseEntries(ctx context.Context, raw json.RawMessage, strict bool) ([]*txEntry, error) {
	var rawEntries []json.RawMessage
	if raw != nil {
		if err := json.Unmarshal(raw, &rawEntries); err != nil {
			return nil, fhir.Errorf(fhir.Invalid, "structure", "Bundle.entry", "Bundle.entry must be an array")
		}
	}
	var issues []fhir.Issue
	var entries []*txEntry
	for i, r := range rawEntries {
		e, err := s.parseEntry(ctx, i, r)
		if err != nil {
			issues = append(issues, fhir.AsError(err).Issues...)
			if !strict {
				entries = append(entries, &txEntry{index: i, method: "INVALID", invalid: err})
			}
			continue
		}
		entries = append(entries, e)
	}
	if strict && len(issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Invalid, Issues: issues}
	}
	return entries, nil
}

func (s *Server) parseEntry(ctx context.Context, i int, raw json.RawMessage) (*txEntry, error) {
	e := &txEntry{index: i}
	var in struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
			IfMatch     string `json:"ifMatch"`
		} `json:"request"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", e.where(), "the entry is malformed: %v", err)
	}
	if in.Request == nil || in.Request.Method == "" || in.Request.URL == "" {
		return nil, fhir.Errorf(fhir.Invalid, "required", e.where()+".request", "every entry needs request.method and request.url")
	}
	e.fullURL, e.method, e.url, e.ifNone = in.FullURL, in.Request.Method, in.Request.URL, in.Request.IfNoneExist
	if _, ok := order[e.method]; !ok {
		return nil, fhir.Errorf(fhir.Invalid, "value", e.where()+".request.method", "request.method %q is not GET, POST, PUT, PATCH or DELETE", e.method)
	}
	if in.Request.IfMatch != "" {
		v := strings.Trim(strings.TrimPrefix(in.Request.IfMatch, "W/"), `"`)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, fhir.Errorf(fhir.Invalid, "value", e.where()+".request.ifMatch", "ifMatch %q is not a version ETag", in.Request.IfMatch)
		}
		e.ifMatch = n
	}
	path := strings.TrimPrefix(strings.TrimPrefix(e.url, s.cfg.BaseURL), "/")
	path, e.query, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	e.typ = parts[0]
	if err := s.cfg.checkType(e.typ); err != nil {
		return nil, relocate(err, e.where()+".request.url")
	}
	switch {
	case len(parts) == 2:
		e.id = parts[1]
	case len(parts) == 4 && parts[2] == "_history" && e.method == http.MethodGet:
		e.id = parts[1]
		e.version, _ = strconv.ParseInt(parts[3], 10, 64)
	case len(parts) != 1:
		return nil, fhir.Errorf(fhir.Invalid, "value", e.where()+".request.url", "request.url %q is not Type, Type/id or Type?query", e.url)
	}
	switch e.method {
	case http.MethodPost, http.MethodPut:
		if e.method == http.MethodPost && e.id != "" {
			return nil, fhir.Errorf(fhir.Invalid, "value", e.where()+".request.url", "a POST entry's url is the type, not %q", e.url)
		}
		if e.method == http.MethodPut && e.id == "" && e.query == "" {
			return nil, fhir.Errorf(fhir.Invalid, "value", e.where()+".request.url", "a PUT entry's url needs an id or a condition")
		}
		if err := s.cfg.mustWrite(e.typ); err != nil {
			return nil, relocate(err, e.where()+".request.url")
		}
		if in.Resource == nil {
			return nil, fhir.Errorf(fhir.Invalid, "required", e.where()+".resource", "a %s entry needs a resource", e.method)
		}
		obj, err := s.checkResource(ctx, in.Resource, e.typ, e.where()+".resource")
		if err != nil {
			return nil, err
		}
		if e.id != "" {
			if err := checkBodyID(obj, e.id, false); err != nil {
				return nil, relocate(err, e.where()+".resource")
			}
		}
		e.resource = obj
	case http.MethodPatch:
		var bin struct {
			ResourceType, ContentType, Data string
		}
		if json.Unmarshal(in.Resource, &bin) != nil || bin.ResourceType != "Binary" {
			return nil, fhir.Errorf(fhir.Invalid, "value", e.where()+".resource", "a PATCH entry carries its JSON Patch as a Binary resource")
		}
		doc, err := base64.StdEncoding.DecodeString(bin.Data)
		if err != nil {
			return nil, fhir.Errorf(fhir.Invalid, "value", e.where()+".resource.data", "the patch is not base64")
		}
		e.patch = doc
		if e.id == "" {
			return nil, fhir.Errorf(fhir.Invalid, "value", e.where()+".request.url", "a PATCH entry's url needs an id")
		}
	}
	return e, nil
}

// transaction processes entries all-or-nothing, in FHIR's order, resolving
// urn:uuid references between them.
func (s *Server) transaction(ctx context.Context, entries []*txEntry) (*bundle, error) {
	sorted := append([]*txEntry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return order[sorted[i].method] < order[sorted[j].method] })
	responses := make([]bundleEntry, len(entries))
	var wtx *write.Tx // the attempt that committed
	err := s.repo.UpdateWith(ctx, write.TxOptions{Entries: len(entries)}, func(ctx context.Context, tx *write.Tx) error {
		wtx = tx
		// Deletes come first, so that conditions below see their effect.
		for _, e := range sorted {
			if e.method != http.MethodDelete {
				continue
			}
			resp, err := s.runEntry(ctx, tx, e)
			if err != nil {
				return e.relocate(err)
			}
			responses[e.index] = resp
		}
		// Give every created resource its id first, so references resolve.
		ids := map[string]string{} // urn:uuid:… → Type/id
		for _, e := range sorted {
			if e.method == http.MethodPost && e.ifNone != "" {
				match, err := s.conditionalMatch(ctx, tx, e.typ, e.ifNone)
				if err != nil {
					return relocate(err, e.where()+".request.ifNoneExist")
				}
				if match != nil {
					e.id, e.method = match.ID, "EXISTING"
				}
			}
			if e.method == http.MethodPost {
				e.id = write.NewID()
			}
			if e.method == http.MethodPut && e.id == "" && isURN(e.fullURL) {
				// A conditional update others may refer to: its target now.
				id, err := s.conditionalTarget(ctx, tx, e.typ, e.query, e.resource)
				if err != nil {
					return relocate(err, e.where())
				}
				e.id = id
			}
			if isURN(e.fullURL) {
				if e.id != "" {
					ids[e.fullURL] = e.typ + "/" + e.id
				}
			}
		}
		for _, e := range sorted {
			if e.method == http.MethodDelete {
				continue // done above
			}
			if e.resource != nil && len(ids) > 0 {
				if err := resolveURNs(e.resource, ids); err != nil {
					return relocate(err, e.where()+".resource")
				}
			}
			resp, err := s.runEntry(ctx, tx, e)
			if err != nil {
				return e.relocate(err)
			}
			responses[e.index] = resp
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := s.newBundle("transaction-response")
	for i := range responses {
		responses[i] = s.cfg.latest(wtx, responses[i])
	}
	out.Entry = responses
	return out, nil
}

// latest answers a write entry with the version the transaction's
// after-commit work superseded its resource with (write.Tx.Latest), if
// any.
func (cfg *Config) latest(tx *write.Tx, e bundleEntry) bundleEntry {
	if res := tx.Latest(e.served); res != e.served {
		return cfg.resourceEntry(res, e.status)
	}
	return e
}

// batch processes each entry on its own.
func (s *Server) batch(ctx context.Context, entries []*txEntry) *bundle {
	out := s.newBundle("batch-response")
	for _, e := range entries {
		var resp bundleEntry
		var err error
		switch e.method {
		case "INVALID":
			err = e.invalid
		case http.MethodGet:
			resp, err = s.runEntry(ctx, s.store, e)
		default:
			var wtx *write.Tx
			err = s.repo.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
				var err error
				wtx = tx
				resp, err = s.runEntry(ctx, tx, e)
				return err
			})
			if err == nil {
				resp = s.cfg.latest(wtx, resp)
			}
		}
		if err != nil {
			fe := fhir.AsError(e.relocate(err))
			resp = bundleEntry{Response: &entryResponse{Status: statusLine(statusOf[fe.Kind]), Outcome: fhir.OperationOutcome(fe.Issues...)}}
		}
		out.Entry = append(out.Entry, resp)
	}
	return out
}

// entryReader is what GET entries need: a transaction or the store.
type entryReader interface {
	Read(ctx context.Context, typ, id string) (*fhir.Resource, error)
	ReadVersion(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error)
}

// runEntry performs one entry. rd is a *write.Tx for writes.
func (s *Server) runEntry(ctx context.Context, rd entryReader, e *txEntry) (bundleEntry, error) {
	tx, _ := rd.(*write.Tx)
	var res *fhir.Resource
	var err error
	status := http.StatusOK
	switch e.method {
	case "EXISTING":
		res, err = rd.Read(ctx, e.typ, e.id)
	case http.MethodGet:
		if e.id != "" {
			if err := s.sec.AuthorizeInstance(ctx, rd.(store.Reader), e.typ, e.id, auth.Read); err != nil {
				return bundleEntry{}, err
			}
		}
		switch {
		case e.version > 0:
			res, err = rd.ReadVersion(ctx, e.typ, e.id, e.version)
		case e.id != "":
			res, err = rd.Read(ctx, e.typ, e.id)
		default:
			return s.searchEntry(ctx, e)
		}
	case http.MethodPost:
		if e.id == "" { // a batch entry: ids are given in transaction()
			if e.ifNone != "" {
				if res, err = s.conditionalMatch(ctx, tx, e.typ, e.ifNone); err != nil || res != nil {
					break
				}
			}
			e.id = write.NewID()
		}
		status = http.StatusCreated
		res, _, err = tx.Put(ctx, e.typ, e.id, e.resource, 0)
	case http.MethodPut:
		id := e.id
		if id == "" {
			if id, err = s.conditionalTarget(ctx, tx, e.typ, e.query, e.resource); err != nil {
				return bundleEntry{}, err
			}
		}
		var created bool
		res, created, err = tx.Put(ctx, e.typ, id, e.resource, e.ifMatch)
		status = statusFor(created)
	case http.MethodPatch:
		p, perr := decodePatch(e.patch)
		if perr != nil {
			return bundleEntry{}, perr
		}
		res, err = s.patchInTx(ctx, tx, e.typ, e.id, p, e.ifMatch, e.where()+".resource")
	case http.MethodDelete:
		id := e.id
		if id == "" {
			match, merr := s.conditionalMatch(ctx, tx, e.typ, e.query)
			if merr != nil || match == nil {
				return bundleEntry{Response: &entryResponse{Status: "204 No Content"}}, merr
			}
			id = match.ID
		}
		_, err = tx.Delete(ctx, e.typ, id, e.ifMatch)
		return bundleEntry{Response: &entryResponse{Status: "204 No Content"}}, err
	}
	if err != nil {
		return bundleEntry{}, err
	}
	// A version read by number is not current, whatever it is.
	if err := s.served(ctx, rd.(store.Reader), e.version == 0, res); err != nil {
		return bundleEntry{}, err
	}
	return s.cfg.resourceEntry(res, status), nil
}

// resourceEntry is the entry answering with res and HTTP status.
func (cfg *Config) resourceEntry(res *fhir.Resource, status int) bundleEntry {
	return bundleEntry{FullURL: cfg.fullURL(res), Resource: res.JSON, Response: &entryResponse{
		Status:       statusLine(status),
		Location:     res.Type + "/" + res.ID + "/_history/" + itoa(res.Version),
		Etag:         res.ETag(),
		LastModified: res.LastUpdated.Format(fhir.InstantFormat),
	}, served: res, status: status}
}

// searchEntry runs a GET Type?query entry as a search.
func (s *Server) searchEntry(ctx context.Context, e *txEntry) (bundleEntry, error) {
	params, err := url.ParseQuery(e.query)
	if err != nil {
		return bundleEntry{}, fhir.Errorf(fhir.Invalid, "invalid", "", "the query %q is malformed", e.query)
	}
	b, err := s.runSearch(ctx, e.typ, params, false)
	if err != nil {
		return bundleEntry{}, err
	}
	return bundleEntry{Resource: b.encode(), Response: &entryResponse{Status: "200 OK"}}, nil
}

// isURN reports whether a fullUrl is a urn:uuid: or urn:oid: placeholder.
func isURN(fullURL string) bool {
	return strings.HasPrefix(fullURL, "urn:uuid:") || strings.HasPrefix(fullURL, "urn:oid:")
}

// resolveURNs rewrites references to urn:uuid: fullUrls of the transaction
// into the Type/id they were given. The resource's members are compact JSON,
// so a reference is the exact byte sequence "reference":"urn:…".
func resolveURNs(obj *fhir.Object, ids map[string]string) error {
	for _, k := range obj.Keys() {
		raw := obj.Get(k)
		if !bytes.Contains(raw, []byte(`"urn:`)) {
			continue
		}
		for urn, ref := range ids {
			from, _ := json.Marshal(urn)
			to, _ := json.Marshal(ref)
			raw = bytes.ReplaceAll(raw, append([]byte(`"reference":`), from...), append([]byte(`"reference":`), to...))
		}
		obj.Set(k, json.RawMessage(raw))
	}
	return nil
}

// statusLine renders an entry's response status as "201 Created".
func statusLine(status int) string { return strconv.Itoa(status) + " " + http.StatusText(status) }
