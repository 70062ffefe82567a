package mongo_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/256dpi/lungo"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/mongo"
)

// createIfNone is a check-then-write as the write path runs a conditional
// create or the one-Patient-per-NHS-number rule: search in the
// transaction, and create only when nothing matches.
func createIfNone(ctx context.Context, s store.Store, id, nhs string) (created bool, err error) {
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		created = false
		page, err := tx.Search(ctx, &search.Query{Type: "Patient", Filter: []search.Expr{
			search.TokenIn{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", HasSystem: true, Codes: []string{nhs}}}})
		if err != nil {
			return err
		}
		if len(page.Resources) > 0 {
			return nil
		}
		created = true
		return tx.Put(ctx, &store.Write{Resource: version("Patient", id, 1), Index: []search.Entry{
			{Param: "identifier", Type: search.Token, System: "https://fhir.nhs.uk/Id/nhs-number", Value: nhs}}})
	})
	return created, err
}

// race runs n racers at once and counts those that created.
func race(t *testing.T, n int, racer func(i int) (bool, error)) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	wins := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, err := racer(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("racer %d: %v", i, err)
			}
			if ok {
				wins++
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins
}

func patients(t *testing.T, s store.Store) int {
	t.Helper()
	page, err := s.Search(context.Background(), &search.Query{Type: "Patient", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Resources)
}

// TestRaceCheckThenWrite: racing transactions that each search for a
// Patient by NHS number and create one when there is none make one
// Patient: on MongoDB their searches write one guard document, so all but
// one abort with a write conflict and, retried, find it.
func TestRaceCheckThenWrite(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	wins := race(t, 16, func(i int) (bool, error) { return createIfNone(ctx, s, fmt.Sprint("racer", i), "9000000009") })
	if wins != 1 || patients(t, s) != 1 {
		t.Errorf("%d racers created, %d patients stored; want 1 and 1", wins, patients(t, s))
	}
}

// TestRaceSameNewResource: racing creates of one new resource (version
// 1 of one id) make one version; the others get a conflict.
func TestRaceSameNewResource(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	conflicts := 0
	var mu sync.Mutex
	wins := race(t, 16, func(int) (bool, error) {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.Put(ctx, &store.Write{Resource: version("Patient", "same", 1)})
		})
		if fhir.KindOf(err) == fhir.Conflict {
			mu.Lock()
			conflicts++
			mu.Unlock()
			return false, nil
		}
		return err == nil, err
	})
	if wins != 1 || conflicts != 15 {
		t.Errorf("wins %d, conflicts %d; want 1 and 15", wins, conflicts)
	}
	h, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "same"})
	if err != nil || len(h.Versions) != 1 {
		t.Errorf("history = %d versions, %v; want 1", len(h.Versions), err)
	}
}

// TestRaceRecordClaim: racing claims of one idempotency key store one
// record; the others get a conflict.
func TestRaceRecordClaim(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	wins := race(t, 16, func(i int) (bool, error) {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.(store.RecordTx).PutRecord(ctx, "idempotency", "key-1", []byte(fmt.Sprint(i)), epoch.AddDate(100, 0, 0))
		})
		if fhir.KindOf(err) == fhir.Conflict {
			return false, nil
		}
		return err == nil, err
	})
	if wins != 1 {
		t.Errorf("%d claims of one key succeeded, want 1", wins)
	}
}

// TestRaceTwoStoresOneDeployment: two stores (two Signpost processes) on
// one deployment race their check-then-writes; one Patient is made.
func TestRaceTwoStoresOneDeployment(t *testing.T) {
	ctx := context.Background()
	var stores [2]store.Store
	if os.Getenv(envURI) == "" {
		client, engine, err := lungo.Open(ctx, lungo.Options{Store: lungo.NewMemoryStore()})
		if err != nil {
			t.Fatal(err)
		}
		defer engine.Close()
		for i := range stores {
			if stores[i], err = mongo.New(ctx, client, "signpost", nil); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		stores[0] = open(t)
		defer stores[0].Close()
		s2, err := mongo.New(ctx, stores[0].(*mongo.Store).Client(), stores[0].(*mongo.Store).Database(), nil)
		if err != nil {
			t.Fatal(err)
		}
		stores[1] = s2
	}
	wins := race(t, 16, func(i int) (bool, error) {
		return createIfNone(ctx, stores[i%2], fmt.Sprint("racer", i), "9000000017")
	})
	if wins != 1 || patients(t, stores[0]) != 1 || patients(t, stores[1]) != 1 {
		t.Errorf("%d racers created; want 1 Patient seen by both stores", wins)
	}
}
