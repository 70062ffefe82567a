package gpconnect

// The poller: the practice's free slots are copied into Signpost, not
// proxied. Every Settings.PollInterval it searches the practice's free
// slots over the next Settings.HorizonDays days as GP Connect defines the
// search (Windows: each request at most 14 days), maps the STU3 searchset
// to R4 (adapters/gpconnect/stu3), and, acting as the instance's
// principal through the write path:
//
//   - upserts a Schedule per practice schedule (Signpost id a UUID of the
//     practice's id, identifier ScheduleSystem), bound to one of
//     Settings.Services, its planning horizon ending after the last day
//     polled (so the booking rule that keeps free slots inside it holds);
//   - upserts a Slot per practice slot (identifier SlotSystem), free;
//   - marks busy (tag externally-busy) the free Slots of those schedules,
//     inside the polled range, that the practice no longer lists;
//   - leaves alone Slots booked or held in Signpost.
//
// A search that fails (the practice down, slow, or answering an error)
// changes nothing: the slots stay as they were, the error shows in the
// operator view, and the poll is retried with exponential back-off.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/adapters/gpconnect/stu3"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// MaxWindow is the longest free-slot search GP Connect allows: its start
// and end at most 14 days apart.
const MaxWindow = stu3.MaxSlotWindowDays * 24 * time.Hour

// WindowOverlap is how much consecutive search windows overlap, so that
// a slot crossing a window's end is found by the next window.
const WindowOverlap = time.Hour

// pollBatch is the most Slots written in one transaction.
const pollBatch = 200

// The identifier systems of what the instance copies and books.
const (
	SlotSystem        = "https://signpost.example/fhir/Id/gpconnect-slot"
	ScheduleSystem    = "https://signpost.example/fhir/Id/gpconnect-schedule"
	AppointmentSystem = "https://signpost.example/fhir/Id/gpconnect-appointment"
)

// Window is one free-slot search's range: start=ge From & end=le To.
type Window struct{ From, To time.Time }

// Windows splits [from, to] into search windows of at most MaxWindow,
// each overlapping the one before by WindowOverlap (a practice answers
// the slots wholly inside a window: without the overlap, one crossing a
// window's end would be in none); none when to is not after from.
func Windows(from, to time.Time) []Window {
	var out []Window
	for start := from; to.After(start); {
		end := start.Add(MaxWindow)
		if end.After(to) {
			end = to
		}
		out = append(out, Window{From: start, To: end})
		if !end.Before(to) {
			break
		}
		start = end.Add(-WindowOverlap)
	}
	return out
}

// query is the GP Connect free-slot search of w (stu3.SlotSearchQuery:
// status=free, _include=Slot:schedule and the :recurse includes of the
// schedule's actors, searchFilter naming the consumer's ODS code and
// organisation type).
func (a *Adapter) query(w Window) string {
	return stu3.SlotSearchQuery(w.From, w.To, a.env.Principal.Organization, a.set.OrganisationType).Encode()
}

// free is what one poll found: the practice's schedules and free slots.
type free struct {
	schedules map[string]*practiceSchedule // by Signpost id
	slots     map[string]*practiceSlot     // by Signpost id
	others    []map[string]any             // Practitioners and Locations the schedules name
}

// practiceSchedule is a practice schedule, mapped to R4.
type practiceSchedule struct {
	id       string   // Signpost's (stu3.ID)
	category []string // the service category's text and codes
	r4       map[string]any
}

// practiceSlot is a practice's free slot, mapped to R4.
type practiceSlot struct {
	id, schedule string // Signpost's ids (stu3.ID)
	start, end   time.Time
	r4           map[string]any
}

// PollNow polls the practice once, now, and returns its error (the
// operator view shows it too). The running poller goes on at its own
// pace.
func (a *Adapter) PollNow(ctx context.Context) error {
	a.pollMu.Lock()
	defer a.pollMu.Unlock()
	err := a.poll(ctx)
	a.polled(err)
	return err
}

// poll searches every window, then applies what it found.
func (a *Adapter) poll(ctx context.Context) error {
	now := a.env.Now().UTC().Truncate(time.Second)
	to := now.Add(time.Duration(a.set.HorizonDays) * 24 * time.Hour)
	found := &free{schedules: map[string]*practiceSchedule{}, slots: map[string]*practiceSlot{}}
	for _, w := range Windows(now, to) {
		if err := a.search(ctx, w, found); err != nil {
			return err
		}
	}
	return a.apply(a.env.Context(ctx), now, to, found)
}

// search makes one window's search and adds what it found to found.
func (a *Adapter) search(ctx context.Context, w Window, found *free) error {
	ctx, cancel := context.WithTimeout(ctx, a.set.PollTimeout.Or(DefaultPollTimeout))
	defer cancel()
	resp, err := a.client.do(ctx, request{interaction: stu3.InteractionSearchSlots, method: http.MethodGet, path: "Slot", rawQuery: a.query(w), who: a.env.Principal})
	if err != nil {
		return fmt.Errorf("searching free slots %s to %s: %w", w.From.Format(time.RFC3339), w.To.Format(time.RFC3339), err)
	}
	if resp.status != http.StatusOK {
		return fmt.Errorf("searching free slots %s to %s: %w", w.From.Format(time.RFC3339), w.To.Format(time.RFC3339), practiceError(resp))
	}
	return a.readSearchset(resp.body, found)
}

// polled records a poll's outcome for Status and the back-off.
func (a *Adapter) polled(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.polls.Record(a.env.Now(), err == nil)
	if err == nil {
		a.pollFails = 0
		return
	}
	a.pollFails++
	a.pollErr = err.Error()
	a.env.Logger.Warn("gpconnect: polling the practice", "error", err)
}

// nextPoll is how long the poller waits before its next poll: the poll
// interval after a success, exponential back-off after failures.
func (a *Adapter) nextPoll() time.Duration {
	a.mu.Lock()
	fails := a.pollFails
	a.mu.Unlock()
	every := a.set.PollInterval.Or(DefaultPollInterval)
	if fails == 0 {
		return every
	}
	return backoff(fails, a.set.RetryBase.Or(DefaultRetryBase), a.set.RetryMax.Or(DefaultRetryMax))
}

// backoff is the wait after the n-th failure in a row: base·2ⁿ⁻¹, at
// most max.
func backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// runPoller polls until ctx ends: at once, then as nextPoll says, or
// sooner when woken.
func (a *Adapter) runPoller(ctx context.Context) {
	for {
		_ = a.PollNow(ctx)
		t := time.NewTimer(a.nextPoll())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-a.pollWake:
			t.Stop()
		}
	}
}

// localValue is the identifier value of a practice id (stu3.Qualify):
// the instance's ODS code and the id, so that two practices' ids never
// meet.
func (a *Adapter) localValue(practiceID string) string {
	return stu3.Qualify(a.set.ODSCode, practiceID)
}

// serviceFor is the HealthcareService a practice schedule is bound to.
func (a *Adapter) serviceFor(s *practiceSchedule) string {
	for _, c := range s.category {
		if id, ok := a.set.Categories[c]; ok {
			return id
		}
	}
	return a.set.Services[0]
}

// horizonEnd is the planning horizon's end a schedule polled up to to
// carries: the day after to's, as a date, so that it moves once a day
// and covers every slot polled.
func (a *Adapter) horizonEnd(to time.Time) string {
	loc := a.env.Location
	if loc == nil {
		loc = time.UTC
	}
	return to.In(loc).AddDate(0, 0, 1).Format(time.DateOnly)
}

// apply writes what a poll found.
func (a *Adapter) apply(ctx context.Context, now, to time.Time, found *free) error {
	horizon := a.horizonEnd(to)
	ids := slices.Sorted(mapsKeys(found.schedules))
	if err := a.env.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
		org, err := a.organisation(ctx, tx)
		if err != nil {
			return err
		}
		for _, o := range found.others {
			if o["resourceType"] == "Location" && org != "" {
				o["managingOrganization"] = map[string]any{"reference": org}
			}
			if err := a.upsertOther(ctx, tx, o); err != nil {
				return err
			}
		}
		for _, id := range ids {
			if err := a.upsertSchedule(ctx, tx, found.schedules[id], horizon); err != nil {
				return fmt.Errorf("Schedule %s: %w", id, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	slotIDs := slices.Sorted(mapsKeys(found.slots))
	for batch := range slices.Chunk(slotIDs, pollBatch) {
		if err := a.env.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
			for _, id := range batch {
				if err := a.upsertSlot(ctx, tx, found.slots[id]); err != nil {
					return fmt.Errorf("Slot %s: %w", id, err)
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return a.markVanished(ctx, now, to, found)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// organisation is the Organization providing the practice's first
// service (its HealthcareService.providedBy), "" when none is known.
func (a *Adapter) organisation(ctx context.Context, rd store.Reader) (string, error) {
	res, err := readOrNil(ctx, rd, "HealthcareService", a.set.Services[0])
	if err != nil || res == nil {
		return "", err
	}
	var v struct {
		ProvidedBy *r4.Reference `json:"providedBy"`
	}
	_ = json.Unmarshal(res.JSON, &v)
	if v.ProvidedBy == nil {
		return "", nil
	}
	return elem.Str(v.ProvidedBy.Reference), nil
}

// upsertOther writes the Signpost copy of a Practitioner or Location a
// practice schedule names, unless it is already so.
func (a *Adapter) upsertOther(ctx context.Context, tx *write.Tx, want map[string]any) error {
	typ, _ := want["resourceType"].(string)
	id, _ := want["id"].(string)
	if typ == "" || id == "" {
		return nil
	}
	cur, err := readOrNil(ctx, tx, typ, id)
	if err != nil {
		return err
	}
	var version int64
	if cur != nil {
		var old map[string]any
		if err := json.Unmarshal(cur.JSON, &old); err != nil {
			return err
		}
		if meta, ok := old["meta"]; ok {
			want["meta"] = meta
		}
		if sameJSON(old, want) {
			return nil
		}
		version = cur.Version
	}
	return put(ctx, tx, typ, id, want, version)
}

// upsertSchedule writes the Signpost copy of s, planning horizon ending
// horizon, unless it is already so.
func (a *Adapter) upsertSchedule(ctx context.Context, tx *write.Tx, s *practiceSchedule, horizon string) error {
	id := s.id
	cur, err := readOrNil(ctx, tx, "Schedule", id)
	if err != nil {
		return err
	}
	want := map[string]any{}
	for k, v := range s.r4 {
		want[k] = v
	}
	want["resourceType"] = "Schedule"
	want["id"] = id
	delete(want, "meta")
	practiceID, _ := stu3.PracticeID(a.set.ODSCode, s.id)
	want["identifier"] = []any{map[string]any{"system": ScheduleSystem, "value": a.localValue(practiceID)}}
	want["active"] = true
	actors, _ := want["actor"].([]any)
	want["actor"] = append(actors, map[string]any{"reference": "HealthcareService/" + a.serviceFor(s)})
	hz := map[string]any{"end": horizon}
	var version int64
	if cur != nil {
		version = cur.Version
		var old map[string]any
		if err := json.Unmarshal(cur.JSON, &old); err != nil {
			return err
		}
		// The horizon never moves back: slots already copied stay inside.
		if ph, ok := old["planningHorizon"].(map[string]any); ok {
			if e, ok := ph["end"].(string); ok && e > horizon {
				hz["end"] = e
			}
		}
		want["planningHorizon"] = hz
		if meta, ok := old["meta"]; ok {
			want["meta"] = meta
		}
		if sameJSON(old, want) {
			return nil
		}
	}
	want["planningHorizon"] = hz
	return put(ctx, tx, "Schedule", id, want, version)
}

// upsertSlot writes the Signpost copy of the practice's free slot s: it
// creates it, or makes it free again (dropping the externally-busy tag)
// with the practice's times, unless it is booked or held in Signpost.
func (a *Adapter) upsertSlot(ctx context.Context, tx *write.Tx, s *practiceSlot) error {
	id := s.id
	cur, err := readOrNil(ctx, tx, "Slot", id)
	if err != nil {
		return err
	}
	want := map[string]any{}
	for k, v := range s.r4 {
		want[k] = v
	}
	want["resourceType"] = "Slot"
	want["id"] = id
	delete(want, "meta")
	want["status"] = "free"
	want["start"] = s.start.Format(time.RFC3339)
	want["end"] = s.end.Format(time.RFC3339)
	var version int64
	if cur != nil {
		var old map[string]any
		if err := json.Unmarshal(cur.JSON, &old); err != nil {
			return err
		}
		switch old["status"] {
		case "busy-tentative":
			return nil // held for a booking in Signpost
		case "busy":
			if !externallyBusy(cur.JSON) {
				return nil // booked in Signpost
			}
		}
		if meta, ok := old["meta"].(map[string]any); ok {
			if m := withoutBusyTag(meta); len(m) > 0 {
				want["meta"] = m
			}
		}
		if sameJSON(old, want) {
			return nil
		}
		version = cur.Version
	}
	return put(ctx, tx, "Slot", id, want, version)
}

// markVanished marks busy (externally) the free Slots of the instance's
// polled schedules that start inside [now, to] and that the practice no
// longer lists as free.
func (a *Adapter) markVanished(ctx context.Context, now, to time.Time, found *free) error {
	var refs []search.Ref
	seen := map[string]bool{}
	for id := range found.schedules {
		refs = append(refs, search.Ref{Type: "Schedule", ID: id})
		seen[id] = true
	}
	// Schedules copied before that list no free slot now.
	prior, err := a.ownSchedules(ctx)
	if err != nil {
		return err
	}
	for _, id := range prior {
		if !seen[id] {
			refs = append(refs, search.Ref{Type: "Schedule", ID: id})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	listed := found.slots
	q := &search.Query{Type: "Slot", Count: 500, Filter: []search.Expr{
		search.RefIn{Param: "schedule", Refs: refs},
		search.TokenIn{Param: "status", Codes: []string{"free"}}}}
	var gone []string
	st := a.env.Writes.Store()
	for {
		page, err := st.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, res := range page.Resources {
			var v struct {
				Status, Start string
			}
			if json.Unmarshal(res.JSON, &v) != nil || v.Status != "free" || listed[res.ID] != nil {
				continue
			}
			start, err := time.Parse(time.RFC3339, v.Start)
			if err != nil || start.Before(now) || start.After(to) {
				continue
			}
			gone = append(gone, res.ID)
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	for batch := range slices.Chunk(gone, pollBatch) {
		if err := a.env.Writes.Update(ctx, func(ctx context.Context, tx *write.Tx) error {
			for _, id := range batch {
				cur, err := readOrNil(ctx, tx, "Slot", id)
				if err != nil || cur == nil {
					return err
				}
				var old map[string]any
				if err := json.Unmarshal(cur.JSON, &old); err != nil {
					return err
				}
				if old["status"] != "free" {
					continue
				}
				old["status"] = "busy"
				meta, _ := old["meta"].(map[string]any)
				if meta == nil {
					meta = map[string]any{}
				}
				meta = withoutBusyTag(meta)
				tags, _ := meta["tag"].([]any)
				meta["tag"] = append(tags, map[string]any{"system": booking.TagSystem, "code": booking.TagExternallyBusy})
				old["meta"] = meta
				if err := put(ctx, tx, "Slot", id, old, cur.Version); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// ownSchedules lists the ids of the Schedules the instance copied.
func (a *Adapter) ownSchedules(ctx context.Context) ([]string, error) {
	var services []search.Ref
	for _, s := range a.set.Services {
		services = append(services, search.Ref{Type: "HealthcareService", ID: s})
	}
	q := &search.Query{Type: "Schedule", Count: 500, Filter: []search.Expr{
		search.RefIn{Param: "actor", Refs: services}}}
	var out []string
	prefix := a.set.ODSCode + "/"
	for {
		page, err := a.env.Writes.Store().Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, res := range page.Resources {
			var v struct {
				Identifier []r4.Identifier `json:"identifier"`
			}
			_ = json.Unmarshal(res.JSON, &v)
			for _, id := range v.Identifier {
				if elem.Str(id.System) == ScheduleSystem && strings.HasPrefix(elem.Str(id.Value), prefix) {
					out = append(out, res.ID)
				}
			}
		}
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// externallyBusy reports whether a Slot (its JSON) carries booking's
// externally-busy tag.
func externallyBusy(slotJSON []byte) bool {
	var v struct {
		Meta struct {
			Tag []r4.Coding `json:"tag"`
		} `json:"meta"`
	}
	_ = json.Unmarshal(slotJSON, &v)
	return slices.ContainsFunc(v.Meta.Tag, func(c r4.Coding) bool {
		return elem.Str(c.System) == booking.TagSystem && elem.Str(c.Code) == booking.TagExternallyBusy
	})
}

// withoutBusyTag returns a copy of meta without the externally-busy tag.
func withoutBusyTag(meta map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range meta {
		out[k] = v
	}
	tags, _ := out["tag"].([]any)
	var keep []any
	for _, t := range tags {
		if m, ok := t.(map[string]any); ok && m["system"] == booking.TagSystem && m["code"] == booking.TagExternallyBusy {
			continue
		}
		keep = append(keep, t)
	}
	if len(keep) > 0 {
		out["tag"] = keep
	} else {
		delete(out, "tag")
	}
	return out
}

// put writes v as typ/id at version (0: create or overwrite an absent one).
func put(ctx context.Context, tx *write.Tx, typ, id string, v map[string]any, version int64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	obj, err := fhir.ParseObject(b)
	if err != nil {
		return err
	}
	_, _, err = tx.Put(ctx, typ, id, obj, version)
	return err
}

// readOrNil reads typ/id, or nil when there is none.
func readOrNil(ctx context.Context, rd store.Reader, typ, id string) (*fhir.Resource, error) {
	res, err := rd.Read(ctx, typ, id)
	if k := fhir.KindOf(err); k == fhir.NotFound || k == fhir.Gone {
		return nil, nil
	}
	return res, err
}

// sameJSON reports whether a and b encode alike (maps sort their keys).
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
