// Package adapters connects Signpost to systems that do not speak FHIR R4
// (a hospital PAS over HL7 v2, GP systems over GP Connect). Adapter kinds
// register by name (Register); a deployment enables instances of them in a
// configuration file (serve --adapters FILE, read by Load), and every
// instance goes through one lifecycle: configured and validated when the
// server starts (Build), started once the domain is ready (Set.Start),
// stopped before the store closes (Set.Stop).
//
// An instance acts as its configured principal (Env.Principal): its writes
// take the domain's write path (domain/write) with the same rules and
// authorisation as an API client's, and the audit trail names it. Adapters
// never call the HTTP handlers.
//
// The packages below hold the parts: hl7v2 (the ER7 codec), mllp (framing,
// listener and client), dispatch (outbox delivery) and pas (the hospital
// PAS adapter).
package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
	"github.com/signpost-fhir/signpost/store"
)

// An Adapter is one configured instance of an adapter kind.
type Adapter interface {
	// Start begins the instance's work (listeners, dispatchers) and
	// returns once it has started; the work runs until Stop. A listener
	// that cannot bind fails Start.
	Start(ctx context.Context) error
	// Stop ends the work and waits for it, within ctx.
	Stop(ctx context.Context) error
	// Status says how the instance is doing, for the operator view and
	// /readyz. It must not block on a peer.
	Status(ctx context.Context) Status
}

// Watcher is implemented by an adapter that must hear of changes made
// through Signpost: Watch runs inside the write transaction of every write
// of the types Watched names (after the domain's rules), so that what it
// queues (store.OutboxTx) commits or rolls back with the change.
type Watcher interface {
	Watched() []string
	Watch(ctx context.Context, tx *write.Tx, c *write.Change) error
}

// Operator is implemented by an adapter that offers FHIR operations (an
// upload endpoint, a status view); app adds them to the API.
type Operator interface {
	Operations() []*operation.Operation
}

// Status is how an adapter instance is doing.
type Status struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	State State  `json:"state"`
	// Detail says more, in a sentence ("PAS not answering since 10:02").
	Detail      string    `json:"detail,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// Backlog is what waits in the outbox for the instance's destinations.
	Backlog []store.Backlog `json:"backlog,omitempty"`
}

// State is an adapter instance's condition.
type State string

// The states of an instance. Degraded and down are the instance's own:
// the rest of Signpost keeps serving (readiness is not withdrawn for them).
const (
	StateUp       State = "up"       // working, peers answering
	StateDegraded State = "degraded" // working, but a peer fails or messages wait
	StateDown     State = "down"     // cannot work (a listener failed)
	StateStopped  State = "stopped"  // not started, or stopped
)

// Env is what an instance is given to work with.
type Env struct {
	Name      string          // the instance's name, unique in the file
	Principal *auth.Principal // who the instance acts as
	Writes    *write.Path     // the write path (and, through Store(), reads)
	Logger    *slog.Logger    // tagged with the instance's name
	Now       func() time.Time
	Location  *time.Location // the deployment's timezone (HL7 v2 times without offset)
	BaseURL   string         // the FHIR base, for full URLs in messages
	// Booking and Referral are the domain services an instance acts
	// through beside the write path: a system of record confirms
	// bookings (booking.Service.ConfirmedBy), a refused booking's
	// referral becomes a slot issue (referral.Service.RaiseSlotIssue).
	// nil where the domain is not assembled (the framework's own tests).
	Booking  *booking.Service
	Referral *referral.Service
}

// Context returns ctx acting as the instance's principal: the domain's
// rules and the audit trail see the instance.
func (e Env) Context(ctx context.Context) context.Context {
	return auth.NewContext(ctx, e.Principal)
}

// FromSelf reports whether ctx acts as the instance (Context): a write
// the instance makes itself, which its own rules let through.
func (e Env) FromSelf(ctx context.Context) bool {
	p, ok := auth.FromContext(ctx)
	return ok && p != nil && e.Principal != nil && p.ClientID == e.Principal.ClientID
}

// ConfirmBookings makes the instance the system that confirms bookings
// of services' slots (booking.Service.ConfirmedBy), with asks saying
// which bookings wait for it. It needs the booking and referral domain.
func (e Env) ConfirmBookings(services []string, asks booking.AsksFunc) error {
	if e.Booking == nil || e.Referral == nil {
		return errors.New("needs the booking and referral domain, which this server does not give its adapters")
	}
	for _, s := range services {
		e.Booking.ConfirmedBy(s, e.Name, asks)
	}
	return nil
}

// Factory configures an instance of a kind from its settings (the
// instance's "settings" object, as JSON) and validates them: a bad
// setting gives an error naming it. It starts nothing.
type Factory func(env Env, settings json.RawMessage) (Adapter, error)

var (
	kindsMu sync.Mutex
	kinds   = map[string]Factory{}
)

// Register makes an adapter kind available under name; call it from the
// kind's package init. Registering a name twice panics.
func Register(name string, f Factory) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[name]; dup {
		panic("adapters: kind " + name + " registered twice")
	}
	kinds[name] = f
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	var out []string
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func factory(kind string) (Factory, bool) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	f, ok := kinds[kind]
	return f, ok
}

// Waker is implemented by an adapter whose outbox dispatcher can be told
// to look for messages now: the operator view wakes the instances after a
// dead letter is replayed or discarded, rather than leave the messages
// to the next poll.
type Waker interface {
	Wake()
}

// A Set is the running instances of a deployment. It also keeps the
// outbox and inbox from growing forever (Prune) and offers the operator
// view's operations (operate.go).
type Set struct {
	names     []string // in file order
	instances map[string]Adapter
	kinds     map[string]string
	watchers  map[string][]Watcher // type → the instances watching it
	mu        sync.Mutex
	started   []string

	admin     store.OutboxAdmin // nil when the store keeps no outbox
	now       func() time.Time
	logger    *slog.Logger
	retention time.Duration
	stopPrune func() // stops the pruner; nil when it is not running
}

// PruneEvery is how often a started Set prunes the outbox and inbox.
const PruneEvery = time.Hour

// Build configures every instance of f (each through its kind's Factory)
// and registers, on base.Writes, the RuleName rule that hands the writes
// of watched types to the instances watching them (Watcher), on every type
// whose declared rule order names it. base is the
// Env every instance shares; Build sets its Name, Principal and Logger.
// Every problem of every instance is reported, not just the first.
func Build(f *File, base Env) (*Set, error) {
	s := &Set{instances: map[string]Adapter{}, kinds: map[string]string{}, watchers: map[string][]Watcher{},
		now: base.Now, logger: base.Logger, retention: f.retention()}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if base.Writes != nil {
		s.admin, _ = base.Writes.Store().(store.OutboxAdmin)
	}
	var errs []problem
	for i, in := range f.Adapters {
		mk, ok := factory(in.Kind)
		if !ok {
			path := fmt.Sprintf("adapters[%d].kind", i)
			errs = append(errs, problem{path: path, line: lineOf(f.doc, path),
				msg: fmt.Sprintf("unknown kind %q; the kinds built in are %q", in.Kind, Kinds())})
			continue
		}
		env := base
		env.Name = in.Name
		env.Principal = in.principal()
		if env.Logger == nil {
			env.Logger = slog.New(slog.DiscardHandler)
		}
		env.Logger = env.Logger.With("adapter", in.Name)
		if env.Now == nil {
			env.Now = time.Now
		}
		a, err := mk(env, in.Settings)
		if err != nil {
			errs = append(errs, f.instanceError(i, err)...)
			continue
		}
		s.names = append(s.names, in.Name)
		s.instances[in.Name] = a
		s.kinds[in.Name] = in.Kind
		if w, ok := a.(Watcher); ok {
			for _, typ := range w.Watched() {
				s.watchers[typ] = append(s.watchers[typ], w)
			}
		}
	}
	if len(errs) > 0 {
		return nil, f.fileError(errs)
	}
	if base.Writes == nil {
		return s, nil
	}
	declared := base.Writes.Order().Types
	for typ := range s.watchers {
		if !slices.Contains(declared[typ], RuleName) {
			return nil, fmt.Errorf("adapters watch %s, but the rule order runs no %q rule on it", typ, RuleName)
		}
	}
	for typ, names := range declared {
		if slices.Contains(names, RuleName) {
			base.Writes.AddRule(typ, RuleName, s.watch)
		}
	}
	return s, nil
}

// RuleName is the name the adapters' write rule is registered under; the
// declared rule order (app's rules table) puts it after the domain's rules
// of each type an adapter may watch.
const RuleName = "adapters"

// watch is the write rule: it hands c to every instance watching its type.
func (s *Set) watch(ctx context.Context, tx *write.Tx, c *write.Change) error {
	for _, w := range s.watchers[c.Type] {
		if err := w.Watch(ctx, tx, c); err != nil {
			return err
		}
	}
	return nil
}

// Names lists the instances in file order.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Get returns the instance called name.
func (s *Set) Get(name string) (Adapter, bool) { a, ok := s.instances[name]; return a, ok }

// Operations collects the operator view's operations (operate.go) and the
// FHIR operations the instances offer: app adds them to the API. Instances
// of one kind offer theirs under the same name: when several do, the Set
// offers one operation that hands each invocation to the instance its
// InstanceInput names.
func (s *Set) Operations() []*operation.Operation {
	out := s.operatorOps()
	byName := map[string]map[string]*operation.Operation{} // name → instance → its operation
	for _, n := range s.names {
		o, ok := s.instances[n].(Operator)
		if !ok {
			continue
		}
		for _, op := range o.Operations() {
			if byName[op.Name] == nil {
				byName[op.Name] = map[string]*operation.Operation{}
				out = append(out, op)
			}
			byName[op.Name][n] = op
		}
	}
	for i, op := range out {
		if ops := byName[op.Name]; len(ops) > 1 {
			out[i] = routed(op, ops)
		}
	}
	return out
}

// InstanceInput is the input that names the instance an operation several
// instances offer is invoked on (?adapter=pas-rh8).
const InstanceInput = "adapter"

// routed is first (one of the instances' operations named alike, all
// described by its definition) handing each invocation to the operation
// of the instance named by its InstanceInput.
func routed(first *operation.Operation, ops map[string]*operation.Operation) *operation.Operation {
	r := *first
	r.Roles = nil
	for _, op := range ops {
		if len(op.Roles) == 0 { // one is open to every role: so is the Set's
			r.Roles = nil
			break
		}
		for _, role := range op.Roles {
			if !slices.Contains(r.Roles, role) {
				r.Roles = append(r.Roles, role)
			}
		}
	}
	sort.Strings(r.Roles)
	r.Handle = func(ctx context.Context, req *operation.Request) (*operation.Result, error) {
		name, _ := req.Params.String(InstanceInput)
		op, ok := ops[name]
		if !ok {
			names := make([]string, 0, len(ops))
			for n := range ops {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fhir.Errorf(fhir.Invalid, "value", InstanceInput, "$%s needs the %s input naming one of the adapter instances %q", first.Name, InstanceInput, names)
		}
		return op.Handle(ctx, req)
	}
	return &r
}

// Start starts every instance in file order. When one fails, those already
// started are stopped and the error names the instance. Then, when the
// store keeps an outbox, it prunes it (Prune) and goes on pruning every
// PruneEvery until Stop.
func (s *Set) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.names {
		if err := s.instances[n].Start(ctx); err != nil {
			s.stopLocked(ctx)
			return fmt.Errorf("adapter %s: %w", n, err)
		}
		s.started = append(s.started, n)
	}
	if s.admin != nil && s.stopPrune == nil {
		s.prune(ctx)
		run, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(PruneEvery)
			defer t.Stop()
			for {
				select {
				case <-run.Done():
					return
				case <-t.C:
					s.prune(run)
				}
			}
		}()
		s.stopPrune = func() { cancel(); <-done }
	}
	return nil
}

// Prune deletes from the outbox the messages delivered or discarded, and
// from the inbox the records of messages received, longer ago than the
// configured retention (File.Retention), and returns how many. A started
// Set calls it every PruneEvery; a store without an outbox has nothing to
// prune.
func (s *Set) Prune(ctx context.Context) (int, error) {
	if s.admin == nil {
		return 0, nil
	}
	return s.admin.Prune(ctx, s.now().Add(-s.retention))
}

// prune is Prune, logged.
func (s *Set) prune(ctx context.Context) {
	n, err := s.Prune(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		s.logger.Warn("adapters: pruning the outbox and inbox", "error", err)
	case n > 0:
		s.logger.Info("adapters: pruned the outbox and inbox", "deleted", n, "retention", s.retention.String())
	}
}

// Stop stops the pruner and the started instances, in reverse order, and
// waits for them.
func (s *Set) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopPrune != nil {
		s.stopPrune()
		s.stopPrune = nil
	}
	return s.stopLocked(ctx)
}

func (s *Set) stopLocked(ctx context.Context) error {
	var errs []error
	for i := len(s.started) - 1; i >= 0; i-- {
		n := s.started[i]
		if err := s.instances[n].Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("adapter %s: %w", n, err))
		}
	}
	s.started = nil
	return errors.Join(errs...)
}

// Status returns every instance's status, in file order, with its name
// and kind filled in.
func (s *Set) Status(ctx context.Context) []Status {
	out := make([]Status, 0, len(s.names))
	for _, n := range s.names {
		st := s.instances[n].Status(ctx)
		st.Name, st.Kind = n, s.kinds[n]
		out = append(out, st)
	}
	return out
}
