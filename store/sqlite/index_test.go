package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/storetest"
)

// TestIndexUpdateMatchesFreshWrite: a new version of a resource rewrites
// only the index tables whose rows change, as the resource's index digest
// tells (updateIndex), and so does a reindex of a version (reindexIndex);
// after every write of random sequences of versions and reindexes,
// the rows of every table are exactly those that writing the current
// version from scratch leaves. Versions draw their entries from small
// pools, so that they keep, drop, add, change and repeat rows of every
// table (pair rows included), and mix deletes, re-creations, several
// versions in one transaction, the bulk path (PutAll) and resources whose
// digest is missing (written before it existed).
func TestIndexUpdateMatchesFreshWrite(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 2))
	ids := []string{"Slot/a", "Slot/b", "Appointment/c", "Observation/d", "Observation/e"}
	current := map[string]*store.Write{}
	clock := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	next := func(ref string) *store.Write {
		typ, id, _ := strings.Cut(ref, "/")
		version := int64(1)
		if cur := current[ref]; cur != nil {
			version = cur.Resource.Version + 1
		}
		clock = clock.Add(time.Duration(1+rng.IntN(3)) * time.Millisecond)
		res := &fhir.Resource{Type: typ, ID: id, Version: version, LastUpdated: clock}
		w := &store.Write{Resource: res}
		if version > 1 && rng.IntN(8) == 0 {
			res.Deleted = true
			return w
		}
		res.JSON = []byte(`{"resourceType":"` + typ + `","id":"` + id + `"}`)
		w.Index = randomEntries(rng, typ, clock)
		return w
	}
	for step := range 400 {
		var ws []*store.Write
		bulk := rng.IntN(5) == 0
		for range 1 + rng.IntN(3) {
			ref := ids[rng.IntN(len(ids))]
			w := next(ref)
			current[ref] = w
			ws = append(ws, w)
		}
		if bulk {
			// New ids take the bulk path's multi-row inserts.
			ref := fmt.Sprintf("Observation/n%d", step)
			ids = append(ids, ref)
			w := next(ref)
			current[ref] = w
			ws = append(ws, w)
		}
		if rng.IntN(10) == 0 {
			// Rows written before the digest existed have none.
			if _, err := s.wdb.Exec("UPDATE resources SET digest = NULL WHERE rid % 2 = ?", rng.IntN(2)); err != nil {
				t.Fatal(err)
			}
		}
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			if bulk {
				return tx.(*txn).PutAll(ctx, ws)
			}
			for _, w := range ws {
				if err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("step %d: writing: %v", step, err)
		}
		for _, w := range ws {
			if current[w.Resource.Reference()] != w {
				continue // written again in the same step
			}
			got, want := indexRowsAndFresh(t, s, w)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: %s version %d: index rows\n got  %q\n want %q", step, w.Resource.Reference(), w.Resource.Version, got, want)
			}
		}
		if ref := ids[rng.IntN(len(ids))]; rng.IntN(10) == 0 && current[ref] != nil && !current[ref].Resource.Deleted {
			// A reindex brings the rows of the current version to its
			// entries by the extraction of the time (the same ones, in
			// another order, or others), in a transaction that then
			// writes the resource again.
			w := current[ref]
			if rng.IntN(3) == 0 {
				w.Index = slices.Clone(w.Index)
				rng.Shuffle(len(w.Index), func(i, j int) { w.Index[i], w.Index[j] = w.Index[j], w.Index[i] })
			} else {
				w.Index = randomEntries(rng, w.Resource.Type, w.Resource.LastUpdated)
			}
			again := next(ref)
			err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				tt := tx.(*txn)
				if _, err := tt.Read(ctx, w.Resource.Type, w.Resource.ID); err != nil {
					return err
				}
				var rid, seq int64
				var digest []byte
				if err := tt.batch.QueryRowContext(ctx, "SELECT rid, seq, digest FROM resources WHERE type = ? AND id = ?",
					w.Resource.Type, w.Resource.ID).Scan(&rid, &seq, &digest); err != nil {
					return err
				}
				if err := tt.reindexIndex(ctx, w.Resource, rid, seq, w.Index, digest); err != nil {
					return err
				}
				if rng.IntN(2) == 0 {
					return nil
				}
				current[ref] = again
				return tx.Put(ctx, again)
			})
			if err != nil {
				t.Fatalf("step %d: reindexing %s: %v", step, ref, err)
			}
			got, want := indexRowsAndFresh(t, s, current[ref])
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: %s reindexed: index rows\n got  %q\n want %q", step, ref, got, want)
			}
		}
	}
}

// errRollback undoes indexRowsAndFresh's transaction.
var errRollback = errors.New("rolled back on purpose")

// indexRowsAndFresh returns the index rows of w's resource as stored, and
// as writing w from scratch leaves them (in a transaction rolled back).
func indexRowsAndFresh(t *testing.T, s *Store, w *store.Write) (got, want []string) {
	t.Helper()
	err := s.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		tt := tx.(*txn)
		var rid, seq int64
		res := w.Resource
		if err := tt.batch.QueryRowContext(ctx, "SELECT rid, seq FROM resources WHERE type = ? AND id = ?", res.Type, res.ID).Scan(&rid, &seq); err != nil {
			return err
		}
		var err error
		if got, err = allIndexRows(ctx, tt, rid); err != nil {
			return err
		}
		if err := tt.deleteIndex(ctx, rid); err != nil {
			return err
		}
		if !res.Deleted {
			if err := tt.reindexIndex(ctx, res, rid, seq, w.Index, nil); err != nil {
				return err
			}
		}
		if want, err = allIndexRows(ctx, tt, rid); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("reading the index rows of %s: %v", w.Resource.Reference(), err)
	}
	return got, want
}

// allIndexRows renders every column of every index row of rid, with its
// type, sorted.
func allIndexRows(ctx context.Context, tt *txn, rid int64) ([]string, error) {
	var out []string
	for _, tb := range tables {
		rows, err := tt.batch.QueryContext(ctx, "SELECT "+tb.cols+" FROM "+tb.name+" WHERE rid = ?", rid)
		if err != nil {
			return nil, err
		}
		vals := make([]any, tb.n)
		dest := make([]any, tb.n)
		for i := range vals {
			dest[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return nil, err
			}
			row := tb.name
			for _, v := range vals {
				row += fmt.Sprintf(" %T:%v", v, v)
			}
			out = append(out, row)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return out, nil
}

// randomEntries draws index entries of a resource of typ from small pools
// of values of every kind (including the parameters of typ's pair, and a
// _lastUpdated that changes with every version), repeats included.
func randomEntries(rng *rand.Rand, typ string, now time.Time) []search.Entry {
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	date := func(param string) search.Entry {
		low := int64(1000 * (1 + rng.IntN(3)))
		high := low + int64(1+rng.IntN(2)*999)
		switch rng.IntN(6) {
		case 0:
			low = search.MinTime
		case 1:
			high = search.MaxTime
		}
		return search.Entry{Param: param, Type: search.Date, Low: low, High: high}
	}
	number := func(param string, typ search.ParamType) search.Entry {
		v := []float64{1.5, 2, 0, math0(), -3}[rng.IntN(5)]
		e := search.Entry{Param: param, Type: typ, NumLow: v, NumHigh: v + 0.5}
		if typ == search.Quantity {
			e.System, e.Value = pick("", "http://unitsofmeasure.org"), pick("mg", "kg")
		}
		return e
	}
	lu := now.UnixMicro()
	entries := []search.Entry{{Param: "_lastUpdated", Type: search.Date, Low: lu, High: lu + 1000}}
	// Slots and Appointments mostly have one value of each parameter of
	// their pair, so that pair rows often stay from version to version.
	switch typ {
	case "Slot":
		if rng.IntN(8) > 0 {
			id := pick("s1", "s2")
			entries = append(entries, search.Entry{Param: "schedule", Type: search.Reference, RefType: "Schedule", RefID: id, Value: "Schedule/" + id})
		}
		if rng.IntN(8) > 0 {
			entries = append(entries, search.Entry{Param: "start", Type: search.Date, Low: 1000, High: 2000})
		}
		if rng.IntN(8) > 0 {
			entries = append(entries, search.Entry{Param: "status", Type: search.Token, Value: pick("free", "busy")})
		}
	case "Appointment":
		entries = append(entries, search.Entry{Param: "patient", Type: search.Reference, RefType: "Patient", RefID: "p1", Value: "Patient/p1"},
			search.Entry{Param: "date", Type: search.Date, Low: 1000, High: 2000})
	}
	for range rng.IntN(9) {
		var e search.Entry
		switch rng.IntN(9) {
		case 0:
			v := pick("ann", "bob", "cy")
			e = search.Entry{Param: "name", Type: search.String, Value: strings.ToUpper(v), Text: v}
		case 1:
			e = search.Entry{Param: "code", Type: search.Token, System: pick("", "s1"), Value: pick("a", "b", "c"), Text: pick("", "A")}
		case 2:
			e = date("date")
		case 3:
			e = number("value", []search.ParamType{search.Number, search.Quantity}[rng.IntN(2)])
		case 4:
			id := pick("p1", "p2")
			e = search.Entry{Param: "subject", Type: search.Reference, RefType: pick("Patient", ""), RefID: id, Value: "Patient/" + id}
		case 5:
			e = search.Entry{Param: "url", Type: search.URI, Value: pick("urn:x", "urn:y")}
		case 6:
			e = search.Entry{Param: "combo", Type: search.Composite, Components: []search.Entry{
				{Param: "code", Type: search.Token, System: "s1", Value: pick("a", "b")},
				[]search.Entry{date("date"), number("value", search.Quantity)}[rng.IntN(2)],
			}}
		case 7: // the pair's reference
			switch typ {
			case "Slot":
				id := pick("s1", "s2")
				e = search.Entry{Param: "schedule", Type: search.Reference, RefType: "Schedule", RefID: id, Value: "Schedule/" + id}
			case "Appointment":
				id := pick("p1", "p2")
				e = search.Entry{Param: "patient", Type: search.Reference, RefType: "Patient", RefID: id, Value: "Patient/" + id}
			default:
				continue
			}
		case 8: // the pair's date and code
			switch typ {
			case "Slot":
				if rng.IntN(2) == 0 {
					e = date("start")
				} else {
					e = search.Entry{Param: "status", Type: search.Token, Value: pick("free", "busy", "busy-tentative")}
				}
			case "Appointment":
				e = date("date")
			default:
				continue
			}
		}
		entries = append(entries, e)
	}
	rng.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	return entries
}

// math0 is negative zero.
func math0() float64 { z := 0.0; return -z }

// BenchmarkSlotStatusWrite: what a booking or a cancellation does to a
// Slot in the store, a new version that changes only its status (free to
// busy and back), over 2,000 slots of 40 schedules, 50 versions to a
// transaction, so that the figure is the writer's work and not the commit.
// cpu-µs/op is the process's CPU time per version, steadier than the wall
// time when the machine is shared.
func BenchmarkSlotStatusWrite(b *testing.B) {
	reg := storetest.Registry(b)
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const slots, perTx = 2000, 50
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	body := func(i int, status string) []byte {
		at := start.Add(time.Duration(i/40) * 15 * time.Minute)
		return fmt.Appendf(nil, `{"resourceType":"Slot","id":"s%d","meta":{"versionId":"1","lastUpdated":"2026-03-01T00:00:00Z"},`+
			`"serviceType":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/service-type","code":"57"}]}],`+
			`"schedule":{"reference":"Schedule/sc%d"},"status":"%s","start":"%s","end":"%s"}`,
			i, i%40, status, at.Format(time.RFC3339), at.Add(15*time.Minute).Format(time.RFC3339))
	}
	version := make([]int64, slots)
	write := func(i int, status string) *store.Write {
		version[i]++
		js := body(i, status)
		entries, err := reg.Extract("Slot", js)
		if err != nil {
			b.Fatal(err)
		}
		return &store.Write{Resource: &fhir.Resource{Type: "Slot", ID: fmt.Sprintf("s%d", i), Version: version[i],
			LastUpdated: time.Now(), JSON: js}, Index: entries}
	}
	var ws []*store.Write
	for i := range slots {
		ws = append(ws, write(i, "free"))
	}
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.(*txn).PutAll(ctx, ws) }); err != nil {
		b.Fatal(err)
	}
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for n := 0; n < b.N; n += perTx {
		ws = ws[:0]
		for j := n; j < min(b.N, n+perTx); j++ {
			i := j * 7919 % slots
			ws = append(ws, write(i, []string{"busy", "free"}[j/slots%2]))
		}
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			for _, w := range ws {
				if err := tx.Put(ctx, w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}
