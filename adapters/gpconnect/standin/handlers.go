package standin

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
)

// metadata answers Read metadata with a CapabilityStatement.
func (s *Server) metadata() *reply {
	return ok(200, map[string]any{
		"resourceType": "CapabilityStatement", "version": "1.2.7", "name": "GP Connect stand-in",
		"status": "active", "date": stamp(s.now()), "publisher": s.org.Name, "kind": "instance",
		"software": map[string]string{"name": "Signpost GP Connect stand-in"}, "fhirVersion": "3.0.1",
		"acceptUnknown": "both", "format": []string{"application/fhir+json"},
		"rest": []map[string]any{{"mode": "server", "resource": []map[string]any{
			{"type": "Patient", "interaction": []map[string]string{{"code": "search-type"}}},
			{"type": "Slot", "interaction": []map[string]string{{"code": "search-type"}}},
			{"type": "Appointment", "interaction": []map[string]string{{"code": "read"}, {"code": "create"}, {"code": "update"}}},
		}}},
	})
}

// searchset is a searchset Bundle of resources (mode match) and
// includes.
func (s *Server) searchset(matches []any, includes []any) *stu3.Bundle {
	b := &stu3.Bundle{ResourceType: "Bundle", Meta: &stu3.Meta{Profile: []string{stu3.ProfileSearchset}}, Type: "searchset"}
	for i, list := range [][]any{matches, includes} {
		mode := "match"
		if i == 1 {
			mode = "include"
		}
		for _, r := range list {
			raw, _ := json.Marshal(r)
			var head struct{ ResourceType, ID string }
			_ = json.Unmarshal(raw, &head)
			b.Entry = append(b.Entry, stu3.Entry{FullURL: head.ResourceType + "/" + head.ID, Resource: raw, Search: &stu3.EntrySearch{Mode: mode}})
		}
	}
	n := len(matches)
	b.Total = &n
	return b
}

// findPatient answers Find a patient: identifier=<NHS number system>|n,
// once. A patient not registered (or no longer active) is an empty
// searchset, as GP Connect defines.
func (s *Server) findPatient(q url.Values) *reply {
	ids := q["identifier"]
	if len(ids) != 1 {
		return refuse(stu3.CodeBadRequest, "Find a patient takes one identifier parameter")
	}
	system, nhs, found := strings.Cut(ids[0], "|")
	if !found || system != stu3.NHSNumberSystem {
		return refuse(stu3.CodeInvalidIdentifierSys, "identifier %q is not of system %s", ids[0], stu3.NHSNumberSystem)
	}
	if !validNHSNumber(nhs) {
		return refuse(stu3.CodeInvalidNHSNumber, "%q is not a valid NHS number", nhs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var matches []any
	if p := s.byNHS(nhs); p != nil {
		matches = append(matches, *p)
	}
	return ok(200, s.searchset(matches, nil))
}

// byNHS is the active patient with NHS number nhs, or nil; s.mu held.
func (s *Server) byNHS(nhs string) *stu3.Patient {
	for _, p := range s.patients {
		if p.Active != nil && !*p.Active {
			continue
		}
		for _, id := range p.Identifier {
			if id.System == stu3.NHSNumberSystem && id.Value == nhs {
				return p
			}
		}
	}
	return nil
}

// registerPatient answers Register a patient ($gpc.registerpatient): a
// temporary registration of a patient with an NHS number, a family name,
// a gender and a birth date, not yet registered. A practice that takes
// no temporary patients answers 403 ACCESS_DENIED.
func (s *Server) registerPatient(body []byte) *reply {
	var params struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name     string          `json:"name"`
			Resource json.RawMessage `json:"resource"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &params); err != nil || params.ResourceType != "Parameters" {
		return refuse(stu3.CodeBadRequest, "the body must be a Parameters resource")
	}
	var p *stu3.Patient
	for _, x := range params.Parameter {
		if x.Name == "registerPatient" {
			p = &stu3.Patient{}
			if err := decodeStrict(x.Resource, p); err != nil || p.ResourceType != "Patient" {
				return refuse(stu3.CodeInvalidResource, "registerPatient must be a Patient: %v", err)
			}
		}
	}
	if p == nil {
		return refuse(stu3.CodeInvalidParameter, "the registerPatient parameter is missing")
	}
	nhs := ""
	for _, id := range p.Identifier {
		if id.System == stu3.NHSNumberSystem {
			nhs = id.Value
		}
	}
	if !validNHSNumber(nhs) {
		return refuse(stu3.CodeInvalidNHSNumber, "the patient has no valid NHS number")
	}
	if len(p.Name) == 0 || p.Name[0].Family == "" || p.Gender == "" || p.BirthDate == "" {
		return refuse(stu3.CodeInvalidResource, "the patient needs a family name, a gender and a birth date")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.acceptTemporary {
		return refuse(stu3.CodeAccessDenied, "this practice does not register temporary patients")
	}
	if s.byNHS(nhs) != nil {
		return refuse(stu3.CodeDuplicateRejected, "a patient with NHS number %s is already registered", nhs)
	}
	reg := s.register(nhs, p.Name[0], p.Gender, p.BirthDate, "T")
	return ok(200, s.searchset([]any{*reg}, nil))
}

// searchWindow reads the slot search's start=ge… and end=le…: each
// given once; a date covers the whole day (practice time), a date-time
// must have its offset; the window is at most 14 days.
func searchWindow(q url.Values) (from, to time.Time, res *reply) {
	read := func(name, prefix string, endOfDay bool) (time.Time, *reply) {
		v := q[name]
		if len(v) == 0 {
			return time.Time{}, refuse(stu3.CodeBadRequest, "the %s parameter is required", name)
		}
		if len(v) > 1 {
			return time.Time{}, refuse(stu3.CodeInvalidParameter, "the %s parameter must be given once, not %d times", name, len(v))
		}
		val, found := strings.CutPrefix(v[0], prefix)
		if !found {
			return time.Time{}, refuse(stu3.CodeInvalidParameter, "%s=%s: the prefix must be %s", name, v[0], prefix)
		}
		if d, err := time.ParseInLocation("2006-01-02", val, london); err == nil {
			if endOfDay {
				d = d.AddDate(0, 0, 1)
			}
			return d, nil
		}
		t, err := time.Parse(time.RFC3339, val)
		if err != nil {
			return time.Time{}, refuse(stu3.CodeInvalidParameter, "%s=%s: not a date or a date-time with an offset", name, v[0])
		}
		return t, nil
	}
	if from, res = read("start", "ge", false); res != nil {
		return
	}
	if to, res = read("end", "le", true); res != nil {
		return
	}
	if !to.After(from) {
		return from, to, refuse(stu3.CodeInvalidParameter, "end is not after start")
	}
	if to.Sub(from) > stu3.MaxSlotWindowDays*24*time.Hour {
		return from, to, refuse(stu3.CodeInvalidParameter, "start to end is more than %d days", stu3.MaxSlotWindowDays)
	}
	return from, to, nil
}

// The _include:recurse values the slot search knows.
var recurses = map[string]bool{
	"Schedule:actor:Practitioner": true, "Schedule:actor:Location": true,
	"Schedule:actor:HealthcareService": true, "Location:managingOrganization": true,
}

// searchSlots answers Search for free slots: the free slots wholly within
// the window and not yet begun, with their Schedules and what the
// :recurse includes ask for.
func (s *Server) searchSlots(q url.Values, rec *Request) *reply {
	from, to, res := searchWindow(q)
	if res != nil {
		return res
	}
	switch st := q["status"]; {
	case len(st) == 0:
		return refuse(stu3.CodeBadRequest, "the status parameter is required (status=free)")
	case len(st) > 1 || st[0] != "free":
		return refuse(stu3.CodeInvalidParameter, "status=%s: only status=free may be searched", strings.Join(st, ","))
	}
	includes := q["_include"]
	if len(includes) == 0 {
		return refuse(stu3.CodeBadRequest, "_include=%s is required", stu3.IncludeSchedule)
	}
	for _, inc := range includes {
		if inc != stu3.IncludeSchedule {
			return refuse(stu3.CodeInvalidParameter, "_include=%s: only %s", inc, stu3.IncludeSchedule)
		}
	}
	recurse := map[string]bool{}
	for _, inc := range q["_include:recurse"] {
		if !recurses[inc] {
			return refuse(stu3.CodeInvalidParameter, "_include:recurse=%s is not supported", inc)
		}
		recurse[inc] = true
	}
	var odsFilter, typeFilter []string
	for _, f := range q["searchFilter"] {
		system, code, _ := strings.Cut(f, "|")
		switch {
		case system == stu3.ODSOrganizationSystem && code != "":
			odsFilter = append(odsFilter, code)
		case system == stu3.OrganisationTypeSystem && code != "":
			typeFilter = append(typeFilter, code)
		default:
			return refuse(stu3.CodeInvalidParameter, "searchFilter=%s: not an ODS code or an organisation type", f)
		}
	}
	if len(odsFilter) != 1 || len(typeFilter) != 1 {
		return refuse(stu3.CodeBadRequest, "searchFilter must give the consumer's ODS code (%s) and organisation type (%s), once each",
			stu3.ODSOrganizationSystem, stu3.OrganisationTypeSystem)
	}
	if org := rec.Claims.RequestingOrganization; !hasODS(org.Identifier, odsFilter[0]) {
		return refuse(stu3.CodeInvalidParameter, "searchFilter ODS code %s is not the requesting organisation's", odsFilter[0])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var matches, included []any
	seen := map[string]bool{}
	include := func(ref string) {
		if seen[ref] {
			return
		}
		typ, id, _ := strings.Cut(ref, "/")
		switch {
		case typ == "Schedule" && s.schedules[id] != nil:
			included = append(included, *s.schedules[id])
		case typ == "Practitioner" && recurse["Schedule:actor:Practitioner"] && s.practitioners[id] != nil:
			included = append(included, *s.practitioners[id])
		case typ == "Location" && recurse["Schedule:actor:Location"] && s.locations[id] != nil:
			l := s.locations[id]
			included = append(included, *l)
			if recurse["Location:managingOrganization"] && l.ManagingOrganization != nil {
				seen[ref] = true
				if org := "Organization/" + s.org.ID; l.ManagingOrganization.Reference == org && !seen[org] {
					seen[org] = true
					included = append(included, s.org)
				}
			}
		default:
			return
		}
		seen[ref] = true
	}
	now := s.now()
	for _, sl := range s.slotOrder {
		if sl.Status != "free" || instant(sl.Start).Before(from) || instant(sl.End).After(to) || instant(sl.Start).Before(now) {
			continue
		}
		matches = append(matches, *sl)
		include(sl.Schedule.Reference)
		if sc := s.schedules[strings.TrimPrefix(sl.Schedule.Reference, "Schedule/")]; sc != nil {
			for _, a := range sc.Actor {
				include(a.Reference)
			}
		}
	}
	return ok(200, s.searchset(matches, included))
}

// hasODS reports whether ids hold ODS code ods.
func hasODS(ids []stu3.Identifier, ods string) bool {
	for _, id := range ids {
		if id.System == stu3.ODSOrganizationSystem && id.Value == ods {
			return true
		}
	}
	return false
}

// parseAppointment reads an Appointment body: not JSON is 400
// BAD_REQUEST, not an Appointment GP Connect defines 422
// INVALID_RESOURCE.
func parseAppointment(body []byte) (*stu3.Appointment, *reply) {
	if !json.Valid(body) {
		return nil, refuse(stu3.CodeBadRequest, "the body is not JSON")
	}
	var a stu3.Appointment
	if err := decodeStrict(body, &a); err != nil {
		return nil, refuse(stu3.CodeInvalidResource, "not a GP Connect Appointment: %v", err)
	}
	if a.ResourceType != "Appointment" {
		return nil, refuse(stu3.CodeInvalidResource, "resourceType %q, want Appointment", a.ResourceType)
	}
	return &a, nil
}

// patientOf is the participant Patient of a, "" if none (or several).
func patientOf(a *stu3.Appointment) string {
	var ids []string
	for _, p := range a.Participant {
		if p.Actor != nil && strings.HasPrefix(p.Actor.Reference, "Patient/") {
			ids = append(ids, strings.TrimPrefix(p.Actor.Reference, "Patient/"))
		}
	}
	if len(ids) != 1 {
		return ""
	}
	return ids[0]
}

// book answers Book an appointment: the rules of GP Connect's booking
// (below), checked and applied under one lock so two bookings of one
// slot give one 201 and one 409 DUPLICATE_REJECTED.
func (s *Server) book(body []byte) *reply {
	a, res := parseAppointment(body)
	if res != nil {
		return res
	}
	switch {
	case a.ID != "":
		return refuse(stu3.CodeInvalidResource, "a new appointment has no id")
	case a.Status != "booked":
		return refuse(stu3.CodeInvalidResource, "status %q, want booked", a.Status)
	case len(a.Slot) == 0:
		return refuse(stu3.CodeInvalidResource, "the appointment names no slot")
	case a.Start == "" || a.End == "":
		return refuse(stu3.CodeInvalidResource, "start and end are required")
	case a.Created == "":
		return refuse(stu3.CodeInvalidResource, "created is required")
	}
	for _, x := range a.Extension {
		if x.URL == stu3.ExtCancellationReason {
			return refuse(stu3.CodeInvalidResource, "a new appointment has no cancellation reason")
		}
	}
	if res := bookingOrganisation(a); res != nil {
		return res
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res := s.participants(a); res != nil {
		return res
	}
	var slots []*stu3.Slot
	for _, ref := range a.Slot {
		id, found := strings.CutPrefix(ref.Reference, "Slot/")
		sl := s.slots[id]
		if !found || sl == nil {
			return refuse(stu3.CodeReferenceNotFound, "slot %q does not exist", ref.Reference)
		}
		slots = append(slots, sl)
	}
	for i, sl := range slots {
		if sl.Schedule.Reference != slots[0].Schedule.Reference {
			return refuse(stu3.CodeInvalidResource, "the slots are not of one schedule")
		}
		if i > 0 && !instant(sl.Start).Equal(instant(slots[i-1].End)) {
			return refuse(stu3.CodeInvalidResource, "Slot/%s does not follow Slot/%s", sl.ID, slots[i-1].ID)
		}
	}
	if !instant(a.Start).Equal(instant(slots[0].Start)) || !instant(a.End).Equal(instant(slots[len(slots)-1].End)) {
		return refuse(stu3.CodeInvalidResource, "start and end must be the first slot's start and the last slot's end")
	}
	if instant(slots[0].Start).Before(s.now()) {
		return refuse(stu3.CodeInvalidResource, "the slots are in the past")
	}
	for _, sl := range slots {
		if sl.Status != "free" {
			return refuse(stu3.CodeDuplicateRejected, "Slot/%s is not free", sl.ID)
		}
	}
	for _, sl := range slots {
		sl.Status = "busy"
		bumpVersion(&sl.Meta)
	}
	a.ID = s.newID()
	a.Meta = &stu3.Meta{VersionID: "1", LastUpdated: stamp(s.now()), Profile: []string{stu3.ProfileAppointment}}
	s.complete(a, slots)
	s.appointments[a.ID] = a
	r := ok(201, clone(a))
	r.header = map[string]string{"Location": "Appointment/" + a.ID + "/_history/1", "ETag": `W/"1"`}
	return r
}

// complete adds what the practice knows of a booking, as GP Connect's
// published booking response shows: the schedule's service category and
// practitioner role, the slot's service type and delivery channel, the
// practitioner; s.mu held.
func (s *Server) complete(a *stu3.Appointment, slots []*stu3.Slot) {
	sc := s.schedules[strings.TrimPrefix(slots[0].Schedule.Reference, "Schedule/")]
	if sc == nil {
		return
	}
	has := func(url string) bool {
		for _, x := range a.Extension {
			if x.URL == url {
				return true
			}
		}
		return false
	}
	for _, x := range sc.Extension {
		if x.URL == stu3.ExtPractitionerRole && !has(x.URL) {
			a.Extension = append(a.Extension, x)
		}
	}
	for _, x := range slots[0].Extension {
		if x.URL == stu3.ExtDeliveryChannel && !has(x.URL) {
			a.Extension = append(a.Extension, x)
		}
	}
	if a.ServiceCategory == nil {
		a.ServiceCategory = sc.ServiceCategory
	}
	if len(a.ServiceType) == 0 {
		a.ServiceType = slots[0].ServiceType
	}
	actors := map[string]bool{}
	for _, p := range a.Participant {
		if p.Actor != nil {
			actors[p.Actor.Reference] = true
		}
	}
	for _, ref := range sc.Actor {
		if strings.HasPrefix(ref.Reference, "Practitioner/") && !actors[ref.Reference] {
			r := ref
			a.Participant = append(a.Participant, stu3.Participant{Actor: &r, Status: "accepted"})
		}
	}
}

// bookingOrganisation checks the booking organisation GP Connect
// requires: the extension naming a contained Organization with an ODS
// code, a name and a telephone number.
func bookingOrganisation(a *stu3.Appointment) *reply {
	for _, x := range a.Extension {
		if x.URL != stu3.ExtBookingOrganisation || x.ValueReference == nil {
			continue
		}
		id, found := strings.CutPrefix(x.ValueReference.Reference, "#")
		if !found {
			return refuse(stu3.CodeInvalidResource, "the booking organisation must be a contained Organization")
		}
		for _, c := range a.Contained {
			if c.ID == id {
				if c.ResourceType != "Organization" || c.Name == "" || len(c.Telecom) == 0 || !hasIdentifier(c.Identifier, stu3.ODSOrganizationSystem) {
					return refuse(stu3.CodeInvalidResource, "the booking organisation needs an ODS code, a name and a telephone number")
				}
				return nil
			}
		}
		return refuse(stu3.CodeInvalidResource, "the booking organisation #%s is not contained", id)
	}
	return refuse(stu3.CodeInvalidResource, "the booking organisation extension is required")
}

// participants checks the participants: one registered patient, the
// practice's own locations and practitioners, a status each; s.mu held.
func (s *Server) participants(a *stu3.Appointment) *reply {
	patients := 0
	for i, p := range a.Participant {
		if p.Status == "" {
			return refuse(stu3.CodeInvalidResource, "participant %d has no status", i)
		}
		if p.Actor == nil {
			continue
		}
		typ, id, _ := strings.Cut(p.Actor.Reference, "/")
		known := false
		switch typ {
		case "Patient":
			patients++
			pt := s.patients[id]
			known = pt != nil && (pt.Active == nil || *pt.Active)
		case "Location":
			known = s.locations[id] != nil
		case "Practitioner":
			known = s.practitioners[id] != nil
		default:
			return refuse(stu3.CodeInvalidResource, "participant %s: GP Connect books patients, locations and practitioners", p.Actor.Reference)
		}
		if !known {
			return refuse(stu3.CodeReferenceNotFound, "participant %s is not known to the practice", p.Actor.Reference)
		}
	}
	if patients != 1 {
		return refuse(stu3.CodeInvalidResource, "an appointment has exactly one patient participant, not %d", patients)
	}
	return nil
}

// read answers Read an appointment.
func (s *Server) read(id string) *reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.appointments[id]
	if a == nil {
		return refuse(stu3.CodeNoRecordFound, "no appointment %s", id)
	}
	r := ok(200, clone(a))
	r.header = map[string]string{"ETag": `W/"` + a.Meta.VersionID + `"`}
	return r
}

// update answers Amend an appointment (only comment and description
// change) and Cancel an appointment (status cancelled, with a reason,
// nothing else changing), both on a booked appointment not yet begun;
// If-Match, when given, must name the current version.
func (s *Server) update(id, interaction, ifMatch string, body []byte) *reply {
	a, res := parseAppointment(body)
	if res != nil {
		return res
	}
	if a.ID != id {
		return refuse(stu3.CodeBadRequest, "the body's id %q is not the URL's %q", a.ID, id)
	}
	cancel := interaction == stu3.InteractionCancelAppointment
	reason := ""
	for _, x := range a.Extension {
		if x.URL == stu3.ExtCancellationReason && x.ValueString != nil {
			reason = *x.ValueString
		}
	}
	switch {
	case cancel && a.Status != "cancelled":
		return refuse(stu3.CodeInvalidResource, "a cancellation has status cancelled, not %q", a.Status)
	case cancel && strings.TrimSpace(reason) == "":
		return refuse(stu3.CodeInvalidResource, "a cancellation needs a cancellation reason")
	case !cancel && a.Status != "booked":
		return refuse(stu3.CodeInvalidResource, "an amendment keeps status booked; cancel through the cancel interaction")
	case !cancel && reason != "":
		return refuse(stu3.CodeInvalidResource, "an amendment has no cancellation reason")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.appointments[id]
	if cur == nil {
		return refuse(stu3.CodeNoRecordFound, "no appointment %s", id)
	}
	if ifMatch != "" && ifMatch != `W/"`+cur.Meta.VersionID+`"` {
		return refuse(stu3.CodeConflict, "If-Match %s is not the current version W/\"%s\"", ifMatch, cur.Meta.VersionID)
	}
	if cur.Status != "booked" {
		return refuse(stu3.CodeInvalidResource, "appointment %s is %s", id, cur.Status)
	}
	if instant(cur.Start).Before(s.now()) {
		return refuse(stu3.CodeInvalidResource, "appointment %s has begun", id)
	}
	if what := changed(cur, a, cancel); what != "" {
		return refuse(stu3.CodeInvalidResource, "%s may not change", what)
	}
	if cancel {
		cur.Status = "cancelled"
		r := reason
		cur.Extension = append(cur.Extension, stu3.Extension{URL: stu3.ExtCancellationReason, ValueString: &r})
		for _, ref := range cur.Slot {
			if sl := s.slots[strings.TrimPrefix(ref.Reference, "Slot/")]; sl != nil {
				sl.Status = "free"
				bumpVersion(&sl.Meta)
			}
		}
	} else {
		cur.Comment, cur.Description = a.Comment, a.Description
	}
	bumpVersion(&cur.Meta)
	cur.Meta.LastUpdated = stamp(s.now())
	r := ok(200, clone(cur))
	r.header = map[string]string{"ETag": `W/"` + cur.Meta.VersionID + `"`}
	return r
}

// changed names what an update changes that it may not, or "": start,
// end, slots, the patient, other participants the appointment does not
// have, and for a cancellation the comment and description.
func changed(cur, nw *stu3.Appointment, cancel bool) string {
	switch {
	case !instant(cur.Start).Equal(instant(nw.Start)) || !instant(cur.End).Equal(instant(nw.End)):
		return "start and end"
	case refs(cur.Slot) != refs(nw.Slot):
		return "the slots"
	case patientOf(cur) != patientOf(nw):
		return "the patient"
	case cancel && (cur.Comment != nw.Comment || cur.Description != nw.Description):
		return "a cancellation's comment and description"
	}
	actors := map[string]bool{}
	for _, p := range cur.Participant {
		if p.Actor != nil {
			actors[p.Actor.Reference] = true
		}
	}
	for _, p := range nw.Participant {
		if p.Actor != nil && !actors[p.Actor.Reference] {
			return fmt.Sprintf("the participants (%s)", p.Actor.Reference)
		}
	}
	return ""
}

// refs is a list of references as one comparable string.
func refs(rs []stu3.Reference) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Reference)
	}
	return strings.Join(out, ",")
}

// patientAppointments answers Retrieve a patient's appointments: the
// patient's appointments starting in start=ge…&start=le… (both given).
func (s *Server) patientAppointments(patient string, q url.Values) *reply {
	var from, to time.Time
	starts := q["start"]
	if len(starts) != 2 {
		return refuse(stu3.CodeBadRequest, "start must be given twice: start=ge…&start=le…")
	}
	for _, v := range starts {
		prefix, val := v[:min(2, len(v))], v[min(2, len(v)):]
		t, err := time.ParseInLocation("2006-01-02", val, london)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, val); err != nil {
				return refuse(stu3.CodeInvalidParameter, "start=%s: not a date", v)
			}
		} else if prefix == "le" {
			t = t.AddDate(0, 0, 1)
		}
		switch prefix {
		case "ge":
			from = t
		case "le":
			to = t
		default:
			return refuse(stu3.CodeInvalidParameter, "start=%s: the prefix must be ge or le", v)
		}
	}
	if from.IsZero() || to.IsZero() || !to.After(from) {
		return refuse(stu3.CodeInvalidParameter, "start=ge… and start=le… must make a period")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.patients[patient] == nil {
		return refuse(stu3.CodePatientNotFound, "no patient %s", patient)
	}
	var list []*stu3.Appointment
	for _, a := range s.appointments {
		if t := instant(a.Start); patientOf(a) == patient && !t.Before(from) && t.Before(to) {
			list = append(list, a)
		}
	}
	sort.Slice(list, func(i, j int) bool { return instant(list[i].Start).Before(instant(list[j].Start)) })
	var matches []any
	for _, a := range list {
		matches = append(matches, clone(a))
	}
	return ok(200, s.searchset(matches, nil))
}
