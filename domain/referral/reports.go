package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"bytes"
	"context"
	"encoding/csv"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/directory"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/store"
)

// The reports ($referral-trends, $capacity-gaps, $waiting-times,
// $booking-outcomes, $patient-experience) are for the people who
// commission and run services: the API lets only commissioners, auditors
// and backend services (system-level tokens without a role) invoke them
// (operation.Operation.Roles), and a commissioner sees only the services
// it commissions: those whose commissioned-by extension names the
// Organization with its token's ODS code.
//
// Every report takes the same filters (see reportFilters): practice (the
// referring practice), service, specialty, and a period from/to (whole
// days in the server's time zone, both included). Each report says which
// date of what it counts the period applies to.

// reportRoles are the roles that may run the reports, besides backend
// services.
var reportRoles = []string{string(auth.RoleCommissioner), string(auth.RoleAuditor)}

// Column types: a cell's FHIR type in a Parameters answer (value[x]).
const (
	colString    = "string"
	colCode      = "code"
	colInteger   = "integer"
	colDecimal   = "decimal"
	colDate      = "date"
	colDateTime  = "dateTime"
	colCanonical = "canonical"
	colReference = "Reference"
)

// column is one column of a report: its name (a CSV header, a Parameters
// part name) and its type.
type column struct{ name, typ string }

// report is a table: typed columns and rows of cells, "" for none.
type report struct {
	columns []column
	rows    [][]string
}

// reportOp is a system-level report operation answering Parameters (one
// row part per line, one part per non-empty cell, typed by its column) or
// CSV with format=text/csv.
func (s *Service) reportOp(name string, build func(rd *reportData) (*report, error)) *operation.Operation {
	return &operation.Operation{
		Name: name, Definition: conformance.OperationDefinition(name), Roles: reportRoles,
		Handle: func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
			rd, err := s.newReportData(ctx, s.repo.Store(), name, req.Params)
			if err != nil {
				return nil, err
			}
			rep, err := build(rd)
			if err != nil {
				return nil, err
			}
			format, _ := req.Params.String("format")
			if format == "text/csv" || format == "csv" || req.Format == "text/csv" || req.Format == "csv" || strings.Contains(req.Accept, "text/csv") {
				return &operation.Result{Body: rep.csv(), ContentType: "text/csv; charset=utf-8"}, nil
			}
			body, err := rep.parameters()
			if err != nil {
				return nil, err
			}
			return &operation.Result{Body: body}, nil
		},
	}
}

func (rep *report) csv() []byte {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	head := make([]string, len(rep.columns))
	for i, c := range rep.columns {
		head[i] = c.name
	}
	_ = cw.Write(head)
	_ = cw.WriteAll(rep.rows)
	return buf.Bytes()
}

// parameters renders the report as a Parameters resource: each cell as its
// column's type says (a SNOMED code stays a code), empty cells left out.
func (rep *report) parameters() ([]byte, error) {
	out := &operation.Parameters{}
	for _, r := range rep.rows {
		p := operation.Parameter{Name: "row"}
		for i, cell := range r {
			if cell == "" {
				continue
			}
			c := rep.columns[i]
			part := operation.Parameter{Name: c.name, ValueType: upperFirst(c.typ)}
			switch c.typ {
			case colInteger:
				n, err := strconv.Atoi(cell)
				if err != nil {
					return nil, fhir.Errorf(fhir.Other, "exception", "", "report column %s: %q is not an integer", c.name, cell)
				}
				part.Value = mustJSON(n)
			case colDecimal:
				f, err := strconv.ParseFloat(cell, 64)
				if err != nil {
					return nil, fhir.Errorf(fhir.Other, "exception", "", "report column %s: %q is not a decimal", c.name, cell)
				}
				part.Value = mustJSON(f)
			case colReference:
				part.Value = mustJSON(elem.Ref(cell))
			default:
				part.Value = mustJSON(cell)
			}
			p.Part = append(p.Part, part)
		}
		out.Parameter = append(out.Parameter, p)
	}
	return out.Encode(), nil
}

func upperFirst(s string) string {
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// sortRows orders rows by their first n cells.
func sortRows(rows [][]string, n int) {
	slices.SortStableFunc(rows, func(a, b []string) int { return slices.Compare(a[:n], b[:n]) })
}

// count tallies rows by key.
type count map[[4]string]int

// rows renders the tallies, the first n key cells then the count, sorted.
func (c count) rows(n int) [][]string {
	var out [][]string
	for k, v := range c {
		out = append(out, append(append([]string{}, k[:n]...), strconv.Itoa(v)))
	}
	sortRows(out, n)
	return out
}

func (s *Service) all(ctx context.Context, st store.Reader, typ string) ([]*fhir.Resource, error) {
	return find(ctx, st, s.reg, typ, "")
}

// referralTrends counts referrals (ServiceRequests with a UBRN) by
// referring practice, specialty (performerType) and month of authoredOn;
// the period applies to authoredOn. A specialty is one row, with the
// display the referrals give its code most often. A referral's service, for the service
// filter and a commissioner's reach, is its performer (a
// HealthcareService), else its Task's owner.
func (s *Service) referralTrends(rd *reportData) (*report, error) {
	srs, err := s.all(rd.ctx, rd.st, "ServiceRequest")
	if err != nil {
		return nil, err
	}
	c := count{}
	displays := map[string]map[string]int{} // specialty key → display → referrals
	for _, res := range srs {
		r, err := rd.referral(res)
		if err != nil {
			return nil, err
		}
		if r == nil {
			continue
		}
		key, code, display := specialtyKey(r.view.PerformerType)
		if displays[key] == nil {
			displays[key] = map[string]int{}
		}
		if display != "" {
			displays[key][display]++ // over every referral: a code's display is terminology, not data
		}
		if !rd.f.window.contains(r.authored) || !rd.practiceOK(r.practice) || !rd.serviceVisible(r.service) || !rd.f.specialtyOK(r.view.PerformerType) {
			continue
		}
		c[[4]string{r.practice, key, r.authored.In(rd.s.cfg.Location).Format("2006-01"), code}]++
	}
	rep := &report{columns: []column{{"practice", colReference}, {"specialty-code", colCode}, {"specialty", colString},
		{"month", colDate}, {"referrals", colInteger}}}
	for _, row := range c.rows(4) {
		practice, key, month, code, n := row[0], row[1], row[2], row[3], row[4]
		rep.rows = append(rep.rows, []string{practice, code, commonest(displays[key]), month, n})
	}
	sortRows(rep.rows, 4)
	return rep, nil
}

// specialtyKey identifies a specialty concept by its first coding (system
// and code), else its text, and returns its code and display.
func specialtyKey(c r4.CodeableConcept) (key, code, display string) {
	if len(c.Coding) > 0 && elem.Str(c.Coding[0].Code) != "" {
		x := c.Coding[0]
		return elem.Str(x.System) + "|" + elem.Str(x.Code), elem.Str(x.Code), elem.Str(x.Display)
	}
	return "text|" + elem.Str(c.Text), "", elem.Str(c.Text)
}

// commonest returns the display used most often, the first in order on a
// tie, so one specialty has one display whichever referral named it.
func commonest(m map[string]int) string {
	best, n := "", 0
	for d, k := range m {
		if k > n || k == n && d < best {
			best, n = d, k
		}
	}
	return best
}

// capacityGaps counts slot-issue deferrals (their Provenance) by the
// service that had no slot; the period applies to when they were recorded,
// the practice to the deferred referral's.
func (s *Service) capacityGaps(rd *reportData) (*report, error) {
	issues, err := rd.slotIssues()
	if err != nil {
		return nil, err
	}
	c := count{}
	for _, is := range issues {
		c[[4]string{is.service}]++
	}
	rep := &report{columns: []column{{"service", colReference}, {"specialty-code", colCode}, {"specialty", colString}, {"deferrals", colInteger}}}
	for _, row := range c.rows(1) {
		code, display := rd.serviceSpecialty(row[0])
		rep.rows = append(rep.rows, []string{row[0], code, display, row[1]})
	}
	return rep, nil
}

// waitingTimes lists the services with their current wait (days to the
// next free slot, the average, the next slot) and the waits referrals had:
// the appointments booked for referrals (booked, arrived, checked-in,
// fulfilled or noshow) whose start falls in the period and whose referral
// is the practice's, and the average of their calendar days from the
// referral's authoredOn to the appointment.
func (s *Service) waitingTimes(rd *reportData) (*report, error) {
	appts, err := rd.appointments()
	if err != nil {
		return nil, err
	}
	type tally struct{ n, days int }
	waits := map[string]*tally{}
	for _, a := range appts {
		if !bookedStatus(a.view.Status) || a.referral == nil || a.referral.authored.IsZero() ||
			!rd.f.window.contains(a.start) || !rd.practiceOK(a.referral.practice) {
			continue
		}
		t := waits[a.service]
		if t == nil {
			t = &tally{}
			waits[a.service] = t
		}
		t.n++
		t.days += calendarDays(a.referral.authored, a.start, rd.s.cfg.Location)
	}
	now := s.cfg.Now().In(s.cfg.Location)
	rep := &report{columns: []column{{"service", colReference}, {"name", colString}, {"specialty-code", colCode}, {"specialty", colString},
		{"waiting-days", colInteger}, {"average-days", colDecimal}, {"next-slot", colDateTime},
		{"appointments", colInteger}, {"average-days-to-appointment", colDecimal}}}
	for _, svc := range rd.serviceRefs() {
		if !rd.serviceOK(svc) {
			continue
		}
		info := rd.services[svc]
		code, display := rd.serviceSpecialty(svc)
		row := []string{svc, info.view.Name, code, display, "", "", "", "0", ""}
		if wt, ok := directory.ReadWait(info.res.JSON, now); ok {
			row[4], row[5], row[6] = strconv.Itoa(wt.Days), strconv.FormatFloat(wt.AverageDays, 'f', -1, 64), wt.NextSlot.UTC().Format(time.RFC3339)
		}
		if t := waits[svc]; t != nil {
			row[7], row[8] = strconv.Itoa(t.n), round2(float64(t.days)/float64(t.n))
		}
		rep.rows = append(rep.rows, row)
	}
	slices.SortStableFunc(rep.rows, func(a, b []string) int { return slices.Compare([]string{a[1], a[0]}, []string{b[1], b[0]}) })
	return rep, nil
}

// round2 renders f rounded to two decimals.
func round2(f float64) string {
	return strconv.FormatFloat(float64(int(f*100+0.5))/100, 'f', -1, 64)
}

// calendarDays counts the calendar days in loc from a to b.
func calendarDays(a, b time.Time, loc *time.Location) int {
	a, b = a.In(loc), b.In(loc)
	da := time.Date(a.Year(), a.Month(), a.Day(), 12, 0, 0, 0, time.UTC)
	db := time.Date(b.Year(), b.Month(), b.Day(), 12, 0, 0, 0, time.UTC)
	return int(db.Sub(da).Hours() / 24)
}

// Booking outcomes. How an appointment counts (the period applies to its
// start, the practice to its referral's; slot issues as in capacityGaps):
//
//   - bookings: every appointment that was booked: its status is booked,
//     arrived, checked-in, fulfilled or noshow, or it is cancelled and an
//     earlier version was one of those (a hold that was released, or
//     cancelled before it was booked, is no booking);
//   - attended: fulfilled; did-not-attend: noshow;
//   - rescheduled: a booking cancelled and replaced by another (the R5
//     cross-version extension Appointment.replaces that $reschedule
//     writes on the new appointment names it); the new appointment is a
//     booking of its own;
//   - cancelled-by-patient, cancelled-by-provider, cancelled-other: the
//     other cancelled bookings, by who cancelled: the cancelationReason
//     coded in http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason
//     (pat, pat-*: the patient; prov, prov-*: the provider), else the
//     participant that declined (the Patient: the patient; another: the
//     provider), else other (maint, oth-*, a reason in text only);
//   - slot-issues: referrals deferred to the service with no slot
//     (Provenance of a move to slot-issue);
//   - slot-issues-cleared-by-offer: bookings, not cancelled, made by
//     accepting an earlier-slot offer sent to a referral on the
//     slot-issues worklist (OfferExtension, domain/offer).
const (
	// CancellationReasonSystem codes Appointment.cancelationReason (R4
	// and R5).
	CancellationReasonSystem = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
	// ReplacesExtension is the R5 cross-version extension on a
	// rescheduled appointment naming the appointment it replaces.
	ReplacesExtension = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.replaces"
	// OfferExtension (server-owned, on an Appointment) marks an
	// earlier-slot offer (domain/offer) and the booking it became, with
	// sub-extensions: referral, replaces, request, communication and
	// slot-issue (valueBoolean: offered to a referral on the slot-issues
	// worklist). $booking-outcomes counts the bookings of accepted offers
	// with slot-issue true as slot-issues-cleared-by-offer.
	OfferExtension = Base + "/StructureDefinition/earlier-slot-offer"
)

// clearedByOffer reports whether an appointment is the booking of an
// earlier-slot offer made to a referral on the slot-issues worklist.
func clearedByOffer(exts []r4.Extension) bool {
	for _, e := range elem.Extensions(exts, OfferExtension) {
		for _, sub := range e.Extension {
			if sub.Url == "slot-issue" && sub.ValueBoolean != nil && *sub.ValueBoolean {
				return true
			}
		}
	}
	return false
}

// bookedStatus reports whether an appointment in status is (or was) booked.
func bookedStatus(status string) bool {
	switch status {
	case "booked", "arrived", "checked-in", "fulfilled", "noshow":
		return true
	}
	return false
}

// cancelledBy says who cancelled an appointment: "patient", "provider" or
// "other".
func cancelledBy(a *reportAppointment) string {
	for _, c := range a.view.CancelationReason.Coding {
		if elem.Str(c.System) != CancellationReasonSystem {
			continue
		}
		switch {
		case elem.Str(c.Code) == "pat" || strings.HasPrefix(elem.Str(c.Code), "pat-"):
			return "patient"
		case elem.Str(c.Code) == "prov" || strings.HasPrefix(elem.Str(c.Code), "prov-"):
			return "provider"
		}
	}
	for _, p := range a.view.Participant {
		if p.Status != "declined" {
			continue
		}
		if t, _, ok := fhir.SplitReference(elem.Str(p.Actor.Reference)); ok && t == "Patient" {
			return "patient"
		}
		return "provider"
	}
	return "other"
}

// bookingOutcomes counts, by service, bookings and what became of them.
func (s *Service) bookingOutcomes(rd *reportData) (*report, error) {
	appts, err := rd.appointments()
	if err != nil {
		return nil, err
	}
	const (
		bookings = iota
		attended
		dna
		byPatient
		byProvider
		byOther
		rescheduled
		slotIssues
		clearedByOffers
		outcomes
	)
	replaced := map[string]bool{}
	for _, a := range appts {
		for _, e := range elem.Extensions(a.view.Extension, ReplacesExtension) {
			if e.ValueReference != nil {
				replaced[elem.Str(e.ValueReference.Reference)] = true
			}
		}
	}
	tallies := map[string]*[outcomes]int{}
	add := func(svc string, what int) {
		t := tallies[svc]
		if t == nil {
			t = &[outcomes]int{}
			tallies[svc] = t
		}
		t[what]++
	}
	for _, a := range appts {
		if !rd.f.window.contains(a.start) || !rd.practiceOK(a.practice()) {
			continue
		}
		if a.view.Status != "cancelled" && bookedStatus(a.view.Status) && clearedByOffer(a.view.Extension) {
			add(a.service, clearedByOffers)
		}
		switch a.view.Status {
		case "booked", "arrived", "checked-in":
			add(a.service, bookings)
		case "fulfilled":
			add(a.service, bookings)
			add(a.service, attended)
		case "noshow":
			add(a.service, bookings)
			add(a.service, dna)
		case "cancelled":
			was, err := rd.everBooked(a)
			if err != nil {
				return nil, err
			}
			if !was {
				continue
			}
			add(a.service, bookings)
			if replaced[a.res.Reference()] {
				add(a.service, rescheduled)
				break
			}
			switch cancelledBy(a) {
			case "patient":
				add(a.service, byPatient)
			case "provider":
				add(a.service, byProvider)
			default:
				add(a.service, byOther)
			}
		}
	}
	issues, err := rd.slotIssues()
	if err != nil {
		return nil, err
	}
	for _, is := range issues {
		add(is.service, slotIssues)
	}
	rep := &report{columns: []column{{"service", colReference}, {"specialty-code", colCode}, {"specialty", colString},
		{"bookings", colInteger}, {"attended", colInteger}, {"did-not-attend", colInteger},
		{"cancelled-by-patient", colInteger}, {"cancelled-by-provider", colInteger}, {"cancelled-other", colInteger},
		{"rescheduled", colInteger}, {"slot-issues", colInteger}, {"slot-issues-cleared-by-offer", colInteger}}}
	for svc, t := range tallies {
		code, display := rd.serviceSpecialty(svc)
		row := []string{svc, code, display}
		for _, n := range t {
			row = append(row, strconv.Itoa(n))
		}
		rep.rows = append(rep.rows, row)
	}
	sortRows(rep.rows, 1)
	return rep, nil
}
