package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/signpost-fhir/signpost/store"
)

// fakeStore is a Store that records which opener made it.
type fakeStore struct {
	store.Store
	by  string
	cfg store.Config
}

// The fake backends of these tests register once, under schemes no real
// backend uses.
func init() {
	store.Register("fake-a", func(_ context.Context, cfg store.Config) (store.Store, error) {
		return &fakeStore{by: "a", cfg: cfg}, nil
	})
	store.Register("fake-b+srv", func(_ context.Context, cfg store.Config) (store.Store, error) {
		return &fakeStore{by: "b", cfg: cfg}, nil
	})
	// fake-fail fails as a careless driver would: repeating the URI.
	store.Register("fake-fail", func(_ context.Context, cfg store.Config) (store.Store, error) {
		return nil, fmt.Errorf("cannot connect to %s (user %s)", cfg.URI, "alice")
	})
}

func TestOpenDispatchesByScheme(t *testing.T) {
	tests := []struct {
		uri, wantBy string
	}{
		{"fake-a", "a"},
		{"fake-a:/var/lib/db", "a"},
		{"fake-b+srv://alice:s3cret@cluster.example/signpost", "b"},
	}
	for _, tt := range tests {
		st, err := store.Open(context.Background(), store.Config{URI: tt.uri, Data: "/data"})
		if err != nil {
			t.Errorf("Open(%q): %v", tt.uri, err)
			continue
		}
		f := st.(*fakeStore)
		if f.by != tt.wantBy || f.cfg.URI != tt.uri || f.cfg.Data != "/data" {
			t.Errorf("Open(%q) opened by %q with %+v, want %q with the same URI and data", tt.uri, f.by, f.cfg, tt.wantBy)
		}
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	_, err := store.Open(context.Background(), store.Config{URI: "mongodb+srv://alice:s3cret@cluster.example/signpost?tlsCertificateKeyFilePassword=k3yfile"})
	if err == nil {
		t.Fatal("Open of an unknown scheme succeeded")
	}
	for _, want := range []string{`"mongodb+srv"`, "built in: ", "fake-a", "cluster.example"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	for _, secret := range []string{"alice", "s3cret", "k3yfile"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows the credential %q", err, secret)
		}
	}
}

func TestOpenErrorHidesCredentials(t *testing.T) {
	uri := "fake-fail://alice:p%40ss@db1.example,db2.example/signpost?authSource=admin"
	_, err := store.Open(context.Background(), store.Config{URI: uri})
	if err == nil {
		t.Fatal("Open succeeded")
	}
	for _, secret := range []string{"alice", "p%40ss", "p@ss"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows the credential %q", err, secret)
		}
	}
	if !strings.Contains(err.Error(), "db1.example,db2.example") {
		t.Errorf("error %q does not name the hosts", err)
	}
	if errors.Unwrap(err) == nil {
		t.Errorf("error %q does not wrap the backend's", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"sqlite", "sqlite"},
		{"sqlite:/var/lib/signpost", "sqlite:/var/lib/signpost"},
		{"mongodb://db.example:27017/signpost", "mongodb://db.example:27017/signpost"},
		{"mongodb://alice:s3cret@db.example/signpost", "mongodb://xxxxx@db.example/signpost"},
		{"mongodb://alice@db.example", "mongodb://xxxxx@db.example"},
		{"mongodb+srv://alice:p@ss/w0rd@cluster.example/signpost", "mongodb+srv://xxxxx@cluster.example/signpost"},
		{"mongodb://a:b@h1,h2/db?replicaSet=rs0&tlsCertificateKeyFilePassword=k", "mongodb://xxxxx@h1,h2/db?replicaSet=xxxxx&tlsCertificateKeyFilePassword=xxxxx"},
	}
	for _, tt := range tests {
		if got := store.Redact(tt.uri); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.uri, got, tt.want)
		}
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a second Register of fake-a did not panic")
		}
	}()
	store.Register("fake-a", func(context.Context, store.Config) (store.Store, error) { return nil, nil })
}
