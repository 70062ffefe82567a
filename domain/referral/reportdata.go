package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/store"
)

// window is a report's [from, to) period; zero bounds are open.
type window struct{ from, to time.Time }

func (w window) contains(t time.Time) bool {
	return (w.from.IsZero() || !t.Before(w.from)) && (w.to.IsZero() || t.Before(w.to))
}

// reportFilters are the inputs every report takes. A nil set filters
// nothing; an empty one matches nothing (a practice code no Organization
// has).
type reportFilters struct {
	window
	practices   map[string]bool // "Organization/id" of the referring practices
	services    map[string]bool // "HealthcareService/id"
	specialties []r4.Coding     // a code, with its system when given
	// visible are the services the caller may report on (a
	// commissioner's); nil for every service.
	visible map[string]bool
}

// reportParams are the parameters a report takes.
var reportParams = []string{"practice", "service", "specialty", "from", "to", "format"}

// specialtyOK reports whether a specialty concept matches the filter.
func (f *reportFilters) specialtyOK(cs ...r4.CodeableConcept) bool {
	if f.specialties == nil {
		return true
	}
	for _, want := range f.specialties {
		for _, c := range cs {
			for _, x := range c.Coding {
				if elem.Str(x.Code) == elem.Str(want.Code) && (elem.Str(want.System) == "" || elem.Str(want.System) == elem.Str(x.System)) {
					return true
				}
			}
		}
	}
	return false
}

// reportData reads what the reports count, each resource once, and applies
// the filters and the caller's reach.
type reportData struct {
	s   *Service
	ctx context.Context
	st  store.Reader
	f   reportFilters

	services  map[string]*reportService  // every HealthcareService by r4.Reference
	practices map[string]string          // requester reference → practice
	referrals map[string]*reportReferral // by reference; nil: not a referral
	owners    map[string]string          // referral reference → its Task's owner
	schedules map[string]string          // Schedule reference → its HealthcareService
	appts     []*reportAppointment
	issues    []slotIssue
	loaded    struct{ appts, issues bool }
}

type reportService struct {
	res  *fhir.Resource
	view serviceView
}

type reportReferral struct {
	view     requestView
	practice string    // the referring practice, else the requester as given
	service  string    // performer HealthcareService, else the Task's owner if a service
	authored time.Time // authoredOn, else when it was last updated
}

type reportAppointment struct {
	res  *fhir.Resource
	view struct {
		Status            string             `json:"status"`
		Start             string             `json:"start"`
		BasedOn           []r4.Reference     `json:"basedOn"`
		Slot              []r4.Reference     `json:"slot"`
		CancelationReason r4.CodeableConcept `json:"cancelationReason"`
		Extension         []r4.Extension     `json:"extension"`
		Participant       []struct {
			Actor  r4.Reference `json:"actor"`
			Status string       `json:"status"`
		} `json:"participant"`
	}
	start    time.Time
	service  string
	referral *reportReferral // nil when not based on a referral
}

func (a *reportAppointment) practice() string {
	if a.referral == nil {
		return ""
	}
	return a.referral.practice
}

type slotIssue struct {
	service  string
	recorded time.Time
}

// newReportData reads the filters of report name from params and the
// caller's reach from ctx.
func (s *Service) newReportData(ctx context.Context, st store.Reader, name string, params *operation.Parameters) (*reportData, error) {
	rd := &reportData{s: s, ctx: ctx, st: st, practices: map[string]string{}, referrals: map[string]*reportReferral{},
		schedules: map[string]string{}}
	for _, p := range params.Parameter {
		if !slices.Contains(reportParams, p.Name) {
			return nil, fhir.Errorf(fhir.Invalid, "not-supported", p.Name,
				"$%s takes no parameter %q: its filters are practice, service, specialty, from and to (and format)", name, p.Name)
		}
	}
	if err := rd.readPeriod(params); err != nil {
		return nil, err
	}
	services, err := s.all(ctx, st, "HealthcareService")
	if err != nil {
		return nil, err
	}
	if err := store.AddDerived(ctx, st, services); err != nil { // their current waiting times
		return nil, err
	}
	rd.services = map[string]*reportService{}
	for _, res := range services {
		rs := &reportService{res: res}
		_ = json.Unmarshal(res.JSON, &rs.view)
		rd.services[res.Reference()] = rs
	}
	for _, p := range params.All("practice") {
		v, _ := p.String()
		if err := rd.addPractice(v); err != nil {
			return nil, err
		}
	}
	for _, p := range params.All("service") {
		v, _ := p.String()
		ref := v
		if fhir.ValidID(v) {
			ref = "HealthcareService/" + v
		}
		if t, id, ok := fhir.SplitReference(ref); !ok || t != "HealthcareService" || !fhir.ValidID(id) {
			return nil, fhir.Errorf(fhir.Invalid, "value", "service", "service %q is not a HealthcareService reference or id", v)
		}
		if rd.f.services == nil {
			rd.f.services = map[string]bool{}
		}
		rd.f.services[ref] = true
	}
	for _, p := range params.All("specialty") {
		v, _ := p.String()
		system, code, found := strings.Cut(v, "|")
		if !found {
			system, code = "", v
		}
		if code == "" {
			return nil, fhir.Errorf(fhir.Invalid, "value", "specialty", "specialty %q is not a code or system|code", v)
		}
		rd.f.specialties = append(rd.f.specialties, r4.Coding{System: elem.Opt(system), Code: elem.Opt(code)})
	}
	if p, ok := auth.FromContext(ctx); ok && p.Role == auth.RoleCommissioner {
		if err := rd.commissioned(p.Organization); err != nil {
			return nil, err
		}
	}
	return rd, nil
}

// readPeriod reads from and to: dates (YYYY-MM-DD) in the server's time
// zone, both days included.
func (rd *reportData) readPeriod(params *operation.Parameters) error {
	for _, b := range []struct {
		name string
		t    *time.Time
		days int
	}{{"from", &rd.f.from, 0}, {"to", &rd.f.to, 1}} {
		v, ok := params.String(b.name)
		if !ok {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02", v, rd.s.cfg.Location)
		if err != nil {
			return fhir.Errorf(fhir.Invalid, "value", b.name, "%s must be a date (YYYY-MM-DD), not %q", b.name, v)
		}
		*b.t = t.AddDate(0, 0, b.days)
	}
	if !rd.f.from.IsZero() && !rd.f.to.IsZero() && !rd.f.from.Before(rd.f.to) {
		return fhir.Errorf(fhir.Invalid, "value", "to", "to (%s) is before from (%s)",
			rd.f.to.AddDate(0, 0, -1).Format("2006-01-02"), rd.f.from.Format("2006-01-02"))
	}
	return nil
}

// addPractice adds a practice filter: an Organization r4.Reference, or an ODS
// code (bare, or as ods-system|code) resolved to the Organizations that
// carry it.
func (rd *reportData) addPractice(v string) error {
	if rd.f.practices == nil {
		rd.f.practices = map[string]bool{}
	}
	if t, id, ok := fhir.SplitReference(v); ok && !strings.HasPrefix(v, ODSSystem+"|") {
		if t != "Organization" || !fhir.ValidID(id) {
			return fhir.Errorf(fhir.Invalid, "value", "practice", "practice %q is not an Organization reference or an ODS code", v)
		}
		rd.f.practices[t+"/"+id] = true
		return nil
	}
	code := strings.TrimPrefix(v, ODSSystem+"|")
	if code == "" || strings.ContainsAny(code, "|,/$\\") {
		return fhir.Errorf(fhir.Invalid, "value", "practice", "practice %q is not an Organization reference or an ODS code", v)
	}
	orgs, err := rd.organisations(code)
	if err != nil {
		return err
	}
	for _, o := range orgs {
		rd.f.practices[o] = true
	}
	return nil
}

// organisations returns the Organizations with ODS code code.
func (rd *reportData) organisations(code string) ([]string, error) {
	found, err := find(rd.ctx, rd.st, rd.s.reg, "Organization", "identifier="+ODSSystem+"|"+code)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range found {
		out = append(out, o.Reference())
	}
	return out, nil
}

// commissioned limits the report to the services that the Organization
// with ODS code ods commissions.
func (rd *reportData) commissioned(ods string) error {
	if ods == "" {
		return fhir.Errorf(fhir.Forbidden, "forbidden", "", "a commissioner token without an organisation (org claim) commissions no service to report on").
			WithDetails("ACCESS_DENIED")
	}
	orgs, err := rd.organisations(ods)
	if err != nil {
		return err
	}
	rd.f.visible = map[string]bool{}
	for ref, svc := range rd.services {
		for _, e := range elem.Extensions(svc.view.Extension, CommissionedBy) {
			if e.ValueReference != nil && slices.ContainsFunc(orgs, func(o string) bool { return sameRef(o, elem.Str(e.ValueReference.Reference)) }) {
				rd.f.visible[ref] = true
			}
		}
	}
	return nil
}

// serviceVisible reports whether the service filter and the caller's reach
// let a row of service ref ("" for none) count.
func (rd *reportData) serviceVisible(ref string) bool {
	return (rd.f.visible == nil || rd.f.visible[ref]) && (rd.f.services == nil || rd.f.services[ref])
}

// serviceOK is serviceVisible and the specialty filter on the service's
// specialties.
func (rd *reportData) serviceOK(ref string) bool {
	if !rd.serviceVisible(ref) {
		return false
	}
	if rd.f.specialties == nil {
		return true
	}
	svc := rd.services[ref]
	return svc != nil && rd.f.specialtyOK(svc.view.Specialty...)
}

// practiceOK reports whether the practice filter lets a row of practice
// ("" when unknown) count.
func (rd *reportData) practiceOK(practice string) bool {
	return rd.f.practices == nil || rd.f.practices[practice]
}

// serviceRefs lists every service, in reference order.
func (rd *reportData) serviceRefs() []string {
	var out []string
	for ref := range rd.services {
		out = append(out, ref)
	}
	sort.Strings(out)
	return out
}

// serviceSpecialty returns the code and display of a service's first
// specialty.
func (rd *reportData) serviceSpecialty(ref string) (code, display string) {
	svc := rd.services[ref]
	if svc == nil || len(svc.view.Specialty) == 0 {
		return "", ""
	}
	_, code, display = specialtyKey(svc.view.Specialty[0])
	return code, display
}

// practiceOf resolves a referral's requester to its practice: an
// Organization is its own, a PractitionerRole's is its organization, a
// HealthcareService's its providedBy; anything else is reported as given.
func (rd *reportData) practiceOf(requester string) string {
	if p, ok := rd.practices[requester]; ok {
		return p
	}
	practice := requester
	if t, _, ok := fhir.SplitReference(requester); ok && (t == "PractitionerRole" || t == "HealthcareService") {
		if res, err := readRef(rd.ctx, rd.st, requester); err == nil {
			var v struct {
				Organization r4.Reference `json:"organization"`
				ProvidedBy   r4.Reference `json:"providedBy"`
			}
			_ = json.Unmarshal(res.JSON, &v)
			if o := elem.Str(v.Organization.Reference) + elem.Str(v.ProvidedBy.Reference); o != "" {
				practice = o
			}
		}
	}
	rd.practices[requester] = practice
	return practice
}

// referral reads a referral once (nil when res is not one: no UBRN).
func (rd *reportData) referral(res *fhir.Resource) (*reportReferral, error) {
	ref := res.Reference()
	if r, ok := rd.referrals[ref]; ok {
		return r, nil
	}
	r := &reportReferral{}
	if json.Unmarshal(res.JSON, &r.view) != nil || r.view.ubrn() == "" {
		rd.referrals[ref] = nil
		return nil, nil
	}
	r.practice = rd.practiceOf(elem.Str(r.view.Requester.Reference))
	r.authored = res.LastUpdated
	if t, ok := parseWhen(r.view.AuthoredOn, rd.s.cfg.Location); ok {
		r.authored = t
	}
	for _, p := range r.view.Performer {
		if t, _, ok := fhir.SplitReference(elem.Str(p.Reference)); ok && t == "HealthcareService" {
			r.service = elem.Str(p.Reference)
			break
		}
	}
	if r.service == "" {
		if err := rd.loadOwners(); err != nil {
			return nil, err
		}
		if o := rd.owners[ref]; strings.HasPrefix(o, "HealthcareService/") {
			r.service = o
		}
	}
	rd.referrals[ref] = r
	return r, nil
}

// referralRef reads the referral a reference names (nil when it is none).
func (rd *reportData) referralRef(ref string) (*reportReferral, error) {
	if t, _, ok := fhir.SplitReference(ref); !ok || t != "ServiceRequest" {
		return nil, nil
	}
	if r, ok := rd.referrals[ref]; ok {
		return r, nil
	}
	res, err := readRef(rd.ctx, rd.st, ref)
	if err != nil {
		rd.referrals[ref] = nil
		return nil, nil
	}
	return rd.referral(res)
}

func (rd *reportData) loadOwners() error {
	if rd.owners != nil {
		return nil
	}
	tasks, err := find(rd.ctx, rd.st, rd.s.reg, "Task", "code="+TaskCodeSystem+"|"+TaskCode)
	if err != nil {
		return err
	}
	rd.owners = map[string]string{}
	for _, res := range tasks {
		var tv taskView
		if json.Unmarshal(res.JSON, &tv) == nil {
			rd.owners[elem.Str(tv.Focus.Reference)] = elem.Str(tv.Owner.Reference)
		}
	}
	return nil
}

// parseWhen reads a dateTime or a date (in loc).
func parseWhen(v string, loc *time.Location) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, true
	}
	if t, err := time.ParseInLocation("2006-01-02", v, loc); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// appointments reads every Appointment with its service (a HealthcareService
// participant, else its first slot's schedule's) and referral, keeping
// those whose service the filters and the caller's reach let count.
func (rd *reportData) appointments() ([]*reportAppointment, error) {
	if rd.loaded.appts {
		return rd.appts, nil
	}
	all, err := rd.s.all(rd.ctx, rd.st, "Appointment")
	if err != nil {
		return nil, err
	}
	for _, res := range all {
		a := &reportAppointment{res: res, start: res.LastUpdated}
		if json.Unmarshal(res.JSON, &a.view) != nil {
			continue
		}
		if t, ok := parseWhen(a.view.Start, rd.s.cfg.Location); ok {
			a.start = t
		}
		for _, p := range a.view.Participant {
			if t, _, ok := fhir.SplitReference(elem.Str(p.Actor.Reference)); ok && t == "HealthcareService" {
				a.service = elem.Str(p.Actor.Reference)
				break
			}
		}
		if a.service == "" && len(a.view.Slot) > 0 {
			a.service = rd.slotService(elem.Str(a.view.Slot[0].Reference))
		}
		if !rd.serviceOK(a.service) {
			continue
		}
		for _, b := range a.view.BasedOn {
			r, err := rd.referralRef(elem.Str(b.Reference))
			if err != nil {
				return nil, err
			}
			if r != nil {
				a.referral = r
				break
			}
		}
		rd.appts = append(rd.appts, a)
	}
	rd.loaded.appts = true
	return rd.appts, nil
}

// slotService returns the HealthcareService of a slot's schedule, or "".
func (rd *reportData) slotService(slot string) string {
	res, err := readRef(rd.ctx, rd.st, slot)
	if err != nil {
		return ""
	}
	var sv struct {
		Schedule r4.Reference `json:"schedule"`
	}
	_ = json.Unmarshal(res.JSON, &sv)
	sched := sv.Schedule.Reference
	if svc, ok := rd.schedules[elem.Str(sched)]; ok {
		return svc
	}
	rd.schedules[elem.Str(sched)] = ""
	if res, err := readRef(rd.ctx, rd.st, elem.Str(sched)); err == nil {
		var v struct {
			Actor []r4.Reference `json:"actor"`
		}
		_ = json.Unmarshal(res.JSON, &v)
		for _, a := range v.Actor {
			if strings.HasPrefix(elem.Str(a.Reference), "HealthcareService/") {
				rd.schedules[elem.Str(sched)] = elem.Str(a.Reference)
				break
			}
		}
	}
	return rd.schedules[elem.Str(sched)]
}

// everBooked reports whether an appointment was booked at some version.
func (rd *reportData) everBooked(a *reportAppointment) (bool, error) {
	q := store.HistoryQuery{Type: "Appointment", ID: a.res.ID, Count: 100}
	for {
		page, err := rd.st.History(rd.ctx, q)
		if err != nil {
			return false, err
		}
		for _, v := range page.Versions {
			var s struct {
				Status string `json:"status"`
			}
			if json.Unmarshal(v.JSON, &s) == nil && bookedStatus(s.Status) {
				return true, nil
			}
		}
		if page.Next == "" {
			return false, nil
		}
		q.Cursor = page.Next
	}
}

// slotIssues reads the referrals' moves to slot-issue (their Provenance)
// that the filters let count: the service named as the Provenance's
// entity, the practice of the referral it targets, the period on when it
// was recorded.
func (rd *reportData) slotIssues() ([]slotIssue, error) {
	if rd.loaded.issues {
		return rd.issues, nil
	}
	provs, err := find(rd.ctx, rd.st, rd.s.reg, "Provenance", "")
	if err != nil {
		return nil, err
	}
	for _, res := range provs {
		var p struct {
			Recorded string             `json:"recorded"`
			Activity r4.CodeableConcept `json:"activity"`
			Target   []r4.Reference     `json:"target"`
			Entity   []struct {
				What r4.Reference `json:"what"`
			} `json:"entity"`
		}
		if json.Unmarshal(res.JSON, &p) != nil || !elem.HasCoding(p.Activity, StateSystem, string(SlotIssue)) {
			continue
		}
		recorded := res.LastUpdated
		if t, err := time.Parse(time.RFC3339, p.Recorded); err == nil {
			recorded = t
		}
		practice := ""
		for _, t := range p.Target {
			r, err := rd.referralRef(elem.Str(t.Reference))
			if err != nil {
				return nil, err
			}
			if r != nil {
				practice = r.practice
			}
		}
		if !rd.f.window.contains(recorded) || !rd.practiceOK(practice) {
			continue
		}
		service := ""
		for _, e := range p.Entity {
			if strings.HasPrefix(elem.Str(e.What.Reference), "HealthcareService/") {
				service = elem.Str(e.What.Reference)
			}
		}
		if rd.serviceOK(service) {
			rd.issues = append(rd.issues, slotIssue{service: service, recorded: recorded})
		}
	}
	rd.loaded.issues = true
	return rd.issues, nil
}
