// Package directory is Signpost's Directory of Services: HealthcareService
// with its Organization, Location, PractitionerRole and Endpoint, searchable
// by specialty, service type, name, provider (ODS code by chaining),
// location (location.near), commissioner, bookability, acceptance of
// referrals and eligibility — the search parameters are data in
// conformance/signpost — and a true waiting time on every service.
//
// The waiting time is the extension
// https://signpost.example/fhir/StructureDefinition/waiting-time, owned by
// the server: a Slot rule keeps it true, in the same transaction, for every
// service whose schedule a slot write touches, so it is right as soon as a
// slot is booked or freed. It is a derived value, kept beside the service
// (store.DeriverTx) rather than in it: keeping it true writes no version of
// the service, whose versions, ETag and history stay its owner's, and the
// API adds it when it serves the service (store.AddDerived); its search
// parameters (waiting-time, next-free-slot) are indexed from it. A copy a
// client sends is dropped. A store without derived values keeps no
// waiting times. The rule is incremental: a write that cannot
// change a service's first N free slots (the slot is not free before or
// after, or lies beyond the stored sample-end) costs two point reads; one
// that can is recomputed from a short time window of the Slot
// schedule+start index (see Directory.update). A Schedule rule does the
// same for the services a schedule leaves or joins when its actors change.
package directory

import (
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

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Canonical URLs of the directory's definitions.
const (
	Base               = "https://signpost.example/fhir"
	WaitingTime        = Base + "/StructureDefinition/waiting-time"
	CommissionedBy     = Base + "/StructureDefinition/commissioned-by"
	AcceptingReferrals = Base + "/StructureDefinition/accepting-referrals"
	Eligibility        = Base + "/StructureDefinition/eligibility"
	BookabilitySystem  = Base + "/CodeSystem/bookability"
)

// Bookability codes (HealthcareService.characteristic).
const (
	DirectlyBookable   = "directly-bookable"
	IndirectlyBookable = "indirectly-bookable"
)

// Config configures the directory.
type Config struct {
	// AverageOver is N, the number of next free slots the average wait
	// covers; default 5.
	AverageOver int
	// Location is the time zone whose calendar days a wait counts; default
	// UTC. A slot tomorrow morning is a 1-day wait whatever the hour now.
	Location *time.Location
}

// Directory holds the directory's rules.
type Directory struct {
	repo *write.Path
	reg  *search.Registry
	cfg  Config

	// What the Slot rule reads of the schedules and services it meets,
	// decoded once per content: every slot write of a service reads the
	// same ones.
	actors *write.Views[[]string]
	waits  *write.Views[serviceWait]
}

// New returns the directory over rp, searching with reg.
func New(rp *write.Path, reg *search.Registry, cfg Config) *Directory {
	if cfg.AverageOver <= 0 {
		cfg.AverageOver = 5
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	return &Directory{repo: rp, reg: reg, cfg: cfg,
		actors: write.NewViews(func(raw []byte) (*[]string, error) { ids := serviceActors(raw); return &ids, nil }),
		waits:  write.NewViews(decodeWaitValue)}
}

// Register adds the directory's rules to the repo, under the names app's
// rule order declares (its Slot rule runs after booking's, so that it
// sees a slot's final status).
func (d *Directory) Register() {
	d.repo.AddRule("HealthcareService", "directory.service", d.serviceRule)
	d.repo.AddRule("Slot", "directory.slot", d.slotRule)
	d.repo.AddRule("Schedule", "directory.schedule", d.scheduleRule)
}

// serviceRule keeps the waiting-time extension out of the stored service
// (it is served from the derived value: a client's copy, such as one read
// and sent back, is dropped) and checks the bookability characteristic.
func (d *Directory) serviceRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	if err := c.New.SetExtensions(WaitingTime); err != nil {
		return err
	}
	var hs struct {
		Characteristic []struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"characteristic"`
	}
	if err := json.Unmarshal(c.New.Bytes(), &hs); err != nil {
		return fhir.Errorf(fhir.Invalid, "structure", "HealthcareService", "HealthcareService cannot be read: %v", err)
	}
	n := 0
	for _, ch := range hs.Characteristic {
		for _, cd := range ch.Coding {
			if cd.System != BookabilitySystem {
				continue
			}
			n++
			if cd.Code != DirectlyBookable && cd.Code != IndirectlyBookable {
				return fhir.Errorf(fhir.Unprocessable, "code-invalid", "HealthcareService.characteristic",
					"bookability must be %s or %s, not %q", DirectlyBookable, IndirectlyBookable, cd.Code)
			}
		}
	}
	if n > 1 {
		return fhir.Errorf(fhir.Unprocessable, "business-rule", "HealthcareService.characteristic",
			"a service is either directly or indirectly bookable: %d bookability codings", n)
	}
	return nil
}

// slotView is the part of a Slot the waiting times read.
type slotView struct {
	Schedule r4.Reference `json:"schedule"`
	Status   string       `json:"status"`
	Start    string       `json:"start"`
}

// readSlot reads the members of a Slot the waiting times depend on, from
// its members' bytes (without encoding the whole object again).
func readSlot(obj *fhir.Object) (*slotView, error) {
	var s slotView
	s.Status, _ = obj.String("status")
	s.Start, _ = obj.String("start")
	if raw := obj.Get("schedule"); raw != nil {
		if err := json.Unmarshal(raw, &s.Schedule); err != nil {
			return nil, fhir.Errorf(fhir.Invalid, "structure", "Slot.schedule", "Slot.schedule cannot be read: %v", err)
		}
	}
	return &s, nil
}

// freeAt returns the start of the slot when it is free and starts at or
// after now: a slot that counts towards a wait.
func (s *slotView) freeAt(now time.Time) (time.Time, bool) {
	if s == nil || s.Status != "free" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s.Start)
	if err != nil || t.Before(now) {
		return time.Time{}, false
	}
	return t, true
}

// slotRule keeps the waiting times of the services whose schedules hold the
// slot (before and after the write) true. Only a free slot from now on
// counts towards a wait, so a write in which neither version is one (a slot
// going from busy to busy-tentative, a past slot) changes no wait, and one
// that moves a free slot further out than the slots a service's wait
// samples changes nothing either (see update).
func (d *Directory) slotRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if tx.Options().DeferDerived || !tx.CanDerive() { // a bulk load refreshes after (Refresh)
		return nil
	}
	var nw, old *slotView
	if c.New != nil {
		var err error
		if nw, err = readSlot(c.New); err != nil {
			return err
		}
	}
	if c.Old != nil {
		var s slotView
		_ = json.Unmarshal(c.Old.JSON, &s)
		old = &s
	}
	now := tx.Now()
	oldT, oldFree := old.freeAt(now)
	newT, newFree := nw.freeAt(now)
	switch {
	case !oldFree && !newFree:
		return nil
	case oldFree && newFree && oldT.Equal(newT) && elem.Str(old.Schedule.Reference) == elem.Str(nw.Schedule.Reference):
		return nil // still free at the same time: no wait changes
	}
	// The services of the schedules of the free versions, and what the
	// write does to each: the slot leaves its free slots at oldT, joins
	// them at newT, or both.
	var changes []slotChange
	note := func(ref string, t time.Time, joins bool) {
		typ, id, ok := fhir.SplitReference(ref)
		if !ok || typ != "Schedule" {
			return
		}
		sc, err := tx.Read(ctx, "Schedule", id)
		if err != nil {
			return // a dangling schedule reference is not this rule's to judge
		}
		services, _ := d.actors.Get(sc.JSON)
		for _, sid := range *services {
			i := slices.IndexFunc(changes, func(ch slotChange) bool { return ch.service == sid })
			if i < 0 {
				changes = append(changes, slotChange{service: sid})
				i = len(changes) - 1
			}
			if joins {
				changes[i].joins = &t
			} else {
				changes[i].leaves = &t
			}
		}
	}
	if oldFree {
		note(elem.Str(old.Schedule.Reference), oldT, false)
	}
	if newFree {
		note(elem.Str(nw.Schedule.Reference), newT, true)
	}
	for _, ch := range changes {
		if err := d.update(ctx, tx, ch, c.ID); err != nil {
			return err
		}
	}
	return nil
}

// slotChange is what one slot write does to one service's free slots.
type slotChange struct {
	service string
	leaves  *time.Time // the start of a free slot that stops being free (or moves)
	joins   *time.Time // the start of a free slot that becomes free (or moves there)
}

// Refresh recomputes one service's waiting time in tx.
func (d *Directory) Refresh(ctx context.Context, tx *write.Tx, serviceID string) error {
	res, err := tx.Read(ctx, "HealthcareService", serviceID)
	if err != nil {
		return nil // the service is gone or not yet written
	}
	sw, err := d.stored(ctx, tx, res.ID)
	if err != nil {
		return err
	}
	return d.recompute(ctx, tx, res, sw, "", nil, scan{from: tx.Now()})
}

// Wait is a service's waiting time at one moment.
type Wait struct {
	NextSlot    time.Time // zero when there is no free slot
	Days        int       // whole days from the computation to NextSlot
	AverageDays float64   // mean over the next Sample free slots
	Sample      int
	SampleEnd   time.Time // the start of the last of those Sample slots
}

// update brings one service's wait up to date with a slot write (the slot
// slotID, whose stored version is still the old one).
//
// The wait depends only on the service's first N free slots from now on.
// When the stored wait is fresh (computed today, its next slot not yet
// past) it describes them: no free slot lies before NextSlot, and the
// sample ends at SampleEnd. Then a write that leaves and joins the free
// slots only after SampleEnd changes nothing, and no search is made; a
// write that does is recomputed from the free slots from NextSlot up to a
// little past SampleEnd, usually one indexed search of a few rows. A wait
// that is not fresh (or missing) is recomputed from the free slots from
// now on.
func (d *Directory) update(ctx context.Context, tx *write.Tx, ch slotChange, slotID string) error {
	res, err := tx.Read(ctx, "HealthcareService", ch.service)
	if err != nil {
		return nil // the service is gone or not yet written
	}
	now := tx.Now()
	sc := scan{from: now}
	sw, err := d.stored(ctx, tx, res.ID)
	if err != nil {
		return err
	}
	if sw.ok && d.fresh(sw.wait, sw.computed, now) {
		if !d.affects(sw.wait, now, ch) {
			return nil
		}
		sc = d.reach(sw.wait, ch, now)
	}
	return d.recompute(ctx, tx, res, sw, slotID, ch.joins, sc)
}

// scan says where to look for a service's first free slots: from from, a
// first window up to until (zero: a day), which holds every free slot
// there is when complete. With schedules not nil, the service's slots are
// those of these schedules (references), not of the schedules whose actor
// it is in the store.
type scan struct {
	from, until time.Time
	complete    bool
	schedules   []string
}

// scheduleRule keeps waiting times true when a schedule's actors change:
// the Slot rule sees only slot writes, so without this a service that
// gains or loses a schedule with free slots would keep its old wait. Every
// service that is an actor before the write and not after, or after and
// not before, is recomputed in the same transaction from the schedules it
// will have. A schedule without a free slot from now on changes no wait,
// so creating a schedule before its slots (the usual order) costs one
// search.
func (d *Directory) scheduleRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if tx.Options().DeferDerived || !tx.CanDerive() { // a bulk load refreshes after (Refresh)
		return nil
	}
	var before, after []string
	if c.Old != nil {
		before = serviceActors(c.Old.JSON)
	}
	if c.New != nil {
		after = serviceActors(c.New.Bytes())
	}
	var affected []string
	for _, id := range before {
		if !slices.Contains(after, id) {
			affected = append(affected, id)
		}
	}
	for _, id := range after {
		if !slices.Contains(before, id) {
			affected = append(affected, id)
		}
	}
	if len(affected) == 0 {
		return nil
	}
	now := tx.Now()
	self := "Schedule/" + c.ID
	if free, err := d.anyFree(ctx, tx, self, now); err != nil || !free {
		return err
	}
	for _, sid := range affected {
		res, err := tx.Read(ctx, "HealthcareService", sid)
		if err != nil {
			continue // the service is gone or not yet written
		}
		q, err := d.reg.Parse("Schedule", url.Values{"actor": {"HealthcareService/" + sid}, "_count": {"1000"}}, search.ParseOptions{Strict: true})
		if err != nil {
			return err
		}
		schedules := []string{}
		for {
			page, err := tx.Search(ctx, q)
			if err != nil {
				return err
			}
			for _, r := range page.Resources {
				if r.ID != c.ID {
					schedules = append(schedules, "Schedule/"+r.ID)
				}
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		if slices.Contains(after, sid) {
			schedules = append(schedules, self)
		}
		sw, err := d.stored(ctx, tx, res.ID)
		if err != nil {
			return err
		}
		if err := d.recompute(ctx, tx, res, sw, "", nil, scan{from: now, schedules: schedules}); err != nil {
			return err
		}
	}
	return nil
}

// serviceActors returns the ids of the HealthcareServices among a
// Schedule's actors.
func serviceActors(raw []byte) []string {
	var v struct {
		Actor []struct {
			Reference string `json:"reference"`
		} `json:"actor"`
	}
	_ = json.Unmarshal(raw, &v)
	var ids []string
	for _, a := range v.Actor {
		if typ, id, ok := fhir.SplitReference(a.Reference); ok && typ == "HealthcareService" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// anyFree reports whether the schedule ref has a free slot starting at or
// after now.
func (d *Directory) anyFree(ctx context.Context, tx store.Reader, ref string, now time.Time) (bool, error) {
	q, err := d.reg.Parse("Slot", url.Values{"schedule": {ref}, "status": {"free"},
		"start": {"ge" + now.Add(-time.Second).UTC().Format(time.RFC3339)}, "_count": {"20"}}, search.ParseOptions{Strict: true})
	if err != nil {
		return false, err
	}
	for {
		page, err := tx.Search(ctx, q)
		if err != nil {
			return false, err
		}
		for _, sl := range page.Resources {
			var v slotView
			_ = json.Unmarshal(sl.JSON, &v)
			if _, ok := v.freeAt(now); ok {
				return true, nil
			}
		}
		if page.Next == "" {
			return false, nil
		}
		q.Cursor = page.Next
	}
}

// reach plans the scan for a change ch to the fresh wait w. The stored
// slot that joins is left out of the search and added by the caller, so
// the old sample is what the scan must find again, less the slot that
// leaves; when one leaves, its place goes to the first free slot after
// SampleEnd, looked for within a couple of the sample's slot gaps first.
// A wrong guess costs more searches, not a wrong wait.
func (d *Directory) reach(w Wait, ch slotChange, now time.Time) scan {
	switch {
	case w.NextSlot.IsZero():
		return scan{from: now, until: now, complete: true} // no free slot but the one that joins
	case w.SampleEnd.IsZero():
		return scan{from: w.NextSlot} // written before sample-end was kept
	}
	end := w.SampleEnd.Add(time.Second)
	if w.Sample < d.cfg.AverageOver || ch.leaves == nil {
		// Every free slot lies in [NextSlot, SampleEnd], or the old sample
		// is there whole.
		return scan{from: w.NextSlot, until: end, complete: w.Sample < d.cfg.AverageOver}
	}
	gap := time.Minute
	if w.Sample > 1 {
		gap = max(gap, w.SampleEnd.Sub(w.NextSlot)/time.Duration(w.Sample-1))
	}
	return scan{from: w.NextSlot, until: end.Add(2 * gap)}
}

// fresh reports whether a wait computed at computed still describes now:
// the same calendar day (so its day counts hold) and no sampled slot past.
func (d *Directory) fresh(w Wait, computed, now time.Time) bool {
	a, b := computed.In(d.cfg.Location), now.In(d.cfg.Location)
	if a.Year() != b.Year() || a.YearDay() != b.YearDay() {
		return false
	}
	return w.NextSlot.IsZero() || !w.NextSlot.Before(now)
}

// affects reports whether ch may change the fresh wait w. When w samples
// fewer than N slots, every free slot is in it; otherwise a slot that
// starts after the last sampled one (SampleEnd) cannot enter or leave the
// sample. A wait written before SampleEnd was kept falls back to days: a
// slot on a day after the last sampled day cannot matter either, and that
// day is bounded from the rest of the extension (the days of the sample
// sum to at most the largest sum whose rounded mean is AverageDays, and
// every sampled slot but the last is at least Days away).
func (d *Directory) affects(w Wait, now time.Time, ch slotChange) bool {
	if w.NextSlot.IsZero() || w.Sample < d.cfg.AverageOver {
		return true
	}
	if !w.SampleEnd.IsZero() {
		for _, t := range []*time.Time{ch.leaves, ch.joins} {
			if t != nil && !t.After(w.SampleEnd) {
				return true
			}
		}
		return false
	}
	last, ok := lastSampledDay(w)
	if !ok {
		return true
	}
	from := now.In(d.cfg.Location)
	for _, t := range []*time.Time{ch.leaves, ch.joins} {
		if t != nil && days(from, *t) <= last {
			return true
		}
	}
	return false
}

// lastSampledDay bounds the day count of the last slot w samples.
func lastSampledDay(w Wait) (int, bool) {
	n := w.Sample
	if n <= 0 || w.AverageDays < 0 {
		return 0, false
	}
	mean := func(sum int) float64 { return math.Round(float64(sum)/float64(n)*10) / 10 }
	for sum := int(math.Floor((w.AverageDays+0.05)*float64(n))) + 1; sum >= 0; sum-- {
		if mean(sum) == w.AverageDays {
			return sum - (n-1)*w.Days, true
		}
		if mean(sum) < w.AverageDays {
			break
		}
	}
	return 0, false
}

// serviceWait is what the waiting-time upkeep reads of a service's
// derived waiting-time value: the extension (when there is one), and the
// wait it holds with when it was computed (ok when it says).
type serviceWait struct {
	exts     []r4.Extension
	wait     Wait
	computed time.Time
	ok       bool
}

// noWait is the serviceWait of a service without a waiting-time value.
var noWait = &serviceWait{}

// decodeWaitValue reads the serviceWait of a waiting-time extension's
// JSON. What cannot be read is left out: the wait is then recomputed and
// rewritten.
func decodeWaitValue(raw []byte) (*serviceWait, error) {
	var e r4.Extension
	if json.Unmarshal(raw, &e) != nil || e.Url != WaitingTime {
		return noWait, nil
	}
	sw := &serviceWait{exts: []r4.Extension{e}}
	sw.wait, sw.computed = waitOf(e)
	sw.ok = !sw.computed.IsZero()
	return sw, nil
}

// stored returns the waiting-time value kept for service id in tx.
func (d *Directory) stored(ctx context.Context, tx *write.Tx, id string) (*serviceWait, error) {
	vals, err := tx.Derived(ctx, "HealthcareService", []string{id})
	if err != nil {
		return nil, err
	}
	for _, v := range vals[id] {
		if v.Name == WaitingTime {
			return d.waits.Get(v.Value)
		}
	}
	return noWait, nil
}

// storedWait reads the waiting-time extension of a service as served (its
// JSON with its derived values), with when it was computed.
func storedWait(serviceJSON []byte) (Wait, time.Time, bool) {
	var v struct {
		Extension []r4.Extension `json:"extension"`
	}
	_ = json.Unmarshal(serviceJSON, &v)
	for _, e := range v.Extension {
		if e.Url == WaitingTime {
			w, computed := waitOf(e)
			return w, computed, !computed.IsZero()
		}
	}
	return Wait{}, time.Time{}, false
}

// waitOf reads a waiting-time extension, with when it was computed.
func waitOf(e r4.Extension) (Wait, time.Time) {
	var w Wait
	var computed time.Time
	for _, s := range e.Extension {
		switch s.Url {
		case "days":
			if s.ValueInteger != nil {
				w.Days = *s.ValueInteger
			}
		case "next-slot":
			w.NextSlot, _ = time.Parse(time.RFC3339, elem.Str(s.ValueDateTime))
		case "average-days":
			if s.ValueDecimal != nil {
				w.AverageDays, _ = s.ValueDecimal.Float64()
			}
		case "sample":
			if s.ValueInteger != nil {
				w.Sample = *s.ValueInteger
			}
		case "sample-end":
			w.SampleEnd, _ = time.Parse(time.RFC3339, elem.Str(s.ValueDateTime))
		case "computed":
			computed, _ = time.Parse(time.RFC3339, elem.Str(s.ValueInstant))
		}
	}
	return w, computed
}

// recompute computes the wait of service res from its first free slots,
// slot slotID's stored version replaced by a free one at joins (when not
// nil), and keeps it beside the service (a derived value, with its index
// entries) when it differs from cur, the value kept so far. sc says where
// to look for the free slots.
func (d *Directory) recompute(ctx context.Context, tx *write.Tx, res *fhir.Resource, cur *serviceWait, slotID string, joins *time.Time, sc scan) error {
	if !tx.CanDerive() {
		return nil // nowhere to keep it
	}
	now := tx.Now()
	starts, err := d.nextFree(ctx, tx, res.ID, now, slotID, sc)
	if err != nil {
		return err
	}
	if joins != nil {
		starts = append(starts, *joins)
	}
	w := ComputeWait(now.In(d.cfg.Location), starts, d.cfg.AverageOver)
	newExt := waitExtension(w, now)
	for _, e := range cur.exts {
		if sameWait(e, newExt) {
			return nil // unchanged
		}
	}
	value, err := json.Marshal(newExt)
	if err != nil {
		return err
	}
	index, err := d.reg.ExtractDerived("HealthcareService", value)
	if err != nil {
		return err
	}
	return tx.PutDerived(ctx, "HealthcareService", res.ID, store.DerivedValue{Name: WaitingTime, Value: value, Index: index})
}

// ComputeWait derives a wait from the starts of the free slots (any order)
// as seen at now, averaging over the next n. Days are calendar days in
// now's location.
func ComputeWait(now time.Time, starts []time.Time, n int) Wait {
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	var w Wait
	if len(starts) == 0 {
		return w
	}
	w.NextSlot = starts[0]
	w.Days = days(now, starts[0])
	sum := 0
	for _, s := range starts[:min(n, len(starts))] {
		sum += days(now, s)
		w.Sample++
		w.SampleEnd = s
	}
	w.AverageDays = math.Round(float64(sum)/float64(w.Sample)*10) / 10
	return w
}

// days counts the calendar days from one instant to another, in from's
// location.
func days(from, to time.Time) int {
	to = to.In(from.Location())
	a := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	b := time.Date(to.Year(), to.Month(), to.Day(), 0, 0, 0, 0, time.UTC)
	return int(b.Sub(a).Hours() / 24)
}

// nextFree returns the starts of at least the service's first N free slots
// from sc.from on (all of them when there are fewer), over all its
// schedules, leaving out slot skip.
//
// It reads the free slots window by window in time, each window one search
// driven by the Slot schedule+start index and sorted here: asking the
// store for the first N by start (_sort=start&_count=N) makes it sort
// every future free slot of the service, which costs milliseconds once a
// schedule holds thousands. The first window ends at sc.until (or a day
// on); while fewer than N are found, up to three more windows follow, each
// twice as long, and then one sorted search for the rest.
func (d *Directory) nextFree(ctx context.Context, tx store.Reader, serviceID string, now time.Time, skip string, sc scan) ([]time.Time, error) {
	need := d.cfg.AverageOver
	lo, hi := sc.from, sc.until
	if hi.IsZero() {
		hi = lo.Add(24 * time.Hour)
	}
	var starts []time.Time
	for i := 0; ; i++ {
		if hi.After(lo) {
			got, err := d.freeIn(ctx, tx, serviceID, sc.schedules, now, lo, hi, skip, 0)
			if err != nil {
				return nil, err
			}
			starts = append(starts, got...)
		}
		if len(starts) >= need || sc.complete {
			return starts, nil
		}
		if i == 3 {
			rest, err := d.freeIn(ctx, tx, serviceID, sc.schedules, now, hi, time.Time{}, skip, need-len(starts))
			return append(starts, rest...), err
		}
		lo, hi = hi, hi.Add(max(time.Hour, 2*hi.Sub(lo)))
	}
}

// freeIn returns the starts of the service's free slots in [lo, hi) that
// start at or after now, leaving out slot skip; the service's slots are
// those of schedules when not nil (see scan). With hi zero it has no end
// and returns the first limit of them by start (one search sorted by the
// store). The search window is a second wider on each side, since the index
// compares whole seconds; the bounds are applied exactly here.
func (d *Directory) freeIn(ctx context.Context, tx store.Reader, serviceID string, schedules []string, now, lo, hi time.Time, skip string, limit int) ([]time.Time, error) {
	q := url.Values{
		"schedule.actor": {"HealthcareService/" + serviceID},
		"status":         {"free"},
		"start":          {"ge" + lo.Add(-time.Second).UTC().Format(time.RFC3339)},
		"_count":         {"200"},
	}
	if schedules != nil {
		if len(schedules) == 0 {
			return nil, nil
		}
		q.Del("schedule.actor")
		q.Set("schedule", strings.Join(schedules, ","))
	}
	if hi.IsZero() {
		q.Set("_sort", "start")
		q.Set("_count", strconv.Itoa(limit+2))
	} else {
		q.Add("start", "lt"+hi.Add(time.Second).UTC().Format(time.RFC3339))
	}
	sq, err := d.reg.Parse("Slot", q, search.ParseOptions{Strict: true})
	if err != nil {
		return nil, err
	}
	var starts []time.Time
	for {
		page, err := tx.Search(ctx, sq)
		if err != nil {
			return nil, err
		}
		for _, sl := range page.Resources {
			if sl.ID == skip {
				continue
			}
			var v slotView
			_ = json.Unmarshal(sl.JSON, &v)
			t, ok := v.freeAt(now)
			if !ok || t.Before(lo) || (!hi.IsZero() && !t.Before(hi)) {
				continue
			}
			starts = append(starts, t)
			if hi.IsZero() && len(starts) >= limit {
				return starts, nil
			}
		}
		if page.Next == "" {
			return starts, nil
		}
		sq.Cursor = page.Next
	}
}

// waitExtension is the waiting-time extension of w as written at now (an
// r4.Extension with the sub-extensions days, next-slot, average-days,
// sample, sample-end and computed).
func waitExtension(w Wait, now time.Time) r4.Extension {
	e := r4.Extension{Url: WaitingTime}
	if !w.NextSlot.IsZero() {
		days, n := w.Days, w.Sample
		e.Extension = append(e.Extension,
			r4.Extension{Url: "days", ValueInteger: &days},
			r4.Extension{Url: "next-slot", ValueDateTime: elem.Opt(w.NextSlot.UTC().Format(time.RFC3339))},
			r4.Extension{Url: "average-days", ValueDecimal: decimal(w.AverageDays)},
			r4.Extension{Url: "sample", ValueInteger: &n},
			r4.Extension{Url: "sample-end", ValueDateTime: elem.Opt(w.SampleEnd.UTC().Format(time.RFC3339))})
	}
	e.Extension = append(e.Extension, r4.Extension{Url: "computed", ValueInstant: elem.Opt(now.UTC().Format(fhir.InstantFormat))})
	return e
}

// decimal returns f as a FHIR decimal, written as encoding/json writes a
// float64.
func decimal(f float64) *json.Number {
	b, _ := json.Marshal(f)
	n := json.Number(b)
	return &n
}

// sameWait compares two waits, ignoring when they were computed.
func sameWait(a, b r4.Extension) bool {
	x, y := a.Extension, b.Extension
	for {
		for len(x) > 0 && x[0].Url == "computed" {
			x = x[1:]
		}
		for len(y) > 0 && y[0].Url == "computed" {
			y = y[1:]
		}
		if len(x) == 0 || len(y) == 0 {
			return len(x) == len(y)
		}
		if !sameSub(x[0], y[0]) {
			return false
		}
		x, y = x[1:], y[1:]
	}
}

// sameSub reports whether two sub-extensions say the same.
func sameSub(a, b r4.Extension) bool {
	same := func(p, q *int) bool { return p == q || (p != nil && q != nil && *p == *q) }
	sameDecimal := func(p, q *json.Number) bool {
		if p == nil || q == nil {
			return p == q
		}
		x, errX := p.Float64()
		y, errY := q.Float64()
		return errX == nil && errY == nil && x == y
	}
	return a.Url == b.Url && elem.Str(a.ValueDateTime) == elem.Str(b.ValueDateTime) && elem.Str(a.ValueInstant) == elem.Str(b.ValueInstant) &&
		same(a.ValueInteger, b.ValueInteger) && sameDecimal(a.ValueDecimal, b.ValueDecimal)
}

// ReadWait reads a service's waiting-time extension as of now, from the
// service's JSON as served (with its derived values: store.AddDerived; the
// stored JSON has none): Days is recomputed from the next free slot
// (calendar days in now's location), so it is true whenever it is read.
func ReadWait(serviceJSON []byte, now time.Time) (Wait, bool) {
	w, computed, _ := storedWait(serviceJSON)
	if w.NextSlot.IsZero() {
		return w, false
	}
	w.Days = max(0, days(now, w.NextSlot))
	if !computed.IsZero() {
		w.AverageDays = math.Max(0, w.AverageDays-float64(days(computed.In(now.Location()), now)))
	}
	return w, true
}
