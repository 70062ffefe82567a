// Package apptest starts the real Signpost server for tests in any
// package: the assembled app over a temporary data directory, on a
// 127.0.0.1 port. It is test support, kept out of the signpost binary
// (app/layers_test.go checks that the binary links no testing code).
package apptest

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/app"
	"github.com/signpost-fhir/signpost/auth"
	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// StoreEnv names the environment variable that chooses the store of the
// servers New starts when cfg.Store is empty: "lungo:" runs the tests of
// every package that starts a server on the MongoDB store (store/mongo)
// over lungo's in-process engine; unset, they run on SQLite.
const StoreEnv = "SIGNPOST_TEST_STORE"

// New starts the real server with cfg over a temporary data directory
// (unless cfg.Data names one) on a 127.0.0.1 port. Authorisation is off
// unless cfg.Auth is set. The server is closed when t ends.
func New(t testing.TB, cfg app.Config) (*app.App, *httptest.Server) {
	t.Helper()
	if cfg.Store == "" {
		cfg.Store = os.Getenv(StoreEnv)
	}
	if cfg.Data == "" {
		cfg.Data = t.TempDir()
	}
	cfg.Open = cfg.Open || !cfg.Auth
	ts := httptest.NewUnstartedServer(nil)
	cfg.BaseURL = "http://" + ts.Listener.Addr().String() + "/fhir"
	a, err := app.New(cfg)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ts.Config.Handler = a.Handler()
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		a.Close()
	})
	return a, ts
}

// IntoThePast moves Appointment/id and its slots back in time, straight in
// the store (no rule runs), as time passing would: afterwards the
// appointment started ago ago, so that a test can record it as arrived,
// fulfilled or, once ended, a no-show.
func IntoThePast(t testing.TB, a *app.App, id string, ago time.Duration) {
	t.Helper()
	err := a.Store.Update(context.Background(), func(ctx context.Context, tx store.Tx) error {
		res, err := tx.Read(ctx, "Appointment", id)
		if err != nil {
			return err
		}
		var appt struct {
			Start string `json:"start"`
			Slot  []struct {
				Reference string `json:"reference"`
			} `json:"slot"`
		}
		if err := json.Unmarshal(res.JSON, &appt); err != nil {
			return err
		}
		start, err := time.Parse(time.RFC3339, appt.Start)
		if err != nil {
			return err
		}
		shift := time.Now().Add(-ago).Sub(start).Truncate(time.Second)
		move := func(res *fhir.Resource) error {
			obj, err := fhir.ParseObject(res.JSON)
			if err != nil {
				return err
			}
			for _, k := range []string{"start", "end"} {
				if v, ok := obj.String(k); ok {
					tm, err := time.Parse(time.RFC3339, v)
					if err != nil {
						return err
					}
					obj.Set(k, tm.Add(shift).UTC().Format(time.RFC3339))
				}
			}
			idx, err := a.Search.Extract(res.Type, obj.Bytes())
			if err != nil {
				return err
			}
			next := &fhir.Resource{Type: res.Type, ID: res.ID, Version: res.Version + 1, LastUpdated: time.Now().UTC(), JSON: obj.Bytes()}
			return tx.Put(ctx, &store.Write{Resource: next, Index: idx})
		}
		for _, s := range appt.Slot {
			_, sid, _ := fhir.SplitReference(s.Reference)
			slot, err := tx.Read(ctx, "Slot", sid)
			if err != nil {
				return err
			}
			if err := move(slot); err != nil {
				return err
			}
		}
		return move(res)
	})
	if err != nil {
		t.Fatalf("moving Appointment/%s into the past: %v", id, err)
	}
}

// Seed writes resources (each with its resourceType and id) through the
// write path in one transaction, as a setup client with system scopes and
// no role would: every rule runs, and organisation rules do not stand in
// the way of the fixture.
func Seed(t testing.TB, a *app.App, resources ...map[string]any) {
	t.Helper()
	scopes, _ := auth.ParseScopes("system/*.cruds")
	setup := auth.NewContext(context.Background(), &auth.Principal{Subject: "test-setup", ClientID: "test-setup", Scopes: scopes})
	err := a.Writes.Update(setup, func(ctx context.Context, tx *write.Tx) error {
		for _, r := range resources {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			obj, err := fhir.ParseObject(b)
			if err != nil {
				return err
			}
			typ, _ := r["resourceType"].(string)
			id, _ := r["id"].(string)
			if _, _, err := tx.Put(ctx, typ, id, obj, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seeding: %v", err)
	}
}

// Versions returns the current version of every resource of types in a's
// store, by "Type/id": taken before and after a refused request, equal
// snapshots show that nothing changed.
func Versions(t testing.TB, a *app.App, types ...string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, typ := range types {
		q, err := a.Search.Parse(typ, url.Values{"_count": {"1000"}}, search.ParseOptions{MaxCount: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for {
			page, err := a.Store.Search(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Resources {
				out[r.Reference()] = r.Version
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
	}
	return out
}
