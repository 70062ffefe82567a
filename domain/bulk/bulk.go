// Package bulk is the domain's bulk load path: resources written many to a
// transaction, for loading directory and schedule data that another system
// publishes (signpost import). It is the documented alternative to
// write.Path for data in bulk, not a way around it: every resource is
// validated against the StructureDefinitions (unless the caller turns it
// off), gets its id and meta as write.Path would give them (a resource
// that exists becomes its next version), is indexed with the same search
// registry, and a batch is one store transaction, written whole or not at
// all.
//
// It runs none of the write Rules (app.RuleOrder), because each of them
// either has no subject in a bulk load or costs a read per resource that
// would make a million-slot load take hours instead of a minute:
//
//   - access (api): there is no caller. A bulk load is the operator's own
//     work on the data directory, as write.AsServer work is, and nothing
//     is audited.
//   - booking.clinical, booking.appointment, booking.slot,
//     booking.schedule, booking.response: appointments and slots are
//     loaded as given; an imported booked appointment claims no slot (the
//     publisher's slots carry their own status), and slots are not held to
//     their schedule's planning horizon.
//   - directory.service, directory.slot, directory.schedule: waiting times
//     are not recomputed per write (as write.TxOptions.DeferDerived); they
//     are derived when a service's slots or schedules are next written
//     through write.Path, or by directory.Directory.Refresh.
//   - referral.*: referral workflow (UBRN, Task state, shortlists,
//     booking guidance, the Patient NHS-number duplicate check) is not for
//     bulk data: resources of those types are loaded as given.
//
// So bulk loading is for data whose consistency its publisher owns;
// anything that needs the rules goes through write.Path (the REST API,
// transaction Bundles, operations).
package bulk

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Validator checks a resource's JSON against the FHIR definitions
// (validation.Validator).
type Validator interface {
	Validate(raw []byte) []fhir.Issue
}

// Registry is what a bulk load needs of the search registry
// (search.Registry): which types can be stored, and their index values.
type Registry interface {
	Lookup(resourceType, name string) *search.Param
	Extract(resourceType string, json []byte) ([]search.Entry, error)
}

// Loader loads resources in bulk into the store of a write path. Prepare
// may run on many goroutines at once; Write runs one batch at a time.
type Loader struct {
	st  store.Store
	reg Registry
	val Validator // nil: no validation
	now time.Time // every resource's lastUpdated
}

// New returns a Loader into rp's store, indexing with reg and validating
// with val (nil skips validation). It puts the store in its bulk-load
// setting, if it has one, until Close.
func New(rp *write.Path, reg Registry, val Validator) *Loader {
	st := rp.Store()
	if b, ok := st.(store.BulkLoader); ok {
		b.SetBulkLoad(true)
	}
	return &Loader{st: st, reg: reg, val: val, now: time.Now().UTC().Truncate(time.Millisecond)}
}

// Close takes the store out of its bulk-load setting.
func (l *Loader) Close() {
	if b, ok := l.st.(store.BulkLoader); ok {
		b.SetBulkLoad(false)
	}
}

// Line is one resource's JSON and where it came from, for errors.
type Line struct {
	No   int    // line number in Source
	Data []byte // the resource, without surrounding space
}

// Batch is a prepared batch: validated, stamped and indexed, ready to be
// written in one transaction.
type Batch struct {
	writes []*store.Write
}

// Len returns the number of resources in b.
func (b *Batch) Len() int { return len(b.writes) }

// Prepare validates, stamps and indexes the resources of lines, read from
// source. A resource without an id gets one; a resource that exists
// already becomes its next version (as stored when Prepare runs: batches
// that repeat a resource must be prepared in order).
func (l *Loader) Prepare(ctx context.Context, source string, lines []Line) (*Batch, error) {
	ws := make([]*store.Write, 0, len(lines))
	ids := map[string][]string{}
	objs := make([]*fhir.Object, len(lines))
	fast := make([]int, len(lines)) // where meta goes in the line; 0: use objs
	for i, ln := range lines {
		where := fmt.Sprintf("%s:%d", source, ln.No)
		typ, id, at := fastHead(ln.Data)
		if at > 0 && fhir.ValidID(id) && l.reg.Lookup(typ, "_id") != nil {
			if err := l.validate(where, typ, ln.Data); err != nil {
				return nil, err
			}
			fast[i] = at
			ids[typ] = append(ids[typ], id)
			ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: l.now}})
			continue
		}
		obj, err := fhir.ParseObject(ln.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		typ, _ = obj.String("resourceType")
		if typ == "" || l.reg.Lookup(typ, "_id") == nil {
			return nil, fmt.Errorf("%s: resourceType %q cannot be stored", where, typ)
		}
		if err := l.validate(where, typ, ln.Data); err != nil {
			return nil, err
		}
		id, _ = obj.String("id")
		if id == "" {
			id = write.NewID()
		} else if !fhir.ValidID(id) {
			return nil, fmt.Errorf("%s: %q is not a valid id", where, id)
		}
		objs[i] = obj
		ids[typ] = append(ids[typ], id)
		ws = append(ws, &store.Write{Resource: &fhir.Resource{Type: typ, ID: id, Version: 1, LastUpdated: l.now}})
	}
	// Resources already stored become their next version.
	current := map[string]int64{}
	for typ, list := range ids {
		page, err := l.st.Search(ctx, &search.Query{Type: typ, Filter: []search.Expr{search.IDIn{IDs: list}}, Count: len(list)})
		if err != nil {
			return nil, err
		}
		for _, r := range page.Resources {
			current[r.Reference()] = r.Version
		}
	}
	for i, w := range ws {
		res := w.Resource
		res.Version = current[res.Reference()] + 1
		current[res.Reference()] = res.Version // a resource repeated in the batch
		var body []byte
		var err error
		if at := fast[i]; at > 0 {
			line := lines[i].Data
			body = make([]byte, 0, len(line)+80)
			body = append(body, line[:at]...)
			body = fmt.Appendf(body, `,"meta":{"versionId":"%d","lastUpdated":"%s"}`, res.Version, res.LastUpdated.Format(fhir.InstantFormat))
			body = append(body, line[at:]...)
		} else if body, err = fhir.Stamp(objs[i], res.ID, res.Version, res.LastUpdated); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, lines[i].No, err)
		}
		res.JSON = body
		if w.Index, err = l.reg.Extract(res.Type, body); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, lines[i].No, err)
		}
	}
	return &Batch{writes: ws}, nil
}

// validate reports the errors the validator finds in a resource, if
// validation is on.
func (l *Loader) validate(where, typ string, data []byte) error {
	if l.val == nil {
		return nil
	}
	var problems []string
	for _, is := range l.val.Validate(data) {
		if is.Severity == "error" || is.Severity == "fatal" {
			problems = append(problems, strings.Join(is.Expression, ",")+": "+is.Diagnostics)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s is not valid: %s", where, typ, strings.Join(problems, "; "))
	}
	return nil
}

// Write stores b in one transaction, through the store's bulk path when it
// has one.
func (l *Loader) Write(ctx context.Context, b *Batch) error {
	return l.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return store.PutAll(ctx, tx, b.writes)
	})
}
