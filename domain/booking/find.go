package booking

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Defaults of $find.
const (
	findDefaultCount  = 20
	findMaxCount      = 200
	findDefaultWindow = 28 * 24 * time.Hour
	findMaxPage       = 1000 // the largest page of slots $find reads at once
)

func (b *Service) findOp() *operation.Operation {
	return &operation.Operation{Name: "find", Types: []string{"Appointment"}, TypeLevel: true,
		Access: "search", Definition: conformance.OperationDefinition("Appointment-find"), Handle: b.find}
}

// findRequest is $find's input, read from its Parameters.
type findRequest struct {
	low, high  int64               // the window, unix microseconds [low, high)
	actors     map[string][]string // parameter name → actor references (OR within, AND across)
	locStrings []string
	specialty  []string
	visitType  []string
	patient    string  // Patient id, of a patient on this server
	referral   string  // ServiceRequest id, from referral-identifier
	from       *latLon // where the patient is, when known: nearest first among equal times
	days       map[string]bool
	count      int
}

// find is Appointment/$find: proposed appointments built from free slots,
// earliest first. Proposals are not stored; each id is a signed token.
func (b *Service) find(ctx context.Context, req *operation.Request) (*operation.Result, error) {
	r := b.repo.Store()
	fr, err := b.readFind(ctx, r, req)
	if err != nil {
		return nil, err
	}
	plan, err := b.planFind(ctx, r, fr)
	if err != nil {
		return nil, err
	}
	if plan != nil && plan.Notice != nil {
		return &operation.Result{Body: searchset([]bundleEntry{outcomeEntry(*plan.Notice)})}, nil
	}
	var props []proposed
	if fr.high > fr.low {
		if props, err = b.propose(ctx, r, fr); err != nil {
			return nil, err
		}
	}
	if len(props) == 0 {
		if plan != nil {
			if any, err := b.anyFree(ctx, r, plan); err != nil {
				return nil, err
			} else if !any {
				return &operation.Result{Body: searchset([]bundleEntry{outcomeEntry(plan.NoSlots)})}, nil
			}
		}
		return &operation.Result{Body: searchset(nil)}, nil
	}
	ps := make([]proposal, len(props))
	for i, p := range props {
		ps[i] = p.proposal
	}
	tokens, err := b.sign(ctx, ps)
	if err != nil {
		return nil, err
	}
	return &operation.Result{Body: proposalBundle(req.BaseURL, tokens, props, fr)}, nil
}

func (b *Service) readFind(ctx context.Context, r store.Reader, req *operation.Request) (*findRequest, error) {
	p := req.Params
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
	if fr.from == nil { // the place asked for stands in for the patient's
		for _, ref := range fr.actors["location-reference"] {
			if fr.from = locationPosition(ctx, r, strings.TrimPrefix(ref, "Location/")); fr.from != nil {
				break
			}
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
		res, err := b.repo.ReadAs(ctx, r, "Patient", id) // one the caller cannot read does not exist
		switch k := fhir.KindOf(err); {
		case !ok:
			bad("patient-reference", "%q is not a reference to a Patient of this server", s)
		case k == fhir.NotFound || k == fhir.Gone:
			bad("patient-reference", "Patient/%s does not exist", id)
		case err != nil:
			return nil, err
		default:
			fr.patient = id
			if at := patientPosition(res.JSON); at != nil {
				fr.from = at // else the place asked for stands in
			}
		}
	} else if x, ok := p.Get("patient-resource"); ok && x.Resource != nil {
		// The patient may not be registered yet (IHE): its id is carried
		// only when it names a patient here; its address places it.
		if at := patientPosition(x.Resource); at != nil {
			fr.from = at // else the place asked for stands in
		}
		var pt struct{ ID string }
		if json.Unmarshal(x.Resource, &pt) == nil && fhir.ValidID(pt.ID) {
			if _, err := b.repo.ReadAs(ctx, r, "Patient", pt.ID); err == nil {
				fr.patient = pt.ID
			}
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
			if sr != nil { // a referral the caller cannot read does not exist
				if _, err := b.repo.ReadAs(ctx, r, "ServiceRequest", sr.ID); fhir.KindOf(err) == fhir.NotFound {
					sr = nil
				} else if err != nil {
					return nil, err
				}
			}
			if sr == nil {
				bad("referral-identifier", "no referral has the identifier %s", joinToken(sys, val))
			} else {
				fr.referral = sr.ID
			}
		}
	} else if p, ok := auth.FromContext(ctx); ok && p.Referral() != "" {
		fr.referral = p.Referral() // a UBRN patient books for their referral
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

// proposed is one proposal, before it is signed: what its token names,
// and what its Appointment shows.
type proposed struct {
	proposal
	slotID   string
	slot     *findSlot
	schedule *schedule
}

// propose finds the free, bookable slots matching fr and turns the first
// fr.count into proposals.
//
// It reads the free slots of the request window (28 days by default) in
// start order, page by page (store.SearchByDate: in SQLite one range scan
// of the Slot schedule+start index per schedule, merged), and stops at the
// first slot that starts after the fr.count-th candidate: a search of the
// whole window in the store's default order would read, decode and sort
// every free slot in it, while the earliest few are what is wanted.
// Candidates that start together are then ordered nearest first (when the
// patient's position is known), then by id.
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
		// A second wider than [fr.low, fr.high): the bounds are applied
		// exactly below.
		"start": {"ge" + time.UnixMicro(fr.low).Add(-time.Second).UTC().Format(time.RFC3339Nano),
			"lt" + time.UnixMicro(fr.high).Add(time.Second).UTC().Format(time.RFC3339Nano)},
		"end": {"le" + time.UnixMicro(fr.high).UTC().Format(time.RFC3339Nano)},
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
	q, err := b.search.Parse("Slot", params, search.ParseOptions{Strict: true, MaxCount: findMaxPage})
	if err != nil {
		return nil, err
	}
	// A page of what is wanted and a few more (slots starting together
	// with the last one may sort before it); each next page twice the
	// last, when slots are skipped (not bookable, outside the days asked).
	q.Count = fr.count + fr.count/4 + 2
	type cand struct {
		id         string
		slot       *findSlot
		bk         *bookable
		start, end time.Time
		km         float64 // from the patient; +Inf when unknown
	}
	reads := &findReads{schedules: schedules, bookable: map[string]*bookable{}, services: map[string]*healthcareService{}}
	var cands []cand
	for done := false; !done; {
		page, err := store.SearchByDate(ctx, r, q, "start")
		if err != nil {
			return nil, err
		}
		for _, res := range page.Resources {
			s, err := decode[findSlot](res.JSON)
			if err != nil {
				continue
			}
			st, ok1 := parseInstant(s.Start)
			en, ok2 := parseInstant(s.End)
			if !ok1 || !ok2 {
				continue
			}
			// Slots come in order of start (to the microsecond, as
			// indexed): none after this one can make the first fr.count.
			if len(cands) >= fr.count && st.UnixMicro() > cands[fr.count-1].start.UnixMicro() {
				done = true
				break
			}
			if st.UnixMicro() < fr.low || st.UnixMicro() >= fr.high || en.UnixMicro() > fr.high || s.Status != "free" {
				continue
			}
			if fr.days != nil && !fr.days[strings.ToLower(st.In(b.cfg.Location).Weekday().String()[:3])] {
				continue
			}
			bk, err := b.bookableSchedule(ctx, r, elem.Str(s.Schedule.Reference), fr.from != nil, reads)
			if err != nil {
				return nil, err
			}
			if bk == nil || !b.inHorizon(bk.schedule, st, en) {
				continue
			}
			km := math.Inf(1)
			if fr.from != nil && bk.at != nil {
				km = distanceKM(*fr.from, *bk.at)
			}
			cands = append(cands, cand{res.ID, s, bk, st, en, km})
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
		q.Count = min(2*q.Count, findMaxPage)
	}
	// Earliest first; among equal times nearest first (when the patient's
	// position is known), then by id.
	sort.Slice(cands, func(i, j int) bool {
		a, c := cands[i], cands[j]
		switch {
		case !a.start.Equal(c.start):
			return a.start.Before(c.start)
		case a.km != c.km:
			return a.km < c.km
		}
		return a.id < c.id
	})
	expires := b.now().Add(b.cfg.ProposalFor).Truncate(time.Second)
	out := make([]proposed, 0, min(len(cands), fr.count))
	for _, c := range cands[:min(len(cands), fr.count)] {
		out = append(out, proposed{
			proposal: proposal{Slots: []string{c.id}, Patient: fr.patient, Referral: fr.referral, Expires: expires},
			slotID:   c.id, slot: c.slot, schedule: c.bk.schedule})
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

// matchingSchedules returns the schedules whose actors match every actor
// parameter given, by id; restricted is false when none was.
func (b *Service) matchingSchedules(ctx context.Context, r store.Reader, fr *findRequest) (map[string]*fhir.Resource, bool, error) {
	groups := map[string][]string{}
	for name, refs := range fr.actors {
		if name != "organization" { // an Organization is never a Schedule's actor; its services and roles are
			groups[name] = append(groups[name], refs...)
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
			if fr.from == nil {
				fr.from = positionOf(l.JSON) // the place asked for stands in for the patient's
			}
		}
	}
	// Slots of an organisation or at a location (named or found by
	// address) are also those of the services and roles it provides or
	// that are provided there (HealthcareService and PractitionerRole
	// organization and location), as directories model it.
	for _, g := range []struct{ name, param string }{{"organization", "organization"}, {"location-reference", "location"}, {"location-string", "location"}} {
		refs := fr.actors[g.name]
		if g.name == "location-string" {
			refs = groups[g.name]
		}
		if len(refs) == 0 {
			continue
		}
		providers := slices.Clone(groups[g.name])
		if providers == nil {
			providers = []string{} // present even when nothing is there: then no schedule matches
		}
		for _, typ := range []string{"HealthcareService", "PractitionerRole"} {
			found, err := b.searchAll(ctx, r, typ, url.Values{g.param: {strings.Join(refs, ",")}}, 0)
			if err != nil {
				return nil, false, err
			}
			for _, res := range found {
				providers = append(providers, typ+"/"+res.ID)
			}
		}
		groups[g.name] = providers
	}
	if len(groups) == 0 {
		return nil, false, nil
	}
	var result map[string]*fhir.Resource
	for _, refs := range groups {
		set := map[string]*fhir.Resource{}
		if len(refs) > 0 {
			found, err := b.searchAll(ctx, r, "Schedule", url.Values{"actor": {strings.Join(refs, ",")}}, 0)
			if err != nil {
				return nil, false, err
			}
			for _, s := range found {
				if result == nil || result[s.ID] != nil {
					set[s.ID] = s
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
	at       *latLon // where its appointments take place, when known and asked for
}

// findReads holds what one $find has read of schedules and services, so
// that each is read and decoded once.
type findReads struct {
	schedules map[string]*fhir.Resource     // Schedule id → resource, from matchingSchedules
	bookable  map[string]*bookable          // Schedule reference → bookableSchedule's answer
	services  map[string]*healthcareService // HealthcareService id → service; nil when unreadable
}

// bookableSchedule returns the schedule if it is active and not for an
// indirectly bookable service; nil otherwise. With where, it also finds
// where the schedule's appointments take place (see schedulePosition).
// Answers are kept in reads.
func (b *Service) bookableSchedule(ctx context.Context, r store.Reader, ref string, where bool, reads *findReads) (*bookable, error) {
	if bk, ok := reads.bookable[ref]; ok {
		return bk, nil
	}
	reads.bookable[ref] = nil
	id, ok := refID(ref, "Schedule")
	if !ok {
		return nil, nil
	}
	res := reads.schedules[id]
	if res == nil {
		var err error
		if res, err = r.Read(ctx, "Schedule", id); err != nil {
			if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
				return nil, nil
			}
			return nil, err
		}
	}
	sc, err := b.schedules.Get(res.JSON)
	if err != nil || (sc.Active != nil && !*sc.Active) {
		return nil, nil
	}
	var services []*healthcareService
	for _, a := range sc.Actor {
		hid, ok := refID(elem.Str(a.Reference), "HealthcareService")
		if !ok {
			continue
		}
		hs, seen := reads.services[hid]
		if !seen {
			if hres, err := r.Read(ctx, "HealthcareService", hid); err == nil {
				hs, _ = b.services.Get(hres.JSON)
			}
			reads.services[hid] = hs
		}
		if hs == nil {
			continue
		}
		if hs.indirectlyBookable() {
			return nil, nil
		}
		services = append(services, hs)
	}
	bk := &bookable{schedule: sc}
	if where {
		bk.at = schedulePosition(ctx, r, sc, services)
	}
	reads.bookable[ref] = bk
	return bk, nil
}

// schedulePosition returns where a schedule's appointments take place: the
// position of its Location actor, else of the first location with a
// position of its HealthcareService or PractitionerRole actors; nil when
// none has one.
func schedulePosition(ctx context.Context, r store.Reader, sc *schedule, services []*healthcareService) *latLon {
	var locs []string
	for _, a := range sc.Actor {
		if id, ok := refID(elem.Str(a.Reference), "Location"); ok {
			locs = append(locs, id)
		}
	}
	for _, hs := range services {
		for _, l := range hs.Location {
			if id, ok := refID(elem.Str(l.Reference), "Location"); ok {
				locs = append(locs, id)
			}
		}
	}
	for _, a := range sc.Actor {
		id, ok := refID(elem.Str(a.Reference), "PractitionerRole")
		if !ok {
			continue
		}
		res, err := r.Read(ctx, "PractitionerRole", id)
		if err != nil {
			continue
		}
		var pr struct {
			Location []r4.Reference `json:"location"`
		}
		_ = json.Unmarshal(res.JSON, &pr)
		for _, l := range pr.Location {
			if id, ok := refID(elem.Str(l.Reference), "Location"); ok {
				locs = append(locs, id)
			}
		}
	}
	for _, id := range locs {
		if at := locationPosition(ctx, r, id); at != nil {
			return at
		}
	}
	return nil
}

// locationPosition returns Location/id's position, or nil.
func locationPosition(ctx context.Context, r store.Reader, id string) *latLon {
	res, err := r.Read(ctx, "Location", id)
	if err != nil {
		return nil
	}
	return positionOf(res.JSON)
}

// positionOf returns a Location's position, or nil.
func positionOf(raw []byte) *latLon {
	var l struct {
		Position *struct {
			Latitude  *float64 `json:"latitude"`
			Longitude *float64 `json:"longitude"`
		} `json:"position"`
	}
	if json.Unmarshal(raw, &l) != nil || l.Position == nil || l.Position.Latitude == nil || l.Position.Longitude == nil {
		return nil
	}
	return &latLon{*l.Position.Latitude, *l.Position.Longitude}
}

// ExtGeolocation is the core extension that places an Address.
const ExtGeolocation = "http://hl7.org/fhir/StructureDefinition/geolocation"

// patientPosition returns the position of the first address of a Patient
// that carries the geolocation extension, or nil.
func patientPosition(raw []byte) *latLon {
	var p struct {
		Address []struct {
			Extension []r4.Extension `json:"extension"`
		} `json:"address"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return nil
	}
	for _, a := range p.Address {
		for _, e := range a.Extension {
			if e.Url != ExtGeolocation {
				continue
			}
			var lat, lon *json.Number
			for _, sub := range e.Extension {
				switch sub.Url {
				case "latitude":
					lat = sub.ValueDecimal
				case "longitude":
					lon = sub.ValueDecimal
				}
			}
			if lat != nil && lon != nil {
				la, err1 := lat.Float64()
				lo, err2 := lon.Float64()
				if err1 != nil || err2 != nil {
					return nil
				}
				return &latLon{la, lo}
			}
		}
	}
	return nil
}

// latLon is a position in decimal degrees (WGS84).
type latLon struct{ lat, lon float64 }

// distanceKM is the great-circle distance between two positions.
func distanceKM(a, b latLon) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (b.lat-a.lat)*rad, (b.lon-a.lon)*rad
	h := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(a.lat*rad)*math.Cos(b.lat*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}

// proposalBundle renders $find's searchset of proposed Appointments, one
// for each of props with its token as id: the bytes searchset gives for
// the entries, written directly (the slot's coded members compacted and
// HTML-escaped, as encoding/json writes a json.RawMessage).
func proposalBundle(base string, tokens []string, props []proposed, fr *findRequest) []byte {
	if len(props) == 0 {
		return searchset(nil)
	}
	b := make([]byte, 0, 1024*len(props))
	b = append(b, `{"resourceType":"Bundle","type":"searchset","total":`...)
	b = strconv.AppendInt(b, int64(len(props)), 10)
	b = append(b, `,"entry":[`...)
	for i, p := range props {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"fullUrl":`...)
		b = appendString(b, base+"/Appointment/"+tokens[i])
		b = append(b, `,"resource":`...)
		b = appendProposal(b, tokens[i], p, fr)
		b = append(b, `,"search":{"mode":"match"}}`...)
	}
	return append(b, "]}"...)
}

// appendProposal appends the proposed Appointment for one slot.
func appendProposal(b []byte, id string, p proposed, fr *findRequest) []byte {
	s, sc := p.slot, p.schedule
	b = append(b, `{"resourceType":"Appointment","id":`...)
	b = appendString(b, id)
	b = append(b, `,"status":"proposed"`...)
	for _, m := range []struct {
		key string
		v   json.RawMessage
	}{{"serviceCategory", s.ServiceCategory}, {"serviceType", s.ServiceType}, {"specialty", s.Specialty}, {"appointmentType", s.AppointmentType}} {
		if m.v != nil {
			b = append(b, `,"`+m.key+`":`...)
			b = appendRaw(b, m.v)
		}
	}
	b = append(b, `,"start":`...)
	b = appendString(b, s.Start)
	b = append(b, `,"end":`...)
	b = appendString(b, s.End)
	b = append(b, `,"slot":[`...)
	b = appendReference(b, "Slot/"+p.slotID)
	b = append(b, ']')
	if fr.referral != "" {
		b = append(b, `,"basedOn":[`...)
		b = appendReference(b, "ServiceRequest/"+fr.referral)
		b = append(b, ']')
	}
	b = append(b, `,"participant":[`...)
	first := true
	part := func(ref, status string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"actor":`...)
		b = appendReference(b, ref)
		b = append(b, `,"status":`...)
		b = appendString(b, status)
		b = append(b, '}')
	}
	if fr.patient != "" {
		part("Patient/"+fr.patient, "needs-action")
	}
	for _, a := range sc.Actor {
		part(elem.Str(a.Reference), "accepted")
	}
	return append(b, "]}"...)
}

// appendReference appends a Reference holding ref ({} when ref is "").
func appendReference(b []byte, ref string) []byte {
	if ref == "" {
		return append(b, "{}"...)
	}
	b = append(b, `{"reference":`...)
	b = appendString(b, ref)
	return append(b, '}')
}

// appendString appends s as encoding/json writes it (HTML characters
// escaped).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendRaw appends raw JSON as encoding/json writes a json.RawMessage:
// compacted, HTML characters escaped.
func appendRaw(b []byte, raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return append(b, "null"...) // not JSON: the stored resource passed validation, so never
	}
	out := buf.Bytes()
	if bytes.ContainsAny(out, "<>&\u2028\u2029") {
		var esc bytes.Buffer
		json.HTMLEscape(&esc, out)
		out = esc.Bytes()
	}
	return append(b, out...)
}
