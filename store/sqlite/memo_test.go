package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
)

// TestReadInTransaction: reads inside an Update see the transaction's own
// writes, step by step (the store answers repeated reads from a memo),
// and a caller changing the bytes it was given changes nothing stored.
func TestReadInTransaction(t *testing.T) {
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	write := func(tx store.Tx, version int64, body string, deleted bool) error {
		res := &fhir.Resource{Type: "Patient", ID: "p", Version: version, LastUpdated: time.Now(), Deleted: deleted}
		if !deleted {
			res.JSON = []byte(body)
		}
		return tx.Put(ctx, &store.Write{Resource: res})
	}
	type step struct {
		write       func(tx store.Tx) error // nil: only read
		wantErr     bool                    // Read fails, with wantKind
		wantKind    fhir.Kind
		wantVersion int64
		wantBody    string
	}
	steps := []step{
		{wantErr: true, wantKind: fhir.NotFound},
		{write: func(tx store.Tx) error { return write(tx, 1, `{"v":1}`, false) }, wantVersion: 1, wantBody: `{"v":1}`},
		{wantVersion: 1, wantBody: `{"v":1}`},
		{write: func(tx store.Tx) error { return write(tx, 2, `{"v":2}`, false) }, wantVersion: 2, wantBody: `{"v":2}`},
		{write: func(tx store.Tx) error { return write(tx, 3, "", true) }, wantErr: true, wantKind: fhir.Gone, wantVersion: 3},
		{write: func(tx store.Tx) error { return write(tx, 4, `{"v":4}`, false) }, wantVersion: 4, wantBody: `{"v":4}`},
	}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for i, st := range steps {
			if st.write != nil {
				if err := st.write(tx); err != nil {
					t.Fatalf("step %d: write: %v", i, err)
				}
			}
			res, err := tx.Read(ctx, "Patient", "p")
			if (err != nil) != st.wantErr || st.wantErr && fhir.KindOf(err) != st.wantKind {
				t.Fatalf("step %d: Read error %v, want error %v of kind %v", i, err, st.wantErr, st.wantKind)
			}
			if st.wantKind == fhir.NotFound {
				continue
			}
			if res.Version != st.wantVersion || string(res.JSON) != st.wantBody {
				t.Errorf("step %d: Read = version %d %s, want %d %s", i, res.Version, res.JSON, st.wantVersion, st.wantBody)
			}
			for j := range res.JSON {
				res.JSON[j] = 'x' // the caller's copy
			}
		}
		// A stale version is refused as before.
		if err := write(tx, 4, `{"v":"again"}`, false); fhir.KindOf(err) != fhir.Conflict {
			t.Errorf("writing version 4 twice: %v, want Conflict", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Read(ctx, "Patient", "p")
	if err != nil || res.Version != 4 || string(res.JSON) != `{"v":4}` {
		t.Errorf("after commit: %v %v, want version 4 {\"v\":4}", res, err)
	}
}
