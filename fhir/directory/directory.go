// Package directory is Signpost's Directory of Services: HealthcareService
// with its Organization, Location, PractitionerRole and Endpoint, searchable
// by specialty, service type, name, provider (ODS code by chaining),
// location (location.near), commissioner, bookability, acceptance of
// referrals and eligibility — the search parameters are data in
// conformance/signpost — and a true waiting time on every service.
//
// The waiting time is the extension
// https://signpost.example/fhir/StructureDefinition/waiting-time, owned by
// the server: a Slot rule recomputes it, in the same transaction, for every
// service whose schedule a slot write touches, so it is right as soon as a
// slot is booked or freed.
package directory

import (
	"context"
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/repo"
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
	repo *repo.Repo
	reg  *search.Registry
	cfg  Config
}

// New returns the directory over rp, searching with reg.
func New(rp *repo.Repo, reg *search.Registry, cfg Config) *Directory {
	if cfg.AverageOver <= 0 {
		cfg.AverageOver = 5
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	return &Directory{repo: rp, reg: reg, cfg: cfg}
}

// Register adds the directory's rules to the repo. Register it after the
// booking rules, so that the Slot rule sees a slot's final status.
func (d *Directory) Register() {
	d.repo.AddRule("HealthcareService", d.serviceRule)
	d.repo.AddRule("Slot", d.slotRule)
}

type deferKey struct{}

// WithoutWaitingTimes returns a ctx in which slot writes do not recompute
// waiting times: for bulk loads, which call Refresh once per service after.
func WithoutWaitingTimes(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferKey{}, true)
}

type ownKey struct{}

// serviceRule keeps the waiting-time extension server-owned and checks the
// bookability characteristic.
func (d *Directory) serviceRule(ctx context.Context, tx *repo.Tx, c *repo.Change) error {
	if c.New == nil {
		return nil
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
	if v, _ := ctx.Value(ownKey{}).(bool); v {
		return nil
	}
	var old []byte
	if c.Old != nil {
		old = c.Old.JSON
	}
	return copyExtension(c.New, old, WaitingTime)
}

type slotView struct {
	Schedule struct {
		Reference string `json:"reference"`
	} `json:"schedule"`
	Status string `json:"status"`
	Start  string `json:"start"`
}

// slotRule recomputes the waiting time of the services whose schedule the
// slot belongs to (before and after the write).
func (d *Directory) slotRule(ctx context.Context, tx *repo.Tx, c *repo.Change) error {
	if v, _ := ctx.Value(deferKey{}).(bool); v {
		return nil
	}
	var scheds []string
	var override *slotView
	if c.New != nil {
		var s slotView
		if err := json.Unmarshal(c.New.Bytes(), &s); err != nil {
			return fhir.Errorf(fhir.Invalid, "structure", "Slot", "Slot cannot be read: %v", err)
		}
		override = &s
		scheds = append(scheds, s.Schedule.Reference)
	}
	if c.Old != nil {
		var s slotView
		_ = json.Unmarshal(c.Old.JSON, &s)
		if !slices.Contains(scheds, s.Schedule.Reference) {
			scheds = append(scheds, s.Schedule.Reference)
		}
	}
	var services []string
	for _, ref := range scheds {
		typ, id, ok := splitRef(ref)
		if !ok || typ != "Schedule" {
			continue
		}
		sc, err := tx.Read(ctx, "Schedule", id)
		if err != nil {
			continue // a dangling schedule reference is not this rule's to judge
		}
		var v struct {
			Actor []struct {
				Reference string `json:"reference"`
			} `json:"actor"`
		}
		_ = json.Unmarshal(sc.JSON, &v)
		for _, a := range v.Actor {
			if t, sid, ok := splitRef(a.Reference); ok && t == "HealthcareService" && !slices.Contains(services, sid) {
				services = append(services, sid)
			}
		}
	}
	for _, id := range services {
		if err := d.refresh(ctx, tx, id, c.ID, override); err != nil {
			return err
		}
	}
	return nil
}

// Refresh recomputes one service's waiting time in tx.
func (d *Directory) Refresh(ctx context.Context, tx *repo.Tx, serviceID string) error {
	return d.refresh(ctx, tx, serviceID, "", nil)
}

// Wait is a service's waiting time at one moment.
type Wait struct {
	NextSlot    time.Time // zero when there is no free slot
	Days        int       // whole days from the computation to NextSlot
	AverageDays float64   // mean over the next Sample free slots
	Sample      int
}

// refresh recomputes serviceID's wait; slot slotID's stored version is
// replaced by override (its proposed version) when not "".
func (d *Directory) refresh(ctx context.Context, tx *repo.Tx, serviceID, slotID string, override *slotView) error {
	res, err := tx.Read(ctx, "HealthcareService", serviceID)
	if err != nil {
		return nil // the service is gone or not yet written
	}
	now := tx.Now()
	starts, err := d.freeStarts(ctx, tx, serviceID, now, slotID)
	if err != nil {
		return err
	}
	if override != nil && override.Status == "free" {
		if t, err := time.Parse(time.RFC3339, override.Start); err == nil && !t.Before(now) {
			starts = append(starts, t)
		}
	}
	w := ComputeWait(now.In(d.cfg.Location), starts, d.cfg.AverageOver)
	obj, err := fhir.ParseObject(res.JSON)
	if err != nil {
		return err
	}
	var cur struct {
		Extension []waitExt `json:"extension"`
	}
	_ = json.Unmarshal(res.JSON, &cur)
	newExt := waitExtension(w, now)
	for _, e := range cur.Extension {
		if e.URL == WaitingTime && sameWait(e, newExt) {
			return nil // unchanged: no new version
		}
	}
	if err := setExtension(obj, WaitingTime, newExt); err != nil {
		return err
	}
	_, _, err = tx.Put(context.WithValue(ctx, ownKey{}, true), "HealthcareService", serviceID, obj, 0)
	return err
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

// freeStarts returns the starts of the free slots from now on of every
// schedule of the service, leaving out slot skip.
func (d *Directory) freeStarts(ctx context.Context, tx store.Reader, serviceID string, now time.Time, skip string) ([]time.Time, error) {
	scheds, err := find(ctx, tx, d.reg, "Schedule", "actor=HealthcareService/"+serviceID)
	if err != nil {
		return nil, err
	}
	var starts []time.Time
	for _, sc := range scheds {
		slots, err := find(ctx, tx, d.reg, "Slot", "schedule=Schedule/"+sc.ID+"&status=free&start=ge"+url.QueryEscape(now.UTC().Format(time.RFC3339)))
		if err != nil {
			return nil, err
		}
		for _, sl := range slots {
			if sl.ID == skip {
				continue
			}
			var v slotView
			_ = json.Unmarshal(sl.JSON, &v)
			if t, err := time.Parse(time.RFC3339, v.Start); err == nil && !t.Before(now) && v.Status == "free" {
				starts = append(starts, t)
			}
		}
	}
	return starts, nil
}

// waitExt is the waiting-time extension as written.
type waitExt struct {
	URL       string   `json:"url"`
	Extension []subExt `json:"extension,omitempty"`
}

type subExt struct {
	URL           string   `json:"url"`
	ValueInteger  *int     `json:"valueInteger,omitempty"`
	ValueDecimal  *float64 `json:"valueDecimal,omitempty"`
	ValueDateTime string   `json:"valueDateTime,omitempty"`
	ValueInstant  string   `json:"valueInstant,omitempty"`
}

func waitExtension(w Wait, now time.Time) waitExt {
	e := waitExt{URL: WaitingTime}
	if !w.NextSlot.IsZero() {
		days, avg, n := w.Days, w.AverageDays, w.Sample
		e.Extension = append(e.Extension,
			subExt{URL: "days", ValueInteger: &days},
			subExt{URL: "next-slot", ValueDateTime: w.NextSlot.UTC().Format(time.RFC3339)},
			subExt{URL: "average-days", ValueDecimal: &avg},
			subExt{URL: "sample", ValueInteger: &n})
	}
	e.Extension = append(e.Extension, subExt{URL: "computed", ValueInstant: now.UTC().Format(fhir.InstantFormat)})
	return e
}

// sameWait compares two waits, ignoring when they were computed.
func sameWait(a, b waitExt) bool {
	strip := func(e waitExt) string {
		var keep []subExt
		for _, s := range e.Extension {
			if s.URL != "computed" {
				keep = append(keep, s)
			}
		}
		j, _ := json.Marshal(keep)
		return string(j)
	}
	return strip(a) == strip(b)
}

// ReadWait reads a service's waiting-time extension as of now: Days is
// recomputed from the next free slot (calendar days in now's location), so
// it is true whenever it is read.
func ReadWait(serviceJSON []byte, now time.Time) (Wait, bool) {
	var v struct {
		Extension []waitExt `json:"extension"`
	}
	_ = json.Unmarshal(serviceJSON, &v)
	for _, e := range v.Extension {
		if e.URL != WaitingTime {
			continue
		}
		var w Wait
		var computed time.Time
		for _, s := range e.Extension {
			switch s.URL {
			case "next-slot":
				w.NextSlot, _ = time.Parse(time.RFC3339, s.ValueDateTime)
			case "average-days":
				if s.ValueDecimal != nil {
					w.AverageDays = *s.ValueDecimal
				}
			case "sample":
				if s.ValueInteger != nil {
					w.Sample = *s.ValueInteger
				}
			case "computed":
				computed, _ = time.Parse(time.RFC3339, s.ValueInstant)
			}
		}
		if w.NextSlot.IsZero() {
			return w, false
		}
		w.Days = max(0, days(now, w.NextSlot))
		if !computed.IsZero() {
			w.AverageDays = math.Max(0, w.AverageDays-float64(days(computed.In(now.Location()), now)))
		}
		return w, true
	}
	return Wait{}, false
}
