package pas

// The slot feed: the PAS's slot availability per clinic, uploaded as CSV
// or NDJSON, one slot per row, upserted as Slots by the PAS's slot id.
//
// What a feed does, and does not do:
//
//   - All or nothing on its content. Every row is read and checked before
//     anything is written (columns, clinic configured and mapped to a
//     Schedule of the instance's services, pas_slot_id given once,
//     instants ISO 8601 with an offset, end after start, status free or
//     busy). One bad row rejects the whole feed: 422 with an
//     OperationOutcome issue per bad row, naming its line, and nothing
//     changed. A PAS's feed is a snapshot of its clinics; applying the good
//     part of a broken export would publish a state the PAS never had.
//   - Rows are then applied in feed order, in transactions of FeedBatch
//     rows, through the write path as the instance's principal (the
//     booking and directory rules, authorisation and audit apply; waiting
//     times follow). A row the domain refuses at that point (a free slot
//     outside its schedule's planning horizon, say: a matter of the
//     server's state, not of the feed) is reported as rejected with the
//     rule's reason, and the other rows of its batch are applied. A store
//     failure stops the feed with the batches before it applied; sending
//     the same feed again finishes it, since applying a feed twice changes
//     nothing the second time.
//   - A slot booked in Signpost (busy with a live Appointment holding it,
//     or busy-tentative, held) is never touched: its row is reported as
//     skipped with the reason. A slot the PAS reports busy is busy with
//     the booking tag externally-busy (no appointment here holds it).
//   - Incremental by default: a slot absent from the feed is left alone.
//     With mode=full the feed is the whole future of each clinic it names
//     (and of the clinics named by clinic= inputs, so that a clinic can be
//     emptied): the instance's slots on those clinics' schedules that end
//     in the future and whose pas_slot_id the feed does not carry are
//     deleted (withdrawn), except those booked in Signpost (skipped).
//   - Schedules are not created: Settings.Clinics maps each clinic code
//     to an existing Schedule of one of the instance's services.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The media types of a slot feed.
const (
	FeedCSV    = "text/csv"             // a header row, then one slot per row
	FeedNDJSON = "application/x-ndjson" // one JSON object per line
)

// The feed's limits: rows per feed (a larger one is 413: split it by
// clinic), rows per write transaction, and the length of a pas_slot_id
// or a service_type.
const (
	MaxFeedRows  = 20000
	FeedBatch    = 200
	maxFeedValue = 256
)

// FeedOperation is the name of the upload operation ($pas-slot-feed).
const FeedOperation = "pas-slot-feed"

// The feed's modes (the mode input).
const (
	FeedIncremental = "incremental" // rows are upserted; absent slots are left alone
	FeedFull        = "full"        // absent future slots of the feed's clinics are withdrawn
)

// SlotSystem is the identifier system of the Slots the instance called
// instance publishes from its PAS: Slot.identifier {SlotSystem(instance),
// pas_slot_id}. Inbound messages that name a PAS slot use it too.
func SlotSystem(instance string) string {
	return "https://signpost.example/fhir/Id/pas-slot/" + instance
}

// slotNamespace names the Slot ids a feed creates: a version 5 UUID of
// the identifier, so that the same PAS slot always gets the same id, and
// ids stay UUIDs ($find's proposal tokens pack them in 16 bytes).
var slotNamespace = uuid.MustParse("0f7e4c1a-93b2-4e58-a1d6-5c3b8e2f9a71")

// feedSlotID is the id of the Slot created for pas_slot_id.
func feedSlotID(instance, pasSlotID string) string {
	return uuid.NewSHA1(slotNamespace, []byte(SlotSystem(instance)+"|"+pasSlotID)).String()
}

// FeedOptions are the inputs of a feed besides its rows.
type FeedOptions struct {
	Mode    string   // FeedIncremental ("" too) or FeedFull
	Clinics []string // with FeedFull: clinics treated as fully given even when no row names them
}

// FeedReport is what a feed changed.
type FeedReport struct {
	Rows      int // rows read
	Created   int // slots created
	Updated   int // slots changed (times, status, service type, clinic)
	Unchanged int // rows that matched their slot already
	Skipped   int // rows (and, with mode=full, absent slots) left alone: booked in Signpost
	Rejected  int // rows the domain refused when applied
	Withdrawn int // mode=full: slots absent from the feed, deleted
	// Issues lists the skipped and rejected rows and slots, in order.
	Issues []FeedIssue
}

// FeedIssue is one skipped or rejected row (or, with mode=full, one
// absent slot left alone: Line 0).
type FeedIssue struct {
	Line      int
	PASSlotID string
	Slot      string // "Slot/id", when the slot exists
	Outcome   string // "skipped" or "rejected"
	Reason    string
}

// feedRow is one row of a feed, checked.
type feedRow struct {
	line                           int
	clinic, pasSlotID, status, svc string
	start, end                     time.Time
	startText, endText, scheduleID string
	fields                         map[string]string // as read, by column
}

// feedColumns are the columns of a feed; the first five are required.
var feedColumns = []string{"clinic", "pas_slot_id", "start", "end", "status", "service_type"}

// ApplyFeed applies one feed (body, of media type FeedCSV or FeedNDJSON)
// as the instance's principal and reports what it changed. ctx is the
// caller's; the writes are the instance's. A feed with bad rows is an
// *fhir.Error of kind Unprocessable with an issue per bad row, and
// nothing is changed; a feed of more than MaxFeedRows rows is TooLarge.
func (a *Adapter) ApplyFeed(ctx context.Context, body []byte, mediaType string, opt FeedOptions) (*FeedReport, error) {
	switch opt.Mode {
	case "":
		opt.Mode = FeedIncremental
	case FeedIncremental, FeedFull:
	default:
		return nil, fhir.Errorf(fhir.Invalid, "value", "mode", "mode %q is neither %s nor %s", opt.Mode, FeedIncremental, FeedFull)
	}
	if opt.Mode != FeedFull && len(opt.Clinics) > 0 {
		return nil, fhir.Errorf(fhir.Invalid, "value", "clinic", "the clinic input goes with mode=full")
	}
	var rows []*feedRow
	var issues []fhir.Issue
	var err error
	switch mediaType {
	case FeedCSV:
		rows, issues, err = readCSV(body)
	case FeedNDJSON:
		rows, issues, err = readNDJSON(body)
	default:
		return nil, fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "", "a slot feed is %s or %s, not %q", FeedCSV, FeedNDJSON, mediaType)
	}
	if err != nil {
		return nil, err
	}
	schedules := map[string]string{} // clinic → schedule id, for clinics that map to one of the instance's schedules
	bad := map[string]string{}       // clinic → why it cannot be fed
	for _, c := range opt.Clinics {
		if err := a.checkClinic(ctx, c, schedules, bad); err != nil {
			return nil, err
		}
		if why, ok := bad[c]; ok {
			issues = append(issues, fhir.Issue{Code: "value", Expression: []string{"clinic"}, Diagnostics: "clinic input: " + why})
		}
	}
	ids := map[string]int{} // pas_slot_id → line
	for _, r := range rows {
		why := r.check()
		if r.clinic != "" {
			if err := a.checkClinic(ctx, r.clinic, schedules, bad); err != nil {
				return nil, err
			}
			if w, ok := bad[r.clinic]; ok {
				why = append(why, w)
			}
			r.scheduleID = schedules[r.clinic]
		}
		if r.pasSlotID != "" {
			if first, dup := ids[r.pasSlotID]; dup {
				why = append(why, fmt.Sprintf("pas_slot_id %q is already given at line %d", r.pasSlotID, first))
			} else {
				ids[r.pasSlotID] = r.line
			}
		}
		if len(why) > 0 {
			issues = append(issues, lineIssue(r.line, strings.Join(why, "; ")))
		}
	}
	if len(issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Unprocessable, Op: "slot feed", Issues: issues}
	}

	rep := &FeedReport{Rows: len(rows)}
	actx := a.env.Context(ctx)
	for batch := range slices.Chunk(rows, FeedBatch) {
		if err := a.applyBatch(actx, batch, rep); err != nil {
			return rep, err
		}
	}
	if opt.Mode == FeedFull {
		clinics := slices.Clone(opt.Clinics)
		for _, r := range rows {
			clinics = append(clinics, r.clinic)
		}
		slices.Sort(clinics)
		for _, c := range slices.Compact(clinics) {
			if err := a.withdraw(actx, schedules[c], ids, rep); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// lineIssue is the OperationOutcome issue of a bad row.
func lineIssue(line int, why string) fhir.Issue {
	loc := "line " + strconv.Itoa(line)
	return fhir.Issue{Code: "invalid", Expression: []string{loc}, Diagnostics: loc + ": " + why}
}

// checkClinic records in schedules the Schedule clinic maps to, or in bad
// why it cannot be fed: not in Settings.Clinics, no such Schedule, or a
// Schedule of none of the instance's services. Each clinic is checked
// once per feed.
func (a *Adapter) checkClinic(ctx context.Context, clinic string, schedules, bad map[string]string) error {
	if _, ok := schedules[clinic]; ok {
		return nil
	}
	if _, ok := bad[clinic]; ok {
		return nil
	}
	id, ok := a.set.Clinics[clinic]
	if !ok {
		bad[clinic] = fmt.Sprintf("clinic %q is not configured for this PAS (settings.clinics)", clinic)
		return nil
	}
	res, err := a.store.Read(ctx, "Schedule", id)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		bad[clinic] = fmt.Sprintf("clinic %q maps to Schedule/%s, which does not exist", clinic, id)
		return nil
	} else if err != nil {
		return err
	}
	var sc struct {
		Actor []r4.Reference `json:"actor"`
	}
	if err := json.Unmarshal(res.JSON, &sc); err != nil {
		return err
	}
	for _, ref := range sc.Actor {
		if typ, sid, ok := fhir.SplitReference(elem.Str(ref.Reference)); ok && typ == "HealthcareService" && a.services[sid] {
			schedules[clinic] = id
			return nil
		}
	}
	bad[clinic] = fmt.Sprintf("clinic %q maps to Schedule/%s, which is not a schedule of this PAS's services (settings.services)", clinic, id)
	return nil
}

// check returns what is wrong with r's own values.
func (r *feedRow) check() []string {
	var why []string
	r.clinic, r.pasSlotID, r.status, r.svc = r.fields["clinic"], r.fields["pas_slot_id"], r.fields["status"], r.fields["service_type"]
	for _, col := range feedColumns[:5] {
		if r.fields[col] == "" {
			why = append(why, col+" is missing")
		}
	}
	for _, col := range []string{"pas_slot_id", "service_type"} {
		if v := r.fields[col]; len(v) > maxFeedValue {
			why = append(why, fmt.Sprintf("%s is longer than %d bytes", col, maxFeedValue))
		} else if strings.ContainsFunc(v, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			why = append(why, col+" holds a control character")
		}
	}
	var okStart, okEnd bool
	if v := r.fields["start"]; v != "" {
		r.start, okStart = parseInstant(v)
		if !okStart {
			why = append(why, fmt.Sprintf("start %q is not an ISO 8601 date and time with an offset (2026-12-07T09:00:00+00:00)", v))
		}
	}
	if v := r.fields["end"]; v != "" {
		r.end, okEnd = parseInstant(v)
		if !okEnd {
			why = append(why, fmt.Sprintf("end %q is not an ISO 8601 date and time with an offset (2026-12-07T09:15:00+00:00)", v))
		}
	}
	if okStart && okEnd && !r.end.After(r.start) {
		why = append(why, fmt.Sprintf("end %s is not after start %s", r.fields["end"], r.fields["start"]))
	}
	r.startText, r.endText = r.start.Format(time.RFC3339), r.end.Format(time.RFC3339)
	if v := r.fields["status"]; v != "" && v != "free" && v != "busy" {
		why = append(why, fmt.Sprintf("status %q is neither free nor busy", v))
	}
	return why
}

// parseInstant reads an ISO 8601 date and time with an offset (Z or
// ±hh:mm), seconds and fractions optional. Its offset is kept.
func parseInstant(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Truncate(time.Second), true
		}
	}
	return time.Time{}, false
}

// readCSV reads a CSV feed: a header row naming the columns (any order),
// then one slot per row. A malformed record is a bad row.
func readCSV(body []byte) ([]*feedRow, []fhir.Issue, error) {
	body = bytes.TrimPrefix(body, []byte("\ufeff"))
	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, fhir.Errorf(fhir.Invalid, "required", "", "the slot feed is empty: a CSV feed starts with a header row (%s)", strings.Join(feedColumns, ","))
	}
	if err != nil {
		return nil, []fhir.Issue{lineIssue(1, err.Error())}, nil
	}
	var issues []fhir.Issue
	var headWhy []string
	cols := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case !slices.Contains(feedColumns, h):
			headWhy = append(headWhy, fmt.Sprintf("column %q is not one of %s", h, strings.Join(feedColumns, ", ")))
		case cols[h] != 0:
			headWhy = append(headWhy, fmt.Sprintf("column %q is given twice", h))
		default:
			cols[h] = i + 1
		}
	}
	for _, c := range feedColumns[:5] {
		if cols[c] == 0 {
			headWhy = append(headWhy, fmt.Sprintf("the header has no %s column", c))
		}
	}
	if len(headWhy) > 0 {
		return nil, []fhir.Issue{lineIssue(1, strings.Join(headWhy, "; "))}, nil
	}
	var rows []*feedRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			issues = append(issues, lineIssue(line, err.Error()))
			if len(issues) > fhir.MaxIssues || !errors.As(err, &pe) {
				break
			}
			continue
		}
		if len(rows) == MaxFeedRows {
			return nil, nil, tooLarge()
		}
		if len(rec) != len(header) {
			issues = append(issues, lineIssue(line, fmt.Sprintf("the row has %d fields, the header %d", len(rec), len(header))))
			continue
		}
		r := &feedRow{line: line, fields: map[string]string{}}
		for c, i := range cols {
			r.fields[c] = strings.TrimSpace(rec[i-1])
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 && len(issues) == 0 {
		return nil, nil, fhir.Errorf(fhir.Invalid, "required", "", "the slot feed has a header but no rows")
	}
	return rows, issues, nil
}

// readNDJSON reads an NDJSON feed: one JSON object per line with string
// members named as the CSV columns; blank lines are ignored.
func readNDJSON(body []byte) ([]*feedRow, []fhir.Issue, error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var rows []*feedRow
	var issues []fhir.Issue
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if len(rows) == MaxFeedRows {
			return nil, nil, tooLarge()
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(text, &obj); err != nil {
			issues = append(issues, lineIssue(line, "not a JSON object: "+err.Error()))
			continue
		}
		r := &feedRow{line: line, fields: map[string]string{}}
		var why []string
		for k, v := range obj {
			if !slices.Contains(feedColumns, k) {
				why = append(why, fmt.Sprintf("member %q is not one of %s", k, strings.Join(feedColumns, ", ")))
				continue
			}
			if string(v) == "null" {
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				why = append(why, fmt.Sprintf("%s must be a string, not %s", k, v))
				continue
			}
			r.fields[k] = strings.TrimSpace(s)
		}
		slices.Sort(why)
		if len(why) > 0 {
			issues = append(issues, lineIssue(line, strings.Join(why, "; ")))
			continue
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fhir.Errorf(fhir.Invalid, "structure", "", "line %d: %v", line+1, err)
	}
	if len(rows) == 0 && len(issues) == 0 {
		return nil, nil, fhir.Errorf(fhir.Invalid, "required", "", "the slot feed has no rows")
	}
	return rows, issues, nil
}

func tooLarge() error {
	return fhir.Errorf(fhir.TooLarge, "too-costly", "", "the slot feed has more than %d rows: send it in parts (one per clinic, say)", MaxFeedRows)
}

// applyBatch applies rows in one transaction. When the domain refuses a
// row, the batch is applied again row by row, so that the refused rows are
// reported and the others applied.
func (a *Adapter) applyBatch(ctx context.Context, rows []*feedRow, rep *FeedReport) error {
	var got FeedReport
	err := a.env.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		got = FeedReport{}
		for _, r := range rows {
			if err := a.applyRow(ctx, tx, r, &got); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		rep.add(&got)
		return nil
	}
	if !refused(err) {
		return err
	}
	if len(rows) == 1 {
		rep.Rejected++
		rep.Issues = append(rep.Issues, FeedIssue{Line: rows[0].line, PASSlotID: rows[0].pasSlotID, Outcome: "rejected", Reason: reason(err)})
		return nil
	}
	for _, r := range rows {
		if err := a.applyBatch(ctx, []*feedRow{r}, rep); err != nil {
			return err
		}
	}
	return nil
}

// refused reports whether err is the domain's refusal of a write (a
// rule's answer), rather than a failure of the store.
func refused(err error) bool {
	switch fhir.KindOf(err) {
	case fhir.Invalid, fhir.Unprocessable, fhir.Conflict, fhir.Forbidden, fhir.PreconditionFailed:
		return true
	}
	return false
}

// reason is a refusal's text for the report.
func reason(err error) string {
	if fe := fhir.AsError(err); fe != nil && len(fe.Issues) > 0 {
		var out []string
		for _, is := range fe.Issues {
			out = append(out, is.Diagnostics)
		}
		return strings.Join(out, "; ")
	}
	return err.Error()
}

func (r *FeedReport) add(o *FeedReport) {
	r.Created += o.Created
	r.Updated += o.Updated
	r.Unchanged += o.Unchanged
	r.Skipped += o.Skipped
	r.Rejected += o.Rejected
	r.Withdrawn += o.Withdrawn
	r.Issues = append(r.Issues, o.Issues...)
}

// slotView is the part of a Slot the feed compares.
type slotView struct {
	Identifier  []r4.Identifier      `json:"identifier"`
	Schedule    r4.Reference         `json:"schedule"`
	Status      string               `json:"status"`
	Start       string               `json:"start"`
	End         string               `json:"end"`
	ServiceType []r4.CodeableConcept `json:"serviceType"`
	Meta        struct {
		Tag []r4.Coding `json:"tag"`
	} `json:"meta"`
}

func (s *slotView) externallyBusy() bool {
	return slices.ContainsFunc(s.Meta.Tag, isBusyTag)
}

func isBusyTag(c r4.Coding) bool {
	return elem.Str(c.System) == booking.TagSystem && elem.Str(c.Code) == booking.TagExternallyBusy
}

// serviceType is the Slot.serviceType a row's service_type gives: a
// coding for "system|code", a text otherwise; nil for none.
func serviceType(v string) []r4.CodeableConcept {
	if v == "" {
		return nil
	}
	if sys, code, ok := strings.Cut(v, "|"); ok && sys != "" && code != "" {
		return []r4.CodeableConcept{{Coding: []r4.Coding{{System: elem.Opt(sys), Code: elem.Opt(code)}}}}
	}
	return []r4.CodeableConcept{{Text: elem.Opt(v)}}
}

// applyRow upserts r's slot in tx, counting the outcome in rep.
func (a *Adapter) applyRow(ctx context.Context, tx *write.Tx, r *feedRow, rep *FeedReport) error {
	cur, err := a.findSlot(ctx, tx, r.pasSlotID)
	if err != nil {
		return err
	}
	var old slotView
	if cur != nil {
		if err := json.Unmarshal(cur.JSON, &old); err != nil {
			return err
		}
		if held, why, err := a.booked(ctx, tx, cur.ID, old.Status); err != nil {
			return err
		} else if held {
			rep.Skipped++
			rep.Issues = append(rep.Issues, FeedIssue{Line: r.line, PASSlotID: r.pasSlotID, Slot: "Slot/" + cur.ID, Outcome: "skipped", Reason: why})
			return nil
		}
		if sameSlot(&old, r) {
			rep.Unchanged++
			return nil
		}
	}
	obj, id := &fhir.Object{}, feedSlotID(a.env.Name, r.pasSlotID)
	var version int64
	if cur != nil {
		if obj, err = fhir.ParseObject(cur.JSON); err != nil {
			return err
		}
		id, version = cur.ID, cur.Version
	} else {
		if obj, err = fhir.ParseObject([]byte(`{"resourceType":"Slot"}`)); err != nil {
			return err
		}
		obj.Set("identifier", []r4.Identifier{{System: elem.Opt(SlotSystem(a.env.Name)), Value: elem.Opt(r.pasSlotID)}})
	}
	if st := serviceType(r.svc); st != nil {
		obj.Set("serviceType", st)
	} else {
		obj.Delete("serviceType")
	}
	obj.Set("schedule", elem.Ref("Schedule/"+r.scheduleID))
	obj.Set("status", r.status)
	obj.Set("start", r.startText)
	obj.Set("end", r.endText)
	if err := setBusyTag(obj, &old, r.status == "busy"); err != nil {
		return err
	}
	if _, _, err := tx.Put(ctx, "Slot", id, obj, version); err != nil {
		return err
	}
	if cur == nil {
		rep.Created++
	} else {
		rep.Updated++
	}
	return nil
}

// sameSlot reports whether the slot old already is what r says.
func sameSlot(old *slotView, r *feedRow) bool {
	start, ok1 := parseInstant(old.Start)
	end, ok2 := parseInstant(old.End)
	return ok1 && ok2 && start.Equal(r.start) && end.Equal(r.end) && old.Status == r.status &&
		elem.Str(old.Schedule.Reference) == "Schedule/"+r.scheduleID &&
		old.externallyBusy() == (r.status == "busy") &&
		sameJSON(old.ServiceType, serviceType(r.svc))
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// setBusyTag adds booking's externally-busy tag to obj's meta when busy,
// and removes it otherwise, keeping the other tags and meta members.
func setBusyTag(obj *fhir.Object, old *slotView, busy bool) error {
	tags := slices.DeleteFunc(slices.Clone(old.Meta.Tag), isBusyTag)
	if busy {
		tags = append(tags, r4.Coding{System: elem.Opt(booking.TagSystem), Code: elem.Opt(booking.TagExternallyBusy)})
	}
	meta, err := fhir.ParseObject([]byte("{}"))
	if raw := obj.Get("meta"); raw != nil {
		meta, err = fhir.ParseObject(raw)
	}
	if err != nil {
		return err
	}
	if len(tags) > 0 {
		meta.Set("tag", tags)
	} else {
		meta.Delete("tag")
	}
	if len(meta.Keys()) == 0 {
		obj.Delete("meta")
		return nil
	}
	obj.SetAfter("id", "meta", json.RawMessage(meta.Bytes()))
	return nil
}

// findSlot returns the instance's Slot for pasSlotID, or nil.
func (a *Adapter) findSlot(ctx context.Context, rd store.Reader, pasSlotID string) (*fhir.Resource, error) {
	page, err := rd.Search(ctx, &search.Query{Type: "Slot", Count: 2, Filter: []search.Expr{
		search.TokenIn{Param: "identifier", System: SlotSystem(a.env.Name), HasSystem: true, Codes: []string{pasSlotID}}}})
	if err != nil || len(page.Resources) == 0 {
		return nil, err
	}
	return page.Resources[0], nil
}

// liveStatuses are the Appointment statuses that hold their slots.
var liveStatuses = []string{"pending", "booked", "arrived", "checked-in", "fulfilled", "noshow"}

// booked reports whether Slot/id, in status, is booked in Signpost: held
// (busy-tentative) or busy with a live Appointment holding it; why says
// so for the report.
func (a *Adapter) booked(ctx context.Context, rd store.Reader, id, status string) (bool, string, error) {
	switch status {
	case "busy-tentative":
		return true, "the slot is held for a booking in Signpost (busy-tentative)", nil
	case "busy":
	default:
		return false, "", nil
	}
	page, err := rd.Search(ctx, &search.Query{Type: "Appointment", Count: 1, Filter: []search.Expr{
		search.RefIn{Param: "slot", Refs: []search.Ref{{Type: "Slot", ID: id}}},
		search.TokenIn{Param: "status", Codes: liveStatuses}}})
	if err != nil || len(page.Resources) == 0 {
		return false, "", err
	}
	return true, fmt.Sprintf("the slot is booked in Signpost (Appointment/%s)", page.Resources[0].ID), nil
}

// withdraw deletes, for mode=full, the instance's slots on Schedule/
// schedule that end in the future and whose pas_slot_id the feed does not
// carry (ids), except those booked in Signpost, in transactions of
// FeedBatch.
func (a *Adapter) withdraw(ctx context.Context, schedule string, ids map[string]int, rep *FeedReport) error {
	sys := SlotSystem(a.env.Name)
	now := a.env.Now()
	q := &search.Query{Type: "Slot", Count: 500, Filter: []search.Expr{
		search.RefIn{Param: "schedule", Refs: []search.Ref{{Type: "Schedule", ID: schedule}}}}}
	var gone []string
	for {
		page, err := a.store.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, res := range page.Resources {
			var s slotView
			if err := json.Unmarshal(res.JSON, &s); err != nil {
				return err
			}
			end, ok := parseInstant(s.End)
			if !ok || !end.After(now) {
				continue
			}
			if id := identifierOf(s.Identifier, sys); id != "" {
				if _, fed := ids[id]; !fed {
					gone = append(gone, res.ID)
				}
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	for batch := range slices.Chunk(gone, FeedBatch) {
		var got FeedReport
		err := a.env.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
			got = FeedReport{}
			for _, id := range batch {
				cur, err := tx.Read(ctx, "Slot", id)
				if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
					continue
				} else if err != nil {
					return err
				}
				var s slotView
				if err := json.Unmarshal(cur.JSON, &s); err != nil {
					return err
				}
				pasID := identifierOf(s.Identifier, sys)
				held, why, err := a.booked(ctx, tx, id, s.Status)
				if err != nil {
					return err
				}
				if held {
					got.Skipped++
					got.Issues = append(got.Issues, FeedIssue{PASSlotID: pasID, Slot: "Slot/" + id, Outcome: "skipped",
						Reason: "absent from the full feed, but " + strings.TrimPrefix(why, "the slot ")})
					continue
				}
				if _, err := tx.Delete(ctx, "Slot", id, cur.Version); err != nil {
					return err
				}
				got.Withdrawn++
			}
			return nil
		})
		if err != nil {
			return err
		}
		rep.add(&got)
	}
	return nil
}
