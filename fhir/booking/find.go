package booking

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Defaults of $find.
const (
	findDefaultCount  = 20
	findMaxCount      = 200
	findDefaultWindow = 28 * 24 * time.Hour
)

// definition returns Signpost's OperationDefinition with id.
func definition(id string) json.RawMessage {
	for _, raw := range conformance.Definitions("OperationDefinition") {
		var head struct{ ID string }
		if json.Unmarshal(raw, &head) == nil && head.ID == id {
			return raw
		}
	}
	return nil
}

func (b *Service) findOp() *operation.Operation {
	return &operation.Operation{Name: "find", Types: []string{"Appointment"}, TypeLevel: true,
		Access: "search", Definition: definition("Appointment-find"), Handle: b.find}
}

// findRequest is $find's input, read from its Parameters.
type findRequest struct {
	low, high  int64               // the window, unix microseconds [low, high)
	actors     map[string][]string // parameter name → actor references (OR within, AND across)
	locStrings []string
	specialty  []string
	visitType  []string
	patient    string // Patient id
	basedOn    string // ServiceRequest reference from referral-identifier
	days       map[string]bool
	count      int
}

// find is Appointment/$find: proposed appointments built from free slots,
// earliest first. Proposals are not stored; each id is a signed token.
func (b *Service) find(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	r := b.repo.Store()
	fr, err := b.readFind(ctx, r, req.Params)
	if err != nil {
		return nil, err
	}
	props, err := b.propose(ctx, r, fr)
	if err != nil {
		return nil, err
	}
	var entries []bundleEntry
	for _, p := range props {
		entries = append(entries, bundleEntry{FullURL: req.BaseURL + "/Appointment/" + p.id, Resource: p.json, Mode: "match"})
	}
	return &operation.Result{Body: searchset(entries)}, nil
}

func (b *Service) readFind(ctx context.Context, r store.Reader, p *operation.Parameters) (*findRequest, error) {
	now := b.now()
	fr := &findRequest{low: now.UnixMicro(), actors: map[string][]string{}, count: findDefaultCount}
	var issues []fhir.Issue
	bad := func(name, format string, args ...any) {
		issues = append(issues, fhir.Issue{Code: "invalid", Diagnostics: name + ": " + sprintf(format, args...), Expression: []string{name}})
	}
	if s, ok := p.String("start"); ok {
		lo, _, err := search.DateRange(s, b.cfg.Location)
		if err != nil {
			bad("start", "%v", err)
		}
		fr.low = max(lo, now.UnixMicro())
	}
	fr.high = time.UnixMicro(fr.low).Add(findDefaultWindow).UnixMicro()
	if s, ok := p.String("end"); ok {
		_, hi, err := search.DateRange(s, b.cfg.Location)
		if err != nil {
			bad("end", "%v", err)
		}
		fr.high = hi
	}
	for _, name := range []string{"practitioner", "organization", "location-reference", "healthcare-service"} {
		for _, x := range p.All(name) {
			ref, _ := x.String()
			want := map[string]string{"practitioner": "Practitioner", "organization": "Organization",
				"location-reference": "Location", "healthcare-service": "HealthcareService"}[name]
			id, ok := refID(ref, want)
			if !ok {
				bad(name, "%q is not a reference to a %s of this server", ref, want)
				continue
			}
			fr.actors[name] = append(fr.actors[name], want+"/"+id)
		}
	}
	for _, x := range p.All("location-string") {
		if s, ok := x.String(); ok && s != "" {
			fr.locStrings = append(fr.locStrings, s)
		}
	}
	for _, x := range p.All("specialty") {
		if s, ok := x.String(); ok {
			fr.specialty = append(fr.specialty, s)
		}
	}
	for _, x := range p.All("visit-type") {
		if s, ok := x.String(); ok {
			fr.visitType = append(fr.visitType, s)
		}
	}
	if s, ok := p.String("patient-reference"); ok {
		id, ok := refID(s, "Patient")
		if !ok {
			bad("patient-reference", "%q is not a reference to a Patient of this server", s)
		}
		fr.patient = id
	} else if x, ok := p.Get("patient-resource"); ok && x.Resource != nil {
		var pt struct{ ID string }
		if json.Unmarshal(x.Resource, &pt) == nil && fhir.ValidID(pt.ID) {
			fr.patient = pt.ID
		}
	}
	if x, ok := p.Get("referral-identifier"); ok {
		sys, val := identifierParam(x)
		if val == "" {
			bad("referral-identifier", "an Identifier with a value is needed, e.g. https://fhir.nhs.uk/Id/UBRN|000000000001")
		} else {
			sr, err := b.search1(ctx, r, "ServiceRequest", url.Values{"identifier": {joinToken(sys, val)}})
			if err != nil {
				return nil, err
			}
			if sr == nil {
				bad("referral-identifier", "no referral has the identifier %s", joinToken(sys, val))
			} else {
				fr.basedOn = "ServiceRequest/" + sr.ID
			}
		}
	}
	if x, ok := p.Get("timing"); ok {
		var t struct {
			Repeat struct {
				DayOfWeek []string `json:"dayOfWeek"`
			} `json:"repeat"`
		}
		if json.Unmarshal(x.Value, &t) == nil && len(t.Repeat.DayOfWeek) > 0 {
			fr.days = map[string]bool{}
			for _, d := range t.Repeat.DayOfWeek {
				fr.days[d] = true
			}
		}
	}
	if s, ok := p.String("_count"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			bad("_count", "%q is not a positive count", s)
		}
		fr.count = min(n, findMaxCount)
	}
	if fr.high <= fr.low {
		bad("end", "the window ends before it starts (or before now)")
	}
	if len(issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Invalid, Op: "$find", Issues: issues}
	}
	return fr, nil
}

// identifierParam reads an Identifier parameter: valueIdentifier, or
// "system|value" as a string (GET).
func identifierParam(x operation.Parameter) (system, value string) {
	var id struct{ System, Value string }
	if json.Unmarshal(x.Value, &id) == nil && id.Value != "" {
		return id.System, id.Value
	}
	s, _ := x.String()
	if sys, val, ok := strings.Cut(s, "|"); ok {
		return sys, val
	}
	return "", s
}

func joinToken(system, value string) string {
	if system == "" {
		return value
	}
	return system + "|" + value
}

// proposed is one proposal: its token id and Appointment JSON.
type proposed struct {
	id    string
	start time.Time
	json  []byte
}

// propose finds the free, bookable slots matching fr and turns the first
// fr.count into proposals.
//
// It reads the free slots window by window in start time, a day first and
// each next window sized from the free slots found so far, and stops as
// soon as it has fr.count proposals: a search over the whole request window (28 days by default)
// would read, decode and sort every free slot in it, while the earliest few
// are what is wanted. Each window is one search through the Slot
// schedule+start index; its slots are ordered here by start, then id.
func (b *Service) propose(ctx context.Context, r store.Reader, fr *findRequest) ([]proposed, error) {
	schedules, restricted, err := b.matchingSchedules(ctx, r, fr)
	if err != nil {
		return nil, err
	}
	if restricted && len(schedules) == 0 {
		return nil, nil
	}
	params := url.Values{
		"status": {"free"},
		"end":    {"le" + time.UnixMicro(fr.high).UTC().Format(time.RFC3339Nano)},
	}
	if restricted {
		var refs []string
		for id := range schedules {
			refs = append(refs, "Schedule/"+id)
		}
		sort.Strings(refs)
		params.Set("schedule", strings.Join(refs, ","))
	}
	if len(fr.specialty) > 0 {
		params.Set("specialty", strings.Join(fr.specialty, ","))
	}
	if len(fr.visitType) > 0 {
		params.Set("service-type", strings.Join(fr.visitType, ","))
	}
	type cand struct {
		res        *fhir.Resource
		slot       *findSlot
		start, end time.Time
	}
	cache := map[string]*bookable{}
	expires := b.now().Add(b.cfg.ProposalFor).Truncate(time.Second)
	var out []proposed
	span := 24 * time.Hour
	seen, covered := 0, time.Duration(0) // free slots found, and the time searched
	for lo := fr.low; lo < fr.high && len(out) < fr.count; {
		hi := min(fr.high, time.UnixMicro(lo).Add(span).UnixMicro())
		// A second wider than [lo, hi): the index compares whole seconds;
		// the bounds are applied exactly below.
		params["start"] = []string{
			"ge" + time.UnixMicro(lo).Add(-time.Second).UTC().Format(time.RFC3339Nano),
			"lt" + time.UnixMicro(hi).Add(time.Second).UTC().Format(time.RFC3339Nano),
		}
		found, err := b.searchAll(ctx, r, "Slot", params, 0)
		if err != nil {
			return nil, err
		}
		var cands []cand
		for _, res := range found {
			s, err := decode[findSlot](res.JSON)
			if err != nil {
				continue
			}
			st, ok1 := parseInstant(s.Start)
			en, ok2 := parseInstant(s.End)
			if !ok1 || !ok2 || st.UnixMicro() < lo || st.UnixMicro() >= hi || en.UnixMicro() > fr.high || s.Status != "free" {
				continue
			}
			if fr.days != nil && !fr.days[strings.ToLower(st.In(b.cfg.Location).Weekday().String()[:3])] {
				continue
			}
			cands = append(cands, cand{res, s, st, en})
		}
		sort.Slice(cands, func(i, j int) bool {
			if !cands[i].start.Equal(cands[j].start) {
				return cands[i].start.Before(cands[j].start)
			}
			return cands[i].res.ID < cands[j].res.ID
		})
		for _, c := range cands {
			if len(out) >= fr.count {
				break
			}
			bk, err := b.bookableSchedule(ctx, r, c.slot.Schedule.Reference, cache)
			if err != nil {
				return nil, err
			}
			if bk == nil || !b.inHorizon(bk.schedule, c.start, c.end) {
				continue
			}
			id := b.sign(proposal{Slots: []string{c.res.ID}, Patient: fr.patient, Expires: expires})
			out = append(out, proposed{id: id, start: c.start, json: proposalJSON(id, c.res, c.slot, bk.schedule, fr)})
		}
		// Size the next window from the density of free slots seen so far,
		// so that it likely holds what is still missing: a sparse service
		// takes two searches, a dense one one, an empty stretch (a weekend)
		// grows the window fourfold.
		seen += len(cands)
		covered += time.UnixMicro(hi).Sub(time.UnixMicro(lo))
		if missing := fr.count - len(out); seen == 0 {
			span *= 4
		} else {
			span = max(span, time.Duration(float64(covered)*float64(missing)/float64(seen)*1.25))
		}
		lo = hi
	}
	return out, nil
}

// findSlot is the part of a Slot $find reads: what booking checks, and the
// coded members a proposal copies.
type findSlot struct {
	slot
	ServiceCategory json.RawMessage `json:"serviceCategory"`
	ServiceType     json.RawMessage `json:"serviceType"`
	Specialty       json.RawMessage `json:"specialty"`
	AppointmentType json.RawMessage `json:"appointmentType"`
}

// matchingSchedules returns the ids of the schedules whose actors match
// every actor parameter given; restricted is false when none was.
func (b *Service) matchingSchedules(ctx context.Context, r store.Reader, fr *findRequest) (map[string]bool, bool, error) {
	groups := map[string][]string{}
	for name, refs := range fr.actors {
		groups[name] = append(groups[name], refs...)
	}
	if orgs := fr.actors["organization"]; len(orgs) > 0 {
		services, err := b.searchAll(ctx, r, "HealthcareService", url.Values{"organization": {strings.Join(orgs, ",")}}, 0)
		if err != nil {
			return nil, false, err
		}
		for _, s := range services {
			groups["organization"] = append(groups["organization"], "HealthcareService/"+s.ID)
		}
	}
	if len(fr.locStrings) > 0 {
		locs, err := b.searchAll(ctx, r, "Location", url.Values{"address": {strings.Join(fr.locStrings, ",")}}, 0)
		if err != nil {
			return nil, false, err
		}
		groups["location-string"] = []string{}
		for _, l := range locs {
			groups["location-string"] = append(groups["location-string"], "Location/"+l.ID)
		}
	}
	if len(groups) == 0 {
		return nil, false, nil
	}
	var result map[string]bool
	for _, refs := range groups {
		set := map[string]bool{}
		if len(refs) > 0 {
			found, err := b.searchAll(ctx, r, "Schedule", url.Values{"actor": {strings.Join(refs, ",")}}, 0)
			if err != nil {
				return nil, false, err
			}
			for _, s := range found {
				if result == nil || result[s.ID] {
					set[s.ID] = true
				}
			}
		}
		result = set
	}
	return result, true, nil
}

// bookable is a schedule that may be offered.
type bookable struct {
	schedule *schedule
}

// bookableSchedule returns the schedule if it is active and not for an
// indirectly bookable service; nil otherwise. Results are cached per
// request.
func (b *Service) bookableSchedule(ctx context.Context, r store.Reader, ref string, cache map[string]*bookable) (*bookable, error) {
	if bk, ok := cache[ref]; ok {
		return bk, nil
	}
	cache[ref] = nil
	id, ok := refID(ref, "Schedule")
	if !ok {
		return nil, nil
	}
	res, err := r.Read(ctx, "Schedule", id)
	if err != nil {
		if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
			return nil, nil
		}
		return nil, err
	}
	sc, err := decode[schedule](res.JSON)
	if err != nil || (sc.Active != nil && !*sc.Active) {
		return nil, nil
	}
	for _, a := range sc.Actor {
		if hid, ok := refID(a.Reference, "HealthcareService"); ok {
			hres, err := r.Read(ctx, "HealthcareService", hid)
			if err != nil {
				continue
			}
			if hs, err := decode[healthcareService](hres.JSON); err == nil && hs.indirectlyBookable() {
				return nil, nil
			}
		}
	}
	cache[ref] = &bookable{schedule: sc}
	return cache[ref], nil
}

// proposalJSON renders a proposed Appointment for one slot.
func proposalJSON(id string, res *fhir.Resource, s *findSlot, sc *schedule, fr *findRequest) []byte {
	obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Appointment"}`))
	obj.Set("id", id)
	obj.Set("status", "proposed")
	for _, m := range []struct {
		key string
		v   json.RawMessage
	}{{"serviceCategory", s.ServiceCategory}, {"serviceType", s.ServiceType}, {"specialty", s.Specialty}, {"appointmentType", s.AppointmentType}} {
		if m.v != nil {
			obj.Set(m.key, m.v)
		}
	}
	obj.Set("start", s.Start)
	obj.Set("end", s.End)
	obj.Set("slot", []reference{{Reference: "Slot/" + res.ID}})
	if fr.basedOn != "" {
		obj.Set("basedOn", []reference{{Reference: fr.basedOn}})
	}
	parts := []participant{}
	if fr.patient != "" {
		parts = append(parts, participant{Actor: &reference{Reference: "Patient/" + fr.patient}, Status: "needs-action"})
	}
	for _, a := range sc.Actor {
		ref := a
		parts = append(parts, participant{Actor: &ref, Status: "accepted"})
	}
	obj.Set("participant", parts)
	return obj.Bytes()
}
