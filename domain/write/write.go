// Package write is the one path every resource write takes, whichever way it
// arrives (POST, PUT, PATCH, DELETE, conditional, batch, transaction, an
// operation): inside a store transaction it runs the domain Rules of the
// resource type, writes id and meta into the client's JSON, extracts the
// search index and stores the new version.
//
// Domain packages (booking, referral, directory) register Rules for the
// types whose consistency they own, and use a *Tx to write the other
// resources their rules touch, so those writes follow the same path.
package write

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// Indexer extracts search index entries from a resource's JSON.
type Indexer interface {
	Extract(resourceType string, json []byte) ([]search.Entry, error)
}

// Change is a proposed write as a Rule sees it.
type Change struct {
	Type, ID string
	Old      *fhir.Resource // the current version; nil when there is none or it is deleted
	New      *fhir.Object   // the proposed resource; nil for a delete. Rules may patch server-owned elements.
	By       string         // PutOptions.By: the domain package whose rules make the write; "" for a client's
}

// PutOptions are what the caller of one write knows about it that the
// Rules act on, passed explicitly rather than as context values.
type PutOptions struct {
	// By names the domain package whose own rules make the write (e.g.
	// "booking" for a slot its appointment claims): that package's rules
	// let through what they guard against from clients. It applies to
	// this write only, not to the writes its rules make in turn.
	By string
}

// Rule is domain logic that runs in the write transaction of every write of
// a resource type. It may patch c.New, read and write other resources
// through tx, or refuse the write by returning an error.
type Rule func(ctx context.Context, tx *Tx, c *Change) error

// Path writes resources into a store.
type Path struct {
	store   store.Store
	indexer Indexer
	order   Order                         // which rules run, in which order, per type
	named   map[string]map[string]Rule    // type → rule name → rule, as registered
	rules   map[string][]Rule             // type → the registered rules in declared order
	prepare map[string]map[string]Prepare // type → step name → Prepare step, as registered
	visible Visibility                    // what the caller may read (ReadAs); nil: everything
	now     func() time.Time
	// prechecked lists the types whose writes may be prechecked
	// (Precheck, TxOptions.Precheck).
	prechecked []string
}

// Prepare fills server-owned elements of a proposed resource before it is
// validated (e.g. an Appointment's start and end from its slots, which the
// validator requires), reading the store's current state. It reports
// whether it changed obj. The Rules re-check in the write transaction
// whatever Prepare derived, since the state may change in between.
type Prepare func(ctx context.Context, r store.Reader, obj *fhir.Object) (changed bool, err error)

// New returns a Path over st.
func New(st store.Store, ix Indexer) *Path {
	return &Path{store: st, indexer: ix, named: map[string]map[string]Rule{}, rules: map[string][]Rule{},
		prepare: map[string]map[string]Prepare{}, now: time.Now}
}

// Order declares which Rules run on the writes of each resource type and in
// which order, by the names they are registered under (AddRule). The rules
// listed under Every run first on every type's writes, then the type's
// own. The order is declared in one place (app's rule table) rather than
// implied by which package registered first; a declared rule that is not
// registered (authorisation on an open server) is skipped.
type Order struct {
	Every []string            // rules that run first, on every type's writes
	Types map[string][]string // each type's own rules, in the order they run
	// Prepare lists each type's Prepare steps (AddPrepare), in the order
	// they run.
	Prepare map[string][]string
}

// names returns the rules o runs on writes of typ, in order.
func (o Order) names(typ string) []string {
	return append(slices.Clip(o.Every), o.Types[typ]...)
}

// SetOrder declares the rule order (Order). Call it during start-up only,
// before AddRule; it panics when a rule already registered is not in o.
func (r *Path) SetOrder(o Order) {
	r.order = o
	for typ := range r.named {
		r.arrange(typ)
	}
}

// Order returns a copy of the declared rule order.
func (r *Path) Order() Order {
	o := Order{Every: slices.Clone(r.order.Every), Types: map[string][]string{}, Prepare: map[string][]string{}}
	for typ, names := range r.order.Types {
		o.Types[typ] = slices.Clone(names)
	}
	for typ, names := range r.order.Prepare {
		o.Prepare[typ] = slices.Clone(names)
	}
	return o
}

// RuleOrder returns the names of the registered rules that run on writes
// of resourceType, in the order they run.
func (r *Path) RuleOrder(resourceType string) []string {
	var out []string
	for _, name := range r.order.names(resourceType) {
		if _, ok := r.named[resourceType][name]; ok {
			out = append(out, name)
		}
	}
	return out
}

// AddRule registers rule under name for writes of resourceType; it runs
// where the declared Order (SetOrder) puts name. Call it during start-up
// only. Registering a rule the Order does not declare for resourceType, or
// a name twice, is a programming error: AddRule panics, so that no rule
// runs in an order nobody declared.
func (r *Path) AddRule(resourceType, name string, rule Rule) {
	if !slices.Contains(r.order.names(resourceType), name) {
		panic(fmt.Sprintf("write: rule %q on %s is not in the declared rule order", name, resourceType))
	}
	if r.named[resourceType] == nil {
		r.named[resourceType] = map[string]Rule{}
	}
	if _, dup := r.named[resourceType][name]; dup {
		panic(fmt.Sprintf("write: rule %q on %s registered twice", name, resourceType))
	}
	r.named[resourceType][name] = rule
	r.arrange(resourceType)
}

// arrange lists the registered rules of typ in declared order.
func (r *Path) arrange(typ string) {
	names := r.order.names(typ)
	for name := range r.named[typ] {
		if !slices.Contains(names, name) {
			panic(fmt.Sprintf("write: rule %q on %s is not in the declared rule order", name, typ))
		}
	}
	var rules []Rule
	for _, name := range names {
		if rule, ok := r.named[typ][name]; ok {
			rules = append(rules, rule)
		}
	}
	r.rules[typ] = rules
}

// AddPrepare registers p under name for resources of resourceType received
// from clients; it runs where the declared Order's Prepare puts name. Call
// it during start-up only; like AddRule, it panics for a step the Order
// does not declare, or a name registered twice.
func (r *Path) AddPrepare(resourceType, name string, p Prepare) {
	if !slices.Contains(r.order.Prepare[resourceType], name) {
		panic(fmt.Sprintf("write: prepare step %q on %s is not in the declared order", name, resourceType))
	}
	if r.prepare[resourceType] == nil {
		r.prepare[resourceType] = map[string]Prepare{}
	}
	if _, dup := r.prepare[resourceType][name]; dup {
		panic(fmt.Sprintf("write: prepare step %q on %s registered twice", name, resourceType))
	}
	r.prepare[resourceType][name] = p
}

// PrepareOrder returns the names of the registered Prepare steps of
// resourceType, in the order they run.
func (r *Path) PrepareOrder(resourceType string) []string {
	var out []string
	for _, name := range r.order.Prepare[resourceType] {
		if _, ok := r.prepare[resourceType][name]; ok {
			out = append(out, name)
		}
	}
	return out
}

// Prepare runs the Prepare steps of resourceType over obj, in declared
// order. The API calls it on every resource a client sends, before
// validation. It reports whether obj changed.
func (r *Path) Prepare(ctx context.Context, resourceType string, obj *fhir.Object) (bool, error) {
	changed := false
	for _, name := range r.order.Prepare[resourceType] {
		p, ok := r.prepare[resourceType][name]
		if !ok {
			continue
		}
		c, err := p(ctx, r.store, obj)
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	return changed, nil
}

// Store returns the underlying store, for reads.
func (r *Path) Store() store.Store { return r.store }

// Update runs fn in one atomic store transaction.
func (r *Path) Update(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	return r.UpdateWith(ctx, TxOptions{}, fn)
}

// TxOptions are what the caller of a transaction knows about it that the
// Rules act on, passed explicitly rather than as context values.
type TxOptions struct {
	// Claim is the unused Idempotency-Key of the request the transaction
	// serves (nil for none): the rule of the resource a REST write
	// produces remembers its answer under it (Tx.Remember).
	Claim *Claim
	// Entries is how many client requests the transaction carries: a
	// transaction Bundle's entries (0 or 1: one request). A rule whose
	// outcome is settled only after the commit (Tx.AfterCommit) cannot
	// undo a whole Bundle and refuses to run in one of several entries.
	Entries int
	// DeferDerived: the writes do not recompute the derived values that
	// depend on them (the directory's waiting times); the caller
	// refreshes them itself once the writes are made (bulk loads).
	DeferDerived bool
	// Precheck: run fn first on the committed state, outside the store's
	// writer, and answer with the refusal a rule settles there
	// (Path.Precheck, Tx.Refuse) without a transaction. For a client's
	// single write whose refusals are common (a booking of a slot taken);
	// fn runs once more than it would without it.
	Precheck bool
}

// UpdateWith is Update with options for the rules of its writes. Once the
// transaction commits, the work its rules deferred (Tx.AfterCommit) runs in
// order; the first error of that work is returned, the transaction staying
// committed.
func (r *Path) UpdateWith(ctx context.Context, opts TxOptions, fn func(ctx context.Context, tx *Tx) error) error {
	var ids *idSeq
	if opts.Precheck && len(r.prechecked) > 0 {
		ids = &idSeq{}
		if err, settled := r.precheck(ctx, opts, ids, fn); settled {
			return err
		}
	}
	var last *Tx // the attempt that committed: the store may run fn again after a transient error
	err := r.store.Update(ctx, func(ctx context.Context, stx store.Tx) error {
		last = r.newTx(stx, opts, ids)
		if err := fn(ctx, last); err != nil {
			return err
		}
		for i := 0; i < len(last.before); i++ { // a step may add another
			if err := last.before[i](ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if last != nil {
		for _, f := range last.ended {
			f(err == nil)
		}
	}
	if err != nil || last == nil {
		return err
	}
	for _, f := range last.after {
		if err := f(ctx); err != nil {
			return err
		}
	}
	return nil
}

// newTx returns an attempt at a transaction over stx; ids, when not nil,
// are the ids of the resources the attempts create (Tx.Create).
func (r *Path) newTx(stx store.Tx, opts TxOptions, ids *idSeq) *Tx {
	return &Tx{Tx: stx, repo: r, now: r.now().UTC().Truncate(time.Millisecond), opts: opts, ids: ids}
}

// AfterCommit defers f until the transaction has committed: work a rule
// starts that must not run inside the transaction, because it waits on
// another system or tells one (waking an outbox dispatcher, asking a PAS
// to confirm a booking). f runs in the caller's goroutine, after the
// commit and before Update returns, in the order the calls were made; it
// does not run when the transaction rolls back. Its error is the caller's
// answer, the transaction staying committed: f makes any compensating
// writes itself.
func (t *Tx) AfterCommit(f func(ctx context.Context) error) { t.after = append(t.after, f) }

// AfterEnd defers f until the transaction has ended, and tells it whether
// it committed. The store may run a transaction's function more than once
// (a batch retried with savepoints): f runs once, for the attempt that
// ended it, in the caller's goroutine, before the AfterCommit work and
// before Update returns. It is for observing outcomes (metrics counting a
// booking, or a refusal, once): f must be quick and cannot fail the write.
func (t *Tx) AfterEnd(f func(committed bool)) { t.ended = append(t.ended, f) }

// Supersede records, from a transaction's AfterCommit work, that res is
// a newer version of a resource the transaction wrote, made by that work
// in a later transaction (a booking another system confirmed): the
// caller answers with it instead (Latest), so that a client is told the
// outcome rather than the state the transaction left while it waited.
func (t *Tx) Supersede(res *fhir.Resource) {
	if t.latest == nil {
		t.latest = map[string]*fhir.Resource{}
	}
	t.latest[res.Type+"/"+res.ID] = res
}

// Latest returns the version of res to answer with: the one the
// transaction's AfterCommit work superseded it with (Supersede), else
// res. A nil res, or one of a nil Tx, is returned as it is.
func (t *Tx) Latest(res *fhir.Resource) *fhir.Resource {
	if t == nil || res == nil {
		return res
	}
	if l, ok := t.latest[res.Type+"/"+res.ID]; ok && l.Version > res.Version {
		return l
	}
	return res
}

// BeforeCommit defers f until the transaction's work is done, just before
// it commits: f runs inside the transaction, after every write (so after
// every rule), in the order the calls were made, and its error rolls the
// transaction back. A rule uses it for what depends on the transaction as
// a whole, such as an adapter's messages (a cancellation and a booking
// in one transaction are one reschedule).
func (t *Tx) BeforeCommit(f func(ctx context.Context) error) { t.before = append(t.before, f) }

// Local returns the transaction's value under key, made by mk on first
// use: state a rule keeps across the writes of one transaction (with
// BeforeCommit, to act on them together). key is compared as a map key.
func (t *Tx) Local(key any, mk func() any) any {
	if v, ok := t.local[key]; ok {
		return v
	}
	if t.local == nil {
		t.local = map[any]any{}
	}
	v := mk()
	t.local[key] = v
	return v
}

// Options returns the options the transaction was started with.
func (t *Tx) Options() TxOptions { return t.opts }

// Claim returns the Idempotency-Key claim of the request the transaction
// serves (TxOptions.Claim); nil for none.
func (t *Tx) Claim() *Claim { return t.opts.Claim }

// Tx is a write transaction: the store's, plus the write path.
type Tx struct {
	store.Tx
	repo    *Path
	now     time.Time                         // one lastUpdated for every write of the transaction
	created map[string]bool                   // "Type/id" of the resources this transaction created
	opts    TxOptions                         // what its caller said about it
	after   []func(ctx context.Context) error // AfterCommit's work, in order
	latest  map[string]*fhir.Resource         // "Type/id" → the version AfterCommit's work superseded it with
	before  []func(ctx context.Context) error // BeforeCommit's work, in order
	ended   []func(committed bool)            // AfterEnd's observers, in order
	local   map[any]any                       // Local's values
	ids     *idSeq                            // the ids Create gives, shared by the attempts; nil: fresh ones
	nid     int                               // how many of ids this attempt has given
	probe   bool                              // a precheck (Probing)
	refusal error                             // the refusal a rule settled in a precheck (Refuse)
}

// Now returns the transaction's timestamp.
func (t *Tx) Now() time.Time { return t.now }

// NewID returns a new server-assigned logical id: a version 7 UUID, whose
// text sorts by creation time, so that the ids of resources created one
// after another are neighbours in the store's indexes by id (new rows go
// to the same few pages instead of one random page each).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil { // the random source failed: uuid.NewString panics then
		return uuid.NewString()
	}
	return id.String()
}

// Create writes obj as a new resource with a server-assigned id.
func (t *Tx) Create(ctx context.Context, typ string, obj *fhir.Object) (*fhir.Resource, error) {
	res, _, err := t.Put(ctx, typ, t.newID(), obj, 0)
	return res, err
}

// Put writes obj as the next version of typ/id, creating it when it does not
// exist (or was deleted). ifMatch, when not 0, is the version the client
// expects to replace: any other current version fails with
// fhir.PreconditionFailed. It reports whether the resource was created.
func (t *Tx) Put(ctx context.Context, typ, id string, obj *fhir.Object, ifMatch int64) (*fhir.Resource, bool, error) {
	return t.PutWith(ctx, typ, id, obj, ifMatch, PutOptions{})
}

// PutWith is Put with options for the rules of the write.
func (t *Tx) PutWith(ctx context.Context, typ, id string, obj *fhir.Object, ifMatch int64, opts PutOptions) (*fhir.Resource, bool, error) {
	if t.probe && !slices.Contains(t.repo.prechecked, typ) {
		return nil, false, errPrecheckDone
	}
	cur, err := t.Read(ctx, typ, id)
	var version int64
	switch fhir.KindOf(err) {
	case fhir.NotFound:
		cur = nil
	case fhir.Gone:
		version, cur = cur.Version, nil
	default:
		if err != nil {
			return nil, false, err
		}
		version = cur.Version
	}
	// The rules patch a copy: the store may run a transaction's function
	// again (store.Store.Update), and each attempt must start from what
	// the caller asked for, not from the last attempt's patches.
	obj = obj.Clone()
	c := &Change{Type: typ, ID: id, Old: cur, New: obj, By: opts.By}
	if ifMatch != 0 && ifMatch != version {
		return nil, false, t.mismatch(ctx, c, version, ifMatch)
	}
	if err := t.runRules(ctx, c); err != nil {
		return nil, false, err
	}
	if t.probe { // every rule passed: the transaction writes it
		return nil, false, errPrecheckDone
	}
	body, err := fhir.Stamp(obj, id, version+1, t.now)
	if err != nil {
		return nil, false, err
	}
	index, err := t.repo.indexer.Extract(typ, body)
	if err != nil {
		return nil, false, err
	}
	res := &fhir.Resource{Type: typ, ID: id, Version: version + 1, LastUpdated: t.now, JSON: body}
	if err := t.Tx.Put(ctx, &store.Write{Resource: res, Index: index}); err != nil {
		return nil, false, err
	}
	if cur == nil {
		if t.created == nil {
			t.created = map[string]bool{}
		}
		t.created[typ+"/"+id] = true
	}
	return res, cur == nil, nil
}

// Delete records a delete of typ/id. Deleting what does not exist, or was
// already deleted, succeeds and returns nil.
func (t *Tx) Delete(ctx context.Context, typ, id string, ifMatch int64) (*fhir.Resource, error) {
	if t.probe {
		return nil, errPrecheckDone
	}
	cur, err := t.Read(ctx, typ, id)
	switch fhir.KindOf(err) {
	case fhir.NotFound, fhir.Gone:
		if ifMatch != 0 {
			return nil, fhir.Errorf(fhir.PreconditionFailed, "conflict", "", "%s/%s does not exist (If-Match)", typ, id)
		}
		return nil, nil
	default:
		if err != nil {
			return nil, err
		}
	}
	c := &Change{Type: typ, ID: id, Old: cur}
	if ifMatch != 0 && ifMatch != cur.Version {
		return nil, t.mismatch(ctx, c, cur.Version, ifMatch)
	}
	if err := t.runRules(ctx, c); err != nil {
		return nil, err
	}
	res := &fhir.Resource{Type: typ, ID: id, Version: cur.Version + 1, LastUpdated: t.now, Deleted: true}
	return res, t.Tx.Put(ctx, &store.Write{Resource: res})
}

// Derived implements store.Deriver through the store's transaction: the
// derived values of typ's resources ids (none when the store keeps none).
func (t *Tx) Derived(ctx context.Context, typ string, ids []string) (map[string][]store.DerivedValue, error) {
	if d, ok := t.Tx.(store.Deriver); ok {
		return d.Derived(ctx, typ, ids)
	}
	if d, ok := t.repo.store.(store.Deriver); ok && t.probe { // a precheck reads the committed state
		return d.Derived(ctx, typ, ids)
	}
	return nil, nil
}

// CanDerive reports whether the store keeps derived values
// (store.DeriverTx).
func (t *Tx) CanDerive() bool {
	_, ok := t.Tx.(store.DeriverTx)
	return ok
}

// PutDerived sets a derived value of typ/id (store.DeriverTx): a value the
// server derives from other resources, kept beside the resource. It is
// not a write of the resource: no Rule runs, no version is made and
// nothing is audited, so a caller must only ever derive it from what the
// transaction wrote. It fails when the store keeps no derived values
// (CanDerive).
func (t *Tx) PutDerived(ctx context.Context, typ, id string, v store.DerivedValue) error {
	d, ok := t.Tx.(store.DeriverTx)
	if !ok {
		return fmt.Errorf("repo: the store cannot keep derived values (%s of %s/%s)", v.Name, typ, id)
	}
	return d.PutDerived(ctx, typ, id, v)
}

// mismatch is the answer to the change c with an If-Match that names
// another version than the current one: 412 with the current version. For
// a resource that exists but the caller may not read, the rules judge the
// change first, so that the caller gets the answer it would get without
// If-Match (the refusal) and learns no version of it.
func (t *Tx) mismatch(ctx context.Context, c *Change, version, ifMatch int64) error {
	if c.Old != nil {
		if _, err := t.repo.ReadAs(ctx, t, c.Type, c.ID); fhir.KindOf(err) == fhir.NotFound {
			if err := t.runRules(ctx, c); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	return fhir.Errorf(fhir.PreconditionFailed, "conflict", "",
		"%s/%s is at version %d, not %d (If-Match)", c.Type, c.ID, version, ifMatch)
}

func (t *Tx) runRules(ctx context.Context, c *Change) error {
	for _, rule := range t.repo.rules[c.Type] {
		if err := rule(ctx, t, c); err != nil {
			return err
		}
	}
	return nil
}

type serverKey struct{}

// AsServer marks ctx as the server's own work rather than a client's:
// background jobs (releasing expired holds), record keeping (audit,
// provenance) and loading demo data. Authorisation rules let such writes
// through; they are still audited as the server's.
//
// It is a context value, not a write option, because it crosses layers:
// it is who is acting, like the principal beside it, set where the work
// starts and read by the access layer (api) and by reads (ReadAs) deep
// below, through code that never sees it.
func AsServer(ctx context.Context) context.Context {
	return context.WithValue(ctx, serverKey{}, true)
}

// IsServer reports whether ctx carries the server's own work.
func IsServer(ctx context.Context) bool { v, _ := ctx.Value(serverKey{}).(bool); return v }
