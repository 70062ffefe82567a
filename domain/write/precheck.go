package write

import (
	"context"
	"errors"
	"slices"

	"github.com/signpost-fhir/signpost/store"
)

// Prechecks: a write that its rules are bound to refuse from the committed
// state (a booking of a slot already taken) need not wait for the store's
// single writer to be told so. With TxOptions.Precheck, UpdateWith first
// runs the transaction's function on the committed state, outside any
// store transaction (a precheck Tx: Probing), with the same rules in the
// same order, authorisation first. When a rule refuses the write with an
// answer it marks as settled by that state (Tx.Refuse), that refusal is
// the answer and no store transaction is opened. Otherwise (every check
// the precheck could make passed, a rule refused for another reason, or
// the function wrote something whose type is not prechecked) the precheck
// is forgotten and the transaction runs as it always does, checking
// everything again: a stale "free" is harmless, the transaction decides.
//
// A precheck writes nothing and has no effect on the request except the
// answer it settles: its AfterCommit and BeforeCommit work never runs, its
// AfterEnd observers run (not committed) only when it settles the answer,
// and the resources it would create get the ids the transaction then
// gives them (Tx.Create), so that what a rule notes about the write is
// the same in both. Rules with effects of their own outside the
// transaction (the access layer's audit record) skip them while Probing.

// errPrecheckDone ends a precheck that cannot settle the write: the
// transaction decides.
var errPrecheckDone = errors.New("write: the precheck cannot decide; the transaction does")

// Precheck lets writes of resourceType be prechecked (TxOptions.Precheck):
// their rules run on the committed state before the transaction when its
// caller asks for it. A precheck ends, undecided, at the first write of a
// type not registered. Call it during start-up only.
func (r *Path) Precheck(resourceType string) {
	if !slices.Contains(r.prechecked, resourceType) {
		r.prechecked = append(r.prechecked, resourceType)
	}
}

// Probing reports whether t is a precheck: a run of the rules on the
// committed state that writes nothing (see Path.Precheck). A rule that
// has effects outside the transaction's writes skips them while Probing;
// a rule that has decided all it can decide from the committed state may
// end the precheck (EndPrecheck).
func (t *Tx) Probing() bool { return t.probe }

// EndPrecheck returns the error that ends a precheck undecided, so that
// the transaction runs (nil outside a precheck). A rule returns it once
// the checks a precheck is for have passed, to save the rest of its work.
func (t *Tx) EndPrecheck() error {
	if !t.probe {
		return nil
	}
	return errPrecheckDone
}

// Refuse returns err, the refusal of a write, and marks it as settled by
// the state the rule read: in a precheck, when the function returns it,
// it is the answer, without a transaction. A rule uses it for a refusal
// that follows from the request and the state it read alone (a slot that
// is not free), so that the precheck answers as the transaction would
// have answered at that moment; outside a precheck it changes nothing.
func (t *Tx) Refuse(err error) error {
	if t.probe {
		t.refusal = err
	}
	return err
}

// precheck runs fn on the committed state (a precheck Tx) and reports
// the answer when a rule settled it (Refuse): the refusal, and true.
func (r *Path) precheck(ctx context.Context, opts TxOptions, ids *idSeq, fn func(ctx context.Context, tx *Tx) error) (error, bool) {
	t := r.newTx(probeTx{r.store}, opts, ids)
	t.probe = true
	err := fn(ctx, t)
	if err == nil || t.refusal == nil || !errors.Is(err, t.refusal) {
		return nil, false
	}
	for _, f := range t.ended {
		f(false)
	}
	return err, true
}

// probeTx is the store.Tx of a precheck: reads of the committed state; a
// write ends the precheck.
type probeTx struct{ store.Reader }

func (probeTx) Put(context.Context, *store.Write) error { return errPrecheckDone }

// idSeq is the ids Tx.Create gives, in order, shared by the attempts of
// one UpdateWith (a precheck, the transaction, its retries), so that each
// attempt's nth new resource has the same id.
type idSeq struct{ ids []string }

// newID returns the id of the transaction's next created resource.
func (t *Tx) newID() string {
	if t.ids == nil {
		return NewID()
	}
	if t.nid == len(t.ids.ids) {
		t.ids.ids = append(t.ids.ids, NewID())
	}
	t.nid++
	return t.ids.ids[t.nid-1]
}
