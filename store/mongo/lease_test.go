package mongo_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/256dpi/lungo"

	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/mongo"
)

// TestSharedState: two stores on one deployment, as two Signpost
// processes would have, share their secrets (the first stored wins, and
// the other's initial one is never used) and take turns with a lease
// (one holds it until it expires).
func TestSharedState(t *testing.T) {
	if os.Getenv(envURI) != "" {
		t.Skip("runs on the in-process engine only: it opens two stores on one engine of its own")
	}
	ctx := context.Background()
	client, engine, err := lungo.Open(ctx, lungo.Options{Store: lungo.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	name := fmt.Sprintf("signpost_shared_%d", os.Getpid())
	var st [2]store.Store
	for i := range st {
		if st[i], err = mongo.New(ctx, client, name, nil); err != nil {
			t.Fatal(err)
		}
	}

	first, err := store.SharedSecret(ctx, st[0], "k", func() ([]byte, error) { return []byte("first"), nil })
	if err != nil || string(first) != "first" {
		t.Fatalf("first secret %q, %v", first, err)
	}
	second, err := store.SharedSecret(ctx, st[1], "k", func() ([]byte, error) { return []byte("second"), nil })
	if err != nil || string(second) != "first" {
		t.Fatalf("the second process's secret %q, %v; want the first's", second, err)
	}

	until := time.Now().Add(300 * time.Millisecond)
	for i, want := range []bool{true, false} {
		if got, err := store.TakeLease(ctx, st[i], "sweep", until); err != nil || got != want {
			t.Fatalf("store %d takes the lease: %v, %v; want %v", i, got, err, want)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, err := store.TakeLease(ctx, st[1], "sweep", time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease was never free again after it expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !time.Now().After(until) {
		t.Fatal("the lease was taken again before it expired")
	}
}
