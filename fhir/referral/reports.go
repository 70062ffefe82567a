package referral

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/directory"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/store"
)

// report is a table: column names and rows of cells.
type report struct {
	columns []string
	rows    [][]string
}

// window is a report's [from, to) period; zero bounds are open.
type window struct{ from, to time.Time }

func (w window) contains(t time.Time) bool {
	return (w.from.IsZero() || !t.Before(w.from)) && (w.to.IsZero() || t.Before(w.to))
}

// reportOp is a system-level report operation answering Parameters (one
// row part per line, one part per column) or CSV with format=text/csv.
func (s *Service) reportOp(name string, build func(ctx context.Context, st store.Reader, w window) (*report, error)) *operation.Operation {
	return &operation.Operation{
		Name: name, Definition: definition(name),
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			var w window
			for _, b := range []struct {
				name string
				t    *time.Time
			}{{"from", &w.from}, {"to", &w.to}} {
				if v, ok := req.Params.String(b.name); ok {
					t, err := time.Parse("2006-01-02", v)
					if err != nil {
						return nil, fhir.Errorf(fhir.Invalid, "value", b.name, "%s must be a date (YYYY-MM-DD), not %q", b.name, v)
					}
					*b.t = t
				}
			}
			rep, err := build(ctx, s.repo.Store(), w)
			if err != nil {
				return nil, err
			}
			format, _ := req.Params.String("format")
			if format == "text/csv" || format == "csv" || req.Format == "text/csv" || req.Format == "csv" || strings.Contains(req.Header.Get("Accept"), "text/csv") {
				var buf bytes.Buffer
				cw := csv.NewWriter(&buf)
				_ = cw.Write(rep.columns)
				_ = cw.WriteAll(rep.rows)
				return &operation.Result{Body: buf.Bytes(), ContentType: "text/csv; charset=utf-8"}, nil
			}
			out := &operation.Parameters{}
			for _, r := range rep.rows {
				p := operation.Parameter{Name: "row"}
				for i, cell := range r {
					if n, err := strconv.Atoi(cell); err == nil {
						p.Part = append(p.Part, operation.Parameter{Name: rep.columns[i], ValueType: "Integer", Value: mustJSON(n)})
					} else if f, err := strconv.ParseFloat(cell, 64); err == nil {
						p.Part = append(p.Part, operation.Parameter{Name: rep.columns[i], ValueType: "Decimal", Value: mustJSON(f)})
					} else {
						p.Part = append(p.Part, operation.Parameter{Name: rep.columns[i], ValueType: "String", Value: mustJSON(cell)})
					}
				}
				out.Parameter = append(out.Parameter, p)
			}
			return &operation.Result{Body: out.Encode()}, nil
		},
	}
}

// count tallies rows by key and renders them sorted.
type count map[[4]string]int

func (c count) rows(n int) [][]string {
	var keys [][4]string
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		for x := range 4 {
			if keys[i][x] != keys[j][x] {
				return keys[i][x] < keys[j][x]
			}
		}
		return false
	})
	var out [][]string
	for _, k := range keys {
		out = append(out, append(append([]string{}, k[:n]...), strconv.Itoa(c[k])))
	}
	return out
}

func (s *Service) all(ctx context.Context, st store.Reader, typ string) ([]*fhir.Resource, error) {
	return find(ctx, st, s.reg, typ, "")
}

// referralTrends counts referrals by referring organisation (or person),
// specialty and month.
func (s *Service) referralTrends(ctx context.Context, st store.Reader, w window) (*report, error) {
	srs, err := s.all(ctx, st, "ServiceRequest")
	if err != nil {
		return nil, err
	}
	c := count{}
	for _, res := range srs {
		var r requestView
		if json.Unmarshal(res.JSON, &r) != nil || r.ubrn() == "" {
			continue
		}
		when := res.LastUpdated
		if t, err := time.Parse(time.RFC3339, r.AuthoredOn); err == nil {
			when = t
		} else if t, err := time.Parse("2006-01-02", r.AuthoredOn); err == nil {
			when = t
		}
		if !w.contains(when) {
			continue
		}
		spec := r.PerformerType.Text
		if len(r.PerformerType.Coding) > 0 {
			spec = label(r.PerformerType.Coding[0])
		}
		c[[4]string{r.Requester.Reference, spec, when.Format("2006-01")}]++
	}
	return &report{columns: []string{"requester", "specialty", "month", "referrals"}, rows: c.rows(3)}, nil
}

// capacityGaps counts slot-issue deferrals (from their Provenance) by
// service and the service's specialty.
func (s *Service) capacityGaps(ctx context.Context, st store.Reader, w window) (*report, error) {
	provs, err := s.all(ctx, st, "Provenance")
	if err != nil {
		return nil, err
	}
	specialty := map[string]string{}
	c := count{}
	for _, res := range provs {
		var p struct {
			Recorded string  `json:"recorded"`
			Activity concept `json:"activity"`
			Entity   []struct {
				What reference `json:"what"`
			} `json:"entity"`
		}
		if json.Unmarshal(res.JSON, &p) != nil || !p.Activity.has(StateSystem, string(SlotIssue)) {
			continue
		}
		if t, err := time.Parse(time.RFC3339, p.Recorded); err == nil && !w.contains(t) {
			continue
		}
		for _, e := range p.Entity {
			svc := e.What.Reference
			if _, ok := specialty[svc]; !ok {
				specialty[svc] = ""
				if hs, err := readRef(ctx, st, svc); err == nil {
					var v serviceView
					_ = json.Unmarshal(hs.JSON, &v)
					if len(v.Specialty) > 0 && len(v.Specialty[0].Coding) > 0 {
						specialty[svc] = label(v.Specialty[0].Coding[0])
					}
				}
			}
			c[[4]string{svc, specialty[svc]}]++
		}
	}
	return &report{columns: []string{"service", "specialty", "deferrals"}, rows: c.rows(2)}, nil
}

// waitingTimes lists every service's current wait.
func (s *Service) waitingTimes(ctx context.Context, st store.Reader, _ window) (*report, error) {
	services, err := s.all(ctx, st, "HealthcareService")
	if err != nil {
		return nil, err
	}
	if err := store.AddDerived(ctx, st, services); err != nil { // their current waiting times
		return nil, err
	}
	now := s.cfg.Now().In(s.cfg.Location)
	rep := &report{columns: []string{"service", "name", "specialty", "waiting-days", "average-days", "next-slot"}}
	for _, res := range services {
		var v serviceView
		_ = json.Unmarshal(res.JSON, &v)
		spec := ""
		if len(v.Specialty) > 0 && len(v.Specialty[0].Coding) > 0 {
			spec = label(v.Specialty[0].Coding[0])
		}
		row := []string{res.Reference(), v.Name, spec, "", "", ""}
		if wt, ok := directory.ReadWait(res.JSON, now); ok {
			row[3], row[4], row[5] = strconv.Itoa(wt.Days), fmt.Sprint(wt.AverageDays), wt.NextSlot.UTC().Format(time.RFC3339)
		}
		rep.rows = append(rep.rows, row)
	}
	sort.Slice(rep.rows, func(i, j int) bool { return rep.rows[i][1] < rep.rows[j][1] })
	return rep, nil
}

// bookingOutcomes counts referrals by current state and owning service,
// and patient-experience responses by service.
func (s *Service) bookingOutcomes(ctx context.Context, st store.Reader, w window) (*report, error) {
	tasks, err := find(ctx, st, s.reg, "Task", "code="+TaskCodeSystem+"|"+TaskCode)
	if err != nil {
		return nil, err
	}
	c := count{}
	for _, res := range tasks {
		if !w.contains(res.LastUpdated) {
			continue
		}
		var tv taskView
		if json.Unmarshal(res.JSON, &tv) != nil {
			continue
		}
		c[[4]string{"referral", string(tv.state()), tv.Owner.Reference}]++
	}
	qrs, err := s.all(ctx, st, "QuestionnaireResponse")
	if err != nil {
		return nil, err
	}
	for _, res := range qrs {
		var q struct {
			Questionnaire string `json:"questionnaire"`
			Status        string `json:"status"`
		}
		if json.Unmarshal(res.JSON, &q) != nil || !w.contains(res.LastUpdated) {
			continue
		}
		c[[4]string{"questionnaire-response", q.Status, q.Questionnaire}]++
	}
	return &report{columns: []string{"kind", "outcome", "subject", "count"}, rows: c.rows(3)}, nil
}
