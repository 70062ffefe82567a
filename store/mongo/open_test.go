package mongo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// TestOpenByScheme opens lungo's engine through store.Open, in memory
// and in a directory whose data a second open (the data directory's)
// finds again.
func TestOpenByScheme(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, uri := range []string{"lungo:memory", "lungo:" + dir} {
		s, err := store.Open(ctx, store.Config{URI: uri})
		if err != nil {
			t.Fatalf("Open(%q): %v", uri, err)
		}
		err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			return tx.Put(ctx, &store.Write{Resource: version("Patient", "p1", 1)})
		})
		if err != nil {
			t.Fatalf("%s: Put: %v", uri, err)
		}
		s.Close()
	}
	s, err := store.Open(ctx, store.Config{URI: "lungo", Data: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Read(ctx, "Patient", "p1"); err != nil || got.Version != 1 {
		t.Errorf("Read after reopening the directory = %v, %v; want version 1", got, err)
	}
}

// TestOpenUnreachable: a deployment that cannot be reached fails the
// open within the server-selection timeout, with a message that says so
// and without the URI's credentials.
func TestOpenUnreachable(t *testing.T) {
	uri := "mongodb://alice:s3cret@127.0.0.1:1/signpost?serverSelectionTimeoutMS=200&authSource=admin"
	start := time.Now()
	s, err := store.Open(context.Background(), store.Config{URI: uri, Search: (*search.Registry)(nil)})
	if err == nil {
		s.Close()
		t.Fatal("Open of an unreachable deployment succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v, want about the 200 ms server-selection timeout", d)
	}
	msg := err.Error()
	if !strings.Contains(msg, "cannot be reached") {
		t.Errorf("error %q does not say the deployment cannot be reached", msg)
	}
	for _, secret := range []string{"alice", "s3cret"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q shows %q", msg, secret)
		}
	}
}
