package export

// The operations: $export (kick-off, system level and Patient), the status
// endpoint $export-poll-status (GET polls, DELETE cancels) and the file
// download $export-file.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
)

// NDJSON is the media type of the export's files.
const NDJSON = "application/fhir+ndjson"

// outputFormats are the _outputFormat values the Bulk Data specification
// requires a server to accept, all meaning NDJSON.
var outputFormats = []string{NDJSON, "application/ndjson", "ndjson"}

// Operations returns $export, $export-poll-status and $export-file.
func (s *Service) Operations() []*operation.Operation {
	return []*operation.Operation{
		{Name: "export", Types: []string{"Patient"}, TypeLevel: true, System: true, Access: "read",
			Definition: conformance.OperationDefinition("export"), Handle: s.kickOff},
		{Name: "export-poll-status", Access: "read", Deletes: true,
			Definition: conformance.OperationDefinition("export-poll-status"), Handle: s.status},
		{Name: "export-file", Access: "read", Produces: []string{NDJSON, "application/ndjson"},
			Definition: conformance.OperationDefinition("export-file"), Handle: s.download},
	}
}

// principal returns the caller, nil when the server is open.
func (s *Service) principal(ctx context.Context) *auth.Principal {
	if s.cfg.Open {
		return nil
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return &auth.Principal{} // authenticated routes always carry one; nothing matches an empty one
	}
	return p
}

// inputs reads an invocation's inputs: from a Parameters body (POST) or
// the query string (GET), where the Bulk Data names start with "_".
func inputs(req *operation.Request) (map[string][]string, error) {
	in := map[string][]string{}
	if req.Method == http.MethodPost && req.Params != nil && len(req.Params.Parameter) > 0 {
		for _, p := range req.Params.Parameter {
			v, ok := p.String()
			if !ok {
				return nil, fhir.Errorf(fhir.Invalid, "invalid", "Parameters.parameter."+p.Name, "parameter %s must have a primitive or Reference value", p.Name)
			}
			in[p.Name] = append(in[p.Name], v)
		}
	}
	for name, vals := range req.Query {
		switch name {
		case "_format", "_pretty":
			continue
		}
		in[name] = append(in[name], vals...)
	}
	return in, nil
}

// kickOff starts an export: 202 with Content-Location naming its status
// endpoint.
func (s *Service) kickOff(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	if !preferAsync(req.Header) {
		return nil, fhir.Errorf(fhir.Invalid, "required", "Prefer",
			"$export runs asynchronously: send the header Prefer: respond-async")
	}
	in, err := inputs(req)
	if err != nil {
		return nil, err
	}
	j := &job{ID: newID(), Level: "system", State: stateAccepted, Created: s.cfg.Now().UTC()}
	if req.Type == "Patient" {
		j.Level = "patient"
	}
	var issues []fhir.Issue
	bad := func(where, format string, args ...any) {
		issues = append(issues, fhir.Issue{Code: "invalid", Expression: []string{where}, Diagnostics: fmt.Sprintf(format, args...)})
	}
	for name, vals := range in {
		switch name {
		case "_outputFormat":
			for _, v := range vals {
				if !slices.Contains(outputFormats, v) {
					bad("_outputFormat", "_outputFormat %q is not supported: use %s", v, NDJSON)
				}
			}
		case "_since":
			for _, v := range vals {
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					bad("_since", "_since %q is not an instant (e.g. 2026-12-01T00:00:00Z)", v)
					continue
				}
				j.Since = t.UTC()
			}
		case "_type":
		case "patient":
			if j.Level != "patient" {
				bad("patient", "patient is a parameter of Patient/$export only")
				continue
			}
			for _, v := range vals {
				id, ok := strings.CutPrefix(v, "Patient/")
				if !ok || !fhir.ValidID(id) {
					bad("patient", "patient %q is not a reference to a Patient (Patient/id)", v)
					continue
				}
				j.Patients = append(j.Patients, id)
			}
		default:
			issues = append(issues, fhir.Issue{Code: "not-supported", Expression: []string{name},
				Diagnostics: fmt.Sprintf("parameter %s is not supported by $export here (supported: _outputFormat, _type, _since, and patient on Patient/$export)", name)})
		}
	}
	if len(issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Invalid, Op: "$export", Issues: issues}
	}
	p := s.principal(ctx)
	j.Owner = p
	candidates := s.cfg.Types
	if j.Level == "patient" {
		candidates = slices.DeleteFunc(search.CompartmentTypes(), func(t string) bool { return !slices.Contains(s.cfg.Types, t) })
	}
	var asked []string
	for _, v := range in["_type"] {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !slices.Contains(candidates, t) {
				bad("_type", "%s is not a type this export can include (at this level: %s)", t, strings.Join(candidates, ", "))
				continue
			}
			if !slices.Contains(asked, t) {
				asked = append(asked, t)
			}
		}
	}
	if len(issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Invalid, Op: "$export", Issues: issues}
	}
	explicit := len(asked) > 0
	if !explicit {
		asked = candidates
	}
	for _, t := range asked {
		if allowed(p, j.Level, t) {
			j.Types = append(j.Types, t)
		} else if explicit {
			j.Refused = append(j.Refused, t)
		}
	}
	if len(j.Types) == 0 {
		if j.Level == "system" {
			return nil, fhir.Errorf(fhir.Forbidden, "forbidden", "",
				"a system-level $export needs a system-level scope granting read (e.g. system/*.read or system/Patient.rs) on the types it exports")
		}
		return nil, fhir.Errorf(fhir.Forbidden, "forbidden", "", "the access token allows reading none of the types asked for")
	}
	if p != nil && j.Level == "patient" && len(j.Patients) == 0 && p.HasPatientContext() {
		pid := p.Patient
		if pid == "" {
			pid = auth.UnresolvedPatient
		}
		j.Patients = []string{pid} // a patient's export is their compartment: no need to read anyone else's
	}
	if n := s.unfinished(p); n >= MaxUnfinished {
		return nil, fhir.Errorf(fhir.TooManyRequests, "throttled", "",
			"%d exports of this client are still waiting or running: wait for one to finish, or cancel one (DELETE its status URL)", n)
	}
	j.Request = req.BaseURL + "/" + strings.TrimPrefix(req.Type+"/$export", "/")
	if q := req.Query.Encode(); q != "" {
		j.Request += "?" + q
	}
	s.mu.Lock()
	err = s.saveLocked(j)
	if err == nil {
		s.jobs[j.ID] = j
	}
	s.mu.Unlock()
	if err != nil {
		os.RemoveAll(filepath.Join(s.cfg.Dir, j.ID))
		return nil, err
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	h := http.Header{}
	h.Set("Content-Location", s.statusURL(j.ID))
	return &operation.Result{Status: http.StatusAccepted, Header: h, Body: fhir.OperationOutcome(fhir.Issue{Severity: "information",
		Code: "informational", Diagnostics: "export accepted: poll " + s.statusURL(j.ID)})}, nil
}

// MaxUnfinished is how many exports one requester may have waiting or
// running at once.
const MaxUnfinished = 3

// unfinished counts p's exports waiting or running.
func (s *Service) unfinished(p *auth.Principal) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, j := range s.jobs {
		if (j.State == stateAccepted || j.State == stateRunning) && sameRequester(j, p) {
			n++
		}
	}
	return n
}

// allowed reports whether p may export typ at level: read granted, and for
// a system-level export through a system-level scope.
func allowed(p *auth.Principal, level, typ string) bool {
	if p == nil {
		return true
	}
	d := p.Decide(typ, auth.Read)
	if !d.Allowed {
		return false
	}
	if level == "patient" {
		return true
	}
	return slices.ContainsFunc(d.Grants, func(g auth.Grant) bool { return g.Level == auth.LevelSystem })
}

// preferAsync reports whether the Prefer header asks for respond-async.
func preferAsync(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), "respond-async") {
				return true
			}
		}
	}
	return false
}

func (s *Service) statusURL(id string) string {
	return s.cfg.BaseURL + "/$export-poll-status?job=" + url.QueryEscape(id)
}

func (s *Service) fileURL(id, name string) string {
	return s.cfg.BaseURL + "/$export-file?job=" + url.QueryEscape(id) + "&file=" + url.QueryEscape(name)
}

// jobOf finds the job an invocation names, as the caller may see it.
func (s *Service) jobOf(ctx context.Context, req *operation.Request) (*job, error) {
	id, ok := req.Params.String("job")
	if !ok || id == "" {
		return nil, fhir.Errorf(fhir.Invalid, "required", "job", "name the export job: job=<id>, as the Content-Location of $export gave it")
	}
	return s.lookup(id, s.principal(ctx))
}

// manifest is the complete-status body.
type manifest struct {
	TransactionTime     string          `json:"transactionTime"`
	Request             string          `json:"request"`
	RequiresAccessToken bool            `json:"requiresAccessToken"`
	Output              []manifestEntry `json:"output"`
	Error               []manifestEntry `json:"error"`
}

type manifestEntry struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count,omitempty"`
}

// status answers a poll (GET) or cancels (DELETE).
func (s *Service) status(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	j, err := s.jobOf(ctx, req)
	if err != nil {
		return nil, err
	}
	if req.Method == http.MethodDelete {
		s.cancel(j.ID)
		return &operation.Result{Status: http.StatusAccepted, Body: fhir.OperationOutcome(fhir.Issue{Severity: "information",
			Code: "informational", Diagnostics: "export " + j.ID + " cancelled; its files are removed"})}, nil
	}
	h := http.Header{}
	switch j.State {
	case stateAccepted, stateRunning:
		h.Set("Retry-After", "2")
		progress := "queued"
		if j.State == stateRunning {
			progress = fmt.Sprintf("%d of %d types, %d resources", j.Done, len(j.Types), j.Exported)
		}
		h.Set("X-Progress", progress)
		return &operation.Result{Status: http.StatusAccepted, Header: h, Body: fhir.OperationOutcome(fhir.Issue{Severity: "information",
			Code: "informational", Diagnostics: "export in progress: " + progress})}, nil
	case stateFailed:
		return &operation.Result{Status: http.StatusInternalServerError, Body: fhir.OperationOutcome(fhir.Issue{Code: "exception",
			Diagnostics: j.Message})}, nil
	}
	m := manifest{TransactionTime: j.TransactionTime.Format(fhir.InstantFormat), Request: j.Request,
		RequiresAccessToken: !s.cfg.Open, Output: []manifestEntry{}, Error: []manifestEntry{}}
	for _, f := range j.Output {
		m.Output = append(m.Output, manifestEntry{Type: f.Type, URL: s.fileURL(j.ID, f.Name), Count: f.Count})
	}
	for _, f := range j.Errors {
		m.Error = append(m.Error, manifestEntry{Type: f.Type, URL: s.fileURL(j.ID, f.Name), Count: f.Count})
	}
	body := marshal(m)
	h.Set("Expires", j.Finished.Add(s.cfg.Retention).UTC().Format(http.TimeFormat))
	return &operation.Result{Header: h, Body: body, ContentType: "application/json"}, nil
}

// download answers one of a completed job's files.
func (s *Service) download(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	j, err := s.jobOf(ctx, req)
	if err != nil {
		return nil, err
	}
	name, _ := req.Params.String("file")
	i := slices.IndexFunc(append(slices.Clone(j.Output), j.Errors...), func(f file) bool { return f.Name == name })
	if j.State != stateComplete || i < 0 {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "file", "export %s has no file %q", j.ID, name)
	}
	body, err := os.ReadFile(filepath.Join(s.cfg.Dir, j.ID, name))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fhir.Errorf(fhir.NotFound, "not-found", "file", "export %s's file %q has expired", j.ID, name)
		}
		return nil, err
	}
	return &operation.Result{Body: body, ContentType: NDJSON}, nil
}

// marshal encodes v without escaping &, < and > (the manifest's URLs stay
// readable).
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
