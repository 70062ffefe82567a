package write_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// memStore is a store of committed resources: reads see them, and Update
// runs its function on a transaction that sees them and its own writes,
// applied when the function succeeds. It counts the Updates it ran, the
// transactions a single writer would have run.
type memStore struct {
	store.Store
	res     map[string]*fhir.Resource
	updates int
}

func (s *memStore) Read(_ context.Context, typ, id string) (*fhir.Resource, error) {
	if r, ok := s.res[typ+"/"+id]; ok {
		return r, nil
	}
	return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
}

func (s *memStore) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	s.updates++
	tx := &memTx{s: s, put: map[string]*fhir.Resource{}}
	if err := fn(ctx, tx); err != nil {
		return err
	}
	for k, r := range tx.put {
		s.res[k] = r
	}
	return nil
}

type memTx struct {
	store.Tx
	s   *memStore
	put map[string]*fhir.Resource
}

func (t *memTx) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	if r, ok := t.put[typ+"/"+id]; ok {
		return r, nil
	}
	return t.s.Read(ctx, typ, id)
}

func (t *memTx) Put(_ context.Context, w *store.Write) error {
	t.put[w.Resource.Type+"/"+w.Resource.ID] = w.Resource
	return nil
}

// TestPrecheck: with TxOptions.Precheck, a write that a rule refuses from
// the committed state (Tx.Refuse) is answered with that refusal without a
// store transaction, the rules having run in their order (the first rule
// standing for authorisation); anything else runs the transaction, which
// decides. The precheck writes nothing, runs no AfterCommit or
// BeforeCommit work, tells AfterEnd observers once (not committed) only
// when it answers, and its Create gives the ids the transaction gives.
func TestPrecheck(t *testing.T) {
	taken := fhir.Errorf(fhir.Conflict, "conflict", "Appointment.slot[0]", "Slot/s1 is not available: it is busy")
	for _, c := range []struct {
		name     string
		precheck bool
		slot     string // the committed slot's status
		denied   bool   // the first rule (authorisation) refuses
		swallow  bool   // the function replaces the rule's error with its own
		other    string // the function first writes a resource of this type
		want     error  // the answer; nil for a write made
		updates  int    // store transactions run
		runs     []string
		ended    []bool // what the AfterEnd observers are told
	}{
		{name: "refused by the precheck", precheck: true, slot: "busy", want: taken, updates: 0,
			runs: []string{"access probe", "slot probe"}, ended: []bool{false}},
		{name: "free: the transaction books", precheck: true, slot: "free", updates: 1,
			runs: []string{"access probe", "slot probe", "access", "slot"}, ended: []bool{true}},
		{name: "without precheck", precheck: false, slot: "busy", want: taken, updates: 1,
			runs: []string{"access", "slot"}, ended: []bool{false}},
		{name: "authorisation refuses first: the transaction answers", precheck: true, slot: "busy", denied: true,
			want: errDenied, updates: 1, runs: []string{"access probe", "access"}},
		{name: "a refusal the function replaces settles nothing", precheck: true, slot: "busy", swallow: true,
			want: errSwallowed, updates: 1, runs: []string{"access probe", "slot probe", "access", "slot"}, ended: []bool{false}},
		{name: "a type not prechecked ends the precheck", precheck: true, slot: "busy", other: "Patient",
			want: taken, updates: 1, runs: []string{"access", "access", "slot"}, ended: []bool{false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &memStore{res: map[string]*fhir.Resource{
				"Slot/s1": {Type: "Slot", ID: "s1", Version: 1, JSON: []byte(`{"resourceType":"Slot","id":"s1","status":"` + c.slot + `"}`)}}}
			rp := write.New(st, noIndex{})
			rp.SetOrder(write.Order{Every: []string{"access"}, Types: map[string][]string{"Appointment": {"slot"}}})
			var runs, ids []string
			var ended []bool // what the AfterEnd observers were told
			run := func(tx *write.Tx, name string) {
				if tx.Probing() {
					name += " probe"
				}
				runs = append(runs, name)
			}
			rp.AddRule("Appointment", "access", func(_ context.Context, tx *write.Tx, ch *write.Change) error {
				run(tx, "access")
				if c.denied {
					return errDenied
				}
				return nil
			})
			rp.AddRule("Patient", "access", func(_ context.Context, tx *write.Tx, ch *write.Change) error {
				run(tx, "access")
				return nil
			})
			rp.AddRule("Appointment", "slot", func(ctx context.Context, tx *write.Tx, ch *write.Change) error {
				run(tx, "slot")
				ids = append(ids, ch.ID)
				s, err := tx.Read(ctx, "Slot", "s1")
				if err != nil {
					return err
				}
				obj, _ := fhir.ParseObject(s.JSON)
				tx.AfterEnd(func(committed bool) { ended = append(ended, committed) })
				if status, _ := obj.String("status"); status != "free" {
					return tx.Refuse(taken)
				}
				if tx.Probing() {
					return tx.EndPrecheck()
				}
				obj.Set("status", "busy")
				_, _, err = tx.Put(ctx, "Slot", "s1", obj, s.Version)
				return err
			})
			rp.AddRule("Slot", "access", func(context.Context, *write.Tx, *write.Change) error { return nil })
			rp.Precheck("Appointment")
			var after, before int
			obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Appointment","status":"booked"}`))
			err := rp.UpdateWith(context.Background(), write.TxOptions{Precheck: c.precheck}, func(ctx context.Context, tx *write.Tx) error {
				tx.AfterCommit(func(context.Context) error { after++; return nil })
				tx.BeforeCommit(func(context.Context) error { before++; return nil })
				if c.other != "" {
					p, _ := fhir.ParseObject([]byte(`{"resourceType":"` + c.other + `"}`))
					if _, err := tx.Create(ctx, c.other, p); err != nil {
						return err
					}
				}
				_, err := tx.Create(ctx, "Appointment", obj)
				if err != nil && c.swallow {
					return errSwallowed
				}
				return err
			})
			if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
				t.Errorf("answer %v, want %v", err, c.want)
			}
			if st.updates != c.updates {
				t.Errorf("%d store transactions, want %d", st.updates, c.updates)
			}
			if diff := cmp.Diff(c.runs, runs); diff != "" {
				t.Errorf("rules run (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.ended, ended); diff != "" {
				t.Errorf("AfterEnd told (-want +got):\n%s", diff)
			}
			if len(ids) == 2 && ids[0] != ids[1] {
				t.Errorf("the precheck created Appointment/%s, the transaction Appointment/%s: want one id", ids[0], ids[1])
			}
			committed := c.want == nil
			if wantAfter := map[bool]int{true: 1}[committed]; after != wantAfter {
				t.Errorf("AfterCommit work ran %d times, want %d", after, wantAfter)
			}
			if wantBefore := map[bool]int{true: 1}[committed]; before != wantBefore {
				t.Errorf("BeforeCommit work ran %d times, want %d", before, wantBefore)
			}
			wantSlot := c.slot
			if committed {
				wantSlot = "busy"
			}
			if got := statusOf(st.res["Slot/s1"].JSON); got != wantSlot {
				t.Errorf("slot after the write: %s, want %s", got, wantSlot)
			}
			var stored []string
			for k := range st.res {
				stored = append(stored, k[:strings.Index(k, "/")])
			}
			slices.Sort(stored)
			want := []string{"Slot"}
			if committed {
				want = []string{"Appointment", "Slot"}
			}
			if diff := cmp.Diff(want, stored); diff != "" {
				t.Errorf("resources stored (-want +got):\n%s", diff)
			}
		})
	}
}

var (
	errDenied    = fhir.Errorf(fhir.Forbidden, "forbidden", "", "not yours")
	errSwallowed = errors.New("the function's own error")
)

// statusOf returns the status of a resource's JSON.
func statusOf(raw []byte) string {
	obj, err := fhir.ParseObject(raw)
	if err != nil {
		return ""
	}
	s, _ := obj.String("status")
	return s
}
